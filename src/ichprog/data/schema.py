"""The columns of the clinical table (``CLINICAL_DATA_ICH.csv``).

261 rows x 44 columns in the public dataset. ``Tº`` (temperature) is the one non-ASCII name. The
names are defined in :mod:`ichprog.constants` (with the cut-offs and class names of the paper)
and re-exported here.
"""

from __future__ import annotations

from ichprog.constants import (
    AGE_COLUMN,
    BINARY_COLUMNS,
    COLUMNS,
    GCS_COLUMN,
    ID_COLUMN,
    LABEL_COLUMN,
    NUMERIC_COLUMNS,
    TEMPERATURE_COLUMN,
)

__all__ = ["ID_COLUMN", "LABEL_COLUMN", "BINARY_COLUMNS", "NUMERIC_COLUMNS", "COLUMNS",
           "GCS_COLUMN", "AGE_COLUMN", "TEMPERATURE_COLUMN"]
