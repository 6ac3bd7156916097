"""Ordinal metrics: published OCI / A_UOC values, hand-worked cases, scikit-learn references and an
independent brute-force path enumeration."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    mean_absolute_error,
    mean_squared_error,
)

from ichprog.metrics import (
    ORDINAL_METRICS,
    UndefinedMetricWarning,
    oci,
    oci_from_confusion,
    ordinal_confusion_matrix,
    ordinal_metrics,
    ordinal_metrics_from_confusion,
    quadratic_weighted_kappa,
    uoc_from_confusion,
    uoc_index,
    uoc_index_from_confusion,
)

pytestmark = pytest.mark.core  # runs on the core install (no extra)

# -- published values -----------------------------------------------------------------------------
# Silva, Pinto & Cardoso, "A uniform performance index for ordinal classification with imbalanced
# classes", IJCNN 2018, Table 1: 4-class confusion matrices (rows = true class) with UOC at
# beta = 0.25 and 0.75 and the area A_UOC, published to two decimals (0.5556 for B is the value
# quoted to four decimals). D and F differ only by the size of the first class (4 vs 40), the
# imbalance the index is built to ignore; E has no sample of the third class.
UOC_TABLE = {
    "A": ([[4, 0, 0, 0], [0, 5, 0, 0], [0, 0, 6, 0], [0, 0, 0, 1]], 0.00, 0.00, 0.00),
    "B": ([[0, 4, 0, 0], [0, 0, 6, 0], [0, 0, 5, 0], [0, 0, 0, 3]], 0.46, 0.67, 0.56),
    "C": ([[0, 0, 4, 0], [0, 0, 6, 0], [0, 0, 5, 0], [0, 0, 0, 3]], 0.62, 0.71, 0.65),
    "D": ([[0, 4, 0, 0], [6, 0, 0, 0], [0, 0, 5, 0], [0, 0, 0, 3]], 0.56, 0.67, 0.61),
    "E": ([[0, 4, 0, 0], [6, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 3]], 0.68, 0.80, 0.74),
    "F": ([[0, 40, 0, 0], [6, 0, 0, 0], [0, 0, 5, 0], [0, 0, 0, 3]], 0.56, 0.67, 0.61),
}

# Cardoso & Sousa, "Measuring the performance of ordinal classification", IJPRAI 25(8), 2011,
# Table 1: OCI with gamma = 1 and beta_1 = 0.25 / 0.75, two decimals.
OCI_TABLE = {
    "A": ([[4, 0, 0, 0], [0, 6, 0, 0], [0, 0, 0, 0], [0, 0, 0, 3]], 0.00, 0.00),
    "B": ([[0, 4, 0, 0], [0, 0, 6, 0], [0, 0, 0, 0], [0, 0, 0, 3]], 0.50, 0.63),
    "C": ([[0, 0, 4, 0], [0, 0, 6, 0], [0, 0, 0, 0], [0, 0, 0, 3]], 0.61, 0.78),
    "D": ([[0, 4, 0, 0], [6, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 3]], 0.65, 0.72),
}


def test_auoc_reference_values_from_the_brief():
    assert uoc_index_from_confusion(np.diag([4, 5, 6, 1])) == 0.0
    assert uoc_index_from_confusion(UOC_TABLE["B"][0]) == pytest.approx(0.5556, abs=5e-5)


def test_auoc_of_matrix_b_is_five_ninths_worked_by_hand():
    # Rows normalised and scaled to a total of 1: each present class weighs 1/4, so
    #   n(0,1) = n(1,2) = n(2,2) = n(3,3) = 1/4,  sum n |r - c| = 1/2,  denominator D = 3/2.
    # Candidate consistent paths (benefit B, penalty P) -> line UOC = 1 - B / D + beta P:
    #   through (0,1),(1,2),(2,2),(3,3): B = 1,   P = 1/2 -> 1/3 + beta / 2
    #   dropping (0,1):                  B = 3/4, P = 1/4 -> 1/2 + beta / 4
    #   through (2,2),(3,3) only:        B = 1/2, P = 0   -> 2/3
    # All three meet at beta = 2/3, so the lower envelope is 1/3 + beta/2 on [0, 2/3] and 2/3
    # after: area = 2/9 + 1/9 + 2/9 = 5/9 = 0.5556.
    cm = UOC_TABLE["B"][0]
    assert uoc_index_from_confusion(cm) == pytest.approx(5 / 9, abs=1e-12)
    assert uoc_from_confusion(cm, 0.25) == pytest.approx(1 / 3 + 0.25 / 2, abs=1e-12)
    assert uoc_from_confusion(cm, 0.9) == pytest.approx(2 / 3, abs=1e-12)


@pytest.mark.parametrize("name", sorted(UOC_TABLE))
def test_uoc_published_table(name):
    cm, at25, at75, area = UOC_TABLE[name]
    assert uoc_from_confusion(cm, 0.25) == pytest.approx(at25, abs=0.005 + 1e-9)
    assert uoc_from_confusion(cm, 0.75) == pytest.approx(at75, abs=0.005 + 1e-9)
    assert uoc_index_from_confusion(cm) == pytest.approx(area, abs=0.005 + 1e-9)


@pytest.mark.parametrize("name", sorted(OCI_TABLE))
def test_oci_published_table(name):
    cm, at25, at75 = OCI_TABLE[name]
    assert oci_from_confusion(cm, beta=0.25) == pytest.approx(at25, abs=0.005 + 1e-9)
    assert oci_from_confusion(cm, beta=0.75) == pytest.approx(at75, abs=0.005 + 1e-9)


def test_oci_worked_by_hand_three_classes():
    # cm = [[1, 1, 0], [0, 1, 0], [0, 0, 1]]: N = 4, K = 3, sum n |r - c| = 1, so the
    # denominator is N + 1 = 5 and beta = 0.75 / (N (K - 1)) = 0.75 / 8.
    #   path through (0,1): B = 4, P = 1 -> 1 - 4/5 + 0.75/8 = 0.29375
    #   path skipping it:   B = 3, P = 0 -> 1 - 3/5         = 0.4
    cm = [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert oci_from_confusion(cm) == pytest.approx(0.29375, abs=1e-12)
    assert oci([0, 0, 1, 2], [0, 1, 1, 2], labels=[0, 1, 2]) == pytest.approx(0.29375, abs=1e-12)


def test_auoc_worked_by_hand_three_classes():
    # Same matrix for A_UOC: rows normalised, total 1: n(0,0) = n(0,1) = 1/6,
    # n(1,1) = n(2,2) = 1/3; sum n |r - c| = 1/6, D = 7/6.
    #   path through (0,1): B = 1,   P = 1/6 -> 1/7 + beta / 6
    #   path skipping it:   B = 5/6, P = 0   -> 2/7
    # The lines cross at beta = 6/7: area = 6/49 + (1/12)(36/49) + (1/7)(2/7) = 11/49.
    cm = [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert uoc_index_from_confusion(cm) == pytest.approx(11 / 49, abs=1e-12)
    assert uoc_index([0, 0, 1, 2], [0, 1, 1, 2], labels=[0, 1, 2]) == pytest.approx(11 / 49)


# -- an independent reference: enumerate every consistent path ------------------------------------
def _all_paths(k):
    paths = []

    def walk(r, c, cells):
        if (r, c) == (k - 1, k - 1):
            paths.append(cells)
            return
        for dr, dc in ((0, 1), (1, 0), (1, 1)):
            if r + dr < k and c + dc < k:
                walk(r + dr, c + dc, [*cells, (r + dr, c + dc)])

    walk(0, 0, [(0, 0)])
    return paths


def _reference_lines(cm, row_normalise, gamma=1.0):
    m = np.asarray(cm, dtype=float)
    k = m.shape[0]
    if row_normalise:
        sums = m.sum(axis=1, keepdims=True)
        m = np.where(sums > 0, m / np.where(sums > 0, sums, 1), 0.0)
    m = m / m.sum()
    dist = np.abs(np.subtract.outer(np.arange(k), np.arange(k))) ** gamma
    denom = 1 + (m * dist).sum() ** (1 / gamma)
    lines = []
    for path in _all_paths(k):
        b = sum(m[r, c] for r, c in path)
        p = sum(m[r, c] * dist[r, c] for r, c in path)
        lines.append((1 - b / denom, p))
    return np.array(lines)


def test_path_enumeration_counts_delannoy_numbers():
    # the number of such paths in a k x k grid is the central Delannoy number
    assert [len(_all_paths(k)) for k in (1, 2, 3, 4, 5)] == [1, 3, 13, 63, 321]


confusion_matrices = st.integers(2, 5).flatmap(
    lambda k: st.lists(st.integers(0, 9), min_size=k * k, max_size=k * k).map(
        lambda v, k=k: np.array(v).reshape(k, k)
    )
).filter(lambda m: m.sum() > 0)


@settings(max_examples=40, deadline=None)
@given(confusion_matrices, st.sampled_from([0.25, 0.75, 1.0]), st.sampled_from([1.0, 2.0]))
def test_oci_matches_brute_force(cm, beta1, gamma):
    k = cm.shape[0]
    lines = _reference_lines(cm, row_normalise=False, gamma=gamma)
    beta = beta1 / (k - 1) ** gamma  # in units of the matrix scaled to a total of 1
    expected = (lines[:, 0] + beta * lines[:, 1]).min()
    assert oci_from_confusion(cm, beta=beta1, gamma=gamma) == pytest.approx(expected, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(confusion_matrices)
def test_auoc_matches_brute_force_integral(cm):
    lines = _reference_lines(cm, row_normalise=True)
    grid = np.linspace(0.0, 1.0, 20001)
    curve = (lines[:, :1] + lines[:, 1:] * grid).min(axis=0)
    expected = float(np.sum((curve[1:] + curve[:-1]) / 2 * np.diff(grid)))
    assert uoc_index_from_confusion(cm) == pytest.approx(expected, abs=1e-6)
    for beta in (0.0, 0.3, 1.0):
        assert uoc_from_confusion(cm, beta) == pytest.approx(
            (lines[:, 0] + beta * lines[:, 1]).min(), abs=1e-12
        )


# -- properties ---------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(confusion_matrices, st.data())
def test_auoc_invariant_to_scaling_a_row(cm, data):
    # the paper's claim: a class with more (or fewer) samples, classified the same way,
    # leaves A_UOC unchanged
    row = data.draw(st.integers(0, cm.shape[0] - 1))
    factor = data.draw(st.integers(2, 20))
    scaled = cm.copy()
    scaled[row] *= factor
    assert uoc_index_from_confusion(scaled) == pytest.approx(uoc_index_from_confusion(cm), abs=1e-9)


def test_oci_is_not_invariant_to_class_size():
    # contrast: OCI does move when one class grows (D vs F of the UOC table, 4 vs 40 samples)
    d, f = UOC_TABLE["D"][0], UOC_TABLE["F"][0]
    assert abs(oci_from_confusion(d) - oci_from_confusion(f)) > 0.01
    assert uoc_index_from_confusion(d) == pytest.approx(uoc_index_from_confusion(f), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(confusion_matrices)
def test_auoc_and_oci_ranges(cm):
    assert 0.0 <= uoc_index_from_confusion(cm) <= 1.0 + 1e-12
    assert 0.0 <= oci_from_confusion(cm) <= 1.0 + 1e-12


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=2, max_size=6).filter(lambda v: sum(v) > 0))
def test_diagonal_matrices_are_perfect(counts):
    cm = np.diag(counts)
    assert uoc_index_from_confusion(cm) == pytest.approx(0.0, abs=1e-12)
    assert oci_from_confusion(cm) == pytest.approx(0.0, abs=1e-12)


def test_auoc_grows_with_the_distance_of_the_error():
    near = [[0, 5, 0], [0, 5, 0], [0, 0, 5]]  # class 0 read as 1
    far = [[0, 0, 5], [0, 5, 0], [0, 0, 5]]  # class 0 read as 2
    assert uoc_index_from_confusion(near) < uoc_index_from_confusion(far)


# -- ordinal_metrics against scikit-learn ---------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_ordinal_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 40)
    pred = np.clip(y + rng.integers(-2, 3, 40), 0, 2)
    m = ordinal_metrics(y, pred, labels=[0, 1, 2])
    assert list(m) == list(ORDINAL_METRICS)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["mae"] == pytest.approx(mean_absolute_error(y, pred))
    assert m["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, pred)))
    assert m["qwk"] == pytest.approx(cohen_kappa_score(y, pred, weights="quadratic",
                                                       labels=[0, 1, 2]))
    cm = confusion_matrix(y, pred, labels=[0, 1, 2])
    assert m["uoc"] == pytest.approx(uoc_index_from_confusion(cm))
    np.testing.assert_array_equal(ordinal_confusion_matrix(y, pred, labels=[0, 1, 2]), cm)


def test_rmse_is_the_root_of_the_mean_squared_error_not_its_fourth_root():
    # errors 0, 0, 2, 2: MSE = 2, RMSE = sqrt(2) = 1.414; the fourth root (1.189) is wrong
    m = ordinal_metrics([0, 1, 0, 2], [0, 1, 2, 0], labels=[0, 1, 2])
    assert m["rmse"] == pytest.approx(np.sqrt(2.0))
    assert m["mae"] == pytest.approx(1.0)


def test_balanced_accuracy_with_a_class_absent_from_the_truth_matches_sklearn():
    y, pred = [0, 0, 1, 1], [0, 2, 1, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = balanced_accuracy_score(y, pred)
    assert ordinal_metrics(y, pred, labels=[0, 1, 2])["balanced_accuracy"] == pytest.approx(
        expected
    )


def test_labels_keep_the_class_distances_of_a_fold_missing_a_class():
    # classes 0 and 2 only: without labels, 2 is read as the neighbour of 0
    y, pred = [0, 0, 2, 2], [0, 2, 2, 0]
    with_labels = ordinal_metrics(y, pred, labels=[0, 1, 2])
    without = ordinal_metrics(y, pred)
    np.testing.assert_array_equal(ordinal_confusion_matrix(y, pred), [[1, 1], [1, 1]])
    assert with_labels["uoc"] != pytest.approx(without["uoc"])
    assert with_labels["uoc"] == pytest.approx(
        uoc_index_from_confusion([[1, 0, 1], [0, 0, 0], [1, 0, 1]])
    )
    # MAE is measured on the class values in both cases
    assert with_labels["mae"] == without["mae"] == pytest.approx(1.0)


def test_ordinal_metrics_perfect_prediction():
    m = ordinal_metrics([0, 1, 2, 2], [0, 1, 2, 2], labels=[0, 1, 2])
    assert m == {"accuracy": 1.0, "balanced_accuracy": 1.0, "mae": 0.0, "rmse": 0.0,
                 "uoc": 0.0, "qwk": 1.0}


def test_kappa_undefined_is_nan_with_warning():
    with pytest.warns(UndefinedMetricWarning, match="kappa"):
        m = ordinal_metrics([1, 1, 1], [1, 1, 1], labels=[0, 1, 2])
    assert np.isnan(m["qwk"])
    assert m["accuracy"] == 1.0 and m["uoc"] == 0.0


def test_quadratic_weighted_kappa_hand_computed():
    # cm = [[2, 1], [0, 1]], N = 4: observed disagreement = 1 (one cell off the diagonal),
    # expected = (3 * 2 + 1 * 2) / 4 = 2 over the off-diagonal cells -> kappa = 1 - 1/2 = 0.5
    assert quadratic_weighted_kappa([[2, 1], [0, 1]]) == pytest.approx(0.5)


def test_from_confusion_equals_from_labels():
    y, pred = [0, 1, 2, 2, 1, 0], [0, 2, 2, 1, 1, 1]
    cm = ordinal_confusion_matrix(y, pred, labels=[0, 1, 2])
    assert ordinal_metrics(y, pred, labels=[0, 1, 2]) == pytest.approx(
        ordinal_metrics_from_confusion(cm)
    )


def test_inputs_as_series_and_float_integers():
    pd = pytest.importorskip("pandas")
    y = pd.Series([0.0, 1.0, 2.0], index=["a", "b", "c"])
    assert ordinal_metrics(y, np.array([0, 1, 1]), labels=[0, 1, 2])["accuracy"] == pytest.approx(
        2 / 3
    )


# -- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("y_true", "y_pred", "labels", "match"),
    [
        ([0, 1], [0], None, "same length"),
        ([], [], None, "empty"),
        ([0, np.nan], [0, 1], None, "nan at position 1"),
        ([0, 1.5], [0, 1], None, r"integer class labels; got 1\.5 at position 1"),
        ([0, 1], [0, 3], [0, 1, 2], "y_pred holds the class 3 at position 1"),
        ([0, 1], [0, 1], [0, 1, 1], "unique"),
        ([[0, 1]], [[0, 1]], None, "one-dimensional"),
    ],
)
def test_ordinal_validation(y_true, y_pred, labels, match):
    with pytest.raises(ValueError, match=match):
        ordinal_metrics(y_true, y_pred, labels=labels)


@pytest.mark.parametrize(
    "cm", [[[1, 2, 3]], [[0, 0], [0, 0]], [[1, -1], [0, 1]], [[1, np.nan], [0, 1]]]
)
def test_confusion_matrix_validation(cm):
    with pytest.raises(ValueError):
        uoc_index_from_confusion(cm)


def test_parameter_validation():
    with pytest.raises(ValueError, match="beta"):
        uoc_from_confusion(np.eye(3), 1.5)
    with pytest.raises(ValueError, match="beta"):
        oci_from_confusion(np.eye(3), beta=-1)
    with pytest.raises(ValueError, match="gamma"):
        oci_from_confusion(np.eye(3), gamma=0)


def test_labels_in_reverse_order_rotate_the_matrix_and_keep_the_indices():
    # reading the scale backwards turns the confusion matrix by 180 degrees; a consistent path
    # read backwards is again consistent, so OCI and A_UOC do not change
    y, pred = [0, 0, 1, 2, 2, 1, 0], [0, 1, 1, 2, 0, 2, 0]
    forward = ordinal_confusion_matrix(y, pred, labels=[0, 1, 2])
    backward = ordinal_confusion_matrix(y, pred, labels=[2, 1, 0])
    np.testing.assert_array_equal(backward, forward[::-1, ::-1])
    assert uoc_index(y, pred, labels=[2, 1, 0]) == pytest.approx(uoc_index(y, pred, [0, 1, 2]))
    assert oci(y, pred, labels=[2, 1, 0]) == pytest.approx(oci(y, pred, labels=[0, 1, 2]))
