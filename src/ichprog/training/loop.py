"""The training loop, :func:`train`: epochs of accumulated optimizer steps, a validation pass
after each, early stopping, and a checkpoint after every epoch (see :mod:`ichprog.training`)."""

from __future__ import annotations

import dataclasses
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

#: Projected training time (s) above which :func:`train` says how long it will take: before the
#: first epoch (from a timed probe, on a CPU) and, if it did not say so then, after it.
LONG_RUN_S = 600.0
#: Estimated time (s) above which a CPU run without a time budget is announced before it starts.
LONG_RUN_BEFORE_S = 1800.0
#: Share of a time budget the planned epochs may fill (the rest absorbs estimation error).
BUDGET_SHARE = 0.9
#: Validation parts smaller than this, or with fewer patients of a class of the primary task than
#: :data:`MIN_VAL_PER_CLASS`, are too small to choose an epoch on (a warning says so).
MIN_VAL_PATIENTS = 20
MIN_VAL_PER_CLASS = 5


def _warn_if_long(seconds: float, epochs_left: int, device: torch.device,
                  before: bool = False) -> bool:
    """Warn when the remaining epochs will take long, with a way out; ``before``: the seconds per
    epoch are an estimate made before the first epoch. Returns whether it warned."""
    left = seconds * epochs_left
    if left <= (LONG_RUN_BEFORE_S if before else LONG_RUN_S):
        return False
    hint = ("; recipe='cpu' (ichprog.recipes) trains a smaller model that learns in minutes on "
            "a CPU, and time_budget='10min' fits the epochs to a budget"
            if device.type == "cpu" else "")
    if before:
        what = (f"one epoch is estimated at {_duration_s(seconds)} (a timed step of a few "
                f"samples), so the {epochs_left} epoch(s) will take about {_duration(left)}")
    else:
        what = (f"the first epoch took {seconds:.0f} s, so the remaining {epochs_left} "
                f"epoch(s) will take about {_duration(left)}")
    warnings.warn(f"training: {what} on {device} (early stopping may end it sooner){hint}",
                  UserWarning, stacklevel=3)
    return True


def _duration_s(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else _duration(seconds)


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
    started: float = 0.0
    budget: dict[str, Any] | None = None


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
    started = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else None
    config, plan = _plan(model, config, train_ds, val_ds, out, started)
    _warn_small_validation(val_ds, tasks[0], config)
    run = _set_up(model, config, train_ds, val_ds)
    run.started, run.budget = started, plan
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

    loop_started = time.perf_counter()
    # under a budget the plan may grow up to the configured epochs: loop that far, stop on done
    last = max(config.max_epochs, int(plan["max_epochs"])) if plan and plan.get("budget_s") \
        else config.max_epochs
    for epoch in _iter_epochs(state.start_epoch, last, config.progress):
        row = _epoch(model, train_fwd, train_ds, val_ds, tasks, config, run, state, epoch)
        if epoch == state.start_epoch and not (plan and (plan["warned"] or plan["budget_s"])):
            _warn_if_long(row["seconds"], config.max_epochs - epoch, run.device)
        done = bool(patience and state.wait >= patience) or epoch == config.max_epochs
        if patience and state.wait >= patience:
            state.stop_reason = "early_stopping"
        if not done and run.budget and run.budget.get("budget_s"):
            config, out_of_time = _replan(config, run, epoch, loop_started,
                                          epoch - state.start_epoch + 1)
            if out_of_time:
                done, state.stop_reason = True, "time_budget"
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
    row["improved"] = _track_best(state, model, config, epoch, score,
                                  float(vrow.get("val_loss", float("nan"))))
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
    primary_probs: list[torch.Tensor] = []
    for b, batch in enumerate(_progress(loader, config.progress, desc=f"epoch {epoch}",
                                        leave=False, unit="batch")):
        x = _to_device(batch["image"], run.device, run.channels_last)
        targets = _batch_targets(batch, tasks, "training")
        outputs = _forward(train_fwd, x, run, epoch, len(train_ds),  # type: ignore[arg-type]
                           config.batch_size)
        total, per_task = multitask_loss(outputs, targets, tasks, run.pos_weight)
        _check_finite(total, per_task, epoch, b, batch)
        if tasks[0].kind != "continuous":
            primary_probs.append(torch.sigmoid(outputs[tasks[0].name].detach().float()[:, 0]))
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
    if primary_probs:  # how far the primary task's outputs spread (near 0: collapsed)
        losses["train_output_sd"] = float(torch.cat(primary_probs).std(correction=0))
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
                score: float, val_loss: float = float("nan")) -> bool:
    """Whether the epoch improved on the best one (always, with ``select="last"`` and during the
    first ``min_epochs`` epochs); if so its weights become the best ones, else one more epoch
    without improvement is counted. ``select="val_loss"`` ranks epochs by minus the validation
    loss, ``"best"`` by the monitored score."""
    crit = -val_loss if config.select == "val_loss" else score
    warm_up = epoch <= config.min_epochs
    improved = (config.select == "last" or warm_up or state.best_epoch == 0
                or bool(np.isfinite(crit) and crit > state.best_score))
    if improved:
        state.best_score = crit if np.isfinite(crit) and not warm_up else -math.inf
        state.best_epoch = epoch
        state.wait = 0
        state.best_state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    else:
        state.wait += 1
    return improved


