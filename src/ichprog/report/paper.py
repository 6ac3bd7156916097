"""Published numbers of Cobo et al. (2024), for side-by-side comparison in reports and docs.

Values are copied from the paper's tables as printed ("mean ± SD" over 10 folds, or a point
estimate with a bootstrap 95 % interval for its Table 2). They are strings on purpose: they are
shown, never computed with.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["METRIC_LABELS", "paper_table", "PAPER_TABLES"]

#: Display names of the metric keys of :mod:`ichprog.metrics`, in the paper's row order.
METRIC_LABELS: dict[str, str] = {
    "auc": "AUC",
    "accuracy": "Acc.",
    "balanced_accuracy": "B. Acc.",
    "specificity": "Spec.",
    "npv": "NPV",
    "precision": "Prec.",
    "recall": "Recall",
    "f1": "F1-sc.",
    "mae": "MAE",
    "rmse": "RMSE",
    "uoc": "A_UOC index",
    "qwk": "Cohen kappa (quadratic)",
}

_BINARY_ROWS = ["auc", "accuracy", "balanced_accuracy", "specificity", "npv", "precision",
                "recall", "f1"]

# Table 1: tabular models, 10-fold CV, mean ± SD.
_TABLE1 = {
    "DNN (all)": ["0.79 ± 0.06", "0.72 ± 0.05", "0.70 ± 0.04", "0.66 ± 0.12", "0.65 ± 0.12",
                  "0.79 ± 0.05", "0.75 ± 0.14", "0.76 ± 0.06"],
    "RF (all)": ["0.78 ± 0.07", "0.72 ± 0.09", "0.71 ± 0.09", "0.64 ± 0.12", "0.66 ± 0.13",
                 "0.78 ± 0.07", "0.78 ± 0.13", "0.77 ± 0.09"],
    "LR (GCS)": ["0.70 ± 0.09", "0.62 ± 0.13", "0.65 ± 0.10", "0.77 ± 0.15", "0.53 ± 0.13",
                 "0.79 ± 0.12", "0.5 ± 0.2", "0.6 ± 0.2"],
    "LR (GCS & age)": ["0.80 ± 0.07", "0.73 ± 0.05", "0.74 ± 0.04", "0.79 ± 0.10", "0.63 ± 0.08",
                       "0.85 ± 0.06", "0.70 ± 0.11", "0.76 ± 0.06"],
    "DTC (GCS & age)": ["0.74 ± 0.06", "0.71 ± 0.06", "0.69 ± 0.06", "0.60 ± 0.11",
                        "0.63 ± 0.12", "0.76 ± 0.04", "0.77 ± 0.11", "0.76 ± 0.06"],
    "RF (GCS & age)": ["0.79 ± 0.05", "0.73 ± 0.06", "0.72 ± 0.07", "0.71 ± 0.12", "0.63 ± 0.10",
                       "0.81 ± 0.06", "0.74 ± 0.09", "0.77 ± 0.06"],
}

# Table 2: the test fold labelled by four neuroradiologists; bootstrap 95 % CIs (models) and
# mean ± SD (readers). The paper gives no AUC here.
_TABLE2 = {
    "Baseline [Perez 2023]": ["0.48 (0.38-0.57)", "0.57 (0.50-0.63)", "0.90 (0.80-0.98)",
                              "0.41 (0.30-0.52)", "0.79 (0.60-0.95)", "0.23 (0.13-0.34)",
                              "0.36 (0.22-0.49)"],
    "Baseline DenseNet121": ["0.63 (0.53-0.73)", "0.52 (0.47-0.58)", "0.10 (0.02-0.21)",
                             "0.50 (0.11-0.88)", "0.64 (0.54-0.74)", "0.94 (0.88-0.99)",
                             "0.76 (0.68-0.83)"],
    "MT (bin GCS, bin age)": ["0.70 (0.61-0.79)", "0.60 (0.54-0.67)", "0.20 (0.08-0.33)",
                              "1.00 (1.00-1.00)", "0.68 (0.58-0.77)", "1.00 (1.00-1.00)",
                              "0.81 (0.73-0.87)"],
    "MT (ord GCS, bin age)": ["0.66 (0.57-0.75)", "0.67 (0.58-0.76)", "0.70 (0.53-0.84)",
                              "0.54 (0.40-0.67)", "0.79 (0.67-0.89)", "0.64 (0.53-0.75)",
                              "0.71 (0.62-0.79)"],
    "Neuroradiologists": ["0.60 ± 0.06", "0.64 ± 0.05", "0.80 ± 0.08", "0.48 ± 0.05",
                          "0.81 ± 0.06", "0.49 ± 0.12", "0.60 ± 0.10"],
}

# Supplementary Table 3: single-task image baselines, 10-fold CV, mean ± SD.
_TABLE3 = {
    "Prognosis [Perez 2023]": ["0.62 ± 0.09", "0.57 ± 0.12", "0.57 ± 0.09", "0.56 ± 0.19",
                               "0.50 ± 0.19", "0.68 ± 0.09", "0.6 ± 0.3", "0.60 ± 0.16"],
    "Prognosis DenseNet121": ["0.69 ± 0.07", "0.61 ± 0.11", "0.59 ± 0.10", "0.5 ± 0.3",
                              "0.51 ± 0.12", "0.69 ± 0.09", "0.7 ± 0.3", "0.6 ± 0.2"],
    "Binary GCS": ["0.71 ± 0.15", "0.68 ± 0.08", "0.66 ± 0.13", "0.71 ± 0.10", "0.86 ± 0.09",
                   "0.38 ± 0.15", "0.6 ± 0.2", "0.45 ± 0.16"],
    "Binary age": ["0.70 ± 0.13", "0.61 ± 0.15", "0.64 ± 0.11", "0.6 ± 0.2", "0.86 ± 0.09",
                   "0.42 ± 0.14", "0.7 ± 0.3", "0.50 ± 0.17"],
}

# Supplementary Table 4: single-task image baseline on three-class ordinal GCS, mean ± SD.
_TABLE4 = {
    "Ordinal GCS": ["0.49 ± 0.11", "0.44 ± 0.10", "0.65 ± 0.13", "0.98 ± 0.06", "0.69 ± 0.08",
                    "0.19 ± 0.18"],
}
_ORDINAL_ROWS = ["accuracy", "balanced_accuracy", "mae", "rmse", "uoc", "qwk"]

PAPER_TABLES: dict[str, tuple[str, list[str], dict[str, list[str]]]] = {
    "table1": ("Table 1: tabular models, 10-fold CV (mean ± SD)", _BINARY_ROWS, _TABLE1),
    "table2": ("Table 2: test fold 1 with bootstrap 95 % CIs, and four neuroradiologists",
               _BINARY_ROWS[1:], _TABLE2),
    "table3": ("Supplementary Table 3: single-task image baselines, 10-fold CV (mean ± SD)",
               _BINARY_ROWS, _TABLE3),
    "table4": ("Supplementary Table 4: ordinal GCS image baseline, 10-fold CV (mean ± SD)",
               _ORDINAL_ROWS, _TABLE4),
}


def paper_table(name: str) -> pd.DataFrame:
    """One of the paper's published tables as a DataFrame (rows: metrics, columns: models).

    Parameters
    ----------
    name
        ``"table1"`` (tabular models), ``"table2"`` (test fold 1 with bootstrap CIs and the
        neuroradiologists), ``"table3"`` (single-task image baselines) or ``"table4"``
        (ordinal GCS baseline).

    Returns
    -------
    pandas.DataFrame
        String cells exactly as printed in the paper; the index holds the metric display names
        of :data:`METRIC_LABELS` and ``df.attrs["caption"]`` the table's caption.

    Examples
    --------
    >>> from ichprog.report import paper_table
    >>> paper_table("table1").loc["AUC", "LR (GCS & age)"]
    '0.80 ± 0.07'
    """
    try:
        caption, rows, columns = PAPER_TABLES[name]
    except KeyError:
        raise KeyError(f"unknown paper table {name!r}; known: {sorted(PAPER_TABLES)}") from None
    df = pd.DataFrame(columns, index=[METRIC_LABELS[r] for r in rows])
    df.index.name = "metric"
    df.attrs["caption"] = caption
    return df
