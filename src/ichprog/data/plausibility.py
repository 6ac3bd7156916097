"""Plausibility checks of scans where they enter the library: is this a head CT in Hounsfield
units, large enough for the network, with its lesion mask on the same voxel grid?

A file can be a perfectly valid NIfTI and still not be what the models were trained on: an MRI
scaled to 0-255, a CT stored without its rescale intercept (HU + 1024), a blank volume or a tiny
crop are all read without complaint by nibabel, and a model predicts from them with full
confidence. :func:`check_scan` looks at the voxel values and the geometry and refuses such
volumes (or warns, by policy) before any pre-processing; :func:`check_mask_grid` refuses a mask
whose grid differs from its scan's instead of resampling it silently.

The checks and their thresholds
-------------------------------
The tissue classes are Hounsfield intervals: *air* below -200 HU, *brain* (CSF, grey and white
matter, blood) from -10 to 100 HU, *bone* above 300 HU; *foreground* is everything that is not
air.

``hu_range``
    The values span at least :attr:`ScanChecks.min_span` HU (a blank or constant volume, or one
    normalised to ``[0, 1]``, does not) and lie within ``[-32768, 32767]`` (the range of the
    int16 type that CT files store).
``tissue``
    At least :attr:`ScanChecks.min_brain` of the foreground lies in the brain interval, at most
    :attr:`ScanChecks.max_bone` of it above 300 HU (a CT stored as HU + 1024 has all its tissue
    there) and at most :attr:`ScanChecks.max_intermediate` of it between 100 and 300 HU, where
    head CT has only partial-volume voxels (an MRI scaled to 0-255 has much of its tissue there).
    Skull-stripped scans whose background is 0 pass: their background counts as brain-range.
``size``
    Every axis has at least :attr:`ScanChecks.min_voxels` voxels, no axis needs more than
    :attr:`ScanChecks.max_upsampling` times its voxels to reach the network input (axes compared
    in sorted order), and the in-plane field of view (the two largest physical extents) is at
    least :attr:`ScanChecks.min_fov_mm` millimetres.
``mask_grid``
    A lesion mask has its scan's shape and affine (to :attr:`ScanChecks.affine_atol` mm).

Policy
------
``action="error"`` (the default) raises :class:`ImplausibleScanError` (a ``ValueError``) naming
the file (or patient) and every failed check with the measured value and the limit;
``action="warn"`` issues an :class:`ImplausibleScanWarning` instead and goes on; each check is
switched off by its flag (``ScanChecks(tissue=False)``), all of them with ``ScanChecks.off()``.
The settings travel with :class:`~ichprog.data.PreprocessConfig` (its ``checks`` field), so the
same policy applies to training, the volume cache and prediction; on the command line they are
the ``[checks]`` section of the configuration.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["ScanChecks", "ImplausibleScanError", "ImplausibleScanWarning", "check_scan",
           "check_mask_grid", "scan_statistics"]

AIR_HU = -200.0
BRAIN_HU = (-10.0, 100.0)
BONE_HU = 300.0
_INT16 = (-32768.0, 32767.0)


class ImplausibleScanError(ValueError):
    """A scan (or mask) fails a plausibility check; the message names the file and the check."""


class ImplausibleScanWarning(UserWarning):
    """A scan (or mask) fails a plausibility check under ``action="warn"``."""


@dataclass(frozen=True)
class ScanChecks:
    """Which plausibility checks run, their limits and what a failure does.

    Parameters
    ----------
    hu_range, tissue, size, mask_grid
        Switch each check on or off (see the module notes for what each one measures).
    action
        ``"error"``: raise :class:`ImplausibleScanError`; ``"warn"``: warn and go on.
    min_span
        Least difference between the largest and the smallest voxel value, in HU.
    min_brain, max_bone, max_intermediate
        Fractions of the foreground (voxels at or above -200 HU): least in the brain interval
        (-10 to 100 HU), most above 300 HU, most between 100 and 300 HU.
    min_voxels
        Least number of voxels along every axis.
    max_upsampling
        Most a scan axis may be stretched to reach the network input's axis (axes in sorted
        order).
    min_fov_mm
        Least in-plane field of view in millimetres (the two largest physical extents).
    affine_atol
        Tolerance of the mask-to-scan affine comparison, in millimetres.

    Examples
    --------
    >>> from ichprog.data import ScanChecks
    >>> ScanChecks().action, ScanChecks(tissue=False).tissue, ScanChecks.off().enabled
    ('error', False, ())
    """

    hu_range: bool = True
    tissue: bool = True
    size: bool = True
    mask_grid: bool = True
    action: Literal["error", "warn"] = "error"
    min_span: float = 50.0
    min_brain: float = 0.2
    max_bone: float = 0.5
    max_intermediate: float = 0.25
    min_voxels: int = 4
    max_upsampling: float = 8.0
    min_fov_mm: float = 60.0
    affine_atol: float = 1e-3

    _FLAGS = ("hu_range", "tissue", "size", "mask_grid")

    def __post_init__(self) -> None:
        if self.action not in ("error", "warn"):
            raise ValueError(f"ScanChecks.action must be 'error' or 'warn', got {self.action!r}")
        for name in ("min_brain", "max_bone", "max_intermediate"):
            v = float(getattr(self, name))
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"ScanChecks.{name} must be a fraction in [0, 1], got {v!r}")
        for name in ("min_span", "min_fov_mm", "affine_atol"):
            if not float(getattr(self, name)) >= 0:
                raise ValueError(f"ScanChecks.{name} must be >= 0, got {getattr(self, name)!r}")
        if int(self.min_voxels) < 1:
            raise ValueError(f"ScanChecks.min_voxels must be >= 1, got {self.min_voxels!r}")
        if not float(self.max_upsampling) >= 1:
            raise ValueError(f"ScanChecks.max_upsampling must be >= 1, got {self.max_upsampling!r}")

    @classmethod
    def off(cls) -> ScanChecks:
        """Every check switched off."""
        return cls(hu_range=False, tissue=False, size=False, mask_grid=False)

    @property
    def enabled(self) -> tuple[str, ...]:
        """Names of the checks that run."""
        return tuple(n for n in self._FLAGS if getattr(self, n))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScanChecks:
        """Inverse of :meth:`to_dict`."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        if unknown:
            raise ValueError(f"ScanChecks: unknown setting(s) {unknown}; known: {sorted(fields)}")
        return cls(**dict(d))


