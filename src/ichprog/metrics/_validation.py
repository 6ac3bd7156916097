"""Input checks shared by the metric functions (private)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ichprog._validation import describe_position, fmt

__all__ = ["UndefinedMetricWarning", "as_1d", "first_index", "fmt", "position",
           "warn_undefined"]


class UndefinedMetricWarning(UserWarning):
    """Warning raised when a metric is undefined for the given data and returned as NaN.

    Examples are the AUC when only one class is present, or the precision when no sample is
    predicted positive. Silence it with :func:`warnings.simplefilter` if NaN is expected.
    """


def warn_undefined(message: str, stacklevel: int = 3) -> None:
    """Emit an :class:`UndefinedMetricWarning`."""
    warnings.warn(message, UndefinedMetricWarning, stacklevel=stacklevel)


def as_1d(values: Any, name: str) -> np.ndarray:
    """Convert lists, numpy arrays and pandas Series to a 1-D float array.

    A column vector ``(n, 1)`` is accepted and flattened; any other shape raises ``ValueError``.
    """
    if hasattr(values, "to_numpy"):
        values = values.to_numpy()
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected numbers, got {values!r}") from exc
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got an array of shape {arr.shape}")
    return arr


def position(values: Any, pos: int) -> str:
    """``"position 3"``, with the index label when ``values`` is a pandas Series
    (``"position 3 (index 'P012')"``), so that errors name the patient."""
    return describe_position(int(pos), values)


def first_index(mask: np.ndarray) -> int:
    """Position of the first ``True`` in a 1-D boolean array."""
    return int(np.flatnonzero(mask)[0])
