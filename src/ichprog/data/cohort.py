"""The cohort: the clinical table and, per patient, the path of its CT (and optional lesion mask).

A :class:`Cohort` joins the table and the images by ``PatientID``, never by row order, validates
the columns the models read (prognosis label, GCS, age), and derives the targets of any list of
:class:`ichprog.tasks.Task`. :func:`load_cohort` reads the public dataset's layout::

    CLINICAL_DATA_ICH.csv
    GOOD_PROGNOSIS/<ID>_brain.nii.gz      (label 0)
    POOR_PROGNOSIS/<ID>_brain.nii.gz      (label 1)

(``<ID>.nii.gz`` for scans that are not skull-stripped) or a flat folder of ``<ID>.nii.gz`` files.
A scan may also be a DICOM series: a folder ``<ID>/`` (or ``<ID>_brain/``) of DICOM files in
place of ``<ID>.nii.gz`` (see :mod:`ichprog.data.dicom`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ichprog.constants import (
    AGE_BINARY_CLASSES,
    AGE_RANGE,
    AGE_THRESHOLD,
    GCS_MAX,
    GCS_MIN,
    GCS_ORDINAL_BANDS,
    GCS_ORDINAL_CLASSES,
)
from ichprog.data import schema
from ichprog.data.dicom import is_dicom_folder
from ichprog.data.nifti import NIFTI_SUFFIXES, check_volume, volume_geometry
from ichprog.data.plausibility import ScanChecks, check_mask_grid

__all__ = [
    "Cohort",
    "load_cohort",
    "load_table",
    "REQUIRED_COLUMNS",
    "AGE_RANGE",
    "GOOD_FOLDER",
    "POOR_FOLDER",
    "IncompletePatientsWarning",
]

#: Columns every cohort must have (besides ``PatientID``): the three targets of the paper.
REQUIRED_COLUMNS: tuple[str, ...] = (schema.LABEL_COLUMN, schema.GCS_COLUMN, schema.AGE_COLUMN)
#: Folder names of the public dataset and the label each one implies.
GOOD_FOLDER = "GOOD_PROGNOSIS"
POOR_FOLDER = "POOR_PROGNOSIS"
_FOLDER_LABEL = {GOOD_FOLDER: 0, POOR_FOLDER: 1}
#: File name endings (before ``.nii[.gz]``) that mark a lesion mask rather than a scan.
MASK_SUFFIXES: tuple[str, ...] = ("_mask", "_lesion", "_seg", "_label")
#: The skull-stripped suffix of the public dataset.
BRAIN_SUFFIX = "_brain"
#: Other spellings of the temperature column found in exported tables, mapped to ``Tº``.
_TEMPERATURE_ALIASES = ("T\u00b0", "T\u00c2\u00ba", "T\u00c2\u00b0")

Layout = Literal["auto", "public", "flat"]


class IncompletePatientsWarning(UserWarning):
    """Patients (or image files) were left out because ``drop_incomplete=True`` was asked for."""


# ----------------------------------------------------------------------------------------------
# the clinical table
# ----------------------------------------------------------------------------------------------
def load_table(path: str | os.PathLike[str], sheet_name: str | int = 0) -> pd.DataFrame:
    """Read the clinical table (CSV or XLSX) into a DataFrame indexed by string ``PatientID``.

    Parameters
    ----------
    path
        ``.csv`` (UTF-8, with or without BOM; Windows-1252 is accepted as a fallback; fields
        separated by ``,``, by ``;`` with decimal commas as spreadsheets export them in many
        European locales, or by tabs, recognised from the header line) or ``.xlsx`` / ``.xls`` file with a ``PatientID`` column.
    sheet_name
        Sheet of a spreadsheet file.

    Returns
    -------
    pandas.DataFrame
        One row per patient, indexed by ``PatientID`` as strings (leading zeros are kept),
        columns in file order. The temperature column written ``T°`` (degree sign) or garbled by a
        wrong encoding is renamed to the schema's ``Tº``.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Unknown file type, an empty (0-byte) or unparsable file, no ``PatientID`` column, or
        missing or duplicated patient IDs (the message names the file, the rows and IDs).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"clinical table not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"clinical table: expected a file, got a folder: {path}")
    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: the clinical table is an empty file (0 bytes)")
    if suffix in (".csv", ".txt", ".tsv"):
        sep = "\t" if suffix == ".tsv" else ","
        df = _read_csv(path, sep=sep, decimal=".")
        if len(df.columns) == 1 and ";" in str(df.columns[0]):
            # a spreadsheet export with the European convention: ';' between fields, ',' decimals
            df = _read_csv(path, sep=";", decimal=",")
        elif sep == "," and len(df.columns) == 1 and "\t" in str(df.columns[0]):
            # tab-separated values under a .csv name: read as such (the header shows the tabs)
            df = _read_csv(path, sep="\t", decimal=".")
    elif suffix in (".xlsx", ".xlsm", ".xls"):
        try:
            df = pd.read_excel(path, sheet_name=sheet_name, dtype={schema.ID_COLUMN: str})
        except (ValueError, OSError, KeyError) as exc:
            raise ValueError(f"{path}: cannot read the spreadsheet ({exc})") from exc
        except Exception as exc:  # zipfile.BadZipFile and the engines' own errors
            raise ValueError(f"{path}: not a readable spreadsheet ({type(exc).__name__}: "
                             f"{exc})") from exc
    else:
        raise ValueError(f"{path}: unknown table type {suffix!r}; use .csv or .xlsx")
    return _index_by_patient(df, source=str(path))


