"""A torch ``Dataset`` of pre-processed CT volumes with the paper's random augmentations.

Items come from a :class:`ichprog.data.VolumeCache` (each scan is decoded and resized once per
configuration) or from memory (``preload=True``). Training sets add the paper's augmentations,
each applied with probability 0.5: a rotation of up to 5 degrees, a zoom of up to 10 % (a truly
random zoom, MONAI's ``RandZoom``) and Gaussian noise with mean 0 and standard deviation 0.01.
The random draws of an item depend only on ``(seed, epoch, index)``: the same seed reproduces a
run whatever the number of workers, and :meth:`CTDataset.set_epoch` gives every epoch new draws.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from ichprog._util import derive_seed
from ichprog.data.cache import VolumeCache, load_preprocessed
from ichprog.data.preprocess import PreprocessConfig

__all__ = ["CTDataset", "Augment"]


@dataclass(frozen=True)
class Augment:
    """The random augmentations of training volumes (defaults: the paper's).

    Parameters
    ----------
    prob
        Probability of applying each of the three transforms.
    rotate_deg
        Maximum rotation angle in degrees (uniform in ``[-rotate_deg, rotate_deg]``).
    rotate_axes
        ``"axial"``: rotate in the axial (H, W) plane only; ``"all"``: about each of the three
        axes.
    zoom
        Maximum relative zoom: the factor is uniform in ``[1 - zoom, 1 + zoom]``, the same for
        all axes, and the output keeps its size (cropped or zero-padded).
    noise_mean, noise_std
        Additive Gaussian noise (the standard deviation is fixed, not sampled).

    Examples
    --------
    >>> import numpy as np
    >>> from ichprog.data import Augment
    >>> aug = Augment()
    >>> out = aug(np.zeros((1, 4, 8, 8), dtype=np.float32), seed=3)
    >>> tuple(out.shape)
    (1, 4, 8, 8)
    """

    prob: float = 0.5
    rotate_deg: float = 5.0
    rotate_axes: Literal["axial", "all"] = "axial"
    zoom: float = 0.1
    noise_mean: float = 0.0
    noise_std: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 <= self.prob <= 1.0:
            raise ValueError(f"Augment.prob must be in [0, 1], got {self.prob}")
        if not 0.0 <= self.rotate_deg <= 180.0:
            raise ValueError(f"Augment.rotate_deg must be in [0, 180], got {self.rotate_deg}")
        if self.rotate_axes not in ("axial", "all"):
            raise ValueError(f"Augment.rotate_axes must be 'axial' or 'all', got {self.rotate_axes!r}")
        if not 0.0 <= self.zoom < 1.0:
            raise ValueError(f"Augment.zoom must be in [0, 1), got {self.zoom}")
        if not self.noise_std >= 0:
            raise ValueError(f"Augment.noise_std must be >= 0, got {self.noise_std}")

    def build(self) -> Any:
        """The MONAI ``Compose`` of ``RandRotate``, ``RandZoom`` and ``RandGaussianNoise`` for
        channel-first ``(C, D, H, W)`` arrays (a transform whose size is 0 is left out)."""
        from monai.transforms import Compose, RandGaussianNoise, RandRotate, RandZoom

        angle = math.radians(self.rotate_deg)
        # MONAI's range_x rotates within the plane of the last two spatial axes (H, W) of a
        # (C, D, H, W) array, i.e. about the depth axis.
        other = 0.0 if self.rotate_axes == "axial" else angle
        transforms: list[Any] = []
        if self.rotate_deg > 0:
            transforms.append(RandRotate(range_x=angle, range_y=other, range_z=other,
                                         prob=self.prob, keep_size=True, mode="bilinear",
                                         padding_mode="zeros"))
        if self.zoom > 0:
            transforms.append(RandZoom(prob=self.prob, min_zoom=1.0 - self.zoom,
                                       max_zoom=1.0 + self.zoom, mode="trilinear",
                                       padding_mode="constant", keep_size=True))
        if self.noise_std > 0 or self.noise_mean != 0:
            transforms.append(RandGaussianNoise(prob=self.prob, mean=self.noise_mean,
                                                std=self.noise_std, sample_std=False))
        return Compose(transforms)

    @functools.cached_property
    def _transform(self) -> Any:
        return self.build()

    def __call__(self, image: Any, seed: int) -> torch.Tensor:
        """Augment one channel-first ``(C, D, H, W)`` volume with draws fixed by ``seed``."""
        transform = self._transform
        transform.set_random_state(seed=int(seed) % 2**32)
        return _plain_tensor(transform(image))


def _plain_tensor(x: Any) -> torch.Tensor:
    if hasattr(x, "as_tensor"):  # monai MetaTensor -> plain tensor
        x = x.as_tensor()
    t = torch.as_tensor(x)
    return t.to(torch.float32).contiguous()


class CTDataset(Dataset):
    """Pre-processed CT volumes of some patients of a cohort, with targets and augmentations.

    Parameters
    ----------
    cohort
        A :class:`ichprog.data.Cohort` with images.
    ids
        Patient IDs, one item each, in this order (IDs may repeat, e.g. after
        :func:`ichprog.data.oversample`).
    config
        Pre-processing settings; default the paper's.
    targets
        Optional ``{task name: array (n, n_outputs)}`` in ``ids`` order (for example
        ``{t.name: t.loss_targets(c) for t, c in ...}``); items then carry a ``"targets"`` dict of
        float32 tensors ``(n_outputs,)``.
    augment
        ``True`` for the paper's augmentations (:class:`Augment` defaults), an :class:`Augment`
        for other settings, ``False`` (default) for none. Use it on training data only.
    cache_dir
        Folder of the :class:`~ichprog.data.VolumeCache`; ``None`` for the default
        (``$ICHPROG_CACHE`` or ``~/.cache/ichprog``); ``False`` to decode and pre-process every
        file on every access (slow; the authors' recipe).
    seed
        Seed of the augmentations.
    preload
        Keep every (unique) volume in memory after the first read (for small volumes and
        cohorts); the volumes are loaded when the dataset is built.
    progress
        Show a progress bar while preloading.

    Notes
    -----
    An item is ``{"image": float32 tensor (1, D, H, W), "id": str, "index": int,
    "targets": {task: float32 tensor (n_outputs,)}}`` (``"targets"`` only when given). Call
    :meth:`set_epoch` before each training epoch to draw new augmentations; with a
    ``DataLoader`` use ``persistent_workers=False`` so that workers see the new epoch.

    Examples
    --------
    >>> from ichprog.data import CTDataset, PreprocessConfig  # doctest: +SKIP
    >>> ds = CTDataset(cohort, fold.train, PreprocessConfig(), augment=True, seed=0)  # doctest: +SKIP
    >>> ds.set_epoch(3); ds[0]["image"].shape  # doctest: +SKIP
    torch.Size([1, 40, 301, 301])
    """

    def __init__(
        self,
        cohort: Any,
        ids: Sequence[Any],
        config: PreprocessConfig | None = None,
        targets: Mapping[str, Any] | None = None,
        augment: bool | Augment = False,
        cache_dir: str | os.PathLike[str] | None | Literal[False] = None,
        seed: int = 0,
        *,
        preload: bool = False,
        progress: bool = False,
    ) -> None:
        self.cohort = cohort
        self.ids = [str(i) for i in ids]
        unknown = [i for i in dict.fromkeys(self.ids) if i not in cohort]
        if unknown:
            raise KeyError(f"CTDataset: patient ID(s) not in the cohort: {unknown[:10]}")
        self.paths: list[Path] = [Path(cohort.image_path(i)) for i in self.ids]
        self.config = config if config is not None else PreprocessConfig()
        self.targets: dict[str, np.ndarray] | None = None
        if targets is not None:
            self.targets = {}
            for name, arr in targets.items():
                a = np.asarray(arr, dtype=np.float32)
                if a.ndim == 1:
                    a = a.reshape(-1, 1)
                if a.ndim != 2 or a.shape[0] != len(self.ids):
                    raise ValueError(
                        f"CTDataset: targets[{name!r}] has shape {np.shape(arr)}, expected "
                        f"({len(self.ids)}, n_outputs) in ids order"
                    )
                if not np.isfinite(a).all():
                    row = int(np.argwhere(~np.isfinite(a))[0][0])
                    raise ValueError(
                        f"CTDataset: targets[{name!r}] is not finite for patient {self.ids[row]!r}"
                    )
                self.targets[str(name)] = a
        if augment is True:
            self.augment: Augment | None = Augment()
        elif augment is False or augment is None:
            self.augment = None
        elif isinstance(augment, Augment):
            self.augment = augment
        else:
            raise TypeError(f"augment must be a bool or an Augment, got {type(augment).__name__}")
        self._transform = self.augment.build() if self.augment is not None else None
        self.seed = int(seed)
        self.epoch = 0
        self.cache: VolumeCache | None = (
            None if cache_dir is False else VolumeCache(cache_dir, self.config)
        )
        self._memory: dict[str, np.ndarray] | None = None
        if preload:
            from tqdm.auto import tqdm

            self._memory = {}
            for pid, path in tqdm(list(dict(zip(self.ids, self.paths)).items()),
                                  desc="loading volumes", unit="vol", disable=not progress):
                self._memory[pid] = self._load(path)

    def __len__(self) -> int:
        return len(self.ids)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch number that, with the seed and the item index, fixes the augmentation
        draws."""
        if int(epoch) != epoch or epoch < 0:
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        self.epoch = int(epoch)

    def _load(self, path: Path) -> np.ndarray:
        if self.cache is not None:
            return self.cache.get(path)
        return load_preprocessed(path, self.config)

    def volume(self, index: int) -> np.ndarray:
        """The pre-processed (not augmented) float32 ``(D, H, W)`` volume of item ``index``."""
        pid = self.ids[index]
        if self._memory is not None:
            return self._memory[pid]
        return self._load(self.paths[index])

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        index = int(index) % len(self)
        vol = self.volume(index)
        if self._memory is not None:  # never hand out (or augment) the kept array itself
            vol = vol.copy()
        image = torch.from_numpy(np.ascontiguousarray(vol, dtype=np.float32))[None]
        if self._transform is not None:
            item_seed = derive_seed(int(self.seed) % 2**63, self.epoch, index, bits=32)
            self._transform.set_random_state(seed=item_seed)
            image = _plain_tensor(self._transform(image))
        item: dict[str, Any] = {"image": image, "id": self.ids[index], "index": index}
        if self.targets is not None:
            item["targets"] = {k: torch.from_numpy(v[index].copy()) for k, v in self.targets.items()}
        return item

    def __repr__(self) -> str:
        return (
            f"CTDataset(n={len(self)}, shape={self.config.shape}, augment={self.augment is not None}, "
            f"cache={str(self.cache.root) if self.cache is not None else None!r}, seed={self.seed}, "
            f"epoch={self.epoch})"
        )
