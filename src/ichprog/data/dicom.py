"""Reading and writing CT series in DICOM.

:func:`load_dicom_series` turns a folder of DICOM files (one CT series) into the same
``(array, affine)`` pair that :func:`ichprog.data.load_volume` returns for a NIfTI file, and
:func:`ichprog.data.load_volume` calls it for every folder (and every single DICOM file), so every
part of ichprog that reads a scan accepts a DICOM folder. :func:`save_dicom_series` writes a
volume as a CT series.

Conventions
-----------
The voxel array is ``(columns, rows, slices)``: ``array[i, j, k]`` is the pixel in column ``i``
and row ``j`` of the ``k``-th slice, slices sorted by their position along the slice normal
(the cross product of the row and column directions of ``ImageOrientationPatient``), in
ascending order. This is the voxel order of ITK's and dicom2nifti's series readers, so a scan
converted to NIfTI by those tools and the same scan read here line up voxel for voxel. The
affine maps voxel indices to millimetres in RAS+ world space (the NIfTI convention that the
rest of ichprog uses): DICOM's LPS coordinates with the first two axes negated. Voxels are
Hounsfield units: ``RescaleSlope`` and ``RescaleIntercept`` are applied per slice.

The library reads the files with pydicom (the maintained pure-Python DICOM parser, whose pixel
decoders are chosen by transfer syntax) and checks the geometry itself; see the documentation
page "DICOM input" for why MONAI's ``PydicomReader`` is not used for this. Every failure is a
:class:`DicomError` (a ``ValueError``) that names the folder and, where one is to blame, the
slice's file.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ichprog._util import stable_hash

__all__ = [
    "DicomError",
    "MixedSeriesError",
    "SliceSpacingError",
    "GantryTiltError",
    "ModalityError",
    "TransferSyntaxError",
    "is_dicom_file",
    "is_dicom_folder",
    "list_dicom_series",
    "load_dicom_series",
    "check_dicom_series",
    "save_dicom_series",
    "CT_IMAGE_STORAGE",
]

#: SOP class UID of "CT Image Storage".
CT_IMAGE_STORAGE: str = "1.2.840.10008.5.1.4.1.1.2"
#: Files in a series folder that are never slices.
_NOT_SLICES = {"DICOMDIR"}
#: LPS <-> RAS: negate the first two world axes.
_FLIP_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: Relative tolerance of the slice spacing (steps may differ by this fraction of the median).
SPACING_TOLERANCE = 0.01
#: Largest in-plane shift (mm) between consecutive slices that still counts as no gantry tilt.
TILT_TOLERANCE_MM = 0.01
#: Largest difference between two slices' direction cosines that counts as the same orientation.
ORIENTATION_TOLERANCE = 1e-4


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------
class DicomError(ValueError):
    """A DICOM folder that cannot be read as one CT volume.

    Attributes
    ----------
    folder : pathlib.Path or None
        The folder (or file) that was read.
    slice : pathlib.Path or None
        The file of the slice at fault, when there is one.
    """

    def __init__(self, message: str, folder: str | os.PathLike[str] | None = None,
                 slice: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.slice = Path(slice) if slice is not None else None
        where = f"{self.folder}" if self.folder is not None else ""
        if self.slice is not None:
            where += f" (slice {self.slice.name})"
        super().__init__(f"{where}: {message}" if where else message)


class MixedSeriesError(DicomError):
    """The folder holds more than one series, or slices that do not share one grid (orientation,
    size or pixel spacing), or two slices at the same position."""


class SliceSpacingError(DicomError):
    """Missing slices or uneven slice spacing: a step between neighbouring slices differs from
    the others."""


class GantryTiltError(DicomError):
    """The slices are shifted in-plane from one to the next (a gantry tilt that the scanner did
    not resample): the volume is sheared, not a regular grid."""


class ModalityError(DicomError):
    """A slice is not a CT image (``Modality`` is not ``CT``)."""


class TransferSyntaxError(DicomError):
    """The pixel data is compressed with a transfer syntax for which no decoder is installed."""


# ----------------------------------------------------------------------------------------------
# finding files
# ----------------------------------------------------------------------------------------------
def _pydicom() -> Any:
    from ichprog._extras import require_extra

    require_extra("reading and writing DICOM", "dicom")
    import pydicom

    return pydicom


def is_dicom_file(path: str | os.PathLike[str]) -> bool:
    """Whether a file is a DICOM Part 10 file (``DICM`` after the 128-byte preamble)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _candidate_files(folder: Path) -> list[Path]:
    return [f for f in sorted(folder.iterdir())
            if f.is_file() and not f.name.startswith(".") and f.name.upper() not in _NOT_SLICES]


