"""Seeded percentile bootstrap confidence intervals for any metric.

Resamples of the test set (size ``n``, drawn with replacement) are described by a count matrix
``W`` of shape ``(n_resamples, n)``: ``W[b, i]`` is how often patient ``i`` was drawn in resample
``b``. The binary metrics (AUC included) of all resamples follow from ``W`` with a few matrix
products (:func:`~ichprog.metrics.binary.binary_metrics_batch`), the confusion matrices of
all resamples of an ordinal task from one product ``W @ onehot``, and the calibration metrics by
weighted Newton fits of all resamples at once
(:func:`~ichprog.metrics.calibration.calibration_metrics_batch`); any other metric function is
called once per resample.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ichprog.metrics._validation import as_1d, warn_undefined
from ichprog.metrics.binary import binary_metrics, binary_metrics_batch
from ichprog.metrics.calibration import calibration_metrics, calibration_metrics_batch
from ichprog.metrics.ordinal import (
    _class_index,
    _prepare,
    ordinal_metrics,
    ordinal_metrics_from_confusion,
)

__all__ = ["BOOTSTRAP_COLUMNS", "bootstrap_ci", "resample_counts"]

#: Columns of the table returned by :func:`bootstrap_ci`.
BOOTSTRAP_COLUMNS: tuple[str, ...] = ("metric", "estimate", "low", "high", "n_valid")


def resample_counts(n: int, n_resamples: int, seed: int | None = 0) -> np.ndarray:
    """Bootstrap count matrix: row ``b`` counts how often each of ``n`` samples is drawn.

    Parameters
    ----------
    n : int
        Number of samples (each resample has size ``n``).
    n_resamples : int
        Number of resamples.
    seed : int or None, default=0
        Seed of :func:`numpy.random.default_rng`; ``None`` draws fresh entropy.

    Returns
    -------
    ndarray of float64, shape (n_resamples, n)
        Non-negative integer counts; every row sums to ``n``.
    """
    idx = _resample_indices(n, n_resamples, seed)
    return _counts_from_indices(idx, n)


def _resample_indices(n: int, n_resamples: int, seed: int | None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_resamples, n))


def _counts_from_indices(idx: np.ndarray, n: int) -> np.ndarray:
    b = idx.shape[0]
    flat = (np.arange(b)[:, None] * n + idx).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(float)


def _unwrap(metric_fn: Callable[..., Any]) -> tuple[Callable[..., Any], dict[str, Any]]:
    if isinstance(metric_fn, functools.partial) and not metric_fn.args:
        return metric_fn.func, dict(metric_fn.keywords)
    return metric_fn, {}


def _as_dict(result: Any, name: str) -> dict[str, float]:
    if isinstance(result, Mapping):
        return {str(k): float(v) for k, v in result.items()}
    return {name: float(result)}


def _binary_path(
    y: np.ndarray, s: np.ndarray, idx: np.ndarray, kwargs: dict[str, Any]
) -> dict[str, np.ndarray]:
    unknown = set(kwargs) - {"threshold"}
    if unknown:
        raise TypeError(f"binary_metrics got unexpected keyword(s) {sorted(unknown)}")
    counts = _counts_from_indices(idx, y.shape[0])
    return binary_metrics_batch(y, s, counts, threshold=kwargs.get("threshold", 0.5))


def _ordinal_path(
    y: np.ndarray, s: np.ndarray, idx: np.ndarray, kwargs: dict[str, Any], progress: bool | None
) -> dict[str, np.ndarray]:
    unknown = set(kwargs) - {"labels"}
    if unknown:
        raise TypeError(f"ordinal_metrics got unexpected keyword(s) {sorted(unknown)}")
    t, p, lab = _prepare(y, s, kwargs.get("labels"))
    k = lab.size
    codes = _class_index(t, lab) * k + _class_index(p, lab)
    onehot = np.zeros((t.size, k * k))
    onehot[np.arange(t.size), codes] = 1.0
    cms = (_counts_from_indices(idx, t.size) @ onehot).reshape(-1, k, k)
    rows: list[dict[str, float]] = []
    for cm in tqdm(cms, desc="bootstrap", disable=(None if progress is None else not progress)):
        rows.append(ordinal_metrics_from_confusion(cm, labels=lab))
    return {key: np.array([r[key] for r in rows]) for key in rows[0]}


def _generic_path(
    metric_fn: Callable[..., Any],
    y_true: np.ndarray,
    y_score: np.ndarray,
    idx: np.ndarray,
    keys: list[str],
    name: str,
    progress: bool | None,
) -> dict[str, np.ndarray]:
    out = {k: np.full(idx.shape[0], np.nan) for k in keys}
    for b in tqdm(range(idx.shape[0]), desc="bootstrap",
                  disable=(None if progress is None else not progress)):
        rows = idx[b]
        try:
            result = _as_dict(metric_fn(y_true[rows], y_score[rows]), name)
        except ValueError:
            # e.g. a metric that refuses a resample holding a single class: counted as invalid
            continue
        for k in keys:
            out[k][b] = result.get(k, np.nan)
    return out


def bootstrap_ci(
    metric_fn: Callable[..., Any],
    y_true: Any,
    y_score: Any,
    n_resamples: int = 1000,
    ci: float = 0.95,
    seed: int | None = 0,
    *,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Percentile bootstrap confidence intervals of one or several metrics.

    Parameters
    ----------
    metric_fn : callable
        ``metric_fn(y_true, y_score)`` returning a float or a dict of floats, e.g.
        :func:`~ichprog.metrics.binary_metrics`, :func:`~ichprog.metrics.roc_auc`,
        ``functools.partial(ordinal_metrics, labels=[0, 1, 2])`` or
        :func:`sklearn.metrics.roc_auc_score`. :func:`~ichprog.metrics.binary_metrics` and
        :func:`~ichprog.metrics.ordinal_metrics` (also wrapped in :func:`functools.partial`
        with keyword arguments) take a vectorised path; any other function is called once per
        resample.
    y_true : array-like of shape (n_samples,)
        True labels.
    y_score : array-like of shape (n_samples,)
        Probabilities or scores (binary metrics) or predicted classes (ordinal metrics).
    n_resamples : int, default=1000
        Number of resamples, each of size ``n_samples``, drawn with replacement.
    ci : float, default=0.95
        Coverage of the percentile interval.
    seed : int or None, default=0
        Seed of :func:`numpy.random.default_rng`; the same seed gives the same resamples (and
        the same intervals) for every metric function.
    progress : bool or None, default=None
        Progress bar for the per-resample loops; ``None`` shows it only on a terminal.

    Returns
    -------
    pandas.DataFrame
        One row per metric with the columns ``metric``, ``estimate`` (the metric on the full
        sample), ``low`` and ``high`` (percentiles ``(1 - ci) / 2`` and ``(1 + ci) / 2`` of the
        valid resamples) and ``n_valid`` (the number of resamples where the metric was
        defined). ``attrs`` records ``n_resamples``, ``ci`` and ``seed``.

    Warns
    -----
    UndefinedMetricWarning
        When a metric is undefined (NaN) in some resamples, e.g. the AUC of a resample holding a
        single class, or when a generic metric function raised ``ValueError`` on a resample.
        Those resamples are left out of that metric's interval and counted by ``n_valid``.

    Notes
    -----
    For an ordinal ``metric_fn`` without ``labels``, the classes seen in the full sample are
    used for every resample, so that the class distances do not change between resamples.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 200)
    >>> p = np.clip(0.3 * y + 0.7 * rng.random(200), 0, 1)
    >>> table = bootstrap_ci(binary_metrics, y, p, n_resamples=200)
    >>> list(table.columns)
    ['metric', 'estimate', 'low', 'high', 'n_valid']
    """
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if not (0.0 < ci < 1.0):
        raise ValueError(f"ci must lie strictly between 0 and 1, got {ci!r}")
    y = as_1d(y_true, "y_true")
    s = as_1d(y_score, "y_score")
    if y.shape[0] != s.shape[0]:
        raise ValueError(
            f"y_true and y_score must have the same length, got {y.shape[0]} and {s.shape[0]}"
        )
    if y.shape[0] == 0:
        raise ValueError("y_true and y_score are empty: the bootstrap needs at least one sample")
    n_resamples = int(n_resamples)
    fn, kwargs = _unwrap(metric_fn)
    name = getattr(fn, "__name__", "metric")

    estimate = _as_dict(metric_fn(y, s), name)
    keys = list(estimate)
    idx = _resample_indices(y.shape[0], n_resamples, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fn is binary_metrics:
            values = _binary_path(y, s, idx, kwargs)
        elif fn is ordinal_metrics:
            values = _ordinal_path(y, s, idx, kwargs, progress)
        elif fn is calibration_metrics and kwargs.get("strategy", "uniform") == "uniform":
            values = calibration_metrics_batch(y, s, _counts_from_indices(idx, y.shape[0]),
                                               n_bins=kwargs.get("n_bins", 10))
        else:
            values = _generic_path(metric_fn, y, s, idx, keys, name, progress)

    alpha = (1.0 - ci) / 2.0
    records = []
    short = []
    for k in keys:
        v = np.asarray(values[k], dtype=float)
        valid = v[np.isfinite(v)]
        if valid.size:
            low, high = np.percentile(valid, [100 * alpha, 100 * (1 - alpha)])
        else:
            low = high = np.nan
        records.append((k, estimate[k], float(low), float(high), int(valid.size)))
        if valid.size < n_resamples:
            short.append(f"{k} ({n_resamples - valid.size})")
    if short:
        warn_undefined(
            f"bootstrap: metrics undefined in some of the {n_resamples} resamples, left out of "
            f"their intervals: {', '.join(short)}",
            stacklevel=2,
        )
    table = pd.DataFrame(records, columns=list(BOOTSTRAP_COLUMNS))
    table.attrs.update({"n_resamples": n_resamples, "ci": ci, "seed": seed})
    return table
