"""Bootstrap confidence intervals: seeding, the vectorised paths against the per-resample loop,
single-class resamples, a normal-approximation check and the speed target."""

from __future__ import annotations

import functools
import time
import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ichprog.metrics import (
    BINARY_METRICS,
    BOOTSTRAP_COLUMNS,
    ORDINAL_METRICS,
    UndefinedMetricWarning,
    binary_metrics,
    bootstrap_ci,
    ordinal_metrics,
    resample_counts,
    roc_auc,
)

pytestmark = pytest.mark.core  # runs on the core install (no extra)


def _binary(n=80, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    p = np.round(np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1), 2)
    return y, p


def _ordinal(n=30, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    pred = np.clip(y + rng.integers(-1, 2, n), 0, 2)
    return y, pred


def test_table_layout_and_estimate():
    y, p = _binary()
    table = bootstrap_ci(binary_metrics, y, p, n_resamples=200)
    assert list(table.columns) == list(BOOTSTRAP_COLUMNS)
    assert table["metric"].tolist() == list(BINARY_METRICS)
    full = binary_metrics(y, p)
    np.testing.assert_allclose(table["estimate"], [full[k] for k in BINARY_METRICS])
    assert (table["low"] <= table["high"]).all()
    assert (table["n_valid"] == 200).all()
    assert table.attrs == {"n_resamples": 200, "ci": 0.95, "seed": 0}


def test_same_seed_same_table_other_seed_other_table():
    y, p = _binary()
    a = bootstrap_ci(binary_metrics, y, p, n_resamples=100, seed=3)
    b = bootstrap_ci(binary_metrics, y, p, n_resamples=100, seed=3)
    c = bootstrap_ci(binary_metrics, y, p, n_resamples=100, seed=4)
    assert a.equals(b)
    assert not a[["low", "high"]].equals(c[["low", "high"]])


def test_vectorised_binary_path_equals_the_per_resample_loop():
    y, p = _binary(n=50)
    fast = bootstrap_ci(binary_metrics, y, p, n_resamples=150, seed=1)
    slow = bootstrap_ci(lambda a, b: binary_metrics(a, b), y, p, n_resamples=150, seed=1,
                        progress=False)
    np.testing.assert_allclose(fast[["estimate", "low", "high"]], slow[["estimate", "low", "high"]],
                               atol=1e-12)
    np.testing.assert_array_equal(fast["n_valid"], slow["n_valid"])


def test_vectorised_auc_equals_sklearn_per_resample():
    y, p = _binary(n=40)
    fast = bootstrap_ci(binary_metrics, y, p, n_resamples=200, seed=2).set_index("metric")
    sk = bootstrap_ci(roc_auc_score, y, p, n_resamples=200, seed=2, progress=False)
    assert sk["metric"].tolist() == ["roc_auc_score"]
    assert fast.loc["auc", "low"] == pytest.approx(sk["low"][0], abs=1e-12)
    assert fast.loc["auc", "high"] == pytest.approx(sk["high"][0], abs=1e-12)


def test_threshold_through_partial():
    y, p = _binary()
    fast = bootstrap_ci(functools.partial(binary_metrics, threshold=0.7), y, p, n_resamples=100)
    slow = bootstrap_ci(lambda a, b: binary_metrics(a, b, threshold=0.7), y, p, n_resamples=100,
                        progress=False)
    np.testing.assert_allclose(fast[["estimate", "low", "high"]], slow[["estimate", "low", "high"]],
                               atol=1e-12)


def test_ordinal_path_equals_the_per_resample_loop():
    y, pred = _ordinal()
    fn = functools.partial(ordinal_metrics, labels=[0, 1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        fast = bootstrap_ci(fn, y, pred, n_resamples=100, seed=5, progress=False)
        slow = bootstrap_ci(lambda a, b: fn(a, b), y, pred, n_resamples=100, seed=5,
                            progress=False)
    assert fast["metric"].tolist() == list(ORDINAL_METRICS)
    np.testing.assert_allclose(fast[["estimate", "low", "high"]], slow[["estimate", "low", "high"]],
                               atol=1e-12)


def test_ordinal_without_labels_uses_the_classes_of_the_full_sample():
    # class 1 is rare: without fixed labels some resamples would lose it and shrink the scale
    y = np.array([0] * 10 + [1] + [2] * 10)
    pred = np.array([0] * 9 + [2] + [1] + [2] * 9 + [0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        default = bootstrap_ci(ordinal_metrics, y, pred, n_resamples=100, progress=False)
        fixed = bootstrap_ci(functools.partial(ordinal_metrics, labels=[0, 1, 2]), y, pred,
                             n_resamples=100, progress=False)
    assert default.equals(fixed)


def test_single_class_resamples_are_counted_not_crashed_on():
    # n = 4 with one positive: a resample holds the positive with probability 1 - (3/4)^4 and a
    # negative with probability 1 - (1/4)^4, so both with 1 - (3/4)^4 - (1/4)^4 = 0.6797
    y = np.array([1, 0, 0, 0])
    p = np.array([0.9, 0.2, 0.4, 0.6])
    n_resamples = 1000
    expected = 1 - 0.75**4 - 0.25**4
    with pytest.warns(UndefinedMetricWarning, match="auc"):
        table = bootstrap_ci(binary_metrics, y, p, n_resamples=n_resamples).set_index("metric")
    sd = np.sqrt(expected * (1 - expected) / n_resamples)
    assert table.loc["auc", "n_valid"] == pytest.approx(expected * n_resamples,
                                                        abs=4 * sd * n_resamples)
    assert table.loc["accuracy", "n_valid"] == n_resamples
    # the generic path counts the resamples where scikit-learn raises
    with pytest.warns(UndefinedMetricWarning):
        sk = bootstrap_ci(roc_auc_score, y, p, n_resamples=n_resamples, progress=False)
    assert sk["n_valid"][0] == table.loc["auc", "n_valid"]


def test_interval_agrees_with_the_normal_approximation_for_accuracy():
    # accuracy is a mean of n Bernoulli variables: its bootstrap interval should be close to
    # acc +/- 1.96 sqrt(acc (1 - acc) / n)
    rng = np.random.default_rng(11)
    n = 1000
    y = rng.integers(0, 2, n)
    p = np.where(rng.random(n) < 0.8, y, 1 - y).astype(float)  # 80 % right
    table = bootstrap_ci(binary_metrics, y, p, n_resamples=2000).set_index("metric")
    acc = table.loc["accuracy", "estimate"]
    half = 1.96 * np.sqrt(acc * (1 - acc) / n)
    assert table.loc["accuracy", "low"] == pytest.approx(acc - half, abs=0.006)
    assert table.loc["accuracy", "high"] == pytest.approx(acc + half, abs=0.006)


def test_ci_level_changes_the_percentiles():
    y, p = _binary()
    wide = bootstrap_ci(roc_auc, y, p, n_resamples=300, ci=0.95, progress=False)
    narrow = bootstrap_ci(roc_auc, y, p, n_resamples=300, ci=0.5, progress=False)
    assert wide["low"][0] < narrow["low"][0] < narrow["high"][0] < wide["high"][0]


def test_resample_counts_rows_sum_to_n():
    counts = resample_counts(7, 50, seed=0)
    assert counts.shape == (50, 7)
    np.testing.assert_array_equal(counts.sum(axis=1), 7)
    np.testing.assert_array_equal(counts, resample_counts(7, 50, seed=0))


def test_all_binary_metrics_for_1000_resamples_of_1000_patients_under_a_second():
    y, p = _binary(n=1000, seed=4)
    bootstrap_ci(binary_metrics, y, p, n_resamples=50)  # warm-up
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        bootstrap_ci(binary_metrics, y, p, n_resamples=1000)
        best = min(best, time.perf_counter() - start)
    assert best < 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_resamples": 0}, "n_resamples"),
        ({"n_resamples": 2.5}, "n_resamples"),
        ({"ci": 1.0}, "ci"),
        ({"ci": 0}, "ci"),
    ],
)
def test_parameter_validation(kwargs, match):
    y, p = _binary()
    with pytest.raises(ValueError, match=match):
        bootstrap_ci(binary_metrics, y, p, **kwargs)


def test_input_validation():
    with pytest.raises(ValueError, match="same length"):
        bootstrap_ci(binary_metrics, [0, 1], [0.1], n_resamples=10)
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci(binary_metrics, [], [], n_resamples=10)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bootstrap_ci(binary_metrics, [0, 1], [0.1, 2.0], n_resamples=10)