def is_dicom_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder with at least one DICOM file directly inside it."""
    p = Path(path)
    if not p.is_dir():
        return False
    return any(is_dicom_file(f) for f in _candidate_files(p))


def _series_files(path: Path) -> tuple[Path, list[Path]]:
    """The folder to name in messages and its DICOM files (a single file is its own series)."""
    if not path.exists():
        raise FileNotFoundError(f"DICOM folder not found: {path}")
    if path.is_file():
        if not is_dicom_file(path):
            raise DicomError("not a DICOM file (no 'DICM' marker after the preamble)", path)
        return path, [path]
    files = _candidate_files(path)
    dicom = [f for f in files if is_dicom_file(f)]
    others = [f for f in files if f not in set(dicom)]
    if not dicom:
        raise DicomError(
            "no DICOM file in this folder" + (f" ({len(others)} other file(s), e.g. "
                                              f"{others[0].name})" if others else " (empty)"),
            path)
    if others:
        warnings.warn(
            f"{path}: {len(others)} file(s) that are not DICOM are not part of the series: "
            + ", ".join(f.name for f in others[:10]) + (" ..." if len(others) > 10 else ""),
            UserWarning, stacklevel=4)
    return path, dicom


# ----------------------------------------------------------------------------------------------
# the series and its geometry
# ----------------------------------------------------------------------------------------------
@dataclass
class _Slice:
    file: Path
    ds: Any
    position: np.ndarray  # ImagePositionPatient (LPS, mm)
    row_dir: np.ndarray   # direction of increasing column index
    col_dir: np.ndarray   # direction of increasing row index
    spacing: tuple[float, float]  # (between rows, between columns) = PixelSpacing
    shape: tuple[int, int]  # (Rows, Columns)


def _floats(ds: Any, tag: str, n: int, folder: Path, file: Path) -> np.ndarray:
    value = ds.get(tag)
    try:
        out = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        out = np.zeros(0)
    if out.shape != (n,) or not np.isfinite(out).all():
        raise DicomError(f"missing or invalid {tag} ({value!r}); expected {n} numbers",
                         folder, file)
    return out


def _describe_series(uid: str, items: Sequence[tuple[Path, Any]]) -> str:
    ds = items[0][1]
    desc = str(ds.get("SeriesDescription", "") or "").strip()
    number = ds.get("SeriesNumber", "")
    return (f"{uid} (series number {number}, {str(ds.get('Modality', '?'))}, "
            f"{desc or 'no description'}, {len(items)} file(s), e.g. {items[0][0].name})")


def _is_localizer(ds: Any) -> bool:
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    return "LOCALIZER" in image_type


def list_dicom_series(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The series in a DICOM folder (headers only).

    Returns
    -------
    list of dict
        One dict per series with ``uid`` (SeriesInstanceUID), ``number``, ``description``,
        ``modality``, ``localizer`` (``ImageType`` says LOCALIZER), ``n_files`` and ``files``.
    """
    folder, files = _series_files(Path(path))
    groups = _group_by_series(folder, _read_headers(folder, files))
    out = []
    for uid, items in groups.items():
        ds = items[0][1]
        out.append({"uid": uid, "number": ds.get("SeriesNumber"),
                    "description": str(ds.get("SeriesDescription", "") or ""),
                    "modality": str(ds.get("Modality", "")),
                    "localizer": _is_localizer(ds), "n_files": len(items),
                    "files": [f for f, _ in items]})
    return out


def _read_headers(folder: Path, files: Sequence[Path]) -> list[tuple[Path, Any]]:
    pydicom = _pydicom()
    out = []
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception as exc:  # pydicom raises several types for damaged files
            raise DicomError(f"unreadable DICOM header ({exc})", folder, f) from exc
        out.append((f, ds))
    return out


def _group_by_series(folder: Path, headers: Sequence[tuple[Path, Any]]
                     ) -> dict[str, list[tuple[Path, Any]]]:
    groups: dict[str, list[tuple[Path, Any]]] = {}
    for f, ds in headers:
        uid = str(ds.get("SeriesInstanceUID", "") or "(no SeriesInstanceUID)")
        groups.setdefault(uid, []).append((f, ds))
    return groups


