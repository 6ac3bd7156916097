"""The command line's defaults and choices are those of the library's configuration classes and
registries, read from them (not restated)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

from ichprog.cli import CONFIG_SCHEMA, default_config, validate_config
from ichprog.cli.stages import _preprocess_config, _train_config
from ichprog.data import PreprocessConfig
from ichprog.models import TRUNKS
from ichprog.saliency import METHODS
from ichprog.tabular import MODEL_NAMES, PerezDNNClassifier
from ichprog.tasks import PRESETS
from ichprog.training import TrainConfig


def test_train_defaults_are_those_of_train_config():
    cfg = default_config()
    built = _train_config(cfg, seed=0)
    assert built == TrainConfig(seed=0, device="auto", progress=True)
    assert cfg["train"]["epochs"] == TrainConfig().max_epochs == 100
    assert cfg["train"]["patience"] == TrainConfig().patience == 20


def test_preprocess_defaults_are_those_of_preprocess_config_but_the_cpu_sized_shape():
    cfg = default_config()
    built = _preprocess_config(cfg)
    # the command line's network input is CPU-sized; everything else is the library's default
    assert built == dataclasses.replace(PreprocessConfig(), shape=(32, 64, 64))
    assert cfg["preprocess"]["window_level"] == 57.5 and cfg["preprocess"]["window_width"] == 85


def test_choices_are_the_registries():
    assert CONFIG_SCHEMA["model"]["preset"].choices == tuple(PRESETS)
    assert CONFIG_SCHEMA["cv"]["models"].choices == tuple(PRESETS)
    assert CONFIG_SCHEMA["ablation"]["preset"].choices == tuple(PRESETS)
    assert CONFIG_SCHEMA["model"]["trunk"].choices == (*TRUNKS, "")
    assert CONFIG_SCHEMA["saliency"]["methods"].choices == tuple(METHODS)
    assert CONFIG_SCHEMA["train"]["precision"].choices == ("auto", "fp32", "bf16", "fp16")
    assert CONFIG_SCHEMA["train"]["schedule"].choices == ("constant", "onecycle")
    assert CONFIG_SCHEMA["train"]["select"].choices == ("best", "last", "val_loss")
    assert CONFIG_SCHEMA["preprocess"]["window"].choices == ("clip", "bandpass")
    assert CONFIG_SCHEMA["tabular"]["dnn_epochs"].default == PerezDNNClassifier().max_epochs
    from ichprog.cli import _TABULAR_MODELS  # the former constant, now read from the registry

    assert _TABULAR_MODELS == tuple(MODEL_NAMES)


def test_every_choice_is_accepted_by_the_library():
    for name in CONFIG_SCHEMA["train"]["precision"].choices:
        TrainConfig(precision=name)
    for name in CONFIG_SCHEMA["train"]["schedule"].choices:
        TrainConfig(schedule=name, select="last", patience=0)
    for name in CONFIG_SCHEMA["model"]["preset"].choices:
        validate_config({"model": {"preset": name}})


def test_building_the_parser_stays_light():
    code = ("import sys, ichprog.cli; ichprog.cli.build_parser(); "
            "print(','.join(m for m in ('numpy', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_executor_keys_are_the_librarys():
    import inspect

    from ichprog.experiment import RayExecutor, cross_validate
    from ichprog.experiment.executors import EXECUTORS

    cv = CONFIG_SCHEMA["cv"]
    assert cv["executor"].choices == EXECUTORS
    assert cv["executor"].default == inspect.signature(cross_validate).parameters[
        "executor"].default == "serial"
    assert (cv["ray_num_cpus"].default, cv["ray_num_gpus"].default) == (
        RayExecutor().num_cpus, RayExecutor().num_gpus)
