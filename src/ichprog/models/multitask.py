"""The multi-task network: one trunk, one small head per task, outputs by task name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ichprog.models.trunks import TrunkSpec, build_trunk, make_bf16_safe
from ichprog.tasks import Preset, Task, as_preset

__all__ = ["TaskHead", "MultiTaskNet", "multitask_loss", "balanced_pos_weight"]


class TaskHead(nn.Sequential):
    """ReLU (DenseNet trunks) -> global pooling -> flatten -> ``Linear(n_features, n_outputs)``.

    Parameters
    ----------
    n_features
        Channels of the trunk's feature map.
    n_outputs
        Logits of the task.
    pool
        ``"avg"`` (global average pooling) or ``"max"``.
    pre_activation
        Apply an (out-of-place) ReLU first, as DenseNet's classifier does.
    """

    def __init__(self, n_features: int, n_outputs: int, pool: str = "avg",
                 pre_activation: bool = True):
        super().__init__()
        if pre_activation:
            # Not in place: the trunk's output feeds every head, and saliency methods need
            # out-of-place ReLUs.
            self.add_module("relu", nn.ReLU(inplace=False))
        self.add_module("pool", nn.AdaptiveAvgPool3d(1) if pool == "avg" else nn.AdaptiveMaxPool3d(1))
        self.add_module("flatten", nn.Flatten(1))
        self.add_module("out", nn.Linear(n_features, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, n_outputs)``; computed in float32 even under autocast (cheap, and keeps
        probabilities free of bfloat16 rounding, which would create ties in rankings)."""
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return super().forward(x.float())
        return super().forward(x)


