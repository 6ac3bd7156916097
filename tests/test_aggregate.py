"""The tidy metrics table, the mean ± SD summary and the Markdown printer."""

from __future__ import annotations

import statistics
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ichprog.metrics import TIDY_COLUMNS, summarize, summary_stats, tidy, to_markdown

pytestmark = pytest.mark.core  # runs on the core install (no extra)

FOLDS = {
    0: {"prognosis": {"auc": 0.80, "f1": 0.70}, "gcs": {"qwk": 0.30}},
    1: {"prognosis": {"auc": 0.70, "f1": 0.60}, "gcs": {"qwk": 0.10}},
    2: {"prognosis": {"auc": 0.75, "f1": 0.50}, "gcs": {"qwk": 0.20}},
}


def test_tidy_columns_rows_and_order():
    df = tidy(FOLDS, model="MT")
    assert list(df.columns) == list(TIDY_COLUMNS) == ["model", "fold", "task", "metric", "value"]
    assert len(df) == 9
    assert df.iloc[0].tolist() == ["MT", 0, "prognosis", "auc", 0.80]
    assert df.iloc[-1].tolist() == ["MT", 2, "gcs", "qwk", 0.20]
    assert df["value"].dtype == float


def test_tidy_from_a_list_with_one_task():
    df = tidy([{"auc": 0.8}, {"auc": 0.6}], model="baseline", task="prognosis")
    assert df.to_dict("list") == {
        "model": ["baseline", "baseline"], "fold": [0, 1], "task": ["prognosis", "prognosis"],
        "metric": ["auc", "auc"], "value": [0.8, 0.6],
    }


def test_tidy_keeps_nan_and_numpy_numbers():
    df = tidy({0: {"t": {"auc": np.float32(0.5), "npv": float("nan"), "n": np.int64(3)}}})
    assert df["value"].iloc[0] == 0.5
    assert np.isnan(df["value"].iloc[1])
    assert df["value"].iloc[2] == 3.0


def test_tidy_rejects_non_numbers_naming_where():
    with pytest.raises(ValueError, match="fold 1, task 'gcs', metric 'qwk'"):
        tidy({0: {"gcs": {"qwk": 0.2}}, 1: {"gcs": {"qwk": "high"}}}, model="MT")
    with pytest.raises(ValueError, match="real number"):
        tidy({0: {"gcs": {"qwk": True}}})
    with pytest.raises(TypeError, match="task="):
        tidy({0: 0.5})


def test_summary_stats_against_statistics_module():
    stats = summary_stats(tidy(FOLDS, model="MT"))
    row = stats[(stats.task == "prognosis") & (stats.metric == "f1")].iloc[0]
    assert row["mean"] == pytest.approx(statistics.mean([0.70, 0.60, 0.50]))
    assert row["sd"] == pytest.approx(statistics.stdev([0.70, 0.60, 0.50]))  # ddof = 1
    assert row["n"] == 3
    assert stats[["model", "task", "metric"]].values.tolist() == [
        ["MT", "prognosis", "auc"], ["MT", "prognosis", "f1"], ["MT", "gcs", "qwk"]
    ]


def test_summarize_models_as_columns_in_order_of_appearance():
    df = pd.concat([
        tidy([{"auc": 0.9}, {"auc": 0.7}], model="zeta", task="prognosis"),
        tidy([{"auc": 0.6}, {"auc": 0.8}], model="alpha", task="prognosis"),
    ])
    table = summarize(df)
    assert table.columns.tolist() == ["zeta", "alpha"]  # not sorted
    assert table.index.tolist() == ["auc"]
    sd = statistics.stdev([0.9, 0.7])
    assert table.loc["auc", "zeta"] == f"0.80 ± {sd:.2f}"
    numbers = summarize(df, numeric=True)
    assert numbers.columns.tolist() == [("zeta", "mean"), ("zeta", "sd"), ("zeta", "n"),
                                        ("alpha", "mean"), ("alpha", "sd"), ("alpha", "n")]
    assert numbers.loc["auc", ("alpha", "mean")] == pytest.approx(0.7)
    assert numbers.loc["auc", ("alpha", "sd")] == pytest.approx(statistics.stdev([0.6, 0.8]))
    assert numbers.loc["auc", ("alpha", "n")] == 2
    means = numbers.xs("mean", axis=1, level="stat")
    assert means.columns.tolist() == ["zeta", "alpha"]
    assert means.loc["auc"].tolist() == pytest.approx([0.8, 0.7])


