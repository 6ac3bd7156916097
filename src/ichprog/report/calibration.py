"""Calibration in reports: the reliability diagram, decision curves, and the report section of a
cross-validated model's calibration, thresholds and decision curves (read from the files that
:meth:`ichprog.experiment.FoldEnsemble.save` writes)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ichprog.report.builder import Report

__all__ = ["reliability_figure", "decision_curve_figure", "calibration_section"]


def reliability_figure(curves: Mapping[str, tuple[Any, Any]], n_bins: int = 10,
                       title: str = "Reliability diagram") -> Any:
    """Observed outcome rate against mean predicted probability per bin, with the diagonal of
    perfect calibration and a histogram of the probabilities.

    Parameters
    ----------
    curves
        ``{label: (y_true, y_prob)}``.
    n_bins
        Uniform bins (those of :func:`sklearn.calibration.calibration_curve`).
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from ichprog.metrics import calibration_table

    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.2, 6.0), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], ls="--", color="0.5", lw=1, label="perfect calibration")
    for label, (y, p) in curves.items():
        t = calibration_table(y, p, n_bins=n_bins)
        line = ax.plot(t["mean_prob"], t["frac_pos"], marker="o", label=label)[0]
        hist.hist(np.asarray(p, dtype=float), bins=np.linspace(0, 1, n_bins + 1),
                  histtype="step", color=line.get_color())
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("observed rate of the outcome")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    hist.set_xlabel("predicted probability")
    hist.set_ylabel("patients")
    fig.tight_layout()
    return fig


