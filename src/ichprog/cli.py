"""The ``ichprog`` command line: every stage of the paper's protocol, and the demo.

Exit codes (scripts can rely on them):

* ``0``: success;
* ``2``: usage or configuration error (unknown option, unknown or mistyped configuration key,
  value out of range, missing input file); nothing was computed;
* ``1``: runtime failure (invalid data found while running, a failed stage, interruption is
  ``130``).

A user error never prints a traceback; ``--debug`` shows one for any error.

Every command writes into one output folder (``--out``) with the layout of
:data:`ichprog.report.RUN_LAYOUT`; running a command again in the same folder reuses what is
finished there (pre-processed volumes, finished folds, finished stages) and says so.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ichprog._util import MANIFEST_PACKAGES, package_versions, stable_hash, write_text
from ichprog._version import __version__
from ichprog.constants import GCS_COLUMN, ID_COLUMN

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 needs the tomli backport
    try:
        import tomli as tomllib
    except ImportError:  # pragma: no cover
        tomllib = None  # type: ignore[assignment]

__all__ = [
    "main",
    "build_parser",
    "ConfigError",
    "CONFIG_SCHEMA",
    "DEMO_MODES",
    "default_config",
    "load_config",
    "validate_config",
    "dump_config",
    "EXIT_OK",
    "EXIT_FAILURE",
    "EXIT_USAGE",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class ConfigError(ValueError):
    """A configuration or usage error: names the file, section and key (exit code 2)."""


# ------------------------------------------------------------------------------------------------
# Configuration schema
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Key:
    kind: str  # "int", "float", "bool", "str", "ints", "strs", "optfloat"
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None
    length: int | None = None


def _presets() -> tuple[str, ...]:
    from ichprog.tasks import PRESETS

    return tuple(PRESETS)


_PRESET_CHOICES = ("baseline_perez", "baseline_densenet", "baseline_gcs_bin", "baseline_gcs_ord",
                   "baseline_age", "mt_bin_gcs_bin_age", "mt_ord_gcs_bin_age")
_TRUNK_CHOICES = ("densenet121", "densenet_tiny", "perez2023", "")
_SALIENCY_METHODS = ("guided_backprop", "gradcam", "guided_gradcam")
_TABULAR_MODELS = ("dnn", "rf", "xgb", "lr", "dtc")

#: Every section and key of a configuration file, with type, default and valid range.
CONFIG_SCHEMA: dict[str, dict[str, _Key]] = {
    "run": {
        "name": _Key("str", "ichprog", "name of the run, shown in the report"),
        "seed": _Key("int", 0, "master seed (phantom, splits, training, bootstrap)", low=0),
        "device": _Key("str", "auto", "where to train", choices=("auto", "cpu", "cuda", "mps")),
        "progress": _Key("bool", True, "show progress bars"),
    },
    "data": {
        "source": _Key("str", "phantom", "'phantom' (generated) or 'table' (your cohort)",
                       choices=("phantom", "table")),
        "table": _Key("str", "", "clinical table (.csv or .xlsx) when source = 'table'"),
        "image_dir": _Key("str", "", "folder of the scans (default: the table's folder)"),
        "mask_dir": _Key("str", "", "folder of lesion masks (optional)"),
        "n_patients": _Key("int", 120, "phantom cohort size", low=12, high=100000),
        "phantom_shape": _Key("ints", [32, 96, 96], "phantom volume size (D, H, W)", low=8,
                              high=1024, length=3),
    },
    "preprocess": {
        "shape": _Key("ints", [32, 64, 64], "network input size (D, H, W) after resampling",
                      low=8, high=1024, length=3),
        "window": _Key("str", "clip", "'clip' (default) or 'bandpass' (the authors' scripts)",
                       choices=("clip", "bandpass")),
        "window_level": _Key("float", 57.5, "Hounsfield window centre (the paper's: 57.5)",
                             low=-1024.0, high=3071.0),
        "window_width": _Key("float", 85.0, "Hounsfield window width (the paper's: 85)", low=0.0,
                             low_open=True, high=4096.0),
        "skull_strip": _Key("bool", True, "strip the skull (already stripped scans pass through)"),
        "reorient": _Key("bool", True, "reorient to the closest canonical orientation"),
    },
    "model": {
        "preset": _Key("str", "mt_ord_gcs_bin_age", "the tasks and trunk (see ichprog.tasks)",
                       choices=_PRESET_CHOICES),
        "trunk": _Key("str", "", "trunk overriding the preset's ('' keeps it)",
                      choices=_TRUNK_CHOICES),
        "dropout": _Key("optfloat", None, "trunk dropout (default: the trunk's own)", low=0.0,
                        high=1.0, high_open=True),
    },
    "train": {
        "epochs": _Key("int", 100, "maximum number of epochs", low=1, high=100000),
        "batch_size": _Key("int", 8, "samples per forward pass", low=1, high=4096),
        "accumulation_steps": _Key("int", 3, "batches per optimizer step", low=1, high=1024),
        "lr": _Key("float", 1e-3, "AdamW learning rate", low=0.0, low_open=True, high=10.0),
        "weight_decay": _Key("float", 1e-4, "AdamW weight decay", low=0.0, high=10.0),
        "patience": _Key("int", 20, "early-stopping patience in epochs (0: off)", low=0),
        "schedule": _Key("str", "constant", "learning-rate schedule: 'constant' (the paper's) or "
                         "'onecycle'", choices=("constant", "onecycle")),
        "select": _Key("str", "best", "weights kept: 'best' validation epoch (the paper's) or "
                       "'last' epoch", choices=("best", "last")),
        "class_balance": _Key("bool", False, "weight the positive targets of every binary and "
                              "ordinal output by negatives / positives"),
        "augment": _Key("bool", True, "rotation, zoom and noise on the training part"),
        "precision": _Key("str", "auto", "autocast precision",
                          choices=("auto", "fp32", "bf16", "fp16")),
    },
    "cv": {
        "folds": _Key("int", 10, "number of cross-validation folds", low=2, high=1000),
        "val_fraction": _Key("float", 0.1, "validation part of each training part", low=0.0,
                             high=1.0, low_open=True, high_open=True),
        "bootstrap": _Key("int", 1000, "bootstrap resamples for the test-fold intervals", low=0,
                          high=1000000),
        "bootstrap_fold": _Key("int", 0, "the fold with bootstrap intervals (Table 2)", low=0),
        "models": _Key("strs", ["baseline_densenet", "mt_bin_gcs_bin_age", "mt_ord_gcs_bin_age"],
                       "presets cross-validated by 'ichprog demo'", choices=_PRESET_CHOICES),
    },
    "tabular": {
        "folds": _Key("int", 10, "cross-validation folds of the tabular models", low=2,
                      high=1000),
        "shap": _Key("bool", True, "compute SHAP importances"),
        "boundaries": _Key("bool", True, "fit the (GCS, age) decision tree and plot it"),
        "dnn_epochs": _Key("int", 100, "maximum epochs of the dense network of Perez et al.",
                           low=1, high=100000),
    },
    "ablation": {
        "preset": _Key("str", "mt_ord_gcs_bin_age", "multi-task preset whose losses are ablated",
                       choices=_PRESET_CHOICES),
        "max_configs": _Key("int", 0, "run at most this many configurations (0: all)", low=0),
    },
    "claims": {
        "run": _Key("bool", True, "test the paper's claims ('ichprog demo')"),
        "repeats": _Key("int", 1, "cross-validation repeats (other fold seeds)", low=1,
                        high=100),
        "sizes": _Key("ints", [], "cohort sizes of the learning curve ([]: none)", low=8,
                      high=100000),
        "saliency_patients": _Key("int", 4, "test patients per fold explained for C5 (0: none)",
                                  low=0, high=10000),
    },
    "saliency": {
        "methods": _Key("strs", ["guided_backprop", "guided_gradcam"], "saliency methods",
                        choices=_SALIENCY_METHODS),
        "n_patients": _Key("int", 4, "test patients explained per model", low=1, high=10000),
        "fold": _Key("int", 0, "fold whose model is explained", low=0),
    },
}


def default_config() -> dict[str, dict[str, Any]]:
    """A configuration with every key at its default (a fresh copy).

    Returns
    -------
    dict
        ``{section: {key: value}}`` following :data:`CONFIG_SCHEMA`.
    """
    return {s: {k: (list(v.default) if isinstance(v.default, list) else v.default)
                for k, v in keys.items()} for s, keys in CONFIG_SCHEMA.items()}


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
            dict: "table"}.get(type(value), type(value).__name__)


def _check_range(value: float, spec: _Key, where: str) -> None:
    lo_ok = spec.low is None or (value > spec.low if spec.low_open else value >= spec.low)
    hi_ok = spec.high is None or (value < spec.high if spec.high_open else value <= spec.high)
    if not (lo_ok and hi_ok) or (isinstance(value, float) and not math.isfinite(value)):
        lo = "-inf" if spec.low is None else ("(" if spec.low_open else "[") + f"{spec.low:g}"
        hi = "inf" if spec.high is None else f"{spec.high:g}" + (")" if spec.high_open else "]")
        if spec.low is None:
            lo = "(-inf"
        if spec.high is None:
            hi = "inf)"
        raise ConfigError(f"{where}: {value!r} is out of range; valid range {lo}, {hi}")


def _coerce(value: Any, spec: _Key, where: str) -> Any:
    kind = spec.kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected a boolean (true/false), got {_type_name(value)} "
                              f"{value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {_type_name(value)} {value!r}")
        _check_range(value, spec, where)
        return value
    if kind in ("float", "optfloat"):
        if kind == "optfloat" and value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {_type_name(value)} {value!r}")
        value = float(value)
        _check_range(value, spec, where)
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {_type_name(value)} {value!r}")
        if spec.choices is not None and value not in spec.choices:
            raise ConfigError(f"{where}: {value!r} is not one of "
                              + ", ".join(repr(c) for c in spec.choices))
        return value
    if kind in ("ints", "strs"):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected an array, got {_type_name(value)} {value!r}")
        if spec.length is not None and len(value) != spec.length:
            raise ConfigError(f"{where}: expected {spec.length} values, got {len(value)}")
        item = _Key("int" if kind == "ints" else "str", None, "", low=spec.low, high=spec.high,
                    choices=spec.choices)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    raise AssertionError(kind)  # pragma: no cover


def validate_config(raw: Mapping[str, Any], source: str = "<config>",
                    base: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Check a configuration against :data:`CONFIG_SCHEMA` and fill in the defaults.

    Parameters
    ----------
    raw
        ``{section: {key: value}}`` as read from a TOML file.
    source
        Name of the file (or other origin), used in error messages.
    base
        Values to start from instead of the defaults (e.g. a demo mode's sizes).

    Returns
    -------
    dict
        The complete configuration.

    Raises
    ------
    ConfigError
        Unknown section or key, wrong type, value out of range or not among the choices. The
        message names the file, the section and the key.

    Examples
    --------
    >>> from ichprog.cli import validate_config
    >>> validate_config({"cv": {"folds": 5}})["cv"]["folds"]
    5
    """
    cfg = default_config()
    if base is not None:
        for s, keys in base.items():
            cfg[s].update({k: (list(v) if isinstance(v, list) else v) for k, v in keys.items()})
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: a configuration must be a table of sections")
    for section, keys in raw.items():
        if section not in CONFIG_SCHEMA:
            raise ConfigError(f"{source}: unknown section [{section}]; known sections: "
                              + ", ".join(f"[{s}]" for s in CONFIG_SCHEMA))
        if not isinstance(keys, Mapping):
            raise ConfigError(f"{source}: [{section}] must be a table, got {_type_name(keys)}")
        for key, value in keys.items():
            spec = CONFIG_SCHEMA[section].get(key)
            if spec is None:
                raise ConfigError(f"{source}: unknown key '{key}' in [{section}]; known keys: "
                                  + ", ".join(CONFIG_SCHEMA[section]))
            cfg[section][key] = _coerce(value, spec, f"{source}: [{section}] {key}")
    return cfg


