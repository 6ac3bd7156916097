"""A catalogue of bad inputs: every case must fail with a named error (or, for self-healing
stores, a named warning), never with a silent wrong result or a raw traceback of a dependency.

Each case builds its input in a temporary folder and returns the call to make, the expected
exception (or warning) type and the text its message must contain: the file, patient, column or
configuration key at fault. The areas are the clinical table, scans, masks, the configuration,
model files, the volume cache and the run folder's records.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conftest import HEAD_AFFINE, clinical_table, head_ct
from ichprog._util import (
    FolderLock,
    FolderLockedError,
    IntegrityError,
    write_csv,
    write_json,
    write_text,
)
from ichprog.cli import ConfigError, load_config, validate_config
from ichprog.data import (
    ImplausibleScanError,
    PreprocessConfig,
    ScanChecks,
    VolumeCache,
    load_cohort,
    load_table,
    load_volume,
    save_volume,
)
from ichprog.data.cache import _atomic_save_npy, load_preprocessed

CFG = PreprocessConfig(shape=(8, 16, 16), skull_strip=False)


@dataclass
class Case:
    """A bad input: ``build(tmp)`` returns ``(call, text)``; ``call()`` must raise ``error`` (or
    warn with it, when ``warns``) with ``text`` in the message."""

    id: str
    build: Callable[[Path], tuple[Callable[[], Any], str]]
    error: type[BaseException]
    warns: bool = False


CASES: list[Case] = []


def case(id: str, error: type[BaseException], warns: bool = False) -> Callable[..., Any]:
    def register(build: Callable[[Path], tuple[Callable[[], Any], str]]) -> Any:
        CASES.append(Case(id, build, error, warns))
        return build
    return register


# -- the clinical table -------------------------------------------------------------------------
def _csv(tmp: Path, text: str, name: str = "clinical.csv") -> Path:
    p = tmp / name
    p.write_text(text, encoding="utf-8")
    return p


def _table(tmp: Path, edit: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
           name: str = "clinical.csv") -> Path:
    df = clinical_table()
    if edit is not None:
        df = edit(df)
    p = tmp / name
    df.to_csv(p, index=False)
    return p


@case("table/empty-0-bytes", ValueError)
def _(tmp):
    p = _csv(tmp, "")
    return lambda: load_table(p), "clinical.csv"


@case("table/blank-lines-only", ValueError)
def _(tmp):
    p = _csv(tmp, "\n\n  \n")
    return lambda: load_table(p), "clinical.csv"


@case("table/missing-file", FileNotFoundError)
def _(tmp):
    return lambda: load_table(tmp / "nowhere.csv"), "nowhere.csv"


@case("table/a-folder", IsADirectoryError)
def _(tmp):
    (tmp / "folder.csv").mkdir()
    return lambda: load_table(tmp / "folder.csv"), "folder.csv"


@case("table/unknown-type", ValueError)
def _(tmp):
    p = _csv(tmp, "{}", name="clinical.json")
    return lambda: load_table(p), "clinical.json"


@case("table/not-a-spreadsheet", ValueError)
def _(tmp):
    p = tmp / "clinical.xlsx"
    p.write_bytes(b"this is not a zip archive" * 10)
    return lambda: load_table(p), "clinical.xlsx"


@case("table/no-patient-id-column", ValueError)
def _(tmp):
    p = _table(tmp, lambda d: d.rename(columns={"PatientID": "Patient"}))
    return lambda: load_table(p), "PatientID"


@case("table/duplicated-patient", ValueError)
def _(tmp):
    p = _table(tmp, lambda d: pd.concat([d, d.iloc[[3]]], ignore_index=True))
    return lambda: load_table(p), "003"


@case("table/gcs-out-of-range", ValueError)
def _(tmp):
    def edit(d):
        d.loc[2, "GCS"] = 21
        return d
    p = _table(tmp, edit)
    return lambda: load_cohort(p, image_dir=_scans(tmp)), "GCS"


@case("table/gcs-not-a-number", ValueError)
def _(tmp):
    def edit(d):
        d["GCS"] = d["GCS"].astype(object)
        d.loc[4, "GCS"] = "severe"
        return d
    p = _table(tmp, edit)
    return lambda: load_cohort(p, image_dir=_scans(tmp)), "GCS"


@case("table/label-not-binary", ValueError)
def _(tmp):
    def edit(d):
        d.loc[1, "Label (poor_prognosis)"] = 2
        return d
    p = _table(tmp, edit)
    return lambda: load_cohort(p, image_dir=_scans(tmp)), "Label (poor_prognosis)"


@case("table/negative-age", ValueError)
def _(tmp):
    def edit(d):
        d.loc[5, "Age"] = -4
        return d
    p = _table(tmp, edit)
    return lambda: load_cohort(p, image_dir=_scans(tmp)), "Age"


@case("table/missing-label-column", ValueError)
def _(tmp):
    p = _table(tmp, lambda d: d.drop(columns=["Label (poor_prognosis)"]))
    return lambda: load_cohort(p, image_dir=_scans(tmp)), "Label (poor_prognosis)"


@case("table/patient-without-scan", ValueError)
def _(tmp):
    p = _table(tmp)
    scans = _scans(tmp)
    (scans / "007.nii.gz").unlink()
    return lambda: load_cohort(p, image_dir=scans), "007"


@case("table/row-with-extra-fields", ValueError)
def _(tmp):
    p = _csv(tmp, "PatientID,GCS\n001,15\n002,3,7,8\n")
    return lambda: load_table(p), "clinical.csv"


# -- scans ------------------------------------------------------------------------------------------
def _scans(tmp: Path, n: int = 12) -> Path:
    folder = tmp / "scans"
    folder.mkdir(exist_ok=True)
    for i in range(n):
        save_volume(head_ct(seed=i), HEAD_AFFINE, folder / f"{i:03d}.nii.gz")
    return folder


def _scan(tmp: Path, array: Any = None, affine: Any = HEAD_AFFINE, name: str = "scan.nii.gz") -> Path:
    p = tmp / name
    save_volume(head_ct() if array is None else array, affine, p)
    return p


def _damage_middle(p: Path) -> None:
    b = bytearray(p.read_bytes())
    mid = len(b) // 2
    for i in range(mid, min(mid + 16, len(b) - 8)):
        b[i] ^= 0x5A
    p.write_bytes(bytes(b))


@case("scan/gzip-damaged-in-the-middle", ValueError)
def _(tmp):
    p = _scan(tmp, np.random.default_rng(0).integers(-1000, 1000, (48, 48, 16)).astype(np.int16))
    _damage_middle(p)
    return lambda: load_volume(p), "scan.nii.gz"


@case("scan/gzip-truncated", ValueError)
def _(tmp):
    p = _scan(tmp)
    p.write_bytes(p.read_bytes()[:-40])
    return lambda: load_volume(p), "scan.nii.gz"


@case("scan/not-a-nifti", ValueError)
def _(tmp):
    p = tmp / "scan.nii.gz"
    p.write_bytes(gzip.compress(b"hello, not an image" * 30))
    return lambda: load_volume(p), "scan.nii.gz"


@case("scan/uncompressed-truncated", ValueError)
def _(tmp):
    p = _scan(tmp, name="scan.nii")
    p.write_bytes(p.read_bytes()[:-500])
    return lambda: load_volume(p), "scan.nii"


@case("scan/two-dimensional", ValueError)
def _(tmp):
    import nibabel as nib

    p = tmp / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16), np.int16), np.eye(4)), str(p))
    return lambda: load_volume(p), "flat.nii.gz"


@case("scan/several-volumes", ValueError)
def _(tmp):
    import nibabel as nib

    p = tmp / "series.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4, 3), np.int16), np.eye(4)), str(p))
    return lambda: load_volume(p), "series.nii.gz"


@case("scan/nan-voxels", ValueError)
def _(tmp):
    a = head_ct().astype(np.float32)
    a[3, 4, 2] = np.nan
    p = _scan(tmp, a)
    return lambda: load_volume(p), "scan.nii.gz"


def _huge_header(tmp: Path, name: str) -> Path:
    import nibabel as nib

    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4))
    raw = bytearray(img.header.binaryblock)
    dims = np.frombuffer(bytes(raw[40:56]), dtype="<i2").copy()
    dims[1:4] = 30000
    raw[40:56] = dims.astype("<i2").tobytes()
    data = bytes(raw) + b"\0" * 4 + np.zeros(64, np.int16).tobytes()
    p = tmp / name
    p.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return p


@case("scan/header-claims-enormous-size-gz", ValueError)
def _(tmp):
    p = _huge_header(tmp, "huge.nii.gz")
    return lambda: load_volume(p), "huge.nii.gz: the header announces"


@case("scan/header-claims-enormous-size", ValueError)
def _(tmp):
    p = _huge_header(tmp, "huge.nii")
    return lambda: load_volume(p), "huge.nii"


@case("scan/missing-file", FileNotFoundError)
def _(tmp):
    return lambda: load_volume(tmp / "absent.nii.gz"), "absent.nii.gz"


@case("scan/a-folder", IsADirectoryError)
def _(tmp):
    (tmp / "dir.nii.gz").mkdir()
    return lambda: load_volume(tmp / "dir.nii.gz"), "dir.nii.gz"


def _implausible(tmp: Path, array: Any, affine: Any = HEAD_AFFINE) -> tuple[Callable[[], Any], str]:
    p = _scan(tmp, array, affine, name="odd.nii.gz")
    return lambda: load_preprocessed(p, CFG), "odd.nii.gz: implausible head CT"


@case("scan/mri-like-0-255", ImplausibleScanError)
def _(tmp):
    hu = head_ct().astype(np.float64)
    return _implausible(tmp, np.round((hu + 1000) / 1900 * 255).astype(np.int16))


@case("scan/hu-plus-1024-without-intercept", ImplausibleScanError)
def _(tmp):
    return _implausible(tmp, (head_ct().astype(np.int32) + 1024).astype(np.int16))


@case("scan/blank", ImplausibleScanError)
def _(tmp):
    return _implausible(tmp, np.zeros((32, 32, 8), np.int16))


@case("scan/constant-brain-value", ImplausibleScanError)
def _(tmp):
    return _implausible(tmp, np.full((32, 32, 8), 40, np.int16))


@case("scan/normalised-0-1", ImplausibleScanError)
def _(tmp):
    hu = head_ct().astype(np.float32)
    return _implausible(tmp, (hu - hu.min()) / (hu.max() - hu.min()))


@case("scan/tiny-10x10x3", ImplausibleScanError)
def _(tmp):
    return _implausible(tmp, head_ct((10, 10, 3)), np.diag([1.0, 1.0, 5.0, 1.0]))


@case("scan/field-of-view-of-a-finger", ImplausibleScanError)
def _(tmp):
    return _implausible(tmp, head_ct(), np.diag([0.5, 0.5, 4.0, 1.0]))


@case("scan/predict-from-an-mri-like-file", ImplausibleScanError)
def _(tmp):
    model = _fitted(tmp)
    hu = head_ct().astype(np.float64)
    p = _scan(tmp, np.round((hu + 1000) / 1900 * 255).astype(np.int16), name="mri.nii.gz")
    return lambda: model.predict([str(p)]), "mri.nii.gz"


# -- masks ------------------------------------------------------------------------------------------
def _cohort_with_mask(tmp: Path, mask: np.ndarray, affine: Any) -> tuple[Path, Path, Path]:
    table = _table(tmp)
    scans = _scans(tmp)
    masks = tmp / "masks"
    masks.mkdir()
    save_volume(mask, affine, masks / "004_mask.nii.gz")
    return table, scans, masks


@case("mask/other-shape", ImplausibleScanError)
def _(tmp):
    t, s, m = _cohort_with_mask(tmp, np.zeros((16, 16, 4), np.uint8), HEAD_AFFINE)
    return lambda: load_cohort(t, image_dir=s, mask_dir=m), "patient '004'"


@case("mask/shifted-affine", ImplausibleScanError)
def _(tmp):
    aff = HEAD_AFFINE.copy()
    aff[0, 3] = 3.5
    t, s, m = _cohort_with_mask(tmp, np.zeros((32, 32, 8), np.uint8), aff)
    return lambda: load_cohort(t, image_dir=s, mask_dir=m), "004_mask.nii.gz"


@case("mask/other-voxel-size", ImplausibleScanError)
def _(tmp):
    t, s, m = _cohort_with_mask(tmp, np.zeros((32, 32, 8), np.uint8),
                                np.diag([3.5, 3.5, 4.0, 1.0]))
    return lambda: load_cohort(t, image_dir=s, mask_dir=m), "patient '004'"


@case("mask/of-an-unknown-patient", ValueError)
def _(tmp):
    t, s, m = _cohort_with_mask(tmp, np.zeros((32, 32, 8), np.uint8), HEAD_AFFINE)
    save_volume(np.zeros((32, 32, 8), np.uint8), HEAD_AFFINE, m / "999_mask.nii.gz")
    return lambda: load_cohort(t, image_dir=s, mask_dir=m), "999"


@case("mask/damaged-gzip-full-check", ValueError)
def _(tmp):
    mask = np.random.default_rng(1).integers(0, 3, (32, 32, 8)).astype(np.uint8)
    t, s, m = _cohort_with_mask(tmp, mask, HEAD_AFFINE)
    _damage_middle(m / "004_mask.nii.gz")
    return (lambda: load_cohort(t, image_dir=s, mask_dir=m, check_images="full"),
            "patient '004'")


# -- configuration ----------------------------------------------------------------------------------
def _toml(tmp: Path, text: str) -> Path:
    p = tmp / "run.toml"
    p.write_text(text, encoding="utf-8")
    return p


@case("config/table-without-source", ConfigError)
def _(tmp):
    p = _toml(tmp, '[data]\ntable = "clinical.csv"\n')
    return lambda: load_config(p), "[data] table"


@case("config/table-with-phantom-source", ConfigError)
def _(tmp):
    p = _toml(tmp, '[data]\nsource = "phantom"\ntable = "clinical.csv"\n')
    return lambda: load_config(p), "run.toml"


@case("config/bootstrap-fold-out-of-range", ConfigError)
def _(tmp):
    p = _toml(tmp, "[cv]\nfolds = 3\nbootstrap_fold = 3\n")
    return lambda: load_config(p), "[cv] bootstrap_fold"


@case("config/saliency-fold-out-of-range", ConfigError)
def _(tmp):
    p = _toml(tmp, "[cv]\nfolds = 2\n[saliency]\nfold = 5\n")
    return lambda: load_config(p), "[saliency] fold"


@case("config/unknown-section", ConfigError)
def _(tmp):
    p = _toml(tmp, "[trian]\nepochs = 3\n")
    return lambda: load_config(p), "[trian]"


@case("config/unknown-key", ConfigError)
def _(tmp):
    p = _toml(tmp, "[train]\nepoch = 3\n")
    return lambda: load_config(p), "epoch"


@case("config/wrong-type", ConfigError)
def _(tmp):
    p = _toml(tmp, '[cv]\nfolds = "ten"\n')
    return lambda: load_config(p), "[cv] folds"


@case("config/out-of-range", ConfigError)
def _(tmp):
    p = _toml(tmp, "[train]\nepochs = 0\n")
    return lambda: load_config(p), "[train] epochs"


@case("config/invalid-toml", ConfigError)
def _(tmp):
    p = _toml(tmp, "[train\nepochs = \n")
    return lambda: load_config(p), "run.toml"


@case("config/missing-file", ConfigError)
def _(tmp):
    return lambda: load_config(tmp / "absent.toml"), "absent.toml"


@case("config/unknown-check-action", ConfigError)
def _(tmp):
    return lambda: validate_config({"checks": {"action": "ignore"}}), "[checks] action"


@case("config/scan-checks-action", ValueError)
def _(tmp):
    return lambda: ScanChecks(action="shrug"), "ScanChecks.action"  # type: ignore[arg-type]


@case("config/scan-checks-fraction", ValueError)
def _(tmp):
    return lambda: ScanChecks(min_brain=2.0), "ScanChecks.min_brain"


@case("config/preprocess-checks-type", TypeError)
def _(tmp):
    return lambda: PreprocessConfig(checks="all"), "PreprocessConfig.checks"  # type: ignore[arg-type]


# -- model files ------------------------------------------------------------------------------------
_MODEL_CACHE: dict[str, Path] = {}


def _saved_model(tmp: Path) -> Path:
    """A copy of a small saved (untrained) FittedModel in ``tmp/model``."""
    from ichprog.experiment import FittedModel
    from ichprog.models import MultiTaskNet
    from ichprog.training import TrainConfig

    src = _MODEL_CACHE.get("model")
    if src is None or not src.is_dir():
        import tempfile

        src = Path(tempfile.mkdtemp(prefix="ichprog-bad-inputs-")) / "model"
        net = MultiTaskNet("mt_ord_gcs_bin_age", trunk="densenet_tiny")
        FittedModel(net, CFG, TrainConfig(max_epochs=1), pd.DataFrame({"epoch": [1]}),
                    {"best_epoch": 1}).save(src)
        _MODEL_CACHE["model"] = src
    dst = tmp / "model"
    shutil.copytree(src, dst)
    return dst


def _fitted(tmp: Path) -> Any:
    from ichprog.experiment import FittedModel

    return FittedModel.load(_saved_model(tmp))


def _load(d: Path) -> Callable[[], Any]:
    from ichprog.experiment import FittedModel

    return lambda: FittedModel.load(d)


@case("model/weights-truncated", ValueError)
def _(tmp):
    d = _saved_model(tmp)
    w = d / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    return _load(d), "model.safetensors"


@case("model/weights-truncated-without-record", ValueError)
def _(tmp):
    d = _saved_model(tmp)
    w = d / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    (d / "model.safetensors.sha256").unlink()
    return _load(d), "model.safetensors: not a readable safetensors file"


@case("model/weights-are-random-bytes", ValueError)
def _(tmp):
    d = _saved_model(tmp)
    (d / "model.safetensors").write_bytes(os.urandom(4096))
    (d / "model.safetensors.sha256").unlink()
    return _load(d), "model.safetensors"


@case("model/weights-changed-but-well-formed", IntegrityError)
def _(tmp):
    from safetensors.torch import load_file, save_file

    d = _saved_model(tmp)
    w = d / "model.safetensors"
    state = load_file(str(w))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name] + 0.5
    save_file(state, str(w))
    return _load(d), "model.safetensors"


@case("model/weights-of-another-network", ValueError)
def _(tmp):
    from ichprog.models import MultiTaskNet
    from ichprog.training import save_weights

    d = _saved_model(tmp)
    save_weights(MultiTaskNet("baseline_gcs_bin", trunk="densenet_tiny"), d / "model.safetensors")
    return _load(d), "model.safetensors"


@case("model/weights-missing", FileNotFoundError)
def _(tmp):
    d = _saved_model(tmp)
    (d / "model.safetensors").unlink()
    return _load(d), "model.safetensors"


@case("model/fitted-json-missing", FileNotFoundError)
def _(tmp):
    d = _saved_model(tmp)
    (d / "fitted.json").unlink()
    return _load(d), "fitted.json"


@case("model/fitted-json-not-json", ValueError)
def _(tmp):
    d = _saved_model(tmp)
    (d / "fitted.json").write_text("{ not json", encoding="utf-8")
    (d / "fitted.json.sha256").unlink()
    return _load(d), "fitted.json"


@case("model/fitted-json-edited", IntegrityError)
def _(tmp):
    d = _saved_model(tmp)
    meta = json.loads((d / "fitted.json").read_text(encoding="utf-8"))
    meta["preprocess"]["window_level"] = 10.0
    (d / "fitted.json").write_text(json.dumps(meta), encoding="utf-8")
    return _load(d), "fitted.json"


def _edit_fitted(tmp: Path, edit: Callable[[Any], Any]) -> Path:
    d = _saved_model(tmp)
    meta = json.loads((d / "fitted.json").read_text(encoding="utf-8"))
    write_json(edit(meta), d / "fitted.json", checksum=True)  # a consistent record
    return d


@case("model/fitted-json-wrong-format", ValueError)
def _(tmp):
    d = _edit_fitted(tmp, lambda m: {**m, "format": "something-else/9"})
    return _load(d), "fitted.json"


@case("model/fitted-json-missing-entry", ValueError)
def _(tmp):
    d = _edit_fitted(tmp, lambda m: {k: v for k, v in m.items() if k != "model"})
    return _load(d), "fitted.json"


@case("model/fitted-json-unknown-preprocess-setting", ValueError)
def _(tmp):
    d = _edit_fitted(tmp, lambda m: {**m, "preprocess": {**m["preprocess"], "zoom": 2}})
    return _load(d), "fitted.json"


@case("model/fitted-json-not-an-object", ValueError)
def _(tmp):
    d = _edit_fitted(tmp, lambda m: [m])
    return _load(d), "fitted.json"


@case("model/fitted-json-invalid-train-config", ValueError)
def _(tmp):
    d = _edit_fitted(tmp, lambda m: {**m, "train_config": {**m["train_config"],
                                                           "batch_size": -3}})
    return _load(d), "fitted.json"


@case("model/history-damaged", IntegrityError)
def _(tmp):
    d = _saved_model(tmp)
    (d / "history.csv").write_text("epoch\n7\n", encoding="utf-8")
    return _load(d), "history.csv"


@case("model/checkpoint-sidecar-not-json", ValueError)
def _(tmp):
    from ichprog.training import read_sidecar

    (tmp / "checkpoint.json").write_text("[1, 2", encoding="utf-8")
    return lambda: read_sidecar(tmp), "checkpoint.json"


@case("model/checkpoint-all-damaged", ValueError)
def _(tmp):
    from ichprog.models import MultiTaskNet
    from ichprog.training import load_checkpoint

    write_json({"format": "ichprog-checkpoint/1", "epoch": 1,
                "weights": "weights-e0001.safetensors", "state": "state-e0001.safetensors"},
               tmp / "checkpoint.json", checksum=True)
    (tmp / "weights-e0001.safetensors").write_bytes(b"\x00" * 10)
    net = MultiTaskNet("baseline_gcs_bin", trunk="densenet_tiny")
    return lambda: load_checkpoint(tmp, net), "weights-e0001.safetensors"


# -- the volume cache -------------------------------------------------------------------------------
def _cached(tmp: Path) -> tuple[VolumeCache, Path]:
    p = _scan(tmp)
    cache = VolumeCache(tmp / "cache", CFG)
    cache.get(p)
    return cache, p


@case("cache/entry-garbage", RuntimeWarning, warns=True)
def _(tmp):
    cache, p = _cached(tmp)
    entry = cache.path_for(p)
    entry.write_bytes(b"garbage")
    return lambda: VolumeCache(tmp / "cache", CFG).get(p), entry.name


@case("cache/entry-values-changed", RuntimeWarning, warns=True)
def _(tmp):
    cache, p = _cached(tmp)
    entry = cache.path_for(p)
    np.save(entry, np.load(entry) * 0.5)
    return lambda: VolumeCache(tmp / "cache", CFG).get(p), entry.name


@case("cache/entry-truncated", RuntimeWarning, warns=True)
def _(tmp):
    cache, p = _cached(tmp)
    entry = cache.path_for(p)
    entry.write_bytes(entry.read_bytes()[:-100])
    return lambda: VolumeCache(tmp / "cache", CFG).get(p), entry.name


@case("cache/record-unreadable", RuntimeWarning, warns=True)
def _(tmp):
    cache, p = _cached(tmp)
    entry = cache.path_for(p)
    entry.with_name(entry.name + ".sha256").write_text("not a digest", encoding="utf-8")
    return lambda: VolumeCache(tmp / "cache", CFG).get(p), entry.name


@case("cache/entry-wrong-shape", RuntimeWarning, warns=True)
def _(tmp):
    cache, p = _cached(tmp)
    _atomic_save_npy(np.zeros((2, 2, 2), np.float32), cache.path_for(p))
    return lambda: VolumeCache(tmp / "cache", CFG).get(p), cache.path_for(p).name


# -- run folders and their records ------------------------------------------------------------------
def _run_folder(tmp: Path) -> Path:
    run = tmp / "run"
    tidy = pd.DataFrame({"model": ["a", "b", "c"], "fold": [0, 0, 0], "task": ["prognosis"] * 3,
                         "metric": ["auc"] * 3, "value": [0.7, 0.8, 0.9]})
    write_csv(tidy, run / "cv" / "metrics.csv", checksum=True)
    write_text(run / "run.json", json.dumps({"title": "t", "phantom": True}), checksum=True)
    return run


@case("run/metrics-table-truncated", IntegrityError)
def _(tmp):
    from ichprog.report import build_report

    run = _run_folder(tmp)
    m = run / "cv" / "metrics.csv"
    m.write_bytes(m.read_bytes()[:-20])
    return lambda: build_report(run), "metrics.csv"


@case("run/manifest-edited", IntegrityError)
def _(tmp):
    from ichprog.report import build_report

    run = _run_folder(tmp)
    (run / "run.json").write_text(json.dumps({"title": "other"}), encoding="utf-8")
    return lambda: build_report(run), "run.json"


@case("run/manifest-not-json", ValueError)
def _(tmp):
    from ichprog.report import build_report

    run = _run_folder(tmp)
    (run / "run.json").write_text("{", encoding="utf-8")
    (run / "run.json.sha256").unlink()
    return lambda: build_report(run), "run.json"


@case("run/splits-edited", IntegrityError)
def _(tmp):
    from ichprog.data import Splits, make_splits

    cohort = load_cohort(_table(tmp), image_dir=_scans(tmp))
    path = tmp / "splits.json"
    make_splits(cohort, folds=3, seed=0, val_fraction=0.25).save(path)
    d = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(d, indent=2), encoding="utf-8")
    return lambda: Splits.load(path), "splits.json"


@case("run/cv-predictions-truncated", IntegrityError)
def _(tmp):
    from ichprog.experiment import CVResult

    d = tmp / "cv"
    write_json({"format": "x"}, d / "config.json", checksum=True)
    write_csv(pd.DataFrame({"PatientID": ["001", "002"], "fold": [0, 1]}),
              d / "predictions.csv", checksum=True)
    from ichprog.experiment.cv import CV_FORMAT
    write_json({"format": CV_FORMAT, "name": "m", "preset": {}, "threshold": 0.5},
               d / "config.json", checksum=True)
    (d / "predictions.csv").write_text("PatientID,fold\n001,0\n", encoding="utf-8")
    return lambda: CVResult.load(d), "predictions.csv"


@case("run/claims-table-edited", IntegrityError)
def _(tmp):
    from ichprog.experiment import ClaimsResult

    d = tmp / "claims"
    write_csv(pd.DataFrame({"claim": ["C1"], "verdict": ["supported"]}), d / "claims.csv",
              checksum=True)
    (d / "claims.csv").write_text("claim,verdict\nC1,refuted\n", encoding="utf-8")
    return lambda: ClaimsResult.load(d), "claims.csv"


@case("run/fold-record-edited", IntegrityError)
def _(tmp):
    from ichprog.experiment.cv import _FoldStore

    store = _FoldStore(tmp, overwrite=False)
    store.start(0, "abc", 1)
    (tmp / "fold_00" / "fold.json").write_text('{"hash": "abc", "status": "done"}',
                                                encoding="utf-8")
    return lambda: store.finished(0, "abc"), "fold.json"


@case("run/folder-locked-by-a-live-process", FolderLockedError)
def _(tmp):
    (tmp / "run").mkdir()
    (tmp / "run" / ".lock").write_text(json.dumps({"pid": os.getppid(),
                                                   "host": socket.gethostname()}))
    return lambda: FolderLock(tmp / "run", "run folder").acquire(), str(tmp / "run")


@case("run/folder-locked-from-another-host", FolderLockedError)
def _(tmp):
    (tmp / "run").mkdir()
    (tmp / "run" / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere.example"}))
    return lambda: FolderLock(tmp / "run", "run folder").acquire(), "elsewhere.example"


@case("run/record-of-a-checksummed-file-removed-is-required", IntegrityError)
def _(tmp):
    from ichprog._util import verify_checksum

    write_text(tmp / "table.csv", "a\n1\n")
    return lambda: verify_checksum(tmp / "table.csv", required=True), "table.csv"


# -- the catalogue ----------------------------------------------------------------------------------
def test_the_catalogue_is_large_and_covers_every_area():
    assert len(CASES) >= 60
    areas = {c.id.split("/")[0] for c in CASES}
    assert areas == {"table", "scan", "mask", "config", "model", "cache", "run"}
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_a_named_error(bad: Case, tmp_path: Path) -> None:
    call, text = bad.build(tmp_path)
    if bad.warns:
        with pytest.warns(bad.error) as rec:
            call()
        messages = [str(w.message) for w in rec if issubclass(w.category, bad.error)]
        assert any(text in m for m in messages), messages
        return
    with pytest.raises(bad.error) as info:
        call()
    assert text in str(info.value), str(info.value)
    assert "Traceback" not in str(info.value)


# -- the good twins of some cases: what must keep working -------------------------------------------
def test_tab_separated_csv_is_read_as_such(tmp_path: Path) -> None:
    df = clinical_table()
    p = tmp_path / "clinical.csv"
    df.to_csv(p, index=False, sep="\t")
    got = load_table(p)
    assert list(got.columns) == [c for c in df.columns if c != "PatientID"]
    assert got.index.tolist() == df["PatientID"].tolist()


def test_phantom_scans_pass_every_check(tmp_path: Path) -> None:
    from ichprog.data import check_scan, make_phantom_cohort

    cohort = make_phantom_cohort(n=12, seed=3, out_dir=tmp_path, shape=(8, 24, 24),
                                 progress=False)
    for pid in cohort.ids[:4]:
        array, affine = load_volume(cohort.image_path(pid))
        assert check_scan(array, affine, pid, input_shape=(8, 24, 24)) == []


def test_checks_can_be_switched_off_or_turned_into_warnings(tmp_path: Path) -> None:
    from ichprog.data import ImplausibleScanWarning

    blank = _scan(tmp_path, np.zeros((32, 32, 8), np.int16), name="blank.nii.gz")
    off = CFG.replace(checks=ScanChecks(hu_range=False, tissue=False))
    assert load_preprocessed(blank, off).shape == CFG.shape
    warn = CFG.replace(checks=ScanChecks(action="warn"))
    with pytest.warns(ImplausibleScanWarning, match="blank.nii.gz"):
        load_preprocessed(blank, warn)
    # the checks do not change the numbers, so they are not part of the cache key
    assert off.key() == CFG.key() == warn.key()
    assert PreprocessConfig.from_dict(warn.to_dict()) == warn
    assert "checks" not in CFG.to_dict()


def test_skull_stripped_scan_with_zero_background_passes() -> None:
    from ichprog.data import check_scan

    hu = head_ct().astype(np.int16)
    stripped = np.where((hu > -10) & (hu < 100), hu, 0).astype(np.int16)
    assert check_scan(stripped, HEAD_AFFINE, "stripped") == []


def test_a_damaged_gzip_is_caught_where_nibabel_alone_decodes_it(tmp_path: Path) -> None:
    import nibabel as nib

    a = np.random.default_rng(0).integers(-1000, 1000, (48, 48, 16)).astype(np.int16)
    p = _scan(tmp_path, a)
    _damage_middle(p)
    # the evidence that a check was needed: nibabel's own read either fails or returns
    # wrong voxels without an error
    try:
        got = np.asanyarray(nib.load(str(p)).dataobj)
    except Exception:
        got = None
    assert got is None or not np.array_equal(got, a)
    with pytest.raises(ValueError, match="damaged or truncated compressed file"):
        load_volume(p)