def test_summaries_of_two_runs_can_be_joined():
    a = summarize(tidy([{"auc": 0.8}, {"auc": 0.7}], model="A", task="t"))
    b = summarize(tidy([{"auc": 0.6}, {"auc": 0.7}], model="B", task="t"))
    joined = pd.concat([a, b], axis=1)
    assert joined.columns.tolist() == ["A", "B"]
    assert a.merge(b, left_index=True, right_index=True).shape == (1, 2)


def test_summarize_tasks_as_columns_and_several_tasks_as_rows():
    df = tidy(FOLDS, model="MT")
    by_task = summarize(df, columns="task", decimals=3)
    assert by_task.columns.tolist() == ["prognosis", "gcs"]
    assert by_task.index.tolist() == ["auc", "f1", "qwk"]
    assert by_task.loc["qwk", "gcs"] == "0.200 ± 0.100"
    assert by_task.loc["qwk", "prognosis"] == ""  # metric not measured for that task
    by_model = summarize(df)
    assert by_model.index.names == ["task", "metric"]
    assert by_model.loc[("prognosis", "auc"), "MT"] == "0.75 ± 0.05"


def test_summarize_nan_is_visible_unless_skipped():
    df = tidy([{"auc": 0.8}, {"auc": float("nan")}, {"auc": 0.6}], model="m", task="t")
    assert summarize(df).loc["auc", "m"] == "nan"
    skipped = summarize(df, skipna=True)
    assert skipped.loc["auc", "m"] == f"0.70 ± {statistics.stdev([0.8, 0.6]):.2f}"
    assert summarize(df, skipna=True, numeric=True).loc["auc", ("m", "n")] == 2
    assert np.isnan(summarize(df, numeric=True).loc["auc", ("m", "mean")])


def test_summarize_single_fold_has_no_sd():
    df = tidy([{"auc": 0.8}], model="m", task="t")
    assert summarize(df).loc["auc", "m"] == "0.80 ± nan"


def test_summarize_rejects_bad_tables():
    with pytest.raises(ValueError, match="missing column"):
        summarize(pd.DataFrame({"model": ["m"], "value": [1.0]}))
    dup = pd.concat([tidy([{"auc": 0.8}], task="t"), tidy([{"auc": 0.7}], task="t")])
    with pytest.raises(ValueError, match="twice"):
        summarize(dup)
    with pytest.raises(ValueError, match="columns"):
        summarize(tidy(FOLDS), columns="metric")  # type: ignore[arg-type]


def test_to_markdown_exact_output():
    df = pd.DataFrame({"metric": ["auc", "f1"], "value": [0.81234, 0.5]})
    assert to_markdown(df) == (
        "| metric | value |\n"
        "| --- | --- |\n"
        "| auc | 0.8123 |\n"
        "| f1 | 0.5 |"
    )


def test_to_markdown_of_a_summary_with_index_and_escaping():
    table = summarize(tidy([{"auc": 0.8}, {"auc": 0.6}], model="a|b", task="t"))
    text = to_markdown(table)
    lines = text.splitlines()
    assert lines[0] == "| metric | a\\|b |"
    assert lines[2] == f"| auc | 0.70 ± {statistics.stdev([0.8, 0.6]):.2f} |"
    multi = to_markdown(summarize(tidy(FOLDS, model="MT")))
    assert multi.splitlines()[0] == "| task | metric | MT |"
    assert "| gcs | qwk | 0.20 ± 0.10 |" in multi.splitlines()


def test_to_markdown_works_without_tabulate():
    code = (
        "import sys; sys.modules['tabulate'] = None\n"
        "import pandas as pd\n"
        "from ichprog.metrics import to_markdown\n"
        "print(to_markdown(pd.DataFrame({'a': [1]})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "| 1 |"


def test_docstring_examples_of_the_metrics_modules():
    import doctest

    from ichprog.metrics import aggregate, binary, bootstrap, ordinal

    for module in (aggregate, binary, bootstrap, ordinal):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