def _choose_series(folder: Path, headers: Sequence[tuple[Path, Any]], series: str | None
                   ) -> list[tuple[Path, Any]]:
    groups = _group_by_series(folder, headers)
    if series is not None:
        if series not in groups:
            raise MixedSeriesError(
                f"no series {series!r}; the folder holds: "
                + "; ".join(_describe_series(u, v) for u, v in groups.items()), folder)
        return groups[series]
    if len(groups) == 1:
        return next(iter(groups.values()))
    # A scout (localizer) next to the axial series is common: it is never the volume.
    volumes = {u: v for u, v in groups.items() if not _is_localizer(v[0][1])}
    if len(volumes) == 1:
        return next(iter(volumes.values()))
    raise MixedSeriesError(
        f"{len(groups)} series in one folder: "
        + "; ".join(_describe_series(u, v) for u, v in groups.items())
        + ". Put each series in its own folder, or choose one with series=<SeriesInstanceUID>",
        folder)


def _check_transfer_syntax(folder: Path, file: Path, ds: Any) -> None:
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if uid is None or not uid.is_compressed:
        return
    try:
        from pydicom.pixels import get_decoder
    except ImportError:  # pydicom 2: decoding is attempted and its failure reported
        return
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise TransferSyntaxError(
            f"pixel data compressed as {uid.name} ({uid}), which pydicom cannot decode", folder,
            file) from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "a decoder plug-in"
        raise TransferSyntaxError(
            f"pixel data compressed as {uid.name} ({uid}) and no decoder is installed; install "
            f"one of: {missing}", folder, file)


def _slices(folder: Path, items: Sequence[tuple[Path, Any]]) -> list[_Slice]:
    out = []
    for f, ds in items:
        modality = str(ds.get("Modality", "") or "")
        if modality != "CT":
            raise ModalityError(f"modality {modality or '(none)'!r}, expected 'CT' (a head CT in "
                                "Hounsfield units)", folder, f)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if frames != 1:
            raise DicomError(f"a multi-frame image ({frames} frames); only one slice per file "
                             "is supported", folder, f)
        if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
            raise DicomError("a colour image; CT slices have one sample per pixel", folder, f)
        _check_transfer_syntax(folder, f, ds)
        iop = _floats(ds, "ImageOrientationPatient", 6, folder, f)
        ipp = _floats(ds, "ImagePositionPatient", 3, folder, f)
        spacing = _floats(ds, "PixelSpacing", 2, folder, f)
        if (spacing <= 0).any():
            raise DicomError(f"PixelSpacing must be positive, got {spacing.tolist()}", folder, f)
        row, col = iop[:3], iop[3:]
        if (abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3
                or abs(float(row @ col)) > 1e-3):
            raise DicomError(f"ImageOrientationPatient {iop.tolist()} is not two orthogonal "
                             "unit vectors", folder, f)
        out.append(_Slice(f, ds, ipp, row / np.linalg.norm(row), col / np.linalg.norm(col),
                          (float(spacing[0]), float(spacing[1])),
                          (int(ds.get("Rows", 0)), int(ds.get("Columns", 0)))))
    return out


