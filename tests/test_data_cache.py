"""The persistent volume cache: content keys, settings keys, atomic and concurrent writes."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import HEAD_AFFINE, head_ct
from ichprog.data import (
    ImplausibleScanError,
    PreprocessConfig,
    ScanChecks,
    VolumeCache,
    load_volume,
    preprocess_volume,
    save_volume,
)
from ichprog.data import cache as cache_module

CFG = PreprocessConfig(shape=(8, 16, 16))


@pytest.fixture
def scan(tmp_path: Path) -> Path:
    path = tmp_path / "scan.nii.gz"
    save_volume(head_ct((32, 32, 6)), HEAD_AFFINE, path)
    return path


def test_get_equals_direct_pipeline_and_is_stored(tmp_path: Path, scan: Path) -> None:
    cache = VolumeCache(tmp_path / "c", CFG)
    direct = preprocess_volume(*load_volume(scan), CFG)
    first = cache.get(scan)
    np.testing.assert_array_equal(first, direct)
    assert first.dtype == np.float32 and first.shape == CFG.shape
    entry = cache.path_for(scan)
    assert entry.parent == tmp_path / "c" / CFG.key()
    assert entry.stem == hashlib.sha256(scan.read_bytes()).hexdigest()
    assert (entry.parent / "config.json").is_file()
    second = cache.get(scan)
    np.testing.assert_array_equal(second, direct)
    assert (cache.misses, cache.hits) == (1, 1)
    # a fresh object (another process) reads the stored entry
    other = VolumeCache(tmp_path / "c", CFG)
    np.testing.assert_array_equal(other.get(scan), direct)
    assert (other.misses, other.hits) == (0, 1)


def test_keyed_by_content_and_settings(tmp_path: Path, scan: Path) -> None:
    cache = VolumeCache(tmp_path / "c", CFG)
    cache.get(scan)
    copy = tmp_path / "renamed.nii.gz"
    shutil.copy(scan, copy)
    cache.get(copy)
    assert cache.misses == 1  # same bytes, same entry
    save_volume(head_ct((32, 32, 6), seed=9), HEAD_AFFINE, scan)  # edit the file in place
    cache.get(scan)
    assert cache.misses == 2
    other = VolumeCache(tmp_path / "c", CFG.replace(window="bandpass"))
    assert other.folder != cache.folder
    other.get(copy)
    assert other.misses == 1
    assert cache.info()["entries"] == 2 and other.info()["entries"] == 1


def test_warm_computes_each_file_once(tmp_path: Path, scan: Path) -> None:
    second = tmp_path / "b.nii.gz"
    save_volume(head_ct((32, 32, 6), seed=1), HEAD_AFFINE, second)
    cache = VolumeCache(tmp_path / "c", CFG)
    assert cache.warm([scan, second, scan], progress=False) == 2
    assert cache.warm([scan, second], progress=False) == 0
    assert scan in cache and cache.size_bytes() > 2 * 8 * 16 * 16 * 4
    assert cache.clear() == 3  # two entries and config.json
    assert scan not in cache


def test_interrupted_write_leaves_nothing(tmp_path: Path, scan: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cache = VolumeCache(tmp_path / "c", CFG)

    def broken_save(f, arr, allow_pickle=False):  # noqa: ARG001
        f.write(b"\x93NUMPY partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module.np, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        cache.get(scan)
    monkeypatch.undo()
    assert [p.name for p in cache.folder.iterdir()] == ["config.json"]
    np.testing.assert_array_equal(cache.get(scan), preprocess_volume(*load_volume(scan), CFG))


def test_damaged_entry_is_recomputed(tmp_path: Path, scan: Path) -> None:
    cache = VolumeCache(tmp_path / "c", CFG)
    good = cache.get(scan)
    cache.path_for(scan).write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning, match="unreadable entry"):
        again = VolumeCache(tmp_path / "c", CFG).get(scan)
    np.testing.assert_array_equal(again, good)
    # an entry of the wrong shape, with a matching checksum record
    cache_module._atomic_save_npy(np.zeros((2, 2, 2), np.float32), cache.path_for(scan))
    with pytest.warns(RuntimeWarning, match="expected"):
        VolumeCache(tmp_path / "c", CFG).get(scan)
    # a well-formed entry whose values changed after it was written: only the checksum sees it
    np.save(cache.path_for(scan), good + 1.0)
    with pytest.warns(RuntimeWarning, match="does not match the checksum"):
        again = VolumeCache(tmp_path / "c", CFG).get(scan)
    np.testing.assert_array_equal(again, good)


def _fill(args: tuple[str, list[str]]) -> list[float]:
    root, paths = args
    cache = VolumeCache(root, CFG)
    return [float(cache.get(p).sum()) for p in paths]


def test_two_processes_fill_the_same_cache(tmp_path: Path) -> None:
    paths = []
    for i in range(4):
        p = tmp_path / f"s{i}.nii.gz"
        save_volume(head_ct((32, 32, 6), seed=i), HEAD_AFFINE, p)
        paths.append(str(p))
    root = str(tmp_path / "shared")
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        sums = pool.map(_fill, [(root, paths), (root, paths[::-1])])
    assert sums[0] == sums[1][::-1]
    cache = VolumeCache(root, CFG)
    for p, s in zip(paths, sums[0]):
        assert float(cache.get(p).sum()) == s
    assert cache.misses == 0
    leftovers = [f.name for f in cache.folder.iterdir() if f.name.endswith(".tmp")]
    assert leftovers == []


def test_default_root_follows_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICHPROG_CACHE", str(tmp_path / "env"))
    assert VolumeCache(config=CFG).root == tmp_path / "env"
    monkeypatch.delenv("ICHPROG_CACHE")
    assert VolumeCache(config=CFG).root == Path.home() / ".cache" / "ichprog"


def test_errors_name_the_file(tmp_path: Path) -> None:
    cache = VolumeCache(tmp_path / "c", CFG)
    with pytest.raises(FileNotFoundError, match=r"missing\.nii\.gz"):
        cache.get(tmp_path / "missing.nii.gz")
    save_volume(np.full((8, 8, 4), 3000, np.int16), np.eye(4), tmp_path / "bone.nii.gz")
    with pytest.raises(ImplausibleScanError, match=r"bone\.nii\.gz: implausible head CT"):
        cache.get(tmp_path / "bone.nii.gz")
    unchecked = VolumeCache(tmp_path / "c", CFG.replace(checks=ScanChecks.off()))
    with pytest.raises(ValueError, match=r"bone\.nii\.gz: strip_skull"):
        unchecked.get(tmp_path / "bone.nii.gz")
    with pytest.raises(TypeError):
        VolumeCache(tmp_path, config="paper")  # type: ignore[arg-type]
