"""Shared test fixtures: a private volume cache, a synthetic head CT and a tiny on-disk cohort."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_volume_cache(tmp_path_factory: pytest.TempPathFactory):
    """Point the default volume cache ($ICHPROG_CACHE) at a temporary folder for the session."""
    old = os.environ.get("ICHPROG_CACHE")
    os.environ["ICHPROG_CACHE"] = str(tmp_path_factory.mktemp("ichprog-cache"))
    yield
    if old is None:
        os.environ.pop("ICHPROG_CACHE", None)
    else:
        os.environ["ICHPROG_CACHE"] = old


#: Voxel-to-world matrix of :func:`head_ct` volumes: 7 x 7 mm in plane (a 224 mm field of view at
#: 32 voxels, like a real head CT) and 4 mm slices, so that they pass the plausibility checks.
HEAD_AFFINE = np.diag([7.0, 7.0, 4.0, 1.0])


def head_ct(shape: tuple[int, int, int] = (32, 32, 8), seed: int = 0,
            bleed: bool = True) -> np.ndarray:
    """A synthetic axial head CT in Hounsfield units, int16, voxel order (x, y, z).

    Air (-1000) around a scalp ring (40 HU), a skull ring (900 HU), brain (30 HU +/- noise),
    a ventricle (5 HU) and optionally a hematoma (70 HU).
    """
    nx, ny, nz = shape
    rng = np.random.default_rng(seed)
    x, y, _ = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
    r = np.hypot((x - (nx - 1) / 2) / (nx / 2), (y - (ny - 1) / 2) / (ny / 2))
    vol = np.full(shape, -1000.0)
    vol[r < 0.95] = 40.0
    vol[r < 0.88] = 900.0
    vol[r < 0.78] = 30.0 + rng.normal(0, 3, size=shape)[r < 0.78]
    vol[r < 0.12] = 5.0
    if bleed:
        blob = np.hypot(x - 0.62 * nx, y - ny / 2) < max(2.0, nx / 10)
        vol[blob & (r < 0.7)] = 70.0
    return np.round(vol).astype(np.int16)


def clinical_table(n: int = 12, seed: int = 0) -> pd.DataFrame:
    """A small clinical table with the target columns (PatientID as zero-padded strings,
    alternating labels so both classes are present)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "PatientID": [f"{i:03d}" for i in range(n)],
        "Label (poor_prognosis)": [i % 2 for i in range(n)],
        "Gender": rng.integers(0, 2, n),
        "Age": rng.integers(40, 95, n),
        "T\u00ba": np.round(rng.normal(36.8, 0.4, n), 1),
        "GCS": rng.integers(3, 16, n),
    })


@pytest.fixture
def cohort_dir(tmp_path: Path) -> Path:
    """A 12-patient cohort in the public layout: ``clinical.csv``, ``GOOD_PROGNOSIS/`` and
    ``POOR_PROGNOSIS/`` with ``<ID>_brain.nii.gz`` files of shape (32, 32, 8)."""
    from ichprog.data.nifti import save_volume

    table = clinical_table()
    table.to_csv(tmp_path / "clinical.csv", index=False)
    affine = HEAD_AFFINE
    for i, (pid, lab) in enumerate(zip(table["PatientID"], table["Label (poor_prognosis)"])):
        folder = tmp_path / ("POOR_PROGNOSIS" if lab else "GOOD_PROGNOSIS")
        save_volume(head_ct(seed=i), affine, folder / f"{pid}_brain.nii.gz")
    return tmp_path
