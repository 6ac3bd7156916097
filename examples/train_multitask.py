"""Train the multi-task model MT (ord GCS, bin age) on a phantom cohort and test it.

The phantom cohort is generated with a strong image signal (``image_signal=3``): hematoma
volume, intraventricular extension and site drive the outcome. One stratified fold is held out
for testing; the model is trained on the rest (with a validation part for early stopping) and
its test AUC for prognosis is printed with a bootstrap 95 % interval, next to chance (0.5).

Environment variables
---------------------
ICHPROG_EXAMPLE_SMALL=1
    A CPU-sized run (under a minute) that checks the pipeline: 48 patients, 32 x 32 x 32
    inputs, a tiny DenseNet, 6 epochs; too small to expect a model better than chance.
    Without it: 160 patients, 32 x 48 x 48 inputs, the small DenseNet ``densenet_tiny``, up to
    30 epochs (early stopping with patience 15); about 15 minutes on two CPU cores.
ICHPROG_EXAMPLE_OUT
    Output folder (default: a new temporary folder).

Outputs: ``phantom/`` (the cohort), ``fit/`` (model, checkpoints, history.png),
``test_predictions.csv`` and ``test_metrics.csv``.

Measured (full run, 2 shared CPU cores, 12 minutes): 160 patients (96 poor prognosis), best
epoch 10 of 25 (early stopping), test fold of 40 patients: prognosis AUC 0.81 (95 % bootstrap
CI 0.66-0.94), balanced accuracy 0.73 (0.59-0.85): above chance. The small run only checks the
pipeline (its AUC is near or below 0.5).
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path

import ichprog as ip
from ichprog.data import PreprocessConfig, make_phantom_cohort, make_splits
from ichprog.metrics import UndefinedMetricWarning, binary_metrics, bootstrap_ci
from ichprog.training import TrainConfig


def main() -> None:
    small = os.environ.get("ICHPROG_EXAMPLE_SMALL") == "1"
    out = Path(os.environ.get("ICHPROG_EXAMPLE_OUT") or tempfile.mkdtemp(prefix="ichprog_fit_"))
    out.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore", UndefinedMetricWarning)  # small test sets: some undefined
    t0 = time.perf_counter()

    if small:  # checks the pipeline; too little data and training to expect a good model
        n, scan, inputs, epochs, strip = 48, (16, 48, 48), (32, 32, 32), 6, False
        model_kwargs = {"trunk_kwargs": {"block_config": (1, 1, 1, 1)}}
    else:
        n, scan, inputs, epochs, strip = 160, (24, 96, 96), (32, 48, 48), 30, True
        model_kwargs = {}

    cohort = make_phantom_cohort(n, seed=0, out_dir=out / "phantom", shape=scan,
                                 image_signal=3.0, progress=False, overwrite=True)
    print(f"phantom cohort: {len(cohort)} patients, {int(cohort.labels.sum())} poor prognosis")

    # one stratified fold as test set; its training part keeps a validation part
    fold = make_splits(cohort, folds=4, seed=0, val_fraction=0.15).folds[0]
    preprocess = PreprocessConfig(shape=inputs, skull_strip=strip)
    config = TrainConfig(max_epochs=epochs, patience=15, batch_size=8, progress=not small)
    model = ip.fit_multitask(cohort, ip.tasks.MT_ORD_GCS_BIN_AGE, trunk="densenet_tiny",
                             train_ids=fold.train, val_ids=fold.val, preprocess=preprocess,
                             config=config, seed=0, out_dir=out / "fit",
                             cache_dir=out / "cache", model_kwargs=model_kwargs,
                             preload=True, progress=not small, overwrite=True)
    print(model)
    print(f"best epoch {model.info['best_epoch']} of {model.info['epochs_run']} "
          f"({model.info['stop_reason']}), trained in {model.info['precision']}")

    test = cohort.subset(fold.test)
    pred = model.predict(test)
    truth = test.targets(model.preset)
    pred.insert(0, "prognosis_true", truth["prognosis"])
    pred.to_csv(out / "test_predictions.csv")

    table = bootstrap_ci(binary_metrics, truth["prognosis"], pred["prognosis_prob"].to_numpy(),
                         n_resamples=1000, seed=0, progress=False)
    table.to_csv(out / "test_metrics.csv", index=False)
    auc = table.set_index("metric").loc["auc"]
    print(table.round(3).to_string(index=False))
    print(f"\ntest AUC for prognosis: {auc.estimate:.2f} (95 % CI {auc.low:.2f}-{auc.high:.2f}); "
          f"chance is 0.50 -> {'above' if auc.low > 0.5 else 'not clearly above'} chance")
    print(f"outputs in {out}  ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