def _read_csv(path: Path, sep: str, decimal: str) -> pd.DataFrame:
    kwargs: dict[str, Any] = {"sep": sep, "decimal": decimal, "dtype": {schema.ID_COLUMN: str}}
    try:
        try:
            return pd.read_csv(path, encoding="utf-8-sig", **kwargs)
        except UnicodeDecodeError:
            return pd.read_csv(path, encoding="cp1252", **kwargs)
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"{path}: the clinical table holds no columns (an empty or blank "
                         "file)") from exc
    except pd.errors.ParserError as exc:
        raise ValueError(f"{path}: not a readable {'tab' if sep == chr(9) else repr(sep)}-"
                         f"separated table ({exc})") from exc


def _index_by_patient(df: pd.DataFrame, source: str) -> pd.DataFrame:
    df = df.copy()
    renames = {c: schema.TEMPERATURE_COLUMN for c in df.columns if c in _TEMPERATURE_ALIASES}
    if renames and schema.TEMPERATURE_COLUMN not in df.columns:
        df = df.rename(columns=renames)
    if df.index.name == schema.ID_COLUMN and schema.ID_COLUMN not in df.columns:
        df = df.reset_index()
    if schema.ID_COLUMN not in df.columns:
        raise ValueError(
            f"{source}: no {schema.ID_COLUMN!r} column; columns are {list(df.columns)}"
        )
    raw = df[schema.ID_COLUMN]
    missing = raw.isna().to_numpy() | (raw.astype(str).str.strip() == "").to_numpy()
    if missing.any():
        rows = np.flatnonzero(missing).tolist()
        raise ValueError(
            f"{source}: {len(rows)} row(s) without a {schema.ID_COLUMN} (0-based data rows {rows[:10]})"
        )
    ids = raw.map(_id_to_str)
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        raise ValueError(
            f"{source}: duplicated {schema.ID_COLUMN}(s) {sorted(set(dup))[:10]} "
            f"(0-based data rows {dup.index.tolist()[:10]})"
        )
    df = df.drop(columns=[schema.ID_COLUMN])
    df.index = pd.Index(ids.to_numpy(dtype=object), name=schema.ID_COLUMN, dtype=object)
    return df


