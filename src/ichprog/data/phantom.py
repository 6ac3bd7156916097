"""The phantom cohort: synthetic head CTs of intracranial hemorrhage with a known risk model.

The real patient data cannot be shipped, so this generator is the embedded default of the
library: the demo, the tests and the examples run on it. Each phantom patient has a hidden
lesion (site, volume, intraventricular extension), from which the Glasgow Coma Scale is drawn;
the outcome is then drawn from a logistic risk model on GCS, age and the image factors. The
generator writes the public dataset's layout::

    out_dir/clinical.csv                      all 44 columns of ichprog.data.schema.COLUMNS
    out_dir/GOOD_PROGNOSIS/<ID>.nii.gz        int16 CT in Hounsfield units (label 0)
    out_dir/POOR_PROGNOSIS/<ID>.nii.gz        (label 1)
    out_dir/masks/<ID>_mask.nii.gz            uint8 lesion mask: 1 hematoma, 2 intraventricular blood,
                                              3 subdural hematoma, 4 contusion (traumatic patients)
    out_dir/phantom_truth.csv                 each patient's true risk factors
    out_dir/phantom_config.json               the PhantomConfig, n and seed

Scans are stored in NIfTI voxel order ``(i, j, k)`` with ``k`` the slice axis, in LPS
orientation by default (``i`` towards the patient's left, ``j`` towards posterior, ``k``
towards superior), so a phantom of ``shape=(D, H, W)`` is an array of shape ``(W, H, D)`` on
disk; :func:`ichprog.data.load_volume` plus the pre-processing reorient it from the affine.

Everything random comes from ``numpy.random.default_rng`` seeded from ``seed``: the same seed
gives the same table, the same voxels and the same file bytes.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import gzip
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ichprog._util import write_bytes, write_csv, write_text
from ichprog.data import schema

__all__ = [
    "PhantomConfig",
    "PhantomScan",
    "Tissue",
    "SITES",
    "TRUTH_COLUMNS",
    "IMAGE_TRUTH_COLUMNS",
    "REAL_GCS_COUNTS",
    "make_phantom_cohort",
    "phantom_table",
    "render_phantom",
    "phantom_affine",
    "ich_score",
    "HEMPHILL_MORTALITY",
    "MASK_LABELS",
]

#: Hematoma sites, in the order of the per-site parameters of :class:`PhantomConfig`.
SITES: tuple[str, ...] = ("lobar", "deep", "infratentorial")

#: 30-day mortality by ICH score 0..5 in the ICH score's derivation cohort (Hemphill et al. 2001).
HEMPHILL_MORTALITY: tuple[float, ...] = (0.0, 0.13, 0.26, 0.72, 0.97, 1.0)

#: GCS counts of the public cohort (GCS 3..15, 261 patients).
REAL_GCS_COUNTS: tuple[int, ...] = (22, 8, 9, 5, 8, 9, 8, 11, 52, 13, 13, 43, 60)

#: Columns of ``phantom_truth.csv`` (the table-only path leaves the image columns out).
TRUTH_COLUMNS: tuple[str, ...] = (
    "PatientID", "label", "outcome_probability", "risk_logit", "ich_score", "gcs", "age",
    "site", "side", "infratentorial", "ivh", "volume_ml", "midline_shift_mm", "atrophy",
    "anticoagulant", "gcs_latent", "traumatic",
)
#: Columns that ``make_phantom_cohort`` adds to the truth, measured on the rendered images.
IMAGE_TRUTH_COLUMNS: tuple[str, ...] = (
    "ivh_volume_ml", "oedema_volume_ml", "center_x_mm", "center_y_mm", "center_z_mm",
    "sdh_volume_ml", "contusion_volume_ml",
)
#: Values of the lesion masks.
MASK_LABELS: dict[str, int] = {"hematoma": 1, "ivh": 2, "subdural": 3, "contusion": 4}


class Tissue(enum.IntEnum):
    """Tissue labels of the renderer's label map (:attr:`PhantomScan.tissue`)."""

    AIR = 0
    SOFT_TISSUE = 1
    FAT = 2
    BONE = 3
    CSF = 4
    VENTRICLE = 5
    GREY_MATTER = 6
    WHITE_MATTER = 7
    CEREBELLUM = 8
    BRAINSTEM = 9
    OEDEMA = 10
    HEMATOMA = 11
    IVH = 12
    SUBDURAL = 13
    SUBDURAL_SWIRL = 14
    CONTUSION = 15


#: Tissues that only traumatic patients have; drawn from their own random stream, so that the
#: rest of a scan does not depend on whether they are rendered.
_TRAUMA_TISSUES = (Tissue.SUBDURAL, Tissue.SUBDURAL_SWIRL, Tissue.CONTUSION)


def _default_tissue_hu() -> tuple[tuple[str, float, float, float], ...]:
    # (tissue name, lowest HU, highest HU, amplitude of the smooth texture inside the range)
    return (
        ("AIR", -1000.0, -1000.0, 0.0),
        ("SOFT_TISSUE", 25.0, 55.0, 5.0),
        ("FAT", -110.0, -70.0, 5.0),
        ("BONE", 700.0, 1300.0, 180.0),
        ("CSF", 0.0, 15.0, 3.0),
        ("VENTRICLE", 0.0, 15.0, 2.0),
        ("GREY_MATTER", 37.0, 45.0, 2.0),
        ("WHITE_MATTER", 20.0, 30.0, 2.0),
        ("CEREBELLUM", 32.0, 42.0, 2.0),
        ("BRAINSTEM", 26.0, 36.0, 2.0),
        ("OEDEMA", 10.0, 14.0, 1.0),
        ("HEMATOMA", 50.0, 80.0, 8.0),
        ("IVH", 45.0, 75.0, 5.0),
        ("SUBDURAL", 50.0, 80.0, 6.0),        # acute clot of a subdural hematoma
        ("SUBDURAL_SWIRL", 18.0, 40.0, 3.0),  # its hypodense, unclotted part (mixed density)
        ("CONTUSION", 45.0, 75.0, 6.0),       # hemorrhagic core of a contusion
    )