def _warn_small_validation(val_ds: Dataset, primary: Task, config: TrainConfig) -> None:
    """Warn when an epoch is chosen on a validation part too small to rank epochs by."""
    n = len(val_ds)  # type: ignore[arg-type]
    if config.select == "last" or n == 0 or primary.kind == "continuous":
        return
    targets = getattr(val_ds, "targets", None) or {}
    y = targets.get(primary.name)
    smallest = None
    if y is not None and len(y):
        from ichprog.training.inference import targets_to_classes

        counts = np.bincount(targets_to_classes(primary, np.asarray(y)),
                             minlength=max(primary.n_classes, 2))
        smallest = int(counts.min())
    if n >= MIN_VAL_PATIENTS and (smallest is None or smallest >= MIN_VAL_PER_CLASS):
        return
    per_class = f", {smallest} in its smallest class of {primary.name!r}" \
        if smallest is not None else ""
    warnings.warn(
        f"training: the validation part holds {n} patient(s){per_class}: too few to choose an "
        f"epoch on (select={config.select!r}); its score moves in steps of about {1 / n:.2f} "
        "from one patient to the next. Keep the last epoch (TrainConfig(select='last', "
        "patience=None), with schedule='onecycle' as in recipe='cpu'), choose on the smoother "
        "validation loss after a few epochs (select='val_loss', min_epochs=10), or hold out "
        f"more patients (at least {MIN_VAL_PATIENTS}, {MIN_VAL_PER_CLASS} per class)",
        UserWarning, stacklevel=3)


def _plan(model: MultiTaskNet, config: TrainConfig, train_ds: Dataset, val_ds: Dataset,
          out: Path | None, started: float) -> tuple[TrainConfig, dict[str, Any] | None]:
    """Before the first epoch: the seconds per epoch (a timed probe, on a CPU or under a time
    budget), a warning when the run will be long, and under ``time_budget`` the number of
    epochs that fit (``config`` is returned with that ``max_epochs``). A run found in ``out``
    keeps the epochs it was planned with, so that it resumes (or is reused) as it was."""
    import sys

    from ichprog.training.checkpoint import read_sidecar
    from ichprog.training.device import resolve_device

    device = resolve_device(config.device)
    budget = None if config.time_budget is None else float(config.time_budget)  # seconds
    if budget is None and device.type != "cpu":
        return config, None
    try:
        side = read_sidecar(out) if out is not None else None
    except ValueError:
        side = None  # _resume says what is wrong with it
    plan: dict[str, Any] = {"budget_s": budget, "max_epochs": config.max_epochs,
                            "planned_epochs": config.max_epochs, "estimated_epoch_s": None,
                            "warned": False}
    if side is not None:
        planned = side.get("config", {}).get("max_epochs")
        if budget is not None and side.get("config", {}).get("time_budget") is not None \
                and isinstance(planned, int) and 1 <= planned:
            plan["planned_epochs"] = planned
            plan["from_checkpoint"] = True
            return _with_epochs(config, planned), plan
        return config, (plan if budget is not None else None)
    per_epoch = _estimate_epoch_seconds(model, config, train_ds, val_ds, device,
                                        checkpoint=out is not None)
    plan["estimated_epoch_s"] = per_epoch
    if per_epoch is None:
        return config, (plan if budget is not None else None)  # the deadline still applies
    if budget is None:
        plan["warned"] = _warn_if_long(per_epoch, config.max_epochs, device, before=True)
        return config, plan
    left = budget - (time.perf_counter() - started)  # the probe's time counts
    epochs = int(max(1, min(config.max_epochs, math.floor(BUDGET_SHARE * left / per_epoch))))
    plan["planned_epochs"] = epochs
    cycle = " (the one-cycle schedule spans them)" if config.schedule == "onecycle" else ""
    fits = "" if epochs * per_epoch <= left else "; even one epoch may not fit"
    print(f"time budget {_duration_s(budget)}: one epoch estimated at "
          f"{_duration_s(per_epoch)} -> {epochs} of at most {config.max_epochs} epochs "
          f"planned{cycle}{fits}", file=sys.stderr, flush=True)
    return (_with_epochs(config, epochs) if epochs != config.max_epochs else config), plan


