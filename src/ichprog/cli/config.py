"""The configuration of a run: :data:`CONFIG_SCHEMA` (every section and key with type, default
and range), validation, TOML reading and writing, ``--set`` overrides and command-line flags, and
the sizes of ``ichprog demo`` (:data:`DEMO_MODES`, built from the registered recipes)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ichprog.cli.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 needs the tomli backport
    try:
        import tomli as tomllib
    except ImportError:  # pragma: no cover
        tomllib = None  # type: ignore[assignment]


class _Derived:
    """A default or a list of choices that the schema reads from the library's own
    configuration classes and registries on first use (they import numpy and torch, which
    ``import ichprog.cli`` must not)."""

    def __init__(self, read: Callable[[], Any], source: str):
        self.read = read
        self.source = source
        self._value: Any = _UNREAD

    def get(self) -> Any:
        if self._value is _UNREAD:
            self._value = self.read()
        return self._value

    def __repr__(self) -> str:
        return f"<from {self.source}>"


_UNREAD = object()


def _resolve(value: Any) -> Any:
    return value.get() if isinstance(value, _Derived) else value


class _Key:
    """One configuration key: kind (``"int"``, ``"float"``, ``"bool"``, ``"str"``, ``"ints"``,
    ``"strs"``, ``"optfloat"``), default, help and valid range or choices. A default or choice
    list may be :class:`_Derived`; :attr:`default` and :attr:`choices` give its value."""

    __slots__ = ("kind", "_default", "help", "low", "high", "low_open", "high_open", "_choices",
                 "length")

    def __init__(self, kind: str, default: Any, help: str, low: float | None = None,
                 high: float | None = None, low_open: bool = False, high_open: bool = False,
                 choices: tuple[str, ...] | _Derived | None = None, length: int | None = None):
        self.kind = kind
        self._default = default
        self.help = help
        self.low = low
        self.high = high
        self.low_open = low_open
        self.high_open = high_open
        self._choices = choices
        self.length = length

    @property
    def default(self) -> Any:
        return _resolve(self._default)

    @property
    def choices(self) -> tuple[str, ...] | None:
        value = _resolve(self._choices)
        return None if value is None else tuple(value)

    def __repr__(self) -> str:
        return (f"_Key({self.kind!r}, default={self._default!r}, choices={self._choices!r}, "
                f"low={self.low!r}, high={self.high!r})")


# -- what the schema derives from the library ----------------------------------------------------
# The command line's names of TrainConfig fields that it spells differently.
_TRAIN_KEYS = {"max_epochs": "epochs"}


def _presets() -> tuple[str, ...]:
    from ichprog.tasks import PRESETS

    return tuple(PRESETS)


def _trunks() -> tuple[str, ...]:
    """The registered trunks, and ``""`` (keep the preset's)."""
    from ichprog.models import TRUNKS

    return (*TRUNKS, "")


def _saliency_methods() -> tuple[str, ...]:
    from ichprog.saliency import METHODS

    return tuple(METHODS)


def _tabular_models() -> tuple[str, ...]:
    from ichprog.tabular import MODEL_NAMES

    return tuple(MODEL_NAMES)


def _field_default(cls: Any, name: str) -> Any:
    import dataclasses

    return {f.name: f.default for f in dataclasses.fields(cls)}[name]


def _literal_choices(cls: Any, name: str) -> tuple[str, ...]:
    """The values of a field annotated with a ``Literal``."""
    import typing

    return tuple(typing.get_args(typing.get_type_hints(cls)[name]))


def _train(name: str) -> _Derived:
    """The default of a :class:`~ichprog.training.TrainConfig` field (a ``None`` patience
    reads 0, the command line's "off")."""
    def read() -> Any:
        from ichprog.training import TrainConfig

        value = _field_default(TrainConfig, name)
        return 0 if name == "patience" and value is None else value

    return _Derived(read, f"TrainConfig.{name}")


def _train_choices(name: str) -> _Derived:
    def read() -> tuple[str, ...]:
        from ichprog.training import TrainConfig

        return _literal_choices(TrainConfig, name)

    return _Derived(read, f"TrainConfig.{name}")


def _preprocess(name: str, choices: bool = False) -> _Derived:
    """The default (or, for a ``Literal`` field, the choices) of a
    :class:`~ichprog.data.PreprocessConfig` field."""
    def read() -> Any:
        from ichprog.data import PreprocessConfig

        return (_literal_choices(PreprocessConfig, name) if choices
                else _field_default(PreprocessConfig, name))

    return _Derived(read, f"PreprocessConfig.{name}")


def _tabular_default(name: str) -> _Derived:
    """The default of a :class:`~ichprog.tabular.PerezDNNClassifier` argument."""
    def read() -> Any:
        import inspect

        from ichprog.tabular import PerezDNNClassifier

        return inspect.signature(PerezDNNClassifier).parameters[name].default

    return _Derived(read, f"PerezDNNClassifier({name})")


def _executors() -> tuple[str, ...]:
    from ichprog.experiment.executors import EXECUTORS

    return tuple(EXECUTORS)


def _cv_default(name: str) -> _Derived:
    """The default of a :func:`~ichprog.experiment.cross_validate` argument."""
    def read() -> Any:
        import inspect

        from ichprog.experiment import cross_validate

        return inspect.signature(cross_validate).parameters[name].default

    return _Derived(read, f"cross_validate({name})")


def _ray_default(name: str) -> _Derived:
    """The default of a :class:`~ichprog.experiment.RayExecutor` argument."""
    def read() -> Any:
        import inspect

        from ichprog.experiment.executors import RayExecutor

        return inspect.signature(RayExecutor).parameters[name].default

    return _Derived(read, f"RayExecutor({name})")


_PRESET_NAMES = _Derived(_presets, "ichprog.tasks.PRESETS")
_TRUNK_NAMES = _Derived(_trunks, "ichprog.models.TRUNKS")
_METHOD_NAMES = _Derived(_saliency_methods, "ichprog.saliency.METHODS")


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
        "window": _Key("str", _preprocess("window"), "'clip' (default) or 'bandpass' (the "
                       "authors' scripts)", choices=_preprocess("window", choices=True)),
        "window_level": _Key("float", _preprocess("window_level"), "Hounsfield window centre "
                             "(the paper's: 57.5)", low=-1024.0, high=3071.0),
        "window_width": _Key("float", _preprocess("window_width"), "Hounsfield window width (the "
                             "paper's: 85)", low=0.0, low_open=True, high=4096.0),
        "skull_strip": _Key("bool", _preprocess("skull_strip"), "strip the skull (already "
                            "stripped scans pass through)"),
        "reorient": _Key("bool", _preprocess("reorient"), "reorient to the closest canonical "
                         "orientation"),
    },
    "model": {
        "preset": _Key("str", "mt_ord_gcs_bin_age", "the tasks and trunk (see ichprog.tasks)",
                       choices=_PRESET_NAMES),
        "trunk": _Key("str", "", "trunk overriding the preset's ('' keeps it)",
                      choices=_TRUNK_NAMES),
        "dropout": _Key("optfloat", None, "trunk dropout (default: the trunk's own)", low=0.0,
                        high=1.0, high_open=True),
    },
    "train": {
        "epochs": _Key("int", _train("max_epochs"), "maximum number of epochs", low=1,
                       high=100000),
        "batch_size": _Key("int", _train("batch_size"), "samples per forward pass", low=1,
                           high=4096),
        "accumulation_steps": _Key("int", _train("accumulation_steps"), "batches per optimizer "
                                   "step", low=1, high=1024),
        "lr": _Key("float", _train("lr"), "AdamW learning rate", low=0.0, low_open=True,
                   high=10.0),
        "weight_decay": _Key("float", _train("weight_decay"), "AdamW weight decay", low=0.0,
                             high=10.0),
        "patience": _Key("int", _train("patience"), "early-stopping patience in epochs (0: off)",
                         low=0),
        "schedule": _Key("str", _train("schedule"), "learning-rate schedule: 'constant' (the "
                         "paper's) or 'onecycle'", choices=_train_choices("schedule")),
        "select": _Key("str", _train("select"), "weights kept: 'best' validation epoch (the "
                       "paper's), 'last' epoch or 'val_loss' (lowest validation loss)", choices=_train_choices("select")),
        "class_balance": _Key("bool", _train("class_balance"), "weight the positive targets of "
                              "every binary and ordinal output by negatives / positives"),
        "tta": _Key("str", _train("tta"), "test-time augmentation: 'none' (the paper's) or "
                    "'flip' (mean with the left-right mirror image)", choices=_train_choices("tta")),
        "augment": _Key("bool", True, "rotation, zoom and noise on the training part"),
        "precision": _Key("str", _train("precision"), "autocast precision",
                          choices=_train_choices("precision")),
    },
    "cv": {
        "folds": _Key("int", 10, "number of cross-validation folds", low=2, high=1000),
        "val_fraction": _Key("float", 0.1, "validation part of each training part of the image "
                             "models (0: none, with train.select = 'last' and no patience)",
                             low=0.0, high=1.0, high_open=True),
        "bootstrap": _Key("int", 1000, "bootstrap resamples for the test-fold intervals", low=0,
                          high=1000000),
        "bootstrap_fold": _Key("int", 0, "the fold with bootstrap intervals (Table 2)", low=0),
        "calibration": _Key("str", "platt", "recalibration fitted on each fold's validation part "
                            "(none without one)",
                            choices=("none", "platt", "temperature", "isotonic")),
        "threshold": _Key("str", "youden", "decision threshold chosen on each fold's validation "
                          "part, reported next to 0.5", choices=("youden", "sensitivity")),
        "target_sensitivity": _Key("float", 0.9, "sensitivity to reach with threshold = "
                                   "'sensitivity'", low=0.0, high=1.0, low_open=True),
        "models": _Key("strs", ["baseline_densenet", "mt_bin_gcs_bin_age", "mt_ord_gcs_bin_age"],
                       "presets cross-validated by 'ichprog demo'", choices=_PRESET_NAMES),
        "executor": _Key("str", _cv_default("executor"), "where the folds of the image models "
                         "are trained: 'serial' (one after the other here) or 'ray' (one Ray "
                         "task per fold; needs ichprog[ray])",
                         choices=_Derived(_executors, "ichprog.experiment.executors.EXECUTORS")),
        "ray_address": _Key("str", "", "Ray cluster to connect to, e.g. 'auto' or "
                            "'ray://head:10001' ('': start Ray on this machine)"),
        "ray_num_cpus": _Key("float", _ray_default("num_cpus"), "CPUs Ray reserves for each "
                             "fold's task", low=0.0, high=1024.0),
        "ray_num_gpus": _Key("float", _ray_default("num_gpus"), "GPUs Ray reserves for each "
                             "fold's task (a fraction shares a GPU between tasks)", low=0.0,
                             high=64.0),
    },
    "tabular": {
        "folds": _Key("int", 10, "cross-validation folds of the tabular models", low=2,
                      high=1000),
        "shap": _Key("bool", True, "compute SHAP importances"),
        "boundaries": _Key("bool", True, "fit the (GCS, age) decision tree and plot it"),
        "dnn_epochs": _Key("int", _tabular_default("max_epochs"), "maximum epochs of the dense "
                           "network of Perez et al.", low=1, high=100000),
        "val_fraction": _Key("float", 0.1, "validation part of each training part (the dense "
                             "network's early stopping)", low=0.0, high=1.0, low_open=True,
                             high_open=True),
    },
    "ablation": {
        "preset": _Key("str", "mt_ord_gcs_bin_age", "multi-task preset whose losses are ablated",
                       choices=_PRESET_NAMES),
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
                        choices=_METHOD_NAMES),
        "n_patients": _Key("int", 4, "test patients explained per model", low=1, high=10000),
        "fold": _Key("int", 0, "fold whose model is explained", low=0),
    },
    "checks": {
        "hu_range": _Key("bool", True, "scans must span a Hounsfield range (not blank, not "
                         "normalised)"),
        "tissue": _Key("bool", True, "air, brain and bone fractions of a head CT in HU"),
        "size": _Key("bool", True, "minimum size and field of view against the network input"),
        "mask_grid": _Key("bool", True, "a lesion mask on its scan's voxel grid"),
        "action": _Key("str", "error", "what a failed check does: 'error' or 'warn'",
                       choices=("error", "warn")),
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
    _check_consistency(cfg, raw, source)
    return cfg


def _check_consistency(cfg: Mapping[str, Mapping[str, Any]], raw: Mapping[str, Any],
                       source: str) -> None:
    """Checks between keys, so that a contradiction stops a command before anything runs."""
    data = cfg["data"]
    raw_data = raw.get("data", {}) if isinstance(raw.get("data", {}), Mapping) else {}
    if data["source"] == "phantom" and data["table"]:
        how = ("[data] source is not set and defaults to 'phantom'" if "source" not in raw_data
               else "[data] source = 'phantom'")
        raise ConfigError(f"{source}: [data] table = {data['table']!r} is set but {how}, which "
                          "would ignore the table and train on a generated phantom cohort; set "
                          "[data] source = 'table' to use your table, or remove [data] table")
    cv = cfg["cv"]
    if cv["bootstrap"] and cv["bootstrap_fold"] >= cv["folds"]:
        raise ConfigError(f"{source}: [cv] bootstrap_fold = {cv['bootstrap_fold']} is out of "
                          f"range for [cv] folds = {cv['folds']} (0-{cv['folds'] - 1})")
    if cfg["saliency"]["fold"] >= cv["folds"]:
        raise ConfigError(f"{source}: [saliency] fold = {cfg['saliency']['fold']} is out of "
                          f"range for [cv] folds = {cv['folds']} (0-{cv['folds'] - 1})")


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
        "executor": ("cv", "executor"), "ray_address": ("cv", "ray_address"),
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
# Demo modes
# ------------------------------------------------------------------------------------------------


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
        "cv": {"val_fraction": r.val_fraction},
    }