@dataclass(frozen=True)
class PhantomConfig:
    """Every parameter of the phantom cohort.

    The defaults reproduce the public cohort's marginals (GCS distribution, 62 % poor outcome,
    Spearman correlation of the label with GCS about -0.34 and with age about +0.39); see the
    documentation page "Phantom cohort" for the model's formulas.

    Parameters
    ----------
    shape
        ``(D, H, W)``: slices, rows and columns of each scan. The default ``(32, 128, 128)``
        keeps the paper's typical depth (28-32 slices) and a quarter of its in-plane size: 120
        patients render in seconds and the pre-processing still has to resize in-plane.
    field_of_view_mm
        In-plane field of view; the pixel spacing is ``field_of_view_mm / W`` (0.45 mm at 512).
    slice_thickness_mm
        Slice spacing. ``None``: 4.5 mm, or ``144 / D`` mm when ``D < 32`` so that the whole
        brain (posterior fossa to vertex) stays inside the volume.
    orientation
        ``"LPS"`` (default, as DICOM scanners store it) or ``"RAS"``: the axis directions of the
        stored voxel array, written into the affine.
    noise_hu
        Standard deviation of the Gaussian acquisition noise, in HU.
    tissue_hu
        ``(tissue, lowest HU, highest HU, texture amplitude)`` per :class:`Tissue` name. Each
        patient draws a tissue mean uniformly in ``[lowest + amplitude, highest - amplitude]``
        and adds a smooth texture bounded by the amplitude, so noise-free voxels stay in range.
    age_mean, age_sd, age_range
        Age in whole years: a normal distribution truncated to ``age_range`` (by redrawing);
        the defaults 73 and 15 give a mean of 72 and an SD of 14 after truncation.
    site_probabilities
        Probability of a lobar, deep and infratentorial hematoma.
    volume_median_ml, volume_log_sd, volume_max_ml
        Per site (lobar, deep, infratentorial): hematoma volume from a log-normal with this
        median and log-scale SD, truncated above at ``volume_max_ml`` (by redrawing).
    anticoagulant_rate, anticoagulant_volume_factor
        Share of patients on anticoagulants, and the factor on their median volume.
    ivh_intercept, ivh_deep, ivh_infratentorial, ivh_per_doubling
        Logistic model of intraventricular extension: ``logit P(IVH) = ivh_intercept +
        ivh_deep [deep] + ivh_infratentorial [infratentorial] + ivh_per_doubling *
        log2(volume / 10 mL)``.
    gcs_per_doubling, gcs_ivh, gcs_infratentorial, gcs_age_per_decade, gcs_noise_sd
        Latent severity ``L = gcs_per_doubling * log2(volume / 10 mL) + gcs_ivh [IVH] +
        gcs_infratentorial [infratentorial] + gcs_age_per_decade * (age - 72) / 10 + e``,
        ``e ~ N(0, gcs_noise_sd^2)``. GCS falls as ``L`` rises; the cut-points are calibrated
        so that the GCS distribution matches ``gcs_counts``.
    gcs_counts
        Target GCS counts for GCS 3..15 (default: the public cohort).
    target_poor_rate
        The outcome model's intercept is calibrated so that the expected share of poor outcome
        is this value.
    outcome_per_gcs_point, outcome_gcs_3_4, outcome_per_decade
        Outcome log-odds per GCS point below 15, extra log-odds for GCS 3-4 (the ICH score's
        two-point band) and log-odds per decade of age above 72.
    image_signal
        Multiplier of the image factors in the outcome model (0: the image predicts outcome
        only through GCS; 1: default; larger: stronger image signal).
    outcome_per_doubling, outcome_ivh, outcome_infratentorial
        Outcome log-odds per doubling of the hematoma volume (relative to 10 mL), for IVH and
        for an infratentorial site, each multiplied by ``image_signal``.
    max_shift_mm, shift_half_volume_ml
        Midline shift of a supratentorial hematoma: ``max_shift_mm * V / (V + half)``.
    trauma_rate
        Share of ``Cause_head_trauma`` = 1.
    trauma_lesions
        Render the lesions of head trauma in the patients with ``Cause_head_trauma`` = 1: a
        subdural hematoma (a crescent over one convexity, of mixed density: acute clot with
        hypodense unclotted parts) and one to three hemorrhagic contusions at the frontal and
        temporal poles, each ringed by oedema. They are labelled 3 and 4 in the lesion mask. The
        risk model does not use them (the outcome follows the ICH score's factors), so they are
        blood that a model must learn to weigh less than the hematoma. ``False`` renders every
        patient without them, exactly as before they existed.
    calibration_size
        Size of the fixed internal sample on which the GCS cut-points and the outcome
        intercept are calibrated.

    Examples
    --------
    >>> cfg = PhantomConfig(shape=(40, 512, 512))
    >>> [round(s, 3) for s in cfg.spacing_mm]
    [4.5, 0.449, 0.449]
    >>> PhantomConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    shape: tuple[int, int, int] = (32, 128, 128)
    field_of_view_mm: float = 230.0
    slice_thickness_mm: float | None = None
    orientation: str = "LPS"
    noise_hu: float = 4.0
    tissue_hu: tuple[tuple[str, float, float, float], ...] = field(
        default_factory=_default_tissue_hu
    )
    age_mean: float = 73.0
    age_sd: float = 15.0
    age_range: tuple[float, float] = (18.0, 100.0)
    site_probabilities: tuple[float, float, float] = (0.35, 0.55, 0.10)
    volume_median_ml: tuple[float, float, float] = (20.0, 10.0, 6.0)
    volume_log_sd: float = 0.9
    volume_max_ml: tuple[float, float, float] = (120.0, 100.0, 40.0)
    anticoagulant_rate: float = 0.18
    anticoagulant_volume_factor: float = 1.5
    ivh_intercept: float = -0.6
    ivh_deep: float = 0.9
    ivh_infratentorial: float = 0.4
    ivh_per_doubling: float = 0.45
    gcs_per_doubling: float = 0.55
    gcs_ivh: float = 0.8
    gcs_infratentorial: float = 0.7
    gcs_age_per_decade: float = 0.0
    gcs_noise_sd: float = 1.0
    gcs_counts: tuple[int, ...] = REAL_GCS_COUNTS
    target_poor_rate: float = 0.62
    outcome_per_gcs_point: float = 0.14
    outcome_gcs_3_4: float = 1.5
    outcome_per_decade: float = 0.85
    image_signal: float = 1.0
    outcome_per_doubling: float = 0.35
    outcome_ivh: float = 0.5
    outcome_infratentorial: float = 0.5
    max_shift_mm: float = 15.0
    shift_half_volume_ml: float = 60.0
    trauma_rate: float = 0.43
    trauma_lesions: bool = True
    calibration_size: int = 100_000

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if len(shape) != 3 or min(shape) < 4:
            raise ValueError(f"PhantomConfig.shape must be (D, H, W), each >= 4, got {self.shape}")
        object.__setattr__(self, "shape", shape)
        if self.orientation not in ("LPS", "RAS"):
            raise ValueError(f"PhantomConfig.orientation must be 'LPS' or 'RAS', got "
                             f"{self.orientation!r}")
        if self.field_of_view_mm <= 0:
            raise ValueError(f"PhantomConfig.field_of_view_mm must be > 0, got "
                             f"{self.field_of_view_mm}")
        if self.slice_thickness_mm is not None and self.slice_thickness_mm <= 0:
            raise ValueError(f"PhantomConfig.slice_thickness_mm must be > 0, got "
                             f"{self.slice_thickness_mm}")
        if self.noise_hu < 0:
            raise ValueError(f"PhantomConfig.noise_hu must be >= 0, got {self.noise_hu}")
        p = np.asarray(self.site_probabilities, dtype=float)
        if p.shape != (3,) or (p < 0).any() or abs(p.sum() - 1.0) > 1e-6:
            raise ValueError("PhantomConfig.site_probabilities must be 3 non-negative numbers "
                             f"(lobar, deep, infratentorial) summing to 1, got "
                             f"{self.site_probabilities}")
        for name in ("volume_median_ml", "volume_max_ml"):
            v = np.asarray(getattr(self, name), dtype=float)
            if v.shape != (3,) or (v <= 0).any():
                raise ValueError(f"PhantomConfig.{name} must be 3 positive volumes in mL "
                                 f"(lobar, deep, infratentorial), got {getattr(self, name)}")
        if len(self.gcs_counts) != 13 or min(self.gcs_counts) < 0 or sum(self.gcs_counts) == 0:
            raise ValueError("PhantomConfig.gcs_counts must be 13 non-negative counts for GCS "
                             f"3..15, got {self.gcs_counts}")
        if not 0.0 < self.target_poor_rate < 1.0:
            raise ValueError(f"PhantomConfig.target_poor_rate must be in (0, 1), got "
                             f"{self.target_poor_rate}")
        lo, hi = self.age_range
        if not 0 <= lo < hi <= 120:
            raise ValueError(f"PhantomConfig.age_range must satisfy 0 <= low < high <= 120, got "
                             f"{self.age_range}")
        names = {t.name for t in Tissue}
        given = {row[0] for row in self.tissue_hu}
        if given == names - {t.name for t in _TRAUMA_TISSUES}:
            # a configuration written before the traumatic lesions existed: their defaults
            defaults = {row[0]: row for row in _default_tissue_hu()}
            object.__setattr__(self, "tissue_hu", tuple(self.tissue_hu) + tuple(
                defaults[t.name] for t in _TRAUMA_TISSUES))
            given = names
        if given != names:
            raise ValueError(f"PhantomConfig.tissue_hu must list every tissue {sorted(names)}; "
                             f"missing {sorted(names - given)}, unknown {sorted(given - names)}")
        for name, low, high, amp in self.tissue_hu:
            if not (low <= high and 0 <= amp and 2 * amp <= high - low + 1e-9):
                raise ValueError(f"PhantomConfig.tissue_hu[{name!r}]: need low <= high and "
                                 f"0 <= 2 * amplitude <= high - low, got ({low}, {high}, {amp})")
        if self.calibration_size < 1000:
            raise ValueError(f"PhantomConfig.calibration_size must be >= 1000, got "
                             f"{self.calibration_size}")

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel spacing ``(slice, row, column)`` in mm, in the order of ``shape``."""
        d, h, w = self.shape
        if self.slice_thickness_mm is not None:
            dz = float(self.slice_thickness_mm)
        else:
            dz = 4.5 if d >= 32 else 144.0 / d
        return (dz, self.field_of_view_mm / h, self.field_of_view_mm / w)

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel in mL."""
        dz, dy, dx = self.spacing_mm
        return dz * dy * dx / 1000.0

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON-ready values."""
        out = dataclasses.asdict(self)
        out["tissue_hu"] = [list(row) for row in self.tissue_hu]
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PhantomConfig:
        """Inverse of :meth:`to_dict` (unknown keys raise ``TypeError``)."""
        kwargs = dict(values)
        for key, value in list(kwargs.items()):
            if key == "tissue_hu":
                kwargs[key] = tuple(tuple(row) for row in value)
            elif isinstance(value, list):
                kwargs[key] = tuple(value)
        return cls(**kwargs)

    def tissue_range(self, tissue: Tissue | str) -> tuple[float, float]:
        """``(lowest, highest)`` noise-free HU of a tissue."""
        name = tissue.name if isinstance(tissue, Tissue) else str(tissue)
        for row in self.tissue_hu:
            if row[0] == name:
                return (float(row[1]), float(row[2]))
        raise KeyError(f"unknown tissue {tissue!r}; tissues are {[t.name for t in Tissue]}")


# ----------------------------------------------------------------------------------------------
# the clinical model (table only)
# ----------------------------------------------------------------------------------------------
def ich_score(gcs: Any, volume_ml: Any, ivh: Any, infratentorial: Any, age: Any) -> np.ndarray:
    """The ICH score (Hemphill et al., Stroke 2001), 0 to 6.

    GCS 3-4: 2 points, 5-12: 1, 13-15: 0; volume >= 30 mL: 1; intraventricular extension: 1;
    infratentorial origin: 1; age >= 80: 1.

    Parameters
    ----------
    gcs, volume_ml, ivh, infratentorial, age
        Array-likes of equal length (or scalars); ``ivh`` and ``infratentorial`` are 0/1.

    Returns
    -------
    numpy.ndarray of int
    """
    g = np.asarray(gcs, dtype=float)
    bad = (g < 3) | (g > 15) | (g != np.round(g))
    if np.any(bad):
        raise ValueError(f"ich_score: GCS must be integers from 3 to 15, got {g[bad][:5]}")
    gcs_points = np.where(g <= 4, 2, np.where(g <= 12, 1, 0))
    score = (gcs_points + (np.asarray(volume_ml, dtype=float) >= 30.0)
             + (np.asarray(ivh) > 0) + (np.asarray(infratentorial) > 0)
             + (np.asarray(age, dtype=float) >= 80.0))
    return np.asarray(score, dtype=int)


