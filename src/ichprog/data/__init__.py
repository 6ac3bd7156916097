"""Data: the clinical table and CT volumes (NIfTI or DICOM) of a cohort, pre-processing with a persistent cache,
cross-validation splits, and the phantom cohort.

Names are loaded lazily so that ``import ichprog.data`` stays cheap.
"""

from __future__ import annotations

from ichprog._extras import require_extra

require_extra(__name__, "image", ("torch", "monai", "nibabel"))

from ichprog._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    # schema.py: the clinical table's columns, in one place
    "COLUMNS": "schema",
    "LABEL_COLUMN": "schema",
    "ID_COLUMN": "schema",
    "BINARY_COLUMNS": "schema",
    "NUMERIC_COLUMNS": "schema",
    # cohort.py
    "Cohort": "cohort",
    "load_cohort": "cohort",
    "load_table": "cohort",
    # nifti.py
    "load_volume": "nifti",
    "save_volume": "nifti",
    # dicom.py
    "save_dicom_series": "dicom",
    "load_dicom_series": "dicom",
    "list_dicom_series": "dicom",
    "DicomError": "dicom",
    "MixedSeriesError": "dicom",
    "SliceSpacingError": "dicom",
    "GantryTiltError": "dicom",
    "ModalityError": "dicom",
    "TransferSyntaxError": "dicom",
    # preprocess.py
    "PreprocessConfig": "preprocess",
    "AUTHORS_PREPROCESS": "preprocess",
    "preprocess_volume": "preprocess",
    "strip_skull": "preprocess",
    "to_original_space": "preprocess",
    # plausibility.py
    "ScanChecks": "plausibility",
    "ImplausibleScanError": "plausibility",
    "ImplausibleScanWarning": "plausibility",
    "check_scan": "plausibility",
    "check_mask_grid": "plausibility",
    # cache.py
    "VolumeCache": "cache",
    # dataset.py
    "CTDataset": "dataset",
    "Augment": "dataset",
    # splits.py
    "Fold": "splits",
    "Splits": "splits",
    "make_splits": "splits",
    "oversample": "splits",
    # phantom.py
    "make_phantom_cohort": "phantom",
    "PhantomConfig": "phantom",
    "phantom_table": "phantom",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
