"""The training loop, :func:`train`: epochs of accumulated optimizer steps, a validation pass
after each, early stopping, and a checkpoint after every epoch (see :mod:`ichprog.training`)."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from ichprog._util import derive_seed, stable_hash
from ichprog.models import MultiTaskNet, multitask_loss
from ichprog.tasks import Task
from ichprog.training.config import TrainConfig
from ichprog.training.device import (
    _autocast,
    _to_device,
    resolve_channels_last,
    resolve_device,
    resolve_precision,
    seed_everything,
)
from ichprog.training.fingerprint import _run_payload, _weights_digest
from ichprog.training.history import TrainResult
from ichprog.training.inference import (
    _batch_targets,
    _progress,
    _run_inference,
    _validation_metrics,
)
from ichprog.training.resume import _resume, _RunState, _save_run
from ichprog.training.schedule import _fast_forward, _group_weights, _make_scheduler

#: Projected training time (s) above which :func:`train` says how long it will take.
LONG_RUN_S = 600.0


def _warn_if_long(seconds: float, epochs_left: int, device: torch.device) -> None:
    """After the first epoch: warn when the remaining epochs will take long, with a way out."""
    left = seconds * epochs_left
    if left <= LONG_RUN_S:
        return
    hint = ("; recipe='cpu' (ichprog.recipes) trains a smaller model that learns in minutes on "
            "a CPU" if device.type == "cpu" else "")
    warnings.warn(f"training: the first epoch took {seconds:.0f} s, so the remaining "
                  f"{epochs_left} epoch(s) will take about {_duration(left)} on {device} (early "
                  f"stopping may end it sooner){hint}", UserWarning, stacklevel=3)


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _seed_epoch(seed: int, epoch: int) -> torch.Generator:
    s = derive_seed(seed, epoch)
    seed_everything(s)
    return torch.Generator().manual_seed(s)


def _iter_epochs(start: int, stop: int, progress: bool) -> Iterator[int]:
    yield from _progress(range(start, stop + 1), progress, desc="epochs", unit="epoch",
                         initial=start - 1, total=stop)


@dataclass
class _Run:
    """What a run fixes before its first epoch: where and how it computes, what identifies it,
    its optimizer, gradient scaler and learning-rate schedule, and the positive-target weights
    of ``class_balance``."""

    device: torch.device
    amp_dtype: torch.dtype | None
    precision_name: str
    channels_last: bool
    payload: dict[str, Any]
    run_hash: str
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    scheduler: Any
    steps_per_epoch: int
    pos_weight: dict[str, torch.Tensor] | None


def train(model: MultiTaskNet, train_ds: Dataset, val_ds: Dataset,
          config: TrainConfig | None = None, out_dir: str | Path | None = None, *,
          overwrite: bool = False,
          callback: Callable[[int, Mapping[str, Any]], None] | None = None) -> TrainResult:
    """Train a multi-task model with the paper's recipe (see the module documentation).

    Parameters
    ----------
    model
        The network; its tasks (``model.tasks``) define the loss and the monitored primary task.
    train_ds, val_ds
        Datasets with the ``CTDataset`` item contract, *with* targets for every task of the
        model. Oversampling and augmentation, if wanted, belong to ``train_ds``.
    config
        Hyper-parameters (default: the paper's, :class:`TrainConfig`).
    out_dir
        Checkpoint folder. An unfinished run with the same configuration there is resumed, a
        finished one is reused; ``None`` writes nothing (and cannot resume).
    overwrite
        Discard a checkpoint with a *different* configuration in ``out_dir`` instead of raising.
    callback
        Called as ``callback(epoch, history_row)`` after each epoch's checkpoint is written.

    Returns
    -------
    TrainResult
        With the best epoch's weights loaded into ``model``.

    Raises
    ------
    ValueError
        When ``out_dir`` holds a run with another configuration (the message lists the
        differences), when a dataset is empty, or when a loss is not finite (naming the
        patients of the batch).
    """
    config = config or TrainConfig()
    tasks = list(model.tasks)
    if len(train_ds) == 0:  # type: ignore[arg-type]
        raise ValueError("empty training dataset")
    if len(val_ds) == 0 and (config.select != "last" or config.patience):  # type: ignore[arg-type]
        raise ValueError("empty validation dataset: choosing the best epoch (select='best') and "
                         "early stopping need validation patients; without them use "
                         "TrainConfig(select='last', patience=None)")
    run = _set_up(model, config, train_ds, val_ds)
    out = Path(out_dir) if out_dir is not None else None
    state = _RunState()
    if out is not None:
        state = _resume(out, model, run.optimizer, run.scaler, run.run_hash, run.payload,
                        overwrite)
        if state.finished:
            return _result(model, config, run, state, out)
        if state.resumed_from is not None:
            _fast_forward(run.scheduler, (state.start_epoch - 1) * run.steps_per_epoch)

    train_fwd: Callable[[torch.Tensor], dict[str, torch.Tensor]] = model
    if config.compile:
        train_fwd = torch.compile(model)  # type: ignore[assignment]
    patience = config.patience or 0
    if patience and state.wait >= patience:
        state.stop_reason = "early_stopping"
        state.start_epoch = config.max_epochs + 1

    for epoch in _iter_epochs(state.start_epoch, config.max_epochs, config.progress):
        row = _epoch(model, train_fwd, train_ds, val_ds, tasks, config, run, state, epoch)
        if epoch == state.start_epoch:
            _warn_if_long(row["seconds"], config.max_epochs - epoch, run.device)
        done = bool(patience and state.wait >= patience) or epoch == config.max_epochs
        if patience and state.wait >= patience:
            state.stop_reason = "early_stopping"
        if out is not None:
            _save_run(out, model, run.optimizer, run.scaler, state.best_state, state.rows, epoch,
                      state.best_epoch, state.best_score, state.wait, done, state.stop_reason,
                      run.run_hash, run.payload, config, tasks[0])
        if callback is not None:
            callback(epoch, row)
        if done:
            break
    return _result(model, config, run, state, out)


def _set_up(model: MultiTaskNet, config: TrainConfig, train_ds: Dataset,
            val_ds: Dataset) -> _Run:
    """Resolve device and precision, hash the run, move the model, build the optimizer, the
    gradient scaler, the learning-rate schedule and the class-balancing weights."""
    device = resolve_device(config.device)
    amp_dtype, use_scaler = resolve_precision(config.precision, device)
    precision_name = "float32" if amp_dtype is None else str(amp_dtype).replace("torch.", "")

    payload = _run_payload(model, config, train_ds, val_ds, _weights_digest(model))
    run_hash = stable_hash(payload, length=20)

    model.to(device)
    channels_last = resolve_channels_last(config.channels_last, device, amp_dtype)
    if channels_last:
        model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay, amsgrad=config.amsgrad)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    steps_per_epoch = sum(step for _, step in _group_weights(
        len(train_ds), config.batch_size, config.accumulation_steps))  # type: ignore[arg-type]
    scheduler = _make_scheduler(optimizer, config, steps_per_epoch)
    pos_weight = _pos_weight(train_ds, list(model.tasks)) if config.class_balance else None
    return _Run(device=device, amp_dtype=amp_dtype, precision_name=precision_name,
                channels_last=channels_last, payload=payload, run_hash=run_hash,
                optimizer=optimizer, scaler=scaler, scheduler=scheduler,
                steps_per_epoch=steps_per_epoch, pos_weight=pos_weight)


def _pos_weight(train_ds: Dataset, tasks: Sequence[Task]) -> dict[str, torch.Tensor]:
    from ichprog.models import balanced_pos_weight

    targets = getattr(train_ds, "targets", None)
    if not targets:
        raise ValueError("TrainConfig.class_balance needs a training dataset with a .targets "
                         "mapping (CTDataset or ArrayDataset built with targets)")
    return balanced_pos_weight(targets, tasks)


def _epoch(model: MultiTaskNet, train_fwd: Callable[[torch.Tensor], dict[str, torch.Tensor]],
           train_ds: Dataset, val_ds: Dataset, tasks: Sequence[Task], config: TrainConfig,
           run: _Run, state: _RunState, epoch: int) -> dict[str, Any]:
    """Train one epoch, validate, keep the weights when they are the best so far, and append the
    epoch's history row to ``state.rows`` (returned)."""
    t0 = time.perf_counter()
    row: dict[str, Any] = {"epoch": epoch}
    row.update(_train_epoch(model, train_fwd, train_ds, tasks, config, run, epoch))
    vrow, score = _validate(model, val_ds, tasks, config, run)
    row.update(vrow)
    row["val_score"] = score
    row["improved"] = _track_best(state, model, config, epoch, score)
    row["lr"] = float(run.optimizer.param_groups[0]["lr"])
    row["seconds"] = time.perf_counter() - t0
    state.rows.append(row)
    return row


def _train_epoch(model: MultiTaskNet,
                 train_fwd: Callable[[torch.Tensor], dict[str, torch.Tensor]], train_ds: Dataset,
                 tasks: Sequence[Task], config: TrainConfig, run: _Run,
                 epoch: int) -> dict[str, float]:
    """One pass over the training data, shuffled by the epoch's seed, with an optimizer step at
    the end of every accumulation group; returns the mean training losses."""
    gen = _seed_epoch(config.seed, epoch)
    if hasattr(train_ds, "set_epoch"):
        train_ds.set_epoch(epoch)
    loader = DataLoader(train_ds, batch_size=config.batch_size, shuffle=True, generator=gen,
                        num_workers=config.num_workers, drop_last=False,
                        persistent_workers=False)
    plan = _group_weights(len(train_ds), config.batch_size,  # type: ignore[arg-type]
                          config.accumulation_steps)
    model.train()
    run.optimizer.zero_grad(set_to_none=True)
    sums = {t.name: 0.0 for t in tasks}
    total_sum = 0.0
    n_seen = 0
    for b, batch in enumerate(_progress(loader, config.progress, desc=f"epoch {epoch}",
                                        leave=False, unit="batch")):
        x = _to_device(batch["image"], run.device, run.channels_last)
        targets = _batch_targets(batch, tasks, "training")
        outputs = _forward(train_fwd, x, run, epoch, len(train_ds),  # type: ignore[arg-type]
                           config.batch_size)
        total, per_task = multitask_loss(outputs, targets, tasks, run.pos_weight)
        _check_finite(total, per_task, epoch, b, batch)
        weight, step = plan[b]
        run.scaler.scale(total * weight).backward()
        if step:
            _optimizer_step(run)
        bs = x.shape[0]
        n_seen += bs
        total_sum += float(total.detach()) * bs
        for t in tasks:
            sums[t.name] += float(per_task[t.name].detach()) * bs
    if n_seen != len(train_ds):  # type: ignore[arg-type]
        raise RuntimeError(f"the training loader yielded {n_seen} samples, expected "
                           f"{len(train_ds)}")  # type: ignore[arg-type]
    losses = {"train_loss": total_sum / n_seen}
    losses.update({f"train_loss_{k}": v / n_seen for k, v in sums.items()})
    return losses


def _forward(train_fwd: Callable[[torch.Tensor], dict[str, torch.Tensor]], x: torch.Tensor,
             run: _Run, epoch: int, n_samples: int, batch_size: int) -> dict[str, torch.Tensor]:
    """The training forward pass under autocast; a lone last sample that a BatchNorm cannot
    normalise is reported with what to change."""
    try:
        with _autocast(run.device, run.amp_dtype):
            return train_fwd(x)
    except ValueError as exc:
        if x.shape[0] == 1 and "more than 1 value per channel" in str(exc):
            raise ValueError(
                f"epoch {epoch}: the last training batch holds a single sample "
                f"({n_samples} samples, batch_size={batch_size}) and "
                "the trunk's last BatchNorm sees one value per channel at this input "
                "size; change batch_size or use larger inputs") from exc
        raise


def _check_finite(total: torch.Tensor, per_task: Mapping[str, torch.Tensor], epoch: int,
                  b: int, batch: Mapping[str, Any]) -> None:
    if not torch.isfinite(total):
        raise FloatingPointError(
            f"non-finite training loss {float(total)} at epoch {epoch}, batch {b} "
            f"(patients {list(batch.get('id', []))}); per task: "
            f"{ {k: float(v) for k, v in per_task.items()} }")


def _optimizer_step(run: _Run) -> None:
    """Apply the accumulated gradients, then advance the learning-rate schedule."""
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    scheduler = run.scheduler
    if scheduler is not None and scheduler.last_epoch < scheduler.total_steps - 1:
        scheduler.step()  # the rate of the next step (the last step's is final)


def _validate(model: MultiTaskNet, val_ds: Dataset, tasks: Sequence[Task], config: TrainConfig,
              run: _Run) -> tuple[dict[str, float], float]:
    """The validation losses and metrics of the epoch, and the monitored score (nothing and NaN
    without validation patients)."""
    if len(val_ds) == 0:  # type: ignore[arg-type]
        return {}, float("nan")
    res = _run_inference(model, val_ds, tasks, config.eval_batch_size or config.batch_size,
                         run.device, run.amp_dtype, run.channels_last, False, with_targets=True,
                         num_workers=config.num_workers, tta=config.tta)
    return _validation_metrics(tasks, res, config.threshold)


def _track_best(state: _RunState, model: MultiTaskNet, config: TrainConfig, epoch: int,
                score: float) -> bool:
    """Whether the epoch improved on the best score (always, with ``select="last"``); if so its
    weights become the best ones, else one more epoch without improvement is counted."""
    improved = (config.select == "last" or bool(np.isfinite(score) and score > state.best_score)
                or state.best_epoch == 0)
    if improved:
        state.best_score = score if np.isfinite(score) else -math.inf
        state.best_epoch = epoch
        state.wait = 0
        state.best_state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    else:
        state.wait += 1
    return improved


def _result(model: MultiTaskNet, config: TrainConfig, run: _Run, state: _RunState,
            out: Path | None) -> TrainResult:
    """The :class:`TrainResult` of a run: a reused finished run as found, else with the best
    weights loaded and the history plotted into ``out``."""
    if state.finished:
        return TrainResult(
            model=model, history=pd.DataFrame(state.rows), best_epoch=state.best_epoch,
            best_score=state.best_score, epochs_run=int(state.resumed_from or 0),
            stop_reason=state.stop_reason, config=config, out_dir=out,
            resumed_from=state.resumed_from, reused=True, device=str(run.device),
            precision=run.precision_name, config_hash=run.run_hash)
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    history = pd.DataFrame(state.rows)
    epochs_run = int(history["epoch"].max()) if len(history) else 0
    result = TrainResult(model=model, history=history, best_epoch=state.best_epoch,
                         best_score=state.best_score, epochs_run=epochs_run,
                         stop_reason=state.stop_reason, config=config, out_dir=out,
                         resumed_from=state.resumed_from, reused=False, device=str(run.device),
                         precision=run.precision_name, config_hash=run.run_hash)
    if out is not None and len(history):
        try:
            fig = result.plot_history(out / "history.png")
            import matplotlib.pyplot as plt

            plt.close(fig)
        except Exception as exc:  # plotting must never lose a finished run
            warnings.warn(f"could not plot the training history: {exc}", stacklevel=3)
    return result