def _truncated_normal(rng: np.random.Generator, mean: float, sd: float, low: float, high: float,
                      n: int) -> np.ndarray:
    out = rng.normal(mean, sd, n)
    bad = (out < low) | (out > high)
    while bad.any():
        out[bad] = rng.normal(mean, sd, int(bad.sum()))
        bad = (out < low) | (out > high)
    return out


def _hidden_state(n: int, config: PhantomConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Age, site, side, anticoagulation, volume, IVH and the GCS latent of ``n`` patients."""
    age = np.round(_truncated_normal(rng, config.age_mean, config.age_sd, *config.age_range, n))
    site = rng.choice(3, size=n, p=np.asarray(config.site_probabilities, dtype=float))
    side = rng.integers(0, 2, n)  # 0 left, 1 right
    anticoag = (rng.random(n) < config.anticoagulant_rate).astype(int)
    median = np.asarray(config.volume_median_ml)[site] * np.where(
        anticoag == 1, config.anticoagulant_volume_factor, 1.0)
    vmax = np.asarray(config.volume_max_ml)[site]
    volume = median * np.exp(config.volume_log_sd * rng.standard_normal(n))
    bad = volume > vmax
    while bad.any():
        volume[bad] = median[bad] * np.exp(config.volume_log_sd * rng.standard_normal(bad.sum()))
        bad = volume > vmax
    # whole voxels of the scan grid: the mask holds exactly volume_ml / voxel_ml voxels
    voxels = np.maximum(np.round(volume / config.voxel_ml), 1.0)
    volume = voxels * config.voxel_ml
    doubling = np.log2(volume / 10.0)
    deep = (site == 1).astype(float)
    infra = (site == 2).astype(float)
    ivh_logit = (config.ivh_intercept + config.ivh_deep * deep
                 + config.ivh_infratentorial * infra + config.ivh_per_doubling * doubling)
    ivh = (rng.random(n) < 1.0 / (1.0 + np.exp(-ivh_logit))).astype(int)
    latent = (config.gcs_per_doubling * doubling + config.gcs_ivh * ivh
              + config.gcs_infratentorial * infra
              + config.gcs_age_per_decade * (age - 72.0) / 10.0
              + config.gcs_noise_sd * rng.standard_normal(n))
    return {"age": age, "site": site, "side": side, "anticoagulant": anticoag,
            "volume_ml": volume, "ivh": ivh, "infratentorial": infra.astype(int),
            "gcs_latent": latent}


def _outcome_logit_without_intercept(state: Mapping[str, np.ndarray], gcs: np.ndarray,
                                     config: PhantomConfig) -> np.ndarray:
    image = (config.outcome_per_doubling * np.log2(state["volume_ml"] / 10.0)
             + config.outcome_ivh * state["ivh"]
             + config.outcome_infratentorial * state["infratentorial"])
    return (config.outcome_per_gcs_point * (15.0 - gcs) + config.outcome_gcs_3_4 * (gcs <= 4)
            + config.outcome_per_decade * (state["age"] - 72.0) / 10.0
            + config.image_signal * image)


@functools.lru_cache(maxsize=16)
def _calibration(config: PhantomConfig) -> tuple[np.ndarray, float]:
    """GCS cut-points on the latent and the outcome intercept, from a fixed internal sample."""
    rng = np.random.default_rng(20_240_917)
    state = _hidden_state(config.calibration_size, config, rng)
    counts = np.asarray(config.gcs_counts, dtype=float)
    # cumulative share from GCS 15 downwards: P(GCS >= 15), P(GCS >= 14), ..., P(GCS >= 4)
    from_top = np.cumsum(counts[::-1])[:-1] / counts.sum()
    cuts = np.quantile(state["gcs_latent"], from_top)
    gcs = 15 - np.searchsorted(cuts, state["gcs_latent"])
    lin = _outcome_logit_without_intercept(state, gcs.astype(float), config)
    lo, hi = -20.0, 20.0
    for _ in range(80):  # bisection on the expected poor-outcome rate
        mid = 0.5 * (lo + hi)
        rate = np.mean(1.0 / (1.0 + np.exp(-(mid + lin))))
        lo, hi = (mid, hi) if rate < config.target_poor_rate else (lo, mid)
    return cuts, 0.5 * (lo + hi)


def _round(values: np.ndarray, decimals: int) -> np.ndarray:
    return np.round(values, decimals) if decimals else np.round(values).astype(int)


def _clinical_columns(state: Mapping[str, np.ndarray], gcs: np.ndarray,
                      config: PhantomConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The other 41 columns: plausible ranges, a few mildly related to the hidden state."""
    n = len(gcs)
    age = state["age"]
    sev = (15.0 - gcs) / 12.0  # 0 (GCS 15) .. 1 (GCS 3)
    old = (age - 72.0) / 14.0

    def binary(p: Any) -> np.ndarray:
        return (rng.random(n) < np.clip(p, 0.0, 1.0)).astype(int)

    ht = binary(0.62 + 0.08 * old)
    cols: dict[str, np.ndarray] = {}
    cols["Gender"] = binary(0.55)
    cols["Antihypertensive_drugs"] = np.where(ht == 1, binary(0.8), binary(0.05))
    cols["Smoker"] = binary(0.18 - 0.04 * old)
    cols["Alcohol"] = binary(0.14)
    cols["HT"] = ht
    cols["DM"] = binary(0.26)
    cols["Dyslipidemia"] = binary(0.40)
    cols["MH_ICH"] = binary(0.08)
    cols["MH_CVD"] = binary(0.15 + 0.04 * old)
    cols["MH_neuro"] = binary(0.10)
    cols["MH_dementia"] = binary(0.07 + 0.05 * old)
    cols["MH_cancer"] = binary(0.12)
    cols["MH_hematho"] = binary(0.05)
    cols["MH_others"] = binary(0.30)
    cols["Anticoagulant"] = state["anticoagulant"].astype(int)
    cols["Antiaggregant"] = np.where(cols["Anticoagulant"] == 1, binary(0.08), binary(0.26))
    cols["Calcium_antag"] = np.where(ht == 1, binary(0.28), binary(0.03))
    cols["Alpha_blockers"] = binary(0.07)
    sbp = rng.normal(158.0 + 12.0 * sev, 28.0, n)
    cols["Systolic_AP"] = _round(sbp, 0)
    cols["Dyastolic_AP"] = _round(0.45 * sbp + rng.normal(17.0, 11.0, n), 0)
    cols["OxSat"] = _round(100.0 - rng.gamma(1.6 + 2.0 * sev, 1.5, n), 0)
    cols[schema.TEMPERATURE_COLUMN] = _round(rng.normal(36.3 + 0.3 * sev, 0.5, n), 1)
    cols["HR"] = _round(rng.normal(80.0 + 6.0 * sev, 15.0, n), 0)
    cols["RF"] = _round(rng.normal(16.0 + 3.0 * sev, 3.0, n), 0)
    cols["PE_neuro"] = binary(0.55 + 0.4 * sev)
    cols["Glucose"] = _round(np.exp(rng.normal(np.log(120.0) + 0.35 * sev, 0.25, n)), 0)
    cols["Creatinine"] = _round(np.exp(rng.normal(np.log(0.9) + 0.08 * old, 0.3, n)), 2)
    cols["Urea"] = _round(np.exp(rng.normal(np.log(40.0) + 0.12 * old, 0.35, n)), 0)
    cols["Sodium"] = _round(rng.normal(139.0, 3.5, n), 0)
    cols["Potassium"] = _round(rng.normal(4.0 - 0.2 * sev, 0.45, n), 1)
    cols["WBC"] = _round(np.exp(rng.normal(np.log(8.5) + 0.35 * sev, 0.3, n)), 1)
    cols["Hgb"] = _round(rng.normal(13.6, 1.7, n), 1)
    cols["Platelets"] = _round(np.exp(rng.normal(np.log(215.0), 0.3, n)), 0)
    cols["MCV"] = _round(rng.normal(90.0, 5.0, n), 1)
    cols["RCDW"] = _round(np.exp(rng.normal(np.log(13.8), 0.08, n)), 1)
    cols["CMHC"] = _round(rng.normal(33.5, 1.2, n), 1)
    cols["MPV"] = _round(rng.normal(10.2, 1.1, n), 1)
    inr_median = np.where(cols["Anticoagulant"] == 1, 2.2, 1.02)
    cols["INR"] = _round(np.exp(rng.normal(np.log(inr_median), 0.12, n)), 2)
    cols["Fibrinogen"] = _round(np.exp(rng.normal(np.log(400.0), 0.22, n)), 0)
    cols["Cause_head_trauma"] = binary(
        config.trauma_rate + 0.1 * ((state["site"] == 0) - config.site_probabilities[0]))
    return cols


def phantom_table(
    n: int, seed: int = 0, config: PhantomConfig | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The clinical table and the per-patient truth of a phantom cohort, without images.

    Fast (thousands of patients per second): for statistics of the risk model and for the
    tabular models. :func:`make_phantom_cohort` with the same ``n``, ``seed`` and ``config``
    writes exactly this table and truth (plus the truth columns measured on the images).

    Parameters
    ----------
    n
        Number of patients (>= 1).
    seed
        Seed of everything random.
    config
        Model parameters; default :class:`PhantomConfig()`. ``config.shape`` matters only
        through the voxel volume (hematoma volumes are whole numbers of voxels).

    Returns
    -------
    table : pandas.DataFrame
        The 44 columns of :data:`ichprog.data.schema.COLUMNS` in order, ``PatientID`` an integer
        column ``1..n`` (as in the public table), no missing values.
    truth : pandas.DataFrame
        :data:`TRUTH_COLUMNS`: the label and its probability, the risk model's logit, the ICH
        score, GCS and age, the hematoma site (``"lobar"``, ``"deep"``, ``"infratentorial"``),
        side (``"left"``/``"right"``), infratentorial and IVH flags, hematoma volume in mL,
        midline shift in mm, the atrophy index in [0, 1], anticoagulation, the GCS latent and
        ``traumatic`` (the table's ``Cause_head_trauma``: such patients are rendered with a
        subdural hematoma and contusions, see :attr:`PhantomConfig.trauma_lesions`).

    Examples
    --------
    >>> table, truth = phantom_table(500, seed=1)
    >>> table.shape
    (500, 44)
    >>> sorted(set(table["GCS"])) == list(range(3, 16))
    True
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"phantom_table: n must be a positive integer, got {n!r}")
    config = PhantomConfig() if config is None else config
    cuts, intercept = _calibration(config)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0]))
    state = _hidden_state(int(n), config, rng)
    gcs = (15 - np.searchsorted(cuts, state["gcs_latent"])).astype(int)
    logit = intercept + _outcome_logit_without_intercept(state, gcs.astype(float), config)
    prob = 1.0 / (1.0 + np.exp(-logit))
    label = (rng.random(int(n)) < prob).astype(int)
    supra = state["infratentorial"] == 0
    v = state["volume_ml"]
    shift = np.where(supra, config.max_shift_mm * v / (v + config.shift_half_volume_ml), 0.0)
    atrophy = np.clip((state["age"] - 40.0) / 50.0 + rng.normal(0.0, 0.08, int(n)), 0.0, 1.0)
    clinical = _clinical_columns(state, gcs, config, rng)

    ids = np.arange(1, int(n) + 1)
    table = pd.DataFrame({schema.ID_COLUMN: ids, schema.LABEL_COLUMN: label,
                          schema.AGE_COLUMN: state["age"].astype(int), schema.GCS_COLUMN: gcs,
                          **clinical})
    table = table[list(schema.COLUMNS)]
    truth = pd.DataFrame({
        "PatientID": ids,
        "label": label,
        "outcome_probability": prob,
        "risk_logit": logit,
        "ich_score": ich_score(gcs, v, state["ivh"], state["infratentorial"], state["age"]),
        "gcs": gcs,
        "age": state["age"].astype(int),
        "site": np.asarray(SITES, dtype=object)[state["site"]],
        "side": np.where(state["side"] == 1, "right", "left").astype(object),
        "infratentorial": state["infratentorial"],
        "ivh": state["ivh"],
        "volume_ml": v,
        "midline_shift_mm": shift,
        "atrophy": atrophy,
        "anticoagulant": state["anticoagulant"],
        "gcs_latent": state["gcs_latent"],
        "traumatic": clinical["Cause_head_trauma"],
    })
    return table, truth[list(TRUTH_COLUMNS)]


