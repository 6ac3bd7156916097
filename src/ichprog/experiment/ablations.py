"""The loss ablations of a preset (the paper's Fig. 2): :func:`ablation`, :class:`AblationResult`
and :func:`plot_ablation`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ichprog._extras import MissingExtraError, require_extra
from ichprog._util import atomic_write, read_json, write_csv, write_json
from ichprog.experiment.cv import CVResult, _execute, _plan_with_defaults
from ichprog.experiment.executors import as_executor
from ichprog.tasks import MT_ORD_GCS_BIN_AGE, Preset, Task, ablations, as_preset

#: The format key of the ``ablation.json`` written by :meth:`AblationResult.save`.
ABLATION_FORMAT = "ichprog-ablation/1"


@dataclass
class AblationResult:
    """The loss ablations of a preset (the paper's Fig. 2).

    Attributes
    ----------
    metrics
        Tidy metrics of every configuration (``model`` = configuration label).
    results
        Configuration name -> :class:`CVResult`.
    task
        The task the figure shows (the preset's primary task).
    figure_path
        The PNG written (``None`` without ``out_dir``).
    """

    metrics: pd.DataFrame
    results: dict[str, CVResult]
    task: str
    figure_path: Path | None = None

    @property
    def long_predictions(self) -> pd.DataFrame:
        """The predictions of every configuration in the library's one long table (``model``
        = configuration label)."""
        return pd.concat([r.long_predictions for r in self.results.values()], ignore_index=True)

    @property
    def predictions(self) -> pd.DataFrame:
        """The same as :attr:`long_predictions`: the configurations have different tasks, so
        their per-task columns (:attr:`CVResult.predictions`) do not share one table."""
        return self.long_predictions

    def summary(self, decimals: int = 2, skipna: bool = False) -> pd.DataFrame:
        """Mean ± SD over folds of every task and metric (rows), one column per configuration
        (:func:`ichprog.metrics.summarize`)."""
        from ichprog.metrics import summarize

        return summarize(self.metrics, columns="model", decimals=decimals, skipna=skipna)

    def _repr_html_(self) -> str:
        """Jupyter display: the mean ± SD table of every configuration for the shown task."""
        from ichprog import _display as d

        return d.panel(f"AblationResult: {len(self.results)} configurations",
                       [d.frame(self.summary().reset_index())])

    def plot(self, path: str | Path | None = None, metrics: Sequence[str] | None = None,
             kind: str = "box") -> Any:
        """Plot the ablation: one panel per metric, one box (``kind="box"``) or mean ± SD bar
        (``kind="bar"``) per configuration. Returns the matplotlib figure; saved as PNG when
        ``path`` is given."""
        return plot_ablation(self.metrics, task=self.task, path=path, metrics=metrics, kind=kind)

    def save(self, out_dir: str | Path) -> Path:
        """Write every configuration's cross-validation into ``out_dir/<configuration>`` (see
        :meth:`CVResult.save`), ``ablation_metrics.csv`` and ``ablation.json`` (task and
        configurations); returns ``out_dir``."""
        out = Path(out_dir)
        for name, res in self.results.items():
            res.save(out / name)
        write_csv(self.metrics, out / "ablation_metrics.csv", checksum=True)
        write_json({"format": ABLATION_FORMAT, "task": self.task,
                    "configurations": list(self.results)}, out / "ablation.json", checksum=True)
        return out

    @classmethod
    def load(cls, out_dir: str | Path) -> AblationResult:
        """Read an ablation written by :meth:`save` (or by :func:`ablation` with
        ``out_dir``)."""
        d = Path(out_dir)
        cfg = read_json(d / "ablation.json", fmt=ABLATION_FORMAT, what="an ablation folder")
        results = {name: CVResult.load(d / name) for name in cfg["configurations"]}
        figure = d / "ablation.png"
        return cls(metrics=pd.concat([r.metrics for r in results.values()], ignore_index=True),
                   results=results, task=cfg["task"],
                   figure_path=figure if figure.is_file() else None)


def plot_ablation(tidy_df: pd.DataFrame, task: str = "prognosis", path: str | Path | None = None,
                  metrics: Sequence[str] | None = None, kind: str = "box") -> Any:
    """Plot a tidy metrics table of several configurations, one panel per metric.

    Parameters
    ----------
    tidy_df
        Tidy metrics (``model, fold, task, metric, value``).
    task
        The task to show.
    path
        Save as PNG there.
    metrics
        Metrics to show (default: all of the task, in table order).
    kind
        ``"box"`` (one box of the fold values per configuration) or ``"bar"`` (mean ± SD).
    """
    require_extra("ichprog.experiment.plot_ablation", "report")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if kind not in ("box", "bar"):
        raise ValueError(f"kind must be 'box' or 'bar', got {kind!r}")
    df = tidy_df[tidy_df["task"] == task]
    if df.empty:
        raise ValueError(f"no metrics of task {task!r}; tasks: {sorted(tidy_df['task'].unique())}")
    metrics = list(metrics) if metrics is not None else list(dict.fromkeys(df["metric"]))
    models = list(dict.fromkeys(df["model"]))
    ncol = min(4, len(metrics))
    nrow = math.ceil(len(metrics) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 3.0 * nrow), squeeze=False,
                             constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, m in zip(axes.ravel(), metrics):
        values = [df[(df["model"] == mod) & (df["metric"] == m)]["value"].dropna().to_numpy()
                  for mod in models]
        pos = np.arange(len(models))
        if kind == "box":
            bp = ax.boxplot(values, positions=pos, widths=0.6, patch_artist=True)
            for patch, c in zip(bp["boxes"], colors):
                patch.set_facecolor(c)
                patch.set_alpha(0.6)
        else:
            means = [v.mean() if len(v) else np.nan for v in values]
            sds = [v.std(ddof=1) if len(v) > 1 else 0.0 for v in values]
            ax.bar(pos, means, yerr=sds, color=colors[: len(models)], alpha=0.7, capsize=3)
        ax.set_title(m)
        ax.set_xticks(pos)
        ax.set_xticklabels([str(i + 1) for i in pos])
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[i % len(colors)], alpha=0.6)
               for i in range(len(models))]
    fig.legend(handles, [f"{i + 1}: {mod}" for i, mod in enumerate(models)], loc="outside lower center",
               ncol=min(2, len(models)), fontsize=8)
    fig.suptitle(f"Ablation of the loss terms ({task})")
    if path is not None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(p, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    return fig


def ablation(cohort: Any, preset: Preset | Sequence[Task] | str = MT_ORD_GCS_BIN_AGE,
             folds: int = 10, seed: int = 0, out_dir: str | Path | None = None, *,
             splits: Any = None, val_fraction: float | None = None, kind: str = "box",
             plot_metrics: Sequence[str] | None = None, progress: bool = True,
             executor: Any = "serial", **cv_kwargs: Any) -> AblationResult:
    """Cross-validate every loss ablation of a preset on the same folds (the paper's Fig. 2).

    Parameters
    ----------
    cohort
        A :class:`~ichprog.data.Cohort` with images.
    preset
        A multi-task preset; :func:`ichprog.tasks.ablations` derives the configurations (the
        full model, each model with auxiliary losses removed, the primary task alone).
    folds, seed, val_fraction, splits
        The folds, drawn once and shared by every configuration.
    out_dir
        One sub-folder per configuration (the :func:`cross_validate` layout), plus
        ``ablation_metrics.csv`` and ``ablation.png``.
    kind
        ``"box"`` or ``"bar"`` (mean ± SD) in the figure.
    plot_metrics
        Metrics in the figure (default all of the primary task).
    progress
        Progress bars.
    executor
        ``"serial"`` (default), ``"ray"`` or an :class:`~ichprog.experiment.Executor`: every
        (configuration, fold) is one job, all submitted together (see
        :func:`~ichprog.cross_validate`).
    **cv_kwargs
        Passed to :func:`cross_validate` (``trunk``, ``config``, ``preprocess``, ...).

    Returns
    -------
    AblationResult
    """
    from ichprog.data import make_splits

    ex = as_executor(executor)
    base = as_preset(preset, trunk=cv_kwargs.pop("trunk", None))
    configs = ablations(base)
    if splits is None:
        from ichprog.experiment._common import _val_fraction

        splits = make_splits(cohort, folds=folds, seed=seed,
                             val_fraction=_val_fraction(cv_kwargs.get("recipe"), val_fraction))
    out = Path(out_dir) if out_dir is not None else None
    plans = [_plan_with_defaults(cohort, p, seed=seed, splits=splits,
                                 out_dir=out / cname if out is not None else None,
                                 name=p.label, progress=progress, **cv_kwargs)
             for cname, p in configs.items()]
    results = dict(zip(configs, _execute(plans, ex, progress)))
    tidy_all = pd.concat([r.metrics for r in results.values()], ignore_index=True)
    res = AblationResult(metrics=tidy_all, results=results, task=base.primary.name)
    if out is not None:
        res.save(out)
        try:
            fig = res.plot(out / "ablation.png", metrics=plot_metrics, kind=kind)
        except MissingExtraError as exc:  # the results are written; only the figure is missing
            warnings.warn(f"ablation.png not written: {exc}", stacklevel=2)
        else:
            import matplotlib.pyplot as plt

            plt.close(fig)
            res.figure_path = out / "ablation.png"
    return res
