"""Optimizer steps: accumulation groups and the learning-rate schedule."""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

from ichprog.training.config import TrainConfig


def _group_weights(n_samples: int, batch_size: int, steps: int) -> list[tuple[float, bool]]:
    """For each batch of an epoch: (weight of its mean loss, whether an optimizer step follows).

    Batches are grouped ``steps`` at a time (the last group may be shorter); a batch's weight is
    its share of the samples of its group, so every step averages over exactly its samples.
    """
    n_batches = math.ceil(n_samples / batch_size)
    sizes = [min(batch_size, n_samples - b * batch_size) for b in range(n_batches)]
    out: list[tuple[float, bool]] = []
    for g in range(0, n_batches, steps):
        group = sizes[g:g + steps]
        total = sum(group)
        for j, s in enumerate(group):
            out.append((s / total, j == len(group) - 1))
    return out


def _make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig,
                    steps_per_epoch: int) -> Any:
    """The learning-rate scheduler of ``config.schedule`` (``None`` for a constant rate), stepped
    once per optimizer step."""
    if config.schedule == "constant":
        return None
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=max(1, config.max_epochs * steps_per_epoch),
        pct_start=0.2)


def _fast_forward(scheduler: Any, steps: int) -> None:
    """Advance a freshly built scheduler by ``steps`` optimizer steps (when resuming): the
    schedule is a function of the step count alone, so this restores it exactly."""
    if scheduler is None:
        return
    with warnings.catch_warnings():  # "lr_scheduler.step() before optimizer.step()"
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(steps):
            scheduler.step()