def _with_epochs(config: TrainConfig, epochs: int) -> TrainConfig:
    import dataclasses

    return dataclasses.replace(config, max_epochs=epochs,
                               min_epochs=min(config.min_epochs, epochs))


def _input_shape(ds: Dataset) -> tuple[int, ...] | None:
    """``(D, H, W)`` of a dataset's volumes without reading one (``None`` when unknown)."""
    cfg = getattr(ds, "config", None)
    if cfg is not None and getattr(cfg, "shape", None) is not None:
        return tuple(int(v) for v in cfg.shape)
    volumes = getattr(ds, "volumes", None)
    if volumes is not None and len(volumes):
        return tuple(int(v) for v in np.shape(volumes[0])[-3:])
    return None


def _estimate_epoch_seconds(model: MultiTaskNet, config: TrainConfig, train_ds: Dataset,
                            val_ds: Dataset, device: torch.device,
                            checkpoint: bool = False) -> float | None:
    """Seconds per epoch, measured on a copy of the model (the model, the random generators and
    the datasets are left untouched; reading the scans is not counted).

    The copy trains, through the loop's own training pass (data loader, loss, optimizer step),
    on blank volumes of the input size carrying the first training targets: one batch of two
    samples, then (when that is quick: a small model) two full batches, keeping the faster (the
    first steps of a process pay one-off set-up costs). Validation counts a third of a
    training step per patient (a forward pass without gradients). With ``checkpoint``, writing
    an end-of-epoch checkpoint of the copy into a temporary folder is timed and added. ``None``
    when the input size is unknown."""
    import copy
    import random
    import tempfile

    from ichprog.training.dataset import ArrayDataset

    shape = _input_shape(train_ds)
    n_train, n_val = len(train_ds), len(val_ds)  # type: ignore[arg-type]
    if shape is None:
        return None
    tasks = list(model.tasks)
    targets = getattr(train_ds, "targets", None) or {}
    if any(t.name not in targets for t in tasks):
        return None
    amp_dtype, _ = resolve_precision(config.precision, device)
    probe = copy.deepcopy(model).to(device)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay, amsgrad=config.amsgrad)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    pos_weight = _pos_weight(train_ds, tasks) if config.class_balance else None
    cfg = dataclasses.replace(config, progress=False, num_workers=0, accumulation_steps=1)
    run = _Run(device=device, amp_dtype=amp_dtype, precision_name="", channels_last=False,
               payload={}, run_hash="", optimizer=optimizer, scaler=scaler, scheduler=None,
               steps_per_epoch=1, pos_weight=pos_weight)

    def step(k: int) -> float:
        k = min(k, n_train)
        blank = ArrayDataset(np.zeros((k, *shape), np.float32), ids=[str(i) for i in range(k)],
                             targets={t.name: np.asarray(targets[t.name])[:k] for t in tasks})
        one = dataclasses.replace(cfg, batch_size=k)
        t0 = time.perf_counter()
        _train_epoch(probe, probe, blank, tasks, one, run, 1)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    try:  # a probe that cannot run (e.g. one sample for a BatchNorm) leaves the loop to say why
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            k = min(2, n_train)
            t = step(k)
            if t < 2.0:
                t = min(t, step(k))
            full = min(n_train, config.batch_size)
            if t < 1.0 and full > k:
                k = full
                t = min(step(k), step(k))
            save_s = 0.0
            if checkpoint:
                best = {n: v.detach().to("cpu").clone() for n, v in probe.state_dict().items()}
                with tempfile.TemporaryDirectory(prefix="ichprog_probe_") as tmp:
                    t0 = time.perf_counter()
                    _save_run(Path(tmp), probe, optimizer, scaler, best, [{"epoch": 1}], 1, 1,
                              0.0, 0, False, "max_epochs", "probe", {}, config, tasks[0])
                    save_s = time.perf_counter() - t0
    except (ValueError, RuntimeError):
        return None
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)  # noqa: NPY002
    if k == full:  # timed as the epoch batches it
        train_s = math.ceil(n_train / config.batch_size) * t
    else:
        train_s = n_train * t / k
    return float(train_s + n_val * (t / k) / 3.0 + save_s)


