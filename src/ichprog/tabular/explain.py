"""SHAP explanations of the tabular models, feature rankings and plots.

Each family gets the explainer that fits it:

* random forest, XGBoost, decision tree: :class:`shap.TreeExplainer` (exact for trees);
* logistic regression: :class:`shap.LinearExplainer` with a background sample;
* the dense network (and any other estimator): :class:`shap.KernelExplainer`, model-agnostic,
  on the probability of poor prognosis, with a small seeded background sample (50 patients) and
  500 sampled coalitions per patient, without L1 feature selection so every feature gets a
  value. (The permutation explainer gives the same ranking but compiles with numba first,
  which costs ~15 s per process.)

The SHAP values are computed on the model's inputs (min-max scaled where the preprocessor
scales), one value per patient and feature for the positive class (poor prognosis); the
explanation's ``data`` holds the clinical values in their own units, so plots colour patients by
their real age or glucose. Units of the values: probability for the random forest, decision tree
and dense network, log-odds for XGBoost and logistic regression (the units their explainers
use); rankings compare features within one model, so the units do not matter there.

SHAP is imported only when these functions run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from ichprog._extras import require_extra
from ichprog._util import save_figure
from ichprog.constants import ID_COLUMN
from ichprog.tabular.models import fit_model

__all__ = ["explainer_kind", "shap_values", "shap_importance", "plot_shap"]

_TREES = ("RandomForestClassifier", "DecisionTreeClassifier", "XGBClassifier",
          "ExtraTreesClassifier", "GradientBoostingClassifier")
_LINEAR = ("LogisticRegression",)


def explainer_kind(estimator: Any) -> str:
    """The explainer used for an estimator: ``"tree"``, ``"linear"`` or ``"kernel"``.

    Parameters
    ----------
    estimator
        A fitted estimator or a pipeline (its last step decides).
    """
    est = estimator[-1] if isinstance(estimator, Pipeline) else estimator
    name = type(est).__name__
    if name in _TREES:
        return "tree"
    if name in _LINEAR:
        return "linear"
    return "kernel"


def _split_pipeline(model: Any) -> tuple[Any, Any]:
    if isinstance(model, Pipeline):
        return (model[:-1] if len(model.steps) > 1 else None), model[-1]
    return None, model


def _feature_names(prep: Any, est: Any, X: Any) -> list[str]:
    if prep is not None and hasattr(prep, "get_feature_names_out"):
        return [str(c) for c in prep.get_feature_names_out()]
    if hasattr(est, "feature_names_in_"):
        return [str(c) for c in est.feature_names_in_]
    if isinstance(X, pd.DataFrame):
        return [str(c) for c in X.columns]
    return [f"x{i}" for i in range(np.asarray(X).shape[1])]


def _positive_index(est: Any) -> int:
    classes = list(getattr(est, "classes_", [0, 1]))
    if len(classes) != 2:
        raise ValueError(f"SHAP explanations need a binary classifier; classes are {classes}")
    return 1


def shap_values(
    model: Any,
    X: Any,
    background: Any = None,
    *,
    max_background: int = 50,
    nsamples: int | str = "auto",
    seed: int = 0,
    progress: bool = False,
) -> Any:
    """SHAP values of a fitted tabular model for the patients in ``X``.

    Parameters
    ----------
    model
        A fitted pipeline of :func:`ichprog.tabular.make_model` (or any fitted binary
        classifier, with ``X`` already numeric).
    X
        The patients to explain: a clinical table (the pipeline selects its columns) or an array.
    background
        Reference patients for the linear and kernel explainers (default: ``X``). At most
        ``max_background`` rows are used, drawn without replacement with ``seed``.
    max_background
        Size of the background sample.
    nsamples
        Coalitions sampled per patient by the kernel explainer; ``"auto"``: 500 (all
        ``2 ** n_features`` coalitions when fewer, e.g. for GCS and age).
    seed
        Seed of the background sample and of the kernel explainer's coalitions.
    progress
        Show SHAP's progress bar (kernel explainer).

    Returns
    -------
    shap.Explanation
        ``values`` (n_patients, n_features) for poor prognosis, ``base_values`` (n_patients,),
        ``data`` in clinical units, ``feature_names``. The attribute ``explainer_kind`` says
        which explainer ran.
    """
    import shap

    prep, est = _split_pipeline(model)
    _positive_index(est)
    Xt = np.asarray(prep.transform(X) if prep is not None else X, dtype=float)
    raw = (prep[-1].inverse_transform(Xt) if prep is not None
           and hasattr(prep[-1], "inverse_transform") else Xt)
    names = _feature_names(prep, est, X)
    if Xt.shape[0] == 0:
        raise ValueError("no patients to explain")
    rng = np.random.default_rng(seed)
    bg_src = X if background is None else background
    bg = np.asarray(prep.transform(bg_src) if prep is not None else bg_src, dtype=float)
    if bg.shape[0] > max_background:
        bg = bg[np.sort(rng.choice(bg.shape[0], size=max_background, replace=False))]
    kind = explainer_kind(est)
    if kind == "tree":
        explanation = shap.TreeExplainer(est)(Xt)
        values = np.asarray(explanation.values)
        base = np.asarray(explanation.base_values)
        if values.ndim == 3:  # scikit-learn trees: one slice per class
            values, base = values[:, :, 1], base[:, 1]
    elif kind == "linear":
        explanation = shap.LinearExplainer(est, shap.maskers.Independent(bg,
                                                                         max_samples=len(bg)))(Xt)
        values, base = np.asarray(explanation.values), np.asarray(explanation.base_values)
    else:
        def positive_probability(rows: np.ndarray) -> np.ndarray:
            return np.asarray(est.predict_proba(rows))[:, 1]

        n_samples = 500 if nsamples == "auto" else int(nsamples)
        explainer = shap.KernelExplainer(positive_probability, bg)
        state = np.random.get_state()  # noqa: NPY002 (KernelExplainer uses the global generator)
        try:
            np.random.seed(seed % 2**32)  # noqa: NPY002
            values = np.asarray(explainer.shap_values(Xt, nsamples=n_samples, l1_reg=False,
                                                      silent=not progress))
        finally:
            np.random.set_state(state)  # noqa: NPY002
        base = np.full(Xt.shape[0], float(np.asarray(explainer.expected_value).ravel()[0]))
    out = shap.Explanation(values=values.astype(float), base_values=base.astype(float),
                           data=np.asarray(raw, dtype=float), feature_names=names)
    out.explainer_kind = kind  # type: ignore[attr-defined]
    return out


def _concat(explanations: Sequence[Any]) -> Any:
    import shap

    first = explanations[0]
    out = shap.Explanation(
        values=np.vstack([e.values for e in explanations]),
        base_values=np.concatenate([np.asarray(e.base_values) for e in explanations]),
        data=np.vstack([e.data for e in explanations]),
        feature_names=first.feature_names,
    )
    out.explainer_kind = getattr(first, "explainer_kind", None)  # type: ignore[attr-defined]
    return out


def _ranking(explanation: Any) -> pd.DataFrame:
    values = np.abs(np.asarray(explanation.values, dtype=float))
    mean_abs = values.mean(axis=0)
    names = list(explanation.feature_names)
    order = np.argsort(-mean_abs, kind="stable")
    table = pd.DataFrame({
        "feature": [names[i] for i in order],
        "mean_abs_shap": mean_abs[order],
        "share": mean_abs[order] / mean_abs.sum() if mean_abs.sum() > 0 else np.nan,
    })
    table.index = pd.RangeIndex(1, len(table) + 1, name="rank")
    return table


def shap_importance(
    model: Any,
    table: Any = None,
    features: str | Sequence[str] = "all",
    *,
    seed: int = 0,
    balance: bool = True,
    max_samples: int | None = None,
    max_background: int = 50,
    params: dict[str, Any] | None = None,
    return_explanation: bool = False,
    progress: bool = False,
) -> Any:
    """Rank features by mean absolute SHAP value.

    Three ways to call it:

    * ``shap_importance("dnn", table)``: fit that family on the whole table
      (:func:`ichprog.tabular.models.fit_model`: balanced by oversampling, seeded) and explain
      the same patients;
    * ``shap_importance(fitted_pipeline, table)``: explain a fitted model on ``table``;
    * ``shap_importance(table)`` or ``shap_importance(table, "lr")``: the same, with the
      random forest when no family is named;
    * ``shap_importance(cv_result, table)``: out-of-fold explanations of a
      :class:`~ichprog.tabular.TabularCVResult`: each fold's model explains its own test
      patients, with background patients from its training part, and the values of all folds are
      pooled (every patient once, never explained by a model that saw it).

    Parameters
    ----------
    model
        A family name, a fitted model, or a cross-validation result.
    table
        A :class:`~ichprog.data.Cohort` or clinical table (with the label when a model is fit).
    features
        Feature set when ``model`` is a family name.
    seed
        Seed of the fit, the oversampling, the background and patient samples, the coalitions.
    balance
        Oversample the minority class before fitting (family name only).
    max_samples
        Explain at most this many patients (drawn without replacement with ``seed``; per fold
        for a cross-validation result); the kernel explainer of the dense network costs about
        0.1 s per patient with 42 variables.
    max_background
        Background size for the linear and kernel explainers.
    params
        Estimator keyword arguments (family name only).
    return_explanation
        Also return the :class:`shap.Explanation` (for :func:`plot_shap`).
    progress
        Show progress bars.

    Returns
    -------
    pandas.DataFrame or (pandas.DataFrame, shap.Explanation)
        Indexed by rank (1 = most important) with columns ``feature``, ``mean_abs_shap`` and
        ``share`` (of the total); ties keep the input column order.
    """
    if isinstance(model, pd.DataFrame) or (hasattr(model, "table") and hasattr(model, "ids")):
        # called as shap_importance(table) or shap_importance(table, "lr")
        model, table = ("rf" if table is None else table), model
    data = getattr(table, "table", table)
    if data is not None and not isinstance(data, pd.DataFrame):
        raise TypeError(f"table must be a Cohort or a DataFrame, got {type(table).__name__}")
    rng = np.random.default_rng(seed)

    def pick(frame: pd.DataFrame) -> pd.DataFrame:
        if max_samples is not None and len(frame) > max_samples:
            return frame.iloc[np.sort(rng.choice(len(frame), size=max_samples, replace=False))]
        return frame

    if hasattr(model, "fitted") and hasattr(model, "predictions"):  # a TabularCVResult
        if data is None:
            raise ValueError("pass the table the cross-validation ran on")
        frame = _indexed(data)
        parts = []
        for k, pipe in enumerate(model.fitted):
            fold = model.predictions[model.predictions["fold"] == model.info["fold"].iloc[k]]
            test = pick(frame.loc[fold[ID_COLUMN].astype(str)])
            background = frame.loc[list(dict.fromkeys(model.train_ids[k]))]
            parts.append(shap_values(pipe, test, background, max_background=max_background,
                                     seed=seed + k, progress=progress))
        explanation = _concat(parts)
    elif isinstance(model, str):
        if data is None:
            raise ValueError("pass a table to fit the model on")
        frame = _indexed(data)
        pipe = fit_model(model, frame, features, seed=seed, params=params, balance=balance)
        explanation = shap_values(pipe, pick(frame), frame, max_background=max_background,
                                  seed=seed, progress=progress)
    else:
        if data is None:
            raise ValueError("pass the patients to explain")
        frame = pick(_indexed(data)) if isinstance(data, pd.DataFrame) else data
        explanation = shap_values(model, frame, max_background=max_background, seed=seed,
                                  progress=progress)
    ranking = _ranking(explanation)
    return (ranking, explanation) if return_explanation else ranking


def _indexed(data: pd.DataFrame) -> pd.DataFrame:
    frame = data.set_index(ID_COLUMN) if ID_COLUMN in data.columns else data
    frame = frame.copy()
    frame.index = pd.Index([str(i) for i in frame.index], name=ID_COLUMN)
    return frame


def plot_shap(
    explanation: Any,
    out_dir: str | os.PathLike[str],
    name: str = "shap",
    kinds: Sequence[str] = ("beeswarm", "bar"),
    max_display: int = 15,
    title: str | None = None,
) -> dict[str, Path]:
    """Save the SHAP summary (beeswarm) and bar plots as PNG files.

    Parameters
    ----------
    explanation
        From :func:`shap_values` or ``shap_importance(..., return_explanation=True)``.
    out_dir
        Folder for the files (created).
    name
        File name prefix: ``<name>_beeswarm.png``, ``<name>_bar.png``.
    kinds
        Which plots: ``"beeswarm"`` (every patient, coloured by the feature's value) and/or
        ``"bar"`` (mean absolute SHAP value per feature).
    max_display
        Features shown (the rest are summed into one row by SHAP).
    title
        Figure title.

    Returns
    -------
    dict of str to pathlib.Path
        Plot kind -> written file.
    """
    require_extra("ichprog.tabular.plot_shap", "report")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import shap

    unknown = [k for k in kinds if k not in ("beeswarm", "bar")]
    if unknown:
        raise ValueError(f"kinds must be 'beeswarm' and/or 'bar', got {unknown}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for kind in kinds:
        plt.figure()
        if kind == "beeswarm":
            shap.plots.beeswarm(explanation, max_display=max_display, show=False)
        else:
            shap.plots.bar(explanation, max_display=max_display, show=False)
        fig = plt.gcf()
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        path = out / f"{name}_{kind}.png"
        save_figure(fig, path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        written[kind] = path
    return written