# ----------------------------------------------------------------------------------------------
# the renderer
# ----------------------------------------------------------------------------------------------
@dataclass
class PhantomScan:
    """One rendered phantom scan, in NIfTI voxel order ``(i, j, k)`` = ``(W, H, D)``.

    Attributes
    ----------
    hu : numpy.ndarray of int16
        Hounsfield units with acquisition noise.
    mask : numpy.ndarray of uint8
        Lesion mask: 1 parenchymal hematoma, 2 intraventricular blood, 3 subdural hematoma,
        4 contusion, 0 elsewhere (:data:`MASK_LABELS`).
    tissue : numpy.ndarray of uint8
        The :class:`Tissue` label of every voxel.
    affine : numpy.ndarray
        ``(4, 4)`` voxel-to-world (RAS mm) matrix shared by the three arrays.
    truth : dict
        Values measured on the render: ``volume_ml`` (hematoma), ``ivh_volume_ml``,
        ``oedema_volume_ml`` (around the hematoma), the hematoma centre in world mm,
        ``sdh_volume_ml`` and ``contusion_volume_ml`` (0 unless traumatic).
    """

    hu: np.ndarray
    mask: np.ndarray
    tissue: np.ndarray
    affine: np.ndarray
    truth: dict[str, float]


def phantom_affine(config: PhantomConfig | None = None) -> np.ndarray:
    """The voxel-to-world affine of the phantom's ``(W, H, D)`` voxel grid.

    The field of view is centred on the world origin. With ``orientation="LPS"`` the first
    voxel axis points to the patient's left, the second to posterior and the third (slices) to
    superior; with ``"RAS"`` to right, anterior and superior.

    Parameters
    ----------
    config
        Default :class:`PhantomConfig()`.

    Returns
    -------
    numpy.ndarray
        ``(4, 4)`` float64.
    """
    config = PhantomConfig() if config is None else config
    d, h, w = config.shape
    dz, dy, dx = config.spacing_mm
    sign = -1.0 if config.orientation == "LPS" else 1.0
    affine = np.eye(4)
    affine[0, 0], affine[1, 1], affine[2, 2] = sign * dx, sign * dy, dz
    affine[:3, 3] = -affine[:3, :3] @ np.array([(w - 1) / 2.0, (h - 1) / 2.0, (d - 1) / 2.0])
    return affine


def _wave_terms(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray, z: np.ndarray,
    wavelengths: tuple[float, float], k: int, transform: np.ndarray | None,
    center: tuple[float, float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """In-plane phases (W*H, k), slice phases (k, D), weights (k,) and wave vectors (k, 3)."""
    amps = rng.uniform(0.5, 1.0, k)
    m = np.eye(3) if transform is None else np.asarray(transform, dtype=float)
    a_list, b_list, kvecs = [], [], []
    for _ in range(k):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        kvec = (2.0 * np.pi / rng.uniform(*wavelengths)) * (m.T @ direction)
        phase = rng.uniform(0.0, 2.0 * np.pi) - float(kvec @ np.asarray(center))
        a_list.append((np.float32(kvec[0]) * x + np.float32(kvec[1]) * y).reshape(-1))
        b_list.append(np.float32(kvec[2]) * z.reshape(-1) + np.float32(phase))
        kvecs.append(kvec)
    weights = (amps / amps.sum()).astype(np.float32)
    return (np.stack(a_list, axis=1), np.stack(b_list, axis=0), weights,
            np.asarray(kvecs, dtype=np.float32))


def _waves(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, z: np.ndarray,
           wavelengths: tuple[float, float], k: int = 6, transform: np.ndarray | None = None,
           center: tuple[float, float, float] = (0.0, 0.0, 0.0),
           gradient: bool = False) -> Any:
    """A smooth random field in [-1, 1]: a normalised sum of ``k`` plane waves.

    ``x`` and ``y`` are ``(W, H, 1)`` and ``z`` is ``(1, 1, D)``; the sum over waves of
    ``cos(a + b) = cos a cos b - sin a sin b`` (``a`` in-plane, ``b`` along the slices) is one
    matrix product, so no full-size cosine is taken. ``transform`` (3 x 3) and ``center`` define
    the space in which the wavelengths are measured: ``p = transform @ (q - center)``. With
    ``gradient=True`` the field's gradient magnitude (per mm of head space) is returned too.
    """
    a, b, w, kv = _wave_terms(rng, x, y, z, wavelengths, k, transform, center)
    cos_a, sin_a = np.cos(a), np.sin(a)
    cos_b, sin_b = np.cos(b), np.sin(b)
    shape = (x.shape[0], x.shape[1], z.shape[2])
    plane = np.concatenate([cos_a, sin_a], axis=1)
    field = (plane @ np.concatenate([w[:, None] * cos_b, -w[:, None] * sin_b])).reshape(shape)
    if not gradient:
        return np.asarray(field, dtype=np.float32)
    # d/dq cos(a + b) = -k sin(a + b) = -k (sin a cos b + cos a sin b)
    plane_s = np.concatenate([sin_a, cos_a], axis=1)
    grad2 = np.zeros(shape, dtype=np.float32)
    for c in range(3):
        wk = (w * kv[:, c])[:, None]
        g = (plane_s @ np.concatenate([-wk * cos_b, -wk * sin_b])).reshape(shape)
        grad2 += g * g
    return np.asarray(field, dtype=np.float32), np.sqrt(grad2)


def _ellipsoid_depth(x: np.ndarray, y: np.ndarray, z: np.ndarray, center: tuple[float, ...],
                     axes: tuple[float, ...]) -> np.ndarray:
    """Approximate signed distance in mm to an ellipsoid's surface (positive inside)."""
    dx, dy, dz = x - center[0], y - center[1], z - center[2]
    a, b, c = axes
    r = np.sqrt((dx / a) ** 2 + (dy / b) ** 2 + (dz / c) ** 2)
    grad = np.sqrt((dx / a**2) ** 2 + (dy / b**2) ** 2 + (dz / c**2) ** 2)
    return np.asarray((1.0 - r) * r / np.maximum(grad, 1e-6), dtype=np.float32)


def _inside(x: Any, y: Any, z: Any, center: tuple[float, ...], axes: tuple[float, ...]) -> Any:
    return (((x - center[0]) / axes[0]) ** 2 + ((y - center[1]) / axes[1]) ** 2
            + ((z - center[2]) / axes[2]) ** 2) < 1.0


def _sigmoid(t: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-t))


Box = tuple[slice, slice, slice]


def _bbox(x: np.ndarray, y: np.ndarray, z: np.ndarray, center: tuple[float, ...],
          radius: tuple[float, ...]) -> Box | None:
    """Index box of the ``(W, H, D)`` grid holding the head-space box ``center +- radius``."""
    plane = (np.abs(x[..., 0] - center[0]) <= radius[0]) & (
        np.abs(y[..., 0] - center[1]) <= radius[1])
    ii = np.flatnonzero(plane.any(axis=1))
    jj = np.flatnonzero(plane.any(axis=0))
    kk = np.flatnonzero(np.abs(z[0, 0] - center[2]) <= radius[2])
    if not (len(ii) and len(jj) and len(kk)):
        return None
    return (slice(ii[0], ii[-1] + 1), slice(jj[0], jj[-1] + 1), slice(kk[0], kk[-1] + 1))


def _cut(arr: Any, box: Box) -> Any:
    """``arr[box]`` for arrays that broadcast to the grid (size-1 axes are kept whole)."""
    if np.ndim(arr) == 0:
        return arr
    return arr[tuple(s if n > 1 else slice(None) for s, n in zip(box, np.shape(arr)))]


class _Head:
    """Head-space coordinates of the voxel grid and ellipsoid painting on sub-boxes."""

    def __init__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, tissue: np.ndarray) -> None:
        self.x, self.y, self.z, self.tissue = x, y, z, tissue

    def ellipsoid(self, center: tuple[float, ...], axes: tuple[float, ...], xm: Any = None,
                  slack: float = 0.0) -> tuple[Box, np.ndarray] | None:
        """``(box, inside)`` of an ellipsoid; ``xm`` replaces x (warped), ``slack`` widens x."""
        box = _bbox(self.x, self.y, self.z, center, (axes[0] + slack, axes[1], axes[2]))
        if box is None:
            return None
        xs = _cut(self.x if xm is None else xm, box)
        return box, _inside(xs, _cut(self.y, box), _cut(self.z, box), center, axes)

    def paint(self, label: int, center: tuple[float, ...], axes: tuple[float, ...],
              where: Any = None, xm: Any = None, slack: float = 0.0) -> None:
        found = self.ellipsoid(center, axes, xm, slack)
        if found is None:
            return
        box, inside = found
        if where is not None:
            inside &= _cut(where, box)
        self.tissue[box][inside] = label


