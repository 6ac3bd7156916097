"""Input checks shared by the encoders, the tasks and the metrics (private; numpy only).

Every check raises :class:`ValueError` naming the first offending value as the user typed it
(:func:`fmt`) and its position (:func:`describe_position`, with the index label of a pandas
Series so that the message names the patient).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["as_float_array", "first_bad", "describe_position", "fmt", "check_labels"]


def describe_position(index: tuple[int, ...] | int, values: Any = None) -> str:
    """``"position 3"`` (1-D), ``"position (0, 1)"`` (n-D) or ``"position () of the scalar
    input"``; with a pandas Series the index label is added, e.g.
    ``"position 3 (index 'P012')"``."""
    if isinstance(index, tuple) and len(index) == 1:
        index = index[0]
    if isinstance(index, tuple) and len(index) == 0:
        return "position () of the scalar input"
    text = f"position {index}"
    labels = getattr(values, "index", None)
    if isinstance(index, int) and labels is not None and getattr(values, "ndim", 0) == 1:
        try:
            text += f" (index {labels[index]!r})"
        except (IndexError, TypeError):  # pragma: no cover - exotic index types
            pass
    return text


def fmt(value: Any) -> str:
    """A number as users typed it: ``8.5``, ``nan``, ``20`` (not ``np.float64(20.0)``)."""
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return repr(value)


def as_float_array(values: Any, name: str) -> np.ndarray:
    """Convert scalars, lists, numpy arrays and pandas Series to a float array (any shape).

    Raises ``ValueError`` naming the first element that is not a number.
    """
    raw = values.to_numpy() if hasattr(values, "to_numpy") else values
    try:
        return np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        pass
    obj = np.asarray(raw, dtype=object)
    for pos in np.ndindex(obj.shape):
        try:
            float(obj[pos])
        except (TypeError, ValueError):
            where = describe_position(tuple(int(i) for i in pos), values)
            raise ValueError(f"{name}: expected numbers, got {obj[pos]!r} at {where}") from None
    raise ValueError(f"{name}: expected numbers, got {values!r}")  # pragma: no cover


def first_bad(mask: np.ndarray) -> tuple[int, ...] | int:
    """Index of the first ``True`` in ``mask``: an int for 1-D, a tuple otherwise (``()`` for a
    0-d mask); usable to index the array the mask was computed from."""
    mask = np.asarray(mask)
    if mask.ndim == 0:
        return ()
    idx = np.argwhere(mask)[0]
    if mask.ndim == 1:
        return int(idx[0])
    return tuple(int(i) for i in idx)


def _raise_first(bad: np.ndarray, arr: np.ndarray, values: Any, message: str) -> None:
    if bad.any():
        pos = first_bad(bad)
        raise ValueError(message.format(value=fmt(arr[pos]), where=describe_position(pos, values),
                                        raw=arr[pos], pos=pos))


def check_labels(arr: np.ndarray, values: Any, message: str, *,
                 allowed: Sequence[float] | None = None, n_classes: int | None = None,
                 nonfinite_message: str | None = None) -> np.ndarray:
    """Check class labels and return them as ``int64``.

    Every label must be a finite integer; with ``allowed``, one of those values; with
    ``n_classes``, from 0 to ``n_classes - 1``.

    Parameters
    ----------
    arr
        The labels as floats (from :func:`as_float_array`, or the metrics' one-dimensional
        conversion).
    values
        What the caller was given (a pandas Series adds its index label to the position).
    message
        Error message for the first invalid label, a :meth:`str.format` template with the
        fields ``{value}`` (the label as typed, :func:`fmt`), ``{where}``
        (:func:`describe_position`), ``{raw}`` (the array element) and ``{pos}`` (its index).
    allowed, n_classes
        The valid labels (see above).
    nonfinite_message
        When given, a missing or infinite label is reported first, with this template.
    """
    if nonfinite_message is not None:
        _raise_first(~np.isfinite(arr), arr, values, nonfinite_message)
    bad = ~np.isfinite(arr) | (arr != np.round(arr))
    if allowed is not None:
        bad |= ~np.isin(arr, allowed)
    if n_classes is not None:
        bad |= (arr < 0) | (arr > n_classes - 1)
    _raise_first(bad, arr, values, message)
    return arr.astype(np.int64)
