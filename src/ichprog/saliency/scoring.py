"""Quantitative scores of saliency maps against lesion masks.

The paper judged its saliency maps by eye and left "quantifying ... using ground truth
segmentations" as future work. These scores make the claim "the multi-task models focus more on the
hematoma and its expansive effect" a number with a confidence interval:

* **mass in the lesion**: the share of the map's total mass inside the lesion mask;
* **pointing game**: whether the map's maximum falls inside the lesion (optionally within a
  tolerance margin around it);
* the same two for the lesion's **surroundings**, a shell of given width around it (where mass
  effect shows);
* each next to its **chance level**: the share of the brain that the region covers, which is what a
  map spread at random over the brain would score.

Per-patient scores come from :func:`lesion_scores`; :func:`summarize_lesion_scores` aggregates them
per model with seeded percentile bootstrap intervals over patients, and
:func:`compare_lesion_scores` gives paired differences between models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ichprog.constants import ID_COLUMN

__all__ = [
    "SCORE_COLUMNS",
    "CHANCE_COLUMNS",
    "lesion_scores",
    "summarize_lesion_scores",
    "compare_lesion_scores",
    "bootstrap_mean",
]

#: The score columns of :func:`lesion_scores` and the column holding each one's chance level.
CHANCE_COLUMNS: dict[str, str] = {
    "mass_lesion": "lesion_share",
    "pointing_lesion": "pointing_chance",
    "mass_shell": "shell_share",
    "pointing_shell": "shell_share",
}
#: All columns of the table returned by :func:`lesion_scores`, in order. The patient is
#: ``PatientID``, as in every table of the library; the last column, ``patient``, repeats it
#: under its name before version 0.2 and goes away in version 0.3 (deprecated).
SCORE_COLUMNS: tuple[str, ...] = (
    "model", ID_COLUMN, "lesion_voxels", "brain_voxels", "shell_voxels",
    "mass_lesion", "lesion_share", "enrichment",
    "pointing_lesion", "pointing_chance",
    "mass_shell", "shell_share", "pointing_shell",
    "mass_outside_brain",
    "patient",
)


def _nested(maps: Any) -> dict[str, dict[str, Any]]:
    """Normalise the accepted map containers to ``{model: {patient: map}}``."""
    inner = getattr(maps, "maps", None)
    if isinstance(inner, Mapping):  # a SaliencyMaps result
        maps = inner
    if isinstance(maps, Mapping):
        values = list(maps.values())
        if values and all(isinstance(v, Mapping) for v in values):
            return {str(m): {str(p): a for p, a in v.items()} for m, v in maps.items()}
        if any(isinstance(v, Mapping) for v in values):
            raise TypeError("maps mixes nested {model: {patient: map}} and flat {patient: map} "
                            "entries")
        return {"model": {str(p): a for p, a in maps.items()}}
    return {"model": {"0": maps}}


def _per_patient(value: Any, patients: Sequence[str], what: str) -> dict[str, Any]:
    if value is None:
        return dict.fromkeys(patients)
    if isinstance(value, Mapping):
        out = {str(k): v for k, v in value.items()}
        missing = [p for p in patients if p not in out]
        if missing:
            raise KeyError(f"{what} missing for patient(s) {missing[:5]}"
                           f"{' ...' if len(missing) > 5 else ''}")
        return out
    if len(patients) != 1 and what == "masks":
        raise TypeError(f"{what}: give a {{patient ID: array}} mapping for several patients")
    return dict.fromkeys(patients, value)


def _as_mask(value: Any, shape: tuple[int, ...], what: str, pid: str) -> np.ndarray:
    arr = np.asarray(value)
    arr = arr.reshape(arr.shape[1:]) if arr.ndim == len(shape) + 1 and arr.shape[0] == 1 else arr
    if arr.shape != shape:
        raise ValueError(f"patient {pid!r}: {what} has shape {arr.shape} but the map has shape "
                         f"{shape}; masks must be on the maps' (pre-processed) voxel grid")
    if arr.dtype != bool:
        if not np.isfinite(arr).all() or not np.isin(arr, (0, 1)).all():
            bad = np.unique(arr[~np.isin(arr, (0, 1))])[:5]
            raise ValueError(f"patient {pid!r}: {what} must be binary (0/1 or bool); found values "
                             f"{bad.tolist()}")
        arr = arr.astype(bool)
    return arr


def _spacing(value: Any, pid: str) -> tuple[float, float, float]:
    if value is None:
        return (1.0, 1.0, 1.0)
    sp = tuple(float(v) for v in np.ravel(value))
    if len(sp) != 3 or not all(np.isfinite(v) and v > 0 for v in sp):
        raise ValueError(f"patient {pid!r}: spacing must be three positive numbers (D, H, W), "
                         f"got {value!r}")
    return sp  # type: ignore[return-value]


def lesion_scores(maps: Any, masks: Any, brain_masks: Any = None, shell_width: float = 3.0,
                  tolerance: float = 0.0, spacing: Any = None,
                  progress: bool = False) -> pd.DataFrame:
    """Score saliency maps against lesion masks, patient by patient.

    Parameters
    ----------
    maps
        Non-negative maps (e.g. the normalised maps of :mod:`ichprog.saliency`): one array, a
        ``{patient ID: map}`` mapping, a nested ``{model: {patient ID: map}}`` mapping, or a
        :class:`~ichprog.saliency.SaliencyMaps` result.
    masks
        Lesion masks on the maps' voxel grid: ``{patient ID: mask}`` (or one array for one map);
        boolean or 0/1.
    brain_masks
        Optional brain masks, same form. They define the chance levels (the lesion's share *of
        the brain*), restrict the shell to the brain and give ``mass_outside_brain``. Without
        them the whole volume counts as brain, which makes the chance level lower (easier to
        beat): pass them whenever you have them.
    shell_width
        Width of the surroundings shell, in the units of ``spacing`` (voxels by default): the
        voxels at a distance ``0 < d <= shell_width`` from the lesion.
    tolerance
        Pointing-game margin, same units: a hit is a maximum within distance ``tolerance`` of
        the lesion (0: inside it).
    spacing
        Voxel size ``(D, H, W)`` (e.g. millimetres), one for all patients or a ``{patient ID:
        spacing}`` mapping; default 1 (distances in voxels). Pre-processed CT volumes are far
        from isotropic (about 4-5 mm between slices), so give the spacing for margins in mm.
    progress
        Show a progress bar over patients.

    Returns
    -------
    pandas.DataFrame
        One row per model and patient with the columns of :data:`SCORE_COLUMNS`:

        * ``lesion_voxels``, ``brain_voxels``, ``shell_voxels``: region sizes (the lesion and
          shell counted inside the brain);
        * ``mass_lesion``: map mass inside the lesion / total map mass; its chance level
          ``lesion_share`` = lesion voxels in the brain / brain voxels; ``enrichment`` = their
          ratio (1 = chance);
        * ``pointing_lesion``: 1 if the map's maximum lies within ``tolerance`` of the lesion, 0
          otherwise (if several voxels share the maximum, the fraction of them that do); its
          chance level ``pointing_chance`` = share of the brain within ``tolerance`` of the
          lesion;
        * ``mass_shell``, ``pointing_shell``: the same for the shell (the pointing game without
          tolerance: the shell is a margin already), chance ``shell_share``;
        * ``mass_outside_brain``: map mass outside the brain mask (NaN without brain masks);
        * ``patient``: deprecated, a copy of ``PatientID`` (removed in version 0.3).

        Scores are NaN (the row is kept) where they are undefined: an empty lesion mask (all
        lesion and shell scores) or a map with no mass (all mass and pointing scores).

    Raises
    ------
    ValueError
        A map is negative or non-finite, or a mask has another shape or non-binary values; the
        message names the model and patient.
    KeyError
        A patient of ``maps`` has no mask.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((4, 4, 4)); m[1, 1, 1] = 1.0; m[2, 2, 2] = 3.0
    >>> lesion = np.zeros((4, 4, 4), bool); lesion[2, 2, 2] = True
    >>> row = lesion_scores(m, lesion).iloc[0]
    >>> float(row.mass_lesion), float(row.pointing_lesion), float(row.lesion_share)
    (0.75, 1.0, 0.015625)
    """
    from tqdm.auto import tqdm

    for name, value in (("shell_width", shell_width), ("tolerance", tolerance)):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    nested = _nested(maps)
    patients: list[str] = []
    for by_pid in nested.values():
        patients.extend(p for p in by_pid if p not in patients)
    lesion_by = _per_patient(masks, patients, "masks")
    brain_by = _per_patient(brain_masks, patients, "brain_masks")
    spacing_by = (spacing if isinstance(spacing, Mapping)
                  else dict.fromkeys(patients, spacing))

    rows: list[dict[str, Any]] = []
    for pid in tqdm(patients, disable=not progress, desc="lesion scores", unit="patient"):
        holders = [m for m, by_pid in nested.items() if pid in by_pid]
        first = np.asarray(nested[holders[0]][pid])
        shape = first.shape[1:] if first.ndim == 4 and first.shape[0] == 1 else first.shape
        regions = _regions(pid, shape, lesion_by[pid], brain_by[pid], spacing_by.get(pid),
                           shell_width, tolerance)
        for model in holders:
            rows.append(_map_scores(model, pid, nested[model][pid], shape, regions))
    table = pd.DataFrame(rows, columns=list(SCORE_COLUMNS))
    table["patient"] = table[ID_COLUMN]  # the deprecated name, until version 0.3
    return table


@dataclass
class _Regions:
    """A patient's lesion, brain, tolerance zone (``near``) and surroundings shell, their sizes
    inside the brain, and the chance levels they give."""

    lesion: np.ndarray
    brain: np.ndarray
    has_brain: bool
    near: np.ndarray
    shell: np.ndarray
    n_lesion: int
    n_brain: int
    n_shell: int
    lesion_share: float
    shell_share: float
    pointing_chance: float


def _regions(pid: str, shape: tuple[int, ...], lesion_mask: Any, brain_mask: Any, spacing: Any,
             shell_width: float, tolerance: float) -> _Regions:
    """Check a patient's masks against the map's shape and derive the regions the scores use."""
    from scipy import ndimage

    lesion = _as_mask(lesion_mask, shape, "lesion mask", pid)
    has_brain = brain_mask is not None
    brain = (_as_mask(brain_mask, shape, "brain mask", pid) if has_brain
             else np.ones(shape, dtype=bool))
    sp = _spacing(spacing, pid)
    n_brain = int(brain.sum())
    if n_brain == 0:
        raise ValueError(f"patient {pid!r}: the brain mask is empty")
    n_lesion = int((lesion & brain).sum())
    if lesion.any():
        dist = ndimage.distance_transform_edt(~lesion, sampling=sp)
        near = dist <= tolerance
        shell = (dist > 0) & (dist <= shell_width) & brain
    else:
        near = shell = np.zeros(shape, dtype=bool)
    n_shell = int(shell.sum())
    return _Regions(lesion=lesion, brain=brain, has_brain=has_brain, near=near, shell=shell,
                    n_lesion=n_lesion, n_brain=n_brain, n_shell=n_shell,
                    lesion_share=n_lesion / n_brain, shell_share=n_shell / n_brain,
                    pointing_chance=int((near & brain).sum()) / n_brain)


def _map_scores(model: str, pid: str, value: Any, shape: tuple[int, ...],
                r: _Regions) -> dict[str, Any]:
    """One row of :func:`lesion_scores`: a map's scores against a patient's regions."""
    m = np.asarray(value, dtype=np.float64)
    m = m.reshape(shape) if m.size == int(np.prod(shape)) else m
    where = f"model {model!r}, patient {pid!r}"
    if m.shape != shape:
        raise ValueError(f"{where}: map has shape {m.shape}, expected {shape}")
    if not np.isfinite(m).all():
        raise ValueError(f"{where}: the map has non-finite values")
    if (m < 0).any():
        raise ValueError(f"{where}: the map has negative values (min {m.min():.3g}); "
                         "score normalised maps (normalize_map) rather than raw ones")
    total = float(m.sum())
    n_lesion, n_shell = r.n_lesion, r.n_shell
    row: dict[str, Any] = {
        "model": model, ID_COLUMN: pid, "lesion_voxels": n_lesion,
        "brain_voxels": r.n_brain, "shell_voxels": n_shell,
        "lesion_share": r.lesion_share if n_lesion else np.nan,
        "pointing_chance": r.pointing_chance if n_lesion else np.nan,
        "shell_share": r.shell_share if n_lesion else np.nan,
    }
    valid = total > 0 and bool(r.lesion.any())
    if valid:
        peak = m == m.max()
        n_peak = int(peak.sum())
        row["mass_lesion"] = float(m[r.lesion].sum()) / total
        row["pointing_lesion"] = int((peak & r.near).sum()) / n_peak
        row["mass_shell"] = float(m[r.shell].sum()) / total if n_shell else np.nan
        row["pointing_shell"] = int((peak & r.shell).sum()) / n_peak \
            if n_shell else np.nan
        row["enrichment"] = row["mass_lesion"] / r.lesion_share if n_lesion else np.nan
    else:
        for col in ("mass_lesion", "pointing_lesion", "mass_shell", "pointing_shell",
                    "enrichment"):
            row[col] = np.nan
    row["mass_outside_brain"] = (float(m[~r.brain].sum()) / total
                                 if r.has_brain and total > 0 else np.nan)
    return row


def bootstrap_mean(values: Any, n_resamples: int = 1000, ci: float = 0.95,
                   seed: int = 0) -> tuple[float, float, float, int]:
    """Mean of ``values`` with a seeded percentile bootstrap interval (NaNs excluded).

    Parameters
    ----------
    values
        One value per patient.
    n_resamples
        Bootstrap resamples (each of the same size as the data, drawn with replacement).
    ci
        Coverage of the interval, in (0, 1).
    seed
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    estimate, low, high : float
        The mean and the percentile interval (NaN with fewer than two values).
    n_valid : int
        The number of non-NaN values used.
    """
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci!r}")
    if int(n_resamples) < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples!r}")
    v = np.asarray(values, dtype=float).ravel()
    v = v[~np.isnan(v)]
    n = int(v.size)
    if n == 0:
        return np.nan, np.nan, np.nan, 0
    est = float(v.mean())
    if n < 2:
        return est, np.nan, np.nan, n
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(int(n_resamples), n))
    stats = v[idx].mean(axis=1)
    low, high = np.percentile(stats, [100 * (1 - ci) / 2, 100 * (1 + ci) / 2])
    return est, float(low), float(high), n


def _check_scores(scores: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """The scores with the patient column named ``PatientID`` (``patient`` in tables written
    before 0.2 is renamed); raises naming the missing columns."""
    if ID_COLUMN not in scores.columns and "patient" in scores.columns:
        scores = scores.rename(columns={"patient": ID_COLUMN})
    missing = [c for c in ("model", ID_COLUMN, *metrics) if c not in scores.columns]
    if missing:
        raise KeyError(f"scores lack column(s) {missing}; pass the table of lesion_scores")
    return scores


def summarize_lesion_scores(scores: pd.DataFrame,
                            metrics: Sequence[str] = ("mass_lesion", "pointing_lesion",
                                                      "mass_shell", "pointing_shell"),
                            n_resamples: int = 1000, ci: float = 0.95,
                            seed: int = 0) -> pd.DataFrame:
    """Per-model means of the lesion scores, with bootstrap intervals and chance levels.

    Parameters
    ----------
    scores
        The table of :func:`lesion_scores`.
    metrics
        Score columns to summarise (keys of :data:`CHANCE_COLUMNS`, or any numeric column).
    n_resamples, ci, seed
        Percentile bootstrap over patients (see :func:`bootstrap_mean`); the same seed is used
        for every model and metric, so models scored on the same patients are resampled alike.

    Returns
    -------
    pandas.DataFrame
        One row per model and metric (models in their order of appearance): ``estimate``,
        ``low``, ``high`` (mean over patients and its interval), ``chance`` (mean chance level),
        ``excess``, ``excess_low``, ``excess_high`` (mean of score minus chance, per patient, and
        its interval: an interval above 0 means better than chance), and ``n_valid`` (patients
        with a defined score).
    """
    scores = _check_scores(scores, metrics)
    rows = []
    for model in pd.unique(scores["model"]):
        part = scores[scores["model"] == model]
        for metric in metrics:
            est, low, high, n = bootstrap_mean(part[metric], n_resamples, ci, seed)
            row = {"model": model, "metric": metric, "estimate": est, "low": low, "high": high,
                   "chance": np.nan, "excess": np.nan, "excess_low": np.nan,
                   "excess_high": np.nan, "n_valid": n}
            chance_col = CHANCE_COLUMNS.get(metric)
            if chance_col is not None and chance_col in part.columns:
                ok = part[metric].notna() & part[chance_col].notna()
                row["chance"] = float(part.loc[ok, chance_col].mean()) if ok.any() else np.nan
                diff = part.loc[ok, metric] - part.loc[ok, chance_col]
                e, lo, hi, _ = bootstrap_mean(diff, n_resamples, ci, seed)
                row.update(excess=e, excess_low=lo, excess_high=hi)
            rows.append(row)
    return pd.DataFrame(rows, columns=["model", "metric", "estimate", "low", "high", "chance",
                                       "excess", "excess_low", "excess_high", "n_valid"])


def compare_lesion_scores(scores: pd.DataFrame, baseline: str,
                          metrics: Sequence[str] = ("mass_lesion", "pointing_lesion",
                                                    "mass_shell"),
                          n_resamples: int = 1000, ci: float = 0.95,
                          seed: int = 0) -> pd.DataFrame:
    """Paired differences of lesion scores between each model and a baseline model.

    For every patient scored by both models, ``difference = score(model) - score(baseline)``;
    the mean difference gets a seeded percentile bootstrap interval over patients. An interval
    above 0 means the model puts more of its saliency on the lesion than the baseline does.

    Parameters
    ----------
    scores
        The table of :func:`lesion_scores` with at least two models.
    baseline
        The reference model's name.
    metrics
        Score columns to compare.
    n_resamples, ci, seed
        See :func:`bootstrap_mean`.

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``baseline``, ``metric``, ``difference``, ``low``, ``high``,
        ``n_valid`` (patients where both scores are defined).

    Raises
    ------
    KeyError
        ``baseline`` is not a model of ``scores``.
    """
    scores = _check_scores(scores, metrics)
    models = list(pd.unique(scores["model"]))
    if baseline not in models:
        raise KeyError(f"baseline {baseline!r} is not a model of scores; models: {models}")
    base = scores[scores["model"] == baseline].set_index(ID_COLUMN)
    if base.index.has_duplicates:
        raise ValueError(f"model {baseline!r} has several rows for one patient")
    rows = []
    for model in models:
        if model == baseline:
            continue
        other = scores[scores["model"] == model].set_index(ID_COLUMN)
        if other.index.has_duplicates:
            raise ValueError(f"model {model!r} has several rows for one patient")
        common = [p for p in other.index if p in base.index]
        for metric in metrics:
            diff = other.loc[common, metric].to_numpy(float) - base.loc[common, metric].to_numpy(
                float)
            est, low, high, n = bootstrap_mean(diff, n_resamples, ci, seed)
            rows.append({"model": model, "baseline": baseline, "metric": metric,
                         "difference": est, "low": low, "high": high, "n_valid": n})
    return pd.DataFrame(rows, columns=["model", "baseline", "metric", "difference", "low", "high",
                                       "n_valid"])
