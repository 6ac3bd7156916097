"""Ordinal classification metrics: MAE, RMSE, quadratic weighted kappa, OCI and A_UOC.

Every metric here is a function of the confusion matrix (rows = true class, columns = predicted
class, both in the order of ``labels``), so a bootstrap can build the matrices of all resamples
at once and evaluate them with :func:`ordinal_metrics_from_confusion`.

The Ordinal Classification Index (OCI) of Cardoso & Sousa (2011)
------------------------------------------------------------------
Let ``n_rc`` be the confusion matrix, ``N`` its total and ``K`` the number of classes. A
*consistent path* goes from the cell ``(0, 0)`` to ``(K-1, K-1)`` moving one cell right, down or
diagonally down-right at each step, so it never pairs two samples in reversed order. For such a
path with benefit ``B = sum_path n_rc`` and penalty ``P = sum_path n_rc |r - c|^gamma``,

``OC = 1 - B / (N + (sum_all n_rc |r - c|^gamma)^(1/gamma)) + beta * P``

with ``beta = beta_1 / (N (K - 1)^gamma)``, and OCI is the minimum of ``OC`` over all consistent
paths (a dynamic programme over the matrix). ``gamma = 1`` and ``beta_1 = 0.75`` are the values
the authors recommend; 0 is perfect, 1 the worst.

The uniform OCI (UOC) and A_UOC of Silva, Pinto & Cardoso (IJCNN 2018)
-----------------------------------------------------------------------
UOC applies the same path criterion to the *row-normalised* matrix (each true class weighs the
same, whatever its size; a class without samples keeps a zero row), scaled to a total of 1, with
``gamma = 1`` and the penalty weight ``beta`` taken directly from ``[0, 1]``. ``A_UOC`` is the
area under the curve ``beta -> UOC(beta)`` over ``[0, 1]``. That curve is the minimum of one line
per path, hence concave and piecewise linear; it is integrated exactly by locating its
breakpoints (each probe is one dynamic programme). This scaling reproduces the published values
of Silva et al., e.g. ``A_UOC = 5/9 = 0.5556`` for ``[[0,4,0,0],[0,0,6,0],[0,0,5,0],[0,0,0,3]]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ichprog._validation import check_labels
from ichprog.constants import ORDINAL_METRICS
from ichprog.metrics._validation import as_1d, first_index, warn_undefined

__all__ = [
    "ORDINAL_METRICS",
    "ordinal_metrics",
    "ordinal_metrics_from_confusion",
    "ordinal_confusion_matrix",
    "oci",
    "oci_from_confusion",
    "uoc_index",
    "uoc_from_confusion",
    "uoc_index_from_confusion",
    "quadratic_weighted_kappa",
]

_TOL = 1e-12


# -- input --------------------------------------------------------------------------------------
def _validate_classes(values: Any, name: str) -> np.ndarray:
    return check_labels(as_1d(values, name), values,
                        f"{name} must hold integer class labels; got {{value}} at {{where}}",
                        nonfinite_message=f"{name} must hold class labels; got {{value}} at "
                                          "{where}")


def _resolve_labels(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[int] | None
) -> np.ndarray:
    if labels is None:
        return np.unique(np.concatenate([y_true, y_pred]))
    lab = _validate_classes(list(labels), "labels")
    if lab.size == 0:
        raise ValueError("labels must name at least one class")
    if np.unique(lab).size != lab.size:
        raise ValueError(f"labels must be unique, got {list(labels)!r}")
    for arr, name in ((y_true, "y_true"), (y_pred, "y_pred")):
        bad = ~np.isin(arr, lab)
        if bad.any():
            pos = first_index(bad)
            raise ValueError(
                f"{name} holds the class {arr[pos]} at position {pos}, which is not in "
                f"labels={lab.tolist()}"
            )
    return lab


def _prepare(
    y_true: Any, y_pred: Any, labels: Sequence[int] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = _validate_classes(y_true, "y_true")
    p = _validate_classes(y_pred, "y_pred")
    if t.shape[0] != p.shape[0]:
        raise ValueError(
            f"y_true and y_pred must have the same length, got {t.shape[0]} and {p.shape[0]}"
        )
    if t.shape[0] == 0:
        raise ValueError("y_true and y_pred are empty: metrics need at least one sample")
    return t, p, _resolve_labels(t, p, labels)


def ordinal_confusion_matrix(
    y_true: Any, y_pred: Any, labels: Sequence[int] | None = None
) -> np.ndarray:
    """Confusion matrix with rows = true class and columns = predicted class.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Integer class labels.
    labels : sequence of int, optional
        The classes in their ordinal order. Defaults to the sorted classes seen in ``y_true``
        or ``y_pred``; pass all classes so that a class absent from the data keeps its row
        and column (see :func:`ordinal_metrics`).

    Returns
    -------
    ndarray of int64, shape (n_labels, n_labels)
    """
    t, p, lab = _prepare(y_true, y_pred, labels)
    return _confusion(t, p, lab)


def _class_index(values: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """Position of every value in ``lab`` (all values are known to be in ``lab``)."""
    sorter = np.argsort(lab, kind="stable")
    return sorter[np.searchsorted(lab, values, sorter=sorter)]


def _confusion(t: np.ndarray, p: np.ndarray, lab: np.ndarray) -> np.ndarray:
    k = lab.size
    codes = _class_index(t, lab) * k + _class_index(p, lab)
    return np.bincount(codes, minlength=k * k).reshape(k, k)


def _check_confusion(cm: Any) -> np.ndarray:
    m = np.asarray(cm, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(f"a confusion matrix must be square and non-empty, got shape {m.shape}")
    if not np.all(np.isfinite(m)) or (m < 0).any():
        raise ValueError("a confusion matrix must hold finite, non-negative counts")
    if m.sum() <= 0:
        raise ValueError("the confusion matrix is all zeros: metrics need at least one sample")
    return m


# -- the path criterion shared by OCI and UOC -----------------------------------------------------
def _best_path(
    weights: np.ndarray, dist: np.ndarray, beta: float, denom: float
) -> tuple[float, float]:
    """Consistent path minimising ``sum_path w (beta * dist - 1 / denom)``.

    Returns the path's benefit ``B = sum_path w`` and penalty ``P = sum_path w * dist``.
    Ties are broken towards the smaller penalty.
    """
    k = weights.shape[0]
    cost = weights * (beta * dist - 1.0 / denom)
    best = np.full((k, k), np.inf)
    ben = np.zeros((k, k))
    pen = np.zeros((k, k))
    for r in range(k):
        for c in range(k):
            if r == 0 and c == 0:
                prev_cost, prev_b, prev_p = 0.0, 0.0, 0.0
            else:
                options = []
                if r > 0:
                    options.append((best[r - 1, c], pen[r - 1, c], ben[r - 1, c]))
                if c > 0:
                    options.append((best[r, c - 1], pen[r, c - 1], ben[r, c - 1]))
                if r > 0 and c > 0:
                    options.append((best[r - 1, c - 1], pen[r - 1, c - 1], ben[r - 1, c - 1]))
                min_cost = min(o[0] for o in options)
                prev_cost, prev_p, prev_b = min(
                    (o for o in options if o[0] <= min_cost + _TOL), key=lambda o: o[1]
                )
            best[r, c] = prev_cost + cost[r, c]
            ben[r, c] = prev_b + weights[r, c]
            pen[r, c] = prev_p + weights[r, c] * dist[r, c]
    return float(ben[-1, -1]), float(pen[-1, -1])


def _path_setup(m: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Normalise to a total of 1 and return ``(weights, |r - c|^gamma, denominator)``."""
    k = m.shape[0]
    w = m / m.sum()
    idx = np.arange(k)
    dist = np.abs(idx[:, None] - idx[None, :]).astype(float) ** gamma
    denom = 1.0 + float((w * dist).sum()) ** (1.0 / gamma)
    return w, dist, denom


