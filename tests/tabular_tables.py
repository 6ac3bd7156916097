"""Synthetic clinical tables for the tabular tests: all 44 columns, random noise everywhere but in
GCS and age, which drive the label through a logistic model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ichprog.data.schema import BINARY_COLUMNS, COLUMNS, LABEL_COLUMN, NUMERIC_COLUMNS


def random_clinical_table(n: int, seed: int = 0, *, gcs_slope: float = -0.35,
                          age_slope: float = 0.08, age_centre: float = 70,
                          ids: str = "P{i:03d}") -> pd.DataFrame:
    """A random table whose label follows ``logit = gcs_slope (GCS - 9) + age_slope (Age - age_centre)``.

    ``ids`` formats the patient IDs of the index from ``i = 0..n-1``; ``ids="column"`` instead
    keeps integer IDs ``1..n`` as a ``PatientID`` column (the layout of the public CSV).
    """
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    for col in BINARY_COLUMNS:
        data[col] = rng.integers(0, 2, n)
    for col in NUMERIC_COLUMNS:
        data[col] = rng.normal(100, 20, n)
    data["Age"] = rng.integers(30, 96, n).astype(float)
    data["GCS"] = rng.integers(3, 16, n)
    logit = gcs_slope * (data["GCS"] - 9) + age_slope * (data["Age"] - age_centre)
    data[LABEL_COLUMN] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    if ids == "column":
        data["PatientID"] = np.arange(1, n + 1)
        return pd.DataFrame(data)[list(COLUMNS)]
    index = pd.Index([ids.format(i=i) for i in range(n)], name="PatientID")
    return pd.DataFrame(data, index=index)[[c for c in COLUMNS if c != "PatientID"]]
