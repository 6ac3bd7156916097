"""fit_multitask, cross_validate, CVResult and ablation on a small phantom cohort."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

import ichprog as ip
from ichprog.data import PreprocessConfig, load_volume, make_phantom_cohort, preprocess_volume
from ichprog.experiment import CVResult, FittedModel, ablation, cross_validate, fit_multitask
from ichprog.tasks import MT_ORD_GCS_BIN_AGE
from ichprog.training import TrainConfig

# Tiny folds of barely trained models often predict one class: undefined metrics are expected.
pytestmark = pytest.mark.filterwarnings("ignore::ichprog.metrics.UndefinedMetricWarning")

PRE = PreprocessConfig(shape=(32, 48, 48), skull_strip=False)
CFG = TrainConfig(max_epochs=1, batch_size=4, progress=False)
SMALL = {"trunk": "densenet_tiny", "preprocess": PRE, "config": CFG, "progress": False,
         "model_kwargs": {"trunk_kwargs": {"block_config": (1, 1, 1, 1)}}}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    return make_phantom_cohort(24, seed=0, out_dir=out, shape=(16, 64, 64), progress=False)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def cv_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cv")


@pytest.fixture(scope="module")
def cv(cohort, cache, cv_dir):
    return cross_validate(cohort, MT_ORD_GCS_BIN_AGE, folds=3, seed=0, out_dir=cv_dir,
                          cache_dir=cache, **SMALL)


# -- fit_multitask ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fit_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fit")


@pytest.fixture(scope="module")
def fitted(cohort, cache, fit_dir):
    return fit_multitask(cohort, MT_ORD_GCS_BIN_AGE, seed=0, cache_dir=cache, out_dir=fit_dir,
                         **SMALL)


def test_fit_multitask_holds_out_a_stratified_validation_part(fitted, cohort):
    info = fitted.info
    assert set(info["train_ids"]) | set(info["val_ids"]) == set(cohort.ids)
    assert not set(info["train_ids"]) & set(info["val_ids"])
    assert len(info["val_ids"]) == int(np.ceil(0.1 * len(cohort)))
    labels = cohort.table.loc[info["val_ids"], "Label (poor_prognosis)"]
    assert set(labels) == {0, 1}
    # oversampling balances the training part
    y = cohort.table.loc[info["train_ids"], "Label (poor_prognosis)"]
    assert info["n_train_after_oversampling"] == 2 * int(y.value_counts().max())


def test_predict_paths_equal_predict_preprocessed_arrays(fitted, cohort):
    paths = [cohort.image_path(i) for i in cohort.ids[:3]]
    by_path = fitted.predict(paths)
    arrays = np.stack([preprocess_volume(*load_volume(p), PRE) for p in paths])
    by_array = fitted.predict(arrays)
    cols = ["prognosis_prob", "gcs_prob_gt0", "gcs_prob_gt1", "age_prob"]
    np.testing.assert_allclose(by_path[cols].to_numpy(), by_array[cols].to_numpy())
    assert list(by_path.index) == [str(p) for p in paths]
    # decoded classes follow the probabilities: threshold 0.5, ordinal by counting
    assert (by_path["prognosis_pred"] == (by_path["prognosis_prob"] >= 0.5)).all()
    gcs = (by_path[["gcs_prob_gt0", "gcs_prob_gt1"]] > 0.5).sum(axis=1)
    assert (by_path["gcs_pred"] == gcs).all()
    proba = fitted.predict_proba(paths)
    assert {k: v.shape for k, v in proba.items()} == {"prognosis": (3, 1), "gcs": (3, 2),
                                                      "age": (3, 1)}


def test_predict_refuses_raw_or_misshaped_arrays(fitted, cohort):
    hu, _ = load_volume(cohort.image_path(cohort.ids[0]))
    with pytest.raises(ValueError, match="shape"):
        fitted.predict(hu.astype(np.float32))
    with pytest.raises(ValueError, match="Hounsfield"):
        fitted.predict(np.full(PRE.shape, 40.0, dtype=np.float32))


def test_fitted_model_save_load_round_trip(fitted, cohort, tmp_path):
    fitted.save(tmp_path / "m")
    files = ["fitted.json", "history.csv", "model.safetensors"]
    # each file with its checksum record, verified by load(); and the model card
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted(
        files + [f + ".sha256" for f in files] + ["model_card.json"])
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert card["format"] == "ichprog-model-card/1" and card["model"]["preset"] == fitted.preset.name
    assert card["data"]["n_train"] == len(fitted.info["train_ids"])
    again = FittedModel.load(tmp_path / "m")
    paths = [cohort.image_path(i) for i in cohort.ids[:2]]
    pd.testing.assert_frame_equal(again.predict(paths), fitted.predict(paths))
    assert again.preprocess == PRE and again.config.max_epochs == 1
    assert again.info["val_ids"] == fitted.info["val_ids"]
    with pytest.raises(FileNotFoundError, match="fitted.json"):
        FittedModel.load(tmp_path)


def test_fit_writes_model_and_checkpoints(fitted, fit_dir, cohort, cache):
    assert fitted.info["best_epoch"] == 1 and fitted.info["epochs_run"] == 1
    for name in ("model/model.safetensors", "model/fitted.json", "model/history.png",
                 "checkpoints/checkpoint.json"):
        assert (fit_dir / name).is_file(), name
    # the same call again finds the finished run and trains nothing
    again = fit_multitask(cohort, MT_ORD_GCS_BIN_AGE, seed=0, cache_dir=cache, out_dir=fit_dir,
                          **SMALL)
    assert again.info["reused"] is True
    paths = [cohort.image_path(cohort.ids[0])]
    pd.testing.assert_frame_equal(again.predict(paths), fitted.predict(paths))


# -- cross_validate ---------------------------------------------------------------------------
def test_every_patient_is_tested_exactly_once(cv, cohort):
    assert sorted(cv.predictions["PatientID"]) == sorted(cohort.ids)
    assert cv.folds == [0, 1, 2]
    truth = cohort.targets(MT_ORD_GCS_BIN_AGE)
    by_id = cv.predictions.set_index("PatientID")
    for name, classes in truth.items():
        np.testing.assert_array_equal(by_id.loc[cohort.ids, f"{name}_true"], classes)


def test_metrics_match_sklearn(cv):
    m = cv.metrics()
    assert list(m.columns) == ["model", "fold", "task", "metric", "value"]
    for fold in cv.folds:
        df = cv.predictions[cv.predictions["fold"] == fold]
        y, p = df["prognosis_true"], df["prognosis_prob"]
        got = m[(m.fold == fold) & (m.task == "prognosis")].set_index("metric")["value"]
        if y.nunique() == 2:
            assert got["auc"] == pytest.approx(roc_auc_score(y, p))
            assert got["balanced_accuracy"] == pytest.approx(
                balanced_accuracy_score(y, (p >= 0.5).astype(int)))
        assert got["accuracy"] == pytest.approx(accuracy_score(y, (p >= 0.5).astype(int)))
        g = m[(m.fold == fold) & (m.task == "gcs")].set_index("metric")["value"]
        assert set(g.index) == {"accuracy", "balanced_accuracy", "mae", "rmse", "uoc", "qwk"}
        err = df["gcs_pred"] - df["gcs_true"]
        assert g["mae"] == pytest.approx(np.abs(err).mean())
        assert g["rmse"] == pytest.approx(np.sqrt((err**2).mean()))


def test_summary_is_mean_and_sample_sd(cv):
    m = cv.metrics()
    vals = m[(m.task == "prognosis") & (m.metric == "accuracy")]["value"].to_numpy()
    table = cv.summary()
    cell = table.loc[("prognosis", "accuracy")].iloc[0]
    assert cell == f"{vals.mean():.2f} ± {vals.std(ddof=1):.2f}"


def test_bootstrap_estimates_equal_the_fold_metrics(cv):
    boot = cv.bootstrap(fold=1, n_resamples=50, seed=3)
    assert list(boot.columns) == ["model", "fold", "task", "metric", "estimate", "low", "high",
                                  "n_valid"]
    m = cv.metrics()
    ref = m[m.fold == 1].set_index(["task", "metric"])["value"]
    got = boot.set_index(["task", "metric"])["estimate"]
    pd.testing.assert_series_equal(got.sort_index(), ref.loc[got.index].sort_index(),
                                   check_names=False)
    again = cv.bootstrap(fold=1, n_resamples=50, seed=3)
    pd.testing.assert_frame_equal(boot, again)
    ok = boot.dropna(subset=["low", "high"])
    assert (ok.low <= ok.high + 1e-12).all()


def test_compare_readers(cv):
    df = cv.predictions[cv.predictions.fold == 0]
    ids = df["PatientID"].tolist()
    y = df["prognosis_true"].to_numpy()
    perfect = y
    flipped = 1 - y
    readers = pd.DataFrame({"NR1": perfect, "NR2": flipped}, index=ids)
    table = cv.compare_readers(readers, n_resamples=50)
    assert table.loc["accuracy", "NR1"] == 1.0 and table.loc["accuracy", "NR2"] == 0.0
    assert table.loc["accuracy", "readers_mean"] == 0.5
    assert table.loc["accuracy", "readers_sd"] == pytest.approx(np.std([1.0, 0.0], ddof=1))
    p = df["prognosis_prob"].to_numpy()
    assert table.loc["accuracy", "model"] == pytest.approx(accuracy_score(y, p >= 0.5))
    pretty = cv.compare_readers(readers, n_resamples=50, formatted=True)
    assert list(pretty.columns) == [cv.name, "NRs"]
    assert pretty.loc["accuracy", "NRs"] == "0.50 ± 0.71"
    bad = readers.copy()
    bad.iloc[1, 1] = 2
    with pytest.raises(ValueError, match=rf"reader 'NR2' gives 2 for patient '{ids[1]}'"):
        cv.compare_readers(bad)
    with pytest.raises(KeyError, match="no test prediction"):
        cv.compare_readers(pd.DataFrame({"NR1": [0]}, index=["nobody"]))


def test_rerun_reuses_finished_folds_and_load_reads_back(cv, cohort, cache, cv_dir):
    again = cross_validate(cohort, MT_ORD_GCS_BIN_AGE, folds=3, seed=0, out_dir=cv_dir,
                           cache_dir=cache, **SMALL)
    assert again.reused_folds == [0, 1, 2] and cv.reused_folds == []
    pd.testing.assert_frame_equal(again.predictions, cv.predictions)
    loaded = CVResult.load(cv_dir)
    pd.testing.assert_frame_equal(loaded.metrics(), cv.metrics())
    for name in ("config.json", "splits.json", "predictions.csv", "metrics.csv", "history.csv"):
        assert (cv_dir / name).is_file(), name
    cfg = json.loads((cv_dir / "config.json").read_text())
    assert cfg["seed"] == 0 and "torch" in cfg["versions"]
    assert json.loads((cv_dir / "fold_00" / "fold.json").read_text())["status"] == "done"
    assert not (cv_dir / "fold_00" / "checkpoints").exists()
    with pytest.raises(ValueError, match="another configuration"):
        cross_validate(cohort, MT_ORD_GCS_BIN_AGE, folds=3, seed=0, out_dir=cv_dir,
                       cache_dir=cache, **{**SMALL, "config": TrainConfig(
                           max_epochs=1, batch_size=4, progress=False, lr=1e-2)})


def test_same_seed_same_predictions(cv, cohort, cache):
    fold0 = cross_validate(cohort, MT_ORD_GCS_BIN_AGE, folds=3, seed=0, only_folds=[0],
                           cache_dir=cache, **SMALL)
    ref = cv.predictions[cv.predictions.fold == 0].reset_index(drop=True)
    pd.testing.assert_frame_equal(fold0.predictions, ref)


def test_ablation_runs_every_configuration_on_the_same_folds(cohort, cache, tmp_path):
    res = ablation(cohort, MT_ORD_GCS_BIN_AGE, folds=3, seed=0, out_dir=tmp_path,
                   only_folds=[0], cache_dir=cache, **SMALL)
    labels = list(dict.fromkeys(res.metrics["model"]))
    # the labels name the trunk that runs (the preset's is DenseNet121)
    assert labels == ["MT (ord GCS, bin age) [tiny DenseNet]",
                      "MT (ord GCS, bin age) [tiny DenseNet] w/o Binary age",
                      "MT (ord GCS, bin age) [tiny DenseNet] w/o Ordinal GCS", "Prognosis only"]
    tests = [sorted(r.predictions["PatientID"]) for r in res.results.values()]
    assert all(t == tests[0] for t in tests)
    assert (tmp_path / "ablation.png").stat().st_size > 1000
    assert (tmp_path / "ablation_metrics.csv").is_file()
    assert res.task == "prognosis"


def test_top_level_names():
    assert ip.fit_multitask is fit_multitask and ip.cross_validate is cross_validate
    assert ip.CVResult is CVResult and ip.FittedModel is FittedModel


def test_fit_without_a_validation_part(cohort, cache, tmp_path):
    cfg = TrainConfig(max_epochs=1, batch_size=4, progress=False, select="last", patience=None)
    fitted = fit_multitask(cohort, MT_ORD_GCS_BIN_AGE, seed=0, cache_dir=cache, val_fraction=0.0,
                           out_dir=tmp_path, **{**SMALL, "config": cfg})
    assert fitted.info["val_ids"] == [] and len(fitted.info["train_ids"]) == len(cohort)
    assert (tmp_path / "model" / "history.png").is_file()  # training curves without validation