def _id_to_str(value: Any) -> str:
    """Patient IDs as strings: integral floats (``12.0`` from a spreadsheet) become ``"12"``."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value).strip()


# ----------------------------------------------------------------------------------------------
# validation of the target columns
# ----------------------------------------------------------------------------------------------
def _validate_columns(
    table: pd.DataFrame, required: Sequence[str], source: str, allow_missing_values: bool
) -> list[str]:
    """Check presence and ranges; return IDs with missing values if these are allowed."""
    absent = [c for c in required if c not in table.columns]
    if absent:
        raise ValueError(
            f"{source}: missing column(s) {absent}; the table has {list(table.columns)}"
        )
    incomplete: list[str] = []
    for col in required:
        values = pd.to_numeric(table[col], errors="coerce")
        non_numeric = values.isna() & table[col].notna()
        if non_numeric.any():
            pid = non_numeric[non_numeric].index[0]
            raise ValueError(
                f"{source}: column {col!r}, patient {pid!r}: expected a number, "
                f"got {table.at[pid, col]!r}"
            )
        na = values.isna()
        if na.any():
            if not allow_missing_values:
                pids = na[na].index.tolist()
                raise ValueError(
                    f"{source}: column {col!r} has no value for patient(s) {pids[:10]}"
                    + (" ..." if len(pids) > 10 else "")
                    + "; fill them in or pass drop_incomplete=True"
                )
            incomplete.extend(p for p in na[na].index if p not in incomplete)
        v = values[~na]
        if col == schema.LABEL_COLUMN:
            bad = ~v.isin([0, 1])
            rng = "0 or 1"
        elif col == schema.GCS_COLUMN:
            bad = (v < GCS_MIN) | (v > GCS_MAX) | (v != np.round(v))
            rng = f"an integer from {GCS_MIN} to {GCS_MAX}"
        elif col == schema.AGE_COLUMN:
            bad = (v < AGE_RANGE[0]) | (v > AGE_RANGE[1]) | ~np.isfinite(v)
            rng = f"a number of years from {AGE_RANGE[0]:g} to {AGE_RANGE[1]:g}"
        elif col in schema.BINARY_COLUMNS:
            bad = ~v.isin([0, 1])
            rng = "0 or 1"
        else:
            bad = ~np.isfinite(v)
            rng = "a finite number"
        if bad.any():
            pid = bad[bad].index[0]
            raise ValueError(
                f"{source}: column {col!r}, patient {pid!r}: value {table.at[pid, col]!r} is out "
                f"of range (expected {rng}; {int(bad.sum())} such value(s))"
            )
    return incomplete


def _resolve_required(required: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(required, str):
        if required == "all":
            return tuple(c for c in schema.COLUMNS if c != schema.ID_COLUMN)
        raise ValueError(f"required_columns must be a list of columns or 'all', got {required!r}")
    return tuple(required)


def _as_path_map(
    paths: Mapping[Any, Any] | None, root: Path | None, what: str
) -> dict[str, Path]:
    if paths is None:
        return {}
    out: dict[str, Path] = {}
    for key, value in paths.items():
        pid = _id_to_str(key)
        if pid in out:
            raise ValueError(f"{what}: patient {pid!r} appears twice")
        p = Path(value)
        if root is not None and not p.is_absolute():
            p = root / p
        out[pid] = p
    return out


# ----------------------------------------------------------------------------------------------
# Cohort
# ----------------------------------------------------------------------------------------------
class Cohort:
    """A clinical table and the CT (and optional lesion mask) of every patient.

    Parameters
    ----------
    table
        One row per patient, indexed by ``PatientID`` (a ``PatientID`` column is moved to the
        index), holding the clinical columns of :mod:`ichprog.data.schema`. IDs are converted to
        strings. At least the columns in ``required_columns`` must be present and valid.
    image_paths
        Patient ID -> CT file (or DICOM folder). Every patient of the table must have one and every key must be a
        patient of the table. ``None`` builds a table-only cohort (for the tabular models).
    mask_paths
        Patient ID -> lesion mask file; optional, and may cover only some patients.
    root
        Folder that relative paths are resolved against (kept as ``cohort.root``).
    required_columns
        Columns checked for presence, missing values and range: the prognosis label (0/1), GCS
        (integer 3-15) and age (0-120 years) by default; ``"all"`` for the 43 clinical columns
        of :data:`ichprog.data.schema.COLUMNS` (binary columns 0/1, numeric ones finite).
    check_files
        Check that every image and mask file exists.

    Attributes
    ----------
    table : pandas.DataFrame
        The clinical table (a copy), indexed by ``PatientID``.
    dropped : dict of str to str
        Patient ID -> reason, for the patients left out by :func:`load_cohort` with
        ``drop_incomplete=True``. Empty for a cohort built directly.
    ignored_images : dict of str to pathlib.Path
        Scans found by :func:`load_cohort` (with ``drop_incomplete=True``) whose patient ID is
        not in the table: ID -> file.

    Raises
    ------
    ValueError
        Missing or duplicated IDs, missing columns, values out of range, patients without an
        image or images without a patient. The message names the patient and column.
    FileNotFoundError
        ``check_files`` and a file does not exist.

    Examples
    --------
    >>> import pandas as pd
    >>> from ichprog.data import Cohort
    >>> table = pd.DataFrame({"PatientID": ["7", "3"], "Label (poor_prognosis)": [1, 0],
    ...                       "GCS": [6, 14], "Age": [81, 64]})
    >>> cohort = Cohort(table, image_paths=None)
    >>> cohort.ids, cohort.labels.tolist()
    (['7', '3'], [1, 0])
    """

    def __init__(
        self,
        table: pd.DataFrame,
        image_paths: Mapping[Any, Any] | None,
        mask_paths: Mapping[Any, Any] | None = None,
        root: str | os.PathLike[str] | None = None,
        *,
        required_columns: Sequence[str] | str = REQUIRED_COLUMNS,
        check_files: bool = True,
    ) -> None:
        if not isinstance(table, pd.DataFrame):
            raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
        self.root = Path(root) if root is not None else None
        source = f"clinical table ({self.root})" if self.root is not None else "clinical table"
        self._source = source
        if table.index.name == schema.ID_COLUMN and schema.ID_COLUMN not in table.columns:
            self.table = _index_by_patient(table.reset_index(), source)
        else:
            self.table = _index_by_patient(table, source)
        if len(self.table) == 0:
            raise ValueError(f"{source}: the table has no patient")
        self.required_columns = _resolve_required(required_columns)
        _validate_columns(self.table, self.required_columns, source, allow_missing_values=False)
        self._images = _as_path_map(image_paths, self.root, "image_paths")
        self._masks = _as_path_map(mask_paths, self.root, "mask_paths")
        self.dropped: dict[str, str] = {}
        self.ignored_images: dict[str, Path] = {}
        ids = set(self.table.index)
        if image_paths is not None:
            no_image = [p for p in self.table.index if p not in self._images]
            if no_image:
                raise ValueError(
                    f"{source}: {len(no_image)} patient(s) without an image: {no_image[:10]}"
                    + (" ..." if len(no_image) > 10 else "")
                )
            orphans = [p for p in self._images if p not in ids]
            if orphans:
                raise ValueError(
                    f"{source}: image(s) of {len(orphans)} patient ID(s) not in the table: "
                    + ", ".join(f"{p!r} ({self._images[p]})" for p in orphans[:10])
                )
        orphan_masks = [p for p in self._masks if p not in ids]
        if orphan_masks:
            raise ValueError(
                f"{source}: lesion mask(s) of patient ID(s) not in the table: "
                + ", ".join(f"{p!r} ({self._masks[p]})" for p in orphan_masks[:10])
            )
        if check_files:
            for what, mapping in (("image", self._images), ("lesion mask", self._masks)):
                for pid, p in mapping.items():
                    if not (p.is_file() or (what == "image" and p.is_dir())):
                        raise FileNotFoundError(f"patient {pid!r}: {what} file not found: {p}")

    # -- basic access -----------------------------------------------------------------------
    @property
    def ids(self) -> list[str]:
        """Patient IDs in table order."""
        return [str(i) for i in self.table.index]

    def __len__(self) -> int:
        return len(self.table)

    def __contains__(self, pid: object) -> bool:
        return pid in self.table.index

    def __iter__(self) -> Any:
        return iter(self.ids)

    @property
    def has_images(self) -> bool:
        """Whether every patient has an image (``False`` for a table-only cohort)."""
        return bool(self._images)

    @property
    def image_paths(self) -> dict[str, Path]:
        """Patient ID -> CT file, in table order."""
        return {p: self._images[p] for p in self.ids if p in self._images}

    @property
    def mask_paths(self) -> dict[str, Path]:
        """Patient ID -> lesion mask file, for the patients that have one, in table order."""
        return {p: self._masks[p] for p in self.ids if p in self._masks}

    def _check_ids(self, ids: Iterable[Any]) -> list[str]:
        out = [_id_to_str(i) for i in ids]
        unknown = [i for i in out if i not in self.table.index]
        if unknown:
            raise KeyError(f"patient ID(s) not in the cohort: {unknown[:10]}")
        return out

    def image_path(self, pid: str) -> Path:
        """The CT file of one patient."""
        (pid,) = self._check_ids([pid])
        if pid not in self._images:
            raise KeyError(f"patient {pid!r} has no image (table-only cohort)")
        return self._images[pid]

    def mask_path(self, pid: str) -> Path | None:
        """The lesion mask of one patient, or ``None`` when it has none."""
        (pid,) = self._check_ids([pid])
        return self._masks.get(pid)

    @property
    def labels(self) -> np.ndarray:
        """The prognosis label (0 good, 1 poor) as an int64 array in :attr:`ids` order."""
        return self.table[schema.LABEL_COLUMN].to_numpy(dtype=float).astype(np.int64)

    def subset(self, ids: Iterable[Any]) -> Cohort:
        """A cohort of the given patients, in the given order.

        Raises
        ------
        KeyError
            An ID is not in the cohort.
        ValueError
            An ID is given twice.
        """
        ids = self._check_ids(ids)
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"subset: patient ID(s) given more than once: {dup[:10]}")
        sub = Cohort.__new__(Cohort)
        sub.root = self.root
        sub._source = self._source
        sub.table = self.table.loc[ids].copy()
        sub.required_columns = self.required_columns
        sub._images = {p: self._images[p] for p in ids if p in self._images}
        sub._masks = {p: self._masks[p] for p in ids if p in self._masks}
        sub.dropped = dict(self.dropped)
        sub.ignored_images = dict(self.ignored_images)
        return sub

    # -- targets ----------------------------------------------------------------------------
    def targets(self, tasks: Any, ids: Iterable[Any] | None = None) -> dict[str, np.ndarray]:
        """The class indices of each task.

        Parameters
        ----------
        tasks
            A :class:`ichprog.tasks.Preset`, a preset name, a :class:`~ichprog.tasks.Task` or a
            list of tasks.
        ids
            Patients (default all, in :attr:`ids` order).

        Returns
        -------
        dict of str to numpy.ndarray
            Task name -> class indices (or values for continuous tasks), one per patient, in the
            order of ``ids``. Use ``task.loss_targets(classes)`` for the loss's float targets.

        Raises
        ------
        KeyError
            A task reads a column the table lacks, or an ID is not in the cohort.
        ValueError
            A value cannot be encoded; the message names the patient and column.
        """
        from ichprog.tasks import as_preset

        preset = as_preset(tasks)
        rows = self.table if ids is None else self.table.loc[self._check_ids(ids)]
        out: dict[str, np.ndarray] = {}
        for task in preset:
            try:
                out[task.name] = task.targets(rows)
            except ValueError as exc:
                # the encoders report positions; translate to a patient ID
                pid = _patient_at_position(str(exc), rows)
                where = f" (patient {pid!r})" if pid is not None else ""
                raise ValueError(f"task {task.name!r}{where}: {exc}") from exc
        return out

    # -- reporting --------------------------------------------------------------------------
    def check_schema(self) -> pd.DataFrame:
        """How the table matches the clinical schema of :mod:`ichprog.data.schema`.

        Returns
        -------
        pandas.DataFrame
            One row per schema column (``PatientID`` excepted) with ``present``, ``missing``
            (number of empty cells), ``invalid`` (values outside the column's domain: 0/1 for
            binary columns, 3-15 for GCS, the age range, finite numbers otherwise), ``first
            invalid`` (a patient ID) and ``expected``; columns of the table outside the schema
            are listed with ``present=True`` and ``expected="(not in schema)"``.
        """
        rows = []
        for col in schema.COLUMNS:
            if col == schema.ID_COLUMN:
                continue
            if col == schema.LABEL_COLUMN or col in schema.BINARY_COLUMNS:
                expected = "0 or 1"
            elif col == schema.GCS_COLUMN:
                expected = f"integer {GCS_MIN}-{GCS_MAX}"
            elif col == schema.AGE_COLUMN:
                expected = f"{AGE_RANGE[0]:g}-{AGE_RANGE[1]:g} years"
            else:
                expected = "finite number"
            if col not in self.table.columns:
                rows.append({"column": col, "present": False, "missing": len(self),
                             "invalid": 0, "first invalid": None, "expected": expected})
                continue
            raw = self.table[col]
            v = pd.to_numeric(raw, errors="coerce")
            missing = raw.isna()
            bad = v.isna() & ~missing
            ok = v[~v.isna()]
            if expected == "0 or 1":
                out = ~ok.isin([0, 1])
            elif col == schema.GCS_COLUMN:
                out = (ok < GCS_MIN) | (ok > GCS_MAX) | (ok != np.round(ok))
            elif col == schema.AGE_COLUMN:
                out = (ok < AGE_RANGE[0]) | (ok > AGE_RANGE[1])
            else:
                out = ~np.isfinite(ok)
            bad_ids = list(bad[bad].index) + list(out[out].index)
            rows.append({"column": col, "present": True, "missing": int(missing.sum()),
                         "invalid": len(bad_ids), "first invalid": bad_ids[0] if bad_ids else None,
                         "expected": expected})
        for col in self.table.columns:
            if col not in schema.COLUMNS:
                rows.append({"column": col, "present": True,
                             "missing": int(self.table[col].isna().sum()), "invalid": 0,
                             "first invalid": None, "expected": "(not in schema)"})
        return pd.DataFrame(rows)

    def summary(self) -> pd.Series:
        """Counts and distributions: patients, labels, GCS severity, age, images and masks."""
        t = self.table
        label = self.labels
        out: dict[str, Any] = {
            "patients": len(self),
            "good prognosis (0)": int((label == 0).sum()),
            "poor prognosis (1)": int((label == 1).sum()),
        }
        if schema.GCS_COLUMN in t.columns:
            gcs = pd.to_numeric(t[schema.GCS_COLUMN], errors="coerce")
            (mild_low, _), (moderate_low, moderate_high), (_, severe_high) = GCS_ORDINAL_BANDS
            mild, moderate, severe = GCS_ORDINAL_CLASSES
            out[f"GCS {mild}"] = int((gcs >= mild_low).sum())
            out[f"GCS {moderate}"] = int(((gcs >= moderate_low) & (gcs <= moderate_high)).sum())
            out[f"GCS {severe}"] = int((gcs <= severe_high).sum())
        if schema.AGE_COLUMN in t.columns:
            age = pd.to_numeric(t[schema.AGE_COLUMN], errors="coerce")
            out["age mean"] = float(age.mean())
            out["age SD"] = float(age.std(ddof=1)) if len(age) > 1 else float("nan")
            out[AGE_BINARY_CLASSES[1]] = int((age >= AGE_THRESHOLD).sum())
        out["images"] = len(self._images)
        out["lesion masks"] = len(self._masks)
        out["dropped"] = len(self.dropped)
        return pd.Series(out, name="cohort", dtype=object)

    def __repr__(self) -> str:
        label = self.labels
        where = f", root={str(self.root)!r}" if self.root is not None else ""
        return (
            f"Cohort(n={len(self)}, good={int((label == 0).sum())}, poor={int((label == 1).sum())}, "
            f"images={len(self._images)}, masks={len(self._masks)}{where})"
        )


def _patient_at_position(message: str, rows: pd.DataFrame) -> str | None:
    import re

    m = re.search(r"position \(?(\d+)", message)
    if m is None:
        return None
    pos = int(m.group(1))
    return str(rows.index[pos]) if pos < len(rows) else None


# ----------------------------------------------------------------------------------------------
# finding images
# ----------------------------------------------------------------------------------------------
def _strip_nifti_suffix(name: str) -> str | None:
    low = name.lower()
    for suf in NIFTI_SUFFIXES:
        if low.endswith(suf):
            return name[: -len(suf)]
    return None


def _scan_folder(folder: Path, suffix: str | None) -> tuple[dict[str, list[Path]], list[Path]]:
    """Patient ID -> candidate scan files in one folder, and the mask-like files skipped."""
    found: dict[str, list[Path]] = {}
    masks: list[Path] = []
    for f in sorted(folder.iterdir()):
        if f.name.startswith("."):
            continue
        stem: str | None
        if f.is_dir():
            # a DICOM series: the folder <ID> (or <ID>_brain) holds the slices
            if f.name in _FOLDER_LABEL or not is_dicom_folder(f):
                continue
            stem = f.name
        elif f.is_file():
            stem = _strip_nifti_suffix(f.name)
        else:
            continue
        if stem is None:
            continue
        if any(stem.endswith(m) for m in MASK_SUFFIXES):
            masks.append(f)
            continue
        if suffix is None:
            pid = stem[: -len(BRAIN_SUFFIX)] if stem.endswith(BRAIN_SUFFIX) else stem
        elif suffix == "":
            if stem.endswith(BRAIN_SUFFIX):
                continue  # the other variant, not asked for
            pid = stem
        elif stem.endswith(suffix):
            pid = stem[: -len(suffix)]
        else:
            continue
        found.setdefault(pid, []).append(f)
    return found, masks


def _find_images(
    image_dir: Path, layout: Layout, suffix: str | None
) -> tuple[dict[str, Path], dict[str, int], str]:
    """Patient ID -> scan, the label implied by the folder (public layout), and the layout used."""
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder not found: {image_dir}")
    public = [image_dir / f for f in _FOLDER_LABEL if (image_dir / f).is_dir()]
    if layout == "auto":
        layout = "public" if public else "flat"
    if layout not in ("public", "flat"):
        raise ValueError(f"layout must be 'auto', 'public' or 'flat', got {layout!r}")
    folders: list[tuple[Path, int | None]]
    if layout == "public":
        if not public:
            raise FileNotFoundError(
                f"{image_dir}: neither {GOOD_FOLDER}/ nor {POOR_FOLDER}/ exists (public layout)"
            )
        folders = [(f, _FOLDER_LABEL[f.name]) for f in public]
        loose, _ = _scan_folder(image_dir, suffix)
        if loose:
            warnings.warn(
                f"{image_dir}: {len(loose)} scan(s) outside {GOOD_FOLDER}/ and {POOR_FOLDER}/ "
                f"are not part of the cohort (public layout): "
                + ", ".join(str(v[0].name) for v in list(loose.values())[:10]),
                IncompletePatientsWarning,
                stacklevel=3,
            )
    else:
        folders = [(image_dir, None)]
    images: dict[str, Path] = {}
    folder_label: dict[str, int] = {}
    for folder, lab in folders:
        found, _ = _scan_folder(folder, suffix)
        for pid, files in found.items():
            if len(files) > 1:
                raise ValueError(
                    f"patient {pid!r}: several scans {[str(f) for f in files]}; pass "
                    f"suffix='{BRAIN_SUFFIX}' or suffix='' to choose"
                )
            if pid in images:
                raise ValueError(
                    f"patient {pid!r}: scans in two folders: {images[pid]} and {files[0]}"
                )
            images[pid] = files[0]
            if lab is not None:
                folder_label[pid] = lab
    return images, folder_label, layout


def _find_masks(mask_dir: Path, scans: Iterable[Path] = ()) -> dict[str, Path]:
    if not mask_dir.is_dir():
        raise FileNotFoundError(f"mask folder not found: {mask_dir}")
    skip = {Path(p).absolute() for p in scans}
    masks: dict[str, list[Path]] = {}
    for f in sorted(mask_dir.rglob("*")):
        if not f.is_file() or f.name.startswith(".") or f.absolute() in skip:
            continue
        stem = _strip_nifti_suffix(f.name)
        if stem is None:
            continue
        pid = stem
        for m in MASK_SUFFIXES:
            if stem.endswith(m):
                pid = stem[: -len(m)]
                break
        else:
            if stem.endswith(BRAIN_SUFFIX):
                continue  # a scan living next to the masks
        masks.setdefault(pid, []).append(f)
    for pid, files in masks.items():
        if len(files) > 1:
            raise ValueError(f"patient {pid!r}: several lesion masks {[str(f) for f in files]}")
    return {pid: files[0] for pid, files in masks.items()}


def _id_hint(no_image: Sequence[str], orphans: Sequence[str]) -> str:
    """A hint when table IDs and file IDs differ only by leading zeros or letter case."""
    if not no_image or not orphans:
        return ""

    def norm(pid: str) -> str:
        return (pid.lstrip("0") or "0").lower()

    files = {norm(p): p for p in orphans}
    pairs = [(p, files[norm(p)]) for p in no_image if norm(p) in files]
    if not pairs:
        return ""
    examples = ", ".join(f"table {a!r} / file {b!r}" for a, b in pairs[:3])
    return (f". Note: {len(pairs)} table ID(s) differ from file IDs only by leading zeros or "
            f"case ({examples}); IDs are matched exactly, so rename the files or fix the table")


def load_cohort(
    table: str | os.PathLike[str] | pd.DataFrame,
    image_dir: str | os.PathLike[str] | None = None,
    mask_dir: str | os.PathLike[str] | None = None,
    layout: Layout = "auto",
    drop_incomplete: bool = False,
    *,
    suffix: str | None = None,
    check_images: Literal["none", "header", "full"] = "header",
    required_columns: Sequence[str] | str = REQUIRED_COLUMNS,
    progress: bool = False,
    scan_checks: ScanChecks | None = None,
) -> Cohort:
    """Load a cohort: the clinical table joined by ``PatientID`` to the scans of a folder.

    Parameters
    ----------
    table
        Path of the clinical table (``.csv`` or ``.xlsx``, see :func:`load_table`) or a
        DataFrame.
    image_dir
        Folder of the scans; default the table's folder.
    mask_dir
        Folder of the lesion masks (searched recursively for ``<ID>_mask.nii.gz``,
        ``<ID>_lesion.nii.gz``, ``<ID>_seg.nii.gz``, ``<ID>_label.nii.gz`` or ``<ID>.nii.gz``);
        masks are optional per patient.
    layout
        ``"public"``: scans in ``GOOD_PROGNOSIS/`` and ``POOR_PROGNOSIS/``, and each folder must
        agree with the patient's label; ``"flat"``: scans directly in ``image_dir``; ``"auto"``:
        public when one of those folders exists, else flat.
    drop_incomplete
        Leave out patients without an image or with a missing label, GCS or age, and ignore
        scans whose ID is not in the table, instead of raising. Whoever was left out is listed in
        a :class:`IncompletePatientsWarning` and in ``cohort.dropped``. Values out of range and
        label/folder disagreements always raise.
    suffix
        Scan names are ``<ID><suffix>.nii[.gz]``, or ``<ID><suffix>/`` for a folder of DICOM
        files (one CT series per patient; a sub-folder without DICOM files is ignored). By default both ``<ID>_brain`` and ``<ID>`` are
        accepted (an error if a patient has both); ``"_brain"`` or ``""`` picks one variant and
        leaves the files of the other one aside.
    check_images
        ``"header"`` (default) reads every header: 2D, 4D and truncated uncompressed files are
        reported now; ``"full"`` also decodes every voxel (truncated ``.nii.gz``, NaN/inf);
        ``"none"`` only checks that the files exist.
    required_columns
        Columns that must be present and valid (see :class:`Cohort`).
    progress
        Show a progress bar while the scans are checked.
    scan_checks
        Plausibility settings (:class:`~ichprog.data.ScanChecks`, default every check): with
        ``check_images`` other than ``"none"``, a lesion mask must lie on its scan's voxel grid
        (same shape and affine, read from the headers) and is never resampled silently. The
        voxel checks of the scans run when they are pre-processed (``PreprocessConfig.checks``).

    Returns
    -------
    Cohort

    Raises
    ------
    FileNotFoundError, ValueError
        See :class:`Cohort` and :func:`ichprog.data.load_volume`; every message names the file,
        the patient or the column.
    """
    df, source, image_dir = _cohort_table(table, image_dir)
    images, folder_label, _ = _find_images(image_dir, layout, suffix)
    masks = (_find_masks(Path(mask_dir).absolute(), images.values())
             if mask_dir is not None else {})

    required_columns = _resolve_required(required_columns)
    dropped: dict[str, str] = {}
    incomplete = _validate_columns(df, required_columns, source, allow_missing_values=drop_incomplete)
    for pid in incomplete:
        cols = [c for c in required_columns if bool(df[c].isna().loc[pid])]
        dropped[pid] = f"no value in column(s) {cols}"
    ignored_images = _match_images(df, images, image_dir, source, drop_incomplete, dropped)
    orphan_masks = [p for p in masks if p not in df.index]
    if orphan_masks:
        raise ValueError(
            f"{mask_dir}: lesion mask(s) of patient ID(s) not in {source}: "
            + ", ".join(f"{p!r} ({masks[p].name})" for p in orphan_masks[:10])
        )

    keep = [p for p in df.index if p not in dropped]
    df = df.loc[keep]
    if not len(df):
        raise ValueError(f"{source}: no complete patient left (dropped: {dropped})")
    _check_folder_labels(df, images, folder_label)
    _check_scans(df, images, masks, check_images, progress, scan_checks)
    _warn_left_out(dropped, ignored_images, source)
    cohort = Cohort(
        df,
        image_paths={p: images[p] for p in df.index},
        mask_paths={p: masks[p] for p in df.index if p in masks},
        root=image_dir,
        required_columns=required_columns,
    )
    cohort.dropped = dropped
    cohort.ignored_images = ignored_images
    return cohort


def _cohort_table(
    table: str | os.PathLike[str] | pd.DataFrame, image_dir: str | os.PathLike[str] | None
) -> tuple[pd.DataFrame, str, Path]:
    """The clinical table indexed by patient, its name in messages, and the (absolute) image
    folder: ``image_dir``, by default the table's folder."""
    if isinstance(table, pd.DataFrame):
        df = _index_by_patient(
            table.reset_index() if table.index.name == schema.ID_COLUMN else table, "table"
        )
        source = "table"
        default_dir = None
    else:
        df = load_table(table)
        source = str(table)
        default_dir = Path(table).parent
    if image_dir is None:
        if default_dir is None:
            raise ValueError("image_dir is required when the table is a DataFrame")
        image_dir = default_dir
    return df, source, Path(image_dir).absolute()


