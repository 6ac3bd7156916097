"""What identifies a run: the hash payload of its configuration, model, initial weights and data,
and the differences between two payloads."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from ichprog.models import MultiTaskNet
from ichprog.training.config import TrainConfig


def _weights_digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _dataset_fingerprint(ds: Dataset) -> dict[str, Any]:
    fp: dict[str, Any] = {"length": len(ds)}  # type: ignore[arg-type]
    ids = getattr(ds, "ids", None)
    if ids is not None:
        fp["ids"] = hashlib.sha256("\x1f".join(map(str, ids)).encode()).hexdigest()[:16]
    cfg = getattr(ds, "config", None)
    if cfg is not None and hasattr(cfg, "key"):
        fp["preprocess"] = cfg.key()
    for attr in ("augment", "seed"):
        val = getattr(ds, attr, None)
        if dataclasses.is_dataclass(val) and not isinstance(val, type):
            fp[attr] = dataclasses.asdict(val)
        elif isinstance(val, bool | int | float | str):
            fp[attr] = val
    return fp


def _run_payload(model: MultiTaskNet, config: TrainConfig, train_ds: Dataset,
                 val_ds: Dataset, init_digest: str) -> dict[str, Any]:
    return {
        "train_config": config.hashed_fields(),
        "model": model.config(),
        "initial_weights": init_digest,
        "train_data": _dataset_fingerprint(train_ds),
        "val_data": _dataset_fingerprint(val_ds),
    }


def _diff_keys(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out += _diff_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out
