"""Executors of the experiments: the serial default, and Ray tasks on a local two-CPU cluster that
give the serial results, survive a killed worker and reuse finished folds."""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ichprog._extras import MissingExtraError
from ichprog.data import PreprocessConfig, make_phantom_cohort
from ichprog.experiment import (
    Executor,
    RayExecutor,
    SerialExecutor,
    ablation,
    as_executor,
    cross_validate,
)
from ichprog.tasks import AGE_BINARY, PROGNOSIS
from ichprog.training import TrainConfig

pytestmark = pytest.mark.filterwarnings("ignore::ichprog.metrics.UndefinedMetricWarning")

TASKS = [PROGNOSIS, AGE_BINARY]  # two ablation configurations: both tasks, prognosis alone
SMALL = {"trunk": "densenet_tiny", "preprocess": PreprocessConfig(shape=(32, 48, 48),
                                                                  skull_strip=False),
         "config": TrainConfig(max_epochs=2, batch_size=4, progress=False),
         "model_kwargs": {"trunk_kwargs": {"block_config": (1, 1, 1, 1)}}, "progress": False,
         "val_fraction": 0.25}


# -- without a cluster ------------------------------------------------------------------------
def test_as_executor_names_and_errors():
    assert isinstance(as_executor(None), SerialExecutor)
    assert isinstance(as_executor("serial"), SerialExecutor)
    assert isinstance(as_executor(" Ray "), RayExecutor)
    ex = RayExecutor(num_cpus=2, num_gpus=0.25)
    assert as_executor(ex) is ex
    with pytest.raises(ValueError, match=r"unknown executor 'dask'.*\['serial', 'ray'\]"):
        as_executor("dask")
    with pytest.raises(TypeError, match="got int"):
        as_executor(3)  # type: ignore[arg-type]


def test_ray_executor_resources():
    ex = RayExecutor(num_cpus=2.5, num_gpus=0.5, max_retries=0)
    assert (ex.num_cpus, ex.num_gpus, ex.max_retries, ex.threads) == (2.5, 0.5, 0, 2)
    assert RayExecutor(num_cpus=0.5).threads == 1
    assert RayExecutor(threads=3).threads == 3
    for bad, match in (({"num_cpus": -1}, "num_cpus"), ({"num_gpus": 1.5}, "whole number"),
                       ({"max_retries": -2}, "max_retries"), ({"threads": 0}, "threads")):
        with pytest.raises(ValueError, match=match):
            RayExecutor(**bad)


def test_serial_executor_keeps_the_order():
    assert SerialExecutor().map(abs, [-3, 2, -1]) == [3, 2, 1]
    assert SerialExecutor.in_process and not RayExecutor.in_process


def test_ray_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # the standard way to block an import
    with pytest.raises(MissingExtraError, match=r"pip install 'ichprog\[ray\]'") as err:
        cross_validate(None, TASKS, executor="ray")
    assert err.value.extra == "ray"


def test_unknown_executor_raises_before_anything_runs():
    with pytest.raises(ValueError, match="unknown executor 'threads'"):
        cross_validate(None, TASKS, folds=2, executor="threads", **SMALL)
    with pytest.raises(TypeError, match="executor must be"):
        ablation(None, TASKS, folds=2, executor=object(), **SMALL)


# -- a local Ray cluster ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    # the functions of this module travel to the workers by value (tests/ is not importable)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    return make_phantom_cohort(16, seed=0, out_dir=out, shape=(16, 64, 64), progress=False)


@pytest.fixture(scope="module")
def one_thread():
    """Serial runs with one PyTorch thread, as every Ray task of these tests has."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def serial_ablation(cohort, one_thread, tmp_path_factory):
    return ablation(cohort, TASKS, folds=2, seed=3, out_dir=tmp_path_factory.mktemp("serial"),
                    **SMALL)


def test_ray_map_runs_module_functions_in_order(ray_cluster):
    assert RayExecutor().map(abs, [-3, 2, -1]) == [3, 2, 1]
    assert RayExecutor().map(abs, []) == []


def test_a_failing_task_raises_its_error_without_retries(ray_cluster):
    with pytest.raises(ValueError, match="math domain error"):
        RayExecutor(max_retries=2).map(_sqrt, [4.0, -1.0])


def _sqrt(x: float) -> float:
    import math

    return math.sqrt(x)


@pytest.mark.slow
def test_ray_ablation_equals_serial(ray_cluster, cohort, serial_ablation, tmp_path):
    res = ablation(cohort, TASKS, folds=2, seed=3, out_dir=tmp_path,
                   executor=RayExecutor(num_cpus=1), **SMALL)
    assert list(res.results) == list(serial_ablation.results) and len(res.results) == 2
    for cname, ser in serial_ablation.results.items():
        got = res.results[cname]
        assert got.reused_folds == [] and got.folds == [0, 1]
        _assert_same_predictions(got.predictions, ser.predictions)
        for fold in (0, 1):  # each task wrote its fold into the fold store
            meta = json.loads((tmp_path / cname / f"fold_{fold:02d}" / "fold.json").read_text())
            assert meta["status"] == "done" and meta["resumed_from"] is None
    pd.testing.assert_frame_equal(res.metrics, serial_ablation.metrics)


def _assert_same_predictions(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    """Same patients in the same order, same classes, probabilities within 1e-6."""
    assert list(got.columns) == list(ref.columns)
    probs = [c for c in ref.columns if "_prob" in c]
    assert probs
    others = [c for c in ref.columns if c not in probs]
    pd.testing.assert_frame_equal(got[others], ref[others])
    np.testing.assert_allclose(got[probs].to_numpy(), ref[probs].to_numpy(), rtol=0, atol=1e-6)


# -- a worker killed in the middle of a fold --------------------------------------------------
def _kill_after_first_checkpoint(sidecar: Path, marker: Path, stop: threading.Event) -> None:
    """Wait for the fold's first epoch checkpoint, then kill this worker process (SIGKILL)."""
    while not stop.is_set():
        try:
            epoch = int(json.loads(sidecar.read_text())["epoch"])
        except (OSError, ValueError, KeyError):
            epoch = 0
        if epoch >= 1:
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.002)