def _report(problems: Sequence[str], source: str, checks: ScanChecks, what: str) -> None:
    if not problems:
        return
    off = "; switch a check off with ScanChecks(<check>=False) or, on the command line, " \
          "[checks] <check> = false"
    msg = f"{source}: implausible {what}: " + "; ".join(problems) + off
    if checks.action == "warn":
        warnings.warn(msg, ImplausibleScanWarning, stacklevel=3)
    else:
        raise ImplausibleScanError(msg)


def _voxel_sizes(affine: Any) -> np.ndarray:
    aff = np.asarray(affine, dtype=np.float64)
    return np.sqrt((aff[:3, :3] ** 2).sum(axis=0))


def scan_statistics(array: Any) -> dict[str, float]:
    """The values the tissue checks look at: minimum, maximum, and the fractions of air (of all
    voxels) and of brain-range, intermediate and bone voxels (of the foreground)."""
    a = np.asarray(array)
    a = a.astype(np.float32, copy=False) if a.dtype.kind != "f" else a
    n = a.size
    air = int(np.count_nonzero(a < AIR_HU))
    fg = max(n - air, 1)
    brain = int(np.count_nonzero((a >= BRAIN_HU[0]) & (a <= BRAIN_HU[1])))
    bone = int(np.count_nonzero(a > BONE_HU))
    inter = int(np.count_nonzero((a > BRAIN_HU[1]) & (a <= BONE_HU)))
    return {"min": float(a.min()), "max": float(a.max()), "air": air / n, "brain": brain / fg,
            "intermediate": inter / fg, "bone": bone / fg}


