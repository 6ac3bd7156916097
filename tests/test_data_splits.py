"""Stratified cross-validation splits and random oversampling."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.model_selection import StratifiedKFold

from ichprog.data import Cohort, Fold, Splits, make_splits, oversample


def _paper_like_cohort(n_good: int = 99, n_poor: int = 162) -> Cohort:
    """The paper's class sizes (99 good / 162 poor), table only."""
    n = n_good + n_poor
    rng = np.random.default_rng(1)
    labels = rng.permutation([0] * n_good + [1] * n_poor)
    table = pd.DataFrame({
        "PatientID": [f"P{i:04d}" for i in range(n)],
        "Label (poor_prognosis)": labels,
        "GCS": rng.integers(3, 16, n),
        "Age": rng.integers(20, 100, n),
    })
    return Cohort(table, None)


def test_test_parts_are_sklearn_stratified_kfold() -> None:
    cohort = _paper_like_cohort()
    splits = make_splits(cohort, folds=10, seed=7)
    skf = StratifiedKFold(n_splits=10, shuffle=True, random_state=7)
    ids = np.array(cohort.ids)
    for fold, (_, test_idx) in zip(splits.folds, skf.split(ids, cohort.labels)):
        assert fold.test == list(ids[test_idx])


def test_folds_partition_and_stratify() -> None:
    cohort = _paper_like_cohort()
    labels = dict(zip(cohort.ids, cohort.labels))
    splits = make_splits(cohort, folds=10, seed=0, val_fraction=0.1)
    assert len(splits) == splits.n_folds == 10
    all_test: list[str] = []
    for k, fold in enumerate(splits):
        assert fold.index == k
        parts = [set(fold.train), set(fold.val), set(fold.test)]
        assert sum(map(len, parts)) == len(cohort)
        assert set.union(*parts) == set(cohort.ids)
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        all_test += fold.test
        # the paper's typical sizes: test 26-27, val ~24, train ~210
        assert len(fold.test) in (26, 27)
        n_trainval = len(fold.train) + len(fold.val)
        assert len(fold.val) == int(np.ceil(0.1 * n_trainval))
        # stratified: class shares within one patient of the cohort's share
        for part in (fold.test, fold.val):
            poor = sum(labels[p] for p in part)
            assert abs(poor - len(part) * 162 / 261) <= 1.0 + 1e-9
        order = {pid: i for i, pid in enumerate(cohort.ids)}
        for part in (fold.train, fold.val, fold.test):
            assert [order[p] for p in part] == sorted(order[p] for p in part)
    assert sorted(all_test) == sorted(cohort.ids)


def test_same_seed_same_splits_other_seed_other_splits() -> None:
    cohort = _paper_like_cohort()
    a = make_splits(cohort, folds=5, seed=3)
    b = make_splits(cohort, folds=5, seed=3)
    c = make_splits(cohort, folds=5, seed=4)
    assert a.to_dict() == b.to_dict()
    assert [f.test for f in a] != [f.test for f in c]
    # the validation split also depends on the fold, not only on the seed
    assert a[0].val != a[1].val


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    splits = make_splits(_paper_like_cohort(), folds=4, seed=2)
    splits.save(tmp_path / "out" / "splits.json")
    again = Splits.load(tmp_path / "out" / "splits.json")
    assert again == splits
    assert isinstance(again[0], Fold) and again.seed == 2
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match=r"bad\.json"):
        Splits.load(tmp_path / "bad.json")


def test_tampered_splits_are_rejected() -> None:
    d = make_splits(_paper_like_cohort(30, 30), folds=3, seed=0).to_dict()
    d["folds"][0]["val"].append(d["folds"][0]["test"][0])
    with pytest.raises(ValueError, match="fold 0"):
        Splits.from_dict(d)


def test_other_inputs_and_no_validation() -> None:
    ids = [f"p{i}" for i in range(20)]
    labels = [0] * 8 + [1] * 12
    a = make_splits(ids, folds=4, seed=0, labels=labels, val_fraction=0.0)
    assert all(f.val == [] for f in a)
    b = make_splits(pd.Series(labels, index=ids), folds=4, seed=0, val_fraction=0.0)
    assert a.to_dict() == b.to_dict()
    table = pd.DataFrame({"PatientID": ids, "Label (poor_prognosis)": labels})
    c = make_splits(table, folds=4, seed=0, val_fraction=0.0)
    assert a.to_dict() == c.to_dict()
    with pytest.raises(ValueError, match="no 'Label"):
        make_splits(table.drop(columns=["Label (poor_prognosis)"]), folds=4)


