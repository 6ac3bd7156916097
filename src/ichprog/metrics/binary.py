"""Binary classification metrics at a fixed threshold, and a rank-based AUC.

All metrics are computed from the four cells of the confusion matrix (and the ranks of the
scores for the AUC) with plain numpy, so that the same code evaluates one sample or thousands of
bootstrap resamples at once (:func:`binary_metrics_batch`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ichprog._validation import check_labels
from ichprog.constants import BINARY_METRICS
from ichprog.metrics._validation import as_1d, first_index, fmt, position, warn_undefined

__all__ = [
    "BINARY_METRICS",
    "binary_metrics",
    "binary_metrics_batch",
    "roc_auc",
    "validate_binary",
]


def _validate_labels(y_true: Any) -> np.ndarray:
    return check_labels(as_1d(y_true, "y_true"), y_true,
                        "y_true must contain only the binary labels 0 and 1; got {value} at "
                        "{where}", allowed=(0.0, 1.0))


def _validate_scores(y_score: Any, name: str, unit_interval: bool) -> np.ndarray:
    s = as_1d(y_score, name)
    bad = ~np.isfinite(s)
    if bad.any():
        pos = first_index(bad)
        raise ValueError(f"{name} must be finite; got {fmt(s[pos])} at {position(y_score, pos)}")
    if unit_interval:
        bad = (s < 0) | (s > 1)
        if bad.any():
            pos = first_index(bad)
            raise ValueError(
                f"{name} must be probabilities in [0, 1]; got {fmt(s[pos])} at "
                f"{position(y_score, pos)}"
            )
    return s


def validate_binary(
    y_true: Any, y_score: Any, name: str = "y_prob", unit_interval: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert binary labels and scores.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels, each 0 or 1 (booleans are accepted).
    y_score : array-like of shape (n_samples,)
        Scores or probabilities, finite.
    name : str, default="y_prob"
        Name of the score argument used in error messages.
    unit_interval : bool, default=True
        Require the scores to lie in ``[0, 1]``.

    Returns
    -------
    y_true : ndarray of int64
    y_score : ndarray of float64

    Raises
    ------
    ValueError
        For empty input, different lengths, labels other than 0/1, NaN or infinite scores, or
        (with ``unit_interval``) scores outside ``[0, 1]``; the message names the value and its
        position.
    """
    y = _validate_labels(y_true)
    s = _validate_scores(y_score, name, unit_interval)
    if y.shape[0] != s.shape[0]:
        raise ValueError(
            f"y_true and {name} must have the same length, got {y.shape[0]} and {s.shape[0]}"
        )
    if y.shape[0] == 0:
        raise ValueError(f"y_true and {name} are empty: metrics need at least one sample")
    return y, s


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _weighted_auc(y: np.ndarray, s: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC for every row of ``weights`` (ties count one half).

    ``weights[b, i]`` is how often sample ``i`` enters the ``b``-th evaluation (1 for the plain
    sample, the bootstrap counts for a resample). Scores are sorted once; the tied groups are
    summed with :func:`numpy.add.reduceat`, so the cost is ``O(n_rows * n_samples)``.
    """
    order = np.argsort(s, kind="stable")
    s_sorted = s[order]
    pos_sorted = y[order] == 1
    w_sorted = weights[:, order]
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    pos_w = np.add.reduceat(np.where(pos_sorted, w_sorted, 0.0), starts, axis=1)
    neg_w = np.add.reduceat(np.where(pos_sorted, 0.0, w_sorted), starts, axis=1)
    neg_below = np.cumsum(neg_w, axis=1) - neg_w
    num = (pos_w * (neg_below + 0.5 * neg_w)).sum(axis=1)
    den = pos_w.sum(axis=1) * neg_w.sum(axis=1)
    return _safe_divide(num, den)


def binary_metrics_batch(
    y_true: Any, y_prob: Any, weights: Any, threshold: float = 0.5
) -> dict[str, np.ndarray]:
    """The metrics of :func:`binary_metrics` for many weightings of one sample at once.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels, each 0 or 1.
    y_prob : array-like of shape (n_samples,)
        Predicted probability of class 1, in ``[0, 1]``.
    weights : array-like of shape (n_rows, n_samples)
        Non-negative integer weights: row ``b`` counts how often each sample enters evaluation
        ``b`` (bootstrap counts; a row of ones is the plain sample).
    threshold : float, default=0.5
        A sample is predicted positive when ``y_prob >= threshold``.

    Returns
    -------
    dict of str to ndarray of shape (n_rows,)
        One array per key of :data:`BINARY_METRICS`; NaN where a metric is undefined. No
        warning is emitted (see :func:`binary_metrics`).
    """
    y, p = validate_binary(y_true, y_prob)
    w = np.asarray(weights, dtype=float)
    if w.ndim == 1:
        w = w[None, :]
    if w.ndim != 2 or w.shape[1] != y.shape[0]:
        raise ValueError(
            f"weights must have shape (n_rows, {y.shape[0]}), got an array of shape {w.shape}"
        )
    if not np.all(np.isfinite(w)) or (w < 0).any():
        raise ValueError("weights must be finite and non-negative")
    _check_threshold(threshold)
    pos = y == 1
    pred = p >= threshold
    tp = w @ (pos & pred).astype(float)
    fn = w @ (pos & ~pred).astype(float)
    fp = w @ (~pos & pred).astype(float)
    tn = w @ (~pos & ~pred).astype(float)
    n = tp + fn + fp + tn
    recall = _safe_divide(tp, tp + fn)
    specificity = _safe_divide(tn, tn + fp)
    return {
        "auc": _weighted_auc(y, p, w),
        "accuracy": _safe_divide(tp + tn, n),
        "balanced_accuracy": (recall + specificity) / 2.0,
        "specificity": specificity,
        "npv": _safe_divide(tn, tn + fn),
        "precision": _safe_divide(tp, tp + fp),
        "recall": recall,
        "f1": _safe_divide(2.0 * tp, 2.0 * tp + fp + fn),
    }


def _check_threshold(threshold: float) -> None:
    if not (np.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise ValueError(f"threshold must be a probability in [0, 1], got {threshold!r}")


def binary_metrics(y_true: Any, y_prob: Any, threshold: float = 0.5) -> dict[str, float]:
    """The paper's binary metrics at a fixed threshold.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, each 0 or 1 (1 = the positive class, e.g. poor prognosis).
    y_prob : array-like of shape (n_samples,)
        Predicted probability of class 1, in ``[0, 1]``.
    threshold : float, default=0.5
        A sample is predicted positive when ``y_prob >= threshold`` (the paper used 0.5).

    Returns
    -------
    dict of str to float
        Exactly the keys of :data:`BINARY_METRICS`:

        * ``auc``: area under the ROC curve (Mann-Whitney, ties count one half);
        * ``accuracy``: ``(TP + TN) / n``;
        * ``balanced_accuracy``: ``(recall + specificity) / 2``;
        * ``specificity``: ``TN / (TN + FP)``;
        * ``npv``: negative predictive value ``TN / (TN + FN)``;
        * ``precision``: ``TP / (TP + FP)``;
        * ``recall``: sensitivity ``TP / (TP + FN)``;
        * ``f1``: ``2 TP / (2 TP + FP + FN)``.

    Warns
    -----
    UndefinedMetricWarning
        When a metric's denominator is zero, i.e. a true class or a predicted class is absent
        (for example ``auc``, ``balanced_accuracy`` and ``specificity`` when every sample is
        positive, ``precision`` when none is predicted positive). That metric is NaN.

    Raises
    ------
    ValueError
        For empty input, different lengths, labels other than 0/1, or probabilities that are
        NaN or outside ``[0, 1]``; the message names the value and its position.

    Notes
    -----
    Unlike :func:`sklearn.metrics.balanced_accuracy_score`, which averages the recall of the
    classes present, the balanced accuracy here is undefined (NaN) when a true class is absent,
    so that it always means the mean of sensitivity and specificity.

    Examples
    --------
    >>> m = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    >>> m["auc"], m["accuracy"], m["specificity"]
    (0.75, 0.5, 0.5)
    """
    y, p = validate_binary(y_true, y_prob)
    batch = binary_metrics_batch(y, p, np.ones((1, y.shape[0])), threshold=threshold)
    out = {k: float(v[0]) for k, v in batch.items()}
    undefined = [k for k in BINARY_METRICS if np.isnan(out[k])]
    if undefined:
        n_pos = int(y.sum())
        n_pred = int((p >= threshold).sum())
        warn_undefined(
            f"{', '.join(undefined)} undefined (set to NaN): {n_pos} positive and "
            f"{y.shape[0] - n_pos} negative samples, {n_pred} predicted positive and "
            f"{y.shape[0] - n_pred} predicted negative at threshold {threshold}"
        )
    return out


def roc_auc(y_true: Any, y_score: Any) -> float:
    """Area under the ROC curve from the ranks of the scores (Mann-Whitney U).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels, each 0 or 1.
    y_score : array-like of shape (n_samples,)
        Any finite scores; higher means class 1 is more likely. Tied scores count one half.

    Returns
    -------
    float
        The probability that a random positive scores above a random negative; NaN with an
        :class:`UndefinedMetricWarning` when only one class is present.

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    y, s = validate_binary(y_true, y_score, name="y_score", unit_interval=False)
    auc = float(_weighted_auc(y, s, np.ones((1, y.shape[0])))[0])
    if np.isnan(auc):
        warn_undefined(f"AUC undefined (set to NaN): y_true holds only the class {int(y[0])}")
    return auc