def _match_images(df: pd.DataFrame, images: dict[str, Path], image_dir: Path, source: str,
                  drop_incomplete: bool, dropped: dict[str, str]) -> dict[str, Path]:
    """Join the table's patients to the scans: a patient without a scan or a scan without a
    patient raises, or (``drop_incomplete``) the patient is added to ``dropped`` and the scan is
    taken out of ``images``; returns the scans taken out."""
    no_image = [p for p in df.index if p not in images]
    orphans = [p for p in images if p not in df.index]
    if not drop_incomplete:
        hint = _id_hint(no_image, orphans)
        if no_image:
            raise ValueError(
                f"{source}: {len(no_image)} patient(s) without an image in {image_dir}: "
                f"{no_image[:10]}" + (" ..." if len(no_image) > 10 else "") + hint
            )
        if orphans:
            raise ValueError(
                f"{image_dir}: {len(orphans)} image(s) of patient ID(s) not in {source}: "
                + ", ".join(f"{p!r} ({images[p].name})" for p in orphans[:10]) + hint
            )
    for pid in no_image:
        dropped.setdefault(pid, f"no image in {image_dir}")
    return {pid: images.pop(pid) for pid in orphans}


def _check_folder_labels(df: pd.DataFrame, images: Mapping[str, Path],
                         folder_label: Mapping[str, int]) -> None:
    """In the public layout, a scan's folder must agree with the patient's label."""
    label = df[schema.LABEL_COLUMN].to_numpy(dtype=float)
    for pid, lab in zip(df.index, label):
        if pid in folder_label and folder_label[pid] != int(lab):
            raise ValueError(
                f"patient {pid!r}: scan {images[pid]} is in "
                f"{GOOD_FOLDER if folder_label[pid] == 0 else POOR_FOLDER}/ but the table's "
                f"{schema.LABEL_COLUMN!r} is {int(lab)}"
            )


