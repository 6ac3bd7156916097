"""Published numbers of Cobo et al. (2024), for side-by-side comparison in reports and docs.

Values are copied from the paper's tables as printed ("mean ± SD" over 10 folds, or a point
estimate with a bootstrap 95 % interval for its Table 2) and stored in :mod:`ichprog.constants`.
They are strings on purpose: they are shown, never computed with.
"""

from __future__ import annotations

import pandas as pd

from ichprog.constants import PAPER_TABLES as _PUBLISHED

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

#: The paper's tables: ``name -> (caption, metric keys of the rows, {column: cells})`` (from
#: :data:`ichprog.constants.PAPER_TABLES`).
PAPER_TABLES: dict[str, tuple[str, list[str], dict[str, list[str]]]] = {
    name: (caption, list(rows), {label: list(cells) for label, cells in columns.items()})
    for name, (caption, rows, columns) in _PUBLISHED.items()
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