def oci_from_confusion(cm: Any, beta: float = 0.75, gamma: float = 1.0) -> float:
    """Ordinal Classification Index of a confusion matrix (Cardoso & Sousa, 2011).

    Parameters
    ----------
    cm : array-like of shape (K, K)
        Counts, rows = true class, columns = predicted class, classes in ordinal order.
    beta : float, default=0.75
        The penalty weight ``beta_1``; the criterion uses ``beta_1 / (N (K - 1)^gamma)``.
    gamma : float, default=1.0
        Exponent of the class distance ``|r - c|``.

    Returns
    -------
    float
        OCI in ``[0, 1]``-ish, lower is better, 0 for a diagonal matrix.

    Examples
    --------
    >>> round(oci_from_confusion([[0, 4, 0], [0, 0, 6], [0, 0, 3]]), 4)
    0.7232
    """
    m = _check_confusion(cm)
    if not (np.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    if not (np.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a finite number > 0, got {gamma!r}")
    k = m.shape[0]
    w, dist, denom = _path_setup(m, gamma)
    beta_eff = beta / (k - 1) ** gamma if k > 1 else 0.0
    b, p = _best_path(w, dist, beta_eff, denom)
    return 1.0 - b / denom + beta_eff * p


def _uoc_setup(cm: Any) -> tuple[np.ndarray, np.ndarray, float]:
    m = _check_confusion(cm)
    rows = m.sum(axis=1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    return _path_setup(norm, 1.0)


def uoc_from_confusion(cm: Any, beta: float) -> float:
    """Uniform ordinal classification index ``UOC(beta)`` of a confusion matrix.

    Parameters
    ----------
    cm : array-like of shape (K, K)
        Counts, rows = true class. Each row is normalised to sum to one before the path search,
        so that every true class weighs the same (rows without samples stay zero).
    beta : float
        Penalty weight in ``[0, 1]``.

    Returns
    -------
    float
        Lower is better; 0 for a diagonal matrix.

    Examples
    --------
    >>> round(uoc_from_confusion([[0, 4, 0, 0], [0, 0, 6, 0], [0, 0, 5, 0], [0, 0, 0, 3]], 0.25), 4)
    0.4583
    """
    if not (np.isfinite(beta) and 0.0 <= beta <= 1.0):
        raise ValueError(f"beta must lie in [0, 1], got {beta!r}")
    w, dist, denom = _uoc_setup(cm)
    b, p = _best_path(w, dist, beta, denom)
    return 1.0 - b / denom + beta * p


def _envelope_area(line_at: Callable[[float], tuple[float, float]]) -> float:
    """Exact integral over ``[0, 1]`` of ``min_paths (a + s * beta)`` given an oracle that returns
    the line ``(a, s)`` of an optimal path at ``beta`` (Eisner-Severance breakpoint search)."""

    def value(line: tuple[float, float], x: float) -> float:
        return line[0] + line[1] * x

    def integral(line: tuple[float, float], lo: float, hi: float) -> float:
        return (hi - lo) * (value(line, lo) + value(line, hi)) / 2.0

    Line = tuple[float, float]

    def area(lo: float, llo: Line, hi: float, lhi: Line, depth: int) -> float:
        if abs(llo[0] - lhi[0]) <= _TOL and abs(llo[1] - lhi[1]) <= _TOL:
            return integral(llo, lo, hi)
        if llo[1] - lhi[1] <= _TOL:
            # parallel lines, both optimal at their ends: equal within round-off
            return integral(llo, lo, hi)
        x = (lhi[0] - llo[0]) / (llo[1] - lhi[1])
        x = min(max(x, lo), hi)
        lx = line_at(x)
        if value(lx, x) >= value(llo, x) - 1e-10 or depth > 64:
            return integral(llo, lo, x) + integral(lhi, x, hi)
        return area(lo, llo, x, lx, depth + 1) + area(x, lx, hi, lhi, depth + 1)

    return area(0.0, line_at(0.0), 1.0, line_at(1.0), 0)


def uoc_index_from_confusion(cm: Any) -> float:
    """A_UOC: the area under ``beta -> UOC(beta)`` over ``[0, 1]`` (Silva et al., 2018).

    Parameters
    ----------
    cm : array-like of shape (K, K)
        Counts, rows = true class, columns = predicted class, classes in ordinal order.

    Returns
    -------
    float
        Lower is better; 0 for a diagonal matrix. Scaling a row (a class with more or fewer
        samples, classified the same way) leaves it unchanged.

    Examples
    --------
    >>> round(uoc_index_from_confusion([[0, 4, 0, 0], [0, 0, 6, 0], [0, 0, 5, 0], [0, 0, 0, 3]]), 4)
    0.5556
    """
    w, dist, denom = _uoc_setup(cm)

    def line_at(beta: float) -> tuple[float, float]:
        b, p = _best_path(w, dist, beta, denom)
        return 1.0 - b / denom, p

    return float(_envelope_area(line_at))


def oci(
    y_true: Any,
    y_pred: Any,
    labels: Sequence[int] | None = None,
    beta: float = 0.75,
    gamma: float = 1.0,
) -> float:
    """Ordinal Classification Index (Cardoso & Sousa, 2011) of predicted classes.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Integer class labels.
    labels : sequence of int, optional
        All classes in their ordinal order; defaults to the classes seen. Pass them: a class
        missing from a fold otherwise drops out and changes the distances between the others.
    beta, gamma : float
        See :func:`oci_from_confusion`.

    Returns
    -------
    float
        Lower is better, 0 when every prediction is right.

    Examples
    --------
    >>> oci([0, 1, 2], [0, 1, 2], labels=[0, 1, 2])
    0.0
    """
    return oci_from_confusion(ordinal_confusion_matrix(y_true, y_pred, labels), beta, gamma)


def uoc_index(y_true: Any, y_pred: Any, labels: Sequence[int] | None = None) -> float:
    """A_UOC (Silva, Pinto & Cardoso, IJCNN 2018) of predicted classes: lower is better.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Integer class labels.
    labels : sequence of int, optional
        All classes in their ordinal order; defaults to the classes seen. Pass them: with
        the default, a fold in which a class is neither present nor predicted loses that
        class, and the distance between its neighbours shrinks by one step.

    Returns
    -------
    float
        0 when every prediction is right.

    Examples
    --------
    >>> uoc_index([0, 1, 2, 2], [0, 1, 2, 2], labels=[0, 1, 2])
    0.0
    """
    return uoc_index_from_confusion(ordinal_confusion_matrix(y_true, y_pred, labels))


def quadratic_weighted_kappa(cm: Any) -> float:
    """Cohen's kappa with quadratic weights ``(i - j)^2`` from a confusion matrix.

    Returns NaN (with an :class:`UndefinedMetricWarning`) when the chance disagreement is zero,
    e.g. when every true and predicted class is the same single class.
    """
    m = _check_confusion(cm)
    k = m.shape[0]
    idx = np.arange(k)
    weights = (idx[:, None] - idx[None, :]).astype(float) ** 2
    expected = np.outer(m.sum(axis=1), m.sum(axis=0)) / m.sum()
    den = float((weights * expected).sum())
    if den == 0:
        warn_undefined("quadratic weighted kappa undefined (set to NaN): no chance disagreement")
        return float("nan")
    return 1.0 - float((weights * m).sum()) / den


def ordinal_metrics_from_confusion(
    cm: Any, labels: Sequence[float] | np.ndarray | None = None
) -> dict[str, float]:
    """The metrics of :func:`ordinal_metrics` from a confusion matrix.

    Parameters
    ----------
    cm : array-like of shape (K, K)
        Counts, rows = true class, columns = predicted class, classes in ordinal order.
    labels : sequence of numbers, optional
        The class values, used for MAE and RMSE; default ``0 .. K-1``.

    Returns
    -------
    dict of str to float
        The keys of :data:`ORDINAL_METRICS`.
    """
    m = _check_confusion(cm)
    k = m.shape[0]
    values = np.arange(k, dtype=float) if labels is None else np.asarray(labels, dtype=float)
    if values.shape != (k,):
        raise ValueError(f"labels must have {k} values for a {k} x {k} matrix, got {labels!r}")
    n = m.sum()
    rows = m.sum(axis=1)
    present = rows > 0
    recall = np.diag(m)[present] / rows[present]
    diff = values[:, None] - values[None, :]
    return {
        "accuracy": float(np.trace(m) / n),
        "balanced_accuracy": float(recall.mean()),
        "mae": float((m * np.abs(diff)).sum() / n),
        "rmse": float(np.sqrt((m * diff**2).sum() / n)),
        "uoc": uoc_index_from_confusion(m),
        "qwk": quadratic_weighted_kappa(m),
    }


def ordinal_metrics(
    y_true: Any, y_pred: Any, labels: Sequence[int] | None = None
) -> dict[str, float]:
    """The paper's metrics for an ordinal task (e.g. the three-class GCS).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Integer class labels (true and predicted).
    labels : sequence of int, optional
        All classes in their ordinal order, e.g. ``[0, 1, 2]``. Defaults to the sorted classes
        seen in ``y_true`` or ``y_pred``. **Pass it**: in a cross-validation fold where a class
        is neither present nor predicted, the default drops that class, so its neighbours
        become adjacent and the class distances used by A_UOC and the kappa silently change
        from fold to fold.

    Returns
    -------
    dict of str to float
        Exactly the keys of :data:`ORDINAL_METRICS`:

        * ``accuracy``: fraction of exact predictions;
        * ``balanced_accuracy``: mean recall over the true classes present (as
          :func:`sklearn.metrics.balanced_accuracy_score`);
        * ``mae``: mean absolute error between class values;
        * ``rmse``: root mean squared error, ``sqrt(mean((y_true - y_pred)^2))``;
        * ``uoc``: A_UOC, lower is better (:func:`uoc_index`);
        * ``qwk``: Cohen's kappa with quadratic weights (NaN with a warning when undefined).

    Raises
    ------
    ValueError
        For empty input, different lengths, NaN or non-integer classes, or classes outside
        ``labels``; the message names the value and its position.

    Examples
    --------
    >>> m = ordinal_metrics([0, 1, 2, 2], [0, 2, 2, 1], labels=[0, 1, 2])
    >>> m["accuracy"], m["mae"]
    (0.5, 0.5)
    """
    t, p, lab = _prepare(y_true, y_pred, labels)
    return ordinal_metrics_from_confusion(_confusion(t, p, lab), labels=lab)
