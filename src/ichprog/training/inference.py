"""Batched inference: per-task probabilities (:func:`predict_proba`), and the validation pass of
the training loop with its losses and metrics."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ichprog.models import MultiTaskNet, multitask_loss
from ichprog.tasks import Task
from ichprog.training.device import (
    _autocast,
    _to_device,
    resolve_channels_last,
    resolve_device,
    resolve_precision,
)


def targets_to_classes(task: Task, loss_targets: np.ndarray) -> np.ndarray:
    """Invert :meth:`ichprog.tasks.Task.loss_targets`: class indices (or values) per sample.

    Parameters
    ----------
    task
        The task.
    loss_targets
        ``(n, n_outputs)`` targets as the datasets hold them (cumulative for ordinal tasks).
    """
    t = np.asarray(loss_targets, dtype=np.float64).reshape(len(loss_targets), -1)
    if task.kind == "continuous":
        return t[:, 0]
    if task.kind == "ordinal":
        return np.rint(t.sum(axis=1)).astype(np.int64)
    return np.rint(t[:, 0]).astype(np.int64)


def _batch_targets(batch: Mapping[str, Any], tasks: Sequence[Task], where: str) -> dict[str, torch.Tensor]:
    if "targets" not in batch:
        raise ValueError(f"the {where} dataset has no targets; build it with targets for the "
                         f"tasks {[t.name for t in tasks]}")
    targets = batch["targets"]
    missing = [t.name for t in tasks if t.name not in targets]
    if missing:
        raise KeyError(f"the {where} dataset lacks targets for task(s) {missing}; it has "
                       f"{sorted(targets)}")
    return {t.name: targets[t.name] for t in tasks}


def _progress(iterable: Any, enabled: bool, **kwargs: Any) -> Any:
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not enabled, **kwargs)


@torch.no_grad()
def _run_inference(model: nn.Module, dataset: Dataset, tasks: Sequence[Task], batch_size: int,
                   device: torch.device, amp_dtype: torch.dtype | None, channels_last: bool,
                   progress: bool, with_targets: bool, desc: str = "predict",
                   num_workers: int = 0, tta: str = "none") -> dict[str, Any]:
    """Logits (and with targets, losses) of ``model`` on ``dataset``; with ``tta="flip"`` the
    logits of the mean probability of each volume and its left-right mirror image."""
    if tta not in ("none", "flip"):
        raise ValueError(f"tta must be 'none' or 'flip', got {tta!r}")
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    ids: list[str] = []
    logits: dict[str, list[np.ndarray]] = {t.name: [] for t in tasks}
    targets: dict[str, list[np.ndarray]] = {t.name: [] for t in tasks}
    loss_sum: dict[str, float] = {t.name: 0.0 for t in tasks}
    total_sum = 0.0
    n = 0
    try:
        for batch in _progress(loader, progress, desc=desc, leave=False, unit="batch"):
            x = _to_device(batch["image"], device, channels_last)
            with _autocast(device, amp_dtype):
                out = model(x)
                mirrored = model(x.flip(-1)) if tta == "flip" else None
            out = {k: v.float() for k, v in out.items()}
            if mirrored is not None:
                out = _mean_of_outputs(tasks, out, {k: v.float() for k, v in mirrored.items()})
            bs = x.shape[0]
            ids += [str(i) for i in batch["id"]] if "id" in batch else [str(n + i) for i in range(bs)]
            for t in tasks:
                logits[t.name].append(out[t.name].cpu().numpy())
            if with_targets:
                tg = _batch_targets(batch, tasks, "validation")
                total, per_task = multitask_loss(out, tg, tasks)
                total_sum += float(total) * bs
                for t in tasks:
                    loss_sum[t.name] += float(per_task[t.name]) * bs
                    targets[t.name].append(tg[t.name].reshape(bs, -1).cpu().numpy())
            n += bs
    finally:
        model.train(was_training)
    result: dict[str, Any] = {"ids": ids, "n": n}
    result["logits"] = {k: np.concatenate(v).astype(np.float64) if v else np.zeros((0, 1))
                        for k, v in logits.items()}
    if with_targets:
        result["targets"] = {k: np.concatenate(v) for k, v in targets.items()}
        result["loss"] = total_sum / max(n, 1)
        result["loss_per_task"] = {k: v / max(n, 1) for k, v in loss_sum.items()}
    return result


def _mean_of_outputs(tasks: Sequence[Task], a: Mapping[str, torch.Tensor],
                     b: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per task, the output whose probability is the mean of ``a``'s and ``b``'s (the mean
    itself for continuous tasks), computed in log space: ``log(mean p) - log(mean(1 - p))``."""
    kinds = {t.name: t.kind for t in tasks}
    out = {}
    for name, la in a.items():
        lb = b[name]
        if kinds.get(name) == "continuous":
            out[name] = 0.5 * (la + lb)
            continue
        sig = torch.nn.functional.logsigmoid
        out[name] = (torch.logaddexp(sig(la), sig(lb)) - torch.logaddexp(sig(-la), sig(-lb)))
    return out


