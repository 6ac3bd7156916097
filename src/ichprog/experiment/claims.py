"""The paper's claims, tested on shared splits with paired statistics.

Cobo et al. (2024) claim that

* **C1** GCS and age are the two most important clinical variables (SHAP);
* **C2** a logistic regression on GCS and age does as well as the dense network of Perez et al.
  on all clinical variables;
* **C3** the multi-task model (ordinal GCS, binary age) predicts prognosis better than the
  single-task DenseNet baseline, in AUC and in balanced accuracy;
* **C4** the multi-task model varies less from fold to fold;
* **C5** the multi-task model's saliency lies more on the hematoma than the baseline's;

and argue that auxiliary tasks help most when data are scarce (**C6**: the gain in AUC is
largest at the smallest cohort). :func:`check_claims` trains both image models on the same
folds (optionally repeated with other fold seeds and at several cohort sizes) and gives each
claim an effect, a 95 % interval and a verdict:

* ``holds``: the interval lies on the claimed side of zero;
* ``contradicted``: it lies on the other side;
* ``not shown``: it contains zero.

C2 is a claim of equivalence, so it ``holds`` unless the regression is worse (interval below
zero). C6 compares the gain at the smallest and the largest cohort size.

Intervals come from a paired bootstrap over patients: each resample draws patients with
replacement once and every model, fold and repeat is scored on the same draw, so the
correlation between the models (same patients, same folds) is kept. Per-fold metrics are
averaged over the folds and repeats of a resample.

Every effect is "multi-task minus baseline" (C3-C6), "regression minus dense network" (C2) or
"least important of GCS and age minus the most important other variable" (C1).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ichprog._extras import require_extra
from ichprog._util import (
    derive_seed,
    read_csv_verified,
    read_text_verified,
    save_figure,
    write_csv,
    write_json,
)
from ichprog.constants import AGE_COLUMN, GCS_COLUMN, ID_COLUMN, PREDICTION_COLUMNS

__all__ = ["CLAIMS", "CLAIM_COLUMNS", "ClaimsResult", "check_claims", "paired_bootstrap",
           "verdict", "claims_from_results", "reference_predictions", "IMAGE_FACTORS"]

#: The claims and how each is stated in the report.
CLAIMS: dict[str, str] = {
    "C1": "GCS and age are the two most important clinical variables (SHAP, random forest)",
    "C2": "LR on GCS and age does as well as the dense network on all variables (AUC)",
    "C3 AUC": "MT (ord GCS, bin age) beats the single-task baseline on prognosis AUC",
    "C3 balanced accuracy": "MT (ord GCS, bin age) beats the single-task baseline on prognosis "
                            "balanced accuracy",
    "C4": "MT varies less from fold to fold (SD of the per-fold AUC)",
    "C5": "MT saliency lies more on the hematoma than the baseline's (guided-backprop "
          "enrichment)",
    "C6": "the gain of MT in AUC is largest at the smallest cohort",
}

#: Columns of :meth:`ClaimsResult.summary`.
CLAIM_COLUMNS = ["claim", "verdict", "effect", "ci_low", "ci_high"]

#: The phantom's true image factors used by the image oracle (``phantom_truth.csv``).
IMAGE_FACTORS = ("log_volume_ml", "ivh", "infratentorial", "atrophy", "midline_shift_mm")

_PRED_COLUMNS = ["model", "repeat", "fold", ID_COLUMN, "task", "y_true", "score", "pred"]


# ---------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------
_METRIC_NAMES = ("auc", "balanced_accuracy")


def verdict(low: float, high: float, equivalence: bool = False) -> str:
    """``holds`` / ``contradicted`` / ``not shown`` from a 95 % interval of an effect whose
    claimed sign is positive (``equivalence``: the claim holds unless the interval is below 0)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "not shown"
    if high < 0:
        return "contradicted"
    if equivalence or low > 0:
        return "holds"
    return "not shown"


def _units(pred: pd.DataFrame, patients: Mapping[str, int]) -> list[tuple[np.ndarray, ...]]:
    """(patient index, y, probability) per (repeat, fold) of one model and task."""
    out: list[tuple[np.ndarray, ...]] = []
    for _, g in pred.sort_values(["repeat", "fold"]).groupby(["repeat", "fold"], sort=True):
        idx = np.array([patients[str(i)] for i in g[ID_COLUMN]], dtype=np.int64)
        out.append((idx, g["y_true"].to_numpy(int), g["score"].to_numpy(float)))
    return out


