"""Metrics of the paper, usable on their own: numpy, pandas and scikit-learn only (no torch).

* :func:`binary_metrics`: AUC, accuracy, balanced accuracy, specificity, NPV, precision, recall
  and F1 at a threshold.
* :func:`ordinal_metrics`: accuracy, balanced accuracy, MAE, RMSE, A_UOC and quadratic weighted
  kappa; :func:`uoc_index` (A_UOC) and :func:`oci` (Ordinal Classification Index).
* :func:`bootstrap_ci`: seeded percentile bootstrap intervals, vectorised for the binary metrics.
* :func:`calibration_metrics` (Brier score, ECE, calibration slope and intercept),
  :func:`calibration_summary` (with bootstrap intervals), :func:`calibration_table` (reliability
  diagram bins), :func:`decision_curve` / :func:`net_benefit`, :func:`choose_threshold` and
  :func:`fit_calibrator` (Platt, temperature, isotonic).
* :func:`tidy`, :func:`summarize`, :func:`to_markdown`: the library's one metrics table format
  (columns ``model, fold, task, metric, value``) and the paper's "mean ± SD" tables.
"""

from __future__ import annotations

from ichprog.metrics._validation import UndefinedMetricWarning
from ichprog.metrics.aggregate import (
    TIDY_COLUMNS,
    mean_sd_table,
    summarize,
    summary_stats,
    tidy,
    to_markdown,
)
from ichprog.metrics.binary import BINARY_METRICS, binary_metrics, binary_metrics_batch, roc_auc
from ichprog.metrics.bootstrap import BOOTSTRAP_COLUMNS, bootstrap_ci, resample_counts
from ichprog.metrics.calibration import (
    CALIBRATION_METRICS,
    CALIBRATORS,
    Calibrator,
    calibration_metrics,
    calibration_metrics_batch,
    calibration_summary,
    calibration_table,
    choose_threshold,
    decision_curve,
    fit_calibrator,
    net_benefit,
)
from ichprog.metrics.ordinal import (
    ORDINAL_METRICS,
    oci,
    oci_from_confusion,
    ordinal_confusion_matrix,
    ordinal_metrics,
    ordinal_metrics_from_confusion,
    quadratic_weighted_kappa,
    uoc_from_confusion,
    uoc_index,
    uoc_index_from_confusion,
)

__all__ = [
    "CALIBRATION_METRICS",
    "CALIBRATORS",
    "Calibrator",
    "calibration_metrics",
    "calibration_metrics_batch",
    "calibration_summary",
    "calibration_table",
    "choose_threshold",
    "decision_curve",
    "fit_calibrator",
    "net_benefit",
    "BINARY_METRICS",
    "BOOTSTRAP_COLUMNS",
    "ORDINAL_METRICS",
    "TIDY_COLUMNS",
    "UndefinedMetricWarning",
    "binary_metrics",
    "binary_metrics_batch",
    "bootstrap_ci",
    "mean_sd_table",
    "oci",
    "oci_from_confusion",
    "ordinal_confusion_matrix",
    "ordinal_metrics",
    "ordinal_metrics_from_confusion",
    "quadratic_weighted_kappa",
    "resample_counts",
    "roc_auc",
    "summarize",
    "summary_stats",
    "tidy",
    "to_markdown",
    "uoc_from_confusion",
    "uoc_index",
    "uoc_index_from_confusion",
]
