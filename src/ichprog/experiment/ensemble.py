"""The K fold models of a cross-validation as one predictor: :func:`load_ensemble` and
:class:`FoldEnsemble`.

The ensemble predicts the mean probability of every output over its fold models and the spread
across them (standard deviation and a 90 % range). :meth:`FoldEnsemble.calibrate` fits one
recalibration map per fold and output on **that fold's own validation part** (the patients its
model monitored training on; never its test patients) and chooses a decision threshold there;
:meth:`FoldEnsemble.save` writes ``ensemble.json``, ``model_card.json`` and the calibration
tables next to the fold models.

Files written by :meth:`FoldEnsemble.save` (in the cross-validation folder)::

    ensemble.json                    fold model folders, calibrators, thresholds (no pickle)
    model_card.json                  the model card (see ichprog.experiment.modelcard)
    calibration/val_predictions.csv  fold, PatientID, <task>_true, probabilities: validation parts
    calibration/test_predictions.csv fold, PatientID, output, y_true, prob, prob_calibrated
    calibration/metrics.csv          output, version, metric, estimate, low, high, n_valid
    calibration/thresholds.csv       fold, output, threshold, rule, n_val
    calibration/threshold_metrics.csv output, threshold rule, binary metrics on the test folds
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ichprog._util import package_versions, write_csv, write_json
from ichprog.constants import ID_COLUMN
from ichprog.experiment._common import _prediction_frame, _read_ids_csv, prediction_columns
from ichprog.experiment.fitted import FittedModel
from ichprog.tasks import Preset, Task

ENSEMBLE_FORMAT = "ichprog-ensemble/1"

#: Coverage of the range across folds reported by :meth:`FoldEnsemble.predict`.
RANGE_COVERAGE = 0.90

__all__ = ["ENSEMBLE_FORMAT", "FoldEnsemble", "binary_outputs", "load_ensemble",
           "resolve_cv_dir"]


def binary_outputs(preset: Preset) -> list[tuple[str, Task, int, str]]:
    """The binary probability outputs of a preset: ``(output name, task, j, column)``.

    A binary task has one (``prognosis``, column ``prognosis_prob``); an ordinal task one per
    cumulative output ``P(y > j)`` (``gcs>0``, column ``gcs_prob_gt0``; its outcome is
    ``y > j``). Continuous tasks have none.
    """
    out = []
    for t in preset:
        if t.kind == "binary":
            out.append((t.name, t, 0, prediction_columns(t)[0]))
        elif t.kind == "ordinal":
            out += [(f"{t.name}>{j}", t, j, c) for j, c in enumerate(prediction_columns(t))]
    return out


def _output_truth(task: Task, j: int, y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=int)
    return (y > j).astype(int) if task.kind == "ordinal" else y


@dataclass
class FoldEnsemble:
    """The fold models of a cross-validation, predicting as one model.

    Attributes
    ----------
    models
        One :class:`FittedModel` per fold.
    folds
        Their fold indices.
    preset
        The tasks (and trunk) they share.
    name
        The model's name (the cross-validation's).
    calibrators
        ``{fold: {column: Calibrator}}`` fitted on each fold's validation part (empty: none).
    thresholds
        ``{output name: {"fold": {fold: threshold}, "rule": ..., "value": mean over folds}}``
        chosen on the validation parts (empty: none; the paper's 0.5 is used).
    info
        What the calibration did (method, notes), where the ensemble was loaded from.
    source
        The cross-validation folder.
    """

    models: list[FittedModel]
    folds: list[int]
    preset: Preset
    name: str
    calibrators: dict[int, dict[str, Any]] = field(default_factory=dict)
    thresholds: dict[str, dict[str, Any]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    val_predictions: pd.DataFrame | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("an ensemble needs at least one fold model")
        if len(self.models) != len(self.folds):
            raise ValueError(f"{len(self.models)} models but {len(self.folds)} fold indices")
        first = self.models[0].preprocess.to_dict()
        for k, m in zip(self.folds, self.models):
            if m.preprocess.to_dict() != first:
                raise ValueError(f"fold {k}'s model was trained on other pre-processing "
                                 f"({m.preprocess.to_dict()}) than fold {self.folds[0]}'s "
                                 f"({first}); the folds cannot form one ensemble")
            if m.preset.task_names != self.preset.task_names:
                raise ValueError(f"fold {k}'s model predicts {m.preset.task_names}, not "
                                 f"{self.preset.task_names}")

    def __repr__(self) -> str:
        cal = self.info.get("calibration", {}).get("method", "none")
        return (f"FoldEnsemble(name={self.name!r}, folds={self.folds}, "
                f"tasks={self.preset.task_names}, calibration={cal!r})")

    @property
    def preprocess(self) -> Any:
        """The pre-processing every fold model shares."""
        return self.models[0].preprocess

    @property
    def tasks(self) -> tuple[Task, ...]:
        return tuple(self.preset.tasks)

    # -- prediction -------------------------------------------------------------------------
    def predict_folds(self, inputs: Any, calibrated: bool = True, cache_dir: Any = False,
                      **kwargs: Any) -> tuple[list[str], dict[int, dict[str, np.ndarray]]]:
        """Every fold model's probabilities for the same inputs.

        Parameters
        ----------
        inputs
            Paths, pre-processed arrays or a Cohort (see :class:`FittedModel`).
        calibrated
            Apply each fold's calibrators (where fitted).
        cache_dir
            Volume cache for a Cohort's scans.
        **kwargs
            ``batch_size``, ``device``, ``precision``, ``progress`` of
            :meth:`FittedModel.predict_proba`.

        Returns
        -------
        tuple
            The input identifiers and ``{fold: {task: (n, n_outputs) probabilities}}``.
        """
        ds = self.models[0]._dataset(inputs, cache_dir)
        per_fold: dict[int, dict[str, np.ndarray]] = {}
        for k, m in zip(self.folds, self.models):
            probs = m._predict_ds(ds, **kwargs)
            per_fold[k] = self._calibrate_probs(k, probs) if calibrated else probs
        return list(ds.ids), per_fold

    def _calibrate_probs(self, fold: int, probs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        cals = self.calibrators.get(fold, {})
        out = {}
        for t in self.preset:
            p = np.asarray(probs[t.name], dtype=float).copy()
            if t.kind != "continuous":
                for j, col in enumerate(prediction_columns(t)):
                    if col in cals:
                        p[:, j] = cals[col].transform(p[:, j])
            out[t.name] = p
        return out

    def predict(self, inputs: Any, calibrated: bool = True,
                threshold: float | str = 0.5, cache_dir: Any = False,
                **kwargs: Any) -> pd.DataFrame:
        """Mean probability of every output over the fold models, and its spread.

        Parameters
        ----------
        inputs
            Paths, pre-processed arrays or a Cohort (see :class:`FittedModel`).
        calibrated
            Average the calibrated probabilities of each fold (where calibrators were fitted;
            see :meth:`calibrate`).
        threshold
            Threshold of the decoded classes: a number (the paper's 0.5), or ``"validation"``
            for the thresholds chosen on the validation parts (the mean over folds; 0.5 for
            outputs without one).
        cache_dir
            Volume cache for a Cohort's scans.
        **kwargs
            Passed to :meth:`predict_folds`.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``PatientID`` (a Cohort) or ``input`` (the path or the array's position).
            For every probability column ``c`` of :func:`prediction_columns` (``prognosis_prob``,
            ``gcs_prob_gt0``, ...): ``c`` (mean over folds), ``c_sd`` (standard deviation across
            folds, ``ddof=1``; NaN for one fold), ``c_q05`` and ``c_q95`` (the 90 % range across
            folds, linear interpolation), then ``<task>_pred`` (the class decoded from the mean)
            and ``n_models``. ``attrs`` records the folds, calibration and thresholds.
        """
        from ichprog.data import Cohort

        ids, per_fold = self.predict_folds(inputs, calibrated=calibrated, cache_dir=cache_dir,
                                           **kwargs)
        lo_q, hi_q = (1 - RANGE_COVERAGE) / 2, (1 + RANGE_COVERAGE) / 2
        data: dict[str, Any] = {}
        used_thresholds: dict[str, float] = {}
        for t in self.preset:
            stack = np.stack([per_fold[k][t.name] for k in self.folds])  # (K, n, n_outputs)
            mean = stack.mean(axis=0)
            sd = stack.std(axis=0, ddof=1) if len(self.folds) > 1 else np.full_like(mean, np.nan)
            q_lo = np.quantile(stack, lo_q, axis=0)
            q_hi = np.quantile(stack, hi_q, axis=0)
            for j, col in enumerate(prediction_columns(t)):
                data[col] = mean[:, j]
                data[f"{col}_sd"] = sd[:, j]
                data[f"{col}_q05"] = q_lo[:, j]
                data[f"{col}_q95"] = q_hi[:, j]
            if t.kind == "continuous":
                data[f"{t.name}_pred"] = mean[:, 0]
                continue
            thr = self._threshold_for(t, threshold)
            used_thresholds[t.name] = thr
            data[f"{t.name}_pred"] = t.decode(mean, threshold=thr)
        data["n_models"] = len(self.folds)
        frame = pd.DataFrame(data, index=pd.Index(ids, name=ID_COLUMN if isinstance(
            inputs, Cohort) else "input"))
        frame.attrs.update({"folds": list(self.folds), "calibrated": bool(calibrated),
                            "calibration": self.info.get("calibration", {}).get("method", "none"),
                            "thresholds": used_thresholds, "range": RANGE_COVERAGE})
        return frame

    def _threshold_for(self, task: Task, threshold: float | str) -> float:
        if isinstance(threshold, str):
            if threshold != "validation":
                raise ValueError(f"threshold must be a number or 'validation', got {threshold!r}")
            if task.kind == "binary" and task.name in self.thresholds:
                return float(self.thresholds[task.name]["value"])
            return 0.5
        thr = float(threshold)
        if not 0.0 < thr < 1.0:
            raise ValueError(f"threshold must lie strictly between 0 and 1, got {thr!r}")
        return thr

    # -- calibration ------------------------------------------------------------------------
    def validation_predictions(self, cohort: Any, cache_dir: Any = None,
                               progress: bool = False) -> pd.DataFrame:
        """Each fold model's (uncalibrated) predictions of its own validation part.

        Returns
        -------
        pandas.DataFrame
            ``fold``, ``PatientID``, ``<task>_true`` and the probability columns; empty when no
            fold had a validation part.
        """
        from ichprog.data import CTDataset

        frames = []
        for k, m in zip(self.folds, self.models):
            val = [str(i) for i in m.info.get("val_ids", [])]
            if not val:
                continue
            missing = [i for i in val if i not in set(cohort.ids)]
            if missing:
                raise KeyError(f"fold {k}: validation patient(s) {missing[:5]} are not in the "
                               "cohort; pass the cohort the cross-validation was run on")
            ds = CTDataset(cohort, val, m.preprocess, cache_dir=cache_dir)
            probs = m._predict_ds(ds, progress=progress)
            p = _prediction_frame(val, probs, self.tasks, truth=cohort.targets(self.preset,
                                                                               ids=val))
            p.insert(0, "fold", k)
            frames.append(p)
        if not frames:
            return pd.DataFrame(columns=["fold", ID_COLUMN])
        return pd.concat(frames, ignore_index=True)

    def calibrate(self, cohort: Any = None, method: str = "platt", threshold: str = "youden",
                  target: float = 0.9, cache_dir: Any = None,
                  val_predictions: pd.DataFrame | None = None,
                  progress: bool = False) -> FoldEnsemble:
        """Fit each fold's calibrators and thresholds on that fold's validation part.

        Parameters
        ----------
        cohort
            The cohort of the cross-validation (its validation patients' scans are predicted).
            Not needed when ``val_predictions`` is given.
        method
            ``"platt"``, ``"temperature"``, ``"isotonic"`` or ``"none"``
            (:func:`ichprog.metrics.fit_calibrator`).
        threshold
            ``"youden"`` or ``"sensitivity"`` (:func:`ichprog.metrics.choose_threshold`), chosen
            on the calibrated validation probabilities of every binary task.
        target
            Sensitivity to reach with ``threshold="sensitivity"``.
        cache_dir
            Volume cache of the cohort's scans.
        val_predictions
            Validation predictions from :meth:`validation_predictions` (skips the inference).
        progress
            Progress bars.

        Returns
        -------
        FoldEnsemble
            ``self``, calibrated. A fold without a validation part (e.g. the ``"cpu"`` recipe's
            ``val_fraction=0``) keeps the identity and the 0.5 threshold, with a warning; the
            test folds are never used.
        """
        from ichprog.metrics import Calibrator, choose_threshold, fit_calibrator

        if val_predictions is None:
            if cohort is None:
                raise ValueError("calibrate needs the cohort (to predict the validation parts) "
                                 "or val_predictions")
            val_predictions = self.validation_predictions(cohort, cache_dir, progress)
        self.val_predictions = val_predictions
        notes: list[str] = []
        calibrators: dict[int, dict[str, Any]] = {}
        thresholds: dict[str, dict[str, Any]] = {}
        empty = []
        for k in self.folds:
            part = val_predictions[val_predictions["fold"] == k] if len(val_predictions) \
                else val_predictions
            calibrators[k] = {}
            if part.empty:
                empty.append(k)
            for name, task, j, col in binary_outputs(self.preset):
                if part.empty:
                    calibrators[k][col] = Calibrator(
                        "none", note="no validation part: the probabilities are left as they are")
                    continue
                y = _output_truth(task, j, part[f"{task.name}_true"].to_numpy())
                p = part[col].to_numpy(float)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    cal = fit_calibrator(y, p, method)
                notes += [f"fold {k}, {name}: {w.message}" for w in caught]
                calibrators[k][col] = cal
                if task.kind == "binary":
                    entry = thresholds.setdefault(name, {"fold": {}, "rule": threshold,
                                                         "target": target, "n_val": {}})
                    try:
                        entry["fold"][k] = choose_threshold(y, cal.transform(p), threshold,
                                                            target)
                        entry["n_val"][k] = len(y)
                    except ValueError as exc:
                        notes.append(f"fold {k}, {name}: no threshold chosen ({exc}); 0.5 used")
        if empty:
            msg = (f"fold(s) {empty} have no validation part (val_fraction 0, as in the 'cpu' "
                   "recipe): they are not recalibrated and keep the 0.5 threshold; the test "
                   "folds are never used for calibration")
            warnings.warn(msg, UserWarning, stacklevel=2)
            notes.insert(0, msg)
        for entry in thresholds.values():
            vals = list(entry["fold"].values())
            entry["value"] = float(np.mean(vals)) if vals else 0.5
        self.calibrators = calibrators
        self.thresholds = {k: v for k, v in thresholds.items() if v["fold"]}
        self.info["calibration"] = {
            "method": method, "threshold_rule": threshold, "target": target,
            "fitted_on": "each fold's own validation part",
            "folds_without_validation": empty, "notes": notes,
            "n_val": {int(k): int((val_predictions["fold"] == k).sum()) if len(val_predictions)
                      else 0 for k in self.folds},
        }
        return self

    @property
    def calibrated(self) -> bool:
        """Whether any fold has a fitted (non-identity) calibrator."""
        return any(c.method != "none" for d in self.calibrators.values() for c in d.values())

    def test_predictions(self) -> pd.DataFrame:
        """The cross-validation's test predictions, one row per fold, patient and binary output,
        with the probability before and after that fold's calibration.

        Returns
        -------
        pandas.DataFrame
            ``fold``, ``PatientID``, ``output``, ``y_true``, ``prob``, ``prob_calibrated``.
        """
        if self.source is None or not (self.source / "predictions.csv").is_file():
            raise FileNotFoundError("the ensemble has no cross-validation predictions.csv "
                                    f"(source: {self.source})")
        preds = _read_ids_csv(self.source / "predictions.csv")
        rows = []
        for name, task, j, col in binary_outputs(self.preset):
            for k in self.folds:
                part = preds[preds["fold"] == k]
                if part.empty:
                    continue
                p = part[col].to_numpy(float)
                cal = self.calibrators.get(k, {}).get(col)
                rows.append(pd.DataFrame({
                    "fold": k, ID_COLUMN: part[ID_COLUMN].astype(str).to_numpy(),
                    "output": name,
                    "y_true": _output_truth(task, j, part[f"{task.name}_true"].to_numpy()),
                    "prob": p, "prob_calibrated": cal.transform(p) if cal is not None else p,
                }))
        return pd.concat(rows, ignore_index=True)

    def calibration_report(self, n_resamples: int = 1000, seed: int = 0,
                           n_bins: int = 10) -> dict[str, pd.DataFrame]:
        """Calibration and thresholds on the pooled test folds.

        Returns
        -------
        dict
            ``"metrics"`` (output, version ``raw`` / ``calibrated``, metric, estimate, low,
            high, n_valid: :func:`ichprog.metrics.calibration_summary`), ``"thresholds"``
            (fold, output, threshold, rule, n_val) and ``"threshold_metrics"`` (output,
            rule, threshold, binary metrics of the calibrated test probabilities at the paper's
            0.5 and at each fold's validation threshold).
        """
        from ichprog.metrics import binary_metrics, calibration_summary

        test = self.test_predictions()
        frames = []
        for name, part in test.groupby("output", sort=False):
            y = part["y_true"].to_numpy()
            versions = [("raw", "prob")] + ([("calibrated", "prob_calibrated")]
                                            if self.calibrated else [])
            for version, col in versions:
                t = calibration_summary(y, part[col].to_numpy(), n_resamples=n_resamples,
                                        seed=seed, n_bins=n_bins)
                t.insert(0, "version", version)
                t.insert(0, "output", name)
                frames.append(t)
        metrics = pd.concat(frames, ignore_index=True)
        thr_rows = [{"fold": int(k), "output": name, "threshold": float(v), "rule": e["rule"],
                     "n_val": e["n_val"].get(k)}
                    for name, e in self.thresholds.items() for k, v in e["fold"].items()]
        thresholds = pd.DataFrame(thr_rows, columns=["fold", "output", "threshold", "rule",
                                                     "n_val"])
        tm = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for output, part in test.groupby("output", sort=False):
                name = str(output)
                if name not in self.preset.task_names:  # ordinal cumulative outputs
                    continue
                y = part["y_true"].to_numpy()
                p = part["prob_calibrated"].to_numpy()
                tm.append({"output": name, "rule": "0.5 (paper)", "threshold": 0.5,
                           **binary_metrics(y, p, threshold=0.5)})
                if name in self.thresholds:
                    fold_thr = self.thresholds[name]["fold"]
                    thr = part["fold"].map(lambda k, d=fold_thr: d.get(k, 0.5)).to_numpy(float)
                    pred = (p >= thr).astype(float)
                    m = binary_metrics(y, pred, threshold=0.5)
                    m["auc"] = binary_metrics(y, p)["auc"]  # the ranking is unchanged
                    tm.append({"output": name, "rule": f"{self.thresholds[name]['rule']} "
                               "(validation)", "threshold": float(np.mean(list(fold_thr.values()))),
                               **m})
        return {"metrics": metrics, "thresholds": thresholds,
                "threshold_metrics": pd.DataFrame(tm)}

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: str | Path | None = None, cohort: Any = None,
             n_resamples: int = 1000, seed: int = 0) -> Path:
        """Write ``ensemble.json``, ``model_card.json`` and the calibration tables.

        Parameters
        ----------
        directory
            Default: the cross-validation folder the ensemble was loaded from. Another folder
            gets a copy of the fold models (``fold_XX/model``) and of the cross-validation's
            ``predictions.csv`` and ``config.json``, so that :func:`load_ensemble` reads it.
        cohort
            The cohort of the cross-validation: its clinical table gives the model card's
            subgroup results (sex, age >= 80, traumatic or not).
        n_resamples, seed
            Bootstrap of the calibration metrics and of the model card's intervals.

        Returns
        -------
        pathlib.Path
            The folder.
        """
        from ichprog.experiment.modelcard import ensemble_model_card

        out = Path(directory) if directory is not None else self.source
        if out is None:
            raise ValueError("pass a directory: the ensemble was not loaded from a folder")
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for k, m in zip(self.folds, self.models):
            rel = f"fold_{k:02d}/model"
            src = self.info.get("model_dirs", {}).get(str(k))
            if src is None or Path(src).resolve() != (out / rel).resolve():
                m.save(out / rel)
            paths[str(k)] = rel
        if self.source is not None and out.resolve() != self.source.resolve():
            for fname in ("predictions.csv", "config.json", "splits.json", "metrics.csv"):
                if (self.source / fname).is_file():
                    shutil.copy2(self.source / fname, out / fname)
        write_json({
            "format": ENSEMBLE_FORMAT, "name": self.name, "preset": self.preset.to_dict(),
            "folds": [{"fold": int(k), "model": paths[str(k)]} for k in self.folds],
            "calibrators": {str(k): {c: cal.to_dict() for c, cal in d.items()}
                            for k, d in self.calibrators.items()},
            "thresholds": {n: {**e, "fold": {str(k): v for k, v in e["fold"].items()},
                               "n_val": {str(k): v for k, v in e["n_val"].items()}}
                           for n, e in self.thresholds.items()},
            "info": {k: v for k, v in self.info.items() if k != "model_dirs"},
            "versions": package_versions(),
        }, out / "ensemble.json")
        cal_dir = out / "calibration"
        cal_dir.mkdir(exist_ok=True)
        val = self.val_predictions
        if val is not None:
            write_csv(val, cal_dir / "val_predictions.csv")
        report = None
        source_before, self.source = self.source, out
        try:
            if (out / "predictions.csv").is_file():
                write_csv(self.test_predictions(), cal_dir / "test_predictions.csv")
                report = self.calibration_report(n_resamples=n_resamples, seed=seed)
                for key, table in report.items():
                    write_csv(table, cal_dir / f"{key}.csv")
            card = ensemble_model_card(self, cohort=cohort, calibration=report,
                                       n_resamples=n_resamples, seed=seed)
        finally:
            self.source = source_before if directory is not None else out
        write_json(card, out / "model_card.json")
        return out


# -- loading -----------------------------------------------------------------------------------
def _cv_folders(path: Path) -> list[Path]:
    """Cross-validation folders inside a run folder's ``cv/`` (or ``ablation/``)."""
    found = []
    for sub in ("cv", "ablation"):
        d = path / sub
        if d.is_dir():
            found += sorted(p for p in d.iterdir()
                            if (p / "config.json").is_file() or (p / "ensemble.json").is_file())
    return found


def resolve_cv_dir(path: str | Path, model: str | None = None) -> Path:
    """The cross-validation folder of ``path``: the folder itself (``cross_validate``'s
    ``out_dir``), or ``path/cv/<model>`` of a run folder of the command line.

    Raises ``FileNotFoundError`` / ``ValueError`` naming the folder and the models it holds.
    """
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"no folder {p}")
    if (p / "ensemble.json").is_file() or (p / "config.json").is_file() and \
            any(p.glob("fold_*/model/fitted.json")):
        return p
    found = _cv_folders(p)
    if model is not None:
        for f in found:
            if f.name == model:
                return f
        raise ValueError(f"{p}: no cross-validated model {model!r}; models: "
                         f"{[f.name for f in found] or 'none'}")
    in_cv = [f for f in found if f.parent.name == "cv"]
    if len(in_cv) == 1:
        return in_cv[0]
    if len(in_cv) > 1:
        raise ValueError(f"{p} holds several cross-validated models "
                         f"({', '.join(f.name for f in in_cv)}); choose one (model=NAME, or "
                         "--preset NAME on the command line)")
    raise FileNotFoundError(f"{p} is neither a cross-validation folder (config.json and "
                            "fold_XX/model/) nor a run folder with cv/<model>/ inside")


def load_ensemble(cv_run_dir: str | Path, model: str | None = None,
                  device: str = "cpu") -> FoldEnsemble:
    """The fold models of a cross-validation as one :class:`FoldEnsemble`.

    Parameters
    ----------
    cv_run_dir
        The ``out_dir`` of :func:`cross_validate` (``config.json``, ``fold_XX/model/``), a
        folder written by :meth:`FoldEnsemble.save`, or a run folder of the command line
        (``ichprog cv`` / ``ichprog demo``; its models are under ``cv/<preset>/``).
    model
        The preset's name, when a run folder holds several cross-validated models.
    device
        Where to load the weights.

    Returns
    -------
    FoldEnsemble
        With the calibrators and thresholds saved by :meth:`FoldEnsemble.save`, if any.

    Raises
    ------
    FileNotFoundError
        The folder holds no finished fold model.
    ValueError
        The run folder holds several models and ``model`` is not given, or the folds do not
        share their pre-processing and tasks.
    """
    from ichprog.metrics import Calibrator

    d = resolve_cv_dir(cv_run_dir, model)
    meta: dict[str, Any] = {}
    if (d / "ensemble.json").is_file():
        meta = json.loads((d / "ensemble.json").read_text(encoding="utf-8"))
        if meta.get("format") != ENSEMBLE_FORMAT:
            raise ValueError(f"{d / 'ensemble.json'}: format {meta.get('format')!r}, expected "
                             f"{ENSEMBLE_FORMAT!r}")
        entries = [(int(e["fold"]), d / e["model"]) for e in meta["folds"]]
    else:
        entries = []
        for fdir in sorted(d.glob("fold_*")):
            fjson = fdir / "fold.json"
            if not (fdir / "model" / "fitted.json").is_file():
                continue
            status = json.loads(fjson.read_text(encoding="utf-8")).get("status") \
                if fjson.is_file() else "done"
            if status != "done":
                warnings.warn(f"{fdir}: fold not finished ({status}); left out of the ensemble",
                              UserWarning, stacklevel=2)
                continue
            entries.append((int(fdir.name.split("_")[-1]), fdir / "model"))
    if not entries:
        raise FileNotFoundError(f"{d}: no finished fold model (fold_XX/model/fitted.json)")
    models = [FittedModel.load(path, device=device) for _, path in entries]
    folds = [k for k, _ in entries]
    cfg: dict[str, Any] = {}
    if (d / "config.json").is_file():
        cfg = json.loads((d / "config.json").read_text(encoding="utf-8"))
    name = meta.get("name") or cfg.get("name") or models[0].preset.label
    preset = Preset.from_dict(meta["preset"]) if "preset" in meta else models[0].preset
    ens = FoldEnsemble(models, folds, preset, name, source=d,
                       info={**meta.get("info", {}),
                             "model_dirs": {str(k): str(p) for k, p in entries}})
    ens.calibrators = {int(k): {c: Calibrator.from_dict(v) for c, v in cals.items()}
                       for k, cals in meta.get("calibrators", {}).items()}
    ens.thresholds = {n: {**e, "fold": {int(k): float(v) for k, v in e["fold"].items()},
                          "n_val": {int(k): v for k, v in e.get("n_val", {}).items()}}
                      for n, e in meta.get("thresholds", {}).items()}
    if (d / "calibration" / "val_predictions.csv").is_file():
        val = _read_ids_csv(d / "calibration" / "val_predictions.csv")
        if len(val):
            ens.val_predictions = val
    return ens

