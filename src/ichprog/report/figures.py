"""Tables and figures of a report, built from the library's tidy metrics table and predictions.

Every function takes plain data (the tidy ``model, fold, task, metric, value`` table of
:mod:`ichprog.metrics`, arrays of labels and scores, per-epoch histories) and returns a
:class:`pandas.DataFrame` or a :class:`matplotlib.figure.Figure`; nothing here trains or reads
files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ichprog.metrics import TIDY_COLUMNS
from ichprog.report.paper import METRIC_LABELS

__all__ = [
    "summary_table",
    "interval_table",
    "roc_figure",
    "confusion_figure",
    "training_curves_figure",
    "metric_bars_figure",
    "importance_figure",
]



def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _check_tidy(tidy: pd.DataFrame) -> None:
    missing = [c for c in TIDY_COLUMNS if c not in tidy.columns]
    if missing:
        raise ValueError(
            f"a tidy metrics table needs the columns {list(TIDY_COLUMNS)}; missing {missing} "
            f"(got {list(tidy.columns)})"
        )


def summary_table(tidy: pd.DataFrame, task: str, models: Sequence[str] | None = None,
                  metrics: Sequence[str] | None = None, decimals: int = 2,
                  labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """A paper-style table of one task: rows are metrics, columns models, cells ``mean ± SD``.

    The cells come from :func:`ichprog.metrics.mean_sd_table`, the library's one "mean ± SD"
    builder (sample SD over folds, ``ddof=1``, as in the paper), with the report's rules: a
    metric undefined on some folds (e.g. NPV of a fold without a negative prediction) is
    averaged over the folds where it is defined and its cell says so: ``"0.61 ± 0.12 (4/5)"``;
    a cell without any value reads ``n/a``, and a single fold shows no SD.
    (:func:`ichprog.metrics.summarize` keeps NaN visible instead: ``"nan"``, ``"0.80 ± nan"``,
    an empty cell for a metric not measured.)

    Parameters
    ----------
    tidy
        Tidy metrics table with columns ``model, fold, task, metric, value``.
    task
        The task whose metrics are shown (e.g. ``"prognosis"``).
    models
        Column order; defaults to the models' order of appearance in ``tidy``.
    metrics
        Row order; defaults to the metrics' order of appearance for that task.
    decimals
        Decimals shown.
    labels
        Display names of models (``{model: label}``); metric names use
        :data:`ichprog.report.paper.METRIC_LABELS`.

    Returns
    -------
    pandas.DataFrame
        Strings, index named ``"metric"``.

    Examples
    --------
    >>> import pandas as pd
    >>> from ichprog.report import summary_table
    >>> tidy = pd.DataFrame({"model": "LR", "fold": [0, 1], "task": "prognosis",
    ...                      "metric": "auc", "value": [0.8, 0.7]})
    >>> summary_table(tidy, "prognosis").loc["AUC", "LR"]
    '0.75 ± 0.07'
    """
    from ichprog.metrics import mean_sd_table

    _check_tidy(tidy)
    sub = tidy[tidy["task"] == task]
    if sub.empty:
        raise ValueError(f"the metrics table has no row for task {task!r}; tasks present: "
                         f"{sorted(tidy['task'].unique())}")
    models = list(models) if models is not None else list(dict.fromkeys(sub["model"]))
    metrics = list(metrics) if metrics is not None else list(dict.fromkeys(sub["metric"]))
    labels = dict(labels or {})
    table = mean_sd_table(sub, "model", decimals=decimals, skipna=True, single_sd=False,
                          count_defined=True, undefined="n/a", not_measured="n/a")
    df = table.reindex(index=metrics, columns=models, fill_value="n/a")
    df.columns = [labels.get(m, m) for m in models]
    df.index = pd.Index([METRIC_LABELS.get(k, k) for k in metrics], name="metric")
    return df


def interval_table(intervals: Mapping[str, pd.DataFrame], metrics: Sequence[str] | None = None,
                   decimals: int = 2) -> pd.DataFrame:
    """A Table 2-style table: ``estimate (low-high)`` per metric (rows) and model (columns).

    Parameters
    ----------
    intervals
        ``{model label: DataFrame}`` where each DataFrame is what
        :func:`ichprog.metrics.bootstrap_ci` returns (columns ``metric``, ``estimate``, ``low``,
        ``high``).
    metrics
        Row order; defaults to the first table's metric order.
    decimals
        Decimals shown.
    """
    if not intervals:
        raise ValueError("interval_table needs at least one model")
    first = next(iter(intervals.values()))
    metrics = list(metrics) if metrics is not None else list(first["metric"])
    data: dict[str, list[str]] = {}
    for label, ci in intervals.items():
        for col in ("metric", "estimate", "low", "high"):
            if col not in ci.columns:
                raise ValueError(f"bootstrap table of {label!r} lacks the column {col!r}")
        by = {str(r["metric"]): (float(r["estimate"]), float(r["low"]), float(r["high"]))
              for r in ci.to_dict("records")}
        cells = []
        for k in metrics:
            if k not in by or np.isnan(by[k][0]):
                cells.append("n/a")
                continue
            est, lo, hi = by[k]
            if np.isnan(lo) or np.isnan(hi):
                cells.append(f"{est:.{decimals}f}")
            else:
                cells.append(f"{est:.{decimals}f} ({lo:.{decimals}f}-{hi:.{decimals}f})")
        data[label] = cells
    df = pd.DataFrame(data, index=[METRIC_LABELS.get(k, k) for k in metrics])
    df.index.name = "metric"
    return df


def roc_figure(curves: Mapping[str, tuple[Any, Any]], title: str = "ROC curves") -> Any:
    """ROC curves of several models on pooled out-of-fold predictions.

    Parameters
    ----------
    curves
        ``{label: (y_true, y_score)}`` with binary ``y_true`` (0/1) and scores (probability of
        class 1).
    title
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    for label, (y, s) in curves.items():
        y = np.asarray(y).astype(int)
        s = np.asarray(s, dtype=float)
        if len(np.unique(y)) < 2:
            ax.plot([], [], label=f"{label} (one class only: no curve)")
            continue
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, lw=1.8, label=f"{label} (AUC {roc_auc_score(y, s):.2f})")
    ax.plot([0, 1], [0, 1], ls="--", c="0.6", lw=1)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity (recall)")
    ax.set_title(title)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def confusion_figure(items: Mapping[str, tuple[Any, Any]], labels: Sequence[Any] | None = None,
                     class_names: Sequence[str] | None = None, title: str = "") -> Any:
    """Confusion matrices side by side (rows: true class, columns: predicted class).

    Parameters
    ----------
    items
        ``{label: (y_true, y_pred)}`` with class indices.
    labels
        All class labels, so that a class missing from one model's predictions still gets its
        row and column; default the union of the classes seen.
    class_names
        Tick labels for the classes.
    title
        Figure title.
    """
    from sklearn.metrics import confusion_matrix

    plt = _plt()
    if not items:
        raise ValueError("confusion_figure needs at least one model")
    if labels is None:
        seen: set[Any] = set()
        for y, p in items.values():
            seen |= set(np.asarray(y).tolist()) | set(np.asarray(p).tolist())
        labels = sorted(seen)
    labels = list(labels)
    names = list(class_names) if class_names is not None else [str(c) for c in labels]
    n = len(items)
    size = 1.0 + 0.55 * len(labels)
    fig, axes = plt.subplots(1, n, figsize=(max(2.9, size + 1.2) * n, size + 1.2), squeeze=False)
    for ax, (label, (y, p)) in zip(axes[0], items.items()):
        cm = confusion_matrix(np.asarray(y), np.asarray(p), labels=labels)
        ax.imshow(cm, cmap="Blues")
        vmax = cm.max() if cm.size else 0
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if cm[i, j] > vmax / 2 else "black", fontsize=10)
        ax.set_xticks(range(len(labels)), names, fontsize=8)
        ax.set_yticks(range(len(labels)), names, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(label, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def training_curves_figure(histories: Mapping[str, pd.DataFrame],
                           loss_columns: Sequence[str] = ("train_loss", "val_loss"),
                           score_columns: Sequence[str] = ("val_score", "val_prognosis_auc"),
                           title: str = "") -> Any:
    """Training curves: losses (left panel) and validation scores (right panel) per epoch.

    Parameters
    ----------
    histories
        ``{label: DataFrame}``; each DataFrame has one row per epoch, an ``epoch`` column (or
        the index counts epochs from 1) and the columns named below (missing ones are skipped).
        The histories of :func:`ichprog.training.train` qualify.
    loss_columns
        Columns drawn in the left panel; names starting with ``train`` are dashed.
    score_columns
        Columns drawn in the right panel (``val_score`` is the monitored early-stopping score:
        the validation balanced accuracy of the primary task).
    title
        Figure title.
    """
    plt = _plt()
    fig, (ax_l, ax_r) = plt.subplots(1, 2, figsize=(10, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", ":", "-.", "--"]
    for k, (label, h) in enumerate(histories.items()):
        x = h["epoch"].to_numpy() if "epoch" in h.columns else np.arange(1, len(h) + 1)
        c = colors[k % len(colors)]
        for ax, cols in ((ax_l, loss_columns), (ax_r, score_columns)):
            for j, col in enumerate(cols):
                if col not in h.columns:
                    continue
                if ax is ax_l:
                    ls = "--" if col.startswith("train") else "-"
                else:
                    ls = styles[j % len(styles)]
                ax.plot(x, pd.to_numeric(h[col], errors="coerce").to_numpy(dtype=float), ls=ls,
                        c=c, lw=1.5, marker="o", ms=2.5, label=f"{label}: {col}")
    from matplotlib.ticker import MaxNLocator

    ax_l.set_title("loss (dashed: training, solid: validation)", fontsize=9)
    ax_r.set_title("validation scores", fontsize=9)
    for ax in (ax_l, ax_r):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.lines:
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.24), ncol=1,
                      frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def metric_bars_figure(tidy: pd.DataFrame, task: str, models: Sequence[str] | None = None,
                       metrics: Sequence[str] | None = None,
                       labels: Mapping[str, str] | None = None, title: str = "") -> Any:
    """Grouped bars (mean over folds, error bars one SD) of several models, like the paper's
    Fig. 2 (the ablation).

    Parameters are those of :func:`summary_table`.
    """
    _check_tidy(tidy)
    plt = _plt()
    sub = tidy[tidy["task"] == task]
    if sub.empty:
        raise ValueError(f"the metrics table has no row for task {task!r}")
    models = list(models) if models is not None else list(dict.fromkeys(sub["model"]))
    metrics = list(metrics) if metrics is not None else list(dict.fromkeys(sub["metric"]))
    labels = dict(labels or {})
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(metrics) + 2), 3.8))
    x = np.arange(len(metrics))
    for k, m in enumerate(models):
        rows = sub[sub["model"] == m]
        means, sds = [], []
        for met in metrics:
            v = pd.to_numeric(rows.loc[rows["metric"] == met, "value"], errors="coerce").dropna()
            means.append(v.mean() if len(v) else np.nan)
            sds.append(v.std(ddof=1) if len(v) > 1 else 0.0)
        ax.bar(x + (k - (len(models) - 1) / 2) * width, means, width, yerr=sds, capsize=2,
               label=labels.get(m, m))
    ax.set_xticks(x, [METRIC_LABELS.get(m, m) for m in metrics], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean over folds (± SD)")
    ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def importance_figure(importance: pd.Series | Mapping[str, float], title: str = "",
                      top: int = 15) -> Any:
    """Horizontal bars of feature importances (e.g. mean absolute SHAP values), largest on top.

    Parameters
    ----------
    importance
        ``{feature: importance}``.
    title
        Axes title.
    top
        How many features to show.
    """
    plt = _plt()
    s = pd.Series(importance, dtype=float).sort_values(ascending=False).head(top)[::-1]
    fig, ax = plt.subplots(figsize=(5.5, 0.28 * len(s) + 1.2))
    ax.barh(range(len(s)), s.to_numpy(), color="#3b75af")
    ax.set_yticks(range(len(s)), [str(i) for i in s.index], fontsize=8)
    ax.set_xlabel("mean |SHAP value|")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