def render_phantom(
    patient: Mapping[str, Any], config: PhantomConfig | None = None, seed: Any = 0
) -> PhantomScan:
    """Render the CT of one phantom patient.

    The anatomy is defined in millimetres, so it looks the same at any grid size: scalp, skull
    (with the skull base, sinuses and orbits), the cerebrum with cortex, sulci, deep grey
    nuclei, interhemispheric fissure and ventricles, and below the tentorium the cerebellum,
    the brainstem and the fourth ventricle. Age widens the ventricles, sulci and subarachnoid
    space (``atrophy``). The hematoma is placed by site, holds exactly ``volume_ml / voxel_ml``
    voxels, is ringed by oedema, pushes the midline by ``midline_shift_mm`` and compresses the
    ventricle of its side; with IVH, blood layers in the dependent (posterior) ventricles. A
    traumatic patient (``traumatic`` = 1) also gets a subdural hematoma and contusions (see
    :attr:`PhantomConfig.trauma_lesions`).

    Parameters
    ----------
    patient
        A row of the truth table (:func:`phantom_table`): ``age``, ``site``, ``side``, ``ivh``,
        ``volume_ml``, ``midline_shift_mm``, ``atrophy`` and optionally ``traumatic``
        (default 0).
    config
        Default :class:`PhantomConfig()`.
    seed
        Seed (an int, a sequence of ints or a ``numpy.random.SeedSequence``) of the image-only
        randomness: head size and pose, tissue means, textures, lesion shape and position,
        noise.

    Returns
    -------
    PhantomScan

    Raises
    ------
    ValueError
        A field is missing or invalid, or the hematoma does not fit its compartment.

    Examples
    --------
    >>> table, truth = phantom_table(1, seed=0)
    >>> scan = render_phantom(truth.iloc[0], PhantomConfig(shape=(16, 64, 64)), seed=0)
    >>> scan.hu.shape, scan.hu.dtype.name
    ((64, 64, 16), 'int16')
    """
    config = PhantomConfig() if config is None else config
    site, side, atrophy, volume_ml, shift = _check_patient(patient)
    traumatic = bool(int(patient.get("traumatic", 0)))
    # every draw from rng happens in the order of the sections below
    rng = np.random.default_rng(seed)
    pose = _head_pose(config, rng)
    d, h, w = config.shape
    head = _Head(pose.x, pose.y, pose.z, np.zeros((w, h, d), dtype=np.uint8))
    cavity = _skull_and_cavity(head)
    cerebrum = _cerebrum(head, cavity, site, side, atrophy, volume_ml, shift, config, rng)
    _posterior_fossa(head, cavity, cerebrum.csf_th)
    hematoma, oedema = _lesion(head, cavity, cerebrum, site, side, volume_ml, config, rng)
    ivh = (_intraventricular_blood(head, rng) if int(patient["ivh"])
           else np.zeros(head.tissue.shape, dtype=bool))
    # the lesions of head trauma draw from a stream of their own: the rest of the scan is the
    # same with or without them
    trauma_rng = np.random.default_rng(_child_seed(seed, 0x7A))
    sdh, contusion = (_traumatic_lesions(head, cavity, cerebrum, trauma_rng)
                      if traumatic and config.trauma_lesions
                      else (np.zeros(head.tissue.shape, dtype=bool),) * 2)
    hu = _hounsfield_units(head, hematoma, config, rng, trauma_rng)
    mask = np.zeros(head.tissue.shape, dtype=np.uint8)
    mask[hematoma] = MASK_LABELS["hematoma"]
    mask[ivh] = MASK_LABELS["ivh"]
    mask[sdh] = MASK_LABELS["subdural"]
    mask[contusion] = MASK_LABELS["contusion"]
    center_world = _head_to_world(cerebrum.lesion_center, pose.scale, pose.yaw, pose.shift)
    truth = {
        "volume_ml": float(hematoma.sum() * config.voxel_ml),
        "ivh_volume_ml": float(ivh.sum() * config.voxel_ml),
        "oedema_volume_ml": float(oedema.sum() * config.voxel_ml),
        "center_x_mm": center_world[0],
        "center_y_mm": center_world[1],
        "center_z_mm": center_world[2],
        "sdh_volume_ml": float(sdh.sum() * config.voxel_ml),
        "contusion_volume_ml": float(contusion.sum() * config.voxel_ml),
    }
    return PhantomScan(hu=np.rint(hu).astype(np.int16), mask=mask, tissue=head.tissue,
                       affine=pose.affine, truth=truth)


def _check_patient(patient: Mapping[str, Any]) -> tuple[str, float, float, float, float]:
    """The site, side (+1 right, -1 left), atrophy, hematoma volume and midline shift of a row
    of the truth table; raises naming a missing or invalid field."""
    for key in ("site", "side", "ivh", "volume_ml", "midline_shift_mm", "atrophy"):
        if key not in patient:
            raise ValueError(f"render_phantom: the patient has no {key!r}; pass a row of "
                             f"phantom_table()'s truth")
    site = str(patient["site"])
    if site not in SITES:
        raise ValueError(f"render_phantom: site must be one of {SITES}, got {site!r}")
    if str(patient["side"]) not in ("left", "right"):
        raise ValueError(f"render_phantom: side must be 'left' or 'right', got "
                         f"{patient['side']!r}")
    atrophy = float(patient["atrophy"])
    volume_ml = float(patient["volume_ml"])
    shift = float(patient["midline_shift_mm"])
    if not 0.0 <= atrophy <= 1.0:
        raise ValueError(f"render_phantom: atrophy must be in [0, 1], got {atrophy}")
    if not (np.isfinite(volume_ml) and volume_ml > 0):
        raise ValueError(f"render_phantom: volume_ml must be > 0, got {volume_ml}")
    if not (np.isfinite(shift) and shift >= 0):
        raise ValueError(f"render_phantom: midline_shift_mm must be >= 0, got {shift}")
    side = 1.0 if str(patient["side"]) == "right" else -1.0
    return site, side, atrophy, volume_ml, shift


@dataclass
class _Pose:
    """The voxel grid in head coordinates (mm; the brain's centre near the origin) and the head
    pose that maps them to world coordinates: ``x`` and ``y`` are ``(W, H, 1)``, ``z`` is
    ``(1, 1, D)``."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    affine: np.ndarray
    scale: float
    yaw: float
    shift: tuple[float, float, float]


def _head_pose(config: PhantomConfig, rng: np.random.Generator) -> _Pose:
    """Draw the head's size, yaw and position, and the head coordinates of the voxel centres."""
    d, h, w = config.shape
    affine = phantom_affine(config)
    # world coordinates (RAS mm) of the voxel centres: x (W, 1, 1), y (1, H, 1), z (1, 1, D)
    xw = (affine[0, 0] * np.arange(w) + affine[0, 3]).astype(np.float32)[:, None, None]
    yw = (affine[1, 1] * np.arange(h) + affine[1, 3]).astype(np.float32)[None, :, None]
    zw = (affine[2, 2] * np.arange(d) + affine[2, 3]).astype(np.float32)[None, None, :]
    # head pose (size, yaw, position); head coordinates have the brain's centre near the origin
    scale = rng.uniform(0.94, 1.06)
    yaw = np.deg2rad(rng.uniform(-6.0, 6.0))
    tx, ty, tz = rng.uniform(-5.0, 5.0), rng.uniform(-5.0, 5.0), rng.uniform(-3.0, 3.0)
    cy, sy = np.float32(np.cos(yaw)), np.float32(np.sin(yaw))
    x = ((cy * (xw - tx) + sy * (yw - ty)) / scale).astype(np.float32)  # (W, H, 1)
    y = ((-sy * (xw - tx) + cy * (yw - ty)) / scale).astype(np.float32)  # (W, H, 1)
    z = ((zw - tz) / scale + 6.0).astype(np.float32)  # (1, 1, D)
    return _Pose(x=x, y=y, z=z, affine=affine, scale=scale, yaw=yaw, shift=(tx, ty, tz))


