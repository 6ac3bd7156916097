"""Model cards: what a saved model is, what it is for, how well it did and where it falls short.

:func:`ensemble_model_card` describes the fold ensemble of a cross-validation (with the test
folds' metrics and their intervals, calibration, subgroup results and a TRIPOD+AI checklist);
:func:`fitted_model_card` describes one model trained on all patients (which has no held-out
test set). Both return a JSON-serialisable dict, written as ``model_card.json`` next to the
weights by :meth:`FoldEnsemble.save` and :meth:`FittedModel.save`;
:func:`ichprog.report.model_card_section` renders one in a report.

The TRIPOD+AI checklist (Collins et al., BMJ 2024;385:e078378) has 27 items; the card lists each
with ``covered`` = ``"yes"``, ``"partly"`` or ``"no"`` and where this run covers it. Items that
only the authors of a study can write (title, abstract, ethics, funding, the discussion) are
``"no"`` with the reason "the study report".
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ichprog._version import __version__
from ichprog.constants import AGE_COLUMN, ID_COLUMN

MODEL_CARD_FORMAT = "ichprog-model-card/1"

__all__ = ["MODEL_CARD_FORMAT", "TRIPOD_AI_ITEMS", "ensemble_model_card", "fitted_model_card",
           "subgroup_results"]

#: The items of the TRIPOD+AI statement (number, section, topic).
TRIPOD_AI_ITEMS: tuple[tuple[str, str, str], ...] = (
    ("1", "Title", "Title"),
    ("2", "Abstract", "Abstract"),
    ("3", "Introduction", "Background"),
    ("4", "Introduction", "Objectives"),
    ("5", "Methods", "Data"),
    ("6", "Methods", "Participants"),
    ("7", "Methods", "Data preparation"),
    ("8", "Methods", "Outcome"),
    ("9", "Methods", "Predictors"),
    ("10", "Methods", "Sample size"),
    ("11", "Methods", "Missing data"),
    ("12", "Methods", "Analytical methods"),
    ("13", "Methods", "Class imbalance"),
    ("14", "Methods", "Fairness"),
    ("15", "Methods", "Model output"),
    ("16", "Methods", "Training versus evaluation"),
    ("17", "Methods", "Ethical approval"),
    ("18", "Open science", "Funding, conflicts of interest, protocol, registration, data and "
                           "code sharing"),
    ("19", "Patient and public involvement", "Patient and public involvement"),
    ("20", "Results", "Participants"),
    ("21", "Results", "Model development"),
    ("22", "Results", "Model specification"),
    ("23", "Results", "Model performance"),
    ("24", "Results", "Model updating"),
    ("25", "Discussion", "Interpretation"),
    ("26", "Discussion", "Limitations"),
    ("27", "Discussion", "Usability of the model in the context of current care"),
)

_STUDY = "the study report: not something a software run can provide"

INTENDED_USE = [
    "Research on outcome prediction after spontaneous or traumatic intracranial hemorrhage "
    "from a non-contrast head CT: reproducing and extending Cobo et al. (2024), comparing "
    "single-task and multi-task models, studying calibration and saliency.",
    "Estimating the probability of a poor prognosis (and the auxiliary GCS and age targets) of "
    "patients like the development cohort, with the spread across the cross-validation's fold "
    "models as a measure of the model's own uncertainty.",
]

OUT_OF_SCOPE = [
    "Clinical decisions about an individual patient (treatment, withdrawal of care, triage): the "
    "model is not validated externally or prospectively, and not a medical device.",
    "Scans unlike the development data: other scanners or protocols, contrast-enhanced CT, MRI, "
    "children, or scans pre-processed differently than the model's pre-processing record says.",
    "Populations whose outcome rate differs from the development cohort's without recalibration.",
    "Models trained on the phantom cohort: synthetic data, for testing the software only.",
]


def _limitations(phantom: bool, n_patients: int | None, no_val: bool) -> list[str]:
    out = []
    if phantom:
        out.append("Trained and evaluated on a synthetic phantom cohort: the numbers describe the "
                   "software's behaviour, not clinical performance.")
    if n_patients is not None and n_patients < 500:
        out.append(f"Small development cohort ({n_patients} patients): wide intervals, and the "
                   "folds' test sets are small.")
    out.append("Internal validation only (cross-validation on one cohort); no external, temporal "
               "or prospective validation.")
    if no_val:
        out.append("No validation part (val_fraction 0): the probabilities were not recalibrated "
                   "and the 0.5 threshold was not tuned; the test folds were never used for "
                   "either.")
    out.append("Subgroup results rest on few patients per group; they flag gaps, they do not "
               "prove fairness.")
    out.append("Saliency maps show where the network's evidence lies, not why; they are not a "
               "validated explanation.")
    return out


def _cohort_info(cohort: Any) -> dict[str, Any]:
    if cohort is None:
        return {"source": "unknown (no cohort given when the card was written)"}
    from ichprog.constants import LABEL_COLUMN

    table = cohort.table
    root = getattr(cohort, "root", None)
    phantom = root is not None and (root / "phantom_truth.csv").is_file()
    info: dict[str, Any] = {
        "source": "phantom cohort (synthetic, ichprog.data.make_phantom_cohort)" if phantom
        else f"clinical table and scans under {root}",
        "phantom": bool(phantom),
        "n_patients": int(len(table)),
    }
    if LABEL_COLUMN in table.columns:
        info["poor_prognosis"] = int(table[LABEL_COLUMN].sum())
        info["prevalence"] = float(table[LABEL_COLUMN].mean())
    if AGE_COLUMN in table.columns:
        info["age_mean"] = float(table[AGE_COLUMN].mean())
        info["age_ge_80"] = int((table[AGE_COLUMN] >= 80).sum())
    for col in ("Gender", "Cause_head_trauma"):
        if col in table.columns:
            info[f"{col}_counts"] = {str(k): int(v) for k, v in
                                     table[col].value_counts().sort_index().items()}
    return info


#: The subgroups of the model card: ``(name, column, how a level is derived, level labels)``.
SUBGROUPS: tuple[tuple[str, str], ...] = (
    ("sex", "Gender"),
    ("age >= 80", AGE_COLUMN),
    ("traumatic", "Cause_head_trauma"),
)


def subgroup_results(test: pd.DataFrame, table: pd.DataFrame, output: str = "prognosis",
                     prob: str = "prob_calibrated", n_resamples: int = 1000,
                     seed: int = 0) -> pd.DataFrame:
    """Discrimination and calibration of one output in the subgroups of the clinical table.

    Parameters
    ----------
    test
        Test predictions (:meth:`FoldEnsemble.test_predictions`: ``PatientID``, ``output``,
        ``y_true`` and the probability column ``prob``).
    table
        The clinical table, indexed by ``PatientID``.
    output
        The output to evaluate.
    prob
        The probability column.
    n_resamples, seed
        Bootstrap of the AUC's 95 % interval.

    Returns
    -------
    pandas.DataFrame
        One row per subgroup and level: ``subgroup``, ``level`` (``Gender = 0`` / ``Gender = 1``
        as the table codes it; ``age >= 80`` yes / no; ``Cause_head_trauma`` 1 traumatic / 0
        not), ``n``, ``events``, ``auc``, ``auc_low``, ``auc_high``, ``brier``,
        ``balanced_accuracy`` (at 0.5) and ``mean_prob`` against ``event_rate``.
    """
    from ichprog.metrics import binary_metrics, bootstrap_ci

    part = test[test["output"] == output].copy()
    part[ID_COLUMN] = part[ID_COLUMN].astype(str)
    tab = table.copy()
    tab.index = tab.index.map(str)
    rows = []
    for name, col in SUBGROUPS:
        if col not in tab.columns:
            continue
        values = tab[col].reindex(part[ID_COLUMN].to_numpy()).to_numpy()
        if col == AGE_COLUMN:
            levels = {"age >= 80": values >= 80, "age < 80": values < 80}
        elif col == "Gender":
            levels = {f"Gender = {v:g}": values == v for v in sorted(pd.unique(values[~pd.isna(
                values)]))}
        else:
            levels = {"traumatic (Cause_head_trauma = 1)": values == 1,
                      "not traumatic (Cause_head_trauma = 0)": values == 0}
        for level, mask in levels.items():
            sub = part[np.asarray(mask, dtype=bool)]
            y = sub["y_true"].to_numpy(int)
            p = sub[prob].to_numpy(float)
            row: dict[str, Any] = {"subgroup": name, "level": level, "n": int(len(sub)),
                                   "events": int(y.sum())}
            if len(sub):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    table = bootstrap_ci(binary_metrics, y, p, n_resamples=n_resamples,
                                         seed=seed, progress=False)
                ci = {str(r["metric"]): r for r in table.to_dict(orient="records")}
                row.update(auc=float(ci["auc"]["estimate"]),
                           auc_low=float(ci["auc"]["low"]),
                           auc_high=float(ci["auc"]["high"]),
                           brier=float(np.mean((p - y) ** 2)),
                           balanced_accuracy=float(ci["balanced_accuracy"]["estimate"]),
                           mean_prob=float(p.mean()), event_rate=float(y.mean()))
            rows.append(row)
    return pd.DataFrame(rows)


def _records(df: pd.DataFrame | None) -> list[dict[str, Any]]:
    if df is None or df.empty:
        return []
    clean = df.astype(object).where(pd.notna(df), None)
    return [{str(k): v for k, v in r.items()} for r in clean.to_dict(orient="records")]


def _performance(ens: Any, n_resamples: int, seed: int) -> dict[str, Any]:
    """Mean ± SD over the test folds, and pooled estimates with bootstrap 95 % intervals."""
    from functools import partial

    from ichprog.experiment._common import _probs_from_frame
    from ichprog.experiment.cv import CVResult
    from ichprog.metrics import binary_metrics, bootstrap_ci, ordinal_metrics
    from ichprog.metrics.aggregate import summary_stats

    if ens.source is None or not (ens.source / "config.json").is_file():
        return {"note": "no cross-validation results next to the models"}
    cv = CVResult.load(ens.source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per_fold = summary_stats(pd.DataFrame(cv.metrics))  # the tidy table (a property)
        pooled = []
        preds = cv.predictions
        for t in ens.preset:
            y = preds[f"{t.name}_true"].to_numpy()
            probs = _probs_from_frame(preds, t)
            if t.kind == "binary":
                table = bootstrap_ci(binary_metrics, y, t.score(probs), n_resamples=n_resamples,
                                     seed=seed, progress=False)
            elif t.kind == "ordinal":
                table = bootstrap_ci(partial(ordinal_metrics, labels=t.labels), y,
                                     t.decode(probs), n_resamples=n_resamples, seed=seed,
                                     progress=False)
            else:
                continue
            table.insert(0, "task", t.name)
            pooled.append(table)
    return {
        "evaluation": f"{len(cv.folds)}-fold cross-validation: each patient tested once, by the "
                      "fold model that did not see it; threshold 0.5",
        "per_fold": _records(per_fold),
        "pooled": _records(pd.concat(pooled, ignore_index=True) if pooled else None),
        "n_resamples": n_resamples,
    }


def _header() -> dict[str, Any]:
    """The first keys of every model card: its format, when it was made and by which version."""
    return {"format": MODEL_CARD_FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "ichprog_version": __version__}


def _model_fields(fitted: Any, preset: Any) -> dict[str, Any]:
    """What a card says of a model's tasks (``preset``), and of its trunk and input (those of
    ``fitted``, the same for every fold of an ensemble)."""
    return {
        "preset": preset.name,
        "tasks": [{"name": t.name, "kind": t.kind, "column": t.column, "label": t.label,
                   "weight": t.weight} for t in preset],
        "trunk": fitted.model.trunk_name,
        "input": {"image": "non-contrast head CT (NIfTI), one scan per patient",
                  "shape": list(fitted.preprocess.shape)},
        "preprocess": fitted.preprocess.to_dict(),
    }


def _checklist(covered: Mapping[str, tuple[str, str]]) -> list[dict[str, str]]:
    out = []
    for num, section, topic in TRIPOD_AI_ITEMS:
        status, where = covered.get(num, ("no", _STUDY))
        out.append({"item": num, "section": section, "topic": topic, "covered": status,
                    "where": where})
    return out


def ensemble_model_card(ens: Any, cohort: Any = None,
                        calibration: Mapping[str, pd.DataFrame] | None = None,
                        n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The model card of a :class:`~ichprog.experiment.FoldEnsemble`.

    Parameters
    ----------
    ens
        The ensemble (loaded from its cross-validation folder).
    cohort
        The cross-validation's cohort; without it, the data and subgroup sections say so.
    calibration
        :meth:`FoldEnsemble.calibration_report` (computed when not given).
    n_resamples, seed
        Bootstrap of the intervals.

    Returns
    -------
    dict
        ``format``, ``created``, ``model``, ``intended_use``, ``out_of_scope``, ``data``,
        ``metrics``, ``calibration``, ``thresholds``, ``subgroups``, ``limitations``,
        ``tripod_ai``.
    """
    first = ens.models[0]
    data = _cohort_info(cohort)
    cal_info = dict(ens.info.get("calibration", {"method": "none",
                                                 "notes": ["calibrate() was not run"]}))
    if calibration is None and ens.source is not None and \
            (ens.source / "predictions.csv").is_file():
        calibration = ens.calibration_report(n_resamples=n_resamples, seed=seed)
    no_val = bool(cal_info.get("folds_without_validation")) or \
        not any(m.info.get("val_ids") for m in ens.models)
    subgroups: Any = "not computed: no cohort (clinical table) given"
    if cohort is not None and ens.source is not None and \
            (ens.source / "predictions.csv").is_file():
        test = ens.test_predictions()
        primary = ens.preset.primary.name
        subgroups = _records(subgroup_results(test, cohort.table, output=primary,
                                              n_resamples=n_resamples, seed=seed))
    perf = _performance(ens, n_resamples, seed)
    has_sub = isinstance(subgroups, list) and bool(subgroups)
    covered = {
        "5": ("partly", "card: data.source") if cohort is not None else ("no", "no cohort given"),
        "6": ("partly", "card: data (counts, prevalence, age, sex, trauma)")
        if cohort is not None else ("no", "no cohort given"),
        "7": ("yes", "card: model.preprocess (window, reorientation, skull stripping, size)"),
        "8": ("yes", "card: model.tasks (poor prognosis label of the clinical table)"),
        "9": ("yes", "card: model.tasks and model.input (the head CT; GCS and age as "
                     "auxiliary targets, not inputs)"),
        "10": ("partly", "card: data.n_patients; no sample size calculation"),
        "11": ("partly", "the loader refuses missing targets and scans, naming the patient"),
        "12": ("yes", "card: model.training, metrics.evaluation; docs: Calibration"),
        "13": ("yes", "card: model.training (oversampling, class balance)"),
        "14": ("partly", "card: subgroups (sex, age >= 80, traumatic)") if has_sub
        else ("no", "no subgroup results"),
        "15": ("yes", "probabilities per task with their spread across folds "
                      "(FoldEnsemble.predict)"),
        "16": ("yes", "card: metrics.evaluation (test folds never used for training, "
                      "calibration or thresholds)"),
        "18": ("partly", "code: ichprog (open source); data and protocol: the study report"),
        "20": ("partly", "card: data") if cohort is not None else ("no", "no cohort given"),
        "21": ("yes", "card: metrics.per_fold, data counts"),
        "22": ("yes", "weights (model.safetensors), fitted.json and ensemble.json: the full "
                      "model, usable by ichprog predict"),
        "23": ("yes", "card: metrics (intervals), calibration, thresholds, subgroups")
        if calibration is not None else ("partly", "card: metrics"),
        "24": ("yes", f"recalibration on validation parts ({cal_info.get('method')})")
        if ens.calibrated else ("no", "not recalibrated (no validation part)" if no_val
                                else "not recalibrated"),
        "26": ("partly", "card: limitations (the software's view)"),
        "27": ("partly", "card: intended_use and out_of_scope"),
    }
    return {
        **_header(),
        "model": {
            "name": ens.name,
            "kind": f"ensemble of {len(ens.folds)} cross-validation fold models (mean "
                    "probability, spread across folds)",
            "folds": [int(k) for k in ens.folds],
            **_model_fields(first, ens.preset),
            "training": {k: first.config.to_dict().get(k) for k in (
                "max_epochs", "batch_size", "accumulation_steps", "lr", "weight_decay",
                "schedule", "select", "patience", "class_balance", "precision")}
            | {"oversample": first.info.get("oversample"),
               "augment": first.info.get("augment"),
               "n_train": [len(m.info.get("train_ids", [])) for m in ens.models],
               "n_val": [len(m.info.get("val_ids", [])) for m in ens.models]},
        },
        "intended_use": INTENDED_USE,
        "out_of_scope": OUT_OF_SCOPE,
        "data": data,
        "metrics": perf,
        "calibration": {**cal_info,
                        "test_metrics": _records(calibration["metrics"])
                        if calibration is not None else []},
        "thresholds": {
            "paper": 0.5,
            "validation": {n: {"rule": e["rule"], "mean": e["value"],
                               "per_fold": {str(k): v for k, v in e["fold"].items()}}
                           for n, e in ens.thresholds.items()},
            "test_metrics": _records(calibration["threshold_metrics"])
            if calibration is not None else [],
        },
        "subgroups": subgroups,
        "limitations": _limitations(bool(data.get("phantom")), data.get("n_patients"), no_val),
        "tripod_ai": _checklist(covered),
    }