def _sort_and_check(folder: Path, slices: list[_Slice]) -> tuple[list[_Slice], np.ndarray, float]:
    """Slices sorted along the normal, the normal, and the mean step between slices (mm)."""
    ref = slices[0]
    for s in slices[1:]:
        if (np.abs(s.row_dir - ref.row_dir).max() > ORIENTATION_TOLERANCE
                or np.abs(s.col_dir - ref.col_dir).max() > ORIENTATION_TOLERANCE):
            raise MixedSeriesError(
                f"orientation {np.r_[s.row_dir, s.col_dir].round(4).tolist()} differs from "
                f"{np.r_[ref.row_dir, ref.col_dir].round(4).tolist()} of {ref.file.name}",
                folder, s.file)
        if s.shape != ref.shape:
            raise MixedSeriesError(f"{s.shape[0]} x {s.shape[1]} pixels, but {ref.file.name} "
                                   f"has {ref.shape[0]} x {ref.shape[1]}", folder, s.file)
        if not np.allclose(s.spacing, ref.spacing, rtol=1e-4, atol=1e-6):
            raise MixedSeriesError(f"PixelSpacing {list(s.spacing)}, but {ref.file.name} has "
                                   f"{list(ref.spacing)}", folder, s.file)
    normal = np.cross(ref.row_dir, ref.col_dir)
    slices = sorted(slices, key=lambda s: float(s.position @ normal))
    if len(slices) == 1:
        ds = ref.ds
        step = None
        for tag in ("SpacingBetweenSlices", "SliceThickness"):
            try:
                value = float(ds.get(tag))
            except (TypeError, ValueError):
                continue
            if np.isfinite(value) and value > 0:
                step = value
                break
        if step is None:
            raise SliceSpacingError("a single slice without SpacingBetweenSlices or "
                                    "SliceThickness: the slice spacing is unknown", folder,
                                    ref.file)
        return slices, normal, step
    where = np.array([float(s.position @ normal) for s in slices])
    steps = np.diff(where)
    for a, b, d in zip(slices[:-1], slices[1:], steps):
        if d <= 1e-6:
            raise MixedSeriesError(f"at the same position as {a.file.name} "
                                   f"({where[slices.index(a)]:.3f} mm along the normal); two "
                                   "acquisitions in one series?", folder, b.file)
    for a, b in zip(slices[:-1], slices[1:]):
        delta = b.position - a.position
        shift = delta - (delta @ normal) * normal
        if np.linalg.norm(shift) > TILT_TOLERANCE_MM:
            tilt = a.ds.get("GantryDetectorTilt")
            raise GantryTiltError(
                f"shifted in-plane by {np.linalg.norm(shift):.3f} mm from {a.file.name} "
                f"(GantryDetectorTilt {tilt}); resample the series to an orthogonal grid first "
                "(for example with dicom2nifti, which corrects gantry tilt)", folder, b.file)
    median = float(np.median(steps))
    bad = np.flatnonzero(np.abs(steps - median) > SPACING_TOLERANCE * median)
    if bad.size:
        k = int(bad[0])
        gap = float(steps[k])
        missing = round(gap / median) - 1
        hint = (f", about {missing} missing slice(s)" if missing >= 1
                else ", uneven slice spacing")
        raise SliceSpacingError(
            f"{gap:.3f} mm from the previous slice {slices[k].file.name}, while the median step "
            f"is {median:.3f} mm{hint} ({bad.size} uneven step(s) among {len(steps)})",
            folder, slices[k + 1].file)
    return slices, normal, float((where[-1] - where[0]) / (len(slices) - 1))


def _series(path: str | os.PathLike[str], series: str | None
            ) -> tuple[Path, list[_Slice], np.ndarray]:
    """Read the headers, choose the series and check it; returns the folder, the sorted slices
    and the RAS affine."""
    folder, files = _series_files(Path(path))
    items = _choose_series(folder, _read_headers(folder, files), series)
    slices, normal, step = _sort_and_check(folder, _slices(folder, items))
    first = slices[0]
    lps = np.eye(4)
    lps[:3, 0] = first.row_dir * first.spacing[1]  # along a row: the column index i
    lps[:3, 1] = first.col_dir * first.spacing[0]  # down a column: the row index j
    lps[:3, 2] = normal * step
    lps[:3, 3] = first.position
    return folder, slices, _FLIP_LPS @ lps


def _pixels(folder: Path, s: _Slice) -> np.ndarray:
    pydicom = _pydicom()
    try:
        ds = pydicom.dcmread(s.file)
        raw = ds.pixel_array
    except Exception as exc:
        uid = getattr(getattr(s.ds, "file_meta", None), "TransferSyntaxUID", None)
        if uid is not None and uid.is_compressed:
            raise TransferSyntaxError(f"cannot decode pixel data compressed as {uid.name} "
                                      f"({exc})", folder, s.file) from exc
        raise DicomError(f"unreadable pixel data ({exc})", folder, s.file) from exc
    if raw.shape != s.shape:
        raise DicomError(f"pixel data of shape {raw.shape}, but Rows x Columns is {s.shape}",
                         folder, s.file)
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    if slope == 1.0 and intercept == 0.0:
        return np.asarray(raw)
    return raw.astype(np.float64) * slope + intercept


