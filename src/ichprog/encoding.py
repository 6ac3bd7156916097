"""Encoders for the clinical targets of the multi-task models.

Plain numpy functions (importable without torch) and scikit-learn transformers that wrap them.

* GCS, binary: 3-8 -> 1 (severe), 9-15 -> 0.
* GCS, ordinal: 13-15 -> 0 (mild), 9-12 -> 1 (moderate), 3-8 -> 2 (severe).
* Age, binary: ``age >= 80`` -> 1.
* Ordinal classes as cumulative binary targets: with 3 classes
  0 -> [0, 0], 1 -> [1, 0], 2 -> [1, 1]; decoded back with one of three rules.

Every function accepts a scalar, a list, a numpy array or a pandas Series, returns integer
arrays of the same shape, validates its input and raises :class:`ValueError` naming the
offending value and its position (and the Series index label); nothing is clipped or dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from ichprog._validation import as_float_array, check_labels, describe_position, first_bad, fmt
from ichprog.constants import (
    AGE_THRESHOLD,
    GCS_BINARY_THRESHOLD,
    GCS_MAX,
    GCS_MIN,
    GCS_ORDINAL_CUTOFFS,
)

__all__ = [
    "GCS_MIN",
    "GCS_MAX",
    "DECODE_RULES",
    "gcs_binary",
    "gcs_ordinal",
    "age_binary",
    "cumulative_encode",
    "cumulative_decode",
    "non_monotone_fraction",
    "validate_gcs",
    "validate_age",
    "GCSBinaryEncoder",
    "GCSOrdinalEncoder",
    "AgeBinaryEncoder",
    "CumulativeEncoder",
]

#: Rules of :func:`cumulative_decode`.
DECODE_RULES = ("count", "first_below", "cumprod")
DecodeRule = Literal["count", "first_below", "cumprod"]


# -- helpers ------------------------------------------------------------------------------------
def _int_output(arr: np.ndarray) -> np.ndarray:
    return np.asarray(arr, dtype=np.int64)


def validate_gcs(gcs: Any) -> np.ndarray:
    """Check Glasgow Coma Scale scores and return them as integers.

    Parameters
    ----------
    gcs : scalar, list, ndarray or pandas Series
        GCS scores, integers from 3 to 15 (``12.0`` is accepted as 12).

    Returns
    -------
    ndarray of int64
        Same shape as the input.

    Raises
    ------
    ValueError
        For a missing (NaN), infinite, non-integer or out-of-range score, naming the value and
        its position.
    """
    arr = as_float_array(gcs, "GCS")
    checks = (
        (~np.isfinite(arr), "got"),
        (arr != np.round(arr), "got non-integer"),
        ((arr < GCS_MIN) | (arr > GCS_MAX), "got"),
    )
    for bad, what in checks:
        if bad.any():
            pos = first_bad(bad)
            raise ValueError(
                f"GCS must be an integer from {GCS_MIN} to {GCS_MAX}; {what} {fmt(arr[pos])} "
                f"at {describe_position(pos, gcs)}"
            )
    return arr.astype(np.int64)


def validate_age(age: Any) -> np.ndarray:
    """Check ages in years and return them as floats.

    Parameters
    ----------
    age : scalar, list, ndarray or pandas Series
        Ages in years, finite and non-negative.

    Returns
    -------
    ndarray of float64
        Same shape as the input.

    Raises
    ------
    ValueError
        For a missing (NaN), infinite or negative age, naming the value and its position.
    """
    arr = as_float_array(age, "Age")
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        pos = first_bad(bad)
        raise ValueError(
            f"Age must be a finite, non-negative number of years; got {fmt(arr[pos])} at "
            f"{describe_position(pos, age)}"
        )
    return arr


def _check_finite_param(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


# -- GCS and age --------------------------------------------------------------------------------
def gcs_binary(gcs: Any, threshold: int = GCS_BINARY_THRESHOLD) -> np.ndarray:
    """Binary GCS: 1 (severe) where ``GCS <= threshold``, else 0.

    Parameters
    ----------
    gcs : scalar, list, ndarray or pandas Series
        GCS scores, integers from 3 to 15.
    threshold : int, default=8
        Highest score counted as severe (the paper's cut-off is 8).

    Returns
    -------
    ndarray of int64
        0 or 1, same shape as the input.

    Raises
    ------
    ValueError
        For a score outside 3-15, non-integer or missing (see :func:`validate_gcs`).

    Examples
    --------
    >>> gcs_binary([3, 8, 9, 15]).tolist()
    [1, 1, 0, 0]
    """
    t = _check_finite_param(threshold, "threshold")
    arr = validate_gcs(gcs)
    return _int_output(arr <= t)


def gcs_ordinal(gcs: Any, cutoffs: Sequence[int] = GCS_ORDINAL_CUTOFFS) -> np.ndarray:
    """Ordinal GCS severity: the number of cut-offs at or above the score.

    Parameters
    ----------
    gcs : scalar, list, ndarray or pandas Series
        GCS scores, integers from 3 to 15.
    cutoffs : sequence of int, default=(8, 12)
        Upper ends of the classes; with the default, 13-15 -> 0 (mild), 9-12 -> 1 (moderate),
        3-8 -> 2 (severe). The order given does not matter; they must be distinct.

    Returns
    -------
    ndarray of int64
        Classes ``0 .. len(cutoffs)``, same shape as the input.

    Examples
    --------
    >>> gcs_ordinal([3, 9, 15]).tolist()
    [2, 1, 0]
    """
    try:
        cut = np.asarray(sorted(float(c) for c in cutoffs), dtype=float)
    except (TypeError, ValueError):
        raise ValueError(
            f"cutoffs must be a non-empty sequence of numbers, got {cutoffs!r}"
        ) from None
    if cut.size == 0 or not np.all(np.isfinite(cut)):
        raise ValueError(f"cutoffs must be a non-empty sequence of finite numbers, got {cutoffs!r}")
    if np.unique(cut).size != cut.size:
        raise ValueError(f"cutoffs must be distinct, got {cutoffs!r}")
    arr = validate_gcs(gcs)
    return _int_output((arr[..., None] <= cut).sum(axis=-1))


def age_binary(age: Any, threshold: float = AGE_THRESHOLD) -> np.ndarray:
    """Binary age: 1 where ``age >= threshold``, else 0.

    Parameters
    ----------
    age : scalar, list, ndarray or pandas Series
        Ages in years, finite and non-negative.
    threshold : float, default=80
        Youngest age in class 1 (the paper's cut-off is 80 years).

    Returns
    -------
    ndarray of int64
        0 or 1, same shape as the input.

    Examples
    --------
    >>> age_binary([79.9, 80, 91]).tolist()
    [0, 1, 1]
    """
    t = _check_finite_param(threshold, "threshold")
    arr = validate_age(age)
    return _int_output(arr >= t)


# -- cumulative (ordinal) targets -----------------------------------------------------------------
def _check_n_classes(n_classes: Any) -> int:
    try:
        ok = int(n_classes) == n_classes and n_classes >= 2
    except (TypeError, ValueError):
        ok = False
    if not ok or isinstance(n_classes, bool):
        raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    return int(n_classes)


def cumulative_encode(classes: Any, n_classes: int) -> np.ndarray:
    """Encode ordinal classes as ``n_classes - 1`` cumulative binary targets.

    Output ``j`` is 1 when the class is above ``j``: with 3 classes 0 -> [0, 0], 1 -> [1, 0],
    2 -> [1, 1].

    Parameters
    ----------
    classes : scalar, list, ndarray or pandas Series
        Integer classes from 0 to ``n_classes - 1``.
    n_classes : int
        Number of classes, at least 2.

    Returns
    -------
    ndarray of int64, shape ``classes.shape + (n_classes - 1,)``

    Examples
    --------
    >>> cumulative_encode([0, 1, 2], 3).tolist()
    [[0, 0], [1, 0], [1, 1]]
    """
    k = _check_n_classes(n_classes)
    arr = as_float_array(classes, "classes")
    cls = check_labels(arr, classes, f"classes must be integers from 0 to {k - 1}; got {{value}} "
                       "at {where}", n_classes=k)
    return _int_output(cls[..., None] > np.arange(k - 1))


def _validate_probs(probs: Any) -> np.ndarray:
    arr = as_float_array(probs, "probabilities")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(
            f"probabilities must be an (n_samples, n_outputs) array with n_outputs >= 1, "
            f"got shape {arr.shape}"
        )
    bad = ~np.isfinite(arr) | (arr < 0) | (arr > 1)
    if bad.any():
        r, c = first_bad(bad)  # type: ignore[misc]
        raise ValueError(
            f"probabilities must lie in [0, 1]; got {fmt(arr[r, c])} at row {r}, output {c}"
        )
    return arr


def _check_threshold(threshold: Any) -> float:
    t = _check_finite_param(threshold, "threshold")
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold!r}")
    return t


def cumulative_decode(
    probs: Any, rule: DecodeRule = "count", threshold: float = 0.5
) -> np.ndarray:
    """Decode cumulative probabilities ``(n_samples, n_classes - 1)`` to ordinal classes.

    Parameters
    ----------
    probs : array-like of shape (n_samples, n_classes - 1)
        ``probs[i, j]`` estimates ``P(y_i > j)``. A 1-D array is one output per sample.
    rule : {"count", "first_below", "cumprod"}, default="count"
        * ``"count"``: the number of outputs above ``threshold`` (the paper's rule; a
          non-monotone output such as ``[0.2, 0.9]`` decodes to 1).
        * ``"first_below"``: the index of the first output at or below ``threshold``
          (``[0.2, 0.9]`` decodes to 0).
        * ``"cumprod"``: the number of running products ``prod_{i <= j} p_i`` above
          ``threshold`` (each output read as conditional on the previous ones).
    threshold : float, default=0.5
        Decision threshold in ``[0, 1]``.

    Returns
    -------
    ndarray of int64, shape (n_samples,)
        Classes ``0 .. n_classes - 1``. The three rules agree on monotone outputs (see
        :func:`non_monotone_fraction`) except ``"cumprod"``, which may decode lower.

    Examples
    --------
    >>> cumulative_decode([[0.9, 0.1], [0.2, 0.9]]).tolist()
    [1, 1]
    >>> cumulative_decode([[0.2, 0.9]], rule="first_below").tolist()
    [0]
    """
    if rule not in DECODE_RULES:
        raise ValueError(f"rule must be one of {DECODE_RULES}, got {rule!r}")
    t = _check_threshold(threshold)
    p = _validate_probs(probs)
    if rule == "count":
        out = (p > t).sum(axis=1)
    elif rule == "first_below":
        above = p > t
        out = np.where(above.all(axis=1), p.shape[1], np.argmin(above, axis=1))
    else:
        out = (np.cumprod(p, axis=1) > t).sum(axis=1)
    return _int_output(out)


def non_monotone_fraction(probs: Any, threshold: float = 0.5) -> float:
    """Fraction of samples whose thresholded cumulative outputs are not of the form 1...10...0.

    Such outputs (e.g. ``[0.2, 0.9]``) are decoded differently by the rules of
    :func:`cumulative_decode`; report this fraction next to ordinal results.

    Parameters
    ----------
    probs : array-like of shape (n_samples, n_classes - 1)
        Cumulative probabilities.
    threshold : float, default=0.5
        Decision threshold in ``[0, 1]``.

    Returns
    -------
    float
        In ``[0, 1]``; NaN for zero samples.

    Examples
    --------
    >>> non_monotone_fraction([[0.9, 0.1], [0.2, 0.9]])
    0.5
    """
    t = _check_threshold(threshold)
    p = _validate_probs(probs)
    if p.shape[0] == 0:
        return float("nan")
    above = p > t
    bad = (np.diff(above.astype(np.int8), axis=1) > 0).any(axis=1)
    return float(bad.mean())


# -- scikit-learn transformers ------------------------------------------------------------------
class _ColumnEncoder(TransformerMixin, BaseEstimator):
    """Shared behaviour: stateless, accepts a 1-D array, a 2-D array or a DataFrame; every
    column is encoded on its own."""

    _suffix = "encoded"

    def fit(self, X: Any, y: Any = None) -> _ColumnEncoder:
        """Validate ``X`` and record the number (and names) of its columns.

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, n_features), or DataFrame
            Raw values.
        y : ignored

        Returns
        -------
        self
        """
        arr = self._as_2d(X)
        self.n_features_in_ = arr.shape[1]
        columns = getattr(X, "columns", None)
        if columns is not None and all(isinstance(c, str) for c in columns):
            self.feature_names_in_ = np.asarray(list(columns), dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self._encode_all(arr, X)
        return self

    @staticmethod
    def _as_2d(X: Any) -> np.ndarray:
        arr = X.to_numpy() if hasattr(X, "to_numpy") else np.asarray(X)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise ValueError(f"expected a 1-D or 2-D input, got shape {arr.shape}")
        return arr

    def _column_name(self, X: Any, j: int) -> str:
        columns = getattr(X, "columns", None)
        if columns is not None:
            return repr(columns[j])
        if isinstance(getattr(X, "name", None), str):
            return repr(X.name)
        return str(j)

    def _encode_all(self, arr: np.ndarray, X: Any) -> np.ndarray:
        cols = []
        for j in range(arr.shape[1]):
            try:
                cols.append(self._encode(arr[:, j]))
            except ValueError as exc:
                raise ValueError(f"column {self._column_name(X, j)}: {exc}") from exc
        return np.column_stack(cols).astype(np.int64)

    def transform(self, X: Any) -> np.ndarray:
        """Encode every column of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, n_features), or DataFrame
            Raw values.

        Returns
        -------
        ndarray of int64, shape (n_samples, n_features_out)
        """
        arr = self._as_2d(X)
        n_in = getattr(self, "n_features_in_", None)
        if n_in is not None and arr.shape[1] != n_in:
            raise ValueError(
                f"{type(self).__name__} was fitted on {n_in} column(s), got {arr.shape[1]}"
            )
        return self._encode_all(arr, X)

    def _encode(self, column: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _output_suffixes(self) -> list[str]:
        return [self._suffix]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns, e.g. ``GCS_bin`` or ``GCS_gt0, GCS_gt1``.

        Parameters
        ----------
        input_features : sequence of str, optional
            Input column names; default the names seen in :meth:`fit`, else ``x0, x1, ...``.

        Returns
        -------
        ndarray of str objects
        """
        n = getattr(self, "n_features_in_", 1)
        if input_features is None:
            names = list(getattr(self, "feature_names_in_", [f"x{i}" for i in range(n)]))
        else:
            names = [str(f) for f in input_features]
            if hasattr(self, "n_features_in_") and len(names) != n:
                raise ValueError(f"input_features has {len(names)} names, expected {n}")
        return np.asarray(
            [f"{name}_{suffix}" for name in names for suffix in self._output_suffixes()],
            dtype=object,
        )

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


