"""The notebooks of docs/notebooks: each runs top to bottom twice in one kernel, at the small
size CI uses (``ICHPROG_EXAMPLE_SMALL=1``), without an error.

The second pass is what a user who runs every cell again gets: the cohort on disk is reused,
a model saved in its folder is read back, nothing raises ``FileExistsError``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "docs" / "notebooks").glob("*.py"))


def run_notebook(path: Path, out: Path, passes: int = 2, timeout: int = 600) -> list[float]:
    """Execute every cell of a jupytext notebook ``passes`` times in one kernel; returns the
    seconds of each pass. Raises ``nbclient.exceptions.CellExecutionError`` on an error."""
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = jupytext.read(path)
    env = {**os.environ, "ICHPROG_EXAMPLE_SMALL": "1", "ICHPROG_EXAMPLE_OUT": str(out),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(out)}})
    seconds = []
    with client.setup_kernel(env=env):
        for _ in range(passes):
            t0 = time.perf_counter()
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
            seconds.append(time.perf_counter() - t0)
    return seconds


def test_there_are_notebooks():
    names = {p.stem for p in NOTEBOOKS}
    assert {"quickstart", "paper_table1", "reuse_metrics", "own_data"} <= names
    for path in NOTEBOOKS:  # each states its runtime on 2 CPU cores
        assert "Runtime on 2 CPU cores" in path.read_text(encoding="utf-8"), path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_twice_in_one_kernel(path, tmp_path):
    seconds = run_notebook(path, tmp_path)
    assert len(seconds) == 2
    print(f"{path.name}: {seconds[0]:.0f} s, then {seconds[1]:.0f} s", file=sys.stderr)
