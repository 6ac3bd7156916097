"""DICOM input and output: pydicom's own test files (real scanner output written by others), a
phantom patient written as a series, and every refusal naming the folder and the slice."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402

from ichprog.data import load_volume, save_volume  # noqa: E402
from ichprog.data.dicom import (  # noqa: E402
    DicomError,
    GantryTiltError,
    MixedSeriesError,
    ModalityError,
    SliceSpacingError,
    TransferSyntaxError,
    list_dicom_series,
    load_dicom_series,
    save_dicom_series,
)

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
# nibabel's DICOM wrapper, used as an independent reference for single slices, warns on import
pytestmark = pytest.mark.filterwarnings("ignore:The DICOM readers are highly experimental")


def _testdata(relative: str) -> Path:
    """A file or folder of pydicom's bundled test data, or skip when the wheel lacks it (no
    download at test time)."""
    base = get_testdata_file("CT_small.dcm", download=False)
    if base is None:
        pytest.skip("pydicom's CT_small.dcm is not in the installed package")
    path = Path(base).parent / relative
    if not path.exists():
        pytest.skip(f"{relative} is not in the installed pydicom package")
    return path


def _hu(path: Path) -> np.ndarray:
    """Hounsfield units of one slice with pydicom alone, as (columns, rows)."""
    ds = pydicom.dcmread(path)
    return (ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope)
            + float(ds.RescaleIntercept)).T


def _position(path: Path) -> np.ndarray:
    return np.array([float(v) for v in pydicom.dcmread(path).ImagePositionPatient])


def _copy(files: list[Path], dest: Path) -> Path:
    dest.mkdir(parents=True)
    for f in files:
        shutil.copy(f, dest / f.name)
    return dest


# -- real series from pydicom's test data ------------------------------------------------------
def test_ct_small_single_file_and_folder(tmp_path: Path) -> None:
    f = _testdata("CT_small.dcm")
    array, affine = load_volume(f)
    ds = pydicom.dcmread(f)
    assert array.shape == (128, 128, 1) and array.dtype == np.int16
    np.testing.assert_array_equal(array[:, :, 0], _hu(f))
    # affine by hand from the tags: column index along the row direction, LPS -> RAS
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    dr, dc = (float(v) for v in ds.PixelSpacing)
    expected = np.eye(4)
    expected[:3, 0] = iop[:3] * dc
    expected[:3, 1] = iop[3:] * dr
    expected[:3, 2] = np.cross(iop[:3], iop[3:]) * float(ds.SliceThickness)
    expected[:3, 3] = _position(f)
    np.testing.assert_allclose(affine, LPS @ expected)
    # nibabel's DICOM wrapper (rows first, LPS) agrees on the in-plane axes and the origin
    from nibabel.nicom import dicomwrappers

    nib_aff = dicomwrappers.wrapper_from_file(str(f)).affine
    np.testing.assert_allclose((LPS @ affine)[:3, [1, 0, 3]], nib_aff[:3, [0, 1, 3]], atol=1e-6)
    folder_array, folder_affine = load_volume(_copy([f], tmp_path / "one"))
    np.testing.assert_array_equal(folder_array, array)
    np.testing.assert_allclose(folder_affine, affine)


def test_descending_series_is_sorted_along_the_normal() -> None:
    folder = _testdata("dicomdirtests/98892001/CT5N")
    files = sorted(folder.iterdir())
    array, affine = load_volume(folder)
    assert array.shape == (16, 16, 5)
    z = np.array([_position(f)[2] for f in files])
    order = np.argsort(z)  # the files' InstanceNumber runs against z
    assert not np.array_equal(order, np.arange(5))
    for k, i in enumerate(order):
        np.testing.assert_array_equal(array[:, :, k], _hu(files[i]))
    assert affine[2, 2] == pytest.approx(2.5)
    np.testing.assert_allclose(LPS @ affine @ [0, 0, 4, 1], np.r_[_position(files[order[-1]]), 1],
                               atol=1e-4)


def test_head_series_with_a_gap_is_refused_naming_folder_and_slice(tmp_path: Path) -> None:
    folder = _testdata("dicomdirtests/77654033/CT2")
    with pytest.raises(SliceSpacingError, match=r"CT2 \(slice 17136\).*202\.500 mm.*missing"):
        load_volume(folder)
    with pytest.raises(SliceSpacingError) as info:
        load_dicom_series(folder)
    assert info.value.folder == folder and info.value.slice == folder / "17136"
    # the three contiguous slices are a valid volume with the 1.25 mm step
    rest = _copy([folder / n for n in ("17136", "17166", "17196")], tmp_path / "ct2")
    array, affine = load_volume(rest)
    assert array.shape == (16, 16, 3)
    assert affine[2, 2] == pytest.approx(1.25, abs=1e-4)
    np.testing.assert_array_equal(array[:, :, 1], _hu(folder / "17166"))


def test_missing_middle_slice_is_refused(tmp_path: Path) -> None:
    files = sorted(_testdata("dicomdirtests/98892001/CT5N").iterdir())
    by_z = sorted(files, key=lambda f: _position(f)[2])
    gap = _copy([f for f in by_z if f != by_z[2]], tmp_path / "gap")
    with pytest.raises(SliceSpacingError, match=r"gap \(slice .*5\.000 mm.*1 missing"):
        load_volume(gap)


def test_sagittal_and_coronal_slices(tmp_path: Path) -> None:
    folder = _testdata("dicomdirtests/98892001/CT2N")
    with pytest.raises(MixedSeriesError, match=r"CT2N \(slice .*orientation"):
        load_volume(folder)
    from nibabel.nicom import dicomwrappers

    for f in sorted(folder.iterdir()):
        array, affine = load_volume(f)
        assert array.shape == (16, 16, 1)
        np.testing.assert_array_equal(array[:, :, 0], _hu(f))
        nib_aff = dicomwrappers.wrapper_from_file(str(f)).affine
        np.testing.assert_allclose((LPS @ affine)[:3, [1, 0, 3]], nib_aff[:3, [0, 1, 3]],
                                   atol=1e-6)


def test_two_series_in_one_folder(tmp_path: Path) -> None:
    a = sorted(_testdata("dicomdirtests/98892001/CT5N").iterdir())
    b = [_testdata("dicomdirtests/77654033/CT2") / n for n in ("17136", "17166", "17196")]
    both = _copy(a + b, tmp_path / "both")
    with pytest.raises(MixedSeriesError, match=r"2 series in one folder.*series="):
        load_volume(both)
    series = {s["n_files"]: s["uid"] for s in list_dicom_series(both)}
    array, _ = load_dicom_series(both, series=series[3])
    assert array.shape == (16, 16, 3)
    with pytest.raises(MixedSeriesError, match="no series 'nope'"):
        load_dicom_series(both, series="nope")


def test_non_ct_modality_is_refused(tmp_path: Path) -> None:
    mr = _copy([_testdata("MR_small.dcm")], tmp_path / "mr")
    with pytest.raises(ModalityError, match=r"mr \(slice MR_small\.dcm\): modality 'MR'"):
        load_volume(mr)


def _rewrite(files: list[Path], dest: Path, edit) -> Path:
    dest.mkdir(parents=True)
    for k, f in enumerate(sorted(files, key=lambda f: _position(f)[2])):
        ds = pydicom.dcmread(f)
        edit(k, ds)
        ds.save_as(dest / f.name)
    return dest


def test_gantry_tilt_is_refused(tmp_path: Path) -> None:
    files = sorted(_testdata("dicomdirtests/98892001/CT5N").iterdir())

    def tilt(k: int, ds) -> None:  # each slice 0.9 mm further along y: a tilted gantry
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + 0.9 * k, z]
        ds.GantryDetectorTilt = 20

    folder = _rewrite(files, tmp_path / "tilt", tilt)
    with pytest.raises(GantryTiltError, match=r"tilt \(slice .*0\.900 mm.*GantryDetectorTilt"):
        load_volume(folder)


def test_compressed_without_decoder_is_refused(tmp_path: Path) -> None:
    from pydicom.encaps import encapsulate
    from pydicom.uid import UID

    files = sorted(_testdata("dicomdirtests/98892001/CT5N").iterdir())
    mpeg2 = UID("1.2.840.10008.1.2.4.100")  # MPEG2 video: pydicom has no decoder for it

    def compress(k: int, ds) -> None:
        if k == 2:
            ds.file_meta.TransferSyntaxUID = mpeg2
            ds.PixelData = encapsulate([b"\x00" * 64])

    folder = _rewrite(files, tmp_path / "mpeg", compress)
    with pytest.raises(TransferSyntaxError, match=r"mpeg \(slice .*MPEG2"):
        load_volume(folder)


def test_other_refusals(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(IsADirectoryError, match="without DICOM"):
        load_volume(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        load_dicom_series(tmp_path / "absent")
    files = sorted(_testdata("dicomdirtests/98892001/CT5N").iterdir())
    folder = _copy(files, tmp_path / "notes")
    (folder / "README.txt").write_text("not a slice")
    with pytest.warns(UserWarning, match=r"README\.txt"):
        array, _ = load_volume(folder)
    assert array.shape == (16, 16, 5)
    assert issubclass(DicomError, ValueError)


# -- writing -----------------------------------------------------------------------------------
@pytest.mark.parametrize("left_handed", [False, True])
def test_save_and_load_round_trip(tmp_path: Path, left_handed: bool) -> None:
    rng = np.random.default_rng(3)
    vol = rng.integers(-1024, 3000, size=(9, 7, 5)).astype(np.int16)
    theta = 0.3  # an oblique in-plane rotation
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0],
                    [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([0.45, 0.5, -4.0 if left_handed else 4.0])
    aff[:3, 3] = [12.25, -30.5, 7.125]
    files = save_dicom_series(vol, aff, tmp_path / "s", patient_id="P1")
    assert len(files) == 5 and pydicom.dcmread(files[0]).Modality == "CT"
    array, affine = load_volume(tmp_path / "s")
    assert array.dtype == np.int16
    if left_handed:  # the same image, its slice axis reversed
        np.testing.assert_array_equal(array, vol[:, :, ::-1])
        flip = np.eye(4)
        flip[2, 2], flip[2, 3] = -1, 4
        np.testing.assert_allclose(affine, aff @ flip, atol=1e-6)
    else:
        np.testing.assert_array_equal(array, vol)
        np.testing.assert_allclose(affine, aff, atol=1e-6)
    # the same content gives the same files (UIDs derived from it)
    again = save_dicom_series(vol, aff, tmp_path / "t", patient_id="P1")
    assert [f.read_bytes() for f in files] == [f.read_bytes() for f in again]
    with pytest.raises(FileExistsError):
        save_dicom_series(vol, aff, tmp_path / "s")


def test_save_non_integral_values_with_a_slope(tmp_path: Path) -> None:
    vol = np.linspace(-1000.0, 2500.5, 60).reshape(3, 4, 5)
    save_dicom_series(vol, np.eye(4), tmp_path / "f")
    array, _ = load_volume(tmp_path / "f")
    assert array.dtype == np.float32
    slope = float(pydicom.dcmread(tmp_path / "f" / "slice_0000.dcm").RescaleSlope)
    assert np.abs(array - vol).max() <= slope / 2 + 1e-3


def test_save_refuses_a_sheared_affine(tmp_path: Path) -> None:
    aff = np.eye(4)
    aff[0, 2] = 0.5  # slices shifted in x: a gantry tilt
    with pytest.raises(ValueError, match="sheared"):
        save_dicom_series(np.zeros((2, 2, 2), np.int16), aff, tmp_path / "x")


# -- the rest of the library on DICOM folders --------------------------------------------------
@pytest.fixture(scope="module")
def phantom_dicom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two phantom patients as NIfTI (``nifti/``) and as DICOM folders (``dicom/<ID>/``)."""
    from ichprog.data import make_phantom_cohort

    root = tmp_path_factory.mktemp("phantom-dicom")
    cohort = make_phantom_cohort(n=4, seed=0, out_dir=root / "nifti", shape=(8, 40, 40),
                                 progress=False)
    for pid in cohort.ids:
        array, affine = load_volume(cohort.image_path(pid))
        save_dicom_series(array, affine, root / "dicom" / pid, patient_id=pid)
    return root