def _demo_mode(recipe: str, **sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    base = _recipe_sections(recipe)
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return base


def _build_demo_modes() -> dict[str, dict[str, dict[str, Any]]]:
    return {
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


#: Sizes of ``ichprog demo`` (default), ``--quick`` and ``--full``, as configuration sections.
#: The default and quick modes train with the "cpu" recipe (:mod:`ichprog.recipes`), the full
#: mode with the paper's. Built on first use: reading the recipes imports torch, and
#: ``import ichprog.cli`` stays light.
DEMO_MODES: dict[str, dict[str, dict[str, Any]]]


def _demo_modes() -> dict[str, dict[str, dict[str, Any]]]:
    """:data:`DEMO_MODES`, built once on first use."""
    modes = globals().get("DEMO_MODES")
    if modes is None:
        modes = globals()["DEMO_MODES"] = _build_demo_modes()
    return modes


#: Names of the choice lists before they were derived, read on first use.
_OLD_CHOICES: dict[str, Callable[[], tuple[str, ...]]] = {
    "_PRESET_CHOICES": _presets, "_TRUNK_CHOICES": _trunks,
    "_SALIENCY_METHODS": _saliency_methods, "_TABULAR_MODELS": _tabular_models,
}


def __getattr__(name: str) -> Any:
    if name == "DEMO_MODES":
        return _demo_modes()
    if name in _OLD_CHOICES:
        return _OLD_CHOICES[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: The claims section of ``ichprog demo --long-claims``.
LONG_CLAIMS: dict[str, Any] = {"repeats": 3, "sizes": [64, 96, 128]}
