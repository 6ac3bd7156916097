"""Every result type follows one protocol (ichprog.experiment.Result), writes the one long
prediction table and reads back what it saved; no network is trained here."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ichprog.constants import PREDICTION_COLUMNS
from ichprog.experiment import (
    AblationResult,
    ClaimsResult,
    CVResult,
    Result,
    long_predictions,
)
from ichprog.experiment._common import _prediction_frame
from ichprog.experiment.claims import claims_from_results
from ichprog.metrics import binary_metrics
from ichprog.tabular import Table1Result, TabularCVResult, cross_validate_tabular, table1
from ichprog.tasks import MT_ORD_GCS_BIN_AGE, as_preset
from tabular_tables import random_clinical_table

pytestmark = pytest.mark.filterwarnings("ignore::ichprog.metrics.UndefinedMetricWarning")

CLASSES = (CVResult, TabularCVResult, Table1Result, AblationResult, ClaimsResult)


def _cv_result(preset=MT_ORD_GCS_BIN_AGE, n: int = 24, folds: int = 3, seed: int = 0,
               name: str | None = None) -> CVResult:
    """A cross-validation result with random (but valid) predictions of every task."""
    preset = as_preset(preset)
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(folds):
        ids = [f"p{k}_{i}" for i in range(n // folds)]
        probs, truth = {}, {}
        for t in preset:
            m = len(ids)
            truth[t.name] = np.arange(m) % t.n_classes
            cum = np.sort(rng.uniform(size=(m, t.n_outputs)), axis=1)[:, ::-1]
            probs[t.name] = cum
        p = _prediction_frame(ids, probs, preset.tasks, 0.5, truth)
        p.insert(0, "fold", k)
        p.insert(0, "model", name or preset.label)
        frames.append(p)
    return CVResult(predictions=pd.concat(frames, ignore_index=True), preset=preset,
                    name=name or preset.label)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return random_clinical_table(80, 1, ids="column")


@pytest.fixture(scope="module")
def results(table) -> dict[str, Result]:
    cv = _cv_result()
    tab = cross_validate_tabular(table, "lr", ("GCS", "Age"), folds=3, seed=0, progress=False)
    t1 = table1(table, folds=3, seed=0, columns=[("lr", "gcs"), ("lr", "gcs_age")],
                progress=False)
    configs = {"full": cv, "alone": _cv_result("baseline_densenet", name="Prognosis only")}
    abl = AblationResult(metrics=pd.concat([r.metrics for r in configs.values()],
                                           ignore_index=True),
                         results=configs, task="prognosis")
    claims = claims_from_results([_cv_result("baseline_densenet", seed=1)], [cv],
                                 n_resamples=20, seed=0)
    return {"cv": cv, "tabular": tab, "table1": t1, "ablation": abl, "claims": claims}


def test_every_result_class_declares_the_protocol():
    for cls in CLASSES:
        for name in ("predictions", "long_predictions", "metrics", "summary", "save", "load"):
            assert hasattr(cls, name) or name in getattr(cls, "__dataclass_fields__", {}), \
                (cls.__name__, name)
        assert isinstance(inspect.getattr_static(cls, "load"), classmethod), cls.__name__
        assert list(inspect.signature(cls.save).parameters)[:2] == ["self", "out_dir"]
        assert list(inspect.signature(cls.load).parameters)[:1] == ["out_dir"]
        for name in ("long_predictions",):
            assert isinstance(inspect.getattr_static(cls, name), property), (cls.__name__, name)


@pytest.mark.parametrize("key", ["cv", "tabular", "table1", "ablation", "claims"])
def test_result_round_trip(results, key, tmp_path):
    res = results[key]
    assert isinstance(res, Result)
    long = res.long_predictions
    assert list(long.columns[:len(PREDICTION_COLUMNS)]) == list(PREDICTION_COLUMNS)
    assert isinstance(res.metrics, pd.DataFrame)
    assert list(res.metrics.columns) == ["model", "fold", "task", "metric", "value"]
    assert isinstance(res.summary(), pd.DataFrame)
    out = res.save(tmp_path / key)
    assert isinstance(out, Path) and out == tmp_path / key
    back = type(res).load(out)
    pd.testing.assert_frame_equal(back.long_predictions.reset_index(drop=True),
                                  long.reset_index(drop=True), check_dtype=False)
    pd.testing.assert_frame_equal(back.metrics, res.metrics, check_dtype=False)
    pd.testing.assert_frame_equal(back.summary(), res.summary())


def test_long_predictions_of_an_image_cross_validation(results):
    cv = results["cv"]
    long = cv.long_predictions
    assert len(long) == len(cv.predictions) * len(cv.preset.tasks)
    wide = cv.predictions.set_index("PatientID")
    prog = long[long.task == "prognosis"].set_index("PatientID")
    np.testing.assert_allclose(prog["score"], wide.loc[prog.index, "prognosis_prob"])
    gcs = long[long.task == "gcs"].set_index("PatientID")
    # the ordinal score is the expected class, sum_j P(y > j)
    expected = wide.loc[gcs.index, "gcs_prob_gt0"] + wide.loc[gcs.index, "gcs_prob_gt1"]
    np.testing.assert_allclose(gcs["score"], expected)
    np.testing.assert_array_equal(gcs["y_true"], wide.loc[gcs.index, "gcs_true"])
    np.testing.assert_array_equal(gcs["pred"], wide.loc[gcs.index, "gcs_pred"])
    # the helper gives the same from the wide table and the preset
    pd.testing.assert_frame_equal(long_predictions(cv.predictions, cv.preset), long)
    with pytest.raises(ValueError, match="needs tasks"):
        long_predictions(cv.predictions)


def test_long_predictions_of_the_tabular_results(results):
    tab = results["tabular"]
    long = tab.long_predictions
    np.testing.assert_allclose(long["score"], tab.predictions["y_prob"])
    assert set(long["task"]) == {"prognosis"}
    t1 = results["table1"]
    assert len(t1.long_predictions) == sum(len(r.predictions) for r in t1.results.values())


def test_old_patient_column_names_are_read(tmp_path):
    old = pd.DataFrame({"model": "m", "fold": 0, "id": ["7", "8"], "task": "prognosis",
                        "y_true": [0, 1], "score": [0.2, 0.9], "pred": [0, 1]})
    new = long_predictions(old)
    assert list(new.columns) == list(PREDICTION_COLUMNS)
    assert new["PatientID"].tolist() == ["7", "8"]
    with pytest.raises(ValueError, match="missing column"):
        long_predictions(old.drop(columns=["score"]))


def test_claims_metrics_are_the_binary_metrics_of_each_fold(results):
    claims = results["claims"]
    m = claims.metrics
    p = claims.predictions
    part = p[(p.model == results["cv"].name) & (p.fold == 1) & (p.task == "prognosis")]
    ref = binary_metrics(part["y_true"].to_numpy(), part["score"].to_numpy())
    got = m[(m.model == results["cv"].name) & (m.fold == 1)].set_index("metric")["value"]
    assert got.to_dict() == pytest.approx(ref, nan_ok=True)


def test_old_call_spelling_warns_and_gives_the_same_table(results, tmp_path):
    cv, t1 = results["cv"], results["table1"]
    with pytest.warns(DeprecationWarning, match="CVResult.metrics is a property"):
        called = cv.metrics()
    pd.testing.assert_frame_equal(called, pd.DataFrame(cv.metrics))
    with pytest.warns(DeprecationWarning, match="Table1Result.predictions"):
        preds = t1.predictions()
    assert type(preds) is pd.DataFrame and len(preds) == len(t1.predictions)
    with pytest.warns(DeprecationWarning, match="out_dir"):
        back = CVResult.load(directory=cv.save(tmp_path / "cv"))
    assert back.name == cv.name


def test_a_table_derived_from_a_property_is_a_plain_dataframe(results):
    m = results["cv"].metrics
    assert type(m.head()) is pd.DataFrame
    assert type(m[m.task == "prognosis"]) is pd.DataFrame