def check_scan(array: Any, affine: Any, source: str = "scan", *,
               input_shape: Sequence[int] | None = None,
               checks: ScanChecks | None = None) -> list[str]:
    """Check that a volume is a plausible head CT in Hounsfield units.

    Parameters
    ----------
    array
        3D voxels in the file's voxel order (as :func:`~ichprog.data.load_volume` returns them).
    affine
        The file's ``(4, 4)`` voxel-to-world matrix (millimetres).
    source
        The file or patient, for the messages.
    input_shape
        The network input ``(D, H, W)`` the scan will be resized to (for the size check).
    checks
        Settings; default :class:`ScanChecks` (every check, errors).

    Returns
    -------
    list of str
        The failed checks (empty when the scan is plausible; only non-empty with
        ``action="warn"``).

    Raises
    ------
    ImplausibleScanError
        A check failed (``action="error"``); the message names ``source``, each failed check,
        the measured value and the limit.
    """
    c = checks if checks is not None else ScanChecks()
    a = np.asarray(array)
    problems: list[str] = []
    if c.size:
        shape = tuple(int(n) for n in a.shape)
        if min(shape) < c.min_voxels:
            problems.append(f"size: shape {shape} has an axis with fewer than {c.min_voxels} "
                            "voxels")
        if input_shape is not None:
            need = sorted(int(n) for n in input_shape)
            have = sorted(shape)
            stretch = max(n / max(h, 1) for n, h in zip(need, have))
            if stretch > c.max_upsampling:
                problems.append(f"size: shape {shape} must be stretched {stretch:.1f} times to "
                                f"reach the network input {tuple(input_shape)} (at most "
                                f"{c.max_upsampling:g})")
        extent = sorted((_voxel_sizes(affine) * np.asarray(shape)).tolist())
        fov = min(extent[-2:])
        if fov < c.min_fov_mm:
            problems.append(f"size: in-plane field of view {fov:.0f} mm (voxels of "
                            f"{', '.join(f'{v:.2g}' for v in _voxel_sizes(affine))} mm), less "
                            f"than the {c.min_fov_mm:g} mm of a head")
    if c.hu_range or c.tissue:
        st = scan_statistics(a)
        if c.hu_range:
            span = st["max"] - st["min"]
            if span < c.min_span:
                problems.append(f"hu_range: values from {st['min']:g} to {st['max']:g} span "
                                f"{span:g}, less than {c.min_span:g} HU (a blank volume, or one "
                                "not in Hounsfield units)")
            if st["min"] < _INT16[0] or st["max"] > _INT16[1]:
                problems.append(f"hu_range: values from {st['min']:g} to {st['max']:g} leave "
                                f"the Hounsfield range [{_INT16[0]:g}, {_INT16[1]:g}]")
        if c.tissue and st["max"] - st["min"] >= c.min_span:
            if st["bone"] > c.max_bone:
                problems.append(f"tissue: {st['bone']:.0%} of the non-air voxels lie above "
                                f"{BONE_HU:g} HU (at most {c.max_bone:.0%} in a head CT); values "
                                "stored without the rescale intercept (HU + 1024)?")
            if st["intermediate"] > c.max_intermediate:
                problems.append(f"tissue: {st['intermediate']:.0%} of the non-air voxels lie "
                                f"between {BRAIN_HU[1]:g} and {BONE_HU:g} HU (at most "
                                f"{c.max_intermediate:.0%} in a head CT); an MRI or an image "
                                "rescaled to 0-255?")
            if st["brain"] < c.min_brain:
                problems.append(f"tissue: {st['brain']:.0%} of the non-air voxels lie in the "
                                f"brain range {BRAIN_HU[0]:g} to {BRAIN_HU[1]:g} HU (at least "
                                f"{c.min_brain:.0%} in a head CT)")
    _report(problems, source, c, "head CT")
    return problems


def check_mask_grid(mask_shape: Sequence[int], mask_affine: Any, scan_shape: Sequence[int],
                    scan_affine: Any, source: str = "mask", *,
                    checks: ScanChecks | None = None) -> list[str]:
    """Check that a lesion mask lies on its scan's voxel grid (same shape and affine).

    A mask on another grid would have to be resampled, which the library never does silently.

    Parameters
    ----------
    mask_shape, mask_affine, scan_shape, scan_affine
        The spatial shapes and ``(4, 4)`` affines of the two files.
    source
        The mask file or patient, for the messages.
    checks
        Settings (``mask_grid`` and ``affine_atol``); default :class:`ScanChecks`.

    Returns
    -------
    list of str
        The differences found (only non-empty with ``action="warn"``).

    Raises
    ------
    ImplausibleScanError
        The grids differ (``action="error"``).
    """
    c = checks if checks is not None else ScanChecks()
    if not c.mask_grid:
        return []
    problems: list[str] = []
    ms, ss = tuple(int(n) for n in mask_shape[:3]), tuple(int(n) for n in scan_shape[:3])
    if ms != ss:
        problems.append(f"mask_grid: mask shape {ms} differs from the scan's {ss}")
    ma, sa = np.asarray(mask_affine, dtype=np.float64), np.asarray(scan_affine, dtype=np.float64)
    if ma.shape != (4, 4) or sa.shape != (4, 4) or not np.allclose(ma, sa, rtol=0,
                                                                     atol=c.affine_atol):
        diff = float(np.abs(ma - sa).max()) if ma.shape == sa.shape else float("inf")
        problems.append(f"mask_grid: mask affine differs from the scan's by up to {diff:.3g} mm "
                        f"(tolerance {c.affine_atol:g})")
    _report(problems, source, c, "lesion mask")
    return problems
