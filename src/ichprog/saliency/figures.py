"""Figures: saliency maps over the CT, per patient and across models (the paper's Fig. 5 and 6).

Everything is drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas, so nothing
here touches pyplot's global state or needs a display.

Volumes are expected in ichprog's network layout: the canonical RAS+ ``(x, y, z)`` array
transposed to ``(D, H, W) = (z, y, x)`` (see :func:`ichprog.data.preprocess_volume`). Axial
slices are shown in the **radiological** convention by default (anterior at the top, the patient's
right on the viewer's left); ``orientation="neurological"`` puts the patient's left on the left
and ``"stored"`` shows the array as it is.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from ichprog._extras import require_extra
from ichprog._util import save_figure

__all__ = ["BRAIN_WINDOW", "select_slices", "plot_slices", "plot_model_grid"]

#: Brain window (level, width) in Hounsfield units, used for volumes that are not yet windowed.
BRAIN_WINDOW: tuple[float, float] = (40.0, 80.0)

SliceRule = Literal["saliency", "lesion"]
Orientation = Literal["radiological", "neurological", "stored"]


def _orient(orientation: Orientation) -> Callable[[np.ndarray], np.ndarray]:
    """The display transform of an axial (y, x) slice of a RAS+ volume."""
    if orientation == "radiological":  # anterior up, patient's right on the left
        return lambda a: a[::-1, ::-1]
    if orientation == "neurological":  # anterior up, patient's left on the left
        return lambda a: a[::-1, :]
    if orientation == "stored":
        return lambda a: a
    raise ValueError(f"orientation must be 'radiological', 'neurological' or 'stored', got "
                     f"{orientation!r}")


def _squeeze(arr: Any, what: str) -> np.ndarray:
    a = np.asarray(arr.detach().cpu() if hasattr(arr, "detach") else arr, dtype=np.float32)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3:
        raise ValueError(f"{what} must be (D, H, W) or (1, D, H, W), got shape {a.shape}")
    return a


def select_slices(saliency: Any = None, mask: Any = None, n: int = 4,
                  by: SliceRule = "saliency") -> list[int]:
    """Indices of the ``n`` most informative axial slices, in ascending order.

    Parameters
    ----------
    saliency
        A map (D, H, W); needed for ``by="saliency"``.
    mask
        A lesion mask (D, H, W); needed for ``by="lesion"``.
    n
        How many slices (at most D).
    by
        ``"saliency"``: the slices with the largest saliency mass; ``"lesion"``: the slices with
        the most lesion voxels (ties broken by saliency mass when a map is given, then by
        index).

    Returns
    -------
    list of int

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((5, 2, 2)); m[3] = 1.0; m[1] = 0.5
    >>> select_slices(m, n=2)
    [1, 3]
    """
    if by not in ("saliency", "lesion"):
        raise ValueError(f"by must be 'saliency' or 'lesion', got {by!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    sal = _squeeze(saliency, "saliency map") if saliency is not None else None
    msk = _squeeze(mask, "mask") if mask is not None else None
    if by == "lesion" and msk is None:
        raise ValueError("by='lesion' needs a lesion mask")
    if by == "saliency" and sal is None:
        raise ValueError("by='saliency' needs a saliency map")
    ref = sal if sal is not None else msk
    assert ref is not None
    depth = ref.shape[0]
    sal_mass = sal.reshape(depth, -1).sum(1) if sal is not None else np.zeros(depth)
    if by == "lesion":
        assert msk is not None
        primary = (msk > 0).reshape(depth, -1).sum(1).astype(float)
        order = np.lexsort((np.arange(depth), -sal_mass, -primary))
    else:
        order = np.lexsort((np.arange(depth), -sal_mass))
    return sorted(int(i) for i in order[: min(n, depth)])


def _display_range(volume: np.ndarray,
                   window: Literal["auto"] | tuple[float, float] | None) -> tuple[float, float]:
    if window is None or window == "auto":
        lo, hi = float(volume.min()), float(volume.max())
        if lo >= -1e-3 and hi <= 1 + 1e-3:  # already windowed by ichprog's pre-processing
            return 0.0, 1.0
        level, width = BRAIN_WINDOW
    else:
        level, width = (float(v) for v in window)
        if not width > 0:
            raise ValueError(f"window width must be > 0, got {width}")
    return level - width / 2, level + width / 2


def _crop_box(ct: np.ndarray, vrange: tuple[float, float], crop: bool,
              margin: int = 2) -> tuple[slice, slice]:
    """In-plane bounding box of the voxels above the display minimum (the head), over all
    slices, with a margin; the whole plane when ``crop`` is off or nothing is above it."""
    h, w = ct.shape[1:]
    if not crop:
        return slice(0, h), slice(0, w)
    fg = np.any(ct > vrange[0], axis=0)
    if not fg.any():
        return slice(0, h), slice(0, w)
    rows, cols = np.flatnonzero(np.any(fg, axis=1)), np.flatnonzero(np.any(fg, axis=0))
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, h)),
            slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, w)))


#: Default share of the head's voxels (percent) that a figure shows the map on: its top.
TOP_PERCENT = 5.0


def _top_of_map(sal: np.ndarray, ct: np.ndarray, vrange: tuple[float, float],
                top: float | None) -> tuple[np.ndarray, float, float]:
    """The map with everything below its ``100 - top`` percentile over the head (the voxels
    above the display minimum; all voxels if none) set to zero, the cut-off, and the percent of
    head voxels left visible. ``top=None`` keeps every non-zero voxel."""
    head = ct > vrange[0]
    ref = sal[head] if head.any() else sal.ravel()
    if top is None:
        cut = 0.0
    else:
        if not 0.0 < float(top) <= 100.0:
            raise ValueError(f"top must be a percentage in (0, 100] or None, got {top!r}")
        cut = float(np.percentile(ref, 100.0 - float(top)))
    shown = np.where((sal >= cut) & (sal > 0), sal, 0.0).astype(np.float32)
    visible = 100.0 * float(np.mean(shown[head] > 0 if head.any() else shown > 0))
    return shown, cut, visible


def _top_note(top: float | None, cut: float | None, visible: float | None) -> str:
    if top is None:
        rule = "every non-zero voxel of the map is shown"
    else:
        rule = f"map shown on its top {top:g} % over the head (percentile {100 - top:g})"
    if cut is not None and visible is not None:
        rule += f": saliency >= {cut:.2f}, {visible:.2g} % of head voxels visible"
    return rule


def _draw(ax: Any, ct: np.ndarray, sal: np.ndarray | None, mask: np.ndarray | None,
          vrange: tuple[float, float], alpha: float, cmap: str,
          tf: Callable[[np.ndarray], np.ndarray]) -> Any:
    ax.imshow(tf(ct), cmap="gray", vmin=vrange[0], vmax=vrange[1], interpolation="nearest")
    im = None
    if sal is not None:
        shown = np.ma.masked_less_equal(tf(sal), 0.0)  # zeros stay transparent: the CT shows
        im = ax.imshow(shown, cmap=cmap, vmin=0.0, vmax=1.0, alpha=alpha,
                       interpolation="nearest")
    if mask is not None and np.any(mask):
        ax.contour(tf(mask.astype(float)), levels=[0.5], colors="cyan", linewidths=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def _save(fig: Any, path: str | os.PathLike[str] | None, dpi: int) -> None:
    if path is None:
        return
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    save_figure(fig, os.fspath(path), dpi=dpi, bbox_inches="tight", facecolor="white")


def _new_figure(figsize: tuple[float, float], feature: str) -> Any:
    require_extra(feature, "report")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def plot_slices(volume: Any, saliency: Any, slices: Sequence[int] | None = None,
                n_slices: int = 4, by: SliceRule = "saliency", mask: Any = None,
                window: Literal["auto"] | tuple[float, float] | None = "auto",
                alpha: float = 0.5, cmap: str = "inferno", title: str | None = None,
                orientation: Orientation = "radiological", crop: bool = True,
                path: str | os.PathLike[str] | None = None, dpi: int = 120,
                top: float | None = TOP_PERCENT) -> Any:
    """A slice panel of one patient: the CT with the saliency map overlaid.

    Parameters
    ----------
    volume
        The pre-processed volume the map explains, (D, H, W) or (1, D, H, W).
    saliency
        A normalised map (values in [0, 1]) of the same shape. Zero voxels (e.g. below the
        paper's 0.5 threshold) are left transparent.
    slices
        Axial slice indices to show; default :func:`select_slices` with ``n_slices`` and ``by``.
    n_slices
        Number of slices chosen automatically.
    by
        ``"saliency"`` (the most salient slices) or ``"lesion"`` (the lesion's slices; needs
        ``mask``).
    mask
        Optional lesion mask, drawn as a cyan contour.
    window
        ``"auto"``: volumes with values in [0, 1] (ichprog's pre-processing) are shown as they
        are, others are taken as Hounsfield units and shown in a brain window (level 40, width
        80); or an explicit ``(level, width)``.
    alpha, cmap
        Overlay opacity and colormap (the paper: 0.5, inferno).
    title
        Figure title (e.g. ``"patient 59 - p = 0.81"``).
    orientation
        ``"radiological"`` (default), ``"neurological"`` or ``"stored"`` (see the module notes).
    crop
        Show only the in-plane box holding the head (voxels above the display window's
        minimum, over all slices) instead of the whole field of view.
    path
        Save the figure there (PNG by the extension), creating folders.
    dpi
        Resolution of the saved file.
    top
        Show the map only on its top ``top`` percent over the head (default 5: the voxels at
        or above its 95th percentile over the voxels brighter than the display minimum); the
        rest stays transparent so the CT shows. A fixed threshold such as the paper's 0.5 on a
        min-max scaled map can leave almost nothing visible (one bright voxel sets the scale),
        while a percentile always shows where the map is highest. The rule, its cut-off and
        the share of head voxels visible are written under the figure. ``None``: every
        non-zero voxel (for a map already thresholded as in the paper).

    Returns
    -------
    matplotlib.figure.Figure
    """
    ct = _squeeze(volume, "volume")
    sal = _squeeze(saliency, "saliency map")
    msk = _squeeze(mask, "mask") > 0 if mask is not None else None
    for name, arr in (("saliency map", sal), ("mask", msk)):
        if arr is not None and arr.shape != ct.shape:
            raise ValueError(f"{name} has shape {arr.shape}, the volume {ct.shape}")
    if slices is None:
        slices = select_slices(sal, msk, n=n_slices, by=by)
    slices = [int(s) for s in slices]
    bad = [s for s in slices if not 0 <= s < ct.shape[0]]
    if bad or not slices:
        raise ValueError(f"slice indices must lie in 0..{ct.shape[0] - 1}, got {slices}")
    vrange = _display_range(ct, window)
    sal, cut, visible = _top_of_map(sal, ct, vrange, top)
    tf = _orient(orientation)
    rows, cols = _crop_box(ct, vrange, crop)
    ncols = len(slices)
    fig = _new_figure((2.6 * ncols + 0.6, 3.0), "ichprog.saliency.plot_slices")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    im = None
    for ax, s in zip(axes, slices):
        im = _draw(ax, ct[s, rows, cols], sal[s, rows, cols],
                   msk[s, rows, cols] if msk is not None else None, vrange, alpha, cmap, tf)
        ax.set_title(f"slice {s}", fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=list(axes), fraction=0.02, pad=0.01, label="saliency")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.text(0.01, 0.005, _top_note(top, cut, visible), fontsize=7, color="dimgray",
             ha="left", va="bottom")
    _save(fig, path, dpi)
    return fig


def plot_model_grid(volumes: Mapping[str, Any], maps: Any,
                    probs: Mapping[str, Mapping[str, float]] | None = None,
                    masks: Mapping[str, Any] | None = None,
                    slices: Mapping[str, int] | None = None, by: SliceRule | None = None,
                    row_labels: Mapping[str, str] | None = None,
                    model_labels: Mapping[str, str] | None = None,
                    window: Literal["auto"] | tuple[float, float] | None = "auto",
                    alpha: float = 0.5, cmap: str = "inferno",
                    orientation: Orientation = "radiological", crop: bool = True,
                    path: str | os.PathLike[str] | None = None, dpi: int = 120,
                    top: float | None = TOP_PERCENT) -> Any:
    """A grid comparing models on the same patients (like the paper's Fig. 5 and 6).

    One row per patient (in the order of ``volumes``), one column for the CT and one per model,
    all at the same axial slice; each model's cell is titled with its predicted probability.

    Parameters
    ----------
    volumes
        ``{patient ID: pre-processed volume}``.
    maps
        ``{model: {patient ID: map}}`` or a :class:`~ichprog.saliency.SaliencyMaps` (whose
        probabilities are then used unless ``probs`` is given).
    probs
        ``{model: {patient ID: probability}}`` shown as ``p = 0.81`` in the titles.
    masks
        Optional ``{patient ID: lesion mask}``, drawn as a cyan contour.
    slices
        ``{patient ID: slice index}``; by default each patient's slice is chosen by ``by``.
    by
        ``"lesion"`` (the slice with the most lesion voxels; the default when masks are given)
        or ``"saliency"`` (the slice with the largest saliency mass summed over all models).
    row_labels
        ``{patient ID: text}`` for the row titles (default the ID), e.g. ``"Poor prognosis
        (59)"``.
    model_labels
        ``{model: column title}`` (default the model names).
    window, alpha, cmap, orientation, crop, path, dpi
        See :func:`plot_slices`.
    top
        Each map is shown on its own top ``top`` percent over the patient's head (see
        :func:`plot_slices`); stated under the figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    nested = getattr(maps, "maps", maps)
    if probs is None:
        probs = getattr(maps, "probs", None)
    if not isinstance(nested, Mapping) or not nested:
        raise TypeError("maps must be {model: {patient ID: map}} or a SaliencyMaps result")
    models = list(nested)
    patients = [str(p) for p in volumes]
    if not patients:
        raise ValueError("no patient in volumes")
    for m in models:
        missing = [p for p in patients if p not in nested[m]]
        if missing:
            raise KeyError(f"model {m!r} has no map for patient(s) {missing[:5]}")
    by = by or ("lesion" if masks is not None else "saliency")
    tf = _orient(orientation)
    fig = _new_figure((2.5 * (len(models) + 1) + 0.6, 2.6 * len(patients) + 0.4),
                      "ichprog.saliency.plot_model_grid")
    axes = fig.subplots(len(patients), len(models) + 1, squeeze=False)
    im = None
    for r, (pid, vol) in enumerate(zip(patients, volumes.values())):
        ct = _squeeze(vol, f"volume of patient {pid!r}")
        msk = None
        if masks is not None:
            if pid not in masks:
                raise KeyError(f"masks has no entry for patient {pid!r}")
            msk = _squeeze(masks[pid], f"mask of patient {pid!r}") > 0
        sal = {m: _squeeze(nested[m][pid], f"map of model {m!r}, patient {pid!r}")
               for m in models}
        for m, a in sal.items():
            if a.shape != ct.shape:
                raise ValueError(f"model {m!r}, patient {pid!r}: map shape {a.shape} differs "
                                 f"from the volume's {ct.shape}")
        if slices is not None and pid in slices:
            s = int(slices[pid])
            if not 0 <= s < ct.shape[0]:
                raise ValueError(f"patient {pid!r}: slice {s} outside 0..{ct.shape[0] - 1}")
        else:
            total = np.sum([sal[m] for m in models], axis=0)
            s = select_slices(total, msk, n=1, by=by if msk is not None else "saliency")[0]
        vrange = _display_range(ct, window)
        sal = {m: _top_of_map(a, ct, vrange, top)[0] for m, a in sal.items()}
        rows, cols = _crop_box(ct, vrange, crop)
        m_slice = msk[s, rows, cols] if msk is not None else None
        _draw(axes[r, 0], ct[s, rows, cols], None, m_slice, vrange, alpha, cmap, tf)
        label = (row_labels or {}).get(pid, str(pid))
        axes[r, 0].set_ylabel(f"{label}\nslice {s}", fontsize=9)
        if r == 0:
            axes[r, 0].set_title("CT", fontsize=10)
        for c, m in enumerate(models, start=1):
            im = _draw(axes[r, c], ct[s, rows, cols], sal[m][s, rows, cols], m_slice, vrange,
                       alpha, cmap, tf) or im
            # long labels ("MT (ord GCS, bin age) [tiny DenseNet]") wrap to the cell's width
            head = (textwrap.fill((model_labels or {}).get(m, m), 24) if r == 0 else "")
            p = (probs or {}).get(m, {}).get(pid)
            text = "\n".join(t for t in (head, f"p = {p:.2f}" if p is not None else "") if t)
            axes[r, c].set_title(text, fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.02, pad=0.01, label="saliency")
    note = _top_note(top, None, None).replace("map shown", "each map shown")
    fig.text(0.01, 0.002, note, fontsize=7, color="dimgray", ha="left", va="bottom")
    _save(fig, path, dpi)
    return fig
