"""Tests of ichprog.tabular.cv: folds, protocol, metrics, the DNN checkpoint, Table 1."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.preprocessing import MinMaxScaler

from ichprog.data import Cohort, Fold, make_splits, oversample
from ichprog.data.schema import LABEL_COLUMN
from ichprog.metrics import UndefinedMetricWarning
from ichprog.tabular import PAPER_TABLE1, PerezDNNClassifier, cross_validate_tabular, table1
from ichprog.tabular.cv import fold_seed
from tabular_tables import random_clinical_table


def clinical_table(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """A random table with all 44 columns (PatientID as a column); label driven by GCS and age."""
    return random_clinical_table(n, seed, ids="column")


def best_epoch(history: list[dict]) -> int:
    """Highest validation balanced accuracy; among ties, the lowest validation loss."""
    top = max(h["val_balanced_accuracy"] for h in history)
    tied = [h for h in history if h["val_balanced_accuracy"] == top]
    return int(min(tied, key=lambda h: h["val_loss"])["epoch"])


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return clinical_table(120)


@pytest.fixture(scope="module")
def lr_result(table):
    return cross_validate_tabular(table, "lr", ("GCS", "Age"), folds=4, seed=3, progress=False)


def test_folds_are_those_of_make_splits(table, lr_result):
    labels = pd.Series(table[LABEL_COLUMN].to_numpy(), index=table["PatientID"].astype(str))
    splits = make_splits(labels, folds=4, seed=3)
    pred = lr_result.predictions
    for fold in splits.folds:
        assert pred.loc[pred["fold"] == fold.index, "PatientID"].tolist() == fold.test
    # every patient is predicted exactly once, with its own label
    assert sorted(pred["PatientID"]) == sorted(labels.index)
    np.testing.assert_array_equal(pred["y_true"], labels.loc[pred["PatientID"]].to_numpy())


def test_cohort_and_table_give_the_same_predictions(table, lr_result):
    cohort = Cohort(table, image_paths=None)
    res = cross_validate_tabular(cohort, "lr", ("GCS", "Age"), folds=4, seed=3, progress=False)
    pd.testing.assert_frame_equal(res.predictions, lr_result.predictions)


def test_lr_matches_an_independent_scikit_learn_pipeline(table, lr_result):
    data = table.set_index(table["PatientID"].astype(str))
    for k, fold in enumerate(lr_result.splits.folds):
        train = fold.train + fold.val  # the validation part joins the training part
        balanced = oversample(train, data.loc[train, LABEL_COLUMN].to_numpy(),
                              seed=fold_seed(3, k))
        assert lr_result.train_ids[k] == balanced
        ref = ColumnTransformer([("gcs", "passthrough", ["GCS"]), ("age", MinMaxScaler(), ["Age"])])
        Xtr = ref.fit_transform(data.loc[balanced, ["GCS", "Age"]])
        lr = LogisticRegression(random_state=fold_seed(3, k)).fit(
            Xtr, data.loc[balanced, LABEL_COLUMN])
        expected = lr.predict_proba(ref.transform(data.loc[fold.test, ["GCS", "Age"]]))[:, 1]
        got = lr_result.predictions.query("fold == @k")["y_prob"].to_numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-10)
        # min-max scaling was fit on the training part only
        prep = lr_result.fitted[k]["prep"]
        assert prep.data_min_[1] == data.loc[train, "Age"].min()
        assert prep.data_min_[1] + prep.data_range_[1] == data.loc[train, "Age"].max()


def test_training_parts_are_balanced_and_never_hold_test_patients(table, lr_result):
    label = dict(zip(table["PatientID"].astype(str), table[LABEL_COLUMN]))
    for k, fold in enumerate(lr_result.splits.folds):
        ids = lr_result.train_ids[k]
        assert not set(ids) & set(fold.test)
        counts = np.bincount([label[i] for i in ids])
        assert counts[0] == counts[1]
        info = lr_result.info.iloc[k]
        assert info["n_train"] == len(fold.train) + len(fold.val)
        assert info["n_train_balanced"] == len(ids) >= info["n_train"]


def test_metrics_are_the_tidy_table_and_match_scikit_learn(lr_result):
    tidy = lr_result.metrics()
    assert list(tidy.columns) == ["model", "fold", "task", "metric", "value"]
    assert set(tidy["model"]) == {"LR (GCS & age)"} and set(tidy["task"]) == {"prognosis"}
    aucs, baccs = [], []
    for _, group in lr_result.predictions.groupby("fold"):
        aucs.append(roc_auc_score(group["y_true"], group["y_prob"]))
        baccs.append(balanced_accuracy_score(group["y_true"], group["y_prob"] >= 0.5))
    got = tidy.pivot(index="fold", columns="metric", values="value")
    np.testing.assert_allclose(got["auc"], aucs)
    np.testing.assert_allclose(got["balanced_accuracy"], baccs)
    summary = lr_result.summary()
    assert summary.loc["auc", "LR (GCS & age)"] == (
        f"{np.mean(aucs):.2f} ± {np.std(aucs, ddof=1):.2f}")


def test_dnn_reports_the_best_validation_checkpoint(table):
    params = {"max_epochs": 40, "patience": 4, "batch_size": 32, "lr": 1e-2}
    res = cross_validate_tabular(table, "dnn", "all", folds=3, seed=0, params=params,
                                 progress=False)
    data = table.set_index(table["PatientID"].astype(str))
    stopped_early = 0
    for k, fold in enumerate(res.splits.folds):
        pipe = res.fitted[k]
        net = pipe["model"]
        # the validation part is not in the training part of the dense network
        assert not set(res.train_ids[k]) & set(fold.val)
        scores = [h["val_balanced_accuracy"] for h in net.history_]
        assert net.best_epoch_ == best_epoch(net.history_)
        val_pred = pipe.predict(data.loc[fold.val])
        assert balanced_accuracy_score(data.loc[fold.val, LABEL_COLUMN], val_pred) == (
            pytest.approx(max(scores)))
        stopped_early += net.best_epoch_ < net.n_epochs_ - 1
        # the reported test predictions are those of a run stopped at the best epoch
        prep = pipe["prep"]
        Xtr = prep.transform(data.loc[res.train_ids[k]])
        short = PerezDNNClassifier(**{**params, "max_epochs": net.best_epoch_ + 1},
                                   restore_best_weights=False, random_state=fold_seed(0, k))
        short.fit(Xtr, data.loc[res.train_ids[k], LABEL_COLUMN].to_numpy(),
                  X_val=prep.transform(data.loc[fold.val]),
                  y_val=data.loc[fold.val, LABEL_COLUMN].to_numpy())
        expected = short.predict_proba(prep.transform(data.loc[fold.test]))[:, 1]
        got = res.predictions.query("fold == @k")["y_prob"].to_numpy()
        np.testing.assert_allclose(got, expected, atol=1e-6)
    assert stopped_early > 0, "some fold must stop after its best epoch for the test to bite"
    assert (res.info["best_epoch"] < res.info["n_epochs"]).all()


def test_missing_and_non_numeric_columns_are_named(table):
    with pytest.raises(KeyError, match="Glucose"):
        cross_validate_tabular(table.drop(columns=["Glucose"]), "lr", "all", folds=3,
                               progress=False)
    bad = table.astype({"Urea": object})
    bad.loc[5, "Urea"] = "n/a"
    with pytest.raises(ValueError, match=r"'Urea'.*'n/a'.*'6'"):
        cross_validate_tabular(bad, "rf", "all", folds=3, progress=False)
    with pytest.raises(ValueError, match="model must be one of"):
        cross_validate_tabular(table, "svm", folds=3, progress=False)


def test_one_class_folds_raise_or_give_documented_nan(table):
    data = table.set_index(table["PatientID"].astype(str))
    pos = data.index[data[LABEL_COLUMN] == 1].tolist()
    neg = data.index[data[LABEL_COLUMN] == 0].tolist()
    # a training part with one class cannot be fit
    fold = Fold(index=0, train=pos[:20], val=[], test=neg[:5] + pos[20:25])
    with pytest.raises(ValueError, match="fold 0: the training part holds one class"):
        cross_validate_tabular(data, "lr", splits=[fold], progress=False)
    # a test part with one class: AUC and balanced accuracy are NaN, with a warning
    fold = Fold(index=0, train=pos[:20] + neg[:20], val=[], test=pos[20:30])
    res = cross_validate_tabular(data, "lr", splits=[fold], progress=False)
    with pytest.warns(UndefinedMetricWarning):
        tidy = res.metrics()
    values = tidy.set_index("metric")["value"]
    assert np.isnan(values["auc"]) and np.isnan(values["balanced_accuracy"])
    assert values["recall"] == pytest.approx(res.predictions["y_pred"].mean())
    # the DNN without a validation part is refused rather than leaking test data
    with pytest.raises(ValueError, match="validation part"):
        cross_validate_tabular(data, "dnn", splits=[fold], progress=False)


@pytest.mark.filterwarnings("ignore::ichprog.metrics.UndefinedMetricWarning")
def test_table1_runs_the_six_columns_on_shared_folds(tmp_path):
    data = clinical_table(90, seed=4)
    res = table1(data, folds=3, seed=1, params={"dnn": {"max_epochs": 5, "batch_size": 32},
                                                 "rf": {"n_estimators": 20}}, progress=False)
    summary = res.summary()
    assert list(summary.columns) == list(PAPER_TABLE1.columns)
    assert list(summary.index) == list(PAPER_TABLE1.index)
    tests = {label: r.predictions.groupby("fold")["PatientID"].apply(list).tolist()
             for label, r in res.results.items()}
    first = next(iter(tests.values()))
    assert all(t == first for t in tests.values())
    compare = res.compare()
    assert compare[("LR (GCS & age)", "paper")]["auc"] == "0.80 ± 0.07"
    assert "| metric |" in res.to_markdown().splitlines()[0].replace("  ", " ")
    out = res.results["LR (GCS)"].save(tmp_path / "lr_gcs")
    saved = pd.read_csv(out / "metrics.csv")
    pd.testing.assert_frame_equal(saved, res.results["LR (GCS)"].metrics(), check_dtype=False)