def load_dicom_series(path: str | os.PathLike[str], series: str | None = None,
                      dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a CT series from a folder of DICOM files.

    Parameters
    ----------
    path
        A folder whose files (not sub-folders) are the slices, or one DICOM file (a one-slice
        volume). Hidden files and ``DICOMDIR`` are skipped; other files that are not DICOM are
        skipped with a warning.
    series
        ``SeriesInstanceUID`` of the series to read when the folder holds several. By default
        the folder must hold one series (a localizer next to it is left aside).
    dtype
        Convert the voxels to this dtype. By default ``int16`` when the Hounsfield units are
        integers that fit it (the usual case), else ``float32``.

    Returns
    -------
    array : numpy.ndarray
        ``(columns, rows, slices)`` Hounsfield units, slices in ascending order along the
        slice normal.
    affine : numpy.ndarray
        ``(4, 4)`` float64 voxel-to-world matrix in RAS+ millimetres.

    Raises
    ------
    FileNotFoundError
        The path does not exist.
    MixedSeriesError, SliceSpacingError, GantryTiltError, ModalityError, TransferSyntaxError
        See their descriptions; all are :class:`DicomError`, a ``ValueError`` that names the
        folder and the slice.
    DicomError
        Other unreadable input: missing geometry tags, damaged files, multi-frame or colour
        images.
    """
    folder, slices, affine = _series(path, series)
    planes = [_pixels(folder, s) for s in slices]
    stack = np.stack([p.T for p in planes], axis=-1)  # (columns, rows, slices)
    if dtype is not None:
        stack = stack.astype(dtype, copy=False)
    elif stack.dtype.kind == "f":
        info = np.iinfo(np.int16)
        if (np.array_equal(stack, np.round(stack)) and stack.min() >= info.min
                and stack.max() <= info.max):
            stack = stack.astype(np.int16)
        else:
            stack = stack.astype(np.float32)
    elif stack.dtype != np.int16:
        info = np.iinfo(np.int16)
        if stack.min() >= info.min and stack.max() <= info.max:
            stack = stack.astype(np.int16)
    if not stack.dtype.isnative:
        stack = stack.astype(stack.dtype.newbyteorder("="))
    return np.ascontiguousarray(stack), affine


def check_dicom_series(path: str | os.PathLike[str], read_data: bool = False,
                       series: str | None = None) -> tuple[int, int, int]:
    """Check a DICOM folder from its headers (``read_data``: also decode every slice) and
    return the shape :func:`load_dicom_series` would return."""
    if read_data:
        array, _ = load_dicom_series(path, series=series)
        return (int(array.shape[0]), int(array.shape[1]), int(array.shape[2]))
    _, slices, _ = _series(path, series)
    rows, cols = slices[0].shape
    return (cols, rows, len(slices))


# ----------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------
def _ds_number(value: float) -> Any:
    from pydicom.valuerep import DSfloat

    return DSfloat(float(value), auto_format=True)


def _quantise(arr: np.ndarray) -> tuple[np.ndarray, float, float]:
    """int16 pixels, slope and intercept that store ``arr`` (exactly when it is integral and
    fits int16)."""
    info = np.iinfo(np.int16)
    if arr.size and not np.isfinite(arr).all():
        raise ValueError("save_dicom_series: the volume has NaN or infinite values")
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if arr.dtype.kind in "iub" or np.array_equal(arr, np.round(arr)):
        if lo >= info.min and hi <= info.max:
            return arr.astype(np.int16), 1.0, 0.0
    slope = (hi - lo) / float(info.max - info.min) if hi > lo else 1.0
    pixels = np.round((arr.astype(np.float64) - lo) / slope + info.min)
    return np.clip(pixels, info.min, info.max).astype(np.int16), slope, lo - info.min * slope


def save_dicom_series(volume: Any, affine: Any, folder: str | os.PathLike[str], *,
                      patient_id: str = "anonymous", series_description: str = "ichprog",
                      overwrite: bool = False) -> list[Path]:
    """Write a 3D volume as a CT series, one file per slice.

    Parameters
    ----------
    volume
        ``(X, Y, Z)`` voxels in the order ``affine`` describes (as :func:`load_volume`
        returns them), in Hounsfield units. Integral values that fit ``int16`` are stored
        exactly (``RescaleSlope`` 1, ``RescaleIntercept`` 0); other values are stored as
        ``int16`` with a slope and intercept, rounded to half the slope.
    affine
        ``(4, 4)`` voxel-to-world matrix in RAS+ millimetres. The first two axes must be
        orthogonal and the third parallel to their cross product (a grid without shear); a
        third axis pointing against the cross product is written with the slices in reverse,
        so :func:`load_dicom_series` returns the same image with the slice axis reversed.
    folder
        Destination folder, created; it must not exist or be empty unless ``overwrite``. Each
        file (``slice_0000.dcm`` ...) is written to a temporary name that is then renamed.
    patient_id, series_description
        ``PatientID`` (also ``PatientName``) and ``SeriesDescription``.
    overwrite
        Replace an existing folder's content.

    Returns
    -------
    list of pathlib.Path
        The files, in slice order.

    Notes
    -----
    Positions, orientations and spacings are DICOM decimal strings of at most 16 characters,
    so the affine read back differs from ``affine`` by rounding (below 1e-6 mm for head CT
    geometry). UIDs are derived from the content, so writing the same volume twice gives the
    same files.
    """
    pydicom = _pydicom()
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

    from ichprog._util import atomic_write

    dest = Path(folder)
    arr = np.asarray(volume)
    if arr.ndim != 3 or min(arr.shape) < 1:
        raise ValueError(f"save_dicom_series({dest}): expected a 3D volume, got shape {arr.shape}")
    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4) or not np.isfinite(aff).all():
        raise ValueError(f"save_dicom_series({dest}): affine must be a finite 4x4 matrix")
    lps = _FLIP_LPS @ aff
    c0, c1, c2 = lps[:3, 0], lps[:3, 1], lps[:3, 2]
    n0, n1, n2 = (float(np.linalg.norm(c)) for c in (c0, c1, c2))
    if min(n0, n1, n2) <= 0:
        raise ValueError(f"save_dicom_series({dest}): the affine has a zero-length axis")
    row, col = c0 / n0, c1 / n1
    normal = np.cross(row, col)
    if abs(float(row @ col)) > 1e-6 or np.linalg.norm(np.cross(c2 / n2, normal)) > 1e-6:
        raise ValueError(f"save_dicom_series({dest}): the affine is sheared (its axes are not "
                         "orthogonal); a DICOM series cannot hold it without a gantry tilt")
    origin = lps[:3, 3].copy()
    if float(c2 @ normal) < 0:  # slices are read back in ascending order along the normal
        arr = arr[:, :, ::-1]
        origin = origin + (arr.shape[2] - 1) * c2
        c2 = -c2
    pixels, slope, intercept = _quantise(arr)
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        raise FileExistsError(f"save_dicom_series: {dest} exists and is not empty; pass "
                              "overwrite=True to replace it")
    seed = stable_hash({"data": hashlib.sha256(pixels.tobytes()).hexdigest(),
                        "affine": np.round(aff, 9).tolist(), "patient": patient_id,
                        "series": series_description}, length=32)
    study_uid = generate_uid(entropy_srcs=[seed, "study"])
    series_uid = generate_uid(entropy_srcs=[seed, "series"])
    frame_uid = generate_uid(entropy_srcs=[seed, "frame"])
    iop = [_ds_number(v) for v in np.r_[row, col]]
    spacing = [_ds_number(n1), _ds_number(n0)]  # (between rows, between columns)
    dest.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for old in dest.iterdir():
            if old.is_file():
                old.unlink()
    written = []
    for k in range(pixels.shape[2]):
        sop_uid = generate_uid(entropy_srcs=[seed, "slice", str(k)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(CT_IMAGE_STORAGE)
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = UID(CT_IMAGE_STORAGE)
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.Modality = "CT"
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.PatientID = patient_id
        ds.PatientName = patient_id
        ds.SeriesDescription = series_description
        ds.SeriesNumber = 1
        ds.InstanceNumber = k + 1
        position = origin + k * c2
        ds.ImagePositionPatient = [_ds_number(v) for v in position]
        ds.ImageOrientationPatient = iop
        ds.PixelSpacing = spacing
        ds.SliceThickness = _ds_number(n2)
        ds.SpacingBetweenSlices = _ds_number(n2)
        ds.SliceLocation = _ds_number(float(position @ normal))
        ds.Rows, ds.Columns = int(pixels.shape[1]), int(pixels.shape[0])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope = _ds_number(slope)
        ds.RescaleIntercept = _ds_number(intercept)
        ds.RescaleType = "HU"
        ds.PixelData = np.ascontiguousarray(pixels[:, :, k].T).astype("<i2").tobytes()
        path = dest / f"slice_{k:04d}.dcm"

        def write(tmp: Path, ds: Any = ds) -> None:
            try:
                pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
            except TypeError:  # pydicom 2
                ds.is_little_endian, ds.is_implicit_VR = True, False
                pydicom.dcmwrite(tmp, ds, write_like_original=False)

        atomic_write(path, write, suffix=".dcm", fsync=False)
        written.append(path)
    return written
