"""Tests of ichprog.report: the document model, the paper-style tables and figures, and the
report of a run folder."""

from __future__ import annotations

import base64
import json
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, roc_auc_score

from ichprog.metrics import TIDY_COLUMNS
from ichprog.report import (
    Report,
    build_report,
    confusion_figure,
    interval_table,
    paper_table,
    roc_figure,
    summary_table,
)

PNG_1x1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


def _tidy(values: dict[str, list[float]], task: str = "prognosis", metric: str = "auc") -> pd.DataFrame:
    rows = [(m, f, task, metric, v) for m, vs in values.items() for f, v in enumerate(vs)]
    return pd.DataFrame(rows, columns=["model", "fold", "task", "metric", "value"])


# -- Report ---------------------------------------------------------------------------------------
def test_html_is_self_contained_and_embeds_the_exact_png(tmp_path):
    rep = Report("Title <b>", subtitle="sub")
    rep.heading("Results")
    rep.figure(PNG_1x1, caption="one pixel", name="pixel")
    html = rep.to_html()
    srcs = re.findall(r'src="([^"]+)"', html)
    assert len(srcs) == 1 and srcs[0].startswith("data:image/png;base64,")
    assert base64.b64decode(srcs[0].split(",", 1)[1]) == PNG_1x1
    # nothing loaded from elsewhere: no external stylesheet, script or link target
    assert "<script" not in html and "<link" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    # the title is escaped, not interpreted
    assert "Title &lt;b&gt;" in html


def test_text_is_escaped_but_code_and_bold_render():
    rep = Report("t")
    rep.text("a <script>alert(1)</script> with `code` and **bold**")
    html = rep.to_html()
    assert "<script>alert" not in html
    assert "&lt;script&gt;" in html
    assert "<code>code</code>" in html and "<strong>bold</strong>" in html


def test_table_cells_and_markdown(tmp_path):
    df = pd.DataFrame({"AUC": [0.81234, float("nan")], "note": ["a|b", "x"]}, index=["LR", "RF"])
    df.index.name = "model"
    rep = Report("t")
    rep.table(df, caption="Table 1")
    html = rep.to_html()
    assert '<p class="caption">Table 1</p>' in html
    assert '<td class="num">0.812</td>' in html and '<td class="num">n/a</td>' in html
    assert "<td>a|b</td>" in html  # text cells are not numbers
    md = rep.to_markdown()
    assert "| model | AUC | note |" in md
    assert "| LR | 0.812 | a\\|b |" in md


def test_save_writes_html_markdown_and_figures(tmp_path):
    rep = Report("t")
    n1 = rep.figure(PNG_1x1, name="fig")
    n2 = rep.figure(PNG_1x1, name="fig")  # same name: made unique
    assert n1 != n2
    paths = rep.save(tmp_path)
    assert paths["html"].is_file() and paths["markdown"].is_file()
    for n in (n1, n2):
        assert (tmp_path / "figures" / n).read_bytes() == PNG_1x1
        assert f"](figures/{n})" in paths["markdown"].read_text()


def test_figure_rejects_non_png_and_missing_file(tmp_path):
    rep = Report("t")
    with pytest.raises(ValueError, match="not a PNG"):
        rep.figure(b"GIF89a....")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        rep.figure(tmp_path / "nope.png")
    with pytest.raises(TypeError, match="DataFrame"):
        rep.table([[1, 2]])  # type: ignore[arg-type]


def test_matplotlib_figure_is_rendered_to_png():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    rep = Report("t")
    rep.figure(fig, name="line")
    assert rep.blocks[-1].payload["png"].startswith(b"\x89PNG")


# -- tables ---------------------------------------------------------------------------------------
def test_summary_table_matches_numpy_mean_and_sample_sd():
    vals = {"A": [0.61, 0.72, 0.55, 0.80], "B": [0.9, 0.7, 0.8, 0.6]}
    out = summary_table(_tidy(vals), "prognosis", labels={"A": "Model A"})
    for name, col in (("A", "Model A"), ("B", "B")):
        v = np.array(vals[name])
        assert out.loc["AUC", col] == f"{v.mean():.2f} ± {v.std(ddof=1):.2f}"
    assert list(out.columns) == ["Model A", "B"]


def test_summary_table_marks_folds_with_undefined_metric():
    out = summary_table(_tidy({"A": [0.5, float("nan"), 0.7]}), "prognosis")
    assert out.loc["AUC", "A"] == "0.60 ± 0.14 (2/3)"
    out = summary_table(_tidy({"A": [float("nan"), float("nan")]}), "prognosis")
    assert out.loc["AUC", "A"] == "n/a"


def test_summary_table_errors_name_the_problem():
    with pytest.raises(ValueError, match="task 'gcs'"):
        summary_table(_tidy({"A": [0.5]}), "gcs")
    with pytest.raises(ValueError, match="missing"):
        summary_table(pd.DataFrame({"model": ["a"]}), "prognosis")


def test_interval_table_from_bootstrap_ci():
    from ichprog.metrics import binary_metrics, bootstrap_ci

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    p = np.clip(y * 0.4 + rng.random(60) * 0.6, 0, 1)
    ci = bootstrap_ci(binary_metrics, y, p, n_resamples=200, seed=1)
    out = interval_table({"MT": ci}, metrics=["accuracy", "auc"])
    row = ci.set_index("metric").loc["accuracy"]
    assert out.loc["Acc.", "MT"] == f"{row.estimate:.2f} ({row.low:.2f}-{row.high:.2f})"
    assert list(out.index) == ["Acc.", "AUC"]


