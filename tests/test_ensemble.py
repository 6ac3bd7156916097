"""The fold ensemble of a cross-validation: spread across folds, calibration on the validation
parts only, thresholds, persistence, the model card and its report sections."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from ichprog.data import PreprocessConfig, Splits, make_phantom_cohort
from ichprog.experiment import FittedModel, FoldEnsemble, cross_validate, load_ensemble
from ichprog.metrics import calibration_metrics, fit_calibrator
from ichprog.report import Report
from ichprog.report.modelcard import run_sections
from ichprog.tasks import MT_ORD_GCS_BIN_AGE
from ichprog.training import TrainConfig

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::ichprog.metrics.UndefinedMetricWarning")]

PRE = PreprocessConfig(shape=(32, 32, 32), skull_strip=False)
SMALL = {"trunk": "densenet_tiny", "preprocess": PRE, "progress": False,
         "model_kwargs": {"trunk_kwargs": {"block_config": (1, 1, 1, 1)}}}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    return make_phantom_cohort(24, seed=1, out_dir=out, shape=(16, 48, 48), progress=False)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def run_dir(cohort, cache, tmp_path_factory):
    """A run folder like the command line's: cv/<preset>/ with 2 folds, each with a validation
    part of a quarter of its training part."""
    run = tmp_path_factory.mktemp("run")
    cross_validate(cohort, MT_ORD_GCS_BIN_AGE, folds=2, seed=0, out_dir=run / "cv" / "mt",
                   cache_dir=cache, val_fraction=0.25,
                   config=TrainConfig(max_epochs=1, batch_size=4, progress=False), **SMALL)
    return run


@pytest.fixture(scope="module")
def ens(run_dir, cohort, cache):
    e = load_ensemble(run_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e.calibrate(cohort, method="platt", cache_dir=cache)
        e.save(cohort=cohort, n_resamples=100)
    return e


def test_predict_is_the_mean_and_spread_of_the_fold_models(ens, run_dir, cohort, cache):
    ids = cohort.ids[:5]
    sub = cohort.subset(ids)
    table = ens.predict(sub, calibrated=False, cache_dir=cache)
    assert table.index.name == "PatientID" and list(table.index) == ids
    # each fold model on its own, loaded independently
    folds = [FittedModel.load(run_dir / "cv" / "mt" / f"fold_{k:02d}" / "model")
             for k in (0, 1)]
    per = np.stack([f.predict_proba(sub, cache_dir=cache)["prognosis"][:, 0] for f in folds])
    np.testing.assert_allclose(table["prognosis_prob"], per.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(table["prognosis_prob_sd"], per.std(axis=0, ddof=1), rtol=1e-4,
                               atol=1e-7)
    np.testing.assert_allclose(table["prognosis_prob_q05"], np.quantile(per, 0.05, axis=0),
                               rtol=1e-5)
    np.testing.assert_allclose(table["prognosis_prob_q95"], np.quantile(per, 0.95, axis=0),
                               rtol=1e-5)
    assert (table["prognosis_prob_q05"] <= table["prognosis_prob"]).all()
    assert set(table["gcs_pred"]) <= {0, 1, 2} and (table["n_models"] == 2).all()
    # the decoded class follows the mean probability at the threshold
    assert ((table["prognosis_prob"] >= 0.5).astype(int) == table["prognosis_pred"]).all()


def test_calibration_uses_each_fold_validation_part_only(ens, run_dir):
    splits = Splits.load(run_dir / "cv" / "mt" / "splits.json")
    val = ens.val_predictions
    assert val is not None and len(val)
    for k, m in zip(ens.folds, ens.models):
        part = val[val["fold"] == k]
        assert sorted(part["PatientID"]) == sorted(m.info["val_ids"])
        fold = splits.folds[k]
        assert fold.test and not set(fold.test) & set(part["PatientID"])
        assert set(part["PatientID"]) == set(fold.val)
        # the saved calibrator is the one fitted on those validation predictions
        y = part["prognosis_true"].to_numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = fit_calibrator(y, part["prognosis_prob"].to_numpy(), "platt")
        got = ens.calibrators[k]["prognosis_prob"]
        grid = np.linspace(0.05, 0.95, 7)
        np.testing.assert_allclose(got(grid), ref(grid))
    test = ens.test_predictions()
    prog = test[test["output"] == "prognosis"]
    for k in ens.folds:
        part = prog[prog["fold"] == k]
        np.testing.assert_allclose(part["prob_calibrated"],
                                   ens.calibrators[k]["prognosis_prob"](part["prob"].to_numpy()))


def test_saved_calibration_metrics_match_sklearn(ens, run_dir):
    d = run_dir / "cv" / "mt"
    metrics = pd.read_csv(d / "calibration" / "metrics.csv")
    test = pd.read_csv(d / "calibration" / "test_predictions.csv")
    prog = test[test["output"] == "prognosis"]
    for version, col in (("raw", "prob"), ("calibrated", "prob_calibrated")):
        row = metrics[(metrics["output"] == "prognosis") & (metrics["version"] == version)]
        brier = row.set_index("metric").loc["brier", "estimate"]
        assert brier == pytest.approx(brier_score_loss(prog["y_true"], prog[col]))
        ours = calibration_metrics(prog["y_true"], prog[col])
        assert row.set_index("metric").loc["ece", "estimate"] == pytest.approx(ours["ece"])
    # ordinal GCS: one binary outcome per cumulative output, y > j
    assert {"gcs>0", "gcs>1"} <= set(test["output"])


def test_save_and_load_round_trip_with_model_card(ens, run_dir, cohort, cache):
    d = run_dir / "cv" / "mt"
    assert (d / "ensemble.json").is_file() and (d / "model_card.json").is_file()
    back = load_ensemble(d)
    assert isinstance(back, FoldEnsemble) and back.folds == ens.folds and back.calibrated
    sub = cohort.subset(cohort.ids[:3])
    a = ens.predict(sub, cache_dir=cache, threshold="validation")
    b = back.predict(sub, cache_dir=cache, threshold="validation")
    pd.testing.assert_frame_equal(a, b)
    # every saved fold model carries its own card
    assert (d / "fold_00" / "model" / "model_card.json").is_file()
    card = json.loads((d / "model_card.json").read_text())
    for key in ("model", "intended_use", "out_of_scope", "data", "metrics", "calibration",
                "subgroups", "limitations", "tripod_ai"):
        assert card[key], key
    assert len(card["tripod_ai"]) == 27
    assert card["data"]["phantom"] is True and card["data"]["n_patients"] == 24
    # subgroup AUCs against scikit-learn on the same patients
    test = ens.test_predictions()
    prog = test[test["output"] == "prognosis"].set_index("PatientID")
    table = cohort.table
    sub_rows = {r["level"]: r for r in card["subgroups"]}
    old = table.index[table["Age"] >= 80].astype(str)
    row = sub_rows["age >= 80"]
    assert row["n"] == len(old)
    part = prog.loc[list(old)]
    if part["y_true"].nunique() == 2:
        assert row["auc"] == pytest.approx(roc_auc_score(part["y_true"], part["prob_calibrated"]))
    sexes = [r for r in card["subgroups"] if r["subgroup"] == "sex"]
    assert sum(r["n"] for r in sexes) == 24


def test_save_elsewhere_copies_what_load_needs(ens, tmp_path, cohort, cache):
    out = ens.save(tmp_path / "copy", n_resamples=20)
    back = load_ensemble(out)
    assert back.folds == ens.folds
    x = cohort.subset(cohort.ids[:2])
    np.testing.assert_allclose(back.predict(x, cache_dir=cache)["prognosis_prob"],
                               ens.predict(x, cache_dir=cache)["prognosis_prob"])


def test_report_sections_render_calibration_and_card(ens, run_dir, tmp_path):
    rep = Report("t")
    run_sections(rep, run_dir, labels={"mt": "MT"})
    html = rep.to_html()
    for text in ("Calibration: MT", "Reliability diagram", "Net benefit", "Model card: MT",
                 "TRIPOD+AI", "Intended use", "Subgroups"):
        assert text in html, text


def test_no_validation_part_keeps_identity_with_a_warning(cohort, cache, tmp_path):
    cross_validate(cohort, MT_ORD_GCS_BIN_AGE, folds=2, seed=0, out_dir=tmp_path / "cv",
                   cache_dir=cache, val_fraction=0.0,
                   config=TrainConfig(max_epochs=1, batch_size=4, select="last", patience=None,
                                      progress=False), **SMALL)
    e = load_ensemble(tmp_path / "cv")
    with pytest.warns(UserWarning, match="no validation part"):
        e.calibrate(cohort, method="isotonic", cache_dir=cache)
    assert not e.calibrated and e.thresholds == {}
    assert e.info["calibration"]["folds_without_validation"] == [0, 1]
    test = e.test_predictions()
    np.testing.assert_allclose(test["prob_calibrated"], test["prob"])
    e.save(cohort=cohort, n_resamples=20)
    card = json.loads((tmp_path / "cv" / "model_card.json").read_text())
    assert any("No validation part" in line for line in card["limitations"])
    item24 = next(i for i in card["tripod_ai"] if i["item"] == "24")
    assert item24["covered"] == "no"


def test_load_ensemble_errors_name_the_folder(run_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a cross-validation folder"):
        load_ensemble(tmp_path)
    with pytest.raises(ValueError, match="no cross-validated model 'nope'"):
        load_ensemble(run_dir, model="nope")
    two = tmp_path / "two"
    for name in ("a", "b"):
        (two / "cv" / name).mkdir(parents=True)
        (two / "cv" / name / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="several cross-validated models"):
        load_ensemble(two)
