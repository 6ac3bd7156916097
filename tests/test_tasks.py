"""Tasks, presets and ablations (ichprog.tasks)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ichprog import tasks as T
from ichprog.encoding import cumulative_encode, gcs_ordinal
from ichprog.metrics import binary_metrics, ordinal_metrics
from ichprog.tasks import Preset, Task

pytestmark = pytest.mark.core  # runs on the core install (no extra)

TABLE = pd.DataFrame(
    {"Label (poor_prognosis)": [0, 1, 1, 0], "GCS": [15, 3, 9, 13], "Age": [45.0, 88.0, 80.0, 79.5]},
    index=pd.Index(["P1", "P2", "P3", "P4"], name="PatientID"),
)


# -- the paper's tasks --------------------------------------------------------------------------
def test_paper_tasks_read_their_columns():
    assert T.PROGNOSIS.targets(TABLE).tolist() == [0, 1, 1, 0]
    assert T.GCS_BINARY.targets(TABLE).tolist() == [0, 1, 0, 0]
    assert T.GCS_ORDINAL.targets(TABLE).tolist() == [0, 2, 1, 0]
    assert T.AGE_BINARY.targets(TABLE).tolist() == [0, 1, 1, 0]


def test_paper_weights_and_shapes():
    # Eq. 1 of the paper: 0.4 prognosis + 0.3 GCS + 0.3 age
    assert (T.PROGNOSIS.weight, T.GCS_BINARY.weight, T.AGE_BINARY.weight) == (0.4, 0.3, 0.3)
    assert T.GCS_ORDINAL.weight == 0.3
    assert [t.n_outputs for t in (T.PROGNOSIS, T.GCS_BINARY, T.GCS_ORDINAL, T.AGE_BINARY)] == [
        1, 1, 2, 1
    ]
    assert T.GCS_ORDINAL.labels == [0, 1, 2] and T.PROGNOSIS.labels == [0, 1]


def test_missing_column_and_bad_values_are_named():
    with pytest.raises(KeyError, match="'GCS'"):
        T.GCS_BINARY.targets(TABLE.drop(columns="GCS"))
    bad = TABLE.assign(GCS=[15, 3, 2, 13])
    with pytest.raises(ValueError, match="column 'GCS'.*got 2 at position 2 \\(index 'P3'\\)"):
        T.GCS_ORDINAL.targets(bad)
    with pytest.raises(ValueError, match="0 or 1"):
        T.PROGNOSIS.targets(TABLE.assign(**{"Label (poor_prognosis)": [0, 1, 2, 0]}))


def test_encoder_output_outside_the_classes_is_refused():
    task = Task("gcs4", "GCS", "ordinal", n_classes=3, encoder="gcs_ordinal",
                encoder_kwargs={"cutoffs": (6, 10, 13)})  # four classes for a 3-class task
    with pytest.raises(ValueError, match="outside 0..2"):
        task.targets(TABLE)


def test_loss_targets():
    lt = T.GCS_ORDINAL.loss_targets([0, 1, 2])
    assert lt.dtype == np.float32
    np.testing.assert_array_equal(lt, cumulative_encode([0, 1, 2], 3))
    b = T.PROGNOSIS.loss_targets([0, 1])
    assert b.dtype == np.float32 and b.shape == (2, 1)


def test_decode_score_and_metrics_of_a_binary_task():
    probs = np.array([[0.2], [0.7], [0.5], [0.4]])
    assert T.PROGNOSIS.decode(probs).tolist() == [0, 1, 1, 0]  # >= threshold
    np.testing.assert_array_equal(T.PROGNOSIS.score(probs), probs.ravel())
    y = [0, 1, 1, 0]
    assert T.PROGNOSIS.metrics(y, probs) == pytest.approx(binary_metrics(y, probs.ravel()))


def test_decode_score_and_metrics_of_an_ordinal_task():
    probs = np.array([[0.9, 0.8], [0.9, 0.1], [0.1, 0.1], [0.2, 0.9]])
    assert T.GCS_ORDINAL.decode(probs).tolist() == [2, 1, 0, 1]  # the paper's count rule
    first_below = T.GCS_ORDINAL.replace(decode_rule="first_below")
    assert first_below.decode(probs).tolist() == [2, 1, 0, 0]
    np.testing.assert_allclose(T.GCS_ORDINAL.score(probs), [1.7, 1.0, 0.2, 1.1])
    y = [2, 1, 0, 0]
    expected = ordinal_metrics(y, [2, 1, 0, 1], labels=[0, 1, 2])
    assert T.GCS_ORDINAL.metrics(y, probs) == pytest.approx(expected)


def test_ordinal_metrics_of_a_task_keep_all_classes():
    # a fold without any moderate patient: the task passes labels=[0, 1, 2] itself
    y = gcs_ordinal([15, 15, 3, 3])
    probs = np.array([[0.1, 0.1], [0.9, 0.9], [0.9, 0.9], [0.1, 0.1]])
    got = T.GCS_ORDINAL.metrics(y, probs)
    assert got["uoc"] == pytest.approx(ordinal_metrics(y, [0, 2, 2, 0], labels=[0, 1, 2])["uoc"])
    assert got["uoc"] != pytest.approx(ordinal_metrics(y, [0, 2, 2, 0])["uoc"])


def test_continuous_task():
    task = Task("age_years", "Age", "continuous", n_classes=5, encoder="identity")
    assert task.n_classes == 1 and task.n_outputs == 1 and task.labels == []
    assert task.targets(TABLE).tolist() == [45.0, 88.0, 80.0, 79.5]
    m = task.metrics([1.0, 2.0, 4.0], [[1.0], [3.0], [2.0]])
    assert m["mae"] == pytest.approx(1.0)
    assert m["rmse"] == pytest.approx(np.sqrt(5 / 3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "nominal"}, "kind"),
        ({"kind": "binary", "n_classes": 3}, "n_classes=2"),
        ({"kind": "ordinal", "n_classes": 2}, ">= 3"),
        ({"weight": -1.0}, "weight"),
        ({"weight": float("inf")}, "weight"),
        ({"encoder": "nope"}, "unknown encoder"),
        ({"decode_rule": "max"}, "decode_rule"),
    ],
)
def test_task_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Task("t", "col", **kwargs)


def test_callable_encoder_and_its_serialisation():
    def double_label(values):
        return (np.asarray(values) > 0).astype(int)

    task = Task("custom", "GCS", encoder=double_label)
    assert task.targets(TABLE).tolist() == [1, 1, 1, 1]
    d = task.to_dict()
    assert d["encoder"].endswith("double_label")
    with pytest.raises(ValueError, match="custom encoder"):
        Task.from_dict(d)


def test_task_dict_round_trip_through_json():
    for task in (T.PROGNOSIS, T.GCS_BINARY, T.GCS_ORDINAL, T.AGE_BINARY):
        back = Task.from_dict(json.loads(json.dumps(task.to_dict())))
        assert back == task and hash(back) == hash(task)


def test_task_with_tuple_kwargs_round_trips_through_json():
    task = T.GCS_ORDINAL.replace(encoder_kwargs={"cutoffs": (8, 12)})
    back = Task.from_dict(json.loads(json.dumps(task.to_dict())))
    assert back == task
    hash(back)


def test_binary_loss_targets_refuse_a_third_class():
    with pytest.raises(ValueError):
        T.PROGNOSIS.loss_targets([0, 1, 2])


def test_replace_keeps_the_original():
    lighter = T.GCS_BINARY.replace(weight=0.1)
    assert lighter.weight == 0.1 and T.GCS_BINARY.weight == 0.3
    assert lighter != T.GCS_BINARY


# -- presets ------------------------------------------------------------------------------------
def test_presets_of_the_paper():
    assert set(T.PRESETS) == {
        "baseline_perez", "baseline_densenet", "baseline_gcs_bin", "baseline_gcs_ord",
        "baseline_age", "mt_bin_gcs_bin_age", "mt_ord_gcs_bin_age",
    }
    mt = T.MT_ORD_GCS_BIN_AGE
    assert mt.task_names == ["prognosis", "gcs", "age"]
    assert mt.weights == {"prognosis": 0.4, "gcs": 0.3, "age": 0.3}
    assert mt["gcs"].kind == "ordinal" and T.MT_BIN_GCS_BIN_AGE["gcs"].kind == "binary"
    assert mt.primary is mt[0] and mt.primary.name == "prognosis"
    assert mt.trunk == "densenet121" and T.BASELINE_PEREZ.trunk == "perez2023"
    assert len(mt) == 3 and [t.name for t in mt] == mt.task_names
    for name in ("baseline_perez", "baseline_densenet", "baseline_gcs_bin", "baseline_age"):
        preset = T.PRESETS[name]
        assert len(preset) == 1 and preset.primary.weight == 1.0


def test_preset_lookup_errors():
    with pytest.raises(KeyError, match="no task 'volume'"):
        T.MT_ORD_GCS_BIN_AGE["volume"]
    with pytest.raises(KeyError, match="unknown preset"):
        T.get_preset("nope")


def test_preset_validation():
    with pytest.raises(ValueError, match="no task"):
        Preset("empty", ())
    with pytest.raises(ValueError, match="unique"):
        Preset("dup", (T.GCS_BINARY, T.GCS_ORDINAL))


def test_preset_round_trip():
    for preset in T.PRESETS.values():
        back = Preset.from_dict(json.loads(json.dumps(preset.to_dict())))
        assert back == preset


def test_as_preset_accepts_every_form():
    assert T.as_preset("mt_ord_gcs_bin_age") is T.MT_ORD_GCS_BIN_AGE
    assert T.as_preset(T.MT_ORD_GCS_BIN_AGE) is T.MT_ORD_GCS_BIN_AGE
    single = T.as_preset(T.PROGNOSIS)
    assert single.tasks == (T.PROGNOSIS,) and single.name == "prognosis"
    listed = T.as_preset([T.PROGNOSIS, T.AGE_BINARY])
    assert listed.name == "prognosis+age" and listed.task_names == ["prognosis", "age"]
    other = T.as_preset("baseline_densenet", trunk="densenet_tiny")
    assert other.trunk == "densenet_tiny" and T.BASELINE_DENSENET.trunk == "densenet121"
    with pytest.raises(TypeError):
        T.as_preset([T.PROGNOSIS, "age"])


def test_ablations_of_a_three_task_model():
    abl = T.ablations(T.MT_ORD_GCS_BIN_AGE)
    assert list(abl) == [
        "mt_ord_gcs_bin_age",
        "mt_ord_gcs_bin_age-no_age",
        "mt_ord_gcs_bin_age-no_gcs",
        "mt_ord_gcs_bin_age-only_prognosis",
    ]
    assert abl["mt_ord_gcs_bin_age"] == T.MT_ORD_GCS_BIN_AGE
    assert abl["mt_ord_gcs_bin_age-no_gcs"].weights == {"prognosis": 0.4, "age": 0.3}
    assert abl["mt_ord_gcs_bin_age-only_prognosis"].task_names == ["prognosis"]
    assert all(p.trunk == "densenet121" and p.primary.name == "prognosis" for p in abl.values())


def test_ablations_keep_another_primary_task():
    abl = T.ablations(T.MT_BIN_GCS_BIN_AGE, keep="gcs")
    assert all(p.primary.name == "gcs" for p in abl.values())
    assert len(abl) == 4


def test_task_weight_must_be_a_number():
    with pytest.raises(ValueError, match="weight"):
        Task("x", "Label (poor_prognosis)", weight="heavy")  # type: ignore[arg-type]


def test_ablations_can_raise_the_primary_weight_like_the_scripts():
    ab = T.ablations(T.MT_BIN_GCS_BIN_AGE, primary_weight=0.5)
    assert ab["mt_bin_gcs_bin_age"].weights == {"prognosis": 0.4, "gcs": 0.3, "age": 0.3}
    assert ab["mt_bin_gcs_bin_age-no_gcs"].weights == {"prognosis": 0.5, "age": 0.3}


def test_replacing_the_trunk_renames_the_model():
    from ichprog.tasks import BASELINE_DENSENET, BASELINE_PEREZ, MT_BIN_GCS_BIN_AGE, as_preset

    assert as_preset(BASELINE_DENSENET, trunk="densenet_tiny").label == "Baseline tiny DenseNet"
    assert as_preset(MT_BIN_GCS_BIN_AGE, trunk="densenet_tiny").label == (
        "MT (bin GCS, bin age) [tiny DenseNet]")
    assert as_preset(BASELINE_PEREZ, trunk="perez2023") is BASELINE_PEREZ