# -- the paper's published numbers ----------------------------------------------------------------
def test_paper_tables_agree_with_the_tabular_modules_transcription():
    from ichprog.tabular import PAPER_TABLE1

    ours = paper_table("table1")
    assert list(ours.columns) == list(PAPER_TABLE1.columns)
    assert ours.to_numpy().tolist() == PAPER_TABLE1.to_numpy().tolist()


def test_paper_table_spot_values():
    # values as printed in Cobo et al. (2024)
    assert paper_table("table2").loc["B. Acc.", "MT (ord GCS, bin age)"] == "0.67 (0.58-0.76)"
    assert paper_table("table3").loc["AUC", "Prognosis DenseNet121"] == "0.69 ± 0.07"
    assert paper_table("table4").loc["Cohen kappa (quadratic)", "Ordinal GCS"] == "0.19 ± 0.18"
    with pytest.raises(KeyError, match="unknown paper table"):
        paper_table("table9")


# -- figures ---------------------------------------------------------------------------------------
def test_roc_figure_legend_reports_sklearn_auc():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 50)
    s = rng.random(50) + 0.3 * y
    fig = roc_figure({"M": (y, s)})
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == [f"M (AUC {roc_auc_score(y, s):.2f})"]


def test_confusion_figure_counts_match_sklearn_with_a_missing_class():
    y = np.array([0, 0, 1, 2, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0])
    y2 = np.array([0, 0, 1, 1])
    p2 = np.array([0, 1, 1, 1])  # class 2 absent from this model's data
    fig = confusion_figure({"a": (y, p), "b": (y2, p2)}, labels=[0, 1, 2])
    for ax, (yt, yp) in zip(fig.axes, ((y, p), (y2, p2))):
        cm = confusion_matrix(yt, yp, labels=[0, 1, 2])
        texts = [int(t.get_text()) for t in ax.texts]
        assert texts == cm.ravel().tolist()


# -- report of a run folder --------------------------------------------------------------------------
def _fake_run(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "cv").mkdir()
    (tmp_path / "tabular").mkdir()
    rows, preds = [], []
    for model in ("baseline_densenet", "mt_ord_gcs_bin_age"):
        for fold in range(3):
            for metric in ("auc", "accuracy", "npv"):
                rows.append((model, fold, "prognosis", metric, rng.random()))
            if model.startswith("mt"):
                rows.append((model, fold, "gcs", "qwk", rng.random()))
            for i in range(10):
                y = int(rng.integers(0, 2))
                s = float(rng.random())
                preds.append((model, fold, f"p{fold}{i}", "prognosis", y, s, int(s >= 0.5)))
    pd.DataFrame(rows, columns=list(TIDY_COLUMNS)).to_csv(tmp_path / "cv" / "metrics.csv",
                                                                  index=False)
    pd.DataFrame(preds, columns=["model", "fold", "PatientID", "task", "y_true", "score", "pred"]).to_csv(
        tmp_path / "cv" / "predictions.csv", index=False)
    pd.DataFrame([("<LR>", 0, "prognosis", "auc", 0.7)],
                 columns=list(TIDY_COLUMNS)).to_csv(tmp_path / "tabular" / "metrics.csv",
                                                           index=False)
    (tmp_path / "run.json").write_text(json.dumps({
        "title": "Demo run", "labels": {"mt_ord_gcs_bin_age": "MT (ord GCS, bin age)"},
        "summary": {"trunk": "densenet_tiny"}, "timings": {"cv": 12.5}, "phantom": True}))
    return tmp_path


def test_build_report_from_run_folder(tmp_path):
    run = _fake_run(tmp_path)
    paths = build_report(run)
    html = paths["html"].read_text()
    assert "Demo run" in html and "phantom cohort" in html
    assert "MT (ord GCS, bin age)" in html          # label from run.json
    assert "&lt;LR&gt;" in html                      # model names escaped
    assert "densenet_tiny" in html and "12.5" in html
    # stages that did not run are reported, not silently left out
    assert "ablation stage was not run" in html and "saliency stage was not run" in html
    # the published tables are printed for comparison
    assert "0.80 ± 0.07" in html
    md = paths["markdown"].read_text()
    for m in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (run / m).is_file()
    assert len(re.findall(r"data:image/png;base64,", html)) >= 2  # ROC + confusion


def test_build_report_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_report(tmp_path / "missing")
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(ValueError, match="run.json is not valid JSON"):
        build_report(tmp_path)


def test_mean_sd_table_is_the_one_builder_of_both_tables():
    from ichprog.metrics import mean_sd_table, summarize, tidy
    from ichprog.report import summary_table

    vals = [0.5, float("nan"), 0.7]
    df = pd.concat([tidy([{"auc": v, "f1": 0.4 + i / 10} for i, v in enumerate(vals)],
                         model="A", task="prognosis"),
                    tidy([{"auc": 0.9}], model="B", task="prognosis")])
    pd.testing.assert_frame_equal(mean_sd_table(df), summarize(df))
    report = mean_sd_table(df, skipna=True, single_sd=False, count_defined=True,
                           undefined="n/a", not_measured="n/a")
    table = summary_table(df, "prognosis")
    assert table.loc["AUC", "A"] == report.loc["auc", "A"] == (
        f"{np.mean([0.5, 0.7]):.2f} ± {np.std([0.5, 0.7], ddof=1):.2f} (2/3)")
    assert table.loc["AUC", "B"] == report.loc["auc", "B"] == "0.90"
    assert report.loc["f1", "B"] == "n/a" and summarize(df).loc["f1", "B"] == ""
    assert mean_sd_table(df, decimals=3).loc["f1", "A"] == (
        f"{np.mean([0.4, 0.5, 0.6]):.3f} ± {np.std([0.4, 0.5, 0.6], ddof=1):.3f}")