def load_config(path: str | os.PathLike[str] | None,
                base: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Read and validate a TOML configuration file.

    Parameters
    ----------
    path
        The file; ``None`` gives the defaults (or ``base``).
    base
        Values to start from instead of the defaults.

    Returns
    -------
    dict
        The complete configuration (see :func:`validate_config`).

    Raises
    ------
    ConfigError
        The file does not exist, is not valid TOML, or fails validation.
    """
    if path is None:
        return validate_config({}, base=base)
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"configuration file {p} does not exist")
    if tomllib is None:  # pragma: no cover
        raise ConfigError("reading TOML on Python 3.10 needs the 'tomli' package: pip install tomli")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not a UTF-8 text file: {exc}") from None
    return validate_config(raw, source=str(p), base=base)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dump_config(cfg: Mapping[str, Mapping[str, Any]]) -> str:
    """Write a configuration as TOML text (keys whose value is ``None`` are left out).

    Parameters
    ----------
    cfg
        ``{section: {key: value}}``.

    Returns
    -------
    str
        TOML that :func:`load_config` reads back to the same configuration.
    """
    lines: list[str] = []
    for section, keys in cfg.items():
        lines.append(f"[{section}]")
        for k, v in keys.items():
            if v is None:
                continue
            lines.append(f"{k} = {_toml_value(v)}")
        lines.append("")
    return "\n".join(lines)


def _parse_override(text: str) -> tuple[str, str, Any]:
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"--set {text!r}: expected SECTION.KEY=VALUE, e.g. --set train.epochs=5")
    lhs, rhs = text.split("=", 1)
    section, key = lhs.strip().split(".", 1)
    assert tomllib is not None
    try:
        value = tomllib.loads(f"v = {rhs.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = rhs.strip()  # a bare word is a string
    return section, key, value


# ------------------------------------------------------------------------------------------------
# Demo modes
# ------------------------------------------------------------------------------------------------
# The command line's names of TrainConfig fields that it spells differently.
_TRAIN_KEYS = {"max_epochs": "epochs"}


def _recipe_sections(name: str) -> dict[str, dict[str, Any]]:
    """The configuration sections (preprocess, model, train) of a registered recipe."""
    from ichprog.recipes import get_recipe

    r = get_recipe(name)
    train = {_TRAIN_KEYS.get(k, k): (0 if k == "patience" and v is None else v)
             for k, v in r.train.items()}
    return {
        "preprocess": {k: list(v) if isinstance(v, tuple) else v for k, v in r.preprocess.items()},
        "model": {"trunk": r.trunk or "", "dropout": r.dropout},
        "train": {**train, "augment": r.augment},
    }


def _demo_mode(recipe: str, **sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    base = _recipe_sections(recipe)
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return base


#: Sizes of ``ichprog demo`` (default), ``--quick`` and ``--full``, as configuration sections.
#: The default and quick modes train with the "cpu" recipe (:mod:`ichprog.recipes`), the full
#: mode with the paper's.
DEMO_MODES: dict[str, dict[str, dict[str, Any]]] = {
    "quick": _demo_mode(
        "cpu",
        data={"n_patients": 40, "phantom_shape": [32, 64, 64]},
        train={"epochs": 2},
        cv={"folds": 3, "bootstrap": 200},
        tabular={"folds": 3, "dnn_epochs": 10},
        ablation={"max_configs": 2},
        saliency={"n_patients": 2},
        claims={"saliency_patients": 2},
    ),
    "default": _demo_mode(
        "cpu",
        data={"n_patients": 128, "phantom_shape": [32, 96, 96]},
        cv={"folds": 4, "bootstrap": 1000},
        tabular={"folds": 10, "dnn_epochs": 30},
        ablation={"max_configs": 3},
        saliency={"n_patients": 4},
    ),
    "full": _demo_mode(
        "paper",
        data={"n_patients": 261, "phantom_shape": [40, 301, 301]},
        preprocess={"shape": [40, 301, 301]},
        model={"trunk": "densenet121"},
        train={"epochs": 100, "patience": 20, "batch_size": 8, "accumulation_steps": 3,
               "precision": "auto"},
        cv={"folds": 10, "bootstrap": 1000},
        tabular={"folds": 10, "dnn_epochs": 100},
        ablation={"max_configs": 0},
        saliency={"n_patients": 27},
        claims={"repeats": 3},
    ),
}


# ------------------------------------------------------------------------------------------------
# Run folder: manifest, stage markers, reuse
# ------------------------------------------------------------------------------------------------
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
        mpath = out / "run.json"
        self.manifest: dict[str, Any] = {}
        if mpath.is_file():
            with contextlib.suppress(json.JSONDecodeError, OSError):
                self.manifest = json.loads(mpath.read_text(encoding="utf-8"))
        versions = package_versions(MANIFEST_PACKAGES, source="distribution")
        self.manifest.update({"command": command, "versions": versions,
                              "title": f"ichprog report: {cfg['run']['name']}"})
        self.manifest.setdefault("timings", {})
        self.manifest["reused"] = []
        self.manifest.setdefault("labels", {})
        (out / "config.toml").write_text(dump_config(cfg), encoding="utf-8")
        self.save()

    def say(self, msg: str) -> None:
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)

    def save(self) -> None:
        write_text(self.out / "run.json", json.dumps(self.manifest, indent=2, default=str))

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
        (self.out / stage / ".done.json").write_text(json.dumps({"key": _hash(key)}),
                                                     encoding="utf-8")

    @contextlib.contextmanager
    def stage(self, name: str, key: Any) -> Iterator[bool]:
        """Yield ``True`` when the stage must run; ``False`` when it is reused."""
        if self.done(name, key):
            self.say(f"[{name}] reusing the finished results in {self.out / name}")
            self.manifest["reused"].append(name)
            self.save()
            yield False
            return
        self.say(f"[{name}] running ...")
        t0 = time.perf_counter()
        yield True
        dt = time.perf_counter() - t0
        self.manifest["timings"][name] = round(dt, 2)
        self.mark_done(name, key)
        self.save()
        self.say(f"[{name}] done in {dt:.1f} s")


# ------------------------------------------------------------------------------------------------
# Stages
# ------------------------------------------------------------------------------------------------
def _stage_key(cfg: Mapping[str, Any], *sections: str) -> dict[str, Any]:
    return {s: cfg[s] for s in sections} | {"seed": cfg["run"]["seed"], "version": __version__}


def _load_cohort(run: _Run) -> Any:
    """The cohort of the configuration: the phantom (generated once under ``out/phantom``) or
    the user's table and scans."""
    cfg = run.cfg
    data = cfg["data"]
    if data["source"] == "table":
        from ichprog.data import load_cohort

        if not data["table"]:
            raise ConfigError("[data] source = 'table' needs [data] table = 'path/to/table.csv'")
        table = Path(data["table"])
        if not table.is_file():
            raise ConfigError(f"[data] table: file {table} does not exist")
        cohort = load_cohort(table, image_dir=data["image_dir"] or None,
                             mask_dir=data["mask_dir"] or None)
        run.manifest["phantom"] = False
    else:
        from ichprog.data import make_phantom_cohort

        pdir = run.out / "phantom"
        key = _stage_key(cfg, "data")
        with run.stage("phantom", key) as todo:
            if todo:
                _forget_results(run)
                make_phantom_cohort(n=data["n_patients"], seed=cfg["run"]["seed"], out_dir=pdir,
                                    shape=tuple(data["phantom_shape"]),
                                    progress=cfg["run"]["progress"], overwrite=True)
        from ichprog.data import load_cohort

        cohort = load_cohort(pdir / "clinical.csv", image_dir=pdir,
                             mask_dir=pdir / "masks" if (pdir / "masks").is_dir() else None)
        run.manifest["phantom"] = True
    _describe_cohort(run, cohort)
    return cohort


#: What the stages write, computed from the cohort: removed when the phantom is generated anew.
_DERIVED = ("tabular", "cv", "ablation", "saliency", "train", "cache", "splits.json")


def _forget_results(run: _Run) -> None:
    """A new phantom cohort reuses the patient IDs of the old one: drop everything computed on
    the old cohort so that no finished fold or cached volume is reused by mistake."""
    import shutil

    gone = [n for n in _DERIVED if (run.out / n).exists()]
    if not gone:
        return
    run.say(f"[phantom] the cohort settings changed: removing the results computed on the "
            f"previous cohort ({', '.join(gone)})")
    for n in gone:
        path = run.out / n
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    run.manifest["timings"] = {}


def _describe_cohort(run: _Run, cohort: Any) -> None:
    labels = [int(v) for v in cohort.labels]
    gcs = cohort.table[GCS_COLUMN].astype(int).value_counts().sort_index()
    run.manifest["cohort"] = {
        "source": "phantom cohort (synthetic)" if run.manifest.get("phantom") else "clinical table",
        "patients": len(cohort),
        "good prognosis (0)": labels.count(0),
        "poor prognosis (1)": labels.count(1),
        "gcs_counts": {str(k): int(v) for k, v in gcs.items()},
    }
    run.save()


def _not_available(what: str, exc: Exception) -> RuntimeError:
    return RuntimeError(f"{what} is not available in this installation of ichprog ({exc})")


def _stage_tabular(run: _Run, cohort: Any) -> None:
    cfg = run.cfg
    key = _stage_key(cfg, "data", "tabular") | {"val_fraction": cfg["cv"]["val_fraction"]}
    with run.stage("tabular", key) as todo:
        if not todo:
            return
        try:
            from ichprog import tabular
        except ImportError as exc:  # pragma: no cover
            raise _not_available("the tabular stage", exc) from exc
        out = run.out / "tabular"
        out.mkdir(parents=True, exist_ok=True)
        _run_tabular(tabular, cohort, cfg, out, run)


def _run_tabular(tabular: Any, cohort: Any, cfg: Mapping[str, Any], out: Path, run: _Run) -> None:
    import pandas as pd

    seed = cfg["run"]["seed"]
    progress = cfg["run"]["progress"]
    tab = cfg["tabular"]
    res = tabular.table1(cohort, folds=tab["folds"], seed=seed, progress=progress,
                         val_fraction=cfg["cv"]["val_fraction"],
                         params={"dnn": {"max_epochs": tab["dnn_epochs"]}})
    res.metrics().to_csv(out / "metrics.csv", index=False)
    res.predictions().to_csv(out / "predictions.csv", index=False)
    if tab["shap"]:
        rows = []
        for label, r in res.results.items():
            # the tree explainer of the random forest on all variables: exact and fast, out of
            # fold (each fold's model explains its own test patients)
            if r.model != "rf" or len(r.features) <= 2:
                continue
            imp, expl = tabular.shap_importance(r, cohort, seed=seed, return_explanation=True,
                                                progress=progress)
            rows += [{"model": label, "feature": f, "importance": float(v)}
                     for f, v in zip(imp["feature"], imp["mean_abs_shap"])]
            tabular.plot_shap(expl, out, name="shap_" + r.model, kinds=("beeswarm",),
                              title=f"SHAP values, {label}, out of fold")
        pd.DataFrame(rows, columns=["model", "feature", "importance"]).to_csv(
            out / "shap.csv", index=False)
    if tab["boundaries"]:
        cut = tabular.decision_boundaries(cohort, seed=seed)
        (out / "boundaries.json").write_text(json.dumps(cut, indent=2), encoding="utf-8")
        tabular.plot_decision_regions(cohort, out / "decision_regions.png", boundaries=cut,
                                      seed=seed)
        run.manifest.setdefault("tabular", {})["learned cut-offs"] = cut


# ------------------------------------------------------------------------------------------------
# Image models: cross-validation, ablation, saliency, training, prediction
# ------------------------------------------------------------------------------------------------
def _preprocess_config(cfg: Mapping[str, Any]) -> Any:
    from ichprog.data import PreprocessConfig

    p = cfg["preprocess"]
    return PreprocessConfig(shape=tuple(p["shape"]), window=p["window"],
                            window_level=p["window_level"], window_width=p["window_width"],
                            skull_strip=p["skull_strip"], reorient=p["reorient"])


def _train_config(cfg: Mapping[str, Any], seed: int) -> Any:
    from ichprog.training import TrainConfig

    t = cfg["train"]
    return TrainConfig(max_epochs=t["epochs"], batch_size=t["batch_size"],
                       accumulation_steps=t["accumulation_steps"], lr=t["lr"],
                       weight_decay=t["weight_decay"], patience=t["patience"] or None,
                       seed=seed, device=cfg["run"]["device"], precision=t["precision"],
                       schedule=t["schedule"], select=t["select"],
                       class_balance=t["class_balance"],
                       progress=cfg["run"]["progress"])


def _preset(cfg: Mapping[str, Any], name: str) -> Any:
    from ichprog.tasks import Preset, as_preset, get_preset

    preset = get_preset(name) if isinstance(name, str) else name
    assert isinstance(preset, Preset)
    trunk = cfg["model"]["trunk"]
    return as_preset(preset, trunk=trunk or None)


def _check_input_size(cfg: Mapping[str, Any], preset: Any) -> None:
    from ichprog.models.trunks import build_trunk

    spec = build_trunk(preset.trunk)
    shape = cfg["preprocess"]["shape"]
    if min(shape) < spec.min_size:
        raise ConfigError(
            f"[preprocess] shape: the {preset.trunk} trunk needs every side >= {spec.min_size} "
            f"voxels, got {shape}; use a larger shape or another trunk")


def _cv_kwargs(run: _Run) -> dict[str, Any]:
    """How every image model of a run is trained (the same for the cv, ablation and claims
    stages, so that each reuses the folds another trained)."""
    cfg = run.cfg
    return {"preprocess": _preprocess_config(cfg), "config": _train_config(cfg, cfg["run"]["seed"]),
            "cache_dir": run.out / "cache", "augment": cfg["train"]["augment"],
            "model_kwargs": {"dropout": cfg["model"]["dropout"]}, "preload": True,
            "overwrite": True}


def _cv_preset(run: _Run, cohort: Any, preset: Any, out: Path, splits: Any) -> dict[str, Any]:
    """Cross-validate one preset with :func:`ichprog.experiment.cross_validate` on shared
    splits; returns its tidy metrics, predictions (report format), histories and result."""
    import numpy as np
    import pandas as pd

    from ichprog.experiment import cross_validate, prediction_columns

    cfg = run.cfg
    res = cross_validate(cohort, preset, folds=len(splits.folds), seed=cfg["run"]["seed"],
                         out_dir=out, splits=splits, val_fraction=cfg["cv"]["val_fraction"],
                         name=preset.name, progress=cfg["run"]["progress"],
                         **_cv_kwargs(run))
    if res.reused_folds:
        run.say(f"  {preset.label}: reusing finished fold(s) {res.reused_folds} in {out}")
    rows = []
    p = res.predictions
    for t in preset:
        probs = p[prediction_columns(t)].to_numpy(dtype=float)
        part = pd.DataFrame({"model": p["model"], "fold": p["fold"], ID_COLUMN: p[ID_COLUMN],
                             "task": t.name, "y_true": p[f"{t.name}_true"].astype(int),
                             "score": t.score(probs), "pred": np.asarray(p[f"{t.name}_pred"])})
        rows.append(part)
    hist = res.history.copy()
    if len(hist):
        hist.insert(0, "model", preset.name)
    return {"metrics": res.metrics(), "predictions": pd.concat(rows, ignore_index=True),
            "history": hist, "result": res}


def _bootstrap(cfg: Mapping[str, Any], result: Any) -> Any:
    """Table 2: bootstrap intervals of the prognosis metrics on the configured test fold."""
    if cfg["cv"]["bootstrap"] == 0:
        return None
    fold = cfg["cv"]["bootstrap_fold"]
    if fold not in result.folds:
        raise ConfigError(f"[cv] bootstrap_fold: {fold} is out of range; folds are "
                          f"0-{max(result.folds)}")
    ci = result.bootstrap(fold=fold, n_resamples=cfg["cv"]["bootstrap"], seed=cfg["run"]["seed"],
                          tasks=["prognosis"])
    return ci.drop(columns=["task"])


def _splits(run: _Run, cohort: Any) -> Any:
    from ichprog.data import make_splits

    cfg = run.cfg
    splits = make_splits(cohort, folds=cfg["cv"]["folds"], seed=cfg["run"]["seed"],
                         val_fraction=cfg["cv"]["val_fraction"])
    splits.save(run.out / "splits.json")
    return splits


def _write_results(folder: Path, results: Sequence[Mapping[str, Any]], cfg: Mapping[str, Any],
                   bootstrap: bool) -> None:
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    pd.concat([r["metrics"] for r in results], ignore_index=True).to_csv(
        folder / "metrics.csv", index=False)
    pd.concat([r["predictions"] for r in results], ignore_index=True).to_csv(
        folder / "predictions.csv", index=False)
    hist = [r["history"] for r in results if len(r["history"])]
    if hist:
        pd.concat(hist, ignore_index=True).to_csv(folder / "history.csv", index=False)
    if bootstrap:
        cis = [c for c in (_bootstrap(cfg, r["result"]) for r in results
                           if "prognosis" in r["result"].preset.task_names) if c is not None]
        if cis:
            pd.concat(cis, ignore_index=True).to_csv(folder / "bootstrap.csv", index=False)


def _image_key(cfg: Mapping[str, Any], *extra: Any) -> dict[str, Any]:
    return _stage_key(cfg, "data", "preprocess", "model", "train") | {
        "cv": {k: cfg["cv"][k] for k in ("folds", "val_fraction")}, "extra": list(extra)}


def _stage_cv(run: _Run, cohort: Any, presets: Sequence[str]) -> None:
    cfg = run.cfg
    key = _image_key(cfg, list(presets), cfg["cv"]["bootstrap"], cfg["cv"]["bootstrap_fold"])
    with run.stage("cv", key) as todo:
        if not todo:
            return
        splits = _splits(run, cohort)
        results = []
        for name in presets:
            preset = _preset(cfg, name)
            _check_input_size(cfg, preset)
            run.manifest["labels"][preset.name] = preset.label
            run.say(f"[cv] {preset.label}: {len(splits.folds)} folds")
            results.append(_cv_preset(run, cohort, preset, run.out / "cv" / preset.name, splits))
        run.manifest["model_order"] = [_preset(cfg, n).name for n in presets]
        _write_results(run.out / "cv", results, cfg, bootstrap=True)


def _stage_ablation(run: _Run, cohort: Any) -> None:
    from ichprog.tasks import ablations

    cfg = run.cfg
    key = _image_key(cfg, cfg["ablation"])
    with run.stage("ablation", key) as todo:
        if not todo:
            return
        splits = _splits(run, cohort)
        configs = list(ablations(_preset(cfg, cfg["ablation"]["preset"])).values())
        limit = cfg["ablation"]["max_configs"]
        if limit:
            # keep the full model and the primary task alone first: the two ends of Fig. 2
            configs = ([configs[0], configs[-1]] + configs[1:-1])[:limit]
        results = []
        for preset in configs:
            _check_input_size(cfg, preset)
            run.manifest["labels"][preset.name] = preset.label
            run.say(f"[ablation] {preset.label}")
            # a configuration also cross-validated by the cv stage reuses its trained folds
            same = run.out / "cv" / preset.name
            folder = run.out / "ablation" / preset.name
            if same.is_dir() and preset.name in _PRESET_CHOICES \
                    and preset == _preset(cfg, preset.name):
                folder = same
            results.append(_cv_preset(run, cohort, preset, folder, splits))
        _write_results(run.out / "ablation", results, cfg, bootstrap=False)


def _stage_claims(run: _Run, cohort: Any) -> None:
    cfg = run.cfg
    c = cfg["claims"]
    if not c["run"]:
        return
    key = _image_key(cfg, c, cfg["cv"]["bootstrap"])
    with run.stage("claims", key) as todo:
        if not todo:
            return
        from ichprog.experiment import check_claims

        run.say(f"[claims] C1-C6 on {c['repeats']} x {cfg['cv']['folds']} folds"
                + (f", learning curve at n = {c['sizes']}" if c["sizes"] else ""))
        kwargs = _cv_kwargs(run)
        # the trunk of the cv stage's presets: the recipe must not replace it differently
        kwargs["recipe"] = "paper"
        kwargs["trunk"] = cfg["model"]["trunk"] or None
        res = check_claims(cohort, repeats=c["repeats"], folds=cfg["cv"]["folds"],
                           seed=cfg["run"]["seed"], val_fraction=cfg["cv"]["val_fraction"],
                           sizes=c["sizes"] or None, saliency_patients=c["saliency_patients"],
                           n_resamples=cfg["cv"]["bootstrap"] or 1000, out_dir=run.out / "cv",
                           cv_kwargs=kwargs, progress=cfg["run"]["progress"])
        res.save(run.out / "claims")
        res.summary().to_csv(run.out / "claims.csv", index=False)
        if len(res.learning_curve):
            import matplotlib.pyplot as plt

            plt.close(res.plot_learning_curve(run.out / "claims" / "learning_curve.png"))
        run.manifest["claims"] = {"seconds": res.settings.get("seconds"),
                                  "verdicts": dict(zip(res.claims["claim"],
                                                       res.claims["verdict"]))}


def _load_fitted(folder: Path) -> Any:
    """A model saved by ``ichprog train`` or ``ichprog cv`` (:class:`ichprog.FittedModel`)."""
    from ichprog.experiment import FittedModel

    if not (folder / "fitted.json").is_file() and (folder / "model" / "fitted.json").is_file():
        folder = folder / "model"
    return FittedModel.load(folder)


def _pick_patients(ids: Sequence[str], labels: Mapping[str, int], n: int) -> list[str]:
    """Up to ``n`` patients, alternating poor and good prognosis, in fold order."""
    poor = [i for i in ids if labels[i] == 1]
    good = [i for i in ids if labels[i] == 0]
    out: list[str] = []
    while len(out) < n and (poor or good):
        for group in (poor, good):
            if group and len(out) < n:
                out.append(group.pop(0))
    return out


def _stage_saliency(run: _Run, cohort: Any) -> None:
    import pandas as pd

    cfg = run.cfg
    order = run.manifest.get("model_order") or []
    key = _image_key(cfg, cfg["saliency"], order)
    with run.stage("saliency", key) as todo:
        if not todo:
            return
        from ichprog import saliency
        from ichprog.data import Splits, VolumeCache, load_volume

        split_path = run.out / "splits.json"
        if not order or not split_path.is_file():
            raise ConfigError(f"no cross-validated models in {run.out}; run 'ichprog cv --out "
                              f"{run.out}' first")
        fold_index = cfg["saliency"]["fold"]
        splits = Splits.load(split_path)
        if fold_index >= len(splits.folds):
            raise ConfigError(f"[saliency] fold: {fold_index} is out of range; the run has "
                              f"{len(splits.folds)} folds (0-{len(splits.folds) - 1})")
        fold = splits.folds[fold_index]
        labels = dict(zip(cohort.ids, cohort.labels.tolist()))
        ids = _pick_patients(fold.test, labels, cfg["saliency"]["n_patients"])
        models, pcfg = {}, None
        for name in order:
            fitted = _load_fitted(run.out / "cv" / name / f"fold_{fold_index:02d}")
            models[name], pcfg = fitted.model, fitted.preprocess
        assert pcfg is not None
        cache = VolumeCache(run.out / "cache", pcfg)
        volumes = {i: cache.get(cohort.image_path(i)) for i in ids}
        masks = {}
        for i in ids:
            mpath = cohort.mask_path(i)
            if mpath is not None:
                marr, maff = load_volume(mpath)
                masks[i] = saliency.mask_to_input_space(marr, maff, pcfg)
        out = run.out / "saliency"
        out.mkdir(parents=True, exist_ok=True)
        labels_txt = run.manifest.get("labels", {})
        tables = []
        for method in cfg["saliency"]["methods"]:
            res = saliency.compute_maps(models, volumes, method=method, task="prognosis",
                                        target=1, threshold=0.5,
                                        progress=cfg["run"]["progress"])
            rows = {i: f"{'poor' if labels[i] else 'good'} prognosis ({i})" for i in ids}
            fig = saliency.plot_model_grid(volumes, res, masks=masks or None, row_labels=rows,
                                           model_labels={m: labels_txt.get(m, m) for m in order})
            fig.savefig(out / f"{method}.png", dpi=100, bbox_inches="tight", facecolor="white")
            if masks:
                brains = {i: saliency.brain_mask(v) for i, v in volumes.items() if i in masks}
                sc = saliency.lesion_scores({m: {i: res.maps[m][i] for i in masks}
                                             for m in res.maps}, masks, brain_masks=brains)
                sc.insert(0, "method", method)
                tables.append(sc)
        if tables:
            pd.concat(tables, ignore_index=True).to_csv(out / "lesion_scores.csv", index=False)
        run.manifest["saliency"] = {"fold": fold_index, "patients": ids}


def _cmd_saliency(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    old = args.out / "config.toml"
    if getattr(args, "config", None) is None and old.is_file():
        args.config = old  # explain the run with the settings it was trained with
    run = _start(args)
    cohort = _load_cohort(run)
    _stage_saliency(run, cohort)
    _finish(run, t0)
    run.say(f"saliency maps in {run.out / 'saliency'}")
    return EXIT_OK


def _cmd_train(args: argparse.Namespace) -> int:
    from ichprog.experiment import fit_multitask

    t0 = time.perf_counter()
    run = _start(args)
    cfg = run.cfg
    cohort = _load_cohort(run)
    preset = _preset(cfg, cfg["model"]["preset"])
    _check_input_size(cfg, preset)
    _describe_run(run, "train")
    seed = cfg["run"]["seed"]
    out = run.out / "train"
    with run.stage("train", _image_key(cfg, preset.name)) as todo:
        if todo:
            fit_multitask(cohort, preset, preprocess=_preprocess_config(cfg),
                          config=_train_config(cfg, seed), val_fraction=cfg["cv"]["val_fraction"],
                          seed=seed, out_dir=out, cache_dir=run.out / "cache",
                          augment=cfg["train"]["augment"],
                          model_kwargs={"dropout": cfg["model"]["dropout"]}, preload=True,
                          overwrite=True, progress=cfg["run"]["progress"])
    fitted = _load_fitted(out)
    run.manifest["train"] = {k: fitted.info.get(k) for k in ("best_epoch", "epochs_run",
                                                              "stop_reason")}
    _finish(run, t0)
    run.say(f"model in {out / 'model'} (best epoch {fitted.info.get('best_epoch')} of "
            f"{fitted.info.get('epochs_run')}); predict with "
            f"'ichprog predict --model {out / 'model'} SCAN...'")
    return EXIT_OK


def _cmd_predict(args: argparse.Namespace) -> int:
    if not args.model.is_dir():
        raise ConfigError(f"--model: folder {args.model} does not exist")
    missing = [str(s) for s in args.scans if not s.is_file()]
    if missing:
        raise ConfigError("scan file(s) not found: " + ", ".join(missing))
    fitted = _load_fitted(args.model)
    df = fitted.predict([str(s) for s in args.scans], progress=not args.no_progress)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.out)
        if not args.quiet:
            print(f"wrote {args.out}")
    else:
        print(df.to_string())
    return EXIT_OK


#: The claims section of ``ichprog demo --long-claims``.
LONG_CLAIMS: dict[str, Any] = {"repeats": 3, "sizes": [64, 96, 128]}


def _cmd_demo(args: argparse.Namespace) -> int:
    from ichprog.report import build_report

    t0 = time.perf_counter()
    mode = "quick" if args.quick else "full" if args.full else "default"
    base = {k: dict(v) for k, v in DEMO_MODES[mode].items()}
    base["run"] = {"name": f"phantom demo ({mode})"}
    if args.long_claims:
        base["claims"] = {**base.get("claims", {}), **LONG_CLAIMS}
    run = _start(args, base=base)
    cfg = run.cfg
    if cfg["data"]["source"] != "phantom":
        run.say("note: the demo runs on your cohort ([data] source = 'table')")
    run.manifest["mode"] = mode
    if mode == "full" and _device_text(cfg["run"]["device"]).startswith("cpu"):
        run.say("warning: --full runs the paper's protocol (DenseNet121 at 40 x 301 x 301, 10 "
                "folds, up to 100 epochs); without a GPU it takes days. Interrupt with Ctrl-C "
                "at any time: finished folds are kept and reused.")
    cohort = _load_cohort(run)
    _describe_run(run, "phantom", "tabular", "cv", "ablation", "saliency", "report")
    run.manifest["summary"]["demo mode"] = mode
    run.manifest["subtitle"] = (f"ichprog demo ({mode} mode), {time.strftime('%Y-%m-%d %H:%M')}, "
                                f"ichprog {__version__}")
    run.manifest["notes"] = _demo_notes(cfg, mode)
    run.save()
    _stage_tabular(run, cohort)
    _stage_cv(run, cohort, cfg["cv"]["models"])
    _stage_ablation(run, cohort)
    _stage_saliency(run, cohort)
    _stage_claims(run, cohort)
    _finish(run, t0)
    paths = build_report(run.out)
    run.say(f"report: {paths['html']} (Markdown: {paths['markdown']}); total "
            f"{_duration(run.manifest['wall_time_s'])}")
    return EXIT_OK


def _demo_notes(cfg: Mapping[str, Any], mode: str) -> list[str]:
    notes = []
    if mode != "full":
        notes.append(
            "CPU sizes: a DenseNet121 training step at the paper's input of 1 x 40 x 301 x 301 "
            "costs about 4.4 s per sample on a CPU (float32), so this run uses a smaller input "
            f"({' x '.join(map(str, cfg['preprocess']['shape']))}) and the "
            f"'{cfg['model']['trunk'] or 'preset'}' trunk, {cfg['cv']['folds']} folds and "
            f"{cfg['train']['epochs']} epochs. `ichprog demo --full` runs the paper's protocol "
            "(10 folds, 100 epochs, 40 x 301 x 301, DenseNet121) on a GPU.")
    return notes


# ------------------------------------------------------------------------------------------------
# Argument parsing
# ------------------------------------------------------------------------------------------------
_EPILOG_EXIT = textwrap.dedent("""\
    exit codes: 0 success, 2 usage or configuration error, 1 runtime failure, 130 interrupted.
    """)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def _add_common(p: argparse.ArgumentParser, out_required: bool = True) -> None:
    p.add_argument("--out", "-o", type=Path, required=out_required, metavar="DIR",
                   help="output folder (created if missing; finished stages in it are reused)")
    p.add_argument("--config", "-c", type=Path, metavar="FILE",
                   help="TOML configuration file (see configs/ and docs/cli.md)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE",
                   help="override one configuration value, e.g. --set train.epochs=5 "
                        "(repeatable; applied after --config)")
    p.add_argument("--seed", type=int, metavar="N", help="master seed (run.seed)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--quiet", "-q", action="store_true", help="print only errors")


def _add_data(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data (default: the phantom cohort)")
    g.add_argument("--table", type=Path, metavar="CSV",
                   help="clinical table of your cohort (sets data.source = 'table')")
    g.add_argument("--image-dir", type=Path, metavar="DIR", help="folder of the scans")
    g.add_argument("--mask-dir", type=Path, metavar="DIR", help="folder of lesion masks")
    g.add_argument("--n-patients", type=int, metavar="N", help="phantom cohort size")
    g.add_argument("--shape", type=int, nargs=3, metavar=("D", "H", "W"),
                   help="network input size after pre-processing (preprocess.shape)")


def _add_model(p: argparse.ArgumentParser, preset: bool = True) -> None:
    g = p.add_argument_group("model and training")
    if preset:
        g.add_argument("--preset", metavar="NAME", help="model preset: " + ", ".join(_PRESET_CHOICES))
    g.add_argument("--trunk", metavar="NAME", help="trunk: densenet121, densenet_tiny, perez2023")
    g.add_argument("--epochs", type=int, metavar="N", help="maximum epochs (train.epochs)")
    g.add_argument("--folds", type=int, metavar="K", help="cross-validation folds (cv.folds)")
    g.add_argument("--device", metavar="DEV", help="auto, cpu, cuda or mps (run.device)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ichprog`` with every subcommand.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog="ichprog",
        formatter_class=_Formatter,
        description="Prognosis after intracranial hemorrhage from head CT: multi-task 3D models, "
                    "tabular baselines, saliency maps and reports.",
        epilog=textwrap.dedent("""\
            examples:
              ichprog demo --out demo-out              # the whole protocol on the phantom (CPU, <15 min)
              ichprog demo --quick --out demo-quick    # the same, smaller (about 2 min)
              ichprog phantom --out runs/p --n-patients 60
              ichprog cv --preset mt_ord_gcs_bin_age --out runs/cv --folds 5 --epochs 10
              ichprog cv --config configs/paper.toml --out runs/paper
              ichprog report runs/cv

            """) + _EPILOG_EXIT,
    )
    parser.add_argument("--version", action="version", version=f"ichprog {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_: str, examples: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_, formatter_class=_Formatter,
                           epilog="examples:\n" + textwrap.indent(textwrap.dedent(examples), "  ")
                           + "\n" + _EPILOG_EXIT)
        p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
        return p

    p = add("demo", "Run the whole protocol on the phantom cohort and write DIR/report.html.", """\
        ichprog demo --out demo-out            # default: CPU, at most 15 minutes
        ichprog demo --quick --out demo-quick  # about 2 minutes
        ichprog demo --full --out demo-full    # the paper's sizes (needs a GPU)
        """)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes, about 2 minutes on a CPU")
    mode.add_argument("--full", action="store_true",
                      help="the paper's protocol: 261 patients, 40x301x301, DenseNet121, 10 folds, "
                           "100 epochs (GPU work)")
    p.add_argument("--long-claims", action="store_true",
                   help="test the paper's claims on 3 repeats of the folds with a learning curve "
                        "at 64, 96 and 128 patients (default mode: about 30 minutes on 2 CPU "
                        "cores)")
    _add_common(p)
    _add_data(p)
    _add_model(p, preset=False)

    p = add("phantom", "Generate a phantom cohort (synthetic scans, masks and clinical table).",
            """\
        ichprog phantom --out phantom-60 --n-patients 60
        ichprog phantom --out phantom --set data.phantom_shape=[40,128,128]
        """)
    _add_common(p)
    p.add_argument("--n-patients", type=int, metavar="N", help="cohort size (data.n_patients)")

    p = add("tabular", "Cross-validate the tabular baselines (Table 1) with SHAP importances.",
            """\
        ichprog tabular --out runs/tab
        ichprog tabular --out runs/tab --table CLINICAL_DATA_ICH.csv --folds 10
        """)
    _add_common(p)
    _add_data(p)
    p.add_argument("--folds", type=int, metavar="K", help="folds (tabular.folds)")

    p = add("train", "Train one model on the whole cohort (10 %% held out for early stopping).",
            """\
        ichprog train --preset mt_ord_gcs_bin_age --out runs/model --epochs 20
        ichprog train --config configs/cpu-small.toml --out runs/model
        """)
    _add_common(p)
    _add_data(p)
    _add_model(p)

    p = add("cv", "Cross-validate one or more presets (Tables 2-4).", """\
        ichprog cv --preset mt_ord_gcs_bin_age --out runs/cv --folds 5 --epochs 10
        ichprog cv --preset baseline_densenet --preset mt_bin_gcs_bin_age --out runs/cv
        ichprog cv --config configs/paper.toml --out runs/paper
        """)
    _add_common(p)
    _add_data(p)
    _add_model(p, preset=False)
    p.add_argument("--preset", action="append", metavar="NAME",
                   help="preset to cross-validate (repeatable; default cv.models)")

    p = add("ablation", "Ablate the loss terms of a multi-task preset (Fig. 2).", """\
        ichprog ablation --out runs/abl --preset mt_ord_gcs_bin_age --folds 5
        """)
    _add_common(p)
    _add_data(p)
    _add_model(p)

    p = add("predict", "Predict every task of a trained model on new scans.", """\
        ichprog train --out runs/m --preset mt_ord_gcs_bin_age
        ichprog predict --model runs/m/train/model scan1.nii.gz scan2.nii.gz --out preds.csv
        """)
    p.add_argument("--model", type=Path, required=True, metavar="DIR",
                   help="a saved model folder (DIR/train/model of 'ichprog train', or a fold's "
                        "DIR/cv/<preset>/fold_00/model)")
    p.add_argument("scans", nargs="+", type=Path, metavar="SCAN", help="NIfTI files")
    p.add_argument("--out", "-o", type=Path, metavar="CSV",
                   help="write the predictions to this CSV (default: print them)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--quiet", "-q", action="store_true", help="print only errors")

    p = add("saliency", "Saliency maps and lesion scores of cross-validated models.", """\
        ichprog saliency --out runs/cv               # explains the models of 'ichprog cv'
        ichprog saliency --out runs/cv --set saliency.n_patients=8
        """)
    _add_common(p)

    p = add("report", "Build DIR/report.html and DIR/report.md from a run folder.", """\
        ichprog report demo-out
        ichprog report runs/cv --out reports/cv
        """)
    p.add_argument("run_dir", type=Path, metavar="DIR", help="a run folder")
    p.add_argument("--out", "-o", type=Path, metavar="DIR", help="write the report here instead")
    p.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    return parser


def _config_from_args(args: argparse.Namespace,
                      base: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    cfg = load_config(getattr(args, "config", None), base=base)
    over: dict[str, dict[str, Any]] = {}

    def put(section: str, key: str, value: Any) -> None:
        over.setdefault(section, {})[key] = value

    for text in getattr(args, "overrides", []) or []:
        s, k, v = _parse_override(text)
        put(s, k, v)
    flag_map = {
        "seed": ("run", "seed"), "device": ("run", "device"), "n_patients": ("data", "n_patients"),
        "trunk": ("model", "trunk"), "epochs": ("train", "epochs"),
    }
    for attr, (s, k) in flag_map.items():
        v = getattr(args, attr, None)
        if v is not None:
            put(s, k, v)
    if getattr(args, "shape", None) is not None:
        put("preprocess", "shape", list(args.shape))
    if getattr(args, "table", None) is not None:
        put("data", "source", "table")
        put("data", "table", str(args.table))
    for attr in ("image_dir", "mask_dir"):
        if getattr(args, attr, None) is not None:
            put("data", attr, str(getattr(args, attr)))
    if getattr(args, "folds", None) is not None:
        put("tabular" if args.command == "tabular" else "cv", "folds", args.folds)
    preset = getattr(args, "preset", None)
    if isinstance(preset, str):
        put("ablation" if args.command == "ablation" else "model", "preset", preset)
    elif isinstance(preset, list):
        put("cv", "models", preset)
    if getattr(args, "no_progress", False):
        put("run", "progress", False)
    if over:
        cfg = validate_config(over, source="command line", base=cfg)
    return cfg


# ------------------------------------------------------------------------------------------------
# Commands
# ------------------------------------------------------------------------------------------------
_Handler = Callable[[argparse.Namespace], int]


def _cmd_report(args: argparse.Namespace) -> int:
    from ichprog.report import build_report

    if not args.run_dir.is_dir():
        raise ConfigError(f"run folder {args.run_dir} does not exist")
    paths = build_report(args.run_dir, out_dir=args.out)
    if not args.quiet:
        print(f"wrote {paths['html']} and {paths['markdown']}")
    return EXIT_OK


def _start(args: argparse.Namespace, base: Mapping[str, Mapping[str, Any]] | None = None) -> _Run:
    cfg = _config_from_args(args, base=base)
    command = "ichprog " + " ".join(getattr(args, "argv", []) or [args.command])
    return _Run(Path(args.out), cfg, command=command, quiet=bool(getattr(args, "quiet", False)))


def _finish(run: _Run, t0: float) -> None:
    run.manifest["wall_time_s"] = round(time.perf_counter() - t0, 1)
    run.manifest.setdefault("summary", {})["wall time"] = _duration(run.manifest["wall_time_s"])
    run.save()


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


def _cmd_phantom(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    run = _start(args)
    if run.cfg["data"]["source"] != "phantom":
        raise ConfigError("'ichprog phantom' generates a phantom cohort; [data] source must be "
                          "'phantom'")
    cohort = _load_cohort(run)
    _finish(run, t0)
    run.say(f"phantom cohort of {len(cohort)} patients in {run.out / 'phantom'}")
    return EXIT_OK


def _cmd_tabular(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    run = _start(args)
    cohort = _load_cohort(run)
    _stage_tabular(run, cohort)
    _finish(run, t0)
    run.say(f"tabular results in {run.out / 'tabular'}")
    return EXIT_OK


def _cmd_cv(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    run = _start(args)
    cohort = _load_cohort(run)
    _describe_run(run, "cv")
    _stage_cv(run, cohort, run.cfg["cv"]["models"])
    _finish(run, t0)
    run.say(f"cross-validation results in {run.out / 'cv'}; 'ichprog report {run.out}' "
            "builds the report")
    return EXIT_OK


def _cmd_ablation(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    run = _start(args)
    cohort = _load_cohort(run)
    _describe_run(run, "ablation")
    _stage_ablation(run, cohort)
    _finish(run, t0)
    run.say(f"ablation results in {run.out / 'ablation'}")
    return EXIT_OK


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
    run.manifest["summary"] = s
    run.save()


_HANDLERS: dict[str, _Handler] = {"report": _cmd_report, "phantom": _cmd_phantom,
                                  "tabular": _cmd_tabular, "cv": _cmd_cv,
                                  "ablation": _cmd_ablation, "saliency": _cmd_saliency,
                                  "train": _cmd_train, "predict": _cmd_predict, "demo": _cmd_demo}


def _summarize_warnings(caught: Sequence[warnings.WarningMessage], quiet: bool) -> None:
    """One line per kind of warning raised while running (``--debug`` shows each one)."""
    if quiet or not caught:
        return
    kinds: dict[str, list[str]] = {}
    for w in caught:
        kinds.setdefault(w.category.__name__, []).append(str(w.message).splitlines()[0])
    for name, msgs in kinds.items():
        first = msgs[0] if len(msgs[0]) <= 160 else msgs[0][:157] + "..."
        more = f" (and {len(msgs) - 1} more like it)" if len(msgs) > 1 else ""
        print(f"warning: {name}: {first}{more}", file=sys.stderr)
    if "UndefinedMetricWarning" in kinds:
        print("note: a metric undefined on a fold (e.g. NPV without a negative prediction) is "
              "left out of that fold's mean; the report marks such cells with (n/N)",
              file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ichprog`` console script.

    Parameters
    ----------
    argv
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit code: 0 success, 2 usage or configuration error, 1 runtime failure, 130
        interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help/--version
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    debug = bool(getattr(args, "debug", False))
    try:
        if debug:
            return _HANDLERS[args.command](args)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code = _HANDLERS[args.command](args)
        _summarize_warnings(caught, quiet=bool(getattr(args, "quiet", False)))
        return code
    except ConfigError as exc:
        if debug:
            raise
        print(f"ichprog {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"ichprog {args.command}: interrupted; finished stages are kept and will be "
              "reused", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, KeyError, FileNotFoundError, NotADirectoryError, PermissionError,
            RuntimeError, TypeError, OSError) as exc:
        if debug:
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"ichprog {args.command}: error: {msg}", file=sys.stderr)
        print("(run again with --debug for the traceback)", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
