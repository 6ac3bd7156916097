"""The columns of the clinical table (``CLINICAL_DATA_ICH.csv``), in one place.

261 rows x 44 columns in the public dataset. ``Tº`` (temperature) is the one non-ASCII name.
"""

from __future__ import annotations

__all__ = ["ID_COLUMN", "LABEL_COLUMN", "BINARY_COLUMNS", "NUMERIC_COLUMNS", "COLUMNS",
           "GCS_COLUMN", "AGE_COLUMN", "TEMPERATURE_COLUMN"]

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
    "Age",
    "Systolic_AP", "Dyastolic_AP", "OxSat", TEMPERATURE_COLUMN, "HR", "RF",
    "Glucose", "Creatinine", "Urea", "Sodium", "Potassium", "WBC", "Hgb", "Platelets", "MCV",
    "RCDW", "CMHC", "MPV", "INR", "Fibrinogen",
)

#: All 44 columns in the order of the public table.
COLUMNS: tuple[str, ...] = (
    ID_COLUMN, LABEL_COLUMN, "Gender", "Age",
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