@dataclass
class _Cavity:
    """Signed depths (mm, positive inside) of the intracranial compartments, the skull base
    heights, and the cavity itself."""

    d_convex: np.ndarray    # cerebral convexity (occipital lobes on the tentorium)
    floor: np.ndarray       # the skull base under the cerebrum (tentorium at the back)
    tent: np.ndarray        # the tentorium
    d_cerebrum: np.ndarray  # supratentorial compartment
    d_pf_outer: np.ndarray  # posterior fossa, up to its ellipsoid
    d_pf: np.ndarray        # posterior fossa, below the tentorium
    d_bs: np.ndarray        # brainstem up to the midbrain
    cavity: np.ndarray      # inside the skull


def _skull_and_cavity(head: _Head) -> _Cavity:
    """Paint the scalp, the skull (with the skull base, sinuses, orbits and mastoids) and fill
    the intracranial cavity with CSF."""
    x, y, z, tissue = head.x, head.y, head.z, head.tissue
    ce_c, ce_a = (0.0, 2.0, 8.0), (66.0, 82.0, 68.0)  # cerebrum
    taper = np.where(z > ce_c[2], 1.0, 0.3).astype(np.float32)
    head_r = np.sqrt((x / (ce_a[0] + 13.0)) ** 2 + ((y - ce_c[1]) / (ce_a[1] + 13.0)) ** 2
                     + taper * ((z - ce_c[2]) / (ce_a[2] + 13.0)) ** 2)
    head_depth = (1.0 - head_r) * (ce_a[0] + 13.0)
    # tentorium: highest at the midline near the incisura, sloping down laterally and backwards
    tent = -14.0 - 10.0 * (x / 60.0) ** 2 + 0.45 * np.minimum(y + 10.0, 0.0)
    floor_mid = -40.0 + 16.0 * np.exp(-((x / 22.0) ** 2))  # middle cranial fossa
    w_post = _sigmoid((-y - 8.0) / 4.0)
    w_ant = _sigmoid((y - 34.0) / 4.0)
    floor = w_post * tent + (1.0 - w_post) * (w_ant * -22.0 + (1.0 - w_ant) * floor_mid)
    pf_c, pf_a = (0.0, -42.0, -38.0), (50.0, 36.0, 26.0)  # posterior fossa
    d_pf_outer = _ellipsoid_depth(x, y, z, pf_c, pf_a)
    # the occipital lobes rest on the tentorium
    d_convex = np.maximum(_ellipsoid_depth(x, y, z, ce_c, ce_a), d_pf_outer)
    d_cerebrum = np.minimum(d_convex, z - floor)
    d_pf = np.minimum(d_pf_outer, tent - z)
    bs_r = np.sqrt((x / 12.0) ** 2 + ((y + 14.0) / 10.0) ** 2)
    d_bs = np.minimum((1.0 - bs_r) * 10.0, -6.0 - z)  # brainstem up to the midbrain
    d_cav = np.maximum(np.maximum(d_cerebrum, d_pf_outer), d_bs + 2.0)
    in_head = head_depth > 0
    tissue[np.broadcast_to(in_head, tissue.shape)] = Tissue.SOFT_TISSUE
    tissue[(head_depth > 5.5) & (d_cav > -7.0)] = Tissue.BONE  # skull and skull base
    pockets = [((0.0, 58.0, -42.0), (8.0, 20.0, 18.0), Tissue.AIR),  # nasal cavity, ethmoid
               ((0.0, 22.0, -38.0), (10.0, 9.0, 8.0), Tissue.AIR),   # sphenoid sinus
               ((0.0, 80.0, 22.0), (16.0, 5.0, 9.0), Tissue.AIR)]    # frontal sinus
    for sx in (-1.0, 1.0):
        pockets += [((sx * 31.0, 66.0, -30.0), (14.0, 18.0, 12.0), Tissue.FAT),   # orbit
                    ((sx * 26.0, 52.0, -64.0), (13.0, 16.0, 15.0), Tissue.AIR),   # maxillary
                    ((sx * 50.0, -26.0, -50.0), (6.0, 9.0, 7.0), Tissue.AIR)]     # mastoid
    outside = in_head & (d_cav < 0)
    for c, a, kind in pockets:
        head.paint(Tissue.BONE, c, tuple(v + 2.5 for v in a), where=outside)
        head.paint(kind, c, a, where=outside)
    cavity = d_cav > 0
    tissue[cavity] = Tissue.CSF
    return _Cavity(d_convex=d_convex, floor=floor, tent=tent, d_cerebrum=d_cerebrum,
                   d_pf_outer=d_pf_outer, d_pf=d_pf, d_bs=d_bs, cavity=cavity)


@dataclass
class _Cerebrum:
    """What the cerebrum's rendering decides for the rest: the hematoma's centre (head
    coordinates), the warped x of the mass effect, the half-width of the interhemispheric
    fissure, the thickness of the subarachnoid space and the margin of the warp."""

    lesion_center: tuple[float, float, float]
    xm: Any
    hw: float
    csf_th: float
    slack: float


def _cerebrum(head: _Head, cav: _Cavity, site: str, side: float, atrophy: float,
              volume_ml: float, shift: float, config: PhantomConfig,
              rng: np.random.Generator) -> _Cerebrum:
    """Paint white and grey matter, sulci, deep grey nuclei and ventricles; the mass effect of
    a supratentorial hematoma warps x (a structure at xm is drawn at x) and compresses the
    ventricle of its side."""
    x, y, z, tissue = head.x, head.y, head.z, head.tissue
    supra = site != "infratentorial"
    hc = _lesion_center(site, side, rng)
    warp: Any = np.float32(0.0)
    if supra and shift > 0:
        warp = (side * shift * np.exp(-(((y - hc[1]) / 40.0) ** 2) - ((z - hc[2]) / 32.0) ** 2)
                * np.clip(1.0 - (x / 62.0) ** 2, 0.0, None)).astype(np.float32)
    xm = x + warp
    csf_th = 1.0 + 2.5 * atrophy  # subarachnoid space
    hw = 0.8 + 1.2 * atrophy  # half-width of the interhemispheric fissure
    callosum_top = 22.0 - 40.0 * _sigmoid((np.abs(y) - 42.0) / 4.0)
    above = z > callosum_top
    fissure = (np.abs(xm) < hw) & above
    # CSF over the convexity; the brain rests on the skull base and the tentorium
    d_in = np.minimum(cav.d_convex - csf_th, z - cav.floor - 0.7)
    depth = np.minimum(d_in, np.where(above, np.abs(xm) - hw, np.float32(99.0)))
    cerebrum = (d_in > 0) & ~fissure
    # sulci: the zero set of a smooth random field, as a distance in mm from that surface
    gyri, gyri_grad = _waves(rng, x, y, z, (18.0, 34.0), gradient=True)
    sulcus_mm = np.abs(gyri) / np.maximum(gyri_grad, np.float32(1e-4))
    sulc_half = 0.5 + 1.2 * atrophy  # half-width of the sulcal CSF
    sulc_depth = 10.0 + 4.0 * _waves(rng, x, y, z, (30.0, 60.0), k=3)
    tissue[cerebrum] = Tissue.WHITE_MATTER
    grey = (depth < 2.5) | ((sulcus_mm < sulc_half + 2.5) & (depth < sulc_depth + 2.5))
    tissue[cerebrum & grey] = Tissue.GREY_MATTER
    tissue[cerebrum & (sulcus_mm < sulc_half) & (depth < sulc_depth)] = Tissue.CSF
    slack = shift + 1.0
    for sx in (-1.0, 1.0):  # thalamus, lentiform and caudate nuclei
        for c, a in (((10.0, -10.0, 10.0), (9.0, 13.0, 9.0)),
                     ((21.0, 6.0, 10.0), (6.0, 14.0, 10.0)),
                     ((12.0, 18.0, 18.0), (5.0, 9.0, 8.0))):
            head.paint(Tissue.GREY_MATTER, (sx * c[0], c[1], c[2]), a, where=cerebrum, xm=xm,
                       slack=slack)
    # ventricles: wider with age; the hematoma's side is compressed by the mass effect
    squeeze = 1.0 - (0.6 * volume_ml / (volume_ml + config.shift_half_volume_ml) if supra else 0.0)
    in_brain = d_in > 0
    for sx in (-1.0, 1.0):
        wide = (1.0 + 1.2 * atrophy) * (squeeze if sx == side else 1.0)
        for c, a in (((6.0, 0.0, 18.0), (4.5, 30.0, 7.0)),       # body
                     ((7.0, 22.0, 10.0), (4.5, 10.0, 8.0)),      # frontal horn
                     ((15.0, -30.0, 10.0), (4.0, 12.0, 6.0)),    # occipital horn
                     ((27.0, -2.0, -20.0), (2.5, 11.0, 4.0))):   # temporal horn
            head.paint(Tissue.VENTRICLE, (sx * (1.5 + (c[0] - 1.5) * wide), c[1], c[2]),
                       (a[0] * wide, a[1], a[2] * (0.8 + 0.2 * wide)), where=in_brain, xm=xm,
                       slack=slack)
    head.paint(Tissue.VENTRICLE, (0.0, 2.0, -2.0), (1.5 + 1.5 * atrophy, 12.0, 8.0),
               where=in_brain, xm=xm, slack=slack)  # third ventricle
    return _Cerebrum(lesion_center=hc, xm=xm, hw=hw, csf_th=csf_th, slack=slack)


