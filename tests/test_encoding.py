"""GCS and age encoders, cumulative encoding/decoding and the scikit-learn transformers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from ichprog import encoding
from ichprog.encoding import (
    AgeBinaryEncoder,
    CumulativeEncoder,
    GCSBinaryEncoder,
    GCSOrdinalEncoder,
    age_binary,
    cumulative_decode,
    cumulative_encode,
    gcs_binary,
    gcs_ordinal,
    non_monotone_fraction,
)

pytestmark = pytest.mark.core  # runs on the core install (no extra)

ALL_GCS = list(range(3, 16))
# the paper's classes, written out by hand for every score
BINARY_BY_HAND = [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]  # 3..8 severe
ORDINAL_BY_HAND = [2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0]  # 3-8 / 9-12 / 13-15


# -- GCS and age on every input type --------------------------------------------------------------
@pytest.mark.parametrize(
    "convert",
    [list, np.array, lambda v: np.array(v, dtype=float), lambda v: pd.Series(v),
     lambda v: pd.Series(v, index=[f"P{i}" for i in range(len(v))], dtype="Int64")],
    ids=["list", "int array", "float array", "series", "nullable series"],
)
def test_gcs_encoders_on_every_input_type(convert):
    b = gcs_binary(convert(ALL_GCS))
    o = gcs_ordinal(convert(ALL_GCS))
    assert b.tolist() == BINARY_BY_HAND and o.tolist() == ORDINAL_BY_HAND
    assert b.dtype == np.int64 and o.dtype == np.int64


def test_scalars_return_integer_arrays():
    for value, expected in ((3, 1), (8, 1), (9, 0), (np.int64(15), 0), (12.0, 0)):
        out = gcs_binary(value)
        assert isinstance(out, np.ndarray) and out.shape == () and out.dtype == np.int64
        assert int(out) == expected
    assert int(gcs_ordinal(12)) == 1 and int(gcs_ordinal(13)) == 0
    assert int(age_binary(80)) == 1 and int(age_binary(79.99)) == 0


def test_shape_is_kept():
    grid = np.array([[3, 9], [13, 15]])
    assert gcs_ordinal(grid).tolist() == [[2, 1], [0, 0]]
    assert gcs_binary(grid).shape == (2, 2)


def test_age_binary_types_and_threshold():
    ages = [0, 45.5, 79.9, 80, 80.1, 104]
    expected = [0, 0, 0, 1, 1, 1]
    for convert in (list, np.array, pd.Series):
        out = age_binary(convert(ages))
        assert out.tolist() == expected and out.dtype == np.int64
    assert age_binary(ages, threshold=65).tolist() == [0, 0, 1, 1, 1, 1]


def test_custom_thresholds_and_cutoffs():
    assert gcs_binary(ALL_GCS, threshold=12).tolist() == [1] * 10 + [0] * 3
    # three cut-offs -> four classes; the order in which cut-offs are given does not matter
    out = gcs_ordinal([3, 6, 7, 10, 11, 15], cutoffs=(10, 6, 13))
    assert out.tolist() == [3, 3, 2, 2, 1, 0]


@pytest.mark.parametrize(
    ("fn", "values", "match"),
    [
        (gcs_binary, [3, 2], "got 2 at position 1"),
        (gcs_binary, [16, 3], "got 16 at position 0"),
        (gcs_binary, [3, 8.5], "non-integer 8.5 at position 1"),
        (gcs_binary, [3, np.nan], "got nan at position 1"),
        (gcs_binary, [3, np.inf], "got inf at position 1"),
        (gcs_binary, 2, "got 2 at position \\(\\) of the scalar input"),
        (gcs_ordinal, [[3, 4], [5, 1]], "got 1 at position \\(1, 1\\)"),
        (gcs_binary, [3, "mild"], "expected numbers, got 'mild' at position 1"),
        (age_binary, [50, -1], "got -1 at position 1"),
        (age_binary, [np.nan], "got nan at position 0"),
        (age_binary, [50, np.inf], "got inf at position 1"),
    ],
)
def test_bad_values_name_value_and_position(fn, values, match):
    with pytest.raises(ValueError, match=match):
        fn(values)


def test_error_names_the_series_label():
    gcs = pd.Series([15, 3, 21], index=["P001", "P002", "P003"])
    with pytest.raises(ValueError, match="got 21 at position 2 \\(index 'P003'\\)"):
        gcs_binary(gcs)
    with pytest.raises(ValueError, match="index 'P002'"):
        age_binary(pd.Series([70.0, np.nan], index=["P001", "P002"]))


def test_missing_value_in_a_nullable_series_is_an_error():
    with pytest.raises(ValueError, match="position 1"):
        gcs_binary(pd.Series([3, None, 15], dtype="Int64"))


@pytest.mark.parametrize("cutoffs", [(), (8, 8), ("a",), (8, np.nan)])
def test_bad_cutoffs(cutoffs):
    with pytest.raises(ValueError, match="cutoffs"):
        gcs_ordinal([3, 15], cutoffs=cutoffs)


def test_bad_thresholds():
    with pytest.raises(ValueError, match="threshold"):
        gcs_binary([3], threshold=np.nan)
    with pytest.raises(ValueError, match="threshold"):
        age_binary([3], threshold="old")


# -- cumulative encoding and decoding -----------------------------------------------------------
def test_cumulative_encode_by_hand():
    assert cumulative_encode([0, 1, 2], 3).tolist() == [[0, 0], [1, 0], [1, 1]]
    assert cumulative_encode([0, 3, 1], 4).tolist() == [[0, 0, 0], [1, 1, 1], [1, 0, 0]]
    assert cumulative_encode(1, 2).tolist() == [1]
    assert cumulative_encode(pd.Series([2, 0]), 3).dtype == np.int64


@pytest.mark.parametrize(
    ("classes", "n_classes", "match"),
    [
        ([0, 3], 3, "got 3 at position 1"),
        ([0, -1], 3, "got -1 at position 1"),
        ([0.5], 3, "got 0.5 at position 0"),
        ([np.nan], 3, "got nan"),
        ([0], 1, "n_classes"),
        ([0], 2.5, "n_classes"),
        ([0], True, "n_classes"),
    ],
)
def test_cumulative_encode_validation(classes, n_classes, match):
    with pytest.raises(ValueError, match=match):
        cumulative_encode(classes, n_classes)


def test_decode_rules_on_hand_cases():
    probs = [[0.9, 0.8], [0.9, 0.1], [0.1, 0.1], [0.2, 0.9], [0.7, 0.6]]
    assert cumulative_decode(probs, "count").tolist() == [2, 1, 0, 1, 2]
    assert cumulative_decode(probs, "first_below").tolist() == [2, 1, 0, 0, 2]
    # cumprod: [0.72], [0.09], [0.01], [0.18], [0.42] for the second running product
    assert cumulative_decode(probs, "cumprod").tolist() == [2, 1, 0, 0, 1]
    assert non_monotone_fraction(probs) == pytest.approx(1 / 5)


def test_decode_threshold_and_one_output():
    assert cumulative_decode([0.4, 0.6]).tolist() == [0, 1]
    assert cumulative_decode([[0.4, 0.35]], threshold=0.3).tolist() == [2]
    assert cumulative_decode([[0.5, 0.5]]).tolist() == [0]  # strictly above the threshold


@pytest.mark.parametrize(
    ("probs", "kwargs", "match"),
    [
        ([[0.2, 1.5]], {}, "got 1.5 at row 0, output 1"),
        ([[0.2, -0.1]], {}, "got -0.1 at row 0, output 1"),
        ([[np.nan, 0.2]], {}, "got nan at row 0, output 0"),
        ([[0.2, 0.1]], {"rule": "max"}, "rule"),
        ([[0.2, 0.1]], {"threshold": 2}, "threshold"),
        (np.zeros((2, 2, 2)), {}, "n_samples, n_outputs"),
        (np.zeros((2, 0)), {}, "n_outputs >= 1"),
    ],
)
def test_decode_validation(probs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cumulative_decode(probs, **kwargs)


def test_non_monotone_fraction_of_no_sample_is_nan():
    assert np.isnan(non_monotone_fraction(np.zeros((0, 2))))


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 8).flatmap(
    lambda k: st.tuples(st.just(k), st.lists(st.integers(0, k - 1), min_size=1, max_size=30))
))
def test_encode_decode_round_trip_for_every_rule(case):
    k, classes = case
    targets = cumulative_encode(classes, k)
    assert targets.shape == (len(classes), k - 1)
    for rule in encoding.DECODE_RULES:
        assert cumulative_decode(targets.astype(float), rule=rule).tolist() == classes
    assert non_monotone_fraction(targets) == 0.0


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 6).flatmap(
    lambda k: st.lists(
        st.lists(st.floats(0, 1), min_size=k - 1, max_size=k - 1), min_size=1, max_size=20
    )
))
def test_rules_agree_on_monotone_outputs_and_stay_in_range(probs):
    p = np.asarray(probs)
    k = p.shape[1] + 1
    count = cumulative_decode(p, "count")
    first = cumulative_decode(p, "first_below")
    prod = cumulative_decode(p, "cumprod")
    for out in (count, first, prod):
        assert ((out >= 0) & (out <= k - 1)).all()
    assert (first <= count).all() and (prod <= first).all()
    monotone = ~(np.diff((p > 0.5).astype(int), axis=1) > 0).any(axis=1)
    np.testing.assert_array_equal(count[monotone], first[monotone])
    assert non_monotone_fraction(p) == pytest.approx(1 - monotone.mean())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(3, 15), min_size=1, max_size=30))
def test_binary_gcs_is_the_top_class_of_the_ordinal_gcs(gcs):
    # severe (3-8) is class 2 of the ordinal encoding and class 1 of the binary one
    assert (gcs_binary(gcs) == (gcs_ordinal(gcs) == 2)).all()
    assert (cumulative_encode(gcs_ordinal(gcs), 3)[:, 1] == gcs_binary(gcs)).all()


# -- scikit-learn transformers ------------------------------------------------------------------
TRANSFORMERS = [
    (GCSBinaryEncoder(), [[3], [9], [15]], [[1], [0], [0]], ["GCS_bin"]),
    (GCSOrdinalEncoder(), [[3], [9], [15]], [[2], [1], [0]], ["GCS_ord"]),
    (GCSOrdinalEncoder(cumulative=True), [[3], [9], [15]], [[1, 1], [1, 0], [0, 0]],
     ["GCS_gt0", "GCS_gt1"]),
    (AgeBinaryEncoder(), [[50], [80], [90.5]], [[0], [1], [1]], ["GCS_bin"]),
    (CumulativeEncoder(4), [[0], [3], [1]], [[0, 0, 0], [1, 1, 1], [1, 0, 0]],
     ["GCS_gt0", "GCS_gt1", "GCS_gt2"]),
]


@pytest.mark.parametrize(("est", "X", "expected", "names"), TRANSFORMERS)
def test_transformers_output_and_names(est, X, expected, names):
    out = clone(est).fit_transform(np.asarray(X))
    assert out.tolist() == expected and out.dtype == np.int64
    fitted = clone(est).fit(pd.DataFrame(X, columns=["GCS"]))
    assert fitted.get_feature_names_out().tolist() == names
    assert len(names) == out.shape[1]


def test_clone_keeps_parameters():
    est = GCSOrdinalEncoder(cutoffs=(7, 11), cumulative=True)
    copy = clone(est)
    assert copy is not est and copy.get_params() == {"cutoffs": (7, 11), "cumulative": True}
    assert clone(AgeBinaryEncoder(threshold=65)).threshold == 65


def test_inside_column_transformer_and_pipeline():
    table = pd.DataFrame({"GCS": [3, 9, 15, 14, 5, 12], "Age": [85, 60, 40, 81, 90, 30]})
    y = np.array([1, 0, 0, 1, 1, 0])
    ct = ColumnTransformer([
        ("gcs", GCSOrdinalEncoder(cumulative=True), ["GCS"]),
        ("age", AgeBinaryEncoder(), ["Age"]),
    ])
    out = ct.fit_transform(table)
    assert out.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0], [0, 0, 1], [1, 1, 1], [1, 0, 0]]
    assert ct.get_feature_names_out().tolist() == ["gcs__GCS_gt0", "gcs__GCS_gt1", "age__Age_bin"]
    pipe = Pipeline([("encode", ct), ("model", LogisticRegression())]).fit(table, y)
    assert pipe.predict(table).shape == (6,)
    refit = clone(pipe).fit(table, y)
    np.testing.assert_allclose(refit.predict_proba(table), pipe.predict_proba(table))
    ct.set_output(transform="pandas")
    frame = ct.fit_transform(table)
    assert frame.columns.tolist() == ["gcs__GCS_gt0", "gcs__GCS_gt1", "age__Age_bin"]


def test_transformer_errors_name_the_column():
    table = pd.DataFrame({"GCS": [3, 19]})
    with pytest.raises(ValueError, match="column 'GCS': .*got 19 at position 1"):
        GCSBinaryEncoder().fit(table)
    enc = GCSBinaryEncoder().fit(np.array([[3, 4]]))
    with pytest.raises(ValueError, match="2 column"):
        enc.transform(np.array([[3], [4]]))


def test_transformers_are_stateless():
    # transform works without fit (nothing is learned) and gives the same as fit_transform
    X = np.array([[3], [10]])
    assert GCSBinaryEncoder().transform(X).tolist() == GCSBinaryEncoder().fit_transform(X).tolist()


# -- light imports --------------------------------------------------------------------------------
def test_light_modules_do_not_import_torch_monai_or_shap():
    code = (
        "import sys\n"
        "import ichprog.encoding, ichprog.metrics, ichprog.tasks\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'monai', 'shap'))\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_docstring_examples():
    import doctest

    result = doctest.testmod(encoding)
    assert result.attempted > 0 and result.failed == 0
