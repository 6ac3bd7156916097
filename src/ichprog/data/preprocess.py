"""The deterministic pre-processing of a CT volume, from the file's voxels to the network input.

Steps, in order (each configurable in :class:`PreprocessConfig`):

1. **Reorient** from the affine to the closest canonical orientation (RAS+, as
   :func:`nibabel.as_closest_canonical`), so scans from every scanner come out the same way, and
   transpose the canonical ``(x, y, z)`` array to ``(z, y, x)`` = ``(D, H, W)``.
2. **Skull strip** (optional, offline): Hounsfield thresholds, an in-plane erosion, the largest
   connected component, dilation back, and per-slice hole filling (:func:`strip_skull`).
3. **Window** Hounsfield units to ``[0, 1]`` with a level and width: values outside the window are
   clipped (default) or, with ``window="bandpass"``, set to 0 as in the authors' scripts.
4. **Pad** the depth symmetrically (with 0) to the target depth when the scan has fewer slices.
5. **Resize** to the target shape (``"area"`` interpolation like the paper by default).

:func:`to_original_space` inverts the geometric part (resize, padding, reorientation) so that a
saliency map computed on the network input can be saved as a NIfTI aligned with the original scan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ichprog._util import stable_hash
from ichprog.data.plausibility import ScanChecks

__all__ = [
    "PreprocessConfig",
    "preprocess_volume",
    "to_original_space",
    "canonical_orientation",
    "to_dhw",
    "window_hu",
    "strip_skull",
    "pad_depth",
    "resize_volume",
    "PIPELINE_VERSION",
    "AUTHORS_PREPROCESS",
]

#: Bumped whenever the output of :func:`preprocess_volume` changes for a given configuration, so
#: that persistent caches keyed by :meth:`PreprocessConfig.key` are not reused across versions.
PIPELINE_VERSION = 3

Window = Literal["clip", "bandpass"]
Interpolation = Literal["area", "trilinear", "nearest"]


def _as_shape(shape: Any) -> tuple[int, int, int]:
    try:
        out = tuple(int(s) for s in shape)
    except TypeError:
        raise ValueError(f"shape must be three positive integers (D, H, W), got {shape!r}") from None
    if len(out) != 3 or any(s < 1 for s in out) or any(int(s) != s for s in shape):
        raise ValueError(f"shape must be three positive integers (D, H, W), got {shape!r}")
    return (out[0], out[1], out[2])


@dataclass(frozen=True)
class PreprocessConfig:
    """Settings of the deterministic pre-processing (frozen; the default is the paper's).

    Parameters
    ----------
    shape
        Output ``(D, H, W)``; the paper's network input is ``(1, 40, 301, 301)``.
    window_level, window_width
        Hounsfield window: ``[level - width/2, level + width/2]`` maps to ``[0, 1]``. The default
        ``57.5`` / ``85`` is the paper's ``(HU - 15) / 85``, i.e. the window 15-100 HU.
    window
        ``"clip"`` (default): values outside the window are clipped to 0 or 1. ``"bandpass"``:
        values outside the window, and its upper edge, are set to 0 (bone and air alike), as the
        authors' scripts did; use it to reproduce their numbers (see
        :data:`AUTHORS_PREPROCESS`).
    skull_strip
        Remove skull, scalp and background with :func:`strip_skull`. Switch off for scans that
        are already skull-stripped (harmless but slower when left on).
    reorient
        Reorient to the closest canonical (RAS+) orientation from the affine. Off: the file's voxel
        order is taken as ``(x, y, z)`` (the authors' scripts: their reader's voxel order, then a
        rotation by 270 degrees and a flip that together swap the first two axes, which the
        transpose to ``(z, y, x)`` does too).
    interpolation
        ``"area"`` (block averages, the paper's choice), ``"trilinear"`` or ``"nearest"``.
    pad_depth
        Pad the depth symmetrically to ``shape[0]`` before resizing when a scan has fewer slices
        (the paper's recipe). Off: the depth is interpolated as the other axes.
    strip_range
        Hounsfield range of brain tissue, CSF and blood used by the skull stripper.
    strip_iterations
        In-plane erosion (and dilation) steps of the skull stripper, in voxels.
    checks
        Plausibility checks of every scan read from a file (:class:`~ichprog.data.ScanChecks`):
        Hounsfield range, tissue fractions, size and field of view against ``shape``. They do
        not change the numbers, so they are not part of :meth:`key`, and the default is left
        out of :meth:`to_dict`.

    Examples
    --------
    >>> from ichprog.data import PreprocessConfig
    >>> cfg = PreprocessConfig(shape=(8, 32, 32), skull_strip=False)
    >>> cfg.shape, cfg.window
    ((8, 32, 32), 'clip')
    >>> cfg.key() == PreprocessConfig(shape=(8, 32, 32), skull_strip=False).key()
    True
    """

    shape: tuple[int, int, int] = (40, 301, 301)
    window_level: float = 57.5
    window_width: float = 85.0
    window: Window = "clip"
    skull_strip: bool = True
    reorient: bool = True
    interpolation: Interpolation = "area"
    pad_depth: bool = True
    strip_range: tuple[float, float] = (-15.0, 120.0)
    strip_iterations: int = 2
    checks: ScanChecks = ScanChecks()

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _as_shape(self.shape))
        if isinstance(self.checks, Mapping):
            object.__setattr__(self, "checks", ScanChecks.from_dict(self.checks))
        if not isinstance(self.checks, ScanChecks):
            raise TypeError("PreprocessConfig.checks must be a ScanChecks, got "
                            f"{type(self.checks).__name__}")
        for name in ("window_level", "window_width"):
            v = getattr(self, name)
            if not np.isfinite(v):
                raise ValueError(f"PreprocessConfig.{name} must be finite, got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.window_width <= 0:
            raise ValueError(f"PreprocessConfig.window_width must be > 0, got {self.window_width}")
        if self.window not in ("clip", "bandpass"):
            raise ValueError(
                f"PreprocessConfig.window must be 'clip' or 'bandpass', got {self.window!r}"
            )
        if self.interpolation not in ("area", "trilinear", "nearest"):
            raise ValueError(
                "PreprocessConfig.interpolation must be 'area', 'trilinear' or 'nearest', "
                f"got {self.interpolation!r}"
            )
        lo, hi = (float(v) for v in self.strip_range)
        if not lo < hi:
            raise ValueError(f"PreprocessConfig.strip_range must be (low, high), got {self.strip_range}")
        object.__setattr__(self, "strip_range", (lo, hi))
        if int(self.strip_iterations) != self.strip_iterations or self.strip_iterations < 0:
            raise ValueError(
                f"PreprocessConfig.strip_iterations must be an integer >= 0, got {self.strip_iterations!r}"
            )
        object.__setattr__(self, "strip_iterations", int(self.strip_iterations))
        for name in ("skull_strip", "reorient", "pad_depth"):
            object.__setattr__(self, name, bool(getattr(self, name)))

    @property
    def window_range(self) -> tuple[float, float]:
        """The Hounsfield interval mapped to ``[0, 1]``."""
        half = self.window_width / 2.0
        return (self.window_level - half, self.window_level + half)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (tuples as lists)."""
        d = dataclasses.asdict(self)
        d["shape"] = list(self.shape)
        d["strip_range"] = list(self.strip_range)
        if self.checks == ScanChecks():
            del d["checks"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessConfig:
        """Inverse of :meth:`to_dict`."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        if unknown:
            raise ValueError(f"PreprocessConfig: unknown setting(s) {unknown}")
        d = dict(d)
        if "shape" in d:
            d["shape"] = tuple(d["shape"])
        if "strip_range" in d:
            d["strip_range"] = tuple(d["strip_range"])
        return cls(**d)

    def replace(self, **changes: Any) -> PreprocessConfig:
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)

    def key(self) -> str:
        """A stable 16-hex-digit hash of the settings and :data:`PIPELINE_VERSION`.

        Equal settings give equal keys in every process and Python version (it does not use
        :func:`hash`).
        """
        d = self.to_dict()
        d.pop("checks", None)
        return stable_hash({"v": PIPELINE_VERSION, **d}, length=16, default=None)


#: The authors' input pipeline, step for step, for their published checkpoints
#: (:func:`ichprog.models.load_authors_checkpoint`). Their scripts read each scan with MONAI's
#: ITK reader (the file's voxel order, which :func:`ichprog.data.load_volume` also returns; for
#: a DICOM folder, ITK's series order), rotated it by ``k=3`` quarter turns and flipped spatial
#: axis 1 (together: the first two axes swapped, which ``reorient=False`` and the transpose to
#: ``(z, y, x)`` reproduce), computed ``(HU - 15) / 85`` and kept the values strictly between 0
#: and 1 (``window="bandpass"``), padded the depth symmetrically with 0 to 40 slices, resized to
#: 301 x 301 x 40 with ``"area"`` interpolation and transposed to ``(C, D, H, W)``. Their scans
#: were skull-stripped beforehand, so there is no skull stripping here: strip yours first (or
#: use ``AUTHORS_PREPROCESS.replace(skull_strip=True)``).
AUTHORS_PREPROCESS = PreprocessConfig(
    shape=(40, 301, 301), window_level=57.5, window_width=85.0, window="bandpass",
    skull_strip=False, reorient=False, interpolation="area", pad_depth=True,
)


# ----------------------------------------------------------------------------------------------
# geometry
# ----------------------------------------------------------------------------------------------
def canonical_orientation(affine: Any) -> np.ndarray:
    """The nibabel orientation array that takes the file's voxel axes to the closest RAS+ axes.

    Returns the ``(3, 2)`` array of :func:`nibabel.orientations.io_orientation` (for each voxel
    axis: the world axis it maps to and its direction).
    """
    from nibabel.orientations import io_orientation

    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4) or not np.isfinite(aff).all():
        raise ValueError(f"affine must be a finite 4x4 matrix, got {aff!r}")
    ornt = io_orientation(aff)
    if np.isnan(ornt).any():
        raise ValueError(f"affine has a degenerate (zero-length) axis: {aff.tolist()}")
    return ornt


def _to_dhw(array: np.ndarray, affine: Any, reorient: bool) -> np.ndarray:
    from nibabel.orientations import apply_orientation

    if reorient:
        array = apply_orientation(array, canonical_orientation(affine))
    return np.ascontiguousarray(np.transpose(array, (2, 1, 0)))


def to_dhw(array: Any, affine: Any, reorient: bool = True) -> np.ndarray:
    """The geometric first step of :func:`preprocess_volume` alone: reorient a volume in the
    file's voxel order to the closest canonical (RAS+) orientation and transpose it to
    ``(D, H, W)`` = ``(z, y, x)``; values and dtype are unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> from ichprog.data.preprocess import to_dhw
    >>> flipped_x = np.diag([-1.0, 1.0, 1.0, 1.0])
    >>> to_dhw(np.arange(6).reshape(3, 2, 1), flipped_x)[0].tolist()
    [[4, 2, 0], [5, 3, 1]]
    """
    arr = np.asarray(array)
    if arr.ndim != 3:
        raise ValueError(f"to_dhw expects a 3D volume, got shape {arr.shape}")
    return _to_dhw(arr, affine, reorient)


def _from_dhw(volume: np.ndarray, affine: Any, reorient: bool) -> np.ndarray:
    from nibabel.orientations import apply_orientation, axcodes2ornt, ornt_transform

    xyz = np.transpose(volume, (2, 1, 0))
    if reorient:
        ornt = canonical_orientation(affine)
        back = ornt_transform(axcodes2ornt(("R", "A", "S")), ornt)
        xyz = apply_orientation(xyz, back)
    return np.ascontiguousarray(xyz)


def _canonical_dhw_shape(original_shape: Sequence[int], affine: Any, reorient: bool) -> tuple[int, ...]:
    shape = tuple(int(s) for s in original_shape)
    if reorient:
        ornt = canonical_orientation(affine)
        can = [0, 0, 0]
        for ax, (world, _) in enumerate(ornt):
            can[int(world)] = shape[ax]
        shape = (can[0], can[1], can[2])
    return (shape[2], shape[1], shape[0])


# ----------------------------------------------------------------------------------------------
# intensity
# ----------------------------------------------------------------------------------------------
def window_hu(
    volume: Any, level: float = 57.5, width: float = 85.0, mode: Window = "clip"
) -> np.ndarray:
    """Map Hounsfield units to ``[0, 1]`` with a window.

    ``(HU - (level - width/2)) / width``, then values outside ``[0, 1]`` are clipped
    (``mode="clip"``) or set to 0 (``mode="bandpass"``, the authors' scripts: they kept only
    the values strictly between 0 and 1, so the upper edge of the window, 1.0, is set to 0 too).

    Examples
    --------
    >>> from ichprog.data.preprocess import window_hu
    >>> window_hu([0.0, 15.0, 57.5, 100.0, 1000.0]).round(3).tolist()
    [0.0, 0.0, 0.5, 1.0, 1.0]
    >>> window_hu([0.0, 57.5, 99.0, 100.0, 1000.0], mode="bandpass").round(3).tolist()
    [0.0, 0.5, 0.988, 0.0, 0.0]
    """
    if not width > 0:
        raise ValueError(f"window width must be > 0, got {width!r}")
    x = (np.asarray(volume, dtype=np.float32) - np.float32(level - width / 2.0)) / np.float32(width)
    if mode == "clip":
        return np.clip(x, 0.0, 1.0, out=x)
    if mode == "bandpass":
        # MONAI's ThresholdIntensity in their scripts kept x > 0 and then x < 1
        x[(x <= 0.0) | (x >= 1.0)] = 0.0
        return x
    raise ValueError(f"window mode must be 'clip' or 'bandpass', got {mode!r}")


def strip_skull(
    volume: Any,
    hu_range: tuple[float, float] = (-15.0, 120.0),
    iterations: int = 2,
    background: float = -1024.0,
    return_mask: bool = False,
    bone_hu: float = 300.0,
) -> Any:
    """Remove skull, scalp and background from a CT volume in Hounsfield units (offline).

    Candidates are the voxels within ``hu_range``. In every axial slice where the skull
    (voxels above ``bone_hu``) forms a closed ring around most of the candidates, only the
    candidates inside the ring are kept: this removes the scalp even where it joins the brain
    through the skull base in lower slices. The brain is then the largest 3D connected component
    of the candidates after an in-plane erosion (which cuts thin links through the skull's
    openings), dilated back by the same amount, restricted to the candidates, with its holes
    filled slice by slice. Works on ``(D, H, W)`` volumes (axial slices along the first axis).

    Parameters
    ----------
    volume
        ``(D, H, W)`` Hounsfield units.
    hu_range
        Range of brain tissue, CSF and blood. Bone (several hundred HU) and air fall outside.
    iterations
        Erosion and dilation steps in voxels (in-plane only).
    background
        Value written outside the brain (air).
    return_mask
        Also return the boolean brain mask.
    bone_hu
        Voxels above this value are bone (for the closed-ring test).

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, numpy.ndarray)
        The stripped float32 volume (and the mask).

    Raises
    ------
    ValueError
        The volume is not 3D, or no voxel lies in ``hu_range`` (wrong units, or not a head CT):
        pass ``skull_strip=False`` for volumes that are not in Hounsfield units.
    """
    from scipy import ndimage

    vol = np.asarray(volume, dtype=np.float32)
    if vol.ndim != 3:
        raise ValueError(f"strip_skull expects a 3D (D, H, W) volume, got shape {vol.shape}")
    lo, hi = hu_range
    candidate = (vol >= lo) & (vol <= hi)
    if not candidate.any():
        raise ValueError(
            f"strip_skull: no voxel within {lo:g}..{hi:g} HU (value range "
            f"{float(vol.min()):g}..{float(vol.max()):g}); is the volume in Hounsfield units? "
            "Pass skull_strip=False otherwise"
        )
    bone = vol > bone_hu
    for d in range(vol.shape[0]):
        if not bone[d].any():
            continue  # no skull in this slice (or an already stripped scan)
        inside = ndimage.binary_fill_holes(bone[d]) & ~bone[d] & candidate[d]
        if inside.sum() >= 0.5 * candidate[d].sum():
            candidate[d] = inside
    if not candidate.any():  # pragma: no cover - the ring test keeps at least half
        raise ValueError("strip_skull: no brain voxel left inside the skull")
    plane = np.zeros((3, 3, 3), dtype=bool)
    plane[1] = ndimage.generate_binary_structure(2, 1)
    core = ndimage.binary_erosion(candidate, plane, iterations=iterations) if iterations else candidate
    if not core.any():
        core = candidate  # thin structures vanish under erosion: fall back to the candidates
    labels, n = ndimage.label(core)
    if n > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        core = labels == int(np.argmax(sizes))
    mask = ndimage.binary_dilation(core, plane, iterations=iterations) if iterations else core
    mask &= candidate
    for d in range(mask.shape[0]):
        if mask[d].any():
            mask[d] = ndimage.binary_fill_holes(mask[d])
    out = np.where(mask, vol, np.float32(background)).astype(np.float32)
    return (out, mask) if return_mask else out


# ----------------------------------------------------------------------------------------------
# size
# ----------------------------------------------------------------------------------------------
def _depth_padding(depth: int, target: int) -> tuple[int, int]:
    if depth >= target:
        return (0, 0)
    total = target - depth
    return (total // 2, total - total // 2)


def pad_depth(volume: Any, depth: int, value: float = 0.0) -> np.ndarray:
    """Pad a ``(D, H, W)`` volume symmetrically along D to ``depth`` slices (odd extra slice at
    the end); volumes with ``D >= depth`` are returned unchanged."""
    vol = np.asarray(volume)
    before, after = _depth_padding(vol.shape[0], int(depth))
    if before == after == 0:
        return vol
    return np.pad(vol, ((before, after), (0, 0), (0, 0)), mode="constant", constant_values=value)


def resize_volume(
    volume: Any, shape: Sequence[int], mode: Interpolation | str = "area"
) -> np.ndarray:
    """Resize a 3D volume to ``shape`` with torch's interpolation (``"area"``, ``"trilinear"``
    or ``"nearest"``); returns float32."""
    import torch
    import torch.nn.functional as F

    shape = _as_shape(shape)
    vol = np.asarray(volume, dtype=np.float32)
    if vol.ndim != 3:
        raise ValueError(f"resize_volume expects a 3D volume, got shape {vol.shape}")
    if tuple(vol.shape) == shape:
        return vol.copy()
    t = torch.from_numpy(np.ascontiguousarray(vol))[None, None]
    kwargs: dict[str, Any] = {"align_corners": False} if mode == "trilinear" else {}
    with torch.no_grad():
        out = F.interpolate(t, size=shape, mode=mode, **kwargs)
    return out[0, 0].numpy().astype(np.float32, copy=False)


# ----------------------------------------------------------------------------------------------
# the pipeline and its inverse
# ----------------------------------------------------------------------------------------------
def preprocess_volume(
    array: Any, affine: Any, config: PreprocessConfig | None = None
) -> np.ndarray:
    """Turn a CT volume in Hounsfield units into the network's input volume.

    Parameters
    ----------
    array
        3D voxels in the file's voxel order (as returned by :func:`ichprog.data.load_volume`).
    affine
        The file's ``(4, 4)`` voxel-to-world matrix.
    config
        Settings; default :class:`PreprocessConfig` (the paper's).

    Returns
    -------
    numpy.ndarray
        float32 ``(D, H, W)`` = ``config.shape``: the canonical (RAS+) ``(x, y, z)`` array
        transposed to ``(z, y, x)``, windowed to ``[0, 1]``.

    Raises
    ------
    ValueError
        Not 3D, NaN/inf voxels, a degenerate affine, or a failed skull strip.

    Examples
    --------
    >>> import numpy as np
    >>> from ichprog.data import PreprocessConfig, preprocess_volume
    >>> hu = np.full((16, 16, 6), 40, dtype=np.int16)
    >>> cfg = PreprocessConfig(shape=(8, 12, 12), skull_strip=False)
    >>> out = preprocess_volume(hu, np.eye(4), cfg)
    >>> out.shape, out.dtype.name
    ((8, 12, 12), 'float32')
    """
    cfg = config if config is not None else PreprocessConfig()
    arr = np.asarray(array)
    if arr.ndim != 3:
        raise ValueError(f"preprocess_volume expects a 3D volume, got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError("preprocess_volume: the volume has NaN or infinite voxels")
    vol = _to_dhw(arr, affine, cfg.reorient).astype(np.float32, copy=False)
    if cfg.skull_strip:
        vol = strip_skull(vol, hu_range=cfg.strip_range, iterations=cfg.strip_iterations)
    vol = window_hu(vol, cfg.window_level, cfg.window_width, cfg.window)
    if cfg.pad_depth:
        vol = pad_depth(vol, cfg.shape[0], value=0.0)
    return resize_volume(vol, cfg.shape, cfg.interpolation)


def to_original_space(
    volume_dhw: Any,
    original_shape: Sequence[int],
    original_affine: Any,
    config: PreprocessConfig | None = None,
    mode: Interpolation | str = "trilinear",
) -> np.ndarray:
    """Map a ``(D, H, W)`` volume in network space back to the original file's voxel grid.

    The inverse of the geometric part of :func:`preprocess_volume`: resize back to the padded
    canonical size, remove the depth padding, transpose to ``(x, y, z)`` and undo the
    reorientation. Intensity steps (window, skull strip) are not inverted. Use it to save a
    saliency map aligned with the scan: ``save_volume(to_original_space(m, a.shape, aff, cfg),
    aff, path)``.

    Parameters
    ----------
    volume_dhw
        ``config.shape`` array in network space.
    original_shape, original_affine
        Shape and affine of the original file (from :func:`ichprog.data.load_volume`).
    config
        The configuration used for the forward pass.
    mode
        Interpolation of the resize back (``"trilinear"`` by default; ``"nearest"`` for labels).

    Returns
    -------
    numpy.ndarray
        float32 array of ``original_shape`` in the file's voxel order.
    """
    cfg = config if config is not None else PreprocessConfig()
    vol = np.asarray(volume_dhw, dtype=np.float32)
    if vol.shape != cfg.shape:
        raise ValueError(
            f"to_original_space: expected a volume of the config's shape {cfg.shape}, got {vol.shape}"
        )
    orig = tuple(int(s) for s in original_shape)
    if len(orig) != 3:
        raise ValueError(f"original_shape must be 3D, got {original_shape!r}")
    d, h, w = _canonical_dhw_shape(orig, original_affine, cfg.reorient)
    before, after = _depth_padding(d, cfg.shape[0]) if cfg.pad_depth else (0, 0)
    vol = resize_volume(vol, (d + before + after, h, w), mode)
    vol = vol[before : before + d]
    out = _from_dhw(vol, original_affine, cfg.reorient)
    assert out.shape == orig, (out.shape, orig)
    return out.astype(np.float32, copy=False)