def _posterior_fossa(head: _Head, cav: _Cavity, csf_th: float) -> None:
    """Paint the cerebellum, the brainstem and the fourth ventricle."""
    tissue, z = head.tissue, head.z
    tissue[(cav.d_pf_outer > csf_th) & (cav.tent - z > 0.7)] = Tissue.CEREBELLUM
    tissue[(cav.d_bs > 0) & cav.cavity] = Tissue.BRAINSTEM
    head.paint(Tissue.VENTRICLE, (0.0, -29.0, -38.0), (6.0, 4.0, 7.0), where=cav.cavity)  # fourth


def _lesion(head: _Head, cav: _Cavity, cer: _Cerebrum, site: str, side: float,
            volume_ml: float, config: PhantomConfig,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paint the hematoma, the ``volume_ml / voxel_ml`` voxels of its compartment with the
    lowest value of a lumpy ellipsoidal field around its centre, and its ring of oedema;
    returns both masks."""
    x, y, z, tissue = head.x, head.y, head.z, head.tissue
    hc, xm, hw, slack = cer.lesion_center, cer.xm, cer.hw, cer.slack
    supra = site != "infratentorial"
    n_lesion = int(round(volume_ml / config.voxel_ml))
    rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    axes = np.array([1.0, rng.uniform(0.6, 1.0), rng.uniform(0.55, 0.9)])
    size = (volume_ml * 1000.0 * 3.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
    to_lesion = (rot / (axes * size)).T  # p = to_lesion @ (q - hc): unit sphere ~ the volume
    lumps = _waves(rng, x, y, z, (0.9, 1.8), k=5, transform=to_lesion, center=hc)
    reach = 3.0 * size / axes.min()
    box = _bbox(x, y, z, hc, (reach + slack, reach, reach))
    full: Box = (slice(None), slice(None), slice(None))
    for attempt in (box, full):
        if attempt is None:
            continue
        sub = tissue[attempt]
        if supra:
            allowed = (np.isin(sub, (Tissue.GREY_MATTER, Tissue.WHITE_MATTER, Tissue.CSF))
                       & (_cut(cav.d_cerebrum, attempt) > 0) & (side * _cut(xm, attempt) > hw))
        else:
            allowed = np.isin(sub, (Tissue.CEREBELLUM, Tissue.BRAINSTEM)) | (
                (sub == Tissue.CSF) & (_cut(cav.d_pf, attempt) > 0))
        if int(allowed.sum()) >= n_lesion or attempt is full:
            box = attempt
            break
    assert box is not None
    n_allowed = int(allowed.sum())
    if n_lesion > n_allowed:
        raise ValueError(f"render_phantom: a {site} hematoma of {volume_ml:.1f} mL "
                         f"({n_lesion} voxels) does not fit the {n_allowed} voxels of its "
                         f"compartment on a grid of shape {config.shape}")
    q = [_cut(x, box) - hc[0], _cut(y, box) - hc[1], _cut(z, box) - hc[2]]
    p = [to_lesion[i, 0] * q[0] + to_lesion[i, 1] * q[1] + to_lesion[i, 2] * q[2]
         for i in range(3)]
    field_ = np.sqrt(p[0] ** 2 + p[1] ** 2 + p[2] ** 2) * (1.0 + 0.18 * _cut(lumps, box))
    f_allowed = field_[allowed].astype(np.float32)
    chosen = np.argpartition(f_allowed, n_lesion - 1)[:n_lesion]
    thr = float(f_allowed[chosen].max())
    flat = np.zeros(n_allowed, dtype=bool)
    flat[chosen] = True
    hematoma = np.zeros(tissue.shape, dtype=bool)
    hematoma[box][allowed] = flat
    oedema = np.zeros(tissue.shape, dtype=bool)
    oedema[box] = (allowed & (field_ <= thr * rng.uniform(1.25, 1.45))
                   & (tissue[box] != Tissue.CSF))
    oedema &= ~hematoma
    tissue[oedema] = Tissue.OEDEMA
    tissue[hematoma] = Tissue.HEMATOMA
    return hematoma, oedema


def _intraventricular_blood(head: _Head, rng: np.random.Generator) -> np.ndarray:
    """Paint blood layered in the dependent (posterior) ventricles; returns its mask."""
    x, y, z, tissue = head.x, head.y, head.z, head.tissue
    ivh = np.zeros(tissue.shape, dtype=bool)
    ventricles = tissue == Tissue.VENTRICLE
    n_vent = int(ventricles.sum())
    if n_vent:  # blood settles in the dependent (posterior) horns of a supine patient
        level = np.broadcast_to(y + 6.0 * _waves(rng, x, y, z, (20.0, 40.0), k=3),
                                tissue.shape)[ventricles]
        k = max(1, int(round(rng.uniform(0.2, 0.6) * n_vent)))
        flat = np.zeros(n_vent, dtype=bool)
        flat[np.argpartition(level, k - 1)[:k]] = True
        ivh[ventricles] = flat
        tissue[ivh] = Tissue.IVH
    return ivh


def _hounsfield_units(head: _Head, hematoma: np.ndarray, config: PhantomConfig,
                      rng: np.random.Generator, trauma_rng: np.random.Generator) -> np.ndarray:
    """Hounsfield units (float32): a drawn mean per tissue, a smooth texture (a finer one in
    the clot) and acquisition noise. The means of the traumatic tissues come from
    ``trauma_rng``."""
    x, y, z, tissue = head.x, head.y, head.z, head.tissue
    texture = np.broadcast_to(_waves(rng, x, y, z, (12.0, 40.0)), tissue.shape)
    clot = np.broadcast_to(_waves(rng, x, y, z, (4.0, 9.0), k=5), tissue.shape)
    base = np.zeros(len(Tissue), dtype=np.float32)
    amplitude = np.zeros(len(Tissue), dtype=np.float32)
    for name, low, high, amp in config.tissue_hu:
        label = Tissue[name]
        draw = trauma_rng if label in _TRAUMA_TISSUES else rng
        base[label] = (draw.uniform(low + amp, high - amp) if high - low > 2 * amp
                       else 0.5 * (low + high))
        amplitude[label] = amp
    hu = base[tissue] + amplitude[tissue] * np.where(hematoma, clot, texture)
    if config.noise_hu > 0:
        hu += rng.normal(0.0, config.noise_hu, hu.shape).astype(np.float32)
    return hu


def _child_seed(seed: Any, key: int) -> np.random.SeedSequence:
    """A seed sequence independent of ``seed``'s own stream, derived from it and ``key``."""
    if isinstance(seed, np.random.Generator):
        raise TypeError("render_phantom: seed must be an int, a sequence of ints or a "
                        "numpy.random.SeedSequence, not a Generator")
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, int(key)))


#: Head-space boxes (centre ranges in mm, for the right side; x mirrors) where contusions form:
#: the orbitofrontal surface and the temporal pole.
_CONTUSION_SITES: tuple[tuple[tuple[float, float], ...], ...] = (
    ((8.0, 30.0), (48.0, 62.0), (-14.0, 0.0)),
    ((34.0, 46.0), (10.0, 26.0), (-32.0, -20.0)),
)