def _probs_from_logits(task: Task, logits: np.ndarray) -> np.ndarray:
    if task.kind == "continuous":
        return logits
    return 1.0 / (1.0 + np.exp(-logits))


def predict_proba(model: MultiTaskNet, dataset: Dataset, batch_size: int = 8,
                  device: str | torch.device = "auto", precision: str = "auto",
                  channels_last: bool | None = None, progress: bool = False,
                  num_workers: int = 0, tta: str = "none") -> dict[str, np.ndarray]:
    """Per-task probabilities of a model on every item of a dataset, in dataset order.

    Parameters
    ----------
    model
        A :class:`~ichprog.models.MultiTaskNet` (evaluated in eval mode; its mode is restored).
    dataset
        Items ``{"image": (1, D, H, W), ...}`` (``CTDataset``, :class:`ArrayDataset`); targets
        are not needed.
    batch_size, device, precision, channels_last, num_workers, tta
        As in :class:`TrainConfig` (``tta="flip"``: the mean probability of each volume and its
        left-right mirror image).
    progress
        Show a progress bar.

    Returns
    -------
    dict
        ``{task name: float64 array (n, n_outputs)}``: sigmoid outputs (``P(y > j)`` for the
        cumulative outputs of ordinal tasks), raw values for continuous tasks.
    """
    dev = resolve_device(device)
    amp, _ = resolve_precision(precision, dev)
    cl = resolve_channels_last(channels_last, dev, amp)
    model.to(dev)
    if cl:
        model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    res = _run_inference(model, dataset, model.tasks, batch_size, dev, amp, cl,
                         progress, with_targets=False, num_workers=num_workers, tta=tta)
    return {t.name: _probs_from_logits(t, res["logits"][t.name]) for t in model.tasks}


def _validation_metrics(tasks: Sequence[Task], res: Mapping[str, Any],
                        threshold: float) -> tuple[dict[str, float], float]:
    row: dict[str, float] = {"val_loss": float(res["loss"])}
    for t in tasks:
        row[f"val_loss_{t.name}"] = float(res["loss_per_task"][t.name])
    score = float("nan")
    for i, t in enumerate(tasks):
        y = targets_to_classes(t, res["targets"][t.name])
        probs = _probs_from_logits(t, res["logits"][t.name])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = t.metrics(y, probs, threshold=threshold)
        for k, v in m.items():
            row[f"val_{t.name}_{k}"] = float(v)
        if i == 0:
            if "balanced_accuracy" not in m:
                raise ValueError(f"the primary task {t.name!r} ({t.kind}) has no balanced accuracy "
                                 "to monitor; make a binary or ordinal task the first task")
            score = float(m["balanced_accuracy"])
    return row, score
