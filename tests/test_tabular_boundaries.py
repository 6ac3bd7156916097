"""Tests of ichprog.tabular.boundaries: learned cut-offs recover planted ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ichprog.data.schema import LABEL_COLUMN
from ichprog.encoding import age_binary, gcs_binary
from ichprog.tabular.boundaries import (
    boundary_encoders,
    boundary_splits,
    boundary_tasks,
    decision_boundaries,
    fit_boundary_tree,
    plot_decision_regions,
)


def planted_table(gcs_cut: int, age_cut: int, n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Risk of poor prognosis jumps at GCS <= gcs_cut and at age >= age_cut, flat elsewhere."""
    rng = np.random.default_rng(seed)
    gcs = rng.integers(3, 16, n)
    age = rng.integers(25, 100, n)
    risk = 0.1 + 0.55 * (gcs <= gcs_cut) + 0.3 * (age >= age_cut)
    label = (rng.random(n) < risk).astype(int)
    return pd.DataFrame({"GCS": gcs, "Age": age.astype(float), LABEL_COLUMN: label},
                        index=pd.Index([f"P{i}" for i in range(n)], name="PatientID"))


@pytest.mark.parametrize("gcs_cut, age_cut", [(8, 80), (10, 70), (12, 60), (6, 85)])
def test_planted_cutoffs_are_recovered(gcs_cut, age_cut):
    table = planted_table(gcs_cut, age_cut, seed=gcs_cut)
    assert decision_boundaries(table) == {"GCS": gcs_cut, "Age": age_cut}


def test_a_table_only_cohort_is_accepted():
    from ichprog.data import Cohort

    table = planted_table(8, 80, n=1500, seed=3)
    assert decision_boundaries(Cohort(table, image_paths=None)) == decision_boundaries(table)


def test_cutoffs_follow_the_encoders_conventions():
    table = planted_table(9, 75, seed=1)
    cuts = decision_boundaries(table, pooled=False)
    splits = boundary_splits(fit_boundary_tree(table))
    for col, encode in (("GCS", gcs_binary), ("Age", age_binary)):
        split = splits[splits["feature"] == col].sort_values("gain").iloc[-1]["threshold"]
        values = table[col].to_numpy()
        left = values <= split  # the tree's own partition
        if col == "GCS":  # GCS <= t -> 1: the low side is the positive one
            np.testing.assert_array_equal(encode(values, threshold=cuts[col]), left)
        else:  # age >= t -> 1: the high side is the positive one
            np.testing.assert_array_equal(encode(values, threshold=cuts[col]), ~left)
    assert isinstance(cuts["GCS"], int) and isinstance(cuts["Age"], int)


def test_non_integer_column_keeps_the_split_point():
    rng = np.random.default_rng(2)
    n = 2000
    age = rng.uniform(20, 100, n)
    gcs = rng.integers(3, 16, n)
    label = (rng.random(n) < 0.15 + 0.6 * (age >= 72.3)).astype(int)
    table = pd.DataFrame({"GCS": gcs, "Age": age, LABEL_COLUMN: label})
    cut = decision_boundaries(table, features=["Age"])["Age"]
    assert isinstance(cut, float)
    assert cut == pytest.approx(72.3, abs=0.5)
    sorted_age = np.sort(age)
    # the split lies midway between two observed ages, as scikit-learn places it
    i = np.searchsorted(sorted_age, cut)
    assert cut == pytest.approx((sorted_age[i - 1] + sorted_age[i]) / 2)


def test_splits_table_gain_matches_hand_computation():
    # four patients, one perfect split on GCS: the root's gini 0.5 drops to 0
    table = pd.DataFrame({"GCS": [3, 5, 13, 15], "Age": [50.0, 60, 55, 65],
                          LABEL_COLUMN: [1, 1, 0, 0]})
    tree = fit_boundary_tree(table, max_depth=1, min_samples_leaf=1, balance=False)
    splits = boundary_splits(tree)
    assert splits[["feature", "threshold", "n_samples", "depth"]].to_dict("records") == [
        {"feature": "GCS", "threshold": 9.0, "n_samples": 4, "depth": 0}]
    assert splits["gain"].iloc[0] == pytest.approx(1.0)
    with pytest.warns(UserWarning, match="Age"):
        cuts = decision_boundaries(table, max_depth=1, min_samples_leaf=1, balance=False)
    assert cuts == {"GCS": 9}


def test_encoders_and_tasks_use_the_cutoffs():
    enc = boundary_encoders({"GCS": 10, "Age": 70})
    np.testing.assert_array_equal(enc["GCS"].fit_transform(np.array([9, 10, 11])).ravel(),
                                  [1, 1, 0])
    np.testing.assert_array_equal(enc["Age"].fit_transform(np.array([69, 70, 71])).ravel(),
                                  [0, 1, 1])
    tasks = boundary_tasks({"GCS": 10, "Age": 70})
    table = pd.DataFrame({"GCS": [9, 10, 11], "Age": [69.0, 70.0, 71.0]})
    np.testing.assert_array_equal(tasks["gcs"].targets(table), [1, 1, 0])
    np.testing.assert_array_equal(tasks["age"].targets(table), [0, 1, 1])
    with pytest.raises(ValueError, match="Glucose"):
        boundary_encoders({"Glucose": 100})


def test_bad_input_gives_clear_errors():
    table = planted_table(8, 80, n=200)
    with pytest.raises(KeyError, match="Age"):
        decision_boundaries(table.drop(columns=["Age"]))
    one_class = table.assign(**{LABEL_COLUMN: 1})
    with pytest.raises(ValueError, match="one class"):
        decision_boundaries(one_class)
    bad = table.astype({"Age": object})
    bad.loc["P7", "Age"] = "eighty"
    with pytest.raises(ValueError, match=r"'Age'.*'eighty'.*P7"):
        decision_boundaries(bad)


def test_decision_region_plot_is_written(tmp_path):
    import matplotlib.image as mpimg

    table = planted_table(8, 80, n=400)
    out = plot_decision_regions(table, tmp_path / "fig" / "regions.png", resolution=40)
    assert out.exists()
    img = mpimg.imread(out)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 2 * img.shape[0] * 0.9
