"""The paper's claims: paired bootstrap, verdicts, reference models and the whole check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from ichprog.data import make_phantom_cohort
from ichprog.experiment import ClaimsResult, check_claims, reference_predictions
from ichprog.experiment.claims import CLAIM_COLUMNS, _subsample, paired_bootstrap, verdict
from ichprog.tasks import MT_ORD_GCS_BIN_AGE

pytestmark = pytest.mark.filterwarnings("ignore::ichprog.metrics.UndefinedMetricWarning")


def two_models(n_folds: int = 3, n: int = 30, seed: int = 0, gap: float = 1.0):
    """Predictions of a good model ``a`` and a weaker ``b`` on the same folds."""
    rng = np.random.default_rng(seed)
    rows = []
    for f in range(n_folds):
        y = np.r_[np.zeros(n // 2, int), np.ones(n - n // 2, int)]
        signal = rng.normal(size=n) + gap * y
        noise = rng.normal(size=n)
        ids = [f"{f}-{i}" for i in range(n)]
        for model, s in (("a", signal), ("b", 0.3 * signal + noise)):
            prob = 1.0 / (1.0 + np.exp(-s))
            rows.append(pd.DataFrame({"model": model, "fold": f, "PatientID": ids,
                                      "y_true": y, "score": prob, "pred": (prob >= 0.5) * 1}))
    df = pd.concat(rows, ignore_index=True)
    return df[df["model"] == "a"], df[df["model"] == "b"]


def test_effect_is_the_mean_per_fold_difference_of_sklearns_metrics():
    a, b = two_models()
    for metric, fn, col in (("auc", roc_auc_score, "score"),
                            ("balanced_accuracy", balanced_accuracy_score, "pred")):
        effect, low, high = paired_bootstrap(a, b, metric, n_resamples=300, seed=1)
        per_fold = [fn(ga["y_true"], ga[col]) - fn(gb["y_true"], gb[col])
                    for (_, ga), (_, gb) in zip(a.groupby("fold"), b.groupby("fold"))]
        assert effect == pytest.approx(np.mean(per_fold), abs=1e-12)
        assert low <= effect <= high


def test_sd_statistic_and_identical_models():
    a, b = two_models()
    effect, low, high = paired_bootstrap(a, b, "auc", statistic="sd", n_resamples=100)
    aucs = [[roc_auc_score(g["y_true"], g["score"]) for _, g in d.groupby("fold")]
            for d in (a, b)]
    assert effect == pytest.approx(np.std(aucs[0], ddof=1) - np.std(aucs[1], ddof=1))
    same = paired_bootstrap(a, a.copy(), "auc", n_resamples=200)
    assert same == (0.0, 0.0, 0.0)  # the pairing removes all resampling noise


def test_a_clearly_better_model_holds_and_the_reverse_is_contradicted():
    a, b = two_models(gap=2.5, n=60)
    _, low, high = paired_bootstrap(a, b, "auc", n_resamples=500)
    assert verdict(low, high) == "holds"
    _, low, high = paired_bootstrap(b, a, "auc", n_resamples=500)
    assert verdict(low, high) == "contradicted"


def test_verdict_rules():
    assert verdict(0.01, 0.2) == "holds"
    assert verdict(-0.01, 0.2) == "not shown"
    assert verdict(-0.3, -0.01) == "contradicted"
    assert verdict(-0.01, 0.2, equivalence=True) == "holds"
    assert verdict(float("nan"), 0.1) == "not shown"


def test_unpaired_rows_are_refused():
    a, b = two_models()
    with pytest.raises(ValueError, match="not evaluated on the same"):
        paired_bootstrap(a, b.iloc[1:], "auc")
    with pytest.raises(ValueError, match="metric must be"):
        paired_bootstrap(a, b, "f1")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    return make_phantom_cohort(40, seed=2, out_dir=out, shape=(16, 48, 48), progress=False)


def test_subsamples_are_nested_and_stratified(cohort):
    small, large = _subsample(cohort, 16, 0), _subsample(cohort, 30, 0)
    assert set(small.ids) < set(large.ids)
    share = np.mean(cohort.labels)
    assert abs(np.mean(small.labels) - share) <= 1.0 / 16 + 1e-9


def test_reference_models_use_the_phantoms_truth_on_the_given_folds(cohort):
    from ichprog.data import make_splits

    splits = make_splits(cohort, folds=4, seed=0)
    ref = reference_predictions(cohort, splits, MT_ORD_GCS_BIN_AGE.tasks)
    assert set(ref["model"]) == {"Image oracle", "LR (GCS, age)"}
    oracle = ref[ref["model"] == "Image oracle"]
    assert set(oracle["task"]) == {"prognosis", "gcs", "age"}
    # every patient is predicted once per task, by the model of the fold that tests it
    for _, g in oracle.groupby("task"):
        assert sorted(g["PatientID"]) == sorted(cohort.ids)
        for f in splits.folds:
            assert set(g.loc[g["fold"] == f.index, "PatientID"]) == set(f.test)
    # age >= 80 is written in the atrophy index: the oracle ranks it almost perfectly
    age = oracle[oracle["task"] == "age"]
    assert roc_auc_score(age["y_true"], age["score"]) > 0.85
    assert set(oracle.loc[oracle["task"] == "gcs", "pred"]) <= {0, 1, 2}


@pytest.mark.slow
def test_check_claims_end_to_end(cohort, tmp_path):
    from ichprog.recipes import get_recipe

    cfg = get_recipe("cpu").train_config(max_epochs=1, progress=False)
    res = check_claims(cohort, folds=2, sizes=(20, 40), saliency_patients=1, n_resamples=100,
                       out_dir=tmp_path, cv_kwargs={"config": cfg, "preprocess":
                       get_recipe("cpu").preprocess_config(shape=(32, 32, 32))}, progress=False)
    summary = res.summary()
    assert list(summary.columns[:5]) == CLAIM_COLUMNS
    assert list(summary["claim"]) == ["C1", "C2", "C3 AUC", "C3 balanced accuracy", "C4", "C5",
                                      "C6"]
    assert set(summary["verdict"]) <= {"holds", "not shown", "contradicted"}
    ok = summary[["ci_low", "ci_high"]].notna().all(axis=1)
    assert (summary.loc[ok, "ci_low"] <= summary.loc[ok, "ci_high"]).all()
    assert set(res.learning_curve["size"]) == {20, 40}
    # the image models were trained once per fold and are found again
    again = check_claims(cohort, folds=2, saliency_patients=0, tabular=False, n_resamples=100,
                         out_dir=tmp_path, cv_kwargs={"config": cfg, "preprocess":
                         get_recipe("cpu").preprocess_config(shape=(32, 32, 32))},
                         progress=False)
    c3 = summary.set_index("claim").loc["C3 AUC", "effect"]
    assert again.claims.set_index("claim").loc["C3 AUC", "effect"] == pytest.approx(c3)
    res.save(tmp_path / "saved")
    back = ClaimsResult.load(tmp_path / "saved")
    pd.testing.assert_frame_equal(back.summary(), summary, check_dtype=False)