class GCSBinaryEncoder(_ColumnEncoder):
    """scikit-learn transformer for :func:`gcs_binary` (``GCS <= threshold`` -> 1).

    Parameters
    ----------
    threshold : int, default=8
        Highest score counted as severe.

    Examples
    --------
    >>> GCSBinaryEncoder().fit_transform([[3], [15]]).ravel().tolist()
    [1, 0]
    """

    _suffix = "bin"

    def __init__(self, threshold: int = GCS_BINARY_THRESHOLD):
        self.threshold = threshold

    def _encode(self, column: np.ndarray) -> np.ndarray:
        return gcs_binary(column, threshold=self.threshold)


class GCSOrdinalEncoder(_ColumnEncoder):
    """scikit-learn transformer for :func:`gcs_ordinal`.

    Parameters
    ----------
    cutoffs : sequence of int, default=(8, 12)
        See :func:`gcs_ordinal`.
    cumulative : bool, default=False
        Return the cumulative binary targets (:func:`cumulative_encode`, ``len(cutoffs)``
        columns per input column) instead of the class index.

    Examples
    --------
    >>> GCSOrdinalEncoder(cumulative=True).fit_transform([[3], [10], [15]]).tolist()
    [[1, 1], [1, 0], [0, 0]]
    """

    _suffix = "ord"

    def __init__(self, cutoffs: Sequence[int] = GCS_ORDINAL_CUTOFFS, cumulative: bool = False):
        self.cutoffs = cutoffs
        self.cumulative = cumulative

    def _encode(self, column: np.ndarray) -> np.ndarray:
        classes = gcs_ordinal(column, cutoffs=self.cutoffs)
        if self.cumulative:
            return cumulative_encode(classes, len(tuple(self.cutoffs)) + 1)
        return classes

    def _output_suffixes(self) -> list[str]:
        if not self.cumulative:
            return [self._suffix]
        return [f"gt{j}" for j in range(len(tuple(self.cutoffs)))]


