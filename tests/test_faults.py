"""Fault injection: processes killed with SIGKILL while they train or write a report, damaged
checkpoints, and two commands writing into one run folder.

The guarantees tested here are listed in docs/reliability.md: a rerun after a kill equals an
uninterrupted run, an output is always either the previous complete file or the new one, and a
run folder has one writer at a time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ichprog._util import FolderLock, write_csv, write_text
from ichprog.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main

TESTS = Path(__file__).parent
SRC = TESTS.parent / "src"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(TESTS), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"
    return env


def _spawn(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for(predicate, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the child ended early: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError("timed out waiting for the child")
        time.sleep(0.02)


def _kill9(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


# -- training -------------------------------------------------------------------------------------
def _train_child(out: str) -> None:
    """Train in a forked process (the parent's imports are inherited: no start-up cost)."""
    import torch

    from ichprog.training import train
    from test_training import cfg, make_dataset, make_model

    torch.set_num_threads(1)
    ds, val = make_dataset(10), make_dataset(6, seed=3, prefix="v")
    train(make_model(), ds, val, cfg(max_epochs=3, patience=None), out_dir=out)


def _straight_and_resumed(out: Path):
    import torch

    from ichprog.training import train
    from test_training import cfg, make_dataset, make_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ds, val = make_dataset(10), make_dataset(6, seed=3, prefix="v")
        config = cfg(max_epochs=3, patience=None)
        straight = train(make_model(), ds, val, config)
        resumed = train(make_model(), ds, val, config, out_dir=out)
    finally:
        torch.set_num_threads(threads)
    return straight, resumed


@pytest.mark.slow
def test_training_killed_with_sigkill_then_rerun_equals_uninterrupted(tmp_path: Path) -> None:
    import multiprocessing as mp

    import ichprog.training  # noqa: F401  (imported once, inherited by the child)
    from test_training import state_equal

    out = tmp_path / "run"
    proc = mp.get_context("fork").Process(target=_train_child, args=(str(out),))
    proc.start()

    def after_first_epoch() -> bool:
        try:
            return json.loads((out / "checkpoint.json").read_text())["epoch"] >= 1
        except (OSError, ValueError, KeyError):
            return False

    t0 = time.monotonic()
    while not after_first_epoch():
        assert proc.is_alive() and time.monotonic() - t0 < 120, "the training child stopped"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # in epoch 2, possibly while a checkpoint is written
    proc.join(timeout=30)
    assert proc.exitcode == -signal.SIGKILL
    straight, resumed = _straight_and_resumed(out)
    assert resumed.resumed_from is not None and resumed.resumed_from >= 1
    assert state_equal(resumed.model, straight.model)
    cols = [c for c in straight.history if c != "seconds"]
    pd.testing.assert_frame_equal(resumed.history[cols], straight.history[cols])


@pytest.mark.slow
def test_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    from ichprog.training import CheckpointWarning, read_sidecar, train
    from test_training import _Killer, cfg, make_dataset, make_model, state_equal

    ds, val = make_dataset(10), make_dataset(6, seed=3, prefix="v")
    config = cfg(max_epochs=3, patience=None)
    straight = train(make_model(), ds, val, config)
    with pytest.raises(KeyboardInterrupt):  # stopped in epoch 3: epochs 1 and 2 are on disk
        train(make_model(), _Killer(ds, limit=24), val, config, out_dir=tmp_path)
    assert read_sidecar(tmp_path)["epoch"] == 2
    assert read_sidecar(tmp_path, previous=True)["epoch"] == 1
    weights = tmp_path / "weights-e0002.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a truncated last checkpoint
    with pytest.warns(CheckpointWarning, match="weights-e0002.safetensors"):
        resumed = train(make_model(), ds, val, config, out_dir=tmp_path)
    assert resumed.resumed_from == 1
    assert state_equal(resumed.model, straight.model)


# -- cache filling ----------------------------------------------------------------------------------
def _fill_cache(root: str, paths: list[str]) -> None:
    from ichprog.data import PreprocessConfig, VolumeCache

    cache = VolumeCache(root, PreprocessConfig(shape=(8, 16, 16)))
    while True:  # refill for ever: the kill lands at any point of a write
        cache.clear()
        cache.warm(paths, progress=False)


def test_cache_filling_killed_then_rerun_equals_direct_computation(tmp_path: Path) -> None:
    import multiprocessing as mp

    from conftest import HEAD_AFFINE, head_ct
    from ichprog._util import verify_checksum
    from ichprog.data import PreprocessConfig, VolumeCache, save_volume
    from ichprog.data.cache import load_preprocessed

    paths = []
    for i in range(6):
        p = tmp_path / f"s{i}.nii.gz"
        save_volume(head_ct(seed=i), HEAD_AFFINE, p)
        paths.append(str(p))
    root = tmp_path / "cache"
    config = PreprocessConfig(shape=(8, 16, 16))
    folder = root / config.key()
    expected = [load_preprocessed(p, config) for p in paths]  # (imports torch before the fork)
    rng = np.random.default_rng(2)
    for _ in range(2):
        proc = mp.get_context("fork").Process(target=_fill_cache, args=(str(root), paths))
        proc.start()
        t0 = time.monotonic()
        while not (folder.is_dir() and any(folder.glob("*.npy"))):
            assert proc.is_alive() and time.monotonic() - t0 < 60
            time.sleep(0.005)
        time.sleep(float(rng.uniform(0.0, 0.2)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(timeout=30)
        for entry in folder.glob("*.npy"):  # whatever is there is complete and verifies
            verify_checksum(entry)
    cache = VolumeCache(root, config)
    cache.warm(paths, progress=False)
    for p, want in zip(paths, expected):
        np.testing.assert_array_equal(cache.get(p), want)


# -- report writing -------------------------------------------------------------------------------
def _run_folder(root: Path) -> Path:
    run = root / "run"
    rng = np.random.default_rng(0)
    rows = [{"model": m, "fold": f, "task": "prognosis", "metric": k, "value": float(rng.random())}
            for m in ("mt_ord_gcs_bin_age", "baseline_densenet") for f in range(3)
            for k in ("auc", "balanced_accuracy")]
    write_csv(pd.DataFrame(rows), run / "cv" / "metrics.csv", checksum=True)
    write_text(run / "run.json", json.dumps({"title": "faults", "phantom": True}), checksum=True)
    return run


def test_report_killed_while_writing_keeps_a_complete_report(tmp_path: Path) -> None:
    from ichprog.report import build_report

    run = _run_folder(tmp_path)
    build_report(run)
    reference = {n: (run / n).read_bytes() for n in ("report.html", "report.md")}
    assert all(reference.values())
    code = f"""
        from ichprog.report import build_report
        while True:
            build_report({str(run)!r})
    """
    rng = np.random.default_rng(1)
    for _ in range(3):
        proc = _spawn(code)
        stamp = (run / "report.html").stat().st_mtime_ns
        _wait_for(lambda s=stamp: (run / "report.html").stat().st_mtime_ns != s, proc)
        time.sleep(float(rng.uniform(0.0, 0.3)))
        _kill9(proc)
        for name, data in reference.items():  # the old or the new report, never a partial one
            assert (run / name).read_bytes() == data, name
    build_report(run)  # a rerun writes the same report and leaves no temporary file visible
    assert (run / "report.html").read_bytes() == reference["report.html"]


def test_full_disk_while_writing_keeps_the_previous_report(tmp_path: Path, monkeypatch) -> None:
    import errno

    from ichprog.report import build_report

    run = _run_folder(tmp_path)
    build_report(run)
    before = (run / "report.html").read_bytes()
    real = Path.write_text

    def disk_full(self: Path, data: str, *args, **kwargs):  # half of the bytes, then ENOSPC
        real(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", disk_full)
    with pytest.raises(OSError, match="No space left"):
        build_report(run)
    monkeypatch.undo()
    assert (run / "report.html").read_bytes() == before
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


# -- run folders ----------------------------------------------------------------------------------
_PHANTOM = ["phantom", "--n-patients", "12", "--no-progress", "-q",
            "--set", "data.phantom_shape=[8,24,24]"]


def test_second_writer_is_refused_and_the_folder_is_untouched(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main([*_PHANTOM, "--out", str(out)]) == EXIT_OK
    before = {n: (out / n).read_bytes() for n in ("config.toml", "run.json")}
    with FolderLock(out, "run folder"):  # another command is writing here
        code = subprocess.run([sys.executable, "-m", "ichprog", *_PHANTOM, "--out", str(out),
                               "--seed", "5"], env=_env(), capture_output=True, text=True)
    assert code.returncode == EXIT_FAILURE
    assert f"run folder {out} is in use by process {os.getpid()}" in code.stderr
    assert {n: (out / n).read_bytes() for n in before} == before
    assert not (out / ".lock").exists()  # released by its owner


def test_two_concurrent_commands_one_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    procs = [subprocess.Popen([sys.executable, "-m", "ichprog", *_PHANTOM, "--out", str(out),
                               "--seed", str(s)], env=_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for s in (1, 2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(r for r, _ in results)
    # either both ran one after the other, or the second was refused with a clear message
    assert codes in ([EXIT_OK, EXIT_OK], [EXIT_OK, EXIT_FAILURE])
    if codes[1] == EXIT_FAILURE:
        assert any("is in use by process" in err for _, err in results)
        winner = next(s for (r, _), s in zip(results, (1, 2)) if r == EXIT_OK)
        # the records describe the command that ran, not the one refused
        assert f"seed = {winner}" in (out / "config.toml").read_text()
    assert not (out / ".lock").exists()


def test_stale_lock_of_a_killed_command_is_taken_over(tmp_path: Path) -> None:
    out = tmp_path / "run"
    holder = _spawn(f"""
        import time
        from ichprog._util import FolderLock
        FolderLock({str(out)!r}).acquire()
        time.sleep(600)
    """)
    _wait_for(lambda: (out / ".lock").is_file() and (out / ".lock").stat().st_size > 0, holder)
    _kill9(holder)
    assert (out / ".lock").is_file()  # left behind by the killed process
    assert main([*_PHANTOM, "--out", str(out)]) == EXIT_OK
    assert not (out / ".lock").exists()


def test_failed_command_leaves_the_records_of_the_last_run(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main([*_PHANTOM, "--out", str(out)]) == EXIT_OK
    before = {n: (out / n).read_bytes() for n in ("config.toml", "run.json")}
    bad = tmp_path / "clinical.csv"
    bad.write_text("", encoding="utf-8")
    # a runtime failure on the inputs (an empty table) ...
    assert main(["tabular", "--out", str(out), "--table", str(bad), "-q"]) == EXIT_FAILURE
    assert "clinical.csv" in capsys.readouterr().err
    # ... and usage errors (a missing image folder, a fold out of range)
    pd.DataFrame({"PatientID": ["001"]}).to_csv(bad, index=False)
    assert main(["tabular", "--out", str(out), "--table", str(bad), "--image-dir",
                 str(tmp_path / "no-such-folder"), "-q"]) == EXIT_USAGE
    assert "--image-dir" in capsys.readouterr().err
    assert main(["cv", "--out", str(out), "--folds", "3", "--set", "cv.bootstrap_fold=3",
                 "-q"]) == EXIT_USAGE
    assert "bootstrap_fold" in capsys.readouterr().err
    assert {n: (out / n).read_bytes() for n in before} == before


def test_table_without_source_is_refused_on_the_command_line(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text('[data]\ntable = "clinical.csv"\n', encoding="utf-8")
    assert main(["phantom", "--out", str(tmp_path / "run"), "--config", str(cfg)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "[data] table" in err and "source" in err
    assert not (tmp_path / "run" / "phantom").exists()


def test_edited_table_removes_the_results_of_the_old_one(tmp_path: Path, capsys) -> None:
    from ichprog.cli import default_config
    from ichprog.cli.run import _Run
    from ichprog.cli.stages import _check_table_unchanged

    table = tmp_path / "clinical.csv"
    table.write_text("PatientID,GCS\n001,15\n", encoding="utf-8")
    out = tmp_path / "run"
    run = _Run(out, default_config(), "ichprog cv")
    _check_table_unchanged(run, table)
    run.commit()
    (out / "cv").mkdir()
    (out / "cv" / "metrics.csv").write_text("x\n", encoding="utf-8")
    # the same table: the results stay
    run = _Run(out, default_config(), "ichprog cv")
    _check_table_unchanged(run, table)
    assert (out / "cv").is_dir()
    # an edited table: the results computed on the old one are removed, loudly
    table.write_text("PatientID,GCS\n001,14\n", encoding="utf-8")
    run = _Run(out, default_config(), "ichprog cv")
    _check_table_unchanged(run, table)
    assert not (out / "cv").exists()
    assert "clinical.csv changed" in capsys.readouterr().err