def _unit_metrics(units: Sequence[tuple[np.ndarray, ...]], metric: str,
                  counts: np.ndarray) -> np.ndarray:
    """``(n_resamples, n_units)`` metric of every (repeat, fold) under every row of patient
    ``counts`` (:func:`ichprog.metrics.binary_metrics_batch`: one sort per unit)."""
    from ichprog.metrics import binary_metrics_batch

    out = np.empty((counts.shape[0], len(units)))
    for k, (idx, y, prob) in enumerate(units):
        with warnings.catch_warnings():  # a resample without one class: NaN, dropped below
            warnings.simplefilter("ignore")
            out[:, k] = binary_metrics_batch(y, prob, counts[:, idx])[metric]
    return out


def _with_repeat(pred: pd.DataFrame) -> pd.DataFrame:
    """Predictions of one run of the folds may omit ``repeat`` (it is then 0)."""
    return pred if "repeat" in pred else pred.assign(repeat=0)


def _ids(frames: Mapping[str, pd.DataFrame]) -> dict[str, int]:
    ids = sorted(set().union(*(set(d[ID_COLUMN].astype(str)) for d in frames.values())))
    return {p: i for i, p in enumerate(ids)}


def _interval(point: float, draws: np.ndarray, ci: float) -> tuple[float, float, float]:
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return point, float("nan"), float("nan")
    alpha = (1.0 - ci) / 2.0
    return point, float(np.quantile(draws, alpha)), float(np.quantile(draws, 1.0 - alpha))


