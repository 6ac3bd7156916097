"""Saliency maps and masks between the network's voxel grid and the patient's original scan.

A map is computed on the pre-processed volume (canonical orientation, padded and resized to
``PreprocessConfig.shape``). :func:`save_map` resamples it back onto the original scan's voxel grid
with :func:`ichprog.data.to_original_space` and writes it with the scan's affine, so it opens over
the CT in any NIfTI viewer (ITK-SNAP, 3D Slicer, FSLeyes, MRIcroGL). Lesion masks travel the other
way with :func:`mask_to_input_space`, so that they can score maps (:func:`lesion_scores`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["map_to_original", "save_map", "save_maps", "mask_to_input_space", "brain_mask"]


def _reference(reference: Any) -> tuple[tuple[int, int, int], np.ndarray]:
    """(shape, affine) of the original scan, from a path or a (shape, affine) pair."""
    if isinstance(reference, (str, os.PathLike)):
        from ichprog.data import load_volume

        array, affine = load_volume(reference)
        return tuple(int(n) for n in array.shape), np.asarray(affine)  # type: ignore[return-value]
    try:
        shape, affine = reference
    except (TypeError, ValueError):
        raise TypeError("reference must be the original scan's path or a (shape, affine) "
                        "pair") from None
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3:
        raise ValueError(f"reference shape must be 3D, got {shape}")
    return shape, np.asarray(affine, dtype=np.float64)  # type: ignore[return-value]


def map_to_original(saliency: Any, reference: Any, config: Any = None,
                    mode: str = "trilinear") -> np.ndarray:
    """Resample a map from the network's grid onto the original scan's voxel grid.

    Parameters
    ----------
    saliency
        A map of ``config.shape``, (D, H, W) or (1, D, H, W).
    reference
        The original scan: its path, or its ``(shape, affine)`` as returned by
        :func:`ichprog.data.load_volume` (``(array.shape, affine)``).
    config
        The :class:`~ichprog.data.PreprocessConfig` that produced the network input (default:
        the default configuration).
    mode
        ``"trilinear"`` (default; values stay within the map's range) or ``"nearest"``
        (keeps thresholded maps' exact values).

    Returns
    -------
    numpy.ndarray
        float32 array of the scan's shape, in the scan's voxel order.
    """
    from ichprog.data.preprocess import to_original_space

    arr = np.asarray(saliency, dtype=np.float32)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    shape, affine = _reference(reference)
    return to_original_space(arr, shape, affine, config, mode=mode)


def save_map(saliency: Any, path: str | os.PathLike[str], reference: Any, config: Any = None,
             mode: str = "trilinear") -> Path:
    """Save a map as a NIfTI aligned with the patient's original scan.

    Parameters
    ----------
    saliency
        A map on the network's grid (``config.shape``).
    path
        Destination (``.nii`` or ``.nii.gz``); folders are created.
    reference, config, mode
        See :func:`map_to_original`.

    Returns
    -------
    pathlib.Path
        The written file: float32 voxels of the scan's shape, with the scan's affine (as both
        qform and sform).

    Examples
    --------
    >>> save_map(m, "maps/59_guided.nii.gz", "POOR_PROGNOSIS/59_brain.nii.gz", config)
    ... # doctest: +SKIP
    """
    from ichprog.data import save_volume

    shape, affine = _reference(reference)
    out = map_to_original(saliency, (shape, affine), config, mode=mode)
    save_volume(out, affine, path, dtype=np.float32)
    return Path(path)


def save_maps(result: Any, out_dir: str | os.PathLike[str], references: Mapping[str, Any],
              config: Any = None, mode: str = "trilinear", suffix: str = ".nii.gz",
              progress: bool = True) -> Any:
    """Save every map of a :class:`~ichprog.saliency.SaliencyMaps` as NIfTI next to its scan's
    geometry.

    Files are named ``<out_dir>/<model>/<patient>_<method>_<task>-<target>.nii.gz``.

    Parameters
    ----------
    result
        A :class:`~ichprog.saliency.SaliencyMaps` (or ``{model: {patient ID: map}}``).
    out_dir
        Destination folder.
    references
        ``{patient ID: original scan path or (shape, affine)}``, e.g. ``cohort.image_paths``.
    config, mode
        See :func:`map_to_original`.
    suffix
        ``".nii.gz"`` or ``".nii"``.
    progress
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        ``model``, ``patient``, ``path`` of every file written.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    nested = getattr(result, "maps", result)
    tag = "map"
    if hasattr(result, "method"):
        tag = f"{result.method}_{result.task}-{result.target}"
    jobs = [(m, str(p)) for m, by_pid in nested.items() for p in by_pid]
    missing = sorted({p for _, p in jobs if p not in references})
    if missing:
        raise KeyError(f"references has no scan for patient(s) {missing[:5]}")
    cache: dict[str, tuple[tuple[int, int, int], np.ndarray]] = {}
    rows = []
    for model, pid in tqdm(jobs, disable=not progress, desc="saving maps", unit="map"):
        if pid not in cache:
            cache[pid] = _reference(references[pid])
        safe_model = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(model))
        path = Path(out_dir) / safe_model / f"{pid}_{tag}{suffix}"
        save_map(nested[model][pid], path, cache[pid], config, mode=mode)
        rows.append({"model": model, "patient": pid, "path": str(path)})
    return pd.DataFrame(rows, columns=["model", "patient", "path"])


def mask_to_input_space(mask: Any, affine: Any, config: Any = None,
                        labels: Any = None, level: float = 0.5) -> np.ndarray:
    """Bring a lesion mask from the original scan's voxel grid onto the network's grid.

    The mask goes through exactly the geometric steps of :func:`ichprog.data.preprocess_volume`
    (reorientation, depth padding, resizing with the configuration's interpolation) as a 0/1
    volume, with no skull stripping and an identity intensity window; the result is thresholded at
    ``level``. With the default ``"area"`` interpolation a network voxel is in the lesion when at
    least half of it was.

    Parameters
    ----------
    mask
        Mask in the scan's voxel order (as read by :func:`ichprog.data.load_volume`): binary, or
        integer labels (the phantom cohort's masks hold 1 for the hematoma, 2 for
        intraventricular blood, 3 for a subdural hematoma and 4 for contusions:
        :data:`ichprog.data.phantom.MASK_LABELS`).
    affine
        The scan's affine.
    config
        The :class:`~ichprog.data.PreprocessConfig` used for the scan (default: the default).
    labels
        Label values that make up the lesion; default every non-zero voxel.
    level
        Threshold of the resampled mask, in (0, 1).

    Returns
    -------
    numpy.ndarray
        bool array of ``config.shape``.
    """
    from ichprog.data import PreprocessConfig, preprocess_volume

    cfg = config if config is not None else PreprocessConfig()
    arr = np.asarray(mask)
    if arr.ndim != 3:
        raise ValueError(f"mask must be 3D, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("mask has NaN or infinite values")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    if labels is None:
        lesion = arr != 0
    else:
        wanted = np.atleast_1d(np.asarray(labels))
        absent = [v for v in wanted.tolist() if not np.any(arr == v)]
        if len(absent) == len(wanted) and arr.any():
            found = np.unique(arr)[:10].tolist()
            raise ValueError(f"none of the labels {wanted.tolist()} occurs in the mask; its "
                             f"values are {found}")
        lesion = np.isin(arr, wanted)
    geometric = cfg.replace(skull_strip=False, window="clip", window_level=0.5, window_width=1.0)
    out = preprocess_volume(lesion.astype(np.float32), affine, geometric)
    return np.asarray(out >= level)


def brain_mask(volume: Any, threshold: float = 0.0) -> np.ndarray:
    """A brain mask of a pre-processed (skull-stripped, windowed) volume.

    The voxels above ``threshold``, restricted to their largest 3D connected component, with
    holes filled slice by slice (which brings back ventricles and other CSF that the window maps
    to 0). Use it for the chance levels of :func:`lesion_scores` when no brain segmentation is at
    hand.

    Parameters
    ----------
    volume
        The network input, (D, H, W) or (1, D, H, W), skull-stripped.
    threshold
        Intensity above which a voxel is tissue.

    Returns
    -------
    numpy.ndarray
        bool array of shape (D, H, W).

    Raises
    ------
    ValueError
        No voxel lies above ``threshold``.
    """
    from scipy import ndimage

    vol = np.asarray(volume, dtype=np.float32)
    if vol.ndim == 4 and vol.shape[0] == 1:
        vol = vol[0]
    if vol.ndim != 3:
        raise ValueError(f"volume must be (D, H, W) or (1, D, H, W), got shape {vol.shape}")
    tissue = vol > threshold
    if not tissue.any():
        raise ValueError(f"no voxel above {threshold}: cannot derive a brain mask")
    labels, n = ndimage.label(tissue)
    if n > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        tissue = labels == int(np.argmax(sizes))
    for d in range(tissue.shape[0]):
        if tissue[d].any():
            tissue[d] = ndimage.binary_fill_holes(tissue[d])
    return tissue