def test_clear_errors() -> None:
    cohort = _paper_like_cohort(5, 40)
    with pytest.raises(ValueError, match=r"folds=10 is larger than the smallest class \(label 0: 5"):
        make_splits(cohort, folds=10)
    with pytest.raises(ValueError, match="folds must be an integer >= 2"):
        make_splits(cohort, folds=1)
    with pytest.raises(ValueError, match="val_fraction"):
        make_splits(cohort, folds=5, val_fraction=1.0)
    with pytest.raises(ValueError, match="two classes"):
        make_splits(["a", "b", "c"], folds=2, labels=[1, 1, 1])
    with pytest.raises(ValueError, match="too few"):
        make_splits(_paper_like_cohort(4, 4), folds=2, val_fraction=0.05)


def test_oversample_balances_with_minority_draws_only() -> None:
    ids = [f"p{i}" for i in range(10)]
    labels = [1, 0, 1, 1, 0, 1, 1, 1, 1, 1]  # 2 good, 8 poor
    out = oversample(ids, labels, seed=0)
    assert out[:10] == ids  # originals first, in order
    lab = dict(zip(ids, labels))
    counts = Counter(lab[p] for p in out)
    assert counts == {0: 8, 1: 8}
    assert set(out[10:]) <= {"p1", "p4"}
    assert oversample(ids, labels, seed=0) == out
    assert any(oversample(ids, labels, seed=s) != out for s in range(1, 6))


def test_oversample_multiclass_uniform_draws() -> None:
    ids = [f"p{i}" for i in range(9)]
    labels = [0, 0, 0, 0, 0, 1, 1, 2, 2]
    out = oversample(ids, labels, seed=1)
    counts = Counter(dict(zip(ids, labels))[p] for p in out)
    assert counts == {0: 5, 1: 5, 2: 5}
    # draws are with replacement and roughly uniform over the class's patients
    many = oversample([f"q{i}" for i in range(102)], [0] * 100 + [1, 1], seed=0)
    extra = Counter(many[102:])
    assert sum(extra.values()) == 98 and set(extra) == {"q100", "q101"}
    assert 30 <= extra["q100"] <= 68  # binomial(98, 0.5): mean 49, SD ~5


def test_oversample_edge_cases() -> None:
    assert oversample([], [], seed=0) == []
    assert oversample(["a", "b"], [1, 1], seed=0) == ["a", "b"]
    with pytest.raises(ValueError, match="2 labels for 3"):
        oversample(["a", "b", "c"], [0, 1], seed=0)
    with pytest.raises(ValueError, match="repeat"):
        oversample(["a", "a"], [0, 1], seed=0)


@settings(max_examples=25, deadline=None)
@given(n0=st.integers(3, 30), n1=st.integers(3, 30), folds=st.integers(2, 6),
       seed=st.integers(0, 2**31 - 1), val=st.sampled_from([0.0, 0.1, 0.25]))
def test_split_invariants(n0: int, n1: int, folds: int, seed: int, val: float) -> None:
    assume(folds <= min(n0, n1))
    ids = [f"id{i}" for i in range(n0 + n1)]
    labels = np.random.default_rng(seed).permutation([0] * n0 + [1] * n1)
    try:
        splits = make_splits(ids, folds=folds, seed=seed, val_fraction=val, labels=labels)
    except ValueError as exc:  # only the documented "too few for a stratified split" case
        assert "val_fraction" in str(exc)
        return
    lab = dict(zip(ids, labels))
    tests = [p for f in splits for p in f.test]
    assert sorted(tests) == sorted(ids)
    for f in splits:
        assert len(f.train) + len(f.val) + len(f.test) == len(ids)
        for c, n in ((0, n0), (1, n1)):
            k = sum(lab[p] == c for p in f.test)
            assert np.floor(n / folds) <= k <= np.ceil(n / folds)
    extra = oversample(splits[0].train, [lab[p] for p in splits[0].train], seed=seed)
    counts = Counter(lab[p] for p in extra)
    assert counts[0] == counts[1]
