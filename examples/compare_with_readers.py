"""Cross-validate a multi-task model and compare it with (simulated) readers, like Table 2.

The paper's four neuroradiologists labelled the 27 patients of one test fold. Here four readers
are simulated on the test patients of fold 0 of a phantom cohort: each reader calls a patient
"poor prognosis" with a sensitivity and specificity drawn around the readers' means reported in
the paper's Table 2 (recall 0.49, specificity 0.80), seeded. ``CVResult.compare_readers`` puts
the model's metrics on those patients, with 1000-resample bootstrap intervals, beside the
readers' mean ± SD.

Environment variables
---------------------
ICHPROG_EXAMPLE_SMALL=1
    A CPU-sized run (under a minute): 32 patients, 4 folds, 32 x 32 x 32 inputs, a tiny
    DenseNet, 2 epochs, no skull stripping.
    Without it: 120 patients, 10 folds, 40 x 96 x 96 inputs, a small DenseNet, up to 30 epochs.
ICHPROG_EXAMPLE_OUT
    Output folder (default: a new temporary folder).

Outputs: ``phantom/``, ``cv/`` (the cross-validation folder: predictions.csv, metrics.csv, ...),
``readers.csv``, ``table2.csv`` (numbers) and ``table2.md`` (the formatted table).
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import ichprog as ip
from ichprog.data import PreprocessConfig, make_phantom_cohort
from ichprog.metrics import UndefinedMetricWarning, to_markdown
from ichprog.training import TrainConfig


def simulate_readers(y_true: np.ndarray, ids: list[str], n_readers: int = 4,
                     sensitivity: float = 0.49, specificity: float = 0.80,
                     seed: int = 0) -> pd.DataFrame:
    """Binary labels of simulated readers: each has its own sensitivity and specificity drawn
    within +/- 0.1 of the given means, and labels every patient independently."""
    rng = np.random.default_rng(seed)
    cols = {}
    for r in range(n_readers):
        sens = np.clip(sensitivity + rng.uniform(-0.1, 0.1), 0, 1)
        spec = np.clip(specificity + rng.uniform(-0.1, 0.1), 0, 1)
        u = rng.random(len(y_true))
        cols[f"NR{r + 1}"] = np.where(y_true == 1, u < sens, u >= spec).astype(int)
    return pd.DataFrame(cols, index=pd.Index(ids, name="PatientID"))


def main() -> None:
    small = os.environ.get("ICHPROG_EXAMPLE_SMALL") == "1"
    out = Path(os.environ.get("ICHPROG_EXAMPLE_OUT") or tempfile.mkdtemp(prefix="ichprog_nr_"))
    out.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore", UndefinedMetricWarning)  # tiny folds: some metrics undefined
    t0 = time.perf_counter()

    if small:
        n, folds, scan, inputs, epochs, strip = 32, 4, (16, 48, 48), (32, 32, 32), 2, False
        model_kwargs = {"trunk_kwargs": {"block_config": (1, 1, 1, 1)}}
    else:
        n, folds, scan, inputs, epochs, strip = 120, 10, (32, 128, 128), (40, 96, 96), 30, True
        model_kwargs = {"trunk_kwargs": {"block_config": (2, 4, 6, 4)}}

    cohort = make_phantom_cohort(n, seed=1, out_dir=out / "phantom", shape=scan,
                                 image_signal=3.0, progress=False, overwrite=True)
    cv = ip.cross_validate(
        cohort, ip.tasks.MT_ORD_GCS_BIN_AGE, folds=folds, seed=0, out_dir=out / "cv",
        trunk="densenet_tiny", preprocess=PreprocessConfig(shape=inputs, skull_strip=strip),
        config=TrainConfig(max_epochs=epochs, patience=10, progress=False),
        cache_dir=out / "cache", model_kwargs=model_kwargs, preload=True, progress=not small,
        overwrite=True)
    print(cv)
    if cv.reused_folds:
        print(f"folds read back from {out / 'cv'}: {cv.reused_folds}")
    print("\nprognosis over folds (mean ± SD):")
    summary = cv.summary()
    print(summary.loc["prognosis"].to_string())

    fold0 = cv.predictions[cv.predictions["fold"] == 0]
    readers = simulate_readers(fold0["prognosis_true"].to_numpy(), fold0["PatientID"].tolist(),
                               seed=0)
    readers.to_csv(out / "readers.csv")
    numbers = cv.compare_readers(readers, fold=0, n_resamples=1000, seed=0)
    numbers.to_csv(out / "table2.csv")
    table = cv.compare_readers(readers, fold=0, n_resamples=1000, seed=0, formatted=True)
    (out / "table2.md").write_text(to_markdown(table.reset_index()), encoding="utf-8")
    print(f"\nfold 0 ({len(readers)} patients), model with 95 % bootstrap CI vs "
          f"{readers.shape[1]} readers:")
    print(table.to_string())
    print(f"\noutputs in {out}  ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
