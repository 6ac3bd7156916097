"""Binary metrics against scikit-learn and hand-computed confusion matrices."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from ichprog.metrics import (
    BINARY_METRICS,
    UndefinedMetricWarning,
    binary_metrics,
    binary_metrics_batch,
    roc_auc,
)

pytestmark = pytest.mark.core  # runs on the core install (no extra)

KEYS = ["auc", "accuracy", "balanced_accuracy", "specificity", "npv", "precision", "recall", "f1"]


def _sample(seed, n=60, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]  # both classes present
    p = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)
    if ties:
        p = np.round(p, 1)
    return y, p


def test_keys_are_exactly_the_documented_ones():
    y, p = _sample(0)
    assert list(binary_metrics(y, p)) == KEYS
    assert list(BINARY_METRICS) == KEYS


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_matches_sklearn(seed, ties, threshold):
    y, p = _sample(seed, ties=ties)
    m = binary_metrics(y, p, threshold=threshold)
    pred = (p >= threshold).astype(int)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["recall"] == pytest.approx(recall_score(y, pred, zero_division=np.nan))
    assert m["precision"] == pytest.approx(precision_score(y, pred, zero_division=np.nan),
                                           nan_ok=True)
    assert m["f1"] == pytest.approx(f1_score(y, pred, zero_division=np.nan), nan_ok=True)
    # specificity and NPV are the recall and precision of class 0
    assert m["specificity"] == pytest.approx(recall_score(1 - y, 1 - pred))
    assert m["npv"] == pytest.approx(precision_score(1 - y, 1 - pred, zero_division=np.nan),
                                     nan_ok=True)


def test_hand_computed_confusion_matrix():
    # threshold 0.5, predictions >= 0.5 are positive:
    #   y     1    1    1    0    0    0    0    1    0    0
    #   p    .9   .6   .4   .7   .2   .1   .5   .3   .05  .45
    #   pred  1    1    0    1    0    0    1    0    0    0
    # TP = 2, FN = 2, FP = 2, TN = 4
    y = [1, 1, 1, 0, 0, 0, 0, 1, 0, 0]
    p = [0.9, 0.6, 0.4, 0.7, 0.2, 0.1, 0.5, 0.3, 0.05, 0.45]
    m = binary_metrics(y, p)
    assert m["accuracy"] == pytest.approx(6 / 10)
    assert m["specificity"] == pytest.approx(4 / 6)
    assert m["npv"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 4)
    assert m["f1"] == pytest.approx(2 * 2 / (2 * 2 + 2 + 2))
    assert m["balanced_accuracy"] == pytest.approx((2 / 4 + 4 / 6) / 2)
    # AUC by counting pairs: positives .9 .6 .4 .3 vs negatives .7 .2 .1 .5 .05 .45
    # .9 beats 6, .6 beats 5, .4 beats 3 (.2 .1 .05), .3 beats 3 -> 17 of 24 pairs
    assert m["auc"] == pytest.approx(17 / 24)


def test_hand_computed_second_case_npv_differs_from_specificity():
    # y = [1, 1, 1, 1, 0, 0, 0], pred = [1, 1, 1, 0, 1, 0, 0] -> TP 3, FN 1, FP 1, TN 2:
    # specificity = TN / (TN + FP) = 2/3, NPV = TN / (TN + FN) = 2/3
    y = [1, 1, 1, 1, 0, 0, 0]
    p = [0.8, 0.9, 0.6, 0.2, 0.7, 0.1, 0.3]
    m = binary_metrics(y, p)
    assert m["specificity"] == pytest.approx(2 / 3)
    assert m["npv"] == pytest.approx(2 / 3)
    y2 = [1, 1, 1, 1, 0, 0]
    p2 = [0.8, 0.9, 0.2, 0.3, 0.1, 0.7]  # TP 2, FN 2, FP 1, TN 1: spec 1/2, NPV 1/3
    m2 = binary_metrics(y2, p2)
    assert m2["specificity"] == pytest.approx(1 / 2)
    assert m2["npv"] == pytest.approx(1 / 3)


def test_threshold_is_inclusive():
    with pytest.warns(UndefinedMetricWarning, match="npv"):
        m = binary_metrics([0, 1], [0.5, 0.5], threshold=0.5)
    assert m["recall"] == 1.0 and m["specificity"] == 0.0


def test_single_class_gives_nan_with_warning():
    with pytest.warns(UndefinedMetricWarning, match="auc"):
        m = binary_metrics([1, 1, 1], [0.9, 0.2, 0.7])
    assert np.isnan(m["auc"]) and np.isnan(m["specificity"])
    assert np.isnan(m["balanced_accuracy"])
    assert m["recall"] == pytest.approx(2 / 3) and m["precision"] == 1.0
    assert m["accuracy"] == pytest.approx(2 / 3)


def test_absent_predicted_class_gives_nan_precision_with_warning():
    with pytest.warns(UndefinedMetricWarning, match="precision"):
        m = binary_metrics([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4])
    assert np.isnan(m["precision"])
    assert m["recall"] == 0.0 and m["f1"] == 0.0
    # pairs: positive .2 beats .1; positive .4 beats .1 and .3 -> 3 of 4
    assert m["npv"] == pytest.approx(0.5) and m["auc"] == pytest.approx(0.75)


def test_no_warning_when_everything_is_defined():
    y, p = _sample(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        binary_metrics(y, p)


def test_accepts_series_booleans_and_column_vectors():
    y, p = _sample(2)
    ref = binary_metrics(y, p)
    assert binary_metrics(pd.Series(y.astype(bool)), pd.Series(p)) == pytest.approx(ref)
    assert binary_metrics(y.reshape(-1, 1), p.reshape(-1, 1)) == pytest.approx(ref)
    assert binary_metrics(list(y), list(p)) == pytest.approx(ref)


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([0, 1], [0.5], "same length"),
        ([], [], "empty"),
        ([0, 2], [0.1, 0.2], "0 and 1; got 2 at position 1"),
        ([0, np.nan], [0.1, 0.2], "got nan at position 1"),
        ([0, 1], [0.1, np.nan], "finite; got nan at position 1"),
        ([0, 1], [0.1, 1.2], r"\[0, 1\]; got 1.2 at position 1"),
        ([0, 1], [-0.1, 0.2], "got -0.1 at position 0"),
        ([[0, 1], [1, 0]], [[0.1, 0.2], [0.3, 0.4]], "one-dimensional"),
        ([0, "a"], [0.1, 0.2], "expected numbers"),
    ],
)
def test_validation(y, p, match):
    with pytest.raises(ValueError, match=match):
        binary_metrics(y, p)


def test_error_names_the_patient_of_a_series():
    p = pd.Series([0.1, 1.5], index=["P001", "P002"])
    with pytest.raises(ValueError, match="index 'P002'"):
        binary_metrics([0, 1], p)


@pytest.mark.parametrize("threshold", [-0.1, 1.1, np.nan])
def test_threshold_validation(threshold):
    with pytest.raises(ValueError, match="threshold"):
        binary_metrics([0, 1], [0.2, 0.8], threshold=threshold)


# -- rank-based AUC -------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_matches_sklearn_with_ties_and_any_scores(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    y[:2] = [0, 1]
    s = np.round(rng.normal(size=300) + y, 1) * 10  # scores outside [0, 1], many ties
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_roc_auc_hand_case_and_undefined():
    # positives 0.35, 0.8; negatives 0.1, 0.4: 0.8 beats both, 0.35 beats 0.1 -> 3/4
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(roc_auc([0, 0], [0.1, 0.2]))


# -- the batch (weighted) form used by the bootstrap ----------------------------------------------
def test_batch_weights_equal_repeating_samples():
    y, p = _sample(3, n=30, ties=True)
    rng = np.random.default_rng(0)
    w = rng.integers(0, 4, size=(5, 30))
    w[:, :2] = 1  # keep both classes
    batch = binary_metrics_batch(y, p, w)
    for b in range(5):
        idx = np.repeat(np.arange(30), w[b])
        ref = binary_metrics(y[idx], p[idx])
        for k in KEYS:
            assert batch[k][b] == pytest.approx(ref[k], abs=1e-12), k


def test_batch_rejects_bad_weights():
    with pytest.raises(ValueError, match="shape"):
        binary_metrics_batch([0, 1], [0.1, 0.9], np.ones((2, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        binary_metrics_batch([0, 1], [0.1, 0.9], [[1, -1]])


# -- properties ---------------------------------------------------------------------------------
samples = st.integers(2, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
        st.lists(st.integers(0, 1000).map(lambda v: v / 1000), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None)
@given(samples)
def test_metric_ranges(sample):
    y, p = sample
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        m = binary_metrics(y, p)
    for k, v in m.items():
        assert np.isnan(v) or 0.0 <= v <= 1.0, k
    assert not np.isnan(m["accuracy"])
    has_both = 0 < sum(y) < len(y)
    assert np.isnan(m["auc"]) != has_both


@settings(max_examples=60, deadline=None)
@given(samples)
def test_auc_symmetry_and_agreement_with_sklearn(sample):
    y, p = sample
    if not 0 < sum(y) < len(y):
        return
    p = np.asarray(p)
    auc = roc_auc(y, p)
    assert auc == pytest.approx(roc_auc_score(y, p), abs=1e-9)
    assert roc_auc(y, -p) == pytest.approx(1 - auc, abs=1e-9)
    assert roc_auc(y, np.exp(3 * p)) == pytest.approx(auc, abs=1e-9)  # rank-based