def test_phantom_written_as_dicom_reads_back_as_its_nifti(phantom_dicom: Path) -> None:
    from ichprog.data import load_cohort

    cohort = load_cohort(phantom_dicom / "nifti" / "clinical.csv",
                         image_dir=phantom_dicom / "nifti")
    for pid in cohort.ids:
        nifti, n_aff = load_volume(cohort.image_path(pid))
        dicom, d_aff = load_volume(phantom_dicom / "dicom" / pid)
        assert dicom.dtype == nifti.dtype
        np.testing.assert_array_equal(dicom, nifti)
        np.testing.assert_allclose(d_aff, n_aff, atol=1e-6)


def test_cohort_of_dicom_folders(phantom_dicom: Path) -> None:
    from ichprog.data import PreprocessConfig, VolumeCache, load_cohort

    table = phantom_dicom / "nifti" / "clinical.csv"
    nifti = load_cohort(table, image_dir=phantom_dicom / "nifti")
    dicom = load_cohort(table, image_dir=phantom_dicom / "dicom", check_images="full")
    assert dicom.ids == nifti.ids
    assert all(p.is_dir() for p in dicom.image_paths.values())
    cfg = PreprocessConfig(shape=(8, 32, 32))
    cache = VolumeCache(phantom_dicom / "cache", cfg)
    pid = dicom.ids[0]
    a = cache.get(dicom.image_path(pid))
    np.testing.assert_array_equal(a, cache.compute(nifti.image_path(pid)))
    assert cache.get(dicom.image_path(pid)) is not None and cache.hits == 1