def decision_curve_figure(curves: Mapping[str, tuple[Any, Any]], thresholds: Any = None,
                          title: str = "Decision curve") -> Any:
    """Net benefit against threshold probability of each model, with treat-all and treat-none.

    Parameters
    ----------
    curves
        ``{label: (y_true, y_prob)}`` (the same patients, so treat-all is shared).
    thresholds
        Threshold probabilities (default 0.01-0.99).
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from ichprog.metrics import decision_curve

    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    lowest = 0.0
    dc = None
    for label, (y, p) in curves.items():
        dc = decision_curve(y, p, thresholds)
        ax.plot(dc["threshold"], dc["model"], label=label)
        lowest = min(lowest, float(dc["model"].min()))
    if dc is not None:
        ax.plot(dc["threshold"], dc["treat_all"], color="0.4", ls="--", label="treat all")
        ax.plot(dc["threshold"], dc["treat_none"], color="k", lw=1, label="treat none")
        top = max(float(dc["treat_all"].max()), 0.05)
        ax.set_ylim(max(lowest, -0.5 * top) - 0.02, top * 1.15)
    ax.set_xlim(0, 1)
    ax.set_xlabel("threshold probability")
    ax.set_ylabel("net benefit")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _read(path: Path) -> pd.DataFrame | None:
    if not path.is_file() or path.stat().st_size == 0:
        return None
    return pd.read_csv(path)


def _interval_cells(metrics: pd.DataFrame) -> pd.DataFrame:
    """``output x version`` rows, one ``estimate (low-high)`` column per metric."""
    from ichprog.metrics import CALIBRATION_METRICS

    rows = {}
    for (output, version), g in metrics.groupby(["output", "version"], sort=False):
        vals = {str(r["metric"]): (float(r["estimate"]), float(r["low"]), float(r["high"]))
                for r in g.to_dict(orient="records")}
        rows[(output, version)] = {
            m: f"{vals[m][0]:.3f} ({vals[m][1]:.3f} to {vals[m][2]:.3f})"
            if m in vals and np.isfinite(vals[m][0]) else "n/a"
            for m in CALIBRATION_METRICS}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = [f"{o} ({v})" for o, v in table.index]
    table.index.name = "output"
    return table


def calibration_section(rep: Report, cv_dir: str | Path, label: str = "",
                        level: int = 3) -> bool:
    """Add the calibration, thresholds and decision curves of one cross-validated model.

    Parameters
    ----------
    rep
        The report.
    cv_dir
        The model's cross-validation folder, with ``ensemble.json`` and ``calibration/``
        (written by :meth:`ichprog.experiment.FoldEnsemble.save`).
    label
        The model's name in headings.
    level
        Heading level.

    Returns
    -------
    bool
        Whether the folder held calibration results.
    """
    import json

    d = Path(cv_dir)
    test = _read(d / "calibration" / "test_predictions.csv")
    metrics = _read(d / "calibration" / "metrics.csv")
    if test is None or metrics is None:
        return False
    info: dict[str, Any] = {}
    if (d / "ensemble.json").is_file():
        info = json.loads((d / "ensemble.json").read_text(encoding="utf-8")).get(
            "info", {}).get("calibration", {})
    rep.heading(f"Calibration: {label or d.name}", level=level)
    method = info.get("method", "none")
    no_val = info.get("folds_without_validation") or []
    if no_val:
        rep.note(f"Fold(s) {no_val} had no validation part (`cv.val_fraction = 0`, as in the "
                 "'cpu' recipe): their probabilities are **not recalibrated** and their "
                 "threshold stays at 0.5. The test folds are never used to calibrate.", "warning")
    else:
        n_val = [int(v) for v in info.get("n_val", {}).values()]
        if n_val and min(n_val) < 50 and method != "none":
            rep.note(f"The validation parts hold {min(n_val)}-{max(n_val)} patients per fold: "
                     "recalibration and thresholds fitted on so few patients are unstable and "
                     "can make the test folds' calibration worse: compare the intervals "
                     "before and after.",
                     "warning")
        rep.text(f"Each fold's model was recalibrated (**{method}**) on its own validation part "
                 "and evaluated on its test fold; the pooled test folds are shown, before "
                 "(`raw`) and after (`calibrated`) recalibration, with bootstrap 95 % intervals. "
                 "Brier score and ECE: 0 is perfect; slope: 1 is perfect (below 1: too extreme); "
                 "intercept: 0 is perfect (calibration-in-the-large).")
    rep.table(_interval_cells(metrics), caption="Calibration on the pooled test folds "
                                                "(estimate and bootstrap 95 % interval)")
    primary = str(test["output"].iloc[0])
    part = test[test["output"] == primary]
    curves = {"raw": (part["y_true"].to_numpy(), part["prob"].to_numpy())}
    if not np.allclose(part["prob"], part["prob_calibrated"]):
        curves["calibrated"] = (part["y_true"].to_numpy(), part["prob_calibrated"].to_numpy())
    rep.figure(reliability_figure(curves, title=f"{label or d.name}: {primary}"),
               name=f"reliability-{d.name}",
               caption=f"Reliability diagram of {primary}, pooled test folds (uniform bins; "
                       "below: histogram of the probabilities)")
    thm = _read(d / "calibration" / "threshold_metrics.csv")
    if thm is not None and len(thm):
        keep = [c for c in ("output", "rule", "threshold", "balanced_accuracy", "recall",
                            "specificity", "precision", "npv", "f1") if c in thm.columns]
        rep.table(thm[keep].set_index("output"),
                  caption="Decision thresholds on the pooled test folds (recalibrated "
                          "probabilities, where calibrated): the paper's 0.5 next to each "
                          "fold's threshold chosen on its validation part (the threshold column "
                          "shows their mean)")
    rep.figure(decision_curve_figure({f"{label or d.name} ({k})": v for k, v in curves.items()},
                                     title=f"Decision curve: {primary}"),
               name=f"decision-curve-{d.name}",
               caption=f"Net benefit of treating the patients whose predicted probability of "
                       f"{primary} reaches the threshold, against treating all and treating "
                       "none (pooled test folds)")
    for note in info.get("notes", [])[:6]:
        rep.note(str(note), "info")
    return True
