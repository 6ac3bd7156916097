"""Tests of the ``ichprog`` command line: configuration validation, exit codes, help, and one
small stage end to end."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ichprog import cli
from ichprog.cli import (
    CONFIG_SCHEMA,
    DEMO_MODES,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    ConfigError,
    default_config,
    dump_config,
    load_config,
    main,
    validate_config,
)

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["demo", "phantom", "tabular", "train", "cv", "ablation", "predict", "saliency",
            "convert", "report"]


# -- configuration -------------------------------------------------------------------------------
def test_defaults_are_the_papers_recipe():
    cfg = default_config()
    # the paper's training recipe (METHOD-NOTES section 3)
    assert cfg["train"]["batch_size"] == 8
    assert cfg["train"]["accumulation_steps"] == 3
    assert cfg["train"]["lr"] == pytest.approx(1e-3)
    assert cfg["train"]["weight_decay"] == pytest.approx(1e-4)
    assert cfg["train"]["patience"] == 20
    assert cfg["train"]["epochs"] == 100
    assert cfg["cv"]["folds"] == 10 and cfg["cv"]["bootstrap"] == 1000
    assert cfg["cv"]["val_fraction"] == pytest.approx(0.1)


def test_full_demo_mode_is_the_papers_protocol():
    full = validate_config({}, base=DEMO_MODES["full"])
    assert full["preprocess"]["shape"] == [40, 301, 301]
    assert full["model"]["trunk"] == "densenet121"
    assert full["cv"]["folds"] == 10 and full["train"]["epochs"] == 100
    assert full["data"]["n_patients"] == 261


@pytest.mark.parametrize("raw, pattern", [
    ({"trian": {"epochs": 3}}, r"my\.toml: unknown section \[trian\]"),
    ({"train": {"epoch": 3}}, r"my\.toml: unknown key 'epoch' in \[train\]; known keys: epochs"),
    ({"train": {"epochs": "5"}}, r"my\.toml: \[train\] epochs: expected an integer, got string"),
    ({"train": {"epochs": 2.0}}, r"\[train\] epochs: expected an integer, got float"),
    ({"train": {"epochs": True}}, r"\[train\] epochs: expected an integer, got boolean"),
    ({"train": {"epochs": 0}}, r"\[train\] epochs: 0 is out of range; valid range \[1, 100000\]"),
    ({"train": {"lr": 0.0}}, r"\[train\] lr: 0.0 is out of range; valid range \(0, 10\]"),
    ({"cv": {"val_fraction": 1.0}}, r"\[cv\] val_fraction: 1.0 is out of range"),
    ({"train": {"augment": "yes"}}, r"\[train\] augment: expected a boolean"),
    ({"model": {"preset": "mt"}}, r"\[model\] preset: 'mt' is not one of 'baseline_perez'"),
    ({"preprocess": {"shape": [32, 64]}}, r"\[preprocess\] shape: expected 3 values, got 2"),
    ({"preprocess": {"shape": [32, 64, 4]}}, r"\[preprocess\] shape\[2\]: 4 is out of range"),
    ({"cv": {"models": ["mt_ord_gcs_bin_age", "x"]}}, r"\[cv\] models\[1\]: 'x' is not one of"),
    ({"train": 3}, r"\[train\] must be a table"),
])
def test_validation_errors_name_file_section_and_key(raw, pattern):
    with pytest.raises(ConfigError, match=pattern):
        validate_config(raw, source="my.toml")


def test_optional_float_accepts_integers_and_none():
    assert validate_config({"model": {"dropout": 0}})["model"]["dropout"] == 0.0
    assert validate_config({})["model"]["dropout"] is None


def test_load_config_reports_file_and_toml_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nepochs = 3\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_config(bad)


def test_dump_config_round_trips(tmp_path):
    cfg = validate_config({"train": {"epochs": 7, "lr": 3e-4}, "cv": {"models": ["baseline_age"]},
                           "model": {"dropout": 0.25}, "run": {"name": 'quote " and ü'}})
    path = tmp_path / "c.toml"
    path.write_text(dump_config(cfg), encoding="utf-8")
    assert load_config(path) == cfg


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_example_configurations_are_valid(path):
    cfg = load_config(path)
    assert set(cfg) == set(CONFIG_SCHEMA)


def test_cli_docs_list_every_configuration_key():
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for section, keys in CONFIG_SCHEMA.items():
        assert f"[{section}]" in text, section
        for key in keys:
            assert re.search(rf"\| `{key}` \|", text), f"[{section}] {key} missing from docs/cli.md"


# -- parser, help and exit codes ------------------------------------------------------------------
def test_help_of_every_command_has_examples_and_exit_codes(capsys):
    assert main(["--help"]) == EXIT_OK
    out = capsys.readouterr().out
    for c in COMMANDS:
        assert c in out
    for c in COMMANDS:
        assert main([c, "--help"]) == EXIT_OK
        text = capsys.readouterr().out
        assert "examples:" in text and "exit codes: 0 success, 2 usage" in text, c


def test_import_does_not_load_numpy_or_torch():
    # the command line starts fast: the stages import what they need when they run
    code = ("import sys, ichprog.cli; "
            "print(','.join(m for m in ('numpy', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_version(capsys):
    from ichprog import __version__

    assert main(["--version"]) == EXIT_OK
    assert __version__ in capsys.readouterr().out


def test_usage_errors_exit_2_without_traceback(capsys, tmp_path):
    assert main([]) == EXIT_USAGE
    assert main(["frobnicate"]) == EXIT_USAGE
    assert main(["cv"]) == EXIT_USAGE  # --out is required
    capsys.readouterr()
    assert main(["cv", "--out", str(tmp_path / "o"), "--set", "train.epochs=0"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "command line: [train] epochs: 0 is out of range" in err
    assert "Traceback" not in err
    assert main(["cv", "--out", str(tmp_path / "o"), "--set", "epochs=3"]) == EXIT_USAGE
    assert "expected SECTION.KEY=VALUE" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == EXIT_USAGE
    assert "does not exist" in capsys.readouterr().err
    assert main(["tabular", "--out", str(tmp_path / "o"), "--table", str(tmp_path / "x.csv")]) \
        == EXIT_USAGE
    assert "x.csv does not exist" in capsys.readouterr().err


def test_config_file_then_set_then_flags_precedence(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[train]\nepochs = 7\nlr = 0.01\n[cv]\nfolds = 4\n")
    args = cli.build_parser().parse_args(
        ["cv", "--out", str(tmp_path), "--config", str(path), "--set", "train.epochs=9",
         "--folds", "3", "--preset", "baseline_age", "--preset", "mt_bin_gcs_bin_age"])
    cfg = cli._config_from_args(args)
    assert cfg["train"]["epochs"] == 9 and cfg["train"]["lr"] == pytest.approx(0.01)
    assert cfg["cv"]["folds"] == 3
    assert cfg["cv"]["models"] == ["baseline_age", "mt_bin_gcs_bin_age"]


def test_executor_flags_and_keys(tmp_path):
    from ichprog.cli.stages import _executor

    args = cli.build_parser().parse_args(
        ["cv", "--out", str(tmp_path), "--executor", "ray", "--ray-address", "ray://head:10001",
         "--set", "cv.ray_num_gpus=0.5"])
    cfg = cli._config_from_args(args)
    assert (cfg["cv"]["executor"], cfg["cv"]["ray_address"]) == ("ray", "ray://head:10001")
    ex = _executor(cfg)  # built, not started: nothing connects before a fold is submitted
    assert (ex.address, ex.num_cpus, ex.num_gpus) == ("ray://head:10001", 1, 0.5)
    assert _executor(cli.default_config()) == "serial"
    with pytest.raises(cli.ConfigError, match=r"\[cv\] executor.*'serial', 'ray'"):
        cli.validate_config({"cv": {"executor": "dask"}})
    args = cli.build_parser().parse_args(["ablation", "--out", str(tmp_path), "--executor",
                                          "serial"])
    assert cli._config_from_args(args)["cv"]["executor"] == "serial"


def test_invalid_data_is_a_runtime_failure_naming_the_column(tmp_path, capsys):
    table = pd.DataFrame({"PatientID": ["1", "2"], "Label (poor_prognosis)": [0, 1],
                          "GCS": [14, 21], "Age": [60, 70]})
    path = tmp_path / "clinical.csv"
    table.to_csv(path, index=False)
    code = main(["tabular", "--out", str(tmp_path / "o"), "--table", str(path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == EXIT_FAILURE
    assert "GCS" in err and "Traceback" not in err


# -- one stage end to end on a tiny phantom -------------------------------------------------------
@pytest.mark.slow
def test_tabular_stage_on_a_tiny_phantom_and_reuse(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["tabular", "--out", str(out), "--n-patients", "24", "--no-progress",
            "--set", "data.phantom_shape=[12,32,32]", "--set", "tabular.folds=2",
            "--set", "tabular.dnn_epochs=2", "--set", "tabular.shap=false"]
    assert main(argv) == EXIT_OK
    tidy = pd.read_csv(out / "tabular" / "metrics.csv")
    assert list(tidy.columns) == ["model", "fold", "task", "metric", "value"]
    assert set(tidy["fold"]) == {0, 1}
    assert "LR (GCS & age)" in set(tidy["model"])
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["cohort"]["patients"] == 24
    assert set(manifest["timings"]) >= {"phantom", "tabular"}
    assert load_config(out / "config.toml")["tabular"]["folds"] == 2
    capsys.readouterr()
    # a second run reuses both stages and says so
    assert main(argv) == EXIT_OK
    err = capsys.readouterr().err
    assert "[phantom] reusing" in err and "[tabular] reusing" in err
    # a changed setting recomputes the stage it affects
    assert main(argv[:-2] + ["--set", "tabular.folds=3", "--set", "tabular.shap=false"]) == EXIT_OK
    err = capsys.readouterr().err
    assert "[phantom] reusing" in err and "[tabular] running" in err
    assert set(pd.read_csv(out / "tabular" / "metrics.csv")["fold"]) == {0, 1, 2}
    # and the report builds from what is there
    assert main(["report", str(out), "-q"]) == EXIT_OK
    assert (out / "report.html").is_file() and (out / "report.md").is_file()


@pytest.mark.slow
def test_cv_saliency_and_report_on_a_tiny_phantom(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--out", str(out), "--no-progress", "--n-patients", "24",
              "--set", "data.phantom_shape=[32,40,40]", "--shape", "32", "32", "32",
              "--trunk", "densenet_tiny", "--epochs", "1", "--folds", "2",
              "--set", "train.accumulation_steps=1", "--set", "train.precision=fp32",
              "--set", "cv.bootstrap=50"]
    assert main(["cv", *common, "--preset", "mt_ord_gcs_bin_age"]) == EXIT_OK
    tidy = pd.read_csv(out / "cv" / "metrics.csv")
    assert set(tidy["task"]) == {"prognosis", "gcs", "age"}
    assert set(tidy["fold"]) == {0, 1}
    # the ordinal GCS head is scored with the ordinal metrics, prognosis with the binary ones
    assert {"uoc", "qwk", "mae"} <= set(tidy.loc[tidy["task"] == "gcs", "metric"])
    assert "auc" in set(tidy.loc[tidy["task"] == "prognosis", "metric"])
    preds = pd.read_csv(out / "cv" / "predictions.csv")
    # every patient is tested exactly once per task
    assert preds[preds["task"] == "prognosis"]["PatientID"].nunique() == 24
    assert len(preds[preds["task"] == "prognosis"]) == 24
    boot = pd.read_csv(out / "cv" / "bootstrap.csv")
    assert set(boot["metric"]) >= {"auc", "accuracy", "balanced_accuracy"}
    ok = boot[["low", "high"]].notna().all(axis=1)
    assert ok.any() and (boot.loc[ok, "low"] <= boot.loc[ok, "high"]).all()
    capsys.readouterr()
    # the same command again reuses the finished stage
    assert main(["cv", *common, "--preset", "mt_ord_gcs_bin_age"]) == EXIT_OK
    assert "[cv] reusing" in capsys.readouterr().err
    assert main(["saliency", "--out", str(out), "--no-progress",
                 "--set", "saliency.n_patients=1",
                 "--set", "saliency.methods=['guided_backprop']"]) == EXIT_OK
    assert (out / "saliency" / "guided_backprop.png").is_file()
    scores = pd.read_csv(out / "saliency" / "lesion_scores.csv")
    assert len(scores) == 1 and scores["mass_lesion"].between(0, 1).all()
    assert main(["report", str(out), "-q"]) == EXIT_OK
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "MT (ord GCS, bin age)" in html and "Saliency maps" in html
    # predict with a fold's saved model
    scan = next((out / "phantom").glob("*_PROGNOSIS/*.nii.gz"))
    csv = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(out / "cv" / "mt_ord_gcs_bin_age" / "fold_00"),
                 str(scan), "--out", str(csv), "-q", "--no-progress"]) == EXIT_OK
    pred = pd.read_csv(csv)
    assert len(pred) == 1 and pred["prognosis_prob"].between(0, 1).all()
    # the cv stage saved each model as a calibrated ensemble with a model card
    model_dir = out / "cv" / "mt_ord_gcs_bin_age"
    for name in ("ensemble.json", "model_card.json", "calibration/metrics.csv"):
        assert (model_dir / name).is_file(), name
    assert "Calibration, thresholds and decision curves" in html and "Model cards" in html
    assert "TRIPOD+AI" in html
    # predict with the fold ensemble of the run folder: the table and the HTML summary
    folder = scan.parent
    csv = tmp_path / "ens" / "preds.csv"
    assert main(["predict", "--model", str(out), "--input", str(folder), "--out", str(csv),
                 "-q", "--no-progress"]) == EXIT_OK
    pred = pd.read_csv(csv)
    assert len(pred) == len(list(folder.glob("*.nii.gz")))
    assert {"prognosis_prob", "prognosis_prob_sd", "prognosis_prob_q05",
            "prognosis_prob_q95"} <= set(pred.columns)
    assert (pred["n_models"] == 2).all()
    summary = (tmp_path / "ens" / "preds.html").read_text(encoding="utf-8")
    assert "P(poor prognosis)" in summary and "data:image/png;base64" in summary
    assert main(["predict", "--model", str(out), "--input", str(tmp_path / "nothing")]) \
        == EXIT_USAGE


def test_a_new_phantom_cohort_removes_results_of_the_old_one(tmp_path, capsys):
    out = tmp_path / "run"
    for d in ("cv/x", "cache", "tabular"):
        (out / d).mkdir(parents=True)
    (out / "splits.json").write_text("{}")
    (out / "notes.txt").write_text("mine")  # not written by ichprog: kept
    run = cli._Run(out, default_config(), command="test", quiet=False)
    cli._forget_results(run)
    assert not (out / "cv").exists() and not (out / "cache").exists()
    assert not (out / "splits.json").exists()
    assert (out / "notes.txt").read_text() == "mine"
    assert "removing the results computed on the previous cohort" in capsys.readouterr().err