def test_predict_and_convert_accept_dicom_folders(phantom_dicom: Path, tmp_path: Path) -> None:
    import torch

    from ichprog.cli import main
    from ichprog.data import PreprocessConfig
    from ichprog.experiment import FittedModel
    from ichprog.models import MultiTaskNet
    from ichprog.training import TrainConfig

    torch.manual_seed(0)
    net = MultiTaskNet("mt_ord_gcs_bin_age", trunk="densenet_tiny").eval()
    fitted = FittedModel(net, PreprocessConfig(shape=(32, 32, 32)), TrainConfig(device="cpu"))
    pid = sorted(os.listdir(phantom_dicom / "dicom"))[0]
    folder = phantom_dicom / "dicom" / pid
    nifti = next((phantom_dicom / "nifti").rglob(f"{pid}*.nii.gz"))
    both = fitted.predict([nifti, folder])
    np.testing.assert_allclose(both.iloc[0].to_numpy(float), both.iloc[1].to_numpy(float),
                               atol=1e-6)
    fitted.save(tmp_path / "model")
    assert main(["predict", "--model", str(tmp_path / "model"), str(folder),
                 "--out", str(tmp_path / "p.csv"), "--no-progress", "-q"]) == 0
    assert main(["convert", str(folder), str(tmp_path / "c.nii.gz"), "-q"]) == 0
    a, aff = load_volume(tmp_path / "c.nii.gz")
    b, baff = load_volume(nifti)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(aff, baff, atol=1e-5)
    assert main(["convert", str(folder), "--out", str(tmp_path / "many"), "-q"]) == 0
    assert (tmp_path / "many" / f"{pid}.nii.gz").is_file()
    # a folder with a missing slice: refused, the message names the folder
    broken = _copy(sorted(folder.iterdir()), tmp_path / "broken")
    (broken / "slice_0003.dcm").unlink()
    assert main(["predict", "--model", str(tmp_path / "model"), str(broken), "-q"]) == 1
    with pytest.raises(SliceSpacingError, match=r"broken \(slice slice_0004\.dcm\)"):
        fitted.predict([broken])


