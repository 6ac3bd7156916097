"""The run manifest (run.json) is one declared type that the command line writes and the
report reads."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ichprog._manifest import MANIFEST_FORMAT, RunManifest
from ichprog.report import build_report


def test_round_trip_keeps_every_field_and_unknown_keys(tmp_path):
    m = RunManifest(command="ichprog cv --out x", title="T", timings={"cv": 1.5},
                    labels={"mt": "MT"}, model_order=["mt"], phantom=False, notes=["n"],
                    wall_time_s=3.0, claims={"verdicts": {"C3 AUC": "holds"}},
                    extra={"written_by_a_newer_release": [1, 2]})
    path = m.save(tmp_path)
    assert path == tmp_path / "run.json"
    data = json.loads(path.read_text())
    assert data["format"] == MANIFEST_FORMAT and data["timings"] == {"cv": 1.5}
    assert "saliency" not in data  # a stage that did not run leaves no key
    back = RunManifest.load(tmp_path)
    assert dataclasses.asdict(back) == dataclasses.asdict(m)


def test_a_manifest_of_an_earlier_release_is_read():
    old = {"title": "Demo run", "labels": {"a": "A"}, "summary": {"trunk": "x"},
           "timings": {"cv": 12.5}, "phantom": True, "mode": "quick"}
    m = RunManifest.from_dict(old)
    assert (m.title, m.labels, m.timings, m.mode) == ("Demo run", {"a": "A"}, {"cv": 12.5},
                                                      "quick")
    assert m.extra == {}


@pytest.mark.parametrize("key, value, what", [
    ("timings", {"cv": "slow"}, "stage -> seconds"),
    ("model_order", "mt", "list of model names"),
    ("phantom", "yes", "true or false"),
    ("labels", {"mt": 3}, "model -> label"),
])
def test_a_bad_manifest_names_the_file_and_the_key(tmp_path, key, value, what):
    (tmp_path / "run.json").write_text(json.dumps({"title": "t", key: value}))
    with pytest.raises(ValueError, match=rf"run.json: run manifest key '{key}' must be .*{what}"):
        RunManifest.load(tmp_path / "run.json")
    with pytest.raises(ValueError, match="run.json: run manifest key"):
        build_report(tmp_path)


def test_other_format_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="format 'ichprog-run/9'"):
        RunManifest.from_dict({"format": "ichprog-run/9"}, source="x/run.json")
    with pytest.raises(ValueError, match="a JSON object"):
        RunManifest.from_dict([1, 2])
    assert RunManifest.load(tmp_path / "none.json", missing_ok=True) == RunManifest()
    with pytest.raises(FileNotFoundError, match="none.json"):
        RunManifest.load(tmp_path / "none.json")