def fitted_model_card(fitted: Any) -> dict[str, Any]:
    """The model card of one :class:`~ichprog.experiment.FittedModel` (no held-out test set:
    its performance is the cross-validation's)."""
    info = fitted.info
    n_val = len(info.get("val_ids", []))
    covered = {
        "7": ("yes", "card: model.preprocess"),
        "8": ("yes", "card: model.tasks"),
        "9": ("yes", "card: model.tasks and model.input"),
        "10": ("partly", "card: data (patients trained on); no sample size calculation"),
        "12": ("partly", "card: model.training"),
        "13": ("yes", "card: model.training (oversampling, class balance)"),
        "15": ("yes", "probabilities per task (FittedModel.predict)"),
        "16": ("partly", "trained on all patients given; evaluate it with cross_validate"),
        "18": ("partly", "code: ichprog (open source)"),
        "22": ("yes", "model.safetensors and fitted.json: the full model"),
        "23": ("no", "a model trained on all patients has no held-out test set: its expected "
                     "performance is that of the cross-validation with the same settings"),
        "26": ("partly", "card: limitations"),
        "27": ("partly", "card: intended_use and out_of_scope"),
    }
    return {
        **_header(),
        "model": {
            "name": fitted.preset.label,
            "kind": "one model trained on all given patients",
            **_model_fields(fitted, fitted.preset),
            "training": {k: fitted.config.to_dict().get(k) for k in (
                "max_epochs", "batch_size", "lr", "schedule", "select", "patience",
                "class_balance")} | {"best_epoch": info.get("best_epoch"),
                                     "epochs_run": info.get("epochs_run")},
        },
        "intended_use": INTENDED_USE,
        "out_of_scope": OUT_OF_SCOPE,
        "data": {"n_train": len(info.get("train_ids", [])), "n_val": n_val},
        "metrics": {"note": "not evaluated: no held-out test set (see the cross-validation with "
                            "the same settings)"},
        "calibration": {"method": "none", "notes": ["not recalibrated"]},
        "thresholds": {"paper": 0.5, "validation": {}},
        "subgroups": "not computed: no held-out test set",
        "limitations": _limitations(False, len(info.get("train_ids", [])) or None,
                                    n_val == 0),
        "tripod_ai": _checklist(covered),
    }
