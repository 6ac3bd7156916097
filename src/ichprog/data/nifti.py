"""Reading and writing CT volumes (NIfTI, any other 3D format nibabel reads, and DICOM series).

:func:`load_volume` returns the voxel array in the file's own voxel order together with its affine
(voxel indices -> millimetres in scanner space); reorientation is the job of
:func:`ichprog.data.preprocess_volume`. Every failure names the file: missing, unreadable or
truncated files, 2D images, 4D series with more than one volume, and NaN or infinite voxels.
A folder of DICOM files (or one DICOM file) is read by :mod:`ichprog.data.dicom`, which returns
the same kind of pair.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ichprog._util import atomic_write

__all__ = ["load_volume", "save_volume", "check_volume", "volume_geometry", "is_dicom_input",
           "NIFTI_SUFFIXES"]

#: File name endings recognised as NIfTI volumes when scanning folders.
NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")

_INT16 = np.iinfo(np.int16)


def is_dicom_input(path: str | os.PathLike[str]) -> bool:
    """Whether :func:`load_volume` reads ``path`` as DICOM: a folder holding DICOM files, or a
    DICOM file."""
    from ichprog.data.dicom import is_dicom_file, is_dicom_folder

    p = Path(path)
    return is_dicom_folder(p) if p.is_dir() else is_dicom_file(p)


def _load_image(path: Path) -> Any:
    import nibabel as nib

    if not path.exists():
        raise FileNotFoundError(f"volume file not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"expected a volume file or a folder of DICOM files, got a "
                                f"folder without DICOM files: {path}")
    try:
        return nib.load(str(path))
    except Exception as exc:  # nibabel raises several unrelated types for bad headers
        raise ValueError(f"cannot read {path} as a NIfTI (or other nibabel) image: {exc}") from exc


#: Most output bytes one byte of a deflate stream can give (zlib's documented limit, 1032:1).
_DEFLATE_MAX_RATIO = 1032
#: Largest voxel payload read (bytes): far above any head CT (40 x 512 x 512 int16 is 21 MB).
MAX_VOLUME_BYTES = 8 * 1024**3


def _verify_gzip(path: Path) -> None:
    """Decompress a gzip file to its end, so that its CRC-32 and length are checked.

    nibabel reads only the bytes that the header announces and never reaches the gzip trailer,
    so damaged bytes in the middle of a compressed file decode to wrong voxels without an error.
    """
    import gzip
    import zlib

    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(1 << 22):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        reason = str(exc) or type(exc).__name__
        raise ValueError(f"{path}: damaged or truncated compressed file ({reason}); the gzip "
                         "check of its content failed (gzip -t reports the same)") from exc


def _check_header_size(img: Any, path: Path) -> None:
    """Refuse headers that announce more voxel bytes than the file can hold or memory can take."""
    try:
        shape = tuple(int(n) for n in img.header.get_data_shape())
        nbytes = int(np.prod(shape, dtype=object)) * img.header.get_data_dtype().itemsize
    except Exception:  # pragma: no cover - exotic headers
        return
    size = path.stat().st_size
    if path.name.lower().endswith(".gz") and nbytes > size * _DEFLATE_MAX_RATIO + 1024:
        raise ValueError(
            f"{path}: the header announces a volume of shape {shape} ({nbytes:,} voxel bytes), "
            f"more than a {size:,}-byte compressed file can hold (at most {_DEFLATE_MAX_RATIO}:1); "
            "the header is damaged")
    if nbytes > MAX_VOLUME_BYTES:
        raise ValueError(
            f"{path}: the header announces a volume of shape {shape} ({nbytes / 1024**3:.1f} GiB "
            f"of voxels), above the limit of {MAX_VOLUME_BYTES / 1024**3:.0f} GiB for one CT "
            "volume; the header is damaged or the file is not a CT volume")


def _spatial_shape(shape: tuple[int, ...], path: Path) -> tuple[int, int, int]:
    """The 3D shape after dropping trailing singleton dimensions, or a clear error."""
    if len(shape) < 3:
        raise ValueError(
            f"{path}: expected a 3D volume, got a {len(shape)}D image of shape {tuple(shape)}"
        )
    extra = shape[3:]
    if any(n != 1 for n in extra):
        raise ValueError(
            f"{path}: expected a 3D volume, got a {len(shape)}D image of shape {tuple(shape)} "
            f"({int(np.prod(extra))} volumes); split the series and pass one volume per file"
        )
    if any(n < 1 for n in shape[:3]):
        raise ValueError(f"{path}: empty volume of shape {tuple(shape)}")
    return (int(shape[0]), int(shape[1]), int(shape[2]))


def _check_size(img: Any, path: Path) -> None:
    """Detect truncated uncompressed files from the header alone."""
    name = path.name.lower()
    if not name.endswith(".nii"):
        return  # compressed or multi-file formats: truncation shows when the data is read
    header = img.header
    try:
        offset = int(header.get_data_offset())
        nbytes = int(np.prod(header.get_data_shape())) * header.get_data_dtype().itemsize
    except Exception:  # pragma: no cover - exotic headers
        return
    size = path.stat().st_size
    if size < offset + nbytes:
        raise ValueError(
            f"{path}: truncated file, {size} bytes on disk but the header announces "
            f"{offset + nbytes} ({offset} header + {nbytes} voxel bytes)"
        )


def check_volume(path: str | os.PathLike[str], read_data: bool = False) -> tuple[int, int, int]:
    """Check that a file holds one readable 3D volume, and return its shape.

    Parameters
    ----------
    path
        The file (``.nii``, ``.nii.gz`` or any format nibabel reads), or a DICOM folder.
    read_data
        Also decode every voxel (slow for compressed files), which detects truncated ``.nii.gz``
        files and NaN or infinite voxels. Without it only the header (and, for uncompressed files,
        the file size) is checked.

    Returns
    -------
    tuple of int
        The spatial shape in the file's voxel order.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Unreadable, truncated, not 3D, more than one volume, a header announcing more voxels
        than the file can hold, or (with ``read_data``) damaged compressed data or non-finite
        voxels. The message names the file.
    """
    path = Path(path)
    if is_dicom_input(path):
        from ichprog.data.dicom import check_dicom_series

        return check_dicom_series(path, read_data=read_data)
    if read_data:
        array, _ = load_volume(path)
        return (int(array.shape[0]), int(array.shape[1]), int(array.shape[2]))
    img = _load_image(path)
    shape = _spatial_shape(tuple(int(n) for n in img.shape), path)
    _check_size(img, path)
    _check_header_size(img, path)
    return shape


def volume_geometry(path: str | os.PathLike[str]) -> tuple[tuple[int, int, int], np.ndarray]:
    """The spatial shape and the ``(4, 4)`` affine of a volume file, from its header only (a
    DICOM series is read whole).

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`check_volume`; the message names the file.
    """
    path = Path(path)
    if is_dicom_input(path):  # the geometry of a series comes from all its slices
        array, affine = load_volume(path)
        return (int(array.shape[0]), int(array.shape[1]), int(array.shape[2])), affine
    img = _load_image(path)
    shape = _spatial_shape(tuple(int(n) for n in img.shape), path)
    return shape, np.asarray(img.affine, dtype=np.float64)


def load_volume(
    path: str | os.PathLike[str], dtype: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3D volume and its affine.

    Parameters
    ----------
    path
        A ``.nii`` or ``.nii.gz`` file (other formats that nibabel reads, such as Analyze or MGH,
        work too), or a folder of DICOM files holding one CT series (or a single DICOM file),
        read by :func:`ichprog.data.dicom.load_dicom_series`: the array is ``(columns, rows,
        slices)`` with slices sorted along the slice normal, in Hounsfield units, and the
        affine is converted from DICOM's LPS to RAS+, as ITK and dicom2nifti do. Install the
        ``dicom`` extra (pydicom) for it.
    dtype
        Convert the voxels to this dtype. By default the stored dtype is kept when the header
        applies no intensity scaling (``int16`` for most CT files), and nibabel's floating point
        type is returned when it does. DICOM series give ``int16`` when the Hounsfield units
        are integers that fit it, else ``float32``.

    Returns
    -------
    array : numpy.ndarray
        The voxels, 3D, in the file's voxel order (no reorientation), in native byte order. A 4D
        file holding a single volume (shape ``(X, Y, Z, 1)``) is squeezed to 3D.
    affine : numpy.ndarray
        ``(4, 4)`` float64 voxel-to-world matrix.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    IsADirectoryError
        A folder without DICOM files.
    ValueError
        The file cannot be read or is truncated, holds a 2D image or more than one volume,
        its header announces more voxels than the file can hold, a compressed file fails its
        gzip check (CRC-32 and length, verified over the whole stream), or it contains NaN or
        infinite voxels. The message names the file. DICOM folders raise a
        :class:`ichprog.data.dicom.DicomError` (a ``ValueError``) naming the folder and the
        slice: several series, missing or uneven slices, gantry tilt, a modality other than
        CT, or compressed pixel data without a decoder.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ichprog.data import save_volume, load_volume
    >>> path = os.path.join(tempfile.mkdtemp(), "ct.nii.gz")
    >>> save_volume(np.zeros((4, 5, 3), dtype=np.int16), np.eye(4), path)
    >>> array, affine = load_volume(path)
    >>> array.shape, array.dtype.name
    ((4, 5, 3), 'int16')
    """
    path = Path(path)
    if is_dicom_input(path):
        from ichprog.data.dicom import load_dicom_series

        return load_dicom_series(path, dtype=dtype)
    img = _load_image(path)
    shape = _spatial_shape(tuple(int(n) for n in img.shape), path)
    _check_size(img, path)
    _check_header_size(img, path)
    if path.name.lower().endswith(".gz"):
        _verify_gzip(path)
    try:
        array = np.asanyarray(img.dataobj)
    except MemoryError as exc:
        raise ValueError(f"{path}: not enough memory for a volume of shape {shape}") from exc
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        raise ValueError(f"{path}: unreadable or truncated voxel data ({reason})") from exc
    array = np.asarray(array).reshape(shape)
    if not array.dtype.isnative:  # big-endian files: native order for numpy/torch consumers
        array = array.astype(array.dtype.newbyteorder("="))
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            bad = np.argwhere(~finite)
            first = tuple(int(i) for i in bad[0])
            raise ValueError(
                f"{path}: {len(bad)} NaN or infinite voxel(s), the first at voxel {first} "
                f"(value {array[first]!r})"
            )
    elif array.dtype.kind not in "iub":
        raise ValueError(f"{path}: unsupported voxel type {array.dtype}")
    affine = np.asarray(img.affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise ValueError(f"{path}: invalid affine {affine!r}")
    return array, affine


def _output_dtype(array: np.ndarray) -> np.dtype:
    if array.dtype.kind == "b":
        return np.dtype(np.uint8)
    if array.dtype.kind in "iu":
        if array.size == 0 or (array.min() >= _INT16.min and array.max() <= _INT16.max):
            return np.dtype(np.int16)
        return np.dtype(np.float32)
    if array.dtype.kind == "f":
        if (
            array.size
            and np.isfinite(array).all()
            and np.array_equal(array, np.round(array))
            and array.min() >= _INT16.min
            and array.max() <= _INT16.max
        ):
            return np.dtype(np.int16)
        return np.dtype(np.float32)
    raise TypeError(f"cannot save voxels of type {array.dtype}")


def save_volume(
    array: Any,
    affine: Any,
    path: str | os.PathLike[str],
    dtype: Any = None,
) -> None:
    """Write a 3D volume to a NIfTI file (``.nii`` or ``.nii.gz``).

    Parameters
    ----------
    array
        3D voxels in the voxel order that ``affine`` describes.
    affine
        ``(4, 4)`` voxel-to-world matrix, stored as both qform and sform (scanner space, mm).
    path
        Destination; missing parent folders are created. The file is written to a temporary name
        first and then renamed, so an interrupted write never leaves a partial file behind.
    dtype
        Stored voxel type. By default integral values that fit (Hounsfield units, masks) are
        stored as ``int16``, booleans as ``uint8`` and everything else as ``float32``.

    Raises
    ------
    ValueError
        ``array`` is not 3D, or ``affine`` is not a finite ``(4, 4)`` matrix.
    """
    import nibabel as nib

    path = Path(path)
    arr = np.asarray(array)
    if arr.ndim != 3:
        raise ValueError(f"save_volume({path}): expected a 3D array, got shape {arr.shape}")
    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4) or not np.isfinite(aff).all():
        raise ValueError(f"save_volume({path}): affine must be a finite 4x4 matrix, got {aff!r}")
    out_dtype = np.dtype(dtype) if dtype is not None else _output_dtype(arr)
    img = nib.Nifti1Image(arr.astype(out_dtype, copy=False), aff)
    img.header.set_data_dtype(out_dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if path.name.lower().endswith(".gz") else ".nii"
    atomic_write(path, lambda tmp: nib.save(img, str(tmp)), suffix=suffix, fsync=False)