def _check_scans(df: pd.DataFrame, images: Mapping[str, Path], masks: Mapping[str, Path],
                 check_images: str, progress: bool, scan_checks: ScanChecks | None = None) -> None:
    """Read every scan's and mask's header (``"header"``) or all its voxels (``"full"``), and
    compare each mask's grid with its scan's."""
    if check_images not in ("none", "header", "full"):
        raise ValueError(f"check_images must be 'none', 'header' or 'full', got {check_images!r}")
    if check_images == "none":
        return
    from tqdm.auto import tqdm

    for pid in tqdm(list(df.index), desc="checking scans", unit="patient",
                    disable=not progress):
        for p in (images[pid], masks.get(pid)):
            if p is None:
                continue
            try:
                check_volume(p, read_data=check_images == "full")
            except (ValueError, OSError) as exc:
                new = type(exc)(f"patient {pid!r}: {exc}")
                for attr in ("folder", "slice"):  # a DicomError keeps where it failed
                    if hasattr(exc, attr):
                        setattr(new, attr, getattr(exc, attr))
                raise new from exc
        mask = masks.get(pid)
        if mask is not None and (scan_checks is None or scan_checks.mask_grid):
            s_shape, s_aff = volume_geometry(images[pid])
            m_shape, m_aff = volume_geometry(mask)
            check_mask_grid(m_shape, m_aff, s_shape, s_aff, f"patient {pid!r}: {mask}",
                            checks=scan_checks)


def _warn_left_out(dropped: Mapping[str, str], ignored_images: Mapping[str, Path],
                   source: str) -> None:
    """One :class:`IncompletePatientsWarning` for the patients left out and one for the scans
    ignored, pointing at the caller of :func:`load_cohort`."""
    if dropped:
        warnings.warn(
            f"load_cohort: left out {len(dropped)} incomplete patient(s): "
            + "; ".join(f"{k!r}: {v}" for k, v in list(dropped.items())[:20])
            + (" ..." if len(dropped) > 20 else "")
            + " (full list in cohort.dropped)",
            IncompletePatientsWarning,
            stacklevel=3,
        )
    if ignored_images:
        warnings.warn(
            f"load_cohort: ignored {len(ignored_images)} image(s) whose patient ID is not in "
            f"{source}: "
            + "; ".join(f"{k!r}: {v}" for k, v in list(ignored_images.items())[:20])
            + " (full list in cohort.ignored_images)",
            IncompletePatientsWarning,
            stacklevel=3,
        )
