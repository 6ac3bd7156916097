"""The model card in a report: :func:`model_card_section` renders the ``model_card.json`` that
:meth:`ichprog.experiment.FoldEnsemble.save` and :meth:`ichprog.experiment.FittedModel.save`
write next to the weights (built by :mod:`ichprog.experiment.modelcard`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ichprog.report.builder import Report

__all__ = ["model_card_section", "read_model_card", "run_sections"]


def read_model_card(path: str | Path) -> dict[str, Any]:
    """A model card from ``model_card.json`` (or the folder holding it)."""
    p = Path(path)
    if p.is_dir():
        p = p / "model_card.json"
    if not p.is_file():
        raise FileNotFoundError(f"no model card at {p}")
    try:
        card: dict[str, Any] = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p} is not valid JSON: {exc}") from exc
    return card


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    if isinstance(v, Mapping):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    return str(v)


def _pooled_table(pooled: list[Mapping[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(pooled)
    df["value"] = [f"{e:.3f} ({lo:.3f} to {hi:.3f})" if pd.notna(e) and pd.notna(lo) else
                   (f"{e:.3f}" if pd.notna(e) else "n/a")
                   for e, lo, hi in zip(df["estimate"], df["low"], df["high"])]
    table = df.pivot(index="metric", columns="task", values="value")
    order = list(dict.fromkeys(df["metric"]))
    table = table.loc[order, list(dict.fromkeys(df["task"]))].fillna("")
    table.index.name = "metric"
    return table


def model_card_section(rep: Report, card: Mapping[str, Any] | str | Path, title: str = "",
                       level: int = 3) -> None:
    """Add a model card to a report.

    Parameters
    ----------
    rep
        The report.
    card
        The card (a dict) or the path of ``model_card.json`` (or of its folder).
    title
        Heading (default ``"Model card: <model name>"``).
    level
        Heading level (2 or 3).
    """
    if not isinstance(card, Mapping):
        card = read_model_card(card)
    model = card.get("model", {})
    rep.heading(title or f"Model card: {model.get('name', '?')}", level=level)
    rep.key_values({
        "model": model.get("kind", ""),
        "tasks": ", ".join(f"{t['name']} ({t['kind']})" for t in model.get("tasks", [])),
        "trunk": model.get("trunk", ""),
        "input": f"{model.get('input', {}).get('image', '')}, pre-processed to "
                 f"{' x '.join(map(str, model.get('input', {}).get('shape', [])))}",
        "ichprog": card.get("ichprog_version", ""),
        "written": card.get("created", ""),
    }, caption="Model")
    data = card.get("data", {})
    if data:
        rep.key_values({k: _fmt(v) for k, v in data.items()}, caption="Data")
    rep.text("**Intended use**")
    rep.bullets(list(card.get("intended_use", [])))
    rep.text("**Out of scope**")
    rep.bullets(list(card.get("out_of_scope", [])))
    metrics = card.get("metrics", {})
    if metrics.get("pooled"):
        rep.table(_pooled_table(metrics["pooled"]),
                  caption=f"Performance: {metrics.get('evaluation', '')}; pooled test "
                          "predictions, estimate and bootstrap 95 % interval "
                          f"({metrics.get('n_resamples', '?')} resamples)")
    elif metrics.get("note"):
        rep.note(f"Performance: {metrics['note']}", "info")
    cal = card.get("calibration", {})
    if cal.get("test_metrics"):
        tm = pd.DataFrame(cal["test_metrics"])
        tm["value"] = [f"{e:.3f} ({lo:.3f} to {hi:.3f})" if pd.notna(e) and pd.notna(lo)
                       else "n/a" for e, lo, hi in zip(tm["estimate"], tm["low"], tm["high"])]
        table = tm.pivot_table(index=["output", "version"], columns="metric", values="value",
                               aggfunc="first", sort=False)
        table.index = [f"{o} ({v})" for o, v in table.index]
        table.index.name = "output"
        rep.table(table, caption=f"Calibration ({cal.get('method', 'none')}, fitted on "
                                 f"{cal.get('fitted_on', 'nothing')}), pooled test folds")
    else:
        rep.note("Calibration: " + "; ".join(cal.get("notes", ["not assessed"])), "info")
    subgroups = card.get("subgroups")
    if isinstance(subgroups, list) and subgroups:
        sg = pd.DataFrame(subgroups).set_index("level")
        keep = [c for c in ("subgroup", "n", "events", "auc", "auc_low", "auc_high", "brier",
                            "balanced_accuracy", "mean_prob", "event_rate") if c in sg.columns]
        rep.table(sg[keep], caption="Subgroups (primary task, pooled test folds; AUC with "
                                    "bootstrap 95 % interval). Gender is shown as the clinical "
                                    "table codes it.")
    elif subgroups:
        rep.note(f"Subgroups: {subgroups}", "info")
    rep.text("**Limitations**")
    rep.bullets(list(card.get("limitations", [])))
    items = card.get("tripod_ai", [])
    if items:
        df = pd.DataFrame(items).set_index("item")
        n_yes = int((df["covered"] == "yes").sum())
        n_part = int((df["covered"] == "partly").sum())
        rep.table(df[["section", "topic", "covered", "where"]],
                  caption=f"TRIPOD+AI checklist (Collins et al., BMJ 2024): {n_yes} of "
                          f"{len(df)} items covered by this run, {n_part} partly; the rest "
                          "belong to the study report")


def run_sections(rep: Report, run_dir: str | Path, labels: Mapping[str, str] | None = None,
                 order: list[str] | None = None) -> None:
    """The calibration and model-card sections of a run folder's cross-validated models
    (``cv/<model>/calibration/`` and ``cv/<model>/model_card.json``), one sub-section each."""
    from ichprog.report.calibration import calibration_section

    labels = dict(labels or {})
    cv = Path(run_dir) / "cv"
    folders = sorted(p for p in cv.iterdir() if p.is_dir()) if cv.is_dir() else []
    rank = {m: i for i, m in enumerate(order or [])}
    folders.sort(key=lambda p: (rank.get(p.name, len(rank)), p.name))
    rep.heading("Calibration, thresholds and decision curves")
    shown = [calibration_section(rep, f, labels.get(f.name, f.name)) for f in folders]
    if not any(shown):
        rep.note("No calibration results: the cross-validation stage did not save its "
                 "ensembles (`ichprog cv`), or ran before this version.", "warning")
    rep.heading("Model cards")
    cards = [f for f in folders if (f / "model_card.json").is_file()]
    if not cards:
        rep.note("No model card in this run folder.", "warning")
    for f in cards:
        rep.text(f"Machine-readable: `{f.name}/model_card.json` under `cv/`.")
        model_card_section(rep, f / "model_card.json",
                           title=f"Model card: {labels.get(f.name, f.name)}")
