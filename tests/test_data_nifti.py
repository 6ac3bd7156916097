"""NIfTI reading and writing: round trips, nibabel's own test files, and every bad input."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.testing import data_path

from ichprog.data.nifti import check_volume, load_volume, save_volume


def _affine() -> np.ndarray:
    a = np.diag([-0.45, 0.45, 5.0, 1.0])
    a[:3, 3] = [100.0, -120.0, -30.0]
    return a


def test_round_trip_integral_hu_is_int16(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    hu = rng.integers(-1024, 3000, size=(9, 7, 5)).astype(np.float64)  # integral floats
    save_volume(hu, _affine(), tmp_path / "ct.nii.gz")
    img = nib.load(tmp_path / "ct.nii.gz")
    assert img.get_data_dtype() == np.int16
    assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
    array, affine = load_volume(tmp_path / "ct.nii.gz")
    assert array.dtype == np.int16
    np.testing.assert_array_equal(array, hu)
    np.testing.assert_allclose(affine, _affine())


def test_round_trip_non_integral_is_float32(tmp_path: Path) -> None:
    values = np.linspace(0, 1, 60).reshape(3, 4, 5)
    save_volume(values, np.eye(4), tmp_path / "map.nii")
    array, _ = load_volume(tmp_path / "map.nii")
    assert array.dtype == np.float32
    np.testing.assert_allclose(array, values.astype(np.float32))
    # an integral volume that does not fit int16 falls back to float32 too
    save_volume(np.full((2, 2, 2), 40000), np.eye(4), tmp_path / "big.nii")
    assert nib.load(tmp_path / "big.nii").get_data_dtype() == np.float32


def test_save_leaves_no_temporary_file(tmp_path: Path) -> None:
    save_volume(np.zeros((2, 3, 4)), np.eye(4), tmp_path / "sub" / "x.nii.gz")
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["x.nii.gz"]


def test_save_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="3D"):
        save_volume(np.zeros((2, 3)), np.eye(4), tmp_path / "x.nii")
    with pytest.raises(ValueError, match="4x4"):
        save_volume(np.zeros((2, 3, 4)), np.eye(3), tmp_path / "x.nii")


def _nibabel_files() -> list[str]:
    names = sorted(os.listdir(data_path))
    return [n for n in names if n.endswith((".nii", ".nii.gz"))]


@pytest.mark.parametrize("name", _nibabel_files())
def test_nibabel_test_files_load_or_fail_clearly(name: str) -> None:
    """Files nobody on this project wrote: they load like nibabel loads them, or fail with a
    ValueError naming the file (4D series, 2D matrices, NaN voxels)."""
    path = Path(data_path) / name
    img = nib.load(path)
    shape = img.shape
    try:
        array, affine = load_volume(path)
    except ValueError as exc:
        assert str(path) in str(exc)
        reference = np.asanyarray(img.dataobj)
        is_3d = len(shape) >= 3 and all(n == 1 for n in shape[3:])
        has_nan = reference.dtype.kind == "f" and not np.isfinite(reference).all()
        assert (not is_3d) or has_nan, f"unexpected failure: {exc}"
        if len(shape) == 4:
            assert "4D" in str(exc) and f"{shape[3]} volumes" in str(exc)
        if len(shape) == 2:
            assert "2D" in str(exc)
        return
    reference = np.asanyarray(img.dataobj).reshape(shape[:3])
    assert array.ndim == 3 and array.dtype.isnative
    np.testing.assert_array_equal(array, reference)
    np.testing.assert_array_equal(affine, img.affine)


def test_nibabel_files_cover_both_outcomes() -> None:
    outcomes = set()
    for name in _nibabel_files():
        try:
            load_volume(Path(data_path) / name)
            outcomes.add("ok")
        except ValueError:
            outcomes.add("error")
    assert outcomes == {"ok", "error"}


def test_four_d_with_one_volume_is_squeezed(tmp_path: Path) -> None:
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4, 1)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "one.nii.gz")
    array, _ = load_volume(tmp_path / "one.nii.gz")
    np.testing.assert_array_equal(array, data[..., 0])


def test_four_d_series_two_d_and_empty_fail(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.zeros((2, 3, 4, 3), np.int16), np.eye(4)), tmp_path / "s.nii")
    with pytest.raises(ValueError, match=r"s\.nii.*4D.*3 volumes"):
        load_volume(tmp_path / "s.nii")
    with pytest.raises(ValueError, match="4D"):
        check_volume(tmp_path / "s.nii")
    nib.save(nib.Nifti1Image(np.zeros((5, 6), np.int16), np.eye(4)), tmp_path / "flat.nii")
    with pytest.raises(ValueError, match=r"flat\.nii.*2D"):
        load_volume(tmp_path / "flat.nii")


def test_nan_and_inf_voxels_fail_with_position(tmp_path: Path) -> None:
    data = np.zeros((3, 4, 5), np.float32)
    data[1, 2, 3] = np.nan
    data[2, 0, 0] = np.inf
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "nan.nii")
    with pytest.raises(ValueError, match=r"nan\.nii: 2 NaN or infinite voxel\(s\), the first at voxel \(1, 2, 3\)"):
        load_volume(tmp_path / "nan.nii")
    with pytest.raises(ValueError, match="NaN"):
        check_volume(tmp_path / "nan.nii", read_data=True)
    assert check_volume(tmp_path / "nan.nii") == (3, 4, 5)  # the header alone is fine


def test_truncated_files_fail(tmp_path: Path) -> None:
    data = np.arange(4000, dtype=np.int16).reshape(10, 20, 20)
    save_volume(data, np.eye(4), tmp_path / "full.nii")
    raw = (tmp_path / "full.nii").read_bytes()
    (tmp_path / "cut.nii").write_bytes(raw[: len(raw) - 1000])
    with pytest.raises(ValueError, match=r"cut\.nii: truncated"):
        check_volume(tmp_path / "cut.nii")
    with pytest.raises(ValueError, match=r"cut\.nii: truncated"):
        load_volume(tmp_path / "cut.nii")
    (tmp_path / "cut.nii.gz").write_bytes(gzip.compress(raw)[:-200])
    with pytest.raises(ValueError, match=r"cut\.nii\.gz"):
        load_volume(tmp_path / "cut.nii.gz")


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "junk.nii.gz").write_bytes(b"not a nifti file at all")
    with pytest.raises(ValueError, match=r"junk\.nii\.gz"):
        load_volume(tmp_path / "junk.nii.gz")
    with pytest.raises(FileNotFoundError, match=r"absent\.nii"):
        load_volume(tmp_path / "absent.nii")
    with pytest.raises(IsADirectoryError):
        load_volume(tmp_path)


def test_big_endian_file_comes_back_native(tmp_path: Path) -> None:
    data = np.arange(60, dtype=">i2").reshape(3, 4, 5)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_data_dtype(">i2")
    nib.save(img, tmp_path / "be.nii")
    array, _ = load_volume(tmp_path / "be.nii")
    assert array.dtype.isnative
    np.testing.assert_array_equal(array, np.arange(60).reshape(3, 4, 5))