def _replan(config: TrainConfig, run: _Run, epoch: int, loop_started: float,
            n_done: int) -> tuple[TrainConfig, bool]:
    """Under a time budget, after an epoch: when the epochs run slower than planned (a busy
    machine, costs the probe did not see), plan fewer; when they run clearly faster (an
    estimate made on a busy machine), plan more, up to the configured ``max_epochs``. Returns
    the configuration to go on with and whether no further epoch fits. A new plan rebuilds the
    one-cycle schedule over the new number of epochs, at the step the run has reached (so it
    still anneals by the last epoch), and re-hashes the run with it."""
    import sys

    assert run.budget is not None
    now = time.perf_counter()
    per_epoch = (now - loop_started) / max(n_done, 1)
    left = float(run.budget["budget_s"]) - (now - run.started)
    if per_epoch <= 0 or left < per_epoch:
        return config, True
    cap = int(run.budget.get("max_epochs") or config.max_epochs)
    fits = min(cap, max(epoch + 1, epoch + math.floor(BUDGET_SHARE * left / per_epoch)))
    # fewer epochs as soon as they do not fit; more (up to the cap) only when two more fit, so
    # that timing noise does not move the schedule back and forth
    if fits == config.max_epochs or config.max_epochs < fits < config.max_epochs + 2:
        return config, False
    new = _with_epochs(config, fits)
    run.budget["planned_epochs"] = fits
    run.budget.setdefault("replanned_after_epochs", []).append(epoch)
    if run.scheduler is not None:
        run.scheduler = _make_scheduler(run.optimizer, new, run.steps_per_epoch)
        _fast_forward(run.scheduler, epoch * run.steps_per_epoch)
    run.payload["train_config"] = new.hashed_fields()
    run.run_hash = stable_hash(run.payload, length=20)
    print(f"time budget: epochs take {_duration_s(per_epoch)}, not the "
          f"{_duration_s(run.budget.get('estimated_epoch_s') or 0.0)} estimated -> "
          f"{fits} epochs planned instead of {config.max_epochs}"
          + (" (the one-cycle schedule is rebuilt to end with them)"
             if run.scheduler is not None else ""), file=sys.stderr, flush=True)
    return new, False


def _budget_report(config: TrainConfig, run: _Run, state: _RunState) -> dict[str, Any]:
    """``{"time_budget": ...}``: what a budget planned and what the run did (empty without a
    budget); said on stderr when progress is shown."""
    import sys

    plan = run.budget
    if not plan or not plan.get("budget_s"):
        return {}
    elapsed = time.perf_counter() - run.started
    epochs = int(state.rows[-1]["epoch"]) if state.rows else 0
    report = {k: v for k, v in plan.items() if k != "warned"}
    report.update({"epochs_run": epochs, "elapsed_s": round(elapsed, 1),
                   "stop_reason": state.stop_reason})
    if not state.finished:  # a budget was asked for: always say what it did
        how = ("stopped early: the next epoch would not have fit"
               if state.stop_reason == "time_budget" else "as planned")
        print(f"time budget {_duration_s(plan['budget_s'])}: {epochs} epoch(s) in "
              f"{_duration_s(elapsed)} ({how})", file=sys.stderr, flush=True)
    return {"time_budget": report}


def _result(model: MultiTaskNet, config: TrainConfig, run: _Run, state: _RunState,
            out: Path | None) -> TrainResult:
    """The :class:`TrainResult` of a run: a reused finished run as found, else with the best
    weights loaded and the history plotted into ``out``."""
    extra = _budget_report(config, run, state)
    if state.finished:
        return TrainResult(
            model=model, history=pd.DataFrame(state.rows), best_epoch=state.best_epoch,
            best_score=state.best_score, epochs_run=int(state.resumed_from or 0),
            stop_reason=state.stop_reason, config=config, out_dir=out,
            resumed_from=state.resumed_from, reused=True, device=str(run.device),
            precision=run.precision_name, config_hash=run.run_hash, extra=extra)
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    history = pd.DataFrame(state.rows)
    epochs_run = int(history["epoch"].max()) if len(history) else 0
    result = TrainResult(model=model, history=history, best_epoch=state.best_epoch,
                         best_score=state.best_score, epochs_run=epochs_run,
                         stop_reason=state.stop_reason, config=config, out_dir=out,
                         resumed_from=state.resumed_from, reused=False, device=str(run.device),
                         precision=run.precision_name, config_hash=run.run_hash, extra=extra)
    if out is not None and len(history):
        try:
            fig = result.plot_history(out / "history.png")
            import matplotlib.pyplot as plt

            plt.close(fig)
        except Exception as exc:  # plotting must never lose a finished run
            warnings.warn(f"could not plot the training history: {exc}", stacklevel=3)
    return result
