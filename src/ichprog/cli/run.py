"""The output folder of a command: ``_Run`` (the manifest ``run.json``, a
:class:`~ichprog._manifest.RunManifest`, stage markers and reuse),
a command's start and finish, the run's description, and the removal of results computed on a
previous phantom cohort."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ichprog._manifest import MANIFEST_FILE, RunManifest
from ichprog._util import MANIFEST_PACKAGES, package_versions, stable_hash, write_text
from ichprog.cli.config import _config_from_args, dump_config
from ichprog.constants import GCS_COLUMN


def _hash(obj: Any) -> str:
    """The key of a stage marker (16 hex digits; values JSON does not know hash as ``str``)."""
    return stable_hash(obj, length=16, default=str)


class _Run:
    """The output folder of a command: manifest (``run.json``), stage markers and messages."""

    def __init__(self, out: Path, cfg: dict[str, dict[str, Any]], command: str,
                 quiet: bool = False):
        self.out = out
        self.cfg = cfg
        self.quiet = quiet
        out.mkdir(parents=True, exist_ok=True)
        try:
            self.manifest = RunManifest.load(out / MANIFEST_FILE, missing_ok=True)
        except (ValueError, OSError) as exc:
            self.say(f"warning: {exc}; starting a new manifest")
            self.manifest = RunManifest()
        self.manifest.command = command
        self.manifest.versions = package_versions(MANIFEST_PACKAGES, source="distribution")
        self.manifest.title = f"ichprog report: {cfg['run']['name']}"
        self.manifest.reused = []
        # config.toml and run.json are written when the first stage starts (commit), so that a
        # command failing on its inputs leaves the records of the folder's last run as they were
        self._committed = False

    def say(self, msg: str) -> None:
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)

    def commit(self) -> None:
        """Write ``config.toml`` and ``run.json``: the inputs are valid and work begins."""
        if not self._committed:
            self._committed = True
            write_text(self.out / "config.toml", dump_config(self.cfg))
        self.save()

    def save(self) -> None:
        if self._committed:
            self.manifest.save(self.out / MANIFEST_FILE)

    def done(self, stage: str, key: Any) -> bool:
        marker = self.out / stage / ".done.json"
        if not marker.is_file():
            return False
        try:
            return json.loads(marker.read_text(encoding="utf-8")).get("key") == _hash(key)
        except (json.JSONDecodeError, OSError):
            return False

    def mark_done(self, stage: str, key: Any) -> None:
        (self.out / stage).mkdir(parents=True, exist_ok=True)
        write_text(self.out / stage / ".done.json", json.dumps({"key": _hash(key)}))

    @contextlib.contextmanager
    def stage(self, name: str, key: Any) -> Iterator[bool]:
        """Yield ``True`` when the stage must run; ``False`` when it is reused."""
        if self.done(name, key):
            self.say(f"[{name}] reusing the finished results in {self.out / name}")
            self.manifest.reused.append(name)
            self.save()
            yield False
            return
        self.commit()
        self.say(f"[{name}] running ...")
        t0 = time.perf_counter()
        yield True
        dt = time.perf_counter() - t0
        self.manifest.timings[name] = round(dt, 2)
        self.mark_done(name, key)
        self.save()
        self.say(f"[{name}] done in {dt:.1f} s")


#: What the stages write, computed from the cohort: removed when the phantom is generated anew.
_DERIVED = ("tabular", "cv", "ablation", "saliency", "train", "cache", "splits.json")


def _forget_results(run: _Run, reason: str = "") -> None:
    """A new cohort (a phantom generated anew, an edited clinical table) reuses the patient IDs
    of the old one: drop everything computed on the old cohort so that no finished fold or
    cached volume is reused by mistake."""
    import shutil

    gone = [n for n in _DERIVED if (run.out / n).exists()]
    if not gone:
        return
    run.commit()
    if reason:
        print(f"warning: {reason}: removing the results computed on it ({', '.join(gone)})",
              file=sys.stderr, flush=True)
    else:
        run.say(f"[phantom] the cohort settings changed: removing the results computed on the "
                f"previous cohort ({', '.join(gone)})")
    for n in gone:
        path = run.out / n
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    run.manifest.timings = {}


def _describe_cohort(run: _Run, cohort: Any) -> None:
    labels = [int(v) for v in cohort.labels]
    gcs = cohort.table[GCS_COLUMN].astype(int).value_counts().sort_index()
    run.manifest.cohort = {
        "source": "phantom cohort (synthetic)" if run.manifest.phantom else "clinical table",
        "patients": len(cohort),
        "good prognosis (0)": labels.count(0),
        "poor prognosis (1)": labels.count(1),
        "gcs_counts": {str(k): int(v) for k, v in gcs.items()},
    }
    run.save()


def _start(args: argparse.Namespace, base: Mapping[str, Mapping[str, Any]] | None = None) -> _Run:
    cfg = _config_from_args(args, base=base)
    command = "ichprog " + " ".join(getattr(args, "argv", []) or [args.command])
    return _Run(Path(args.out), cfg, command=command, quiet=bool(getattr(args, "quiet", False)))


def _finish(run: _Run, t0: float) -> None:
    run.manifest.wall_time_s = round(time.perf_counter() - t0, 1)
    run.manifest.summary["wall time"] = _duration(run.manifest.wall_time_s)
    run.commit()


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


def _device_text(device: str) -> str:
    import torch

    if device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    if device == "mps":
        return "mps"
    return f"cpu ({torch.get_num_threads()} threads, {os.cpu_count()} cores)"


def _describe_run(run: _Run, *stages: str) -> None:
    cfg = run.cfg
    trunk = cfg["model"]["trunk"] or "the preset's (densenet121 / perez2023)"
    s = {
        "cohort": (f"phantom, {cfg['data']['n_patients']} patients, scans "
                   + " x ".join(map(str, cfg["data"]["phantom_shape"]))
                   if cfg["data"]["source"] == "phantom" else f"table {cfg['data']['table']}"),
        "network input (C, D, H, W)": "1 x " + " x ".join(map(str, cfg["preprocess"]["shape"])),
        "trunk": trunk,
        "folds": f"{cfg['cv']['folds']} (validation part {cfg['cv']['val_fraction']:g})",
        "epochs": (f"{cfg['train']['epochs']}, early stopping "
                   + (f"patience {cfg['train']['patience']}" if cfg["train"]["patience"]
                      else "off")),
        "batch": (f"{cfg['train']['batch_size']} x {cfg['train']['accumulation_steps']} "
                  "accumulation steps"),
        "optimizer": f"AdamW lr {cfg['train']['lr']:g}, weight decay {cfg['train']['weight_decay']:g}",
        "augmentation": "on" if cfg["train"]["augment"] else "off",
        "bootstrap": f"{cfg['cv']['bootstrap']} resamples on test fold {cfg['cv']['bootstrap_fold'] + 1}",
        "seed": str(cfg["run"]["seed"]),
        "device": _device_text(cfg["run"]["device"]),
        "stages": ", ".join(stages),
    }
    if "cv" in stages:
        s["cross-validated models"] = ", ".join(cfg["cv"]["models"])
    if "ablation" in stages:
        n = cfg["ablation"]["max_configs"]
        s["ablation"] = (f"{cfg['ablation']['preset']}, "
                         + (f"the first {n} loss configurations (reduced)" if n
                            else "every loss configuration"))
    if "tabular" in stages:
        s["tabular"] = (f"Table 1 models, {cfg['tabular']['folds']} folds, dense network "
                        f"{cfg['tabular']['dnn_epochs']} epochs")
    if "saliency" in stages:
        s["saliency"] = (", ".join(cfg["saliency"]["methods"]) + f" on {cfg['saliency']['n_patients']}"
                         f" test patients of fold {cfg['saliency']['fold'] + 1}")
    run.manifest.summary = s
    run.save()