def _traumatic_lesions(head: _Head, cav: _Cavity, cer: _Cerebrum,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paint a subdural hematoma and one to three contusions; returns both blood masks.

    The subdural hematoma is a crescent under the inner table of one convexity: its thickness
    falls from 3-10 mm at a drawn point to 0 at an angular radius of 35-60 degrees, it stops at
    the falx and the skull base, and 10-40 % of it (a smooth random part) is hypodense
    unclotted blood. Each contusion is a lumpy ellipsoid of brain at an orbitofrontal or
    temporal pole: a speckled hemorrhagic core inside a ring of oedema. Neither overwrites the
    hematoma, its oedema, intraventricular blood or the ventricles.
    """
    x, y, z, tissue = head.x, head.y, head.z, head.tissue
    keep = np.isin(tissue, (Tissue.HEMATOMA, Tissue.IVH, Tissue.OEDEMA, Tissue.VENTRICLE))
    # subdural crescent: thickness as a function of the direction from the cerebrum's centre
    sdh_side = 1.0 if rng.random() < 0.5 else -1.0
    az, el = rng.uniform(0.2, 0.8) * np.pi, rng.uniform(0.0, 0.5)
    toward = np.array([sdh_side * np.sin(az) * np.cos(el), np.cos(az) * np.cos(el), np.sin(el)])
    thick, reach = rng.uniform(3.0, 10.0), np.deg2rad(rng.uniform(35.0, 60.0))
    u = [x / 66.0, (y - 2.0) / 82.0, (z - 8.0) / 68.0]
    norm = np.sqrt(u[0] ** 2 + u[1] ** 2 + u[2] ** 2) + np.float32(1e-6)
    cos_angle = (toward[0] * u[0] + toward[1] * u[1] + toward[2] * u[2]) / norm
    angle = np.arccos(np.clip(cos_angle, -1.0, 1.0))
    local = thick * np.clip(1.0 - (angle / reach) ** 2, 0.0, None)
    sdh = ((cav.d_convex > 0) & (cav.d_convex < local) & (cav.d_cerebrum > 0)
           & (sdh_side * x > cer.hw) & ~keep)
    swirl = np.broadcast_to(_waves(rng, x, y, z, (8.0, 16.0), k=4), tissue.shape)
    tissue[sdh] = Tissue.SUBDURAL
    if sdh.any():
        cut = np.quantile(swirl[sdh], 1.0 - rng.uniform(0.1, 0.4))
        tissue[sdh & (swirl > cut)] = Tissue.SUBDURAL_SWIRL
    # contusions at the poles that strike the skull (either side)
    contusion = np.zeros(tissue.shape, dtype=bool)
    for _ in range(int(rng.integers(1, 4))):
        ranges = _CONTUSION_SITES[int(rng.integers(len(_CONTUSION_SITES)))]
        sx = 1.0 if rng.random() < 0.5 else -1.0
        c = (sx * rng.uniform(*ranges[0]), rng.uniform(*ranges[1]), rng.uniform(*ranges[2]))
        axes = tuple(float(a) for a in rng.uniform(4.0, 9.0, 3))
        ring = tuple(a + 3.0 for a in axes)
        found = head.ellipsoid(c, ring)
        if found is None:
            continue
        box, inside = found
        lumps = _cut(np.broadcast_to(_waves(rng, x, y, z, (3.0, 6.0), k=4), tissue.shape), box)
        core = _inside(_cut(x, box), _cut(y, box), _cut(z, box), c, axes) & (lumps > -0.2)
        sub, kept = tissue[box], _cut(keep, box)
        sub[inside & np.isin(sub, (Tissue.GREY_MATTER, Tissue.WHITE_MATTER)) & ~kept] = (
            Tissue.OEDEMA)
        bleed = core & np.isin(sub, (Tissue.GREY_MATTER, Tissue.WHITE_MATTER, Tissue.OEDEMA))
        bleed &= ~kept
        sub[bleed] = Tissue.CONTUSION
        contusion[box] |= bleed
    return sdh, contusion


def _lesion_center(site: str, side: float, rng: np.random.Generator) -> tuple[float, float, float]:
    """Hematoma centre in head coordinates (mm) for a site."""
    if site == "lobar":
        az = rng.uniform(0.15, 0.85) * np.pi  # angle from anterior, on the lesion's side
        el = rng.uniform(-0.1, 0.55)
        frac = rng.uniform(0.62, 0.76)
        return (side * frac * 66.0 * np.sin(az) * np.cos(el),
                2.0 + frac * 82.0 * np.cos(az) * np.cos(el),
                8.0 + frac * 68.0 * np.sin(el))
    if site == "deep":
        return (side * rng.uniform(14.0, 26.0), rng.uniform(-14.0, 10.0), rng.uniform(2.0, 16.0))
    if rng.random() < 0.8:  # cerebellar
        return (side * rng.uniform(14.0, 28.0), rng.uniform(-54.0, -40.0), rng.uniform(-46.0, -34.0))
    return (side * rng.uniform(0.0, 4.0), -14.0, rng.uniform(-44.0, -30.0))  # pontine


def _head_to_world(p: tuple[float, float, float], scale: float, yaw: float,
                   shift: tuple[float, float, float]) -> tuple[float, float, float]:
    x, y, z = p[0] * scale, p[1] * scale, (p[2] - 6.0) * scale
    c, s = np.cos(yaw), np.sin(yaw)
    return (float(c * x - s * y + shift[0]), float(s * x + c * y + shift[1]), float(z + shift[2]))


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------
def _nifti_bytes(array: np.ndarray, affine: np.ndarray) -> bytes:
    """``.nii.gz`` bytes with a fixed gzip header (no timestamp), so files are reproducible."""
    import nibabel as nib

    img = nib.Nifti1Image(array, affine)
    img.header.set_data_dtype(array.dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return gzip.compress(img.to_bytes(), compresslevel=1, mtime=0)


def _remove_previous(out: Path, good: str, poor: str) -> None:
    """Delete the scans, masks and tables that an earlier phantom cohort wrote into ``out``."""
    meta_path = out / "phantom_config.json"
    try:
        n_prev = int(json.loads(meta_path.read_text(encoding="utf-8"))["n"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{meta_path}: not a phantom cohort description ({exc}); remove the "
                         f"folder by hand") from exc
    for pid in range(1, n_prev + 1):
        for path in (out / good / f"{pid}.nii.gz", out / poor / f"{pid}.nii.gz",
                     out / "masks" / f"{pid}_mask.nii.gz"):
            path.unlink(missing_ok=True)
    for name in ("clinical.csv", "phantom_truth.csv", "phantom_config.json"):
        (out / name).unlink(missing_ok=True)


def make_phantom_cohort(
    n: int = 120,
    seed: int = 0,
    out_dir: str | os.PathLike[str] | None = None,
    shape: tuple[int, int, int] | None = None,
    config: PhantomConfig | None = None,
    *,
    progress: bool = True,
    overwrite: bool = False,
    **overrides: Any,
) -> Any:
    """Generate a phantom cohort on disk and return it as a :class:`~ichprog.data.Cohort`.

    Parameters
    ----------
    n
        Number of patients.
    seed
        Seed of everything random; the same seed gives byte-identical files.
    out_dir
        Output folder (created). ``None``: a new temporary folder.
    shape
        ``(D, H, W)`` of each scan; overrides ``config.shape``. Default ``(32, 128, 128)``;
        the paper's size ``(40, 512, 512)`` works too (about a second per patient).
    config
        Model and rendering parameters; default :class:`PhantomConfig()`.
    progress
        Show a progress bar over patients.
    overwrite
        Allow writing into a folder that already holds a phantom cohort: the scans and masks
        of its patients (as listed by its ``phantom_config.json``) are deleted first, so that
        no stale patient is left behind; other files are left alone. Without it such a folder
        raises ``FileExistsError``.
    **overrides
        Any :class:`PhantomConfig` field, e.g. ``image_signal=2.0`` or ``noise_hu=0``.

    Returns
    -------
    ichprog.data.Cohort
        Table indexed by string ``PatientID``, the scans and the lesion masks, ``root=out_dir``.

    Examples
    --------
    >>> cohort = make_phantom_cohort(4, seed=1, shape=(12, 48, 48), progress=False)
    >>> len(cohort), sorted(cohort.table.columns)[:2]
    (4, ['Age', 'Alcohol'])
    """
    import tempfile

    from tqdm.auto import tqdm

    from ichprog.data.cohort import GOOD_FOLDER, POOR_FOLDER, Cohort

    config = PhantomConfig() if config is None else config
    if shape is not None:
        overrides["shape"] = tuple(shape)
    if overrides:
        unknown = set(overrides) - {f.name for f in dataclasses.fields(PhantomConfig)}
        if unknown:
            raise TypeError(f"make_phantom_cohort: unknown PhantomConfig field(s) "
                            f"{sorted(unknown)}")
        config = dataclasses.replace(config, **overrides)
    out = Path(tempfile.mkdtemp(prefix="ichprog_phantom_")) if out_dir is None else Path(out_dir)
    out = out.absolute()
    if (out / "phantom_config.json").exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a phantom cohort; pass overwrite=True or "
                              f"choose another out_dir")
    table, truth = phantom_table(n, seed, config)
    if (out / "phantom_config.json").exists():
        _remove_previous(out, GOOD_FOLDER, POOR_FOLDER)
    for sub in (GOOD_FOLDER, POOR_FOLDER, "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    image_paths: dict[str, Path] = {}
    mask_paths: dict[str, Path] = {}
    measured: dict[str, list[float]] = {c: [] for c in IMAGE_TRUTH_COLUMNS}
    records = truth.to_dict("records")
    for i, row in enumerate(tqdm(records, desc="phantom patients", disable=not progress)):
        pid = str(int(row["PatientID"]))
        scan = render_phantom(row, config, seed=np.random.SeedSequence([int(seed), 1, i]))
        if abs(scan.truth["volume_ml"] - row["volume_ml"]) > 1e-6 * max(1.0, row["volume_ml"]):
            raise RuntimeError(f"patient {pid}: rendered hematoma {scan.truth['volume_ml']} mL "
                               f"differs from the drawn {row['volume_ml']} mL")
        folder = POOR_FOLDER if int(row["label"]) == 1 else GOOD_FOLDER
        image_paths[pid] = out / folder / f"{pid}.nii.gz"
        mask_paths[pid] = out / "masks" / f"{pid}_mask.nii.gz"
        # renamed into place whole; no fsync per file (a killed run is simply run again)
        write_bytes(image_paths[pid], _nifti_bytes(scan.hu, scan.affine), fsync=False)
        write_bytes(mask_paths[pid], _nifti_bytes(scan.mask, scan.affine), fsync=False)
        for c in IMAGE_TRUTH_COLUMNS:
            measured[c].append(scan.truth[c])
    for c in IMAGE_TRUTH_COLUMNS:
        truth[c] = measured[c]
    write_csv(table, out / "clinical.csv")
    write_csv(truth, out / "phantom_truth.csv", float_format="%.10g")
    meta = {"n": int(n), "seed": int(seed), "config": config.to_dict()}
    # written last: a folder with it holds a whole cohort
    write_text(out / "phantom_config.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return Cohort(table, image_paths, mask_paths, root=out)
