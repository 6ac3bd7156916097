"""Named training recipes and how fit_multitask / cross_validate / the demo resolve them."""

from __future__ import annotations

import dataclasses

import pytest

from ichprog.cli import DEMO_MODES
from ichprog.data import PreprocessConfig
from ichprog.experiment import _apply_recipe
from ichprog.recipes import RECIPES, Recipe, as_recipe, get_recipe
from ichprog.tasks import BASELINE_DENSENET, BASELINE_PEREZ, MT_ORD_GCS_BIN_AGE
from ichprog.training import TrainConfig


def test_registry_and_unknown_name():
    assert set(RECIPES) == {"paper", "cpu"}
    assert as_recipe(None) is RECIPES["paper"]
    assert as_recipe("cpu") is RECIPES["cpu"]
    with pytest.raises(ValueError, match=r"unknown recipe 'gpu'; known recipes: \['cpu', 'paper'\]"):
        get_recipe("gpu")
    with pytest.raises(TypeError, match="recipe must be"):
        as_recipe(3)


def test_paper_recipe_is_the_library_defaults():
    paper = get_recipe("paper")
    assert paper.preprocess_config() == PreprocessConfig()
    assert paper.train_config(seed=4) == TrainConfig(seed=4)
    assert paper.trunk_for("densenet121") == "densenet121" and paper.augment


def test_cpu_recipe_settings():
    cpu = get_recipe("cpu")
    pre = cpu.preprocess_config()
    assert pre.shape == (32, 48, 48) and pre.window_range == (-20.0, 100.0)
    cfg = cpu.train_config(seed=2, max_epochs=5)
    assert (cfg.schedule, cfg.select, cfg.patience, cfg.max_epochs, cfg.seed) == (
        "onecycle", "last", None, 5, 2)
    assert cpu.trunk_for("densenet121") == "densenet_tiny"
    assert cpu.trunk_for("perez2023") == "perez2023"  # another trunk is kept
    assert cpu.augment is False and cfg.class_balance is True


def test_an_invalid_recipe_fails_when_defined_naming_it():
    with pytest.raises(ValueError, match=r"recipe 'bad': .*select='best'"):
        Recipe("bad", "x", train={"select": "last", "patience": 5})


def test_explicit_arguments_override_the_recipe():
    pre = PreprocessConfig(shape=(16, 32, 32))
    cfg = TrainConfig(max_epochs=1, seed=9)
    preset, p, c, aug, kw = _apply_recipe("cpu", BASELINE_DENSENET, None, pre, cfg, True,
                                          {"dropout": 0.1}, seed=0, progress=False)
    assert p is pre and c is cfg and aug is True and kw == {"dropout": 0.1}
    assert preset.trunk == "densenet_tiny"
    assert preset.label == "Baseline tiny DenseNet"  # the label names what runs
    preset, p, c, aug, _ = _apply_recipe("cpu", MT_ORD_GCS_BIN_AGE, "densenet121", None, None,
                                         None, None, seed=3, progress=False)
    assert preset.trunk == "densenet121" and preset.label == MT_ORD_GCS_BIN_AGE.label
    assert p == get_recipe("cpu").preprocess_config() and c.seed == 3 and aug is False
    preset, *_ = _apply_recipe("cpu", BASELINE_PEREZ, None, None, None, None, None, 0, False)
    assert preset.trunk == "perez2023"


def test_default_demo_trains_with_the_cpu_recipe():
    cpu = get_recipe("cpu")
    mode = DEMO_MODES["default"]
    assert tuple(mode["preprocess"]["shape"]) == cpu.preprocess_config().shape
    assert mode["preprocess"]["window_level"] == cpu.preprocess["window_level"]
    assert mode["train"]["epochs"] == cpu.train["max_epochs"]
    assert mode["train"]["schedule"] == "onecycle" and mode["train"]["select"] == "last"
    assert mode["train"]["patience"] == 0 and mode["train"]["augment"] is False
    assert mode["model"]["trunk"] == "densenet_tiny"


def test_replace_and_to_dict():
    cpu = get_recipe("cpu")
    short = cpu.replace(train={**cpu.train, "max_epochs": 3})
    assert short.train_config().max_epochs == 3 and cpu.train_config().max_epochs == 30
    d = cpu.to_dict()
    assert d["preprocess"]["shape"] == [32, 48, 48] and d["trunk"] == "densenet_tiny"
    assert dataclasses.is_dataclass(cpu)


def test_no_validation_part_only_with_the_last_epoch():
    assert get_recipe("cpu").val_fraction == 0.0 and get_recipe("paper").val_fraction == 0.1
    with pytest.raises(ValueError, match="recipe 'x': val_fraction=0 leaves no validation part"):
        Recipe("x", "x", val_fraction=0.0)
    from ichprog.experiment._common import _val_fraction

    assert _val_fraction("cpu", None) == 0.0 and _val_fraction("cpu", 0.2) == 0.2
    assert _val_fraction(None, None) == 0.1
