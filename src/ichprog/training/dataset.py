"""An in-memory dataset with the ``CTDataset`` item contract: :class:`ArrayDataset`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset


class ArrayDataset(Dataset):
    """Pre-processed volumes held in memory, with the item contract of ``CTDataset``.

    Parameters
    ----------
    volumes
        ``(N, D, H, W)`` array or a sequence of ``(D, H, W)`` arrays (already pre-processed).
    ids
        One identifier per volume (default ``"0"``, ``"1"``, ...).
    targets
        Optional ``{task name: array (N, n_outputs)}`` of loss targets (see
        :meth:`ichprog.tasks.Task.loss_targets`).

    Notes
    -----
    Items are ``{"image": float32 (1, D, H, W), "id": str, "index": int, "targets": {...}}``
    (``"targets"`` only when given).
    """

    def __init__(self, volumes: np.ndarray | Sequence[np.ndarray], ids: Sequence[str] | None = None,
                 targets: Mapping[str, np.ndarray] | None = None):
        vols = [np.asarray(v) for v in volumes]
        for i, v in enumerate(vols):
            if v.ndim != 3:
                raise ValueError(f"volume {i} must be a pre-processed (D, H, W) array, got shape "
                                 f"{v.shape}")
            if not np.issubdtype(v.dtype, np.number):
                raise ValueError(f"volume {i} must be numeric, got dtype {v.dtype}")
        self.volumes = vols
        self.ids = [str(i) for i in (ids if ids is not None else range(len(vols)))]
        if len(self.ids) != len(vols):
            raise ValueError(f"got {len(vols)} volumes but {len(self.ids)} ids")
        self.targets: dict[str, np.ndarray] | None = None
        if targets is not None:
            self.targets = {}
            for name, arr in targets.items():
                a = np.asarray(arr, dtype=np.float32)
                a = a.reshape(len(a), -1)
                if len(a) != len(vols):
                    raise ValueError(f"targets[{name!r}] has {len(a)} rows for {len(vols)} volumes")
                self.targets[name] = a

    def __len__(self) -> int:
        return len(self.volumes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {
            "image": torch.from_numpy(np.ascontiguousarray(self.volumes[index], dtype=np.float32))[None],
            "id": self.ids[index],
            "index": int(index),
        }
        if self.targets is not None:
            item["targets"] = {k: torch.from_numpy(v[index]) for k, v in self.targets.items()}
        return item