def _run_killed_once(fn, marker: Path, job):
    """Run a fold job; the first time fold 0 runs, its worker dies after the first epoch."""
    stop = threading.Event()
    if job.fold.index == 0 and not marker.exists():
        threading.Thread(target=_kill_after_first_checkpoint, daemon=True,
                         args=(job.folder / "checkpoints" / "checkpoint.json", marker,
                               stop)).start()
    try:
        return fn(job)
    finally:
        stop.set()


class _KilledOnce(RayExecutor):
    def __init__(self, marker: Path, **kwargs):
        super().__init__(**kwargs)
        self.marker = marker

    def map(self, fn, jobs, **kwargs):
        return super().map(functools.partial(_run_killed_once, fn, self.marker), jobs, **kwargs)


@pytest.mark.slow
def test_killed_worker_is_retried_and_resumes_from_its_checkpoint(ray_cluster, cohort,
                                                                   serial_ablation, tmp_path):
    marker = tmp_path / "killed"
    out = tmp_path / "cv"
    res = cross_validate(cohort, TASKS, folds=2, seed=3, out_dir=out,
                         executor=_KilledOnce(marker, max_retries=1), **SMALL)
    assert marker.is_file(), "the worker was not killed"
    meta = json.loads((out / "fold_00" / "fold.json").read_text())
    assert meta["status"] == "done" and meta["resumed_from"] == 1  # resumed after epoch 1
    assert json.loads((out / "fold_01" / "fold.json").read_text())["resumed_from"] is None
    ref = serial_ablation.results["prognosis+age"]
    _assert_same_predictions(res.predictions, ref.predictions)
    assert res.history["epoch"].tolist() == [1, 2, 1, 2]

    # the driver started again: every fold is read back, no task is submitted
    again = cross_validate(cohort, TASKS, folds=2, seed=3, out_dir=out,
                           executor=_NoJobs(), **SMALL)
    assert again.reused_folds == [0, 1]
    pd.testing.assert_frame_equal(again.predictions, res.predictions)


class _NoJobs(Executor):
    def map(self, fn, jobs, **kwargs):
        assert list(jobs) == [], "a finished fold was submitted again"
        return []


@pytest.mark.slow
def test_restarted_driver_trains_only_the_missing_folds(ray_cluster, cohort, serial_ablation,
                                                        tmp_path):
    first = cross_validate(cohort, TASKS, folds=2, seed=3, out_dir=tmp_path, only_folds=[1],
                           executor="ray", **SMALL)
    assert first.folds == [1]
    both = cross_validate(cohort, TASKS, folds=2, seed=3, out_dir=tmp_path, executor="ray",
                          **SMALL)
    assert both.reused_folds == [1] and both.folds == [0, 1]
    _assert_same_predictions(both.predictions,
                             serial_ablation.results["prognosis+age"].predictions)


@pytest.mark.slow
def test_cli_cv_runs_its_folds_on_ray(ray_cluster, tmp_path):
    from ichprog.cli import EXIT_OK, main

    out = tmp_path / "run"
    assert main(["cv", "--out", str(out), "--no-progress", "--quiet", "--n-patients", "16",
                 "--set", "data.phantom_shape=[16,40,40]", "--shape", "32", "32", "32",
                 "--trunk", "densenet_tiny", "--epochs", "1", "--folds", "2",
                 "--set", "cv.val_fraction=0.25", "--set", "cv.bootstrap=0",
                 "--preset", "baseline_densenet", "--executor", "ray"]) == EXIT_OK
    for fold in (0, 1):
        meta = json.loads((out / "cv" / "baseline_densenet" / f"fold_{fold:02d}" /
                           "fold.json").read_text())
        assert meta["status"] == "done" and meta["n_test"] == 8
    preds = pd.read_csv(out / "cv" / "predictions.csv")
    assert preds["PatientID"].nunique() == 16
