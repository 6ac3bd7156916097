"""What every result type of the library shares: the one prediction table, the :class:`Result`
protocol and the deprecated call spelling of its table properties.

* The **prediction table** is long: one row per model, fold, patient and task, with the columns
  :data:`~ichprog.constants.PREDICTION_COLUMNS` (``model, fold, PatientID, task, y_true, score,
  pred``), possibly followed by columns of the result's own (``repeat``, ``size``).
  :func:`long_frame` builds one, :func:`check_predictions` checks one and
  :func:`read_predictions` reads one from a file (renaming the patient column of older files).
* Every result type (:class:`~ichprog.experiment.CVResult`,
  :class:`~ichprog.tabular.TabularCVResult`, :class:`~ichprog.tabular.Table1Result`,
  :class:`~ichprog.experiment.AblationResult`, :class:`~ichprog.experiment.ClaimsResult`)
  follows :class:`Result`: the tables are properties, ``summary()``, ``save(out_dir)`` and
  ``load(out_dir)`` are methods.

pandas and numpy only; every layer may import this module.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from ichprog._util import verify_checksum
from ichprog.constants import ID_COLUMN, OLD_ID_COLUMNS, PREDICTION_COLUMNS


@runtime_checkable
class Result(Protocol):
    """The members every result type of the library has.

    ``predictions``
        The per-patient table of the result, in the result's own columns (for an image
        cross-validation one column group per task; :attr:`long_predictions` is the common
        form).
    ``long_predictions``
        The same predictions in the library's one prediction table
        (:data:`~ichprog.constants.PREDICTION_COLUMNS` first).
    ``metrics``
        The tidy metrics table ``model, fold, task, metric, value``
        (:func:`ichprog.metrics.tidy`).
    ``summary()``
        A readable summary table (for cross-validations the "mean ± SD" table).
    ``save(out_dir)``
        Writes the result into a folder and returns the folder as a :class:`~pathlib.Path`.
    ``load(out_dir)``
        A class method that reads back what ``save`` wrote.
    """

    @property
    def predictions(self) -> pd.DataFrame: ...

    @property
    def long_predictions(self) -> pd.DataFrame: ...

    @property
    def metrics(self) -> pd.DataFrame: ...

    def summary(self) -> pd.DataFrame: ...

    def save(self, out_dir: str | os.PathLike[str]) -> Path: ...

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> Any: ...


class _CallableFrame(pd.DataFrame):
    """A table property's value that can still be called as the method it was: the call warns
    (:class:`DeprecationWarning`, with the text given) and returns a plain copy."""

    _metadata = ["_call_warning"]
    _call_warning: str = "this call is deprecated"

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame

    def __call__(self) -> pd.DataFrame:
        warnings.warn(self._call_warning, DeprecationWarning, stacklevel=2)
        return pd.DataFrame(self, copy=True)


def table_property_value(table: pd.DataFrame, name: str) -> pd.DataFrame:
    """``table`` as the value of the property ``name`` (e.g. ``"CVResult.metrics"``) that used
    to be a method: ``result.metrics`` is the table, and the old spelling ``result.metrics()``
    still works with a :class:`DeprecationWarning`."""
    frame = _CallableFrame(table)
    frame._call_warning = (f"{name}() is deprecated and will be removed in version 0.3: "
                           f"{name} is a property, use it without the call")
    return frame


def _rename_old_ids(df: pd.DataFrame) -> pd.DataFrame:
    if ID_COLUMN in df.columns:
        return df
    old = [c for c in OLD_ID_COLUMNS if c in df.columns]
    return df.rename(columns={old[0]: ID_COLUMN}) if old else df


def check_predictions(df: pd.DataFrame, source: str = "predictions") -> pd.DataFrame:
    """Check a long prediction table and return it with the patient column named
    ``PatientID`` (read from ``id`` or ``patient`` in older tables) and holding strings.

    Raises
    ------
    ValueError
        A column of :data:`~ichprog.constants.PREDICTION_COLUMNS` is missing, or ``y_true`` holds
        a missing value (the message names ``source``, the column and the row's patient).
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{source}: expected a DataFrame, got {type(df).__name__}")
    df = _rename_old_ids(df)
    missing = [c for c in PREDICTION_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: not a prediction table, missing column(s) {missing}; "
                         f"expected {list(PREDICTION_COLUMNS)}")
    bad = df["y_true"].isna().to_numpy()
    if bad.any():
        row = df.loc[bad].iloc[0]
        raise ValueError(f"{source}: y_true is missing for patient {row[ID_COLUMN]!r} (model "
                         f"{row['model']!r}, task {row['task']!r})")
    out = df.copy()
    out[ID_COLUMN] = out[ID_COLUMN].astype(str)
    return out


def read_predictions(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a long prediction table from a CSV file (see :func:`check_predictions`)."""
    p = Path(path)
    verify_checksum(p)  # against the record written with it, when there is one
    df = pd.read_csv(p, dtype={ID_COLUMN: str, **{c: str for c in OLD_ID_COLUMNS}})
    return check_predictions(df, source=str(p))


def long_frame(model: Any, fold: Any, ids: Iterable[Any], task: str, y_true: Any, score: Any,
               pred: Any) -> pd.DataFrame:
    """One task's predictions as a long table (columns
    :data:`~ichprog.constants.PREDICTION_COLUMNS`); ``model`` and ``fold`` may be one value or
    one per row."""
    y = np.asarray(y_true)
    if y.dtype.kind == "f" and np.isfinite(y).all() and (y == np.round(y)).all():
        y = y.astype(int)  # classes read back from a file with a missing value elsewhere
    return pd.DataFrame({
        "model": model,
        "fold": fold,
        ID_COLUMN: [str(i) for i in ids],
        "task": task,
        "y_true": y,
        "score": np.asarray(score, dtype=float),
        "pred": np.asarray(pred),
    }, columns=list(PREDICTION_COLUMNS))
