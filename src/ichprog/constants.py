"""The clinical constants of the paper, in one place: table columns, cut-offs, class names, the
metric lists and the published tables.

Standard library only, so that every module (the light ones included) can import it.

* The clinical table (``CLINICAL_DATA_ICH.csv``): 261 rows x 44 columns in the public dataset.
  ``Tº`` (temperature) is the one non-ASCII name. :mod:`ichprog.data.schema` re-exports the
  column names.
* Cut-offs: binary GCS ``GCS <= 8`` -> 1 (severe); ordinal GCS 13-15 -> 0 (mild), 9-12 -> 1
  (moderate), 3-8 -> 2 (severe); binary age ``age >= 80`` -> 1.
* The metric keys of :mod:`ichprog.metrics`, in the order of the paper's tables.
* The paper's published tables (Cobo et al., 2024), as printed: ``"mean ± SD"`` over 10 folds, or
  a point estimate with its bootstrap 95 % interval for Table 2. They are strings on purpose:
  they are shown, never computed with.
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
    "BINARY_METRICS",
    "ORDINAL_METRICS",
    "PREDICTION_COLUMNS",
    "OLD_ID_COLUMNS",
    "PAPER_TABLES",
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

# -- metrics ------------------------------------------------------------------------------------
#: The keys of :func:`ichprog.metrics.binary_metrics`, in the order of the paper's tables.
BINARY_METRICS: tuple[str, ...] = (
    "auc",
    "accuracy",
    "balanced_accuracy",
    "specificity",
    "npv",
    "precision",
    "recall",
    "f1",
)
#: The keys of :func:`ichprog.metrics.ordinal_metrics`, in the order of the paper's tables.
ORDINAL_METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "mae", "rmse", "uoc", "qwk")

# -- result tables ------------------------------------------------------------------------------
#: The one prediction table of the library (long: one row per model, fold, patient and task).
#: ``score`` ranks the patients (P(class 1) of a binary task, the expected class of an ordinal
#: one); ``pred`` is the decided class.
PREDICTION_COLUMNS: tuple[str, ...] = ("model", "fold", ID_COLUMN, "task", "y_true", "score",
                                       "pred")
#: Names the patient column had in files written by earlier releases; read as :data:`ID_COLUMN`.
OLD_ID_COLUMNS: tuple[str, ...] = ("id", "patient")

# -- the published tables -----------------------------------------------------------------------
# Table 1: tabular models, 10-fold CV, mean ± SD.
_TABLE1: dict[str, tuple[str, ...]] = {
    "DNN (all)": ("0.79 ± 0.06", "0.72 ± 0.05", "0.70 ± 0.04", "0.66 ± 0.12", "0.65 ± 0.12",
                  "0.79 ± 0.05", "0.75 ± 0.14", "0.76 ± 0.06"),
    "RF (all)": ("0.78 ± 0.07", "0.72 ± 0.09", "0.71 ± 0.09", "0.64 ± 0.12", "0.66 ± 0.13",
                 "0.78 ± 0.07", "0.78 ± 0.13", "0.77 ± 0.09"),
    "LR (GCS)": ("0.70 ± 0.09", "0.62 ± 0.13", "0.65 ± 0.10", "0.77 ± 0.15", "0.53 ± 0.13",
                 "0.79 ± 0.12", "0.5 ± 0.2", "0.6 ± 0.2"),
    "LR (GCS & age)": ("0.80 ± 0.07", "0.73 ± 0.05", "0.74 ± 0.04", "0.79 ± 0.10", "0.63 ± 0.08",
                       "0.85 ± 0.06", "0.70 ± 0.11", "0.76 ± 0.06"),
    "DTC (GCS & age)": ("0.74 ± 0.06", "0.71 ± 0.06", "0.69 ± 0.06", "0.60 ± 0.11",
                        "0.63 ± 0.12", "0.76 ± 0.04", "0.77 ± 0.11", "0.76 ± 0.06"),
    "RF (GCS & age)": ("0.79 ± 0.05", "0.73 ± 0.06", "0.72 ± 0.07", "0.71 ± 0.12", "0.63 ± 0.10",
                       "0.81 ± 0.06", "0.74 ± 0.09", "0.77 ± 0.06"),
}

# Table 2: the test fold labelled by four neuroradiologists; bootstrap 95 % CIs (models) and
# mean ± SD (readers). The paper gives no AUC here.
_TABLE2: dict[str, tuple[str, ...]] = {
    "Baseline [Perez 2023]": ("0.48 (0.38-0.57)", "0.57 (0.50-0.63)", "0.90 (0.80-0.98)",
                              "0.41 (0.30-0.52)", "0.79 (0.60-0.95)", "0.23 (0.13-0.34)",
                              "0.36 (0.22-0.49)"),
    "Baseline DenseNet121": ("0.63 (0.53-0.73)", "0.52 (0.47-0.58)", "0.10 (0.02-0.21)",
                             "0.50 (0.11-0.88)", "0.64 (0.54-0.74)", "0.94 (0.88-0.99)",
                             "0.76 (0.68-0.83)"),
    "MT (bin GCS, bin age)": ("0.70 (0.61-0.79)", "0.60 (0.54-0.67)", "0.20 (0.08-0.33)",
                              "1.00 (1.00-1.00)", "0.68 (0.58-0.77)", "1.00 (1.00-1.00)",
                              "0.81 (0.73-0.87)"),
    "MT (ord GCS, bin age)": ("0.66 (0.57-0.75)", "0.67 (0.58-0.76)", "0.70 (0.53-0.84)",
                              "0.54 (0.40-0.67)", "0.79 (0.67-0.89)", "0.64 (0.53-0.75)",
                              "0.71 (0.62-0.79)"),
    "Neuroradiologists": ("0.60 ± 0.06", "0.64 ± 0.05", "0.80 ± 0.08", "0.48 ± 0.05",
                          "0.81 ± 0.06", "0.49 ± 0.12", "0.60 ± 0.10"),
}

# Supplementary Table 3: single-task image baselines, 10-fold CV, mean ± SD.
_TABLE3: dict[str, tuple[str, ...]] = {
    "Prognosis [Perez 2023]": ("0.62 ± 0.09", "0.57 ± 0.12", "0.57 ± 0.09", "0.56 ± 0.19",
                               "0.50 ± 0.19", "0.68 ± 0.09", "0.6 ± 0.3", "0.60 ± 0.16"),
    "Prognosis DenseNet121": ("0.69 ± 0.07", "0.61 ± 0.11", "0.59 ± 0.10", "0.5 ± 0.3",
                              "0.51 ± 0.12", "0.69 ± 0.09", "0.7 ± 0.3", "0.6 ± 0.2"),
    "Binary GCS": ("0.71 ± 0.15", "0.68 ± 0.08", "0.66 ± 0.13", "0.71 ± 0.10", "0.86 ± 0.09",
                   "0.38 ± 0.15", "0.6 ± 0.2", "0.45 ± 0.16"),
    "Binary age": ("0.70 ± 0.13", "0.61 ± 0.15", "0.64 ± 0.11", "0.6 ± 0.2", "0.86 ± 0.09",
                   "0.42 ± 0.14", "0.7 ± 0.3", "0.50 ± 0.17"),
}

# Supplementary Table 4: single-task image baseline on three-class ordinal GCS, mean ± SD.
_TABLE4: dict[str, tuple[str, ...]] = {
    "Ordinal GCS": ("0.49 ± 0.11", "0.44 ± 0.10", "0.65 ± 0.13", "0.98 ± 0.06", "0.69 ± 0.08",
                    "0.19 ± 0.18"),
}

#: The paper's tables: ``name -> (caption, metric keys of the rows, {column: cells})``.
PAPER_TABLES: dict[str, tuple[str, tuple[str, ...], dict[str, tuple[str, ...]]]] = {
    "table1": ("Table 1: tabular models, 10-fold CV (mean ± SD)", BINARY_METRICS, _TABLE1),
    "table2": ("Table 2: test fold 1 with bootstrap 95 % CIs, and four neuroradiologists",
               BINARY_METRICS[1:], _TABLE2),
    "table3": ("Supplementary Table 3: single-task image baselines, 10-fold CV (mean ± SD)",
               BINARY_METRICS, _TABLE3),
    "table4": ("Supplementary Table 4: ordinal GCS image baseline, 10-fold CV (mean ± SD)",
               ORDINAL_METRICS, _TABLE4),
}
