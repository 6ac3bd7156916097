"""Train the multi-task model MT (ord GCS, bin age) on a phantom cohort and test it.

One stratified fold of a phantom cohort (its default settings) is held out for testing; the
model is trained on the rest with the ``"cpu"`` recipe (``ichprog.recipes``: a small DenseNet,
one-cycle learning rate, the last epoch's weights, no validation part) and its test AUC for
prognosis is printed with a bootstrap 95 % interval, next to chance (0.5).

Environment variables
---------------------
ICHPROG_EXAMPLE_SMALL=1
    A CPU-sized run (seconds) that checks the pipeline: 48 patients, 32 x 32 x 32 inputs, an
    even smaller DenseNet, 6 epochs; too small to expect a model better than chance.
    Without it: 160 patients and the ``"cpu"`` recipe as it is (32 x 48 x 48, 30 epochs).
ICHPROG_EXAMPLE_OUT
    Output folder (default: a new temporary folder).

Outputs: ``phantom/`` (the cohort), ``fit/`` (model, checkpoints, history.png),
``test_predictions.csv`` and ``test_metrics.csv``.

Measured (full run, 2 CPU cores, 47 s): 160 patients (96 poor prognosis), test fold of 40
patients: prognosis AUC 0.59 (95 % bootstrap CI 0.39-0.77), balanced accuracy 0.59
(0.42-0.75). One fold of 40 patients is too small to tell such a model from chance; the
pooled out-of-fold AUCs of the demo's 4 folds (0.72-0.78, docs/claims.md) are the better
measure. The small run only checks the pipeline (its AUC is near or below 0.5).
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path

import ichprog as ip
from ichprog.data import make_phantom_cohort, make_splits
from ichprog.metrics import UndefinedMetricWarning, binary_metrics, bootstrap_ci
from ichprog.recipes import get_recipe


def main() -> None:
    small = os.environ.get("ICHPROG_EXAMPLE_SMALL") == "1"
    out = Path(os.environ.get("ICHPROG_EXAMPLE_OUT") or tempfile.mkdtemp(prefix="ichprog_fit_"))
    out.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore", UndefinedMetricWarning)  # small test sets: some undefined
    t0 = time.perf_counter()

    cpu = get_recipe("cpu")
    if small:  # checks the pipeline; too little data and training to expect a good model
        n, scan = 48, (16, 48, 48)
        preprocess = cpu.preprocess_config(shape=(32, 32, 32), skull_strip=False)
        config = cpu.train_config(max_epochs=6, progress=False)
        model_kwargs = {"trunk_kwargs": {"block_config": (1, 1, 1, 1)}}
    else:
        n, scan = 160, (32, 96, 96)
        preprocess, config, model_kwargs = None, None, {}  # the recipe's

    cohort = make_phantom_cohort(n, seed=0, out_dir=out / "phantom", shape=scan,
                                 progress=False, overwrite=True)
    print(f"phantom cohort: {len(cohort)} patients, {int(cohort.labels.sum())} poor prognosis")

    # one stratified fold as test set; the recipe trains on all of the rest
    fold = make_splits(cohort, folds=4, seed=0, val_fraction=cpu.val_fraction).folds[0]
    model = ip.fit_multitask(cohort, ip.tasks.MT_ORD_GCS_BIN_AGE, recipe=cpu,
                             train_ids=fold.train, val_ids=fold.val, preprocess=preprocess,
                             config=config, seed=0, out_dir=out / "fit",
                             cache_dir=out / "cache", model_kwargs=model_kwargs,
                             preload=True, progress=not small, overwrite=True)
    print(model)
    print(f"kept epoch {model.info['best_epoch']} of {model.info['epochs_run']} "
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
