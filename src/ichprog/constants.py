"""The clinical constants of the paper, in one place: table columns, cut-offs and class names.

Standard library only, so that every module (the light ones included) can import it.

* The clinical table (``CLINICAL_DATA_ICH.csv``): 261 rows x 44 columns in the public dataset.
  ``Tº`` (temperature) is the one non-ASCII name. :mod:`ichprog.data.schema` re-exports the
  column names.
* Cut-offs: binary GCS ``GCS <= 8`` -> 1 (severe); ordinal GCS 13-15 -> 0 (mild), 9-12 -> 1
  (moderate), 3-8 -> 2 (severe); binary age ``age >= 80`` -> 1.
"""

from __future__ import annotations

__all__ = [
    "ID_COLUMN",
    "LABEL_COLUMN",
    "GCS_COLUMN",
    "AGE_COLUMN",
    "TEMPERATURE_COLUMN",
    "BINARY_COLUMNS",
    "NUMERIC_COLUMNS",
    "COLUMNS",
    "GCS_MIN",
    "GCS_MAX",
    "AGE_RANGE",
    "GCS_BINARY_THRESHOLD",
    "GCS_ORDINAL_BANDS",
    "GCS_ORDINAL_CUTOFFS",
    "AGE_THRESHOLD",
    "PROGNOSIS_CLASSES",
    "GCS_BINARY_CLASSES",
    "GCS_ORDINAL_CLASSES",
    "AGE_BINARY_CLASSES",
]

# -- the clinical table -------------------------------------------------------------------------
ID_COLUMN = "PatientID"
LABEL_COLUMN = "Label (poor_prognosis)"
GCS_COLUMN = "GCS"
AGE_COLUMN = "Age"
TEMPERATURE_COLUMN = "T\u00ba"

#: 0/1 columns: sex, the history and drug columns, the neurological examination and trauma cause.
BINARY_COLUMNS: tuple[str, ...] = (
    "Gender",
    "Antihypertensive_drugs", "Smoker", "Alcohol", "HT", "DM", "Dyslipidemia", "MH_ICH", "MH_CVD",
    "MH_neuro", "MH_dementia", "MH_cancer", "MH_hematho", "MH_others", "Anticoagulant",
    "Antiaggregant", "Calcium_antag", "Alpha_blockers",
    "PE_neuro",
    "Cause_head_trauma",
)

#: Numeric columns other than GCS (min-max scaled by the tabular models).
NUMERIC_COLUMNS: tuple[str, ...] = (
    AGE_COLUMN,
    "Systolic_AP", "Dyastolic_AP", "OxSat", TEMPERATURE_COLUMN, "HR", "RF",
    "Glucose", "Creatinine", "Urea", "Sodium", "Potassium", "WBC", "Hgb", "Platelets", "MCV",
    "RCDW", "CMHC", "MPV", "INR", "Fibrinogen",
)

#: All 44 columns in the order of the public table.
COLUMNS: tuple[str, ...] = (
    ID_COLUMN, LABEL_COLUMN, "Gender", AGE_COLUMN,
    "Antihypertensive_drugs", "Smoker", "Alcohol", "HT", "DM", "Dyslipidemia", "MH_ICH", "MH_CVD",
    "MH_neuro", "MH_dementia", "MH_cancer", "MH_hematho", "MH_others", "Anticoagulant",
    "Antiaggregant", "Calcium_antag", "Alpha_blockers",
    "Systolic_AP", "Dyastolic_AP", "OxSat", TEMPERATURE_COLUMN, "HR", "RF",
    "PE_neuro", GCS_COLUMN,
    "Glucose", "Creatinine", "Urea", "Sodium", "Potassium", "WBC", "Hgb", "Platelets", "MCV",
    "RCDW", "CMHC", "MPV", "INR", "Fibrinogen",
    "Cause_head_trauma",
)

assert len(COLUMNS) == 44
assert len(BINARY_COLUMNS) == 20 and len(NUMERIC_COLUMNS) == 21  # + GCS: 42 model inputs

# -- valid values and cut-offs ------------------------------------------------------------------
#: Lowest and highest possible Glasgow Coma Scale score.
GCS_MIN = 3
GCS_MAX = 15
#: Valid ages in years (inclusive) of a cohort's table.
AGE_RANGE: tuple[float, float] = (0.0, 120.0)

#: Binary GCS: a score at or below this is severe (class 1).
GCS_BINARY_THRESHOLD = 8
#: Ordinal GCS: the ``(lowest, highest)`` scores of classes 0 (mild), 1 (moderate), 2 (severe).
GCS_ORDINAL_BANDS: tuple[tuple[int, int], ...] = ((13, GCS_MAX), (9, 12), (GCS_MIN, 8))
#: Ordinal GCS: the upper ends of the severe and moderate bands, as
#: :func:`ichprog.encoding.gcs_ordinal` takes them.
GCS_ORDINAL_CUTOFFS: tuple[int, ...] = tuple(sorted(hi for _, hi in GCS_ORDINAL_BANDS[1:]))
#: Binary age: this age (years) and above is class 1.
AGE_THRESHOLD = 80

# -- class names --------------------------------------------------------------------------------
#: Prognosis: 0 good, 1 poor (``Label (poor_prognosis)``).
PROGNOSIS_CLASSES: tuple[str, str] = ("good", "poor")
#: Binary GCS classes 0 and 1.
GCS_BINARY_CLASSES: tuple[str, str] = (f"GCS {GCS_BINARY_THRESHOLD + 1}-{GCS_MAX}",
                                       f"GCS {GCS_MIN}-{GCS_BINARY_THRESHOLD}")
#: Ordinal GCS classes 0, 1 and 2.
GCS_ORDINAL_CLASSES: tuple[str, ...] = tuple(
    f"{name} {lo}-{hi}" for name, (lo, hi) in zip(("mild", "moderate", "severe"), GCS_ORDINAL_BANDS)
)
#: Binary age classes 0 and 1.
AGE_BINARY_CLASSES: tuple[str, str] = (f"age < {AGE_THRESHOLD}", f"age >= {AGE_THRESHOLD}")
