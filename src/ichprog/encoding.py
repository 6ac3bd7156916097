"""Encoders for the clinical targets of the multi-task models.

Plain numpy functions (importable without torch) and scikit-learn transformers that wrap them.

* GCS, binary: 3-8 -> 1 (severe), 9-15 -> 0.
* GCS, ordinal: 13-15 -> 0 (mild), 9-12 -> 1 (moderate), 3-8 -> 2 (severe).
* Age, binary: ``age >= 80`` -> 1.
* Ordinal classes as cumulative binary targets: with 3 classes
  0 -> [0, 0], 1 -> [1, 0], 2 -> [1, 1]; decoded back with one of three rules.

Every function validates its input and raises :class:`ValueError` naming the offending value
and its position; nothing is clipped or dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

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
    "GCSBinaryEncoder",
    "GCSOrdinalEncoder",
    "AgeBinaryEncoder",
    "CumulativeEncoder",
]

GCS_MIN = 3
GCS_MAX = 15
DECODE_RULES = ("count", "first_below", "cumprod")
DecodeRule = Literal["count", "first_below", "cumprod"]


def _describe_position(index: tuple[int, ...] | int) -> str:
    if isinstance(index, tuple) and len(index) == 1:
        index = index[0]
    return f"position {index}"


def _as_float_array(values: Any, name: str) -> np.ndarray:
    """Convert scalars, lists, numpy arrays and pandas Series to a float array."""
    if hasattr(values, "to_numpy"):
        values = values.to_numpy()
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected numbers, got {values!r}") from exc
    return arr


def _first_bad(mask: np.ndarray) -> tuple[int, ...] | int:
    idx = np.argwhere(mask)[0]
    return tuple(int(i) for i in idx) if idx.size else 0


def validate_gcs(gcs: Any) -> np.ndarray:
    """Return GCS values as an integer array, or raise ``ValueError`` for any value outside 3-15,
    non-integer or missing."""
    arr = _as_float_array(gcs, "GCS")
    bad = ~np.isfinite(arr)
    if bad.any():
        pos = _first_bad(bad)
        raise ValueError(
            f"GCS must be an integer from {GCS_MIN} to {GCS_MAX}; got {arr[pos]!r} at "
            f"{_describe_position(pos)}"
        )
    bad = arr != np.round(arr)
    if bad.any():
        pos = _first_bad(bad)
        raise ValueError(
            f"GCS must be an integer from {GCS_MIN} to {GCS_MAX}; got non-integer {arr[pos]!r} "
            f"at {_describe_position(pos)}"
        )
    bad = (arr < GCS_MIN) | (arr > GCS_MAX)
    if bad.any():
        pos = _first_bad(bad)
        raise ValueError(
            f"GCS must be an integer from {GCS_MIN} to {GCS_MAX}; got {arr[pos]:g} at "
            f"{_describe_position(pos)}"
        )
    return arr.astype(np.int64)


def validate_age(age: Any) -> np.ndarray:
    """Return ages as a float array, or raise ``ValueError`` for NaN, infinite or negative ages."""
    arr = _as_float_array(age, "Age")
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        pos = _first_bad(bad)
        raise ValueError(
            f"Age must be a finite, non-negative number of years; got {arr[pos]!r} at "
            f"{_describe_position(pos)}"
        )
    return arr


def gcs_binary(gcs: Any, threshold: int = 8) -> np.ndarray:
    """Binary GCS: 1 (severe) where ``GCS <= threshold`` (default 8), else 0.

    >>> gcs_binary([3, 8, 9, 15]).tolist()
    [1, 1, 0, 0]
    """
    arr = validate_gcs(gcs)
    return (arr <= threshold).astype(np.int64)


def gcs_ordinal(gcs: Any, cutoffs: Sequence[int] = (8, 12)) -> np.ndarray:
    """Ordinal GCS severity: the number of cut-offs at or above the score.

    With the default cut-offs (8, 12): 13-15 -> 0 (mild), 9-12 -> 1 (moderate), 3-8 -> 2 (severe).

    >>> gcs_ordinal([3, 9, 15]).tolist()
    [2, 1, 0]
    """
    cut = np.asarray(sorted(cutoffs), dtype=float)
    if cut.ndim != 1 or cut.size == 0:
        raise ValueError(f"cutoffs must be a non-empty sequence of integers, got {cutoffs!r}")
    arr = validate_gcs(gcs)
    return (arr[..., None] <= cut).sum(axis=-1).astype(np.int64)


def age_binary(age: Any, threshold: float = 80) -> np.ndarray:
    """Binary age: 1 where ``age >= threshold`` (default 80 years), else 0.

    >>> age_binary([79.9, 80, 91]).tolist()
    [0, 1, 1]
    """
    arr = validate_age(age)
    return (arr >= threshold).astype(np.int64)


def cumulative_encode(classes: Any, n_classes: int) -> np.ndarray:
    """Encode ordinal classes ``0..n_classes-1`` as ``n_classes - 1`` cumulative binary targets.

    Output ``j`` is 1 when the class is above ``j``.

    >>> cumulative_encode([0, 1, 2], 3).tolist()
    [[0, 0], [1, 0], [1, 1]]
    """
    if int(n_classes) != n_classes or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    arr = _as_float_array(classes, "classes")
    bad = ~np.isfinite(arr) | (arr != np.round(arr)) | (arr < 0) | (arr > n_classes - 1)
    if bad.any():
        pos = _first_bad(bad)
        raise ValueError(
            f"classes must be integers from 0 to {n_classes - 1}; got {arr[pos]!r} at "
            f"{_describe_position(pos)}"
        )
    k = arr.astype(np.int64)
    return (k[..., None] > np.arange(n_classes - 1)).astype(np.int64)


def _validate_probs(probs: Any) -> np.ndarray:
    arr = _as_float_array(probs, "probabilities")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"probabilities must be an (n_samples, n_outputs) array, got shape {arr.shape}")
    bad = ~np.isfinite(arr) | (arr < 0) | (arr > 1)
    if bad.any():
        pos = _first_bad(bad)
        raise ValueError(f"probabilities must lie in [0, 1]; got {arr[pos]!r} at position {pos}")
    return arr


def cumulative_decode(
    probs: Any, rule: DecodeRule = "count", threshold: float = 0.5
) -> np.ndarray:
    """Decode cumulative probabilities ``(n_samples, n_classes - 1)`` to ordinal classes.

    Rules:

    * ``"count"``: the number of outputs above ``threshold`` (the paper's rule; a non-monotone
      output such as ``[0.2, 0.9]`` decodes to 1).
    * ``"first_below"``: the index of the first output at or below ``threshold`` (monotone by
      construction: ``[0.2, 0.9]`` decodes to 0).
    * ``"cumprod"``: the number of running products of the outputs above ``threshold``
      (``P(y > j)`` taken as ``prod_{i <= j} p_i``).

    >>> cumulative_decode([[0.9, 0.1], [0.2, 0.9]]).tolist()
    [1, 1]
    >>> cumulative_decode([[0.2, 0.9]], rule="first_below").tolist()
    [0]
    """
    p = _validate_probs(probs)
    if rule == "count":
        out = (p > threshold).sum(axis=1)
    elif rule == "first_below":
        above = p > threshold
        out = np.where(above.all(axis=1), p.shape[1], np.argmin(above, axis=1))
    elif rule == "cumprod":
        out = (np.cumprod(p, axis=1) > threshold).sum(axis=1)
    else:
        raise ValueError(f"rule must be one of {DECODE_RULES}, got {rule!r}")
    return np.asarray(out, dtype=np.int64)


def non_monotone_fraction(probs: Any, threshold: float = 0.5) -> float:
    """Fraction of samples whose thresholded cumulative outputs are not of the form 1...10...0.

    Such outputs are decoded differently by the three rules of :func:`cumulative_decode`.
    """
    p = _validate_probs(probs)
    if p.shape[0] == 0:
        return float("nan")
    above = p > threshold
    bad = (np.diff(above.astype(np.int8), axis=1) > 0).any(axis=1)
    return float(bad.mean())


class _ColumnEncoder(TransformerMixin, BaseEstimator):
    """Shared behaviour: stateless, accepts a 1-D array, a column vector or a DataFrame column."""

    def fit(self, X: Any, y: Any = None) -> _ColumnEncoder:
        arr = self._as_2d(X)
        self.n_features_in_ = arr.shape[1]
        return self

    @staticmethod
    def _as_2d(X: Any) -> np.ndarray:
        arr = X.to_numpy() if hasattr(X, "to_numpy") else np.asarray(X)
        if arr.ndim == 1:
            arr = arr[:, None]
        return arr

    def transform(self, X: Any) -> np.ndarray:
        arr = self._as_2d(X)
        cols = [self._encode(arr[:, j]) for j in range(arr.shape[1])]
        return np.column_stack(cols)

    def _encode(self, column: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        n = getattr(self, "n_features_in_", 1)
        names = list(input_features) if input_features is not None else [f"x{i}" for i in range(n)]
        return np.asarray([f"{name}_{self._suffix}" for name in names], dtype=object)

    _suffix = "encoded"


class GCSBinaryEncoder(_ColumnEncoder):
    """scikit-learn transformer for :func:`gcs_binary` (``GCS <= threshold`` -> 1)."""

    _suffix = "bin"

    def __init__(self, threshold: int = 8):
        self.threshold = threshold

    def _encode(self, column: np.ndarray) -> np.ndarray:
        return gcs_binary(column, threshold=self.threshold)


class GCSOrdinalEncoder(_ColumnEncoder):
    """scikit-learn transformer for :func:`gcs_ordinal`; ``cumulative=True`` returns the
    cumulative binary targets instead of the class index."""

    _suffix = "ord"

    def __init__(self, cutoffs: Sequence[int] = (8, 12), cumulative: bool = False):
        self.cutoffs = cutoffs
        self.cumulative = cumulative

    def _encode(self, column: np.ndarray) -> np.ndarray:
        classes = gcs_ordinal(column, cutoffs=self.cutoffs)
        if self.cumulative:
            return cumulative_encode(classes, len(tuple(self.cutoffs)) + 1)
        return classes

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = super().get_feature_names_out(input_features)
        if not self.cumulative:
            return names
        k = len(tuple(self.cutoffs))
        return np.asarray([f"{n}_gt{j}" for n in names for j in range(k)], dtype=object)


class AgeBinaryEncoder(_ColumnEncoder):
    """scikit-learn transformer for :func:`age_binary` (``age >= threshold`` -> 1)."""

    _suffix = "bin"

    def __init__(self, threshold: float = 80):
        self.threshold = threshold

    def _encode(self, column: np.ndarray) -> np.ndarray:
        return age_binary(column, threshold=self.threshold)


class CumulativeEncoder(_ColumnEncoder):
    """scikit-learn transformer for :func:`cumulative_encode` on integer class columns."""

    _suffix = "cum"

    def __init__(self, n_classes: int = 3):
        self.n_classes = n_classes

    def _encode(self, column: np.ndarray) -> np.ndarray:
        return cumulative_encode(column, self.n_classes)
