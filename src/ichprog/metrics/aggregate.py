"""The library's one metrics table format and the paper's "mean ± SD" summary.

A *tidy* metrics table is a :class:`pandas.DataFrame` with exactly the columns
``model, fold, task, metric, value`` (one row per number). :func:`tidy` builds it from the
per-fold metric dictionaries that :func:`~ichprog.metrics.binary_metrics` and
:func:`~ichprog.metrics.ordinal_metrics` return; tables of several models are combined with
:func:`pandas.concat`. :func:`summarize` turns it into the paper's table of ``"mean ± SD"``
strings over folds (through :func:`mean_sd_table`, the one builder of such tables, whose options
the report's :func:`ichprog.report.summary_table` sets differently) and :func:`to_markdown`
prints any table as Markdown.
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

__all__ = ["TIDY_COLUMNS", "tidy", "summary_stats", "summarize", "mean_sd_table", "to_markdown"]

#: Columns of the tidy metrics table, in order.
TIDY_COLUMNS: tuple[str, ...] = ("model", "fold", "task", "metric", "value")


def _as_value(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real | np.number):
        raise ValueError(f"{where}: a metric value must be a real number, got {value!r}")
    return float(value)


def _items(obj: Any, what: str) -> list[tuple[Hashable, Any]]:
    if isinstance(obj, Mapping):
        return list(obj.items())
    if isinstance(obj, Sequence) and not isinstance(obj, str | bytes):
        return list(enumerate(obj))
    raise TypeError(f"{what} must be a mapping or a sequence, got {type(obj).__name__}")


def tidy(
    results: Mapping[Any, Any] | Sequence[Any],
    model: str = "model",
    task: str | None = None,
) -> pd.DataFrame:
    """Build the tidy metrics table from per-fold metric dictionaries.

    Parameters
    ----------
    results : mapping or sequence
        Per fold (a mapping ``fold -> ...`` or a sequence, whose positions are the folds), a
        mapping ``task name -> {metric name: value}``. With ``task`` given, per fold directly
        the metric dictionary ``{metric name: value}``.
    model : str, default="model"
        Name written in the ``model`` column.
    task : str, optional
        Task name when ``results`` holds one metric dictionary per fold.

    Returns
    -------
    pandas.DataFrame
        Columns ``model, fold, task, metric, value`` (see :data:`TIDY_COLUMNS`), rows in the
        order of the input. NaN values (undefined metrics) are kept.

    Raises
    ------
    ValueError
        When a value is not a real number (the message names fold, task and metric).

    Examples
    --------
    >>> per_fold = {0: {"prognosis": {"auc": 0.8}}, 1: {"prognosis": {"auc": 0.7}}}
    >>> tidy(per_fold, model="MT").to_dict("records")[1]
    {'model': 'MT', 'fold': 1, 'task': 'prognosis', 'metric': 'auc', 'value': 0.7}
    """
    rows: list[tuple[str, Any, str, str, float]] = []
    for fold, per_fold in _items(results, "results"):
        per_task = {task: per_fold} if task is not None else per_fold
        if not isinstance(per_task, Mapping):
            raise TypeError(
                f"fold {fold!r}: expected a mapping task -> metric dict, got "
                f"{type(per_task).__name__} (pass task=... for one metric dict per fold)"
            )
        for task_name, metrics in per_task.items():
            if not isinstance(metrics, Mapping):
                raise TypeError(
                    f"fold {fold!r}, task {task_name!r}: expected a mapping metric -> value, "
                    f"got {type(metrics).__name__}"
                )
            for metric, value in metrics.items():
                where = f"model {model!r}, fold {fold!r}, task {task_name!r}, metric {metric!r}"
                value_f = _as_value(value, where)
                rows.append((str(model), fold, str(task_name), str(metric), value_f))
    out = pd.DataFrame(rows, columns=list(TIDY_COLUMNS))
    out["value"] = out["value"].astype(float)
    return out


def _check_tidy(df: pd.DataFrame) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a tidy metrics DataFrame, got {type(df).__name__}")
    missing = [c for c in TIDY_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"not a tidy metrics table: missing column(s) {missing}; expected {list(TIDY_COLUMNS)}"
        )
    dup = df.duplicated(subset=["model", "fold", "task", "metric"], keep=False)
    if dup.any():
        first = df[dup].iloc[0]
        raise ValueError(
            "the tidy metrics table holds the same model, fold, task and metric twice, e.g. "
            f"model {first['model']!r}, fold {first['fold']!r}, task {first['task']!r}, "
            f"metric {first['metric']!r}"
        )


def _stats(tidy_df: pd.DataFrame, skipna: bool) -> pd.DataFrame:
    """:func:`summary_stats` with one more column, ``total``: the number of folds (values,
    NaN included) of each model, task and metric."""
    _check_tidy(tidy_df)
    keys = ["model", "task", "metric"]
    records = []
    for key, group in tidy_df.groupby(keys, sort=False):
        values = group["value"].to_numpy(dtype=float)
        total = values.size
        if skipna:
            values = values[~np.isnan(values)]
        n = values.size
        mean = float(values.mean()) if n else float("nan")
        sd = float(values.std(ddof=1)) if n > 1 else float("nan")
        records.append((*key, mean, sd, n, total))
    return pd.DataFrame(records, columns=[*keys, "mean", "sd", "n", "total"])


def summary_stats(tidy_df: pd.DataFrame, skipna: bool = False) -> pd.DataFrame:
    """Mean, SD (``ddof=1``) and number of folds per model, task and metric.

    Parameters
    ----------
    tidy_df : pandas.DataFrame
        A tidy metrics table (:func:`tidy`).
    skipna : bool, default=False
        Ignore NaN values (undefined metrics of some folds). By default a NaN in any fold makes
        the mean NaN, so that a missing value never goes unnoticed; ``n`` always counts the
        values used.

    Returns
    -------
    pandas.DataFrame
        Columns ``model, task, metric, mean, sd, n``, in order of first appearance.
    """
    return _stats(tidy_df, skipna).drop(columns="total")


def summarize(
    tidy_df: pd.DataFrame,
    columns: Literal["model", "task"] = "model",
    decimals: int = 2,
    skipna: bool = False,
    numeric: bool = False,
) -> pd.DataFrame:
    """The paper's "mean ± SD" table over folds.

    :func:`mean_sd_table` with its default rules, which keep every NaN visible.

    Parameters
    ----------
    tidy_df, columns, decimals, skipna, numeric
        See :func:`mean_sd_table` (``skipna``: see :func:`summary_stats`; ``numeric=True``
        gives, for every column, a ``mean``, ``sd`` and ``n`` sub-column:
        ``table[("MT", "mean")]``, or all means with ``table.xs("mean", axis=1,
        level="stat")``).

    Returns
    -------
    pandas.DataFrame
        Strings ``"mean ± SD"`` (SD with ``ddof=1``; ``nan`` for the SD of a single fold; empty
        where a metric was not measured), rows and columns in order of first appearance. With
        ``numeric=True``, floats as described above; :func:`summary_stats` gives the same
        numbers as a long table.

    Examples
    --------
    >>> df = tidy([{"auc": 0.8}, {"auc": 0.7}], model="MT", task="prognosis")
    >>> summarize(df).loc["auc", "MT"]
    '0.75 ± 0.07'
    >>> round(float(summarize(df, numeric=True).loc["auc", ("MT", "sd")]), 4)
    0.0707
    """
    return mean_sd_table(tidy_df, columns, decimals=decimals, skipna=skipna, numeric=numeric)


def mean_sd_table(
    tidy_df: pd.DataFrame,
    columns: Literal["model", "task"] = "model",
    *,
    decimals: int = 2,
    skipna: bool = False,
    single_sd: bool = True,
    count_defined: bool = False,
    undefined: str = "nan",
    not_measured: str = "",
    numeric: bool = False,
) -> pd.DataFrame:
    """The library's one builder of "mean ± SD" tables over folds, with its rules as options.

    :func:`summarize` calls it with the defaults (every NaN stays visible);
    :func:`ichprog.report.summary_table` with ``skipna=True, single_sd=False,
    count_defined=True, undefined="n/a", not_measured="n/a"`` (a readable report cell).

    Parameters
    ----------
    tidy_df : pandas.DataFrame
        A tidy metrics table (:func:`tidy`).
    columns : {"model", "task"}, default="model"
        What the columns of the table are. The rows are the metrics; when the other of
        model/task takes several values, the rows are indexed by it and the metric.
    decimals : int, default=2
        Decimals of the mean and the SD.
    skipna : bool, default=False
        Average over the folds where the metric is defined (see :func:`summary_stats`);
        otherwise a NaN in any fold makes the cell ``undefined``.
    single_sd : bool, default=True
        Write the SD of a single value too (``"0.80 ± nan"``); ``False`` writes the mean alone.
    count_defined : bool, default=False
        Append ``" (n/total)"`` when the metric was defined on fewer folds than were run (with
        ``skipna=True``).
    undefined : str, default="nan"
        The cell of a metric without any defined value (or with a NaN, without ``skipna``).
    not_measured : str, default=""
        The cell of a metric that a model (or task) has no row for.
    numeric : bool, default=False
        Return the numbers instead (see :func:`summarize`); the text options are ignored.

    Returns
    -------
    pandas.DataFrame
        Rows and columns in order of first appearance.

    Examples
    --------
    >>> df = tidy([{"auc": 0.5}, {"auc": float("nan")}, {"auc": 0.7}], model="m", task="t")
    >>> mean_sd_table(df).loc["auc", "m"]
    'nan'
    >>> mean_sd_table(df, skipna=True, count_defined=True).loc["auc", "m"]
    '0.60 ± 0.14 (2/3)'
    """
    if columns not in ("model", "task"):
        raise ValueError(f"columns must be 'model' or 'task', got {columns!r}")
    stats = _stats(tidy_df, skipna=skipna)
    other = "task" if columns == "model" else "model"
    index = ["metric"] if stats[other].nunique() <= 1 else [other, "metric"]
    col_order = list(dict.fromkeys(stats[columns]))
    row_order = list(dict.fromkeys(map(tuple, stats[index].to_numpy().tolist())))

    def pivot(field: str) -> pd.DataFrame:
        wide = stats.pivot(index=index, columns=columns, values=field)
        if len(index) == 1:
            wide = wide.reindex(index=[r[0] for r in row_order], columns=col_order)
        else:
            wide = wide.reindex(index=pd.MultiIndex.from_tuples(row_order, names=index),
                                columns=col_order)
        wide.columns.name = columns
        return wide

    mean, sd, n, total = pivot("mean"), pivot("sd"), pivot("n"), pivot("total")
    if numeric:
        out = pd.concat({"mean": mean, "sd": sd, "n": n}, axis=1, names=["stat", columns])
        out = out.swaplevel(0, 1, axis=1)
        order = pd.MultiIndex.from_product([col_order, ["mean", "sd", "n"]],
                                           names=[columns, "stat"])
        return out.reindex(columns=order)

    def fmt(m: float, s: float, k: float, t: float) -> str:
        if np.isnan(k):
            return not_measured
        if np.isnan(m):
            return undefined
        text = f"{m:.{decimals}f}"
        if k > 1 or single_sd:
            text += " ± " + ("nan" if np.isnan(s) else f"{s:.{decimals}f}")
        if count_defined and k < t:
            text += f" ({int(k)}/{int(t)})"
        return text

    cells = zip(mean.to_numpy(), sd.to_numpy(), n.to_numpy(dtype=float),
                total.to_numpy(dtype=float))
    return pd.DataFrame([[fmt(*c) for c in zip(*row)] for row in cells], index=mean.index,
                        columns=mean.columns)


def _cell(value: Any, floatfmt: str) -> str:
    if isinstance(value, float | np.floating):
        text = format(float(value), floatfmt)
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame, floatfmt: str = ".4g", index: bool | None = None) -> str:
    """Render a DataFrame as a GitHub-flavoured Markdown table (no ``tabulate`` needed).

    Parameters
    ----------
    df : pandas.DataFrame
        Any table, e.g. the output of :func:`summarize`.
    floatfmt : str, default=".4g"
        Format specification for float cells.
    index : bool, optional
        Write the index as the first column(s). By default it is written unless it is a plain
        ``RangeIndex``.

    Returns
    -------
    str
        The table, one line per row, ending without a newline. Pipes in cells are escaped.

    Examples
    --------
    >>> print(to_markdown(pd.DataFrame({"a": [1.5], "b": ["x"]})))
    | a | b |
    | --- | --- |
    | 1.5 | x |
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"to_markdown expects a pandas DataFrame, got {type(df).__name__}")
    if index is None:
        index = not isinstance(df.index, pd.RangeIndex)
    header: list[str] = []
    body: list[list[str]] = [[] for _ in range(len(df))]
    if index:
        names = [n if n is not None else "" for n in df.index.names]
        header.extend(str(n) for n in names)
        for i, key in enumerate(df.index):
            parts = key if isinstance(key, tuple) else (key,)
            body[i].extend(_cell(k, floatfmt) for k in parts)
    header.extend(_cell(c if not isinstance(c, tuple) else " / ".join(map(str, c)), floatfmt)
                  for c in df.columns)
    for i, row in enumerate(df.itertuples(index=False, name=None)):
        body[i].extend(_cell(v, floatfmt) for v in row)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines.extend("| " + " | ".join(r) + " |" for r in body)
    return "\n".join(lines)
