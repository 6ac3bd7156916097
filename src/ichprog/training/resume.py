"""A run's checkpoint folder as the training loop uses it: resuming an unfinished run, reusing a
finished one, refusing (or discarding) a run with another configuration, and saving the state
after every epoch."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from ichprog._util import json_default, package_versions, write_csv
from ichprog.tasks import Task
from ichprog.training.checkpoint import (
    PREVIOUS_SIDECAR,
    SIDECAR,
    _load_best_state,
    load_checkpoint,
    read_sidecar,
    save_checkpoint,
)
from ichprog.training.config import TrainConfig
from ichprog.training.fingerprint import _diff_keys


@dataclass
class _RunState:
    """What a run carries from one epoch to the next (and what its checkpoint restores)."""

    start_epoch: int = 1
    best_score: float = -math.inf
    best_epoch: int = 0
    wait: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    resumed_from: int | None = None
    stop_reason: str = "max_epochs"
    finished: bool = False


def _resume(out: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
            scaler: torch.amp.GradScaler, run_hash: str, payload: Mapping[str, Any],
            overwrite: bool) -> _RunState:
    """The state a run in ``out`` starts from.

    A fresh state when the folder holds no run (or a run with another configuration that
    ``overwrite`` discards). Otherwise the checkpoint is loaded into the model, the optimizer,
    the gradient scaler and the global random generators; a finished run (``finished``) gets its
    best weights loaded instead, and nothing is left to train.
    """
    state = _RunState()
    try:
        side = read_sidecar(out)
    except ValueError:  # a damaged sidecar: load_checkpoint falls back to the previous one
        side = read_sidecar(out, previous=True)
    if side is not None and side.get("config_hash") != run_hash:
        _discard_other_run(out, side, run_hash, payload, overwrite)
        side = None
    if side is None:
        return state
    side = load_checkpoint(out, model, optimizer, scaler)
    state.rows = list(side.get("history", []))
    state.best_score = (float(side["best_score"]) if side.get("best_score") is not None
                        else -math.inf)
    state.best_epoch = int(side.get("best_epoch") or 0)
    state.wait = int(side.get("epochs_without_improvement", 0))
    state.start_epoch = int(side["epoch"]) + 1
    state.resumed_from = int(side["epoch"])
    if side.get("finished"):
        load_checkpoint(out, model, which="best")
        state.finished = True
        state.stop_reason = str(side.get("stop_reason"))
        return state
    if state.best_epoch:
        state.best_state = _load_best_state(out / side["best_weights"])
    return state


def _discard_other_run(out: Path, side: Mapping[str, Any], run_hash: str,
                       payload: Mapping[str, Any], overwrite: bool) -> None:
    """Raise, listing the differences, unless ``overwrite``: then remove the other run's files."""
    if not overwrite:
        diffs = _diff_keys(side.get("payload", {}), json.loads(json.dumps(
            payload, default=json_default)))
        raise ValueError(
            f"{out / SIDECAR} holds a run with a different configuration (hash "
            f"{side.get('config_hash')} != {run_hash}); differences: "
            f"{'; '.join(diffs) or 'unknown'}. Use another out_dir or pass "
            "overwrite=True to discard it.")
    for f in [*out.glob("*-e[0-9][0-9][0-9][0-9].safetensors*"), out / SIDECAR,
              out / PREVIOUS_SIDECAR, out / "history.csv", out / "history.png",
              *out.glob("*.json.sha256"), out / "history.csv.sha256"]:
        with contextlib.suppress(FileNotFoundError):
            f.unlink()


def _save_run(out: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
              scaler: torch.amp.GradScaler, best_state: Mapping[str, torch.Tensor] | None,
              rows: list[dict[str, Any]], epoch: int, best_epoch: int, best_score: float,
              wait: int, done: bool, stop_reason: str, run_hash: str, payload: Mapping[str, Any],
              config: TrainConfig, primary: Task) -> None:
    """Write the history and the end-of-epoch checkpoint of a run (the sidecar commits both)."""
    out.mkdir(parents=True, exist_ok=True)
    history = pd.DataFrame(rows)
    write_csv(history, out / "history.csv")
    sidecar = {
        "epoch": epoch,
        "finished": done,
        "stop_reason": stop_reason if done else None,
        "best_epoch": best_epoch,
        "best_score": best_score if math.isfinite(best_score) else None,
        "monitor": f"val_{primary.name}_balanced_accuracy",
        "epochs_without_improvement": wait,
        "metrics": rows[-1],
        "history": rows,
        "history_file": "history.csv",
        "config": config.to_dict(),
        "config_hash": run_hash,
        "payload": payload,
        "versions": package_versions(),
    }
    save_checkpoint(out, model, optimizer, sidecar, scaler, best_model_state=best_state)