class AgeBinaryEncoder(_ColumnEncoder):
    """scikit-learn transformer for :func:`age_binary` (``age >= threshold`` -> 1).

    Parameters
    ----------
    threshold : float, default=80
        Youngest age in class 1.

    Examples
    --------
    >>> AgeBinaryEncoder().fit_transform([[79], [80]]).ravel().tolist()
    [0, 1]
    """

    _suffix = "bin"

    def __init__(self, threshold: float = AGE_THRESHOLD):
        self.threshold = threshold

    def _encode(self, column: np.ndarray) -> np.ndarray:
        return age_binary(column, threshold=self.threshold)


class CumulativeEncoder(_ColumnEncoder):
    """scikit-learn transformer for :func:`cumulative_encode` on integer class columns.

    Parameters
    ----------
    n_classes : int, default=3
        Number of classes; each input column gives ``n_classes - 1`` output columns.

    Examples
    --------
    >>> CumulativeEncoder(3).fit_transform([[0], [2]]).tolist()
    [[0, 0], [1, 1]]
    """

    _suffix = "cum"

    def __init__(self, n_classes: int = 3):
        self.n_classes = n_classes

    def _encode(self, column: np.ndarray) -> np.ndarray:
        return cumulative_encode(column, self.n_classes)

    def _output_suffixes(self) -> list[str]:
        return [f"gt{j}" for j in range(_check_n_classes(self.n_classes) - 1)]
