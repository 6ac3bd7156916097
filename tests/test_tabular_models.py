"""Tests of ichprog.tabular.models: feature sets, the preprocessor, the Perez DNN, make_model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from ichprog.data.schema import COLUMNS, LABEL_COLUMN, NUMERIC_COLUMNS
from ichprog.tabular.models import (
    ALL_FEATURES,
    MODEL_NAMES,
    PerezDNNClassifier,
    TabularPreprocessor,
    check_table,
    make_model,
    resolve_features,
)
from tabular_tables import random_clinical_table


def clinical_table(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """A small random table with all 44 columns; the label depends on GCS and age."""
    return random_clinical_table(n, seed)


def test_all_features_are_the_42_inputs_in_table_order():
    assert len(ALL_FEATURES) == 42
    assert list(ALL_FEATURES) == [c for c in COLUMNS if c not in ("PatientID", LABEL_COLUMN)]
    assert resolve_features("all") == ALL_FEATURES
    assert resolve_features("GCS") == ("GCS",)
    assert resolve_features("gcs_age") == ("GCS", "Age")
    assert resolve_features(["Age", "Glucose"]) == ("Age", "Glucose")


@pytest.mark.parametrize("bad", [[], ["Age", "Age"], [LABEL_COLUMN], "everything"])
def test_resolve_features_rejects_bad_lists(bad):
    with pytest.raises(ValueError):
        resolve_features(bad)


def test_preprocessor_matches_sklearn_minmax_on_numeric_columns_only():
    table = clinical_table(80)
    train, test = table.iloc[:60], table.iloc[60:]
    prep = TabularPreprocessor("all").fit(train)
    out = prep.transform(test)
    num = [c for c in ALL_FEATURES if c in NUMERIC_COLUMNS]
    ref = MinMaxScaler().fit(train[num]).transform(test[num])
    idx = [ALL_FEATURES.index(c) for c in num]
    np.testing.assert_allclose(out[:, idx], ref)
    # binary columns and GCS pass unchanged
    keep = [c for c in ALL_FEATURES if c not in NUMERIC_COLUMNS]
    np.testing.assert_array_equal(out[:, [ALL_FEATURES.index(c) for c in keep]],
                                  test[keep].to_numpy(dtype=float))
    np.testing.assert_allclose(prep.inverse_transform(out), test[list(ALL_FEATURES)].to_numpy())


def test_preprocessor_does_not_clip_values_outside_the_training_range():
    train = pd.DataFrame({"Age": [40.0, 60.0]})
    test = pd.DataFrame({"Age": [20.0, 80.0]})
    out = TabularPreprocessor(["Age"]).fit(train).transform(test)
    np.testing.assert_allclose(out[:, 0], [-1.0, 2.0])


def test_check_table_names_missing_column():
    table = clinical_table(10).drop(columns=["Glucose"])
    with pytest.raises(KeyError, match="Glucose"):
        check_table(table, ["Age", "Glucose"], source="clinical.csv")


def test_check_table_names_column_patient_and_value_for_non_numeric():
    table = clinical_table(10)
    table["Glucose"] = table["Glucose"].astype(object)
    table.loc["P004", "Glucose"] = "high"
    with pytest.raises(ValueError, match=r"'Glucose'.*'high'.*'P004'"):
        check_table(table, ["Glucose"])
    with pytest.raises(ValueError, match="P004"):
        make_model("lr", ["Glucose"]).fit(table, table[LABEL_COLUMN])


def test_check_table_rejects_missing_values_and_bad_gcs_and_label():
    table = clinical_table(10)
    table.loc["P002", "Age"] = np.nan
    with pytest.raises(ValueError, match=r"'Age'.*P002"):
        check_table(table, ["Age"])
    table = clinical_table(10)
    table.loc["P003", "GCS"] = 2
    with pytest.raises(ValueError, match=r"'GCS'.*P003.*3 to 15"):
        check_table(table, ["GCS"])
    table = clinical_table(10)
    table.loc["P001", LABEL_COLUMN] = 2
    with pytest.raises(ValueError, match="P001"):
        check_table(table, ["GCS"], label=True)
    table = clinical_table(10)
    table.loc["P005", "Smoker"] = 2
    with pytest.raises(ValueError, match=r"'Smoker'.*P005.*0 or 1"):
        check_table(table, ["Smoker"])
    table = clinical_table(10)
    table.loc["P006", "Age"] = -4.0
    with pytest.raises(ValueError, match=r"'Age'.*P006.*non-negative"):
        check_table(table, ["Age"])


def _fast_dnn(**kw) -> PerezDNNClassifier:
    kw.setdefault("max_epochs", 15)
    kw.setdefault("batch_size", 32)
    return PerezDNNClassifier(**kw)


def test_dnn_architecture_is_the_published_one():
    import torch.nn as nn

    X = np.random.default_rng(0).normal(size=(40, 42))
    y = np.tile([0, 1], 20)
    net = _fast_dnn(max_epochs=1).fit(X, y).network_
    kinds = [type(m) for m in net]
    assert kinds == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Linear, nn.ReLU,
                     nn.BatchNorm1d, nn.Linear]
    assert [(m.in_features, m.out_features) for m in net if isinstance(m, nn.Linear)] == [
        (42, 64), (64, 32), (32, 16), (16, 1)]
    assert net[2].p == pytest.approx(0.3)
    assert net[7].num_features == 16


def test_dnn_is_a_proper_sklearn_estimator():
    est = PerezDNNClassifier(max_epochs=3, lr=0.01)
    params = est.get_params()
    assert params["lr"] == 0.01 and params["patience"] == 20 and params["batch_size"] == 128
    assert params["weight_decay"] == 1e-3
    twin = clone(est)
    assert twin.get_params() == params and twin is not est
    twin.set_params(max_epochs=5)
    assert twin.max_epochs == 5 and est.max_epochs == 3


def test_dnn_learns_inside_pipeline_and_cross_val_score():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 4))
    y = np.where(X[:, 0] + 0.3 * rng.normal(size=200) > 0, "poor", "good")
    pipe = Pipeline([("scale", StandardScaler()), ("dnn", _fast_dnn(max_epochs=40))])
    scores = cross_val_score(pipe, X, y, cv=3, scoring="balanced_accuracy")
    assert scores.mean() > 0.75
    pipe.fit(X, y)
    assert list(pipe.classes_) == ["good", "poor"]
    proba = pipe.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    pred = pipe.predict(X)
    np.testing.assert_array_equal(pred, np.where(proba[:, 1] >= 0.5, "poor", "good"))


def test_dnn_is_reproducible_with_a_seed():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(100, 3))
    y = (X[:, 1] > 0).astype(int)
    a = _fast_dnn(random_state=7).fit(X, y).predict_proba(X)
    b = _fast_dnn(random_state=7).fit(X, y).predict_proba(X)
    c = _fast_dnn(random_state=8).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def _noisy_problem(seed: int = 3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(160, 5))
    y = (X[:, 0] + 1.5 * rng.normal(size=160) > 0).astype(int)
    Xv = rng.normal(size=(40, 5))
    yv = (Xv[:, 0] + 1.5 * rng.normal(size=40) > 0).astype(int)
    return X, y, Xv, yv


def test_dnn_keeps_the_best_validation_epoch_not_the_last():
    X, y, Xv, yv = _noisy_problem()
    kw = dict(max_epochs=30, patience=1000, batch_size=16, lr=1e-2, random_state=0)
    best = PerezDNNClassifier(**kw).fit(X, y, X_val=Xv, y_val=yv)
    scores = [h["val_balanced_accuracy"] for h in best.history_]
    assert best.n_epochs_ == 30
    # highest validation balanced accuracy, ties broken by the lowest validation loss
    tied = [h for h in best.history_ if h["val_balanced_accuracy"] == max(scores)]
    assert best.best_epoch_ == min(tied, key=lambda h: h["val_loss"])["epoch"]
    assert best.best_epoch_ < 29, "the problem must make the last epoch differ from the best"
    # the restored model scores the best validation balanced accuracy (recomputed by sklearn)
    assert balanced_accuracy_score(yv, best.predict(Xv)) == pytest.approx(max(scores))
    # and equals a run stopped right after the best epoch (same seed, same batches)
    stopped = PerezDNNClassifier(**{**kw, "max_epochs": best.best_epoch_ + 1,
                                    "restore_best_weights": False}).fit(X, y, X_val=Xv, y_val=yv)
    np.testing.assert_allclose(best.predict_proba(X), stopped.predict_proba(X), atol=1e-6)
    last = PerezDNNClassifier(**{**kw, "restore_best_weights": False}).fit(X, y, X_val=Xv,
                                                                          y_val=yv)
    assert not np.allclose(best.predict_proba(X), last.predict_proba(X), atol=1e-4)


def test_dnn_early_stopping_respects_patience():
    X, y, Xv, yv = _noisy_problem(4)
    est = PerezDNNClassifier(max_epochs=100, patience=3, batch_size=32).fit(X, y, Xv, yv)
    assert est.n_epochs_ == min(100, est.best_epoch_ + 1 + 3)


def test_dnn_rejects_one_class_and_one_class_validation():
    X = np.zeros((10, 2))
    with pytest.raises(ValueError, match="two classes"):
        PerezDNNClassifier().fit(X, np.ones(10))
    with pytest.raises(ValueError, match="one class"):
        PerezDNNClassifier().fit(X, np.tile([0, 1], 5), X_val=X[:3], y_val=[1, 1, 1])


def test_dnn_merges_a_single_trailing_sample_into_the_previous_batch():
    # 33 samples with batch 32 would leave a batch of one, which BatchNorm1d refuses in training
    rng = np.random.default_rng(0)
    X = rng.normal(size=(33, 3))
    y = np.tile([0, 1], 17)[:33]
    est = PerezDNNClassifier(max_epochs=2, batch_size=32).fit(X, y, X_val=X[:6], y_val=y[:6])
    assert est.n_epochs_ == 2


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_make_model_families_fit_and_are_seeded(name):
    table = clinical_table(120, seed=5)
    y = table[LABEL_COLUMN].to_numpy()
    # one thread: the tiny data fit fastest that way on a busy machine (results are the same)
    params = {"dnn": {"max_epochs": 10, "batch_size": 32}, "xgb": {"n_jobs": 1}}.get(name)
    a = make_model(name, "gcs_age", seed=1, params=params).fit(table, y)
    b = make_model(name, "gcs_age", seed=1, params=params).fit(table, y)
    pa = a.predict_proba(table)
    np.testing.assert_array_equal(pa, b.predict_proba(table))
    assert pa.shape == (120, 2)
    assert list(a.classes_) == [0, 1]
    assert list(a["prep"].get_feature_names_out()) == ["GCS", "Age"]
    # all families beat chance on the training data of this clearly structured problem
    assert balanced_accuracy_score(y, a.predict(table)) > 0.6


def test_make_model_uses_library_defaults_with_the_seed():
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier
    from xgboost import XGBClassifier

    for name, cls in [("rf", RandomForestClassifier), ("lr", LogisticRegression),
                      ("dtc", DecisionTreeClassifier), ("xgb", XGBClassifier)]:
        est = make_model(name, seed=3)["model"]
        ref = cls(random_state=3).get_params()
        assert est.get_params() == ref
    with pytest.raises(ValueError, match="model must be one of"):
        make_model("svm")


def test_dnn_restores_torch_threads():
    import torch

    before = torch.get_num_threads()
    X = np.random.default_rng(0).normal(size=(40, 3))
    est = PerezDNNClassifier(max_epochs=2, batch_size=16, num_threads=1).fit(X, np.tile([0, 1], 20))
    est.predict_proba(X)
    assert torch.get_num_threads() == before


def test_fit_model_keeps_the_dnn_validation_part_out_of_training():
    from ichprog.tabular.models import fit_model

    table = clinical_table(100, seed=6)
    label = table[LABEL_COLUMN]
    pipe = fit_model("dnn", table, ["GCS", "Age"], seed=0, params={"max_epochs": 3})
    val, train = pipe.val_ids_, pipe.train_ids_
    assert len(val) == 10 and not set(val) & set(train)
    assert set(val) | set(train) == set(table.index)
    # stratified validation part, balanced training part
    assert abs(label.loc[val].mean() - label.mean()) < 0.1
    assert label.loc[train].mean() == 0.5
    # the other families train on every patient, balanced
    lr = fit_model("lr", table, ["GCS", "Age"], seed=0)
    assert lr.val_ids_ == [] and set(lr.train_ids_) == set(table.index)
    assert label.loc[lr.train_ids_].mean() == 0.5


def test_dnn_passes_scikit_learn_estimator_checks():
    from sklearn.utils.estimator_checks import check_estimator

    est = PerezDNNClassifier(val_fraction=0.2, batch_size=16, lr=1e-2, max_epochs=15, patience=15)
    results = check_estimator(est, on_fail=None)
    failed = [(r["check_name"], repr(r["exception"])[:200]) for r in results
              if r["status"] == "failed"]
    assert len(results) > 40 and not failed
