"""Experiments: one model for a notebook, the paper's cross-validation, its ablations.

* :func:`fit_multitask` trains one image model on a cohort and returns a :class:`FittedModel`
  (``predict``, ``predict_proba``, ``save`` / ``load``).
* :func:`cross_validate` runs the paper's protocol (stratified k folds, a stratified validation
  part inside each training part, oversampling and augmentation of the training part only) and
  returns a :class:`CVResult` with the per-patient predictions of every fold, the metrics of every
  task (``metrics``, ``summary()``), bootstrap intervals (``bootstrap()``) and the comparison
  with external readers (``compare_readers()``).
* :func:`cross_validate` and :func:`ablation` take an ``executor``: ``"serial"`` (default),
  ``"ray"`` (one Ray task per configuration and fold, :class:`RayExecutor`) or an
  :class:`Executor`; see :mod:`~ichprog.experiment.executors`.
* :func:`load_ensemble` reads the fold models of a cross-validation as one
  :class:`FoldEnsemble`: mean probabilities with their spread across folds, calibration and
  thresholds fitted on each fold's validation part, a model card
  (:mod:`~ichprog.experiment.modelcard`).
* :func:`ablation` runs :func:`ichprog.tasks.ablations` of a preset through
  :func:`cross_validate` on the same folds (the data of the paper's Fig. 2) and plots it.

Results
-------
Every result type (:class:`CVResult`, :class:`AblationResult`, :class:`ClaimsResult`, and
:class:`~ichprog.tabular.TabularCVResult` and :class:`~ichprog.tabular.Table1Result` of the
tabular baselines) follows the protocol :class:`Result`: the properties ``predictions`` (the
result's own per-patient table), ``long_predictions`` (the library's one prediction table,
``model, fold, PatientID, task, y_true, score, pred``) and ``metrics`` (the tidy metrics
table), and the methods ``summary()``, ``save(out_dir) -> Path`` and the class method
``load(out_dir)``. :func:`long_predictions` converts any prediction table of the library to the
long form.

Seeds
-----
One ``seed`` fixes everything: the folds (:func:`ichprog.data.make_splits`), and for fold ``k``
a seed derived from ``(seed, k)`` that initialises the network and seeds oversampling,
augmentation and the training loop. The same seed on the same hardware gives the same numbers.

Output folder of :func:`cross_validate`
---------------------------------------
::

    out_dir/
      config.json          preset, training and pre-processing settings, seeds, package versions
      splits.json          the folds (patient IDs), see ichprog.data.Splits
      predictions.csv      one row per test patient and fold: true classes, probabilities,
                           decoded classes of every task
      metrics.csv          the tidy metrics table (model, fold, task, metric, value)
      history.csv          training history of every fold (one row per fold and epoch)
      fold_00/
        fold.json          the fold's configuration hash, seed, best epoch and status
        predictions.csv    the fold's test predictions
        model/             the fold's FittedModel (model.safetensors, fitted.json, history.csv,
                           history.png)
        checkpoints/       training checkpoints while the fold runs (kept with
                           keep_checkpoints=True); an interrupted fold resumes from them
      fold_01/ ...

A fold whose ``fold.json`` and ``predictions.csv`` exist with the same configuration is not
trained again (``CVResult.reused_folds`` lists it); a fold with another configuration raises
unless ``overwrite=True``. Tables and figures can be regenerated from the CSV files alone
(:meth:`CVResult.load`).

The code is split by job: :mod:`~ichprog.experiment.fitted` (:func:`fit_multitask`,
:class:`FittedModel`), :mod:`~ichprog.experiment.cv` (:func:`cross_validate`, its fold store,
:class:`CVResult`), :mod:`~ichprog.experiment.ablations` (:func:`ablation`,
:class:`AblationResult`), :mod:`~ichprog.experiment.claims` (:func:`check_claims`) and
``ichprog.experiment._common`` (what they share: recipes, validation split, datasets, prediction
tables). Every name is imported from ``ichprog.experiment``.
"""

from __future__ import annotations

from ichprog._extras import require_extra

require_extra(__name__, "image", ("torch", "monai", "nibabel", "safetensors"))

# The public names, and (``noqa: F401``) the private helpers and constants that were importable
# from ``ichprog.experiment`` before it was split into modules.
from ichprog._results import Result
from ichprog.experiment._common import (  # noqa: F401
    _apply_recipe,
    _datasets,
    _loss_targets,
    _prediction_frame,
    _probs_from_frame,
    _read_ids_csv,
    _resolve_config,
    _resolve_preprocess,
    _split_validation,
    long_predictions,
    prediction_columns,
)
from ichprog.experiment.ablations import AblationResult, ablation, plot_ablation  # noqa: F401
from ichprog.experiment.claims import ClaimsResult, check_claims, reference_predictions
from ichprog.experiment.cv import CV_FORMAT, CVResult, cross_validate  # noqa: F401
from ichprog.experiment.ensemble import ENSEMBLE_FORMAT, FoldEnsemble, load_ensemble  # noqa: F401
from ichprog.experiment.executors import Executor, RayExecutor, SerialExecutor, as_executor
from ichprog.experiment.fitted import FITTED_FORMAT, FittedModel, fit_multitask  # noqa: F401

__all__ = [
    "FittedModel",
    "CVResult",
    "AblationResult",
    "fit_multitask",
    "cross_validate",
    "ablation",
    "prediction_columns",
    "long_predictions",
    "Result",
    "check_claims",
    "ClaimsResult",
    "reference_predictions",
    "Executor",
    "SerialExecutor",
    "RayExecutor",
    "as_executor",
    "FoldEnsemble",
    "load_ensemble",
]
