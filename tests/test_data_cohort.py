"""Cohort and load_cohort: joining by PatientID, the public and flat layouts, and bad input."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from conftest import HEAD_AFFINE, clinical_table, head_ct
from ichprog.data import Cohort, load_cohort, load_table, save_volume
from ichprog.data.cohort import IncompletePatientsWarning
from ichprog.tasks import AGE_BINARY, GCS_BINARY, GCS_ORDINAL, MT_ORD_GCS_BIN_AGE, PROGNOSIS

LABEL = "Label (poor_prognosis)"


def _label_folder(root: Path, label: int) -> Path:
    return root / ("POOR_PROGNOSIS" if label else "GOOD_PROGNOSIS")


def test_public_layout_joins_by_patient_id(cohort_dir: Path) -> None:
    table = pd.read_csv(cohort_dir / "clinical.csv", dtype={"PatientID": str})
    # shuffle the table's rows: the join must follow the IDs, not the row order
    shuffled = table.sample(frac=1.0, random_state=3)
    shuffled.to_csv(cohort_dir / "clinical.csv", index=False)
    cohort = load_cohort(cohort_dir / "clinical.csv")
    assert cohort.ids == list(shuffled["PatientID"])  # table order, IDs kept as strings
    assert len(cohort) == 12 and cohort.has_images
    for pid, lab in zip(shuffled["PatientID"], shuffled[LABEL]):
        path = cohort.image_path(pid)
        assert path.name == f"{pid}_brain.nii.gz"
        assert path.parent.name == ("POOR_PROGNOSIS" if lab else "GOOD_PROGNOSIS")
    np.testing.assert_array_equal(cohort.labels, shuffled[LABEL].to_numpy())
    assert cohort.labels.dtype == np.int64
    assert "\u00ba" in "".join(cohort.table.columns)  # the non-ASCII column survived


def test_targets_match_the_published_encodings(cohort_dir: Path) -> None:
    cohort = load_cohort(cohort_dir / "clinical.csv")
    gcs = cohort.table["GCS"].to_numpy()
    age = cohort.table["Age"].to_numpy()
    # hand-written references of the paper's encoders
    ordinal = np.where(gcs >= 13, 0, np.where(gcs >= 9, 1, 2))
    out = cohort.targets(MT_ORD_GCS_BIN_AGE)
    assert list(out) == ["prognosis", "gcs", "age"]
    np.testing.assert_array_equal(out["prognosis"], cohort.labels)
    np.testing.assert_array_equal(out["gcs"], ordinal)
    np.testing.assert_array_equal(out["age"], (age >= 80).astype(int))
    binary = cohort.targets([GCS_BINARY], ids=cohort.ids[::-1])["gcs"]
    np.testing.assert_array_equal(binary, (gcs <= 8).astype(int)[::-1])
    assert set(cohort.targets(GCS_ORDINAL)) == {"gcs"}


def test_xlsx_and_csv_give_the_same_cohort(cohort_dir: Path) -> None:
    table = pd.read_csv(cohort_dir / "clinical.csv", dtype={"PatientID": str})
    table.to_excel(cohort_dir / "clinical.xlsx", index=False)
    a = load_cohort(cohort_dir / "clinical.csv")
    b = load_cohort(cohort_dir / "clinical.xlsx")
    assert a.ids == b.ids
    pd.testing.assert_frame_equal(a.table, b.table, check_dtype=False)
    assert "T\u00ba" in b.table.columns


def test_cp1252_csv_and_degree_sign_alias(tmp_path: Path) -> None:
    table = clinical_table(4).rename(columns={"T\u00ba": "T\u00b0"})
    table.to_csv(tmp_path / "t.csv", index=False, encoding="cp1252")
    out = load_table(tmp_path / "t.csv")
    assert "T\u00ba" in out.columns and "T\u00b0" not in out.columns
    assert list(out.index) == ["000", "001", "002", "003"]


def test_semicolon_csv_with_decimal_commas(tmp_path: Path) -> None:
    table = clinical_table(3)
    table.to_csv(tmp_path / "eu.csv", index=False, sep=";", decimal=",", encoding="cp1252")
    out = load_table(tmp_path / "eu.csv")
    np.testing.assert_allclose(out["T\u00ba"].to_numpy(), table["T\u00ba"].to_numpy())
    assert list(out.index) == ["000", "001", "002"]


def test_flat_layout_and_suffix_choice(tmp_path: Path) -> None:
    table = clinical_table(4)
    table.to_csv(tmp_path / "clinical.csv", index=False)
    for i, pid in enumerate(table["PatientID"]):
        save_volume(head_ct((16, 16, 4), seed=i), np.eye(4), tmp_path / "scans" / f"{pid}.nii.gz")
    cohort = load_cohort(tmp_path / "clinical.csv", image_dir=tmp_path / "scans")
    assert [cohort.image_path(p).name for p in cohort.ids] == [f"{p}.nii.gz" for p in cohort.ids]
    # a stripped and an unstripped scan of the same patient: ambiguous unless a suffix is chosen
    save_volume(head_ct((16, 16, 4)), np.eye(4), tmp_path / "scans" / "000_brain.nii.gz")
    with pytest.raises(ValueError, match=r"patient '000': several scans"):
        load_cohort(tmp_path / "clinical.csv", image_dir=tmp_path / "scans")
    plain = load_cohort(tmp_path / "clinical.csv", image_dir=tmp_path / "scans", suffix="")
    assert plain.image_path("000").name == "000.nii.gz"
    with pytest.raises(ValueError, match="without an image"):
        load_cohort(tmp_path / "clinical.csv", image_dir=tmp_path / "scans", suffix="_brain")


def test_masks_are_found_and_optional(cohort_dir: Path) -> None:
    for pid in ("000", "003"):
        save_volume(np.zeros((32, 32, 8), np.uint8), HEAD_AFFINE,
                    cohort_dir / "masks" / f"{pid}_mask.nii.gz")
    cohort = load_cohort(cohort_dir / "clinical.csv", mask_dir=cohort_dir / "masks")
    assert list(cohort.mask_paths) == ["000", "003"]
    assert cohort.mask_path("001") is None
    # masks next to the scans are not mistaken for scans of a patient "000_mask"
    shutil.copy(cohort_dir / "masks" / "000_mask.nii.gz", cohort_dir / "GOOD_PROGNOSIS")
    assert len(load_cohort(cohort_dir / "clinical.csv")) == 12


def test_subset_summary_and_repr(cohort_dir: Path) -> None:
    cohort = load_cohort(cohort_dir / "clinical.csv")
    sub = cohort.subset(["005", "002"])
    assert sub.ids == ["005", "002"] and len(sub) == 2
    np.testing.assert_array_equal(sub.labels, cohort.table.loc[["005", "002"], LABEL])
    with pytest.raises(KeyError, match="999"):
        cohort.subset(["999"])
    with pytest.raises(ValueError, match="more than once"):
        cohort.subset(["001", "001"])
    s = cohort.summary()
    gcs = cohort.table["GCS"]
    assert s["patients"] == 12
    assert s["poor prognosis (1)"] == int(cohort.table[LABEL].sum())
    assert s["GCS severe 3-8"] == int((gcs <= 8).sum())
    assert s["GCS mild 13-15"] + s["GCS moderate 9-12"] + s["GCS severe 3-8"] == 12
    assert np.isclose(s["age mean"], cohort.table["Age"].mean())
    assert repr(cohort).startswith("Cohort(n=12, good=6, poor=6, images=12")


def test_direct_construction_and_table_only() -> None:
    table = clinical_table(4).set_index("PatientID")
    cohort = Cohort(table, image_paths=None)
    assert cohort.ids == ["000", "001", "002", "003"] and not cohort.has_images
    with pytest.raises(KeyError, match="no image"):
        cohort.image_path("000")
    t = clinical_table(4)
    t["PatientID"] = [7, 8, 9, 10]  # integer IDs become strings
    assert Cohort(t, None).ids == ["7", "8", "9", "10"]


def test_direct_construction_checks_images(tmp_path: Path) -> None:
    table = clinical_table(2)
    with pytest.raises(ValueError, match=r"without an image: \['001'\]"):
        Cohort(table, {"000": tmp_path / "a.nii.gz"}, check_files=False)
    with pytest.raises(ValueError, match="not in the table: '777'"):
        Cohort(table, {"000": "a", "001": "b", "777": "c"}, check_files=False)
    with pytest.raises(FileNotFoundError, match=r"patient '000': image file not found"):
        Cohort(table, {"000": tmp_path / "a.nii.gz", "001": tmp_path / "b.nii.gz"})


@pytest.mark.parametrize(
    ("column", "value", "pattern"),
    [
        ("GCS", 16, r"column 'GCS', patient '003': value 16 is out of range \(expected an integer from 3 to 15"),
        ("GCS", 2, r"column 'GCS', patient '003'"),
        ("GCS", 7.5, r"column 'GCS', patient '003'"),
        ("Age", -1, r"column 'Age', patient '003': value -1"),
        ("Age", 130, r"column 'Age', patient '003'"),
        (LABEL, 2, r"column 'Label \(poor_prognosis\)', patient '003'"),
        ("GCS", "severe", r"column 'GCS', patient '003': expected a number, got 'severe'"),
    ],
)
def test_out_of_range_values_name_patient_and_column(column: str, value: object,
                                                     pattern: str) -> None:
    table = clinical_table(6)
    table[column] = table[column].astype(object)
    table.loc[3, column] = value
    with pytest.raises(ValueError, match=pattern):
        Cohort(table, None)


def test_missing_and_duplicated_ids_and_columns(cohort_dir: Path) -> None:
    table = pd.read_csv(cohort_dir / "clinical.csv", dtype={"PatientID": str})
    dup = table.copy()
    dup.loc[4, "PatientID"] = "002"
    dup.to_csv(cohort_dir / "dup.csv", index=False)
    with pytest.raises(ValueError, match=r"dup\.csv: duplicated PatientID\(s\) \['002'\]"):
        load_cohort(cohort_dir / "dup.csv", image_dir=cohort_dir)
    gap = table.copy()
    gap.loc[4, "PatientID"] = None
    gap.to_csv(cohort_dir / "gap.csv", index=False)
    with pytest.raises(ValueError, match=r"gap\.csv: 1 row\(s\) without a PatientID .*\[4\]"):
        load_cohort(cohort_dir / "gap.csv", image_dir=cohort_dir)
    table.drop(columns=["GCS"]).to_csv(cohort_dir / "nogcs.csv", index=False)
    with pytest.raises(ValueError, match=r"nogcs\.csv: missing column\(s\) \['GCS'\]"):
        load_cohort(cohort_dir / "nogcs.csv", image_dir=cohort_dir)
    table.drop(columns=["PatientID"]).to_csv(cohort_dir / "noid.csv", index=False)
    with pytest.raises(ValueError, match="no 'PatientID' column"):
        load_cohort(cohort_dir / "noid.csv", image_dir=cohort_dir)


def test_patient_without_image_and_image_without_patient(cohort_dir: Path) -> None:
    (_label_folder(cohort_dir, 1) / "005_brain.nii.gz").unlink()
    with pytest.raises(ValueError, match=r"1 patient\(s\) without an image .*\['005'\]"):
        load_cohort(cohort_dir / "clinical.csv")
    save_volume(head_ct(), np.eye(4), _label_folder(cohort_dir, 1) / "005_brain.nii.gz")
    save_volume(head_ct(), np.eye(4), _label_folder(cohort_dir, 0) / "900_brain.nii.gz")
    with pytest.raises(ValueError, match=r"image\(s\) of patient ID\(s\) not in .*'900' \(900_brain"):
        load_cohort(cohort_dir / "clinical.csv")


def test_folder_must_agree_with_label(cohort_dir: Path) -> None:
    shutil.move(_label_folder(cohort_dir, 1) / "003_brain.nii.gz",
                _label_folder(cohort_dir, 0) / "003_brain.nii.gz")
    with pytest.raises(ValueError, match=r"patient '003': scan .* is in GOOD_PROGNOSIS/ but .* is 1"):
        load_cohort(cohort_dir / "clinical.csv")
    # the flat reading of the same folders does not look into the label folders
    with pytest.raises(ValueError, match="without an image"):
        load_cohort(cohort_dir / "clinical.csv", layout="flat")


def test_bad_volumes_are_reported_with_patient(cohort_dir: Path) -> None:
    four_d = np.zeros((32, 32, 8, 2), np.int16)
    nib.save(nib.Nifti1Image(four_d, np.eye(4)), _label_folder(cohort_dir, 0) / "004_brain.nii.gz")
    with pytest.raises(ValueError, match=r"patient '004': .*004_brain\.nii\.gz.*4D"):
        load_cohort(cohort_dir / "clinical.csv")
    nib.save(nib.Nifti1Image(np.zeros((32, 32), np.int16), np.eye(4)),
             _label_folder(cohort_dir, 0) / "004_brain.nii.gz")
    with pytest.raises(ValueError, match=r"patient '004': .*2D"):
        load_cohort(cohort_dir / "clinical.csv")
    nan = head_ct().astype(np.float32)
    nan[3, 3, 3] = np.nan
    nib.save(nib.Nifti1Image(nan, np.eye(4)), _label_folder(cohort_dir, 0) / "004_brain.nii.gz")
    assert len(load_cohort(cohort_dir / "clinical.csv")) == 12  # the header is fine
    with pytest.raises(ValueError, match=r"patient '004': .*NaN"):
        load_cohort(cohort_dir / "clinical.csv", check_images="full")


def test_drop_incomplete_reports_exactly_whom(cohort_dir: Path) -> None:
    table = pd.read_csv(cohort_dir / "clinical.csv", dtype={"PatientID": str})
    table.loc[table["PatientID"] == "002", "GCS"] = np.nan
    table.to_csv(cohort_dir / "clinical.csv", index=False)
    (_label_folder(cohort_dir, 1) / "007_brain.nii.gz").unlink()
    save_volume(head_ct(), np.eye(4), _label_folder(cohort_dir, 0) / "900_brain.nii.gz")
    with pytest.raises(ValueError, match=r"'GCS' has no value for patient\(s\) \['002'\]"):
        load_cohort(cohort_dir / "clinical.csv")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cohort = load_cohort(cohort_dir / "clinical.csv", drop_incomplete=True)
    messages = [str(w.message) for w in caught if issubclass(w.category, IncompletePatientsWarning)]
    assert len(messages) == 2
    assert "'002'" in messages[0] and "'007'" in messages[0]
    assert "'900'" in messages[1]
    assert sorted(cohort.dropped) == ["002", "007"]
    assert "GCS" in cohort.dropped["002"] and "no image" in cohort.dropped["007"]
    assert list(cohort.ignored_images) == ["900"]
    assert len(cohort) == 10 and "002" not in cohort and "007" not in cohort
    assert cohort.summary()["dropped"] == 2


def test_out_of_range_is_never_dropped(cohort_dir: Path) -> None:
    table = pd.read_csv(cohort_dir / "clinical.csv", dtype={"PatientID": str})
    table.loc[1, "Age"] = 150
    table.to_csv(cohort_dir / "clinical.csv", index=False)
    with pytest.raises(ValueError, match=r"column 'Age', patient '001'"):
        load_cohort(cohort_dir / "clinical.csv", drop_incomplete=True)


def test_targets_report_the_patient() -> None:
    table = clinical_table(4)
    cohort = Cohort(table, None, required_columns=(LABEL,))
    cohort.table.loc["002", "GCS"] = 99  # bypasses validation on purpose
    with pytest.raises(ValueError, match=r"task 'gcs' \(patient '002'\)"):
        cohort.targets([PROGNOSIS, GCS_BINARY])
    assert set(cohort.targets([PROGNOSIS, AGE_BINARY])) == {"prognosis", "age"}


def test_zero_padding_mismatch_gets_a_hint(tmp_path: Path) -> None:
    table = clinical_table(3)
    table.to_csv(tmp_path / "clinical.csv", index=False)
    for i in range(3):  # files named 0, 1, 2 while the table says 000, 001, 002
        save_volume(head_ct((16, 16, 4)), np.eye(4), tmp_path / f"{i}.nii.gz")
    with pytest.raises(ValueError, match=r"only by leading zeros .*table '000' / file '0'"):
        load_cohort(tmp_path / "clinical.csv")


def test_schema_report_and_all_columns() -> None:
    from ichprog.data import schema

    table = clinical_table(5)
    table.loc[1, "Gender"] = 2
    table["Glucose"] = [100.0, np.nan, 130.0, 90.0, 110.0]
    table["extra"] = 1
    cohort = Cohort(table, None)
    report = cohort.check_schema().set_index("column")
    assert len(report) == len(schema.COLUMNS) - 1 + 1  # schema columns + the extra one
    assert report.loc["Gender", "invalid"] == 1 and report.loc["Gender", "first invalid"] == "001"
    assert report.loc["Glucose", "missing"] == 1 and report.loc["Glucose", "invalid"] == 0
    assert not report.loc["Urea", "present"]
    assert report.loc["extra", "expected"] == "(not in schema)"
    with pytest.raises(ValueError, match=r"missing column\(s\) \['Antihypertensive_drugs'"):
        Cohort(table, None, required_columns="all")


def test_masks_beside_scans_and_loose_scans(cohort_dir: Path) -> None:
    save_volume(np.zeros((32, 32, 8), np.uint8), HEAD_AFFINE,
                cohort_dir / "GOOD_PROGNOSIS" / "000_mask.nii.gz")
    cohort = load_cohort(cohort_dir / "clinical.csv", mask_dir=cohort_dir)
    assert list(cohort.mask_paths) == ["000"]  # the scans themselves are not taken as masks
    save_volume(head_ct(), np.eye(4), cohort_dir / "stray.nii.gz")
    with pytest.warns(IncompletePatientsWarning, match=r"stray\.nii\.gz"):
        load_cohort(cohort_dir / "clinical.csv")
