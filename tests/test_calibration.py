"""Calibration metrics, decision curves, thresholds and calibrators against scikit-learn and
hand-computed cases."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_curve

from ichprog.metrics import (
    Calibrator,
    UndefinedMetricWarning,
    calibration_metrics,
    calibration_summary,
    calibration_table,
    choose_threshold,
    decision_curve,
    fit_calibrator,
    net_benefit,
)

pytestmark = pytest.mark.core  # runs on the core install (no extra)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    p = rng.random(400)
    y = (rng.random(400) < p ** 2).astype(int)  # the outcome is rarer than p says
    return y, p


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_reliability_bins_equal_sklearn_calibration_curve(data, strategy):
    y, p = data
    table = calibration_table(y, p, n_bins=8, strategy=strategy)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=8, strategy=strategy)
    np.testing.assert_allclose(table["frac_pos"], prob_true)
    np.testing.assert_allclose(table["mean_prob"], prob_pred)
    assert table["n"].sum() == len(y)


def test_brier_and_ece_against_sklearn(data):
    y, p = data
    m = calibration_metrics(y, p, n_bins=10)
    assert m["brier"] == pytest.approx(brier_score_loss(y, p))
    # ECE from sklearn's bins, weighted by each bin's share of samples
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10)
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], p), minlength=10)
    counts = counts[counts > 0]
    assert m["ece"] == pytest.approx(np.sum(counts * np.abs(prob_true - prob_pred)) / len(y))


def test_ece_hand_computed():
    # bin [0.1, 0.2): p 0.1, 0.1, y 0, 1 -> |0.5 - 0.1| ; bin [0.9, 1]: p 0.9, y 1 -> |1 - 0.9|
    with pytest.warns(UndefinedMetricWarning, match="diverges"):
        m = calibration_metrics([0, 1, 1], [0.1, 0.1, 0.9], n_bins=10)
    assert m["ece"] == pytest.approx((2 * 0.4 + 1 * 0.1) / 3)
    assert m["brier"] == pytest.approx((0.01 + 0.81 + 0.01) / 3)


def test_slope_and_intercept(data):
    y, p = data
    m = calibration_metrics(y, p)
    z = np.log(p / (1 - p))
    lr = LogisticRegression(C=np.inf).fit(z[:, None], y)
    assert m["slope"] == pytest.approx(lr.coef_[0, 0], rel=1e-3)
    # the intercept solves the score equation of logit P(y) = a + logit(p)
    a = m["intercept"]
    assert np.sum(y) == pytest.approx(np.sum(1 / (1 + np.exp(-(a + z)))), rel=1e-6)
    assert a < 0  # the outcome is rarer than predicted


def test_perfectly_calibrated_sample_has_slope_one_and_intercept_zero():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.02, 0.98, 20000)
    y = (rng.random(20000) < p).astype(int)
    m = calibration_metrics(y, p)
    assert m["slope"] == pytest.approx(1.0, abs=0.06)
    assert m["intercept"] == pytest.approx(0.0, abs=0.05)
    assert m["ece"] < 0.02


def test_single_class_warns_and_gives_nan():
    with pytest.warns(UndefinedMetricWarning):
        m = calibration_metrics([1, 1, 1], [0.2, 0.5, 0.9])
    assert np.isnan(m["slope"]) and np.isnan(m["intercept"])
    assert m["brier"] == pytest.approx((0.64 + 0.25 + 0.01) / 3)


def test_refuses_probabilities_out_of_range():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibration_metrics([0, 1], [0.2, 1.2])


def test_net_benefit_hand_computed():
    y = np.array([1, 1, 0, 0, 1])
    p = np.array([0.9, 0.6, 0.7, 0.2, 0.1])
    # t = 0.5: treated 0.9 (TP), 0.6 (TP), 0.7 (FP) -> 2/5 - 1/5 * 1 = 0.2
    # t = 0.25: same treated -> 2/5 - 1/5 * (1/3)
    nb = net_benefit(y, p, [0.5, 0.25])
    np.testing.assert_allclose(nb, [0.2, 0.4 - 0.2 / 3])
    dc = decision_curve(y, p, thresholds=[0.25, 0.5])
    np.testing.assert_allclose(dc["treat_all"], [0.6 - 0.4 / 3, 0.6 - 0.4])
    assert (dc["treat_none"] == 0).all()
    with pytest.raises(ValueError, match="strictly between"):
        net_benefit(y, p, [0.0])


def test_youden_threshold_maximises_j_like_sklearn_roc(data):
    y, p = data
    t = choose_threshold(y, p, "youden")
    fpr, tpr, thr = roc_curve(y, p)
    best = np.max(tpr - fpr)
    pred = p >= t
    j = pred[y == 1].mean() - pred[y == 0].mean()
    assert j == pytest.approx(best)
    t90 = choose_threshold(y, p, "sensitivity", target=0.9)
    assert (p[y == 1] >= t90).mean() >= 0.9
    # the highest such threshold: the next observed probability above loses sensitivity
    above = np.unique(p[p > t90])
    assert (p[y == 1] >= above[0]).mean() < 0.9
    with pytest.raises(ValueError, match="both outcomes"):
        choose_threshold([0, 0], [0.1, 0.2])


@pytest.mark.parametrize("method", ["platt", "temperature", "isotonic"])
def test_calibrators_improve_an_overconfident_model_and_round_trip_json(method):
    rng = np.random.default_rng(5)
    p = rng.uniform(0.01, 0.99, 600)
    z = np.log(p / (1 - p))
    y = (rng.random(600) < 1 / (1 + np.exp(-z / 3))).astype(int)  # p is far too extreme
    cal = fit_calibrator(y, p, method)
    before = calibration_metrics(y, p)
    after = calibration_metrics(y, cal(p))
    assert after["brier"] < before["brier"]
    assert after["ece"] < before["ece"]
    assert abs(after["slope"] - 1) < abs(before["slope"] - 1)
    back = Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_allclose(back.transform(p), cal.transform(p))


def test_platt_equals_sklearn_logistic_regression_and_isotonic_equals_sklearn(data):
    from sklearn.isotonic import IsotonicRegression

    y, p = data
    z = np.log(p / (1 - p))
    lr = LogisticRegression(C=np.inf).fit(z[:, None], y)
    # Platt's soft targets differ from 0/1 by 1 / (N + 2): on 400 samples the fit is nearly
    # the plain logistic regression's
    np.testing.assert_allclose(fit_calibrator(y, p, "platt")(p), lr.predict_proba(z[:, None])[:, 1],
                               rtol=0.02, atol=0.005)
    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p, y)
    q = np.linspace(-0.1, 1.1, 50).clip(0, 1)
    np.testing.assert_allclose(fit_calibrator(y, p, "isotonic")(q), iso.predict(q))


def test_temperature_keeps_the_ranking_and_one_half(data):
    y, p = data
    cal = fit_calibrator(y, p, "temperature")
    q = cal(p)
    assert np.array_equal(np.argsort(p, kind="stable"), np.argsort(q, kind="stable"))
    assert cal([0.5])[0] == pytest.approx(0.5)


def test_platt_stays_finite_on_a_separable_validation_set():
    cal = fit_calibrator([0, 0, 1, 1], [0.2, 0.3, 0.6, 0.7], "platt")
    # soft targets 1/4 and 3/4: the fit cannot reach 0 or 1
    q = cal([0.2, 0.3, 0.6, 0.7])
    assert np.all((q > 0.05) & (q < 0.95))
    assert np.all(np.diff(q) > 0)


def test_calibrator_without_usable_data_is_the_identity_with_a_warning():
    with pytest.warns(UserWarning, match="not fitted"):
        cal = fit_calibrator([], [], "platt")
    assert cal.method == "none" and "0 sample" in cal.note
    np.testing.assert_allclose(cal([0.2, 0.7]), [0.2, 0.7])
    with pytest.raises(ValueError, match="unknown calibration method"):
        fit_calibrator([0, 1], [0.2, 0.7], "beta")


def test_calibration_summary_intervals_contain_the_estimate(data):
    y, p = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = calibration_summary(y, p, n_resamples=100, seed=1)
    assert list(table["metric"]) == ["brier", "ece", "slope", "intercept"]
    assert (table["low"] <= table["estimate"]).all() and (table["estimate"] <= table["high"]).all()
    again = calibration_summary(y, p, n_resamples=100, seed=1)
    assert table.equals(again)


@pytest.mark.parametrize("n", [12, 60])
def test_bootstrap_fast_path_equals_the_per_resample_loop(n):
    from ichprog.metrics import bootstrap_ci

    rng = np.random.default_rng(n)
    p = rng.random(n)
    y = (rng.random(n) < p).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = bootstrap_ci(calibration_metrics, y, p, n_resamples=300, seed=2, progress=False)
        # a lambda is not recognised: every resample is computed by calibration_metrics itself
        slow = bootstrap_ci(lambda a, b: calibration_metrics(a, b), y, p, n_resamples=300,
                            seed=2, progress=False)
    pd.testing.assert_frame_equal(fast, slow, rtol=1e-6)
