"""What :func:`~ichprog.training.train` returns (:class:`TrainResult`) and the plot of a training
history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ichprog._extras import require_extra
from ichprog._util import atomic_write
from ichprog.models import MultiTaskNet
from ichprog.training.config import TrainConfig


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    model
        The trained model, with the weights of the best epoch loaded.
    history
        One row per epoch: ``epoch``, ``train_loss``, ``train_loss_<task>``, ``val_loss``,
        ``val_loss_<task>``, ``val_<task>_<metric>`` for every metric of every task,
        ``val_score`` (the monitored score), ``improved``, ``lr``, ``seconds``.
    best_epoch, best_score
        The epoch (1-based) whose weights were kept, and its monitored score.
    epochs_run
        Epochs finished.
    stop_reason
        ``"early_stopping"`` or ``"max_epochs"``.
    config
        The :class:`TrainConfig` used.
    out_dir
        Checkpoint folder (``None`` when nothing was written).
    resumed_from
        The epoch a resumed run started after (``None`` for a fresh run).
    reused
        ``True`` when a finished run was found in ``out_dir`` and nothing was trained.
    device, precision
        Where and how the model was trained (e.g. ``"cpu"``, ``"bfloat16"``).
    config_hash
        Hash of everything that determines the result (see the module documentation).
    """

    model: MultiTaskNet
    history: pd.DataFrame
    best_epoch: int
    best_score: float
    epochs_run: int
    stop_reason: str
    config: TrainConfig
    out_dir: Path | None = None
    resumed_from: int | None = None
    reused: bool = False
    device: str = "cpu"
    precision: str = "float32"
    config_hash: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def plot_history(self, path: str | Path | None = None) -> Any:
        """Plot the history (see :func:`plot_history`); returns the matplotlib figure."""
        return plot_history(self.history, [t.name for t in self.model.tasks], path=path)


def plot_history(history: pd.DataFrame, tasks: Sequence[str] | None = None,
                 path: str | Path | None = None, metrics: Sequence[str] = ("balanced_accuracy",
                                                                            "auc")) -> Any:
    """Plot a training history: losses per task (left) and validation metrics per task (right).

    Parameters
    ----------
    history
        :attr:`TrainResult.history` (or ``history.csv`` read back with pandas).
    tasks
        Task names to show (default: every task found in the columns).
    path
        Save the figure there as PNG (atomically) when given.
    metrics
        Validation metrics to draw for every task, where present.

    Returns
    -------
    matplotlib.figure.Figure
    """
    require_extra("ichprog.training.plot_history", "report")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if tasks is None:
        tasks = [c[len("train_loss_"):] for c in history.columns if c.startswith("train_loss_")]
    fig, (ax_l, ax_m) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    ep = history["epoch"]
    ax_l.plot(ep, history["train_loss"], "k-", label="train (weighted sum)")
    if "val_loss" in history:  # no validation part: training losses only
        ax_l.plot(ep, history["val_loss"], "k--", label="validation (weighted sum)")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, t in enumerate(tasks):
        c = colors[i % len(colors)]
        if f"train_loss_{t}" in history:
            ax_l.plot(ep, history[f"train_loss_{t}"], "-", color=c, alpha=0.7, label=f"train {t}")
        if f"val_loss_{t}" in history:
            ax_l.plot(ep, history[f"val_loss_{t}"], "--", color=c, alpha=0.7, label=f"val {t}")
        for j, m in enumerate(metrics):
            col = f"val_{t}_{m}"
            if col in history:
                ax_m.plot(ep, history[col], ["-", ":", "-.", "--"][j % 4], color=c,
                          marker="o", ms=3, label=f"{t} {m}")
    if "improved" in history and "val_score" in history:
        best = history.loc[history["improved"].astype(bool), "epoch"]
        if len(best):
            ax_m.axvline(int(best.iloc[-1]), color="grey", lw=0.8, ls=":", label="best epoch")
    ax_l.set(xlabel="epoch", ylabel="BCE loss", title="Losses")
    ax_m.set(xlabel="epoch", ylabel="value", title="Validation metrics", ylim=(-0.02, 1.02))
    ax_l.legend(fontsize=7)
    ax_m.legend(fontsize=7)
    if path is not None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(p, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    return fig