class MultiTaskNet(nn.Module):
    """A 3D trunk shared by one head per task.

    Parameters
    ----------
    tasks
        A :class:`~ichprog.tasks.Preset`, its name, or a sequence of :class:`~ichprog.tasks.Task`.
    trunk
        Trunk name (see :data:`ichprog.models.trunks.TRUNKS`); defaults to the preset's trunk.
    in_channels
        Input channels (1 for CT).
    dropout
        Trunk dropout; ``None`` keeps the trunk's default (0.2 for DenseNet121, none for
        ``densenet_tiny``, 0.5 for Perez et al.).
    trunk_kwargs
        Extra keyword arguments for the trunk (e.g. a smaller ``block_config``).

    Notes
    -----
    ``forward(x)`` takes a batch ``(N, C, D, H, W)`` and returns ``{task name: logits (N,
    n_outputs)}`` in the order of the tasks. Every ``Conv3d`` of the trunk is a
    :class:`~ichprog.models.trunks.Bf16SafeConv3d` (see there).

    Examples
    --------
    >>> import torch
    >>> net = MultiTaskNet("mt_ord_gcs_bin_age", trunk="densenet_tiny")
    >>> {k: tuple(v.shape) for k, v in net(torch.zeros(2, 1, 32, 32, 32)).items()}
    {'prognosis': (2, 1), 'gcs': (2, 2), 'age': (2, 1)}
    """

    def __init__(self, tasks: Preset | Sequence[Task] | str, trunk: str | None = None,
                 in_channels: int = 1, dropout: float | None = None,
                 trunk_kwargs: Mapping[str, Any] | None = None):
        super().__init__()
        self.preset = as_preset(tasks, trunk=trunk)
        self.trunk_name = self.preset.trunk
        self.in_channels = in_channels
        self.dropout = dropout
        self.trunk_kwargs = dict(trunk_kwargs or {})
        spec: TrunkSpec = build_trunk(self.trunk_name, in_channels=in_channels, dropout=dropout,
                                      **self.trunk_kwargs)
        self.spec = spec
        # CPU bfloat16 autocast computes wrong gradients for some small 3D convolutions
        # (see Bf16SafeConv3d); those calls fall back to float32.
        self.trunk = make_bf16_safe(spec.module)
        self.heads = nn.ModuleDict(
            {
                t.name: TaskHead(spec.n_features, t.n_outputs, pool=spec.pool,
                                 pre_activation=spec.pre_activation)
                for t in self.preset.tasks
            }
        )

    @property
    def tasks(self) -> tuple[Task, ...]:
        """The tasks, in output order (the first is the primary task)."""
        return self.preset.tasks

    @property
    def cam_layer(self) -> str:
        """Default Grad-CAM layer, as a dotted name inside this module."""
        return f"trunk.{self.spec.cam_layer}"

    def config(self) -> dict[str, Any]:
        """JSON-serialisable configuration; ``MultiTaskNet.from_config(cfg)`` rebuilds the net."""
        return {
            "preset": self.preset.to_dict(),
            "in_channels": self.in_channels,
            "dropout": self.dropout,
            "trunk_kwargs": {k: list(v) if isinstance(v, tuple) else v
                             for k, v in self.trunk_kwargs.items()},
        }

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> MultiTaskNet:
        """Rebuild a network (with fresh weights) from :meth:`config`."""
        kwargs = {k: tuple(v) if isinstance(v, list) else v
                  for k, v in dict(cfg.get("trunk_kwargs") or {}).items()}
        return cls(Preset.from_dict(cfg["preset"]), in_channels=cfg.get("in_channels", 1),
                   dropout=cfg.get("dropout"), trunk_kwargs=kwargs)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` (naming the expected and actual shape) for a wrong input."""
        if x.ndim != 5:
            raise ValueError(f"expected a batch (N, C, D, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channel(s), got {x.shape[1]}")
        if min(x.shape[2:]) < self.spec.min_size:
            raise ValueError(
                f"the {self.trunk_name} trunk needs every spatial side >= {self.spec.min_size} "
                f"voxels, got {tuple(x.shape[2:])}; resample to a larger size or use a smaller trunk"
            )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's feature map ``(N, n_features, d, h, w)`` (before the heads)."""
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits of every task: ``{task name: (N, n_outputs)}``."""
        self.check_input(x)
        f = self.trunk(x)
        return {name: head(f) for name, head in self.heads.items()}


def multitask_loss(outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor],
                   tasks: Sequence[Task], pos_weight: Mapping[str, torch.Tensor] | None = None
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of per-task losses (the paper's Eq. 1).

    BCE with logits for binary and (cumulative) ordinal tasks, mean squared error for continuous
    ones; each task's loss is weighted by ``task.weight``.

    Parameters
    ----------
    outputs
        ``{task name: logits (N, n_outputs)}`` (any float dtype; computed in float32).
    targets
        ``{task name: (N, n_outputs)}`` loss targets (:meth:`ichprog.tasks.Task.loss_targets`).
    tasks
        The tasks to include.
    pos_weight
        ``{task name: (n_outputs,)}`` weights of the positive targets of a binary or ordinal
        task's BCE (``pos_weight`` of :func:`torch.nn.functional.binary_cross_entropy_with_logits`),
        e.g. from :func:`balanced_pos_weight`; tasks not listed are unweighted.

    Returns
    -------
    total : torch.Tensor
        The weighted sum (a scalar).
    per_task : dict of str to torch.Tensor
        The unweighted loss of every task.
    """
    per_task: dict[str, torch.Tensor] = {}
    total: torch.Tensor | None = None
    for t in tasks:
        logits = outputs[t.name].float()
        target = targets[t.name].to(device=logits.device, dtype=logits.dtype).reshape(logits.shape)
        if t.kind == "continuous":
            loss = nn.functional.mse_loss(logits, target)
        else:
            w = pos_weight.get(t.name) if pos_weight is not None else None
            if w is not None:
                w = w.to(device=logits.device, dtype=logits.dtype)
            loss = nn.functional.binary_cross_entropy_with_logits(logits, target, pos_weight=w)
        per_task[t.name] = loss
        total = loss * t.weight if total is None else total + loss * t.weight
    assert total is not None
    return total, per_task


def balanced_pos_weight(targets: Mapping[str, Any], tasks: Sequence[Task]) -> dict[str, torch.Tensor]:
    """Positive-target weights that balance each binary or ordinal output of the training set.

    For every output column, ``negatives / positives`` among the training targets, so that both
    target values weigh the same in the loss (scikit-learn's ``class_weight="balanced"``, up to
    a common factor). A column without positives or negatives gets the weight 1.

    Parameters
    ----------
    targets
        ``{task name: (n_samples, n_outputs)}`` loss targets of the training set (after any
        oversampling), e.g. ``dataset.targets``.
    tasks
        The tasks; continuous ones are skipped.

    Returns
    -------
    dict of str to torch.Tensor
        ``{task name: (n_outputs,) float32}``.

    Examples
    --------
    >>> import numpy as np
    >>> from ichprog.tasks import GCS_ORDINAL
    >>> t = {"gcs": np.array([[0, 0], [0, 0], [1, 0], [1, 1]])}  # classes 0, 0, 1, 2
    >>> balanced_pos_weight(t, [GCS_ORDINAL])["gcs"].tolist()
    [1.0, 3.0]
    """
    out: dict[str, torch.Tensor] = {}
    for t in tasks:
        if t.kind == "continuous" or t.name not in targets:
            continue
        y = np.asarray(targets[t.name], dtype=np.float64).reshape(len(targets[t.name]), -1)
        pos = y.sum(0)
        neg = len(y) - pos
        w = np.where((pos > 0) & (neg > 0), neg / np.maximum(pos, 1), 1.0)
        out[t.name] = torch.as_tensor(w, dtype=torch.float32)
    return out