def test_save_volume_of_a_dicom_series_is_a_nifti(tmp_path: Path) -> None:
    array, affine = load_volume(_testdata("dicomdirtests/98892001/CT5N"))
    save_volume(array, affine, tmp_path / "ct5n.nii.gz")
    again, aff = load_volume(tmp_path / "ct5n.nii.gz")
    np.testing.assert_array_equal(again, array)
    np.testing.assert_allclose(aff, affine, atol=1e-5)


def test_saliency_command_on_dicom_folders(phantom_dicom: Path, tmp_path: Path) -> None:
    """pydicom's CT5N series and a phantom written as DICOM, explained by one saved model."""
    import torch

    from ichprog.cli import main
    from ichprog.data import PreprocessConfig
    from ichprog.experiment import FittedModel
    from ichprog.models import MultiTaskNet
    from ichprog.training import TrainConfig

    torch.manual_seed(0)
    net = MultiTaskNet("mt_ord_gcs_bin_age", trunk="densenet_tiny").eval()
    cfg = PreprocessConfig(shape=(32, 32, 32), skull_strip=False)
    FittedModel(net, cfg, TrainConfig(device="cpu")).save(tmp_path / "model")
    real = _testdata("dicomdirtests/98892001/CT5N")
    phantom = sorted((phantom_dicom / "dicom").iterdir())[0]
    out = tmp_path / "maps"
    # pydicom's CT5N is a 16 x 16 thumbnail of a CT (8 mm across): refused unless the size
    # check is switched off
    args = ["saliency", "--out", str(out), "--model", str(tmp_path / "model"), str(real),
            str(phantom), "--method", "guided_backprop", "--no-progress", "-q"]
    assert main(args) == 1
    assert main([*args, "--skip-check", "size"]) == 0
    assert (out / "saliency" / "guided_backprop.png").is_file()
    for scan, name in ((real, "CT5N"), (phantom, phantom.name)):
        (path,) = (out / "saliency" / "maps").rglob(f"{name}_guided_backprop_*.nii.gz")
        smap, s_aff = load_volume(path)
        array, affine = load_volume(scan)
        assert smap.shape == array.shape
        np.testing.assert_allclose(s_aff, affine, atol=1e-5)
        assert float(smap.max()) > 0
    assert main(["saliency", "--out", str(out), str(real), "-q"]) == 2  # scans need --model