def _bootstrap(frames: Mapping[str, pd.DataFrame], metric: str,
               combine: Callable[[Mapping[str, np.ndarray]], np.ndarray], n_resamples: int,
               seed: int, ci: float = 0.95) -> tuple[float, float, float]:
    """``combine`` of per-(repeat, fold) metrics of several prediction frames, and its
    percentile interval over resampled patients (one draw per resample, shared by all)."""
    from ichprog.metrics import resample_counts

    if metric not in _METRIC_NAMES:
        raise ValueError(f"metric must be one of {_METRIC_NAMES}, got {metric!r}")
    frames = {k: _with_repeat(d) for k, d in frames.items()}
    patients = _ids(frames)
    units = {k: _units(d, patients) for k, d in frames.items()}
    n = len(patients)

    def stat(counts: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
            return combine({k: _unit_metrics(u, metric, counts) for k, u in units.items()})

    point = float(stat(np.ones((1, n)))[0])
    return _interval(point, stat(resample_counts(n, n_resamples, seed)), ci)


def _mean_diff(v: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.nanmean(v["a"] - v["b"], axis=1)


def _sd_diff(v: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.nanstd(v["a"], axis=1, ddof=1) - np.nanstd(v["b"], axis=1, ddof=1)


def paired_bootstrap(a: pd.DataFrame, b: pd.DataFrame, metric: str = "auc",
                     statistic: str = "mean", n_resamples: int = 1000, seed: int = 0,
                     ci: float = 0.95) -> tuple[float, float, float]:
    """Effect of model ``a`` over model ``b`` and its paired bootstrap interval.

    Parameters
    ----------
    a, b
        Long predictions of one binary task (columns ``repeat, fold, PatientID, y_true,
        score``; ``score`` the probability of class 1) on the same folds. ``repeat`` may be
        absent (one repeat).
    metric
        ``"auc"`` or ``"balanced_accuracy"`` (at 0.5), computed per (repeat, fold).
    statistic
        ``"mean"``: mean over folds of ``a - b``; ``"sd"``: SD over folds of ``a`` minus that of
        ``b``.
    n_resamples, seed, ci
        Patients are drawn with replacement (one draw per resample, shared by both models and
        every fold; :func:`ichprog.metrics.resample_counts`); percentile interval.

    Returns
    -------
    (effect, low, high)

    Examples
    --------
    >>> import pandas as pd
    >>> a = pd.DataFrame({"fold": 0, "PatientID": list("abcd"), "y_true": [0, 0, 1, 1],
    ...                   "score": [0.1, 0.2, 0.8, 0.9]})
    >>> b = a.assign(score=[0.1, 0.8, 0.2, 0.9])
    >>> effect, low, high = paired_bootstrap(a, b, n_resamples=200)
    >>> effect
    0.5
    """
    if statistic not in ("mean", "sd"):
        raise ValueError(f"statistic must be 'mean' or 'sd', got {statistic!r}")
    keys = [set(map(tuple, _with_repeat(d)[["repeat", "fold", ID_COLUMN]].astype(str)
                    .to_numpy())) for d in (a, b)]
    if keys[0] != keys[1]:
        raise ValueError("paired_bootstrap: the two models were not evaluated on the same "
                         f"(repeat, fold, patient) rows ({len(keys[0] ^ keys[1])} differ)")
    return _bootstrap({"a": a, "b": b}, metric, _mean_diff if statistic == "mean" else _sd_diff,
                      n_resamples, seed, ci)


def _patient_bootstrap(values: np.ndarray, n_resamples: int, seed: int,
                       stat: Callable[[np.ndarray], np.ndarray],
                       ci: float = 0.95) -> tuple[float, float, float]:
    """``stat(weighted mean of per-patient rows)`` and its interval over resampled patients;
    ``stat`` maps ``(n_resamples, ...)`` weighted means to ``(n_resamples,)``."""
    from ichprog.metrics import resample_counts

    n = len(values)
    flat = values.reshape(n, -1)
    point = float(stat(flat.mean(0, keepdims=True))[0])
    counts = resample_counts(n, n_resamples, seed)
    return _interval(point, stat(counts @ flat / n), ci)


# ---------------------------------------------------------------------------------------------
# reference models on the same folds: the image oracle and LR on GCS and age
# ---------------------------------------------------------------------------------------------
def _phantom_truth(cohort: Any) -> pd.DataFrame | None:
    root = getattr(cohort, "root", None)
    path = Path(root) / "phantom_truth.csv" if root is not None else None
    if path is None or not path.is_file():
        return None
    truth = pd.read_csv(path)
    truth[ID_COLUMN] = truth[ID_COLUMN].astype(int).astype(str)
    truth["log_volume_ml"] = np.log(truth["volume_ml"])
    return truth.set_index(ID_COLUMN)


def reference_predictions(cohort: Any, splits: Any, tasks: Sequence[Any], repeat: int = 0,
                          threshold: float = 0.5) -> pd.DataFrame:
    """Out-of-fold predictions of two reference models on the folds of the image models.

    * ``"Image oracle"`` (phantom cohorts only): a logistic regression of each task on the
      phantom's true image factors (:data:`IMAGE_FACTORS`: log hematoma volume, IVH,
      infratentorial site, atrophy, midline shift), i.e. what an image model could learn at
      best from this many patients;
    * ``"LR (GCS, age)"``: the paper's logistic regression on GCS and age, for prognosis.

    Each is fitted on a fold's training and validation parts and predicts its test part.

    Returns
    -------
    pandas.DataFrame
        Long predictions (``model, repeat, fold, PatientID, task, y_true, score, pred``);
        ``score`` is P(class 1) for binary tasks and the expected class for ordinal ones.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    truth = _phantom_truth(cohort)
    table = cohort.table
    rows = []
    for fold in splits.folds:
        train = [str(i) for i in (*fold.train, *fold.val)]
        test = [str(i) for i in fold.test]
        for t in tasks:
            y_tr = np.asarray(cohort.targets([t], ids=train)[t.name])
            y_te = np.asarray(cohort.targets([t], ids=test)[t.name])
            inputs: list[tuple[str, np.ndarray, np.ndarray]] = []
            if truth is not None:
                f = truth.loc[:, list(IMAGE_FACTORS)]
                inputs.append(("Image oracle", f.loc[train].to_numpy(float),
                               f.loc[test].to_numpy(float)))
            if t.name == "prognosis":
                g = table.loc[:, [GCS_COLUMN, AGE_COLUMN]]
                inputs.append(("LR (GCS, age)", g.loc[train].to_numpy(float),
                               g.loc[test].to_numpy(float)))
            for name, x_tr, x_te in inputs:
                lr = make_pipeline(StandardScaler(),
                                   LogisticRegression(class_weight="balanced", max_iter=1000))
                lr.fit(x_tr, y_tr)
                proba = lr.predict_proba(x_te)
                classes = lr.classes_
                if t.kind == "binary":
                    score = proba[:, list(classes).index(1)] if 1 in classes else np.zeros(len(test))
                    pred = (score >= threshold).astype(int)
                else:
                    score = proba @ classes.astype(float)
                    pred = classes[proba.argmax(1)].astype(int)
                rows.append(pd.DataFrame({"model": name, "repeat": repeat, "fold": fold.index,
                                          ID_COLUMN: test, "task": t.name,
                                          "y_true": y_te.astype(int), "score": score,
                                          "pred": pred}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=_PRED_COLUMNS)


# ---------------------------------------------------------------------------------------------
# the result
# ---------------------------------------------------------------------------------------------
@dataclass
class ClaimsResult:
    """The verdict on each claim, and the data behind it.

    Attributes
    ----------
    claims : pandas.DataFrame
        One row per claim: ``claim, statement, verdict, effect, ci_low, ci_high, n, detail``.
    predictions : pandas.DataFrame
        Long out-of-fold predictions of every model used (``model, repeat, fold, PatientID,
        task, y_true, score, pred``; ``size`` too for the learning curve), the reference models
        included.
    learning_curve : pandas.DataFrame
        Per cohort size and model: the mean and SD over repeats of the pooled out-of-fold AUC
        (empty when no sizes were run).
    saliency : pandas.DataFrame
        Per patient and model: the guided-backprop lesion enrichment used by C5.
    settings : dict
        How the check was run (repeats, folds, sizes, seeds, bootstrap resamples, runtime).
    """

    claims: pd.DataFrame
    predictions: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=_PRED_COLUMNS))
    learning_curve: pd.DataFrame = field(default_factory=pd.DataFrame)
    saliency: pd.DataFrame = field(default_factory=pd.DataFrame)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def long_predictions(self) -> pd.DataFrame:
        """:attr:`predictions` with the columns of the library's one long table first
        (``model, fold, PatientID, task, y_true, score, pred``), then ``repeat`` (and ``size``
        for the learning curve)."""
        p = self.predictions
        return p.loc[:, [*PREDICTION_COLUMNS, *[c for c in p.columns
                                                 if c not in PREDICTION_COLUMNS]]]

    @property
    def metrics(self) -> pd.DataFrame:
        """The tidy metrics table (``model, fold, task, metric, value``) of the prognosis
        predictions of every model on the whole cohort (the learning curve's subsets are left
        out): :func:`~ichprog.metrics.binary_metrics` per model and fold. With several repeats
        the ``fold`` column reads ``"<repeat>/<fold>"``."""
        from ichprog.metrics import binary_metrics, tidy

        p = _with_repeat(self.predictions)
        if "size" in p.columns:
            p = p[p["size"].isna()]
        p = p[p["task"] == "prognosis"]
        several = p["repeat"].nunique() > 1
        frames = []
        for model, g in p.groupby("model", sort=False):
            per_fold = {}
            for (r, k), part in g.groupby(["repeat", "fold"], sort=True):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    per_fold[f"{r}/{k}" if several else int(str(k))] = binary_metrics(
                        part["y_true"].to_numpy(int), part["score"].to_numpy(float))
            frames.append(tidy(per_fold, model=str(model), task="prognosis"))
        if not frames:
            return tidy({}, task="prognosis")
        return pd.concat(frames, ignore_index=True)

    def summary(self) -> pd.DataFrame:
        """``claim, verdict, effect, ci_low, ci_high`` (and the statement), one row per claim."""
        return self.claims.loc[:, [*CLAIM_COLUMNS, "statement"]].reset_index(drop=True)

    def _repr_html_(self) -> str:
        """Jupyter display: the verdict table of :meth:`summary`."""
        from ichprog import _display as d

        return d.panel(f"ClaimsResult: {len(self.claims)} claims", [d.frame(self.summary())])

    def __repr__(self) -> str:
        verdicts = ", ".join(f"{c}: {v}" for c, v in zip(self.claims["claim"],
                                                         self.claims["verdict"]))
        return f"ClaimsResult({verdicts})"

    def save(self, out_dir: str | Path) -> Path:
        """Write ``claims.csv``, ``claims_predictions.csv``, ``learning_curve.csv`` and
        ``claims_saliency.csv`` (when those were run) and ``claims.json`` (settings) into
        ``out_dir``; returns ``out_dir``."""
        out = Path(out_dir)
        write_csv(self.claims, out / "claims.csv", checksum=True)
        write_csv(self.predictions, out / "claims_predictions.csv", checksum=True)
        for name, frame in (("learning_curve.csv", self.learning_curve),
                            ("claims_saliency.csv", self.saliency)):
            if len(frame.columns):
                write_csv(frame, out / name, checksum=True)
            else:  # not run: no file (a stale one from an earlier check must not remain)
                (out / name).unlink(missing_ok=True)
        write_json(self.settings, out / "claims.json", checksum=True)
        return out

    @classmethod
    def load(cls, out_dir: str | Path) -> ClaimsResult:
        """Read a result written by :meth:`save`."""
        out = Path(out_dir)

        def read(name: str) -> pd.DataFrame:
            p = out / name
            if not p.is_file() or p.stat().st_size <= 1:
                return pd.DataFrame()
            return read_csv_verified(p, dtype={ID_COLUMN: str})

        if not (out / "claims.csv").is_file():
            raise FileNotFoundError(f"no claims.csv in {out}")
        settings = json.loads(read_text_verified(out / "claims.json")) \
            if (out / "claims.json").is_file() else {}
        return cls(claims=read("claims.csv"), predictions=read("claims_predictions.csv"),
                   learning_curve=read("learning_curve.csv"), saliency=read("claims_saliency.csv"),
                   settings=settings)

    def plot_learning_curve(self, path: str | Path | None = None) -> Any:
        """AUC of the baseline and the multi-task model against the cohort size (mean ± SD
        over repeats), with the image oracle's when known."""
        require_extra("ichprog.experiment.ClaimsResult.plot_learning_curve", "report")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        lc = self.learning_curve
        for model, g in lc.groupby("model", sort=False):
            g = g.sort_values("size")
            ax.errorbar(g["size"], g["auc_mean"], yerr=g["auc_sd"].fillna(0), marker="o",
                        capsize=3, label=str(model))
        ax.set_xlabel("patients in the cohort")
        ax.set_ylabel("pooled out-of-fold AUC (prognosis)")
        if len(lc):
            ax.set_xticks(sorted(lc["size"].unique()))
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
        fig.tight_layout()
        if path is not None:
            save_figure(fig, path, dpi=110, bbox_inches="tight", facecolor="white")
        return fig


def _row(claim: str, effect: float, low: float, high: float, n: int, detail: str,
         equivalence: bool = False) -> dict[str, Any]:
    return {"claim": claim, "statement": CLAIMS[claim],
            "verdict": verdict(low, high, equivalence=equivalence), "effect": effect,
            "ci_low": low, "ci_high": high, "n": n, "detail": detail}


def _long(res: Any, task: str, repeat: int) -> pd.DataFrame:
    """One task of a result's long predictions, with its ``repeat``."""
    p = res.long_predictions
    return p[p["task"] == task].reset_index(drop=True).assign(repeat=repeat)


def claims_from_results(baseline: Sequence[Any], multitask: Sequence[Any], *,
                        tabular: Mapping[str, Any] | None = None, saliency: pd.DataFrame | None
                        = None, learning_curve: pd.DataFrame | None = None,
                        references: pd.DataFrame | None = None, n_resamples: int = 1000,
                        seed: int = 0, settings: Mapping[str, Any] | None = None
                        ) -> ClaimsResult:
    """Judge the claims from results already computed (what :func:`check_claims` and the demo
    call).

    Parameters
    ----------
    baseline, multitask
        One :class:`~ichprog.experiment.CVResult` per repeat for each model, on the same folds
        (repeat ``r`` of both on the same splits).
    tabular
        ``{"lr": TabularCVResult of LR on GCS and age, "dnn": ... of the dense network on all
        variables, "shap": per-patient SHAP table (patients x variables, mean |SHAP| is the
        importance)}``; any may be missing (its claim is then left out).
    saliency
        Per-patient enrichment: columns ``model`` (``"baseline"`` / ``"multitask"``),
        ``PatientID``, ``enrichment``.
    learning_curve
        Long predictions with a ``size`` column (prognosis of both models).
    references
        Reference predictions (:func:`reference_predictions`) to keep with the result.
    n_resamples, seed
        Bootstrap resamples and seed of every interval.
    settings
        Stored with the result.
    """
    if len(baseline) != len(multitask) or not baseline:
        raise ValueError("claims_from_results: need the same number (>= 1) of baseline and "
                         "multi-task results, one per repeat")
    base = pd.concat([_long(r, "prognosis", k) for k, r in enumerate(baseline)],
                     ignore_index=True)
    mt = pd.concat([_long(r, "prognosis", k) for k, r in enumerate(multitask)],
                   ignore_index=True)
    boot = {"n_resamples": n_resamples, "seed": seed}
    tab = dict(tabular or {})
    rows = []
    if "shap" in tab:
        rows.append(_claim_shap(tab["shap"], **boot))
    if "lr" in tab and "dnn" in tab:
        rows.append(_claim_lr_vs_dnn(tab["lr"], tab["dnn"], **boot))
    rows += _claims_multitask(base, mt, **boot)
    if saliency is not None and len(saliency):
        rows.append(_claim_saliency(saliency, **boot))
    lc_table = pd.DataFrame()
    preds = [base, mt]
    if learning_curve is not None and len(learning_curve):
        preds.append(learning_curve)
        rows.append(_claim_small_data(learning_curve, **boot))
        lc_table = _learning_curve_table(learning_curve)
    if references is not None and len(references):
        preds.append(references)
    claims = pd.DataFrame(rows, columns=["claim", "statement", "verdict", "effect", "ci_low",
                                         "ci_high", "n", "detail"])
    return ClaimsResult(claims=claims, predictions=pd.concat(preds, ignore_index=True),
                        learning_curve=lc_table,
                        saliency=saliency if saliency is not None else pd.DataFrame(),
                        settings=dict(settings or {}))


def _claim_shap(shap: pd.DataFrame, n_resamples: int, seed: int) -> dict[str, Any]:
    """C1 from per-patient SHAP values (patients x variables)."""
    shap_abs = shap.abs()
    cols = list(shap_abs.columns)
    key = [cols.index(GCS_COLUMN), cols.index(AGE_COLUMN)]
    others = [i for i in range(len(cols)) if i not in key]

    def gap(m: np.ndarray) -> np.ndarray:  # m: mean |SHAP| per variable, per resample
        return m[:, key].min(1) - m[:, others].max(1)

    e, lo, hi = _patient_bootstrap(shap_abs.to_numpy(float), n_resamples, seed, gap)
    top = shap_abs.mean().sort_values(ascending=False).index[:3].tolist()
    return _row("C1", e, lo, hi, len(shap_abs),
                f"top variables: {', '.join(top)}; effect = mean |SHAP| of the lesser of GCS "
                "and age minus that of the strongest other variable")


def _claim_lr_vs_dnn(lr: Any, dnn: Any, n_resamples: int, seed: int) -> dict[str, Any]:
    """C2 from two :class:`~ichprog.tabular.TabularCVResult` on the same folds."""
    e, lo, hi = paired_bootstrap(_long(lr, "prognosis", 0), _long(dnn, "prognosis", 0), "auc",
                                 n_resamples=n_resamples, seed=seed)
    return _row("C2", e, lo, hi, len(lr.predictions),
                "effect = AUC of LR (GCS, age) minus AUC of the DNN (all variables), mean over "
                "folds", equivalence=True)


def _claims_multitask(base: pd.DataFrame, mt: pd.DataFrame, n_resamples: int,
                      seed: int) -> list[dict[str, Any]]:
    """C3 (AUC, balanced accuracy) and C4 from the two image models' prognosis predictions."""
    units = base.groupby(["repeat", "fold"]).ngroups
    rows = []
    for metric, claim in (("auc", "C3 AUC"), ("balanced_accuracy", "C3 balanced accuracy")):
        e, lo, hi = paired_bootstrap(mt, base, metric, n_resamples=n_resamples, seed=seed)
        rows.append(_row(claim, e, lo, hi, units,
                         f"effect = MT minus baseline, mean over {units} folds x repeats"))
    e, lo, hi = paired_bootstrap(mt, base, "auc", statistic="sd", n_resamples=n_resamples,
                                 seed=seed)
    # C4 claims a *smaller* SD: flip the sign so that a positive effect supports the claim
    rows.append(_row("C4", -e, -hi, -lo, units,
                     "effect = SD of the baseline's per-fold AUC minus MT's (positive: MT "
                     "steadier)"))
    return rows


def _claim_saliency(saliency: pd.DataFrame, n_resamples: int, seed: int) -> dict[str, Any]:
    """C5 from per-patient enrichment of both models."""
    wide = saliency.pivot_table(index=ID_COLUMN, columns="model", values="enrichment").dropna()
    diff = (wide["multitask"] - wide["baseline"]).to_numpy(float)
    e, lo, hi = _patient_bootstrap(diff, n_resamples, seed, lambda m: m[:, 0])
    return _row("C5", e, lo, hi, len(diff),
                f"effect = MT minus baseline enrichment (mass on the hematoma / its share of the "
                f"brain); means {wide['multitask'].mean():.2f} vs {wide['baseline'].mean():.2f}")


def _claim_small_data(curve: pd.DataFrame, n_resamples: int, seed: int) -> dict[str, Any]:
    """C6: MT's gain at the smallest cohort minus its gain at the largest, resampled jointly
    (the smaller cohorts are subsets of the larger)."""
    sizes = sorted(curve["size"].unique())
    frames = {f"{m}{k}": curve[(curve["size"] == size) & (curve["model"] == m)]
              for k, size in enumerate((sizes[0], sizes[-1])) for m in ("multitask", "baseline")}

    def gain_change(v: Mapping[str, np.ndarray]) -> np.ndarray:
        return (_mean_diff({"a": v["multitask0"], "b": v["baseline0"]})
                - _mean_diff({"a": v["multitask1"], "b": v["baseline1"]}))

    e, lo, hi = _bootstrap(frames, "auc", gain_change, n_resamples, seed)
    small, _, _ = paired_bootstrap(frames["multitask0"], frames["baseline0"], "auc",
                                   n_resamples=0)
    return _row("C6", e, lo, hi, len(sizes),
                f"effect = MT gain in mean per-fold AUC at n = {sizes[0]} ({small:+.3f}) minus "
                f"the gain at n = {sizes[-1]} ({small - e:+.3f}); the smaller cohorts are "
                "subsets of the larger, resampled together")


def _learning_curve_table(curve: pd.DataFrame) -> pd.DataFrame:
    """Mean and SD over repeats of the pooled out-of-fold AUC, per cohort size and model."""
    from ichprog.metrics import roc_auc

    auc = pd.DataFrame([
        {"size": size, "model": model, "repeat": r,
         "auc": roc_auc(g["y_true"].to_numpy(int), g["score"].to_numpy(float))}
        for (size, model, r), g in curve.groupby(["size", "model", "repeat"], sort=False)])
    return auc.groupby(["size", "model"], sort=False)["auc"].agg(
        auc_mean="mean", auc_sd="std", repeats="count").reset_index()


# ---------------------------------------------------------------------------------------------
# running the check
# ---------------------------------------------------------------------------------------------
def _enrichment(cohort: Any, results: Mapping[str, Any], splits: Any, per_fold: int,
                progress: bool) -> pd.DataFrame:
    """Guided-backprop lesion enrichment of each fold's models on its own test patients (maps
    normalised to [0, 1] and cut at 0.5, as in the saliency figures)."""
    from ichprog import saliency
    from ichprog.data import load_volume
    from ichprog.data.cache import load_preprocessed
    from ichprog.experiment import FittedModel

    rows = []
    for fold in splits.folds:
        ids = [i for i in fold.test if cohort.mask_path(i) is not None][:per_fold]
        if not ids:
            continue
        models, pcfg = {}, None
        for key, res in results.items():
            fitted = FittedModel.load(Path(res.out_dir) / f"fold_{fold.index:02d}" / "model")
            models[key], pcfg = fitted.model, fitted.preprocess
        volumes = {i: load_preprocessed(cohort.image_path(i), pcfg) for i in ids}
        masks = {}
        for i in ids:
            marr, maff = load_volume(cohort.mask_path(i))
            masks[i] = saliency.mask_to_input_space(marr, maff, pcfg)
        maps = saliency.compute_maps(models, volumes, method="guided_backprop",
                                     task="prognosis", target=1, threshold=0.5,
                                     progress=False)
        brains = {i: saliency.brain_mask(v) for i, v in volumes.items()}
        sc = saliency.lesion_scores(maps.maps, masks, brain_masks=brains)
        rows.append(sc.loc[:, ["model", ID_COLUMN, "enrichment"]])
    if not rows:
        return pd.DataFrame(columns=["model", ID_COLUMN, "enrichment"])
    return pd.concat(rows, ignore_index=True)


def _subsample(cohort: Any, size: int, seed: int) -> Any:
    """A stratified subset of ``size`` patients; smaller sizes are subsets of larger ones."""
    rng = np.random.default_rng(seed)
    ids = np.asarray(cohort.ids)
    y = np.asarray(cohort.labels)
    order = []
    for cls in (0, 1):  # interleave the classes in proportion, each in a random order
        members = rng.permutation(ids[y == cls])
        order.append(pd.DataFrame({"id": members,
                                   "pos": (np.arange(len(members)) + 0.5) / len(members)}))
    ranked = pd.concat(order).sort_values("pos", kind="stable")["id"].tolist()
    return cohort.subset(ranked[:size])


def check_claims(cohort: Any, *, repeats: int = 1, folds: int = 4, seed: int = 0,
                 recipe: Any = "cpu", sizes: Sequence[int] | None = None,
                 saliency_patients: int = 4, tabular: bool = True, n_resamples: int = 1000,
                 val_fraction: float | None = None, out_dir: str | Path | None = None,
                 cv_kwargs: Mapping[str, Any] | None = None,
                 progress: bool = True) -> ClaimsResult:
    """Test the paper's claims C1-C6 on one cohort (see the module documentation).

    The single-task DenseNet baseline (``baseline_densenet``) and the multi-task model
    (``mt_ord_gcs_bin_age``) are cross-validated on the same folds, ``repeats`` times with
    different fold seeds; the tabular models on the folds of the first repeat; the saliency of
    both models on the same test patients; the learning curve on nested stratified subsets.
    Reference models (:func:`reference_predictions`) are fitted on the same folds.

    Parameters
    ----------
    cohort
        A :class:`~ichprog.data.Cohort` with images (and lesion masks for C5).
    repeats, folds, seed, val_fraction
        Repeat ``r`` uses :func:`ichprog.data.make_splits` with ``seed`` (``r = 0``, the folds
        of ``cross_validate(cohort, folds=folds, seed=seed)``) or a seed derived from it;
        ``val_fraction`` defaults to the recipe's.
    recipe
        Training recipe of both image models (default ``"cpu"``; see :mod:`ichprog.recipes`).
    sizes
        Cohort sizes of the learning curve (C6), e.g. ``(64, 128, 256)``; sizes above the
        cohort's are left out. ``None``: no learning curve.
    saliency_patients
        Test patients with a lesion mask explained per fold (C5); 0 leaves C5 out.
    tabular
        Run C1 and C2 (random forest with SHAP, LR on GCS and age, dense network) on the folds
        of the first repeat (with a 10 % validation part for the dense network's early stopping
        when the image models have none).
    n_resamples
        Bootstrap resamples of every interval.
    out_dir
        Folder of the trained folds (``<out_dir>/<preset>`` for the first repeat,
        ``<out_dir>/repeat_<r>/<preset>`` for the others, ``<out_dir>/size_<n>/...`` for the
        learning curve); finished folds found there are reused, so a check run after
        ``cross_validate(..., out_dir=out_dir / preset_name)`` with the same settings trains
        nothing again. ``None``: a temporary folder. The verdicts themselves are written by
        :meth:`ClaimsResult.save`.
    cv_kwargs
        More :func:`~ichprog.experiment.cross_validate` arguments (``preprocess``, ``config``,
        ``augment``, ``model_kwargs``, ``cache_dir``, ``preload``, ...), ``executor`` among them
        (``{"executor": "ray"}`` trains the folds of every model as Ray tasks).
    progress
        Progress bars.

    Returns
    -------
    ClaimsResult
        ``.summary()`` has the columns ``claim, verdict, effect, ci_low, ci_high``.

    Examples
    --------
    ::

        cohort = ip.data.make_phantom_cohort(128, seed=0, out_dir="phantom/", shape=(32, 96, 96))
        claims = ip.experiment.check_claims(cohort, repeats=3, sizes=(64, 128))
        claims.summary()
    """
    import tempfile
    import time

    from ichprog.data import make_splits
    from ichprog.experiment import cross_validate
    from ichprog.experiment._common import _val_fraction
    from ichprog.recipes import as_recipe
    from ichprog.tasks import BASELINE_DENSENET, MT_ORD_GCS_BIN_AGE

    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    t0 = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="ichprog_claims_"))
    kwargs = {"preload": True, "overwrite": True, "recipe": recipe, **dict(cv_kwargs or {})}
    rec = as_recipe(kwargs["recipe"])
    val_fraction = _val_fraction(rec, val_fraction)
    models = {"baseline": BASELINE_DENSENET, "multitask": MT_ORD_GCS_BIN_AGE}

    def run(c: Any, splits: Any, folder: Path) -> dict[str, Any]:
        return {k: cross_validate(c, p, seed=seed, splits=splits, out_dir=folder / p.name,
                                  progress=progress, **kwargs) for k, p in models.items()}

    def split(c: Any, r: int) -> Any:
        return make_splits(c, folds=folds, seed=seed if r == 0 else derive_seed(seed, r),
                           val_fraction=val_fraction)

    per_repeat, refs, first_splits = [], [], None
    for r in range(repeats):
        splits = split(cohort, r)
        first_splits = first_splits or splits
        per_repeat.append(run(cohort, splits, out if r == 0 else out / f"repeat_{r}"))
        refs.append(reference_predictions(cohort, splits, MT_ORD_GCS_BIN_AGE.tasks, repeat=r))
    tab: dict[str, Any] = {}
    if tabular:
        from ichprog.tabular import cross_validate_tabular, shap_importance

        # the dense network stops early on a validation part of its own (the paper's 10 %),
        # whatever the image models' recipe holds out
        tab_splits = first_splits if val_fraction > 0 else make_splits(
            cohort, folds=folds, seed=seed, val_fraction=0.1)
        common = {"splits": tab_splits, "seed": seed, "progress": False}
        tab["lr"] = cross_validate_tabular(cohort, "lr", [GCS_COLUMN, AGE_COLUMN], **common)
        tab["dnn"] = cross_validate_tabular(cohort, "dnn", "all", **common)
        rf = cross_validate_tabular(cohort, "rf", "all", **common)
        _, expl = shap_importance(rf, cohort, seed=seed, return_explanation=True)
        tab["shap"] = pd.DataFrame(np.asarray(expl.values), columns=list(expl.feature_names))
    enrichment = None
    if saliency_patients:
        enrichment = _enrichment(cohort, per_repeat[0], first_splits, saliency_patients,
                                 progress)
    curve = None
    used_sizes: list[int] = []
    if sizes:
        used_sizes = sorted({int(s) for s in sizes if int(s) <= len(cohort)})
        parts = []
        for size in used_sizes:
            sub = _subsample(cohort, size, seed) if size < len(cohort) else None
            for r in range(repeats):
                # the whole cohort's runs are those of the repeats above
                res = per_repeat[r] if sub is None else run(
                    sub, split(sub, r), out / f"size_{size}" / f"repeat_{r}")
                for key, cv in res.items():
                    parts.append(_long(cv, "prognosis", r).assign(model=key, size=size))
        curve = pd.concat(parts, ignore_index=True) if parts else None
    settings = {"repeats": repeats, "folds": folds, "seed": seed, "sizes": used_sizes,
                "saliency_patients": saliency_patients, "tabular": tabular,
                "n_resamples": n_resamples, "n_patients": len(cohort),
                "recipe": rec.name, "seconds": None}
    result = claims_from_results([p["baseline"] for p in per_repeat],
                                 [p["multitask"] for p in per_repeat], tabular=tab,
                                 saliency=enrichment, learning_curve=curve,
                                 references=pd.concat(refs, ignore_index=True),
                                 n_resamples=n_resamples, seed=seed, settings=settings)
    result.settings["seconds"] = round(time.perf_counter() - t0, 1)
    return result
