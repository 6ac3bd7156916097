"""Score your own model's predictions with ichprog's encoders and metrics (core install only).

Needs only ``pip install ichprog``: numpy, scipy, pandas and scikit-learn, no torch.

Your model's predictions sit in a plain pandas table, one row per patient: the admission GCS and
age, the true outcome, the predicted probability of a poor prognosis, and the model's two
cumulative outputs for the three-class GCS (``P(class > 0)``, ``P(class > 1)``). The script

1. encodes the targets like the paper (ordinal and binary GCS, binary age >= 80),
2. decodes the cumulative outputs to GCS classes,
3. computes the binary metrics of the prognosis (AUC, balanced accuracy, ...) and the ordinal
   metrics of the GCS (A_UOC, MAE, RMSE, quadratic weighted kappa),
4. adds seeded 95 % bootstrap intervals, and writes everything as one tidy CSV table.

Here the table is simulated; replace ``your_predictions()`` with ``pd.read_csv(...)``.

Environment variables: ``ICHPROG_EXAMPLE_SMALL=1`` for a quick run (fewer resamples),
``ICHPROG_EXAMPLE_OUT`` for the output folder (default: a new temporary folder).

Run with ``python examples/reuse_metrics.py``.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ichprog.encoding import age_binary, cumulative_decode, gcs_binary, gcs_ordinal
from ichprog.metrics import binary_metrics, bootstrap_ci, ordinal_metrics, tidy, to_markdown

SMALL = os.environ.get("ICHPROG_EXAMPLE_SMALL") == "1"
OUT = Path(os.environ.get("ICHPROG_EXAMPLE_OUT") or tempfile.mkdtemp(prefix="ichprog_metrics_"))
GCS_LABELS = [0, 1, 2]  # mild (13-15), moderate (9-12), severe (3-8)


def your_predictions(n: int = 150, seed: int = 0) -> pd.DataFrame:
    """A stand-in for your table: clinical values, outcome and a model's outputs."""
    rng = np.random.default_rng(seed)
    gcs = rng.integers(3, 16, n)
    age = np.clip(rng.normal(72, 14, n), 18, 100).round()
    poor = (rng.random(n) < 1 / (1 + np.exp(0.35 * (gcs - 10) - 0.06 * (age - 72)))).astype(int)
    severity = (15 - gcs) / 12 + rng.normal(0, 0.15, n)  # the model's noisy reading of the GCS
    return pd.DataFrame({
        "PatientID": [f"P{i:03d}" for i in range(n)],
        "GCS": gcs,
        "Age": age,
        "poor_prognosis": poor,
        "prob_poor": (1 / (1 + np.exp(-(2.0 * poor - 1.0 + rng.normal(0, 1.2, n))))).round(3),
        "gcs_gt0": (1 / (1 + np.exp(-12 * (severity - 0.17)))).round(3),
        "gcs_gt1": (1 / (1 + np.exp(-12 * (severity - 0.55)))).round(3),
    })


def main() -> None:
    table = your_predictions()

    # 1. targets, encoded like the paper
    table["gcs_class"] = gcs_ordinal(table["GCS"])          # 13-15 -> 0, 9-12 -> 1, 3-8 -> 2
    table["gcs_severe"] = gcs_binary(table["GCS"])          # 3-8 -> 1
    table["age_80_plus"] = age_binary(table["Age"])         # >= 80 -> 1
    # 2. the model's cumulative GCS outputs, decoded (the paper's rule: outputs above 0.5)
    table["gcs_pred"] = cumulative_decode(table[["gcs_gt0", "gcs_gt1"]], rule="count")
    print(table.head().to_string(index=False), "\n")

    # 3. metrics on the whole table
    prognosis = binary_metrics(table["poor_prognosis"], table["prob_poor"], threshold=0.5)
    gcs = ordinal_metrics(table["gcs_class"], table["gcs_pred"], labels=GCS_LABELS)
    print(f"prognosis: AUC {prognosis['auc']:.3f}, balanced accuracy "
          f"{prognosis['balanced_accuracy']:.3f}")
    print(f"GCS:       A_UOC {gcs['uoc']:.3f} (lower is better), MAE {gcs['mae']:.3f}, "
          f"RMSE {gcs['rmse']:.3f}, quadratic kappa {gcs['qwk']:.3f}\n")

    # 4. seeded 95 % bootstrap intervals (vectorised: 1000 resamples take well under a second)
    n_resamples = 200 if SMALL else 1000
    ci = pd.concat([
        bootstrap_ci(binary_metrics, table["poor_prognosis"], table["prob_poor"],
                     n_resamples=n_resamples, seed=0, progress=False).assign(task="prognosis"),
        bootstrap_ci(functools.partial(ordinal_metrics, labels=GCS_LABELS), table["gcs_class"],
                     table["gcs_pred"], n_resamples=n_resamples, seed=0,
                     progress=False).assign(task="gcs"),
    ], ignore_index=True)[["task", "metric", "estimate", "low", "high", "n_valid"]]
    print(f"95 % bootstrap intervals ({n_resamples} resamples)\n")
    print(to_markdown(ci, floatfmt=".3f"))

    # the library's one metrics table format: model, fold, task, metric, value (one fold here)
    OUT.mkdir(parents=True, exist_ok=True)
    tidy({0: {"prognosis": prognosis, "gcs": gcs}}, model="my model").to_csv(
        OUT / "metrics_tidy.csv", index=False)
    ci.to_csv(OUT / "bootstrap_ci.csv", index=False)
    table.to_csv(OUT / "predictions_encoded.csv", index=False)

    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "monai", "shap"))
    print(f"\nheavy modules imported: {heavy or 'none'}")
    print(f"outputs written to {OUT}")


if __name__ == "__main__":
    main()
