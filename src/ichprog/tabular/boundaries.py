"""Cut-offs of GCS and age learned by a shallow decision tree, for the encoders.

The paper binarised GCS (``GCS <= 8``) and age (``age >= 80``) at the decision boundaries of a
decision tree trained on these two variables (supplementary Fig. 4). :func:`decision_boundaries`
learns the same kind of cut-offs from any cohort and returns them in the convention of
:mod:`ichprog.encoding`: ``{"GCS": 8, "Age": 80}`` means ``gcs_binary(threshold=8)`` (GCS at or
below 8 -> 1) and ``age_binary(threshold=80)`` (age at or above 80 -> 1).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeClassifier

from ichprog._extras import require_extra
from ichprog._util import save_figure
from ichprog.constants import AGE_COLUMN, GCS_COLUMN, LABEL_COLUMN
from ichprog.tabular.models import check_table, make_model, resolve_features

__all__ = [
    "fit_boundary_tree",
    "boundary_splits",
    "decision_boundaries",
    "boundary_encoders",
    "boundary_tasks",
    "plot_decision_regions",
]

#: Columns whose encoder marks values *at or below* the threshold (GCS: lower is worse).
LOWER_IS_POSITIVE: frozenset[str] = frozenset({GCS_COLUMN})


def _table_of(data: Any) -> pd.DataFrame:
    table = getattr(data, "table", data)
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            f"expected a Cohort or a pandas DataFrame, got {type(data).__name__}"
        )
    return table


def _balanced_rows(table: pd.DataFrame, y: np.ndarray, seed: int) -> np.ndarray:
    """Row positions after random oversampling of the minority class (the image models' way)."""
    from ichprog.data import oversample

    ids = [str(i) for i in range(len(table))]
    return np.asarray(oversample(ids, y, seed=seed), dtype=int)


def fit_boundary_tree(
    table: Any,
    features: str | Sequence[str] = (GCS_COLUMN, AGE_COLUMN),
    max_depth: int = 2,
    min_samples_leaf: int | float = 0.05,
    balance: bool = True,
    seed: int = 0,
) -> DecisionTreeClassifier:
    """Fit the shallow decision tree whose splits give the cut-offs.

    Parameters
    ----------
    table
        A :class:`~ichprog.data.Cohort` or a table with the feature columns and the prognosis
        label (``Label (poor_prognosis)``), one row per patient.
    features
        The columns to split on, in clinical units (no scaling).
    max_depth
        Depth of the tree. The paper did not publish its tree's settings; depth 2 allows one
        cut-off per variable.
    min_samples_leaf
        Smallest leaf, as a count or a fraction of the (balanced) rows; guards against cut-offs
        that isolate a handful of patients.
    balance
        Oversample the minority class first (:func:`ichprog.data.oversample`), as for the models.
    seed
        Seed of the oversampling and of the tree.

    Returns
    -------
    sklearn.tree.DecisionTreeClassifier
        Fitted on ``table[features]`` with ``feature_names_in_`` set to the columns.
    """
    data = _table_of(table)
    cols = resolve_features(features)
    checked = check_table(data, cols, label=True)
    y = checked[LABEL_COLUMN].to_numpy(dtype=int)
    if np.unique(y).size < 2:
        raise ValueError(
            f"the table holds one class only (label {int(y[0])} for all {len(y)} patients); "
            "a decision boundary needs both"
        )
    rows = _balanced_rows(checked, y, seed) if balance else np.arange(len(y))
    X = checked[list(cols)].iloc[rows]
    tree = DecisionTreeClassifier(max_depth=max_depth, min_samples_leaf=min_samples_leaf,
                                  random_state=seed)
    return tree.fit(X, y[rows])


def boundary_splits(tree: DecisionTreeClassifier) -> pd.DataFrame:
    """Every split of a fitted tree, with the share of impurity it removes.

    Parameters
    ----------
    tree
        A fitted :class:`~sklearn.tree.DecisionTreeClassifier` (fitted on a DataFrame, so that
        its ``feature_names_in_`` are known).

    Returns
    -------
    pandas.DataFrame
        One row per split node in depth-first order with columns ``node``, ``depth``,
        ``feature``, ``threshold`` (``feature <= threshold`` goes left), ``n_samples`` and
        ``gain`` (weighted impurity decrease as a fraction of the root's weighted impurity).
    """
    t = tree.tree_
    names = getattr(tree, "feature_names_in_", None)
    if names is None:
        names = np.asarray([f"x{i}" for i in range(tree.n_features_in_)], dtype=object)
    depth = np.zeros(t.node_count, dtype=int)
    rows = []
    w = t.weighted_n_node_samples
    total = w[0] * t.impurity[0]
    for node in range(t.node_count):
        left, right = t.children_left[node], t.children_right[node]
        if left == right:  # a leaf
            continue
        depth[left] = depth[right] = depth[node] + 1
        decrease = (w[node] * t.impurity[node] - w[left] * t.impurity[left]
                    - w[right] * t.impurity[right])
        rows.append({
            "node": node,
            "depth": int(depth[node]),
            "feature": str(names[t.feature[node]]),
            "threshold": float(t.threshold[node]),
            "n_samples": int(t.n_node_samples[node]),
            "gain": float(decrease / total) if total > 0 else float("nan"),
        })
    return pd.DataFrame(rows, columns=["node", "depth", "feature", "threshold", "n_samples",
                                       "gain"])


def _gini_gain(n_left: np.ndarray, pos_left: np.ndarray, n: float, pos: float) -> np.ndarray:
    """Weighted Gini decrease of splitting ``n`` samples (``pos`` positive) at each candidate."""

    def weighted_gini(count: np.ndarray, positive: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.where(count > 0, positive / np.maximum(count, 1), 0.0)
        return count * 2.0 * p * (1.0 - p)

    n_right, pos_right = n - n_left, pos - pos_left
    parent = weighted_gini(np.asarray(n, dtype=float), np.asarray(pos, dtype=float))
    return parent - weighted_gini(n_left, pos_left) - weighted_gini(n_right, pos_right)


def _pooled_split(
    tree: DecisionTreeClassifier, X: pd.DataFrame, y: np.ndarray, column: str
) -> float | None:
    """One threshold for ``column`` shared by every node of ``tree`` that splits on it.

    Candidates are the midpoints between consecutive distinct values of the column; the chosen
    one maximises the Gini decrease summed over those nodes, each evaluated on the samples that
    reach it. An encoder applies one cut-off to every patient, so its cut-off is chosen the same
    way rather than from the samples of a single branch.
    """
    t = tree.tree_
    names = list(tree.feature_names_in_)
    j = names.index(column)
    nodes = [k for k in range(t.node_count)
             if t.children_left[k] != t.children_right[k] and t.feature[k] == j]
    if not nodes:
        return None
    values = X[column].to_numpy(dtype=float)
    distinct = np.unique(values)
    if distinct.size < 2:
        return None
    candidates = (distinct[:-1] + distinct[1:]) / 2.0
    paths = tree.decision_path(X).tocsc()
    total = np.zeros(candidates.size)
    for k in nodes:
        rows = paths[:, k].nonzero()[0]
        v, lab = values[rows], y[rows].astype(float)
        order = np.argsort(v, kind="stable")
        v, lab = v[order], lab[order]
        n_left = np.searchsorted(v, candidates, side="right").astype(float)
        cum = np.concatenate([[0.0], np.cumsum(lab)])
        pos_left = cum[n_left.astype(int)]
        total += _gini_gain(n_left, pos_left, float(len(v)), float(lab.sum()))
    return float(candidates[int(np.argmax(total))])


def _encoder_threshold(column: str, split: float, values: np.ndarray) -> float:
    """Translate a split ``x <= split`` into the encoder's threshold for ``column``.

    For integer-valued columns the threshold is an integer that partitions the data exactly as
    the split does: ``floor(split)`` for "at or below" columns (GCS), ``ceil(split)`` for "at or
    above" ones (age and everything else). Otherwise the split point itself.
    """
    integer = bool(np.all(values == np.round(values)))
    if not integer:
        return float(split)
    if column in LOWER_IS_POSITIVE:
        return float(math.floor(split))
    return float(math.ceil(split)) if split != math.ceil(split) else float(split) + 1.0


def decision_boundaries(
    table: Any,
    features: str | Sequence[str] = (GCS_COLUMN, AGE_COLUMN),
    max_depth: int = 2,
    min_samples_leaf: int | float = 0.05,
    balance: bool = True,
    seed: int = 0,
    pooled: bool = True,
) -> dict[str, float | int]:
    """Learn one cut-off per variable from a shallow decision tree.

    A tree of depth 2 may split on the same variable in several branches (age at 78.5 among
    patients with a low GCS, at 81.5 among the others). An encoder needs one cut-off for every
    patient, so by default (``pooled=True``) the cut-off of each variable the tree splits on is
    the threshold that maximises the Gini decrease summed over all of that variable's split nodes
    (each on the patients reaching it); with ``pooled=False`` it is the single split of that
    variable with the largest impurity decrease. The cut-off is written in the convention of
    :mod:`ichprog.encoding`:

    * GCS: ``{"GCS": t}`` means ``gcs_binary(gcs, threshold=t)``, i.e. ``GCS <= t`` -> 1;
    * any other column (age): ``{"Age": t}`` means ``age_binary(age, threshold=t)``, i.e.
      ``age >= t`` -> 1.

    For integer-valued columns the cut-off is an integer that reproduces the tree's split on the
    data exactly (a split ``GCS <= 8.5`` gives 8, ``Age <= 79.5`` gives 80).

    Parameters
    ----------
    table
        A :class:`~ichprog.data.Cohort` or a table with the features and the prognosis label.
    features
        Columns to learn cut-offs for (GCS and age by default).
    max_depth, min_samples_leaf, balance, seed
        See :func:`fit_boundary_tree`.
    pooled
        Share one threshold across the variable's split nodes (default) or keep the best node's.

    Returns
    -------
    dict
        Column -> cut-off (``int`` for integer-valued columns), in the order of ``features``.
        A feature the tree never splits on is absent (a warning says so).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> gcs = np.repeat(np.arange(3, 16), 20)
    >>> age = np.tile(np.arange(60, 100, 2), 13)
    >>> label = ((gcs <= 8) | (age >= 80)).astype(int)
    >>> table = pd.DataFrame({"GCS": gcs, "Age": age, "Label (poor_prognosis)": label})
    >>> decision_boundaries(table)
    {'GCS': 8, 'Age': 80}
    """
    import warnings

    cols = resolve_features(features)
    tree = fit_boundary_tree(table, cols, max_depth=max_depth, min_samples_leaf=min_samples_leaf,
                             balance=balance, seed=seed)
    splits = boundary_splits(tree)
    checked = check_table(_table_of(table), cols, label=True)
    y = checked[LABEL_COLUMN].to_numpy(dtype=int)
    rows = _balanced_rows(checked, y, seed) if balance else np.arange(len(y))
    fitted_X, fitted_y = checked[list(cols)].iloc[rows], y[rows]
    data = checked
    out: dict[str, float | int] = {}
    for col in cols:
        own = splits[splits["feature"] == col]
        if own.empty:
            warnings.warn(
                f"decision_boundaries: the tree (max_depth={max_depth}) did not split on "
                f"{col!r}; no cut-off for it",
                UserWarning,
                stacklevel=2,
            )
            continue
        best = own.sort_values(["gain", "depth"], ascending=[False, True]).iloc[0]
        split = float(best["threshold"])
        if pooled:
            shared = _pooled_split(tree, fitted_X, fitted_y, col)
            split = split if shared is None else shared
        values = data[col].to_numpy(dtype=float)
        cut = _encoder_threshold(col, split, values)
        out[col] = int(cut) if cut == round(cut) and np.all(values == np.round(values)) else cut
    return out


def boundary_encoders(boundaries: Mapping[str, float]) -> dict[str, Any]:
    """The encoders of :mod:`ichprog.encoding` set to learned cut-offs.

    Parameters
    ----------
    boundaries
        Output of :func:`decision_boundaries` (``"GCS"`` and/or ``"Age"``).

    Returns
    -------
    dict
        ``{"GCS": GCSBinaryEncoder(threshold=...), "Age": AgeBinaryEncoder(threshold=...)}`` for
        the columns present.
    """
    from ichprog.encoding import AgeBinaryEncoder, GCSBinaryEncoder

    out: dict[str, Any] = {}
    for col, cut in boundaries.items():
        if col == GCS_COLUMN:
            out[col] = GCSBinaryEncoder(threshold=int(cut))
        elif col == AGE_COLUMN:
            out[col] = AgeBinaryEncoder(threshold=cut)
        else:
            raise ValueError(f"no encoder for column {col!r}; encoders exist for GCS and Age")
    return out


def boundary_tasks(boundaries: Mapping[str, float]) -> dict[str, Any]:
    """The paper's binary GCS and age tasks with learned cut-offs instead of 8 and 80.

    Parameters
    ----------
    boundaries
        Output of :func:`decision_boundaries`.

    Returns
    -------
    dict
        ``{"gcs": Task, "age": Task}`` (for the columns present), copies of
        :data:`ichprog.tasks.GCS_BINARY` and :data:`ichprog.tasks.AGE_BINARY` with
        ``encoder_kwargs={"threshold": cut}``, ready for a preset or ``fit_multitask``.
    """
    from ichprog.tasks import AGE_BINARY, GCS_BINARY

    out: dict[str, Any] = {}
    for col, cut in boundaries.items():
        if col == GCS_COLUMN:
            out["gcs"] = GCS_BINARY.replace(encoder_kwargs={"threshold": int(cut)})
        elif col == AGE_COLUMN:
            out["age"] = AGE_BINARY.replace(encoder_kwargs={"threshold": cut})
        else:
            raise ValueError(f"no task for column {col!r}; tasks exist for GCS and Age")
    return out


def plot_decision_regions(
    table: Any,
    path: str | os.PathLike[str],
    features: Sequence[str] = (GCS_COLUMN, AGE_COLUMN),
    models: Sequence[str] = ("lr", "dtc"),
    boundaries: Mapping[str, float] | None = None,
    seed: int = 0,
    resolution: int = 200,
    max_depth: int = 2,
    min_samples_leaf: int | float = 0.05,
) -> Path:
    """Plot the decision regions of models trained on two variables (supplementary Fig. 4).

    One panel per model: the predicted class over a grid of the two variables, the patients as
    points coloured by their label, and the learned cut-offs as dashed lines.

    Parameters
    ----------
    table
        A :class:`~ichprog.data.Cohort` or a table with the two features and the label.
    path
        PNG file to write (folders are created).
    features
        The two columns (x axis, y axis).
    models
        Model names of :func:`ichprog.tabular.make_model` to fit on the whole table (balanced by
        oversampling, seeded).
    boundaries
        Cut-offs to draw; learned with :func:`decision_boundaries` when ``None``.
    seed
        Seed of the oversampling and the models.
    resolution
        Grid points per axis.
    max_depth, min_samples_leaf
        Settings of the decision tree (``"dtc"``) panel and of the learned cut-offs: the shallow
        tree of :func:`fit_boundary_tree`, not the unbounded default of Table 1.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    require_extra("ichprog.tabular.plot_decision_regions", "report")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    cols = resolve_features(features)
    if len(cols) != 2:
        raise ValueError(f"plot_decision_regions needs exactly two features, got {list(cols)}")
    data = check_table(_table_of(table), cols, label=True)
    y = data[LABEL_COLUMN].to_numpy(dtype=int)
    if boundaries is None:
        boundaries = decision_boundaries(data, cols, max_depth=max_depth,
                                         min_samples_leaf=min_samples_leaf, seed=seed)
    rows = _balanced_rows(data, y, seed)
    xs, ys = data[cols[0]].to_numpy(), data[cols[1]].to_numpy()
    pad_x = 0.05 * (np.ptp(xs) or 1.0)
    pad_y = 0.05 * (np.ptp(ys) or 1.0)
    gx, gy = np.meshgrid(np.linspace(xs.min() - pad_x, xs.max() + pad_x, resolution),
                         np.linspace(ys.min() - pad_y, ys.max() + pad_y, resolution))
    grid = pd.DataFrame({cols[0]: gx.ravel(), cols[1]: gy.ravel()})
    labels = {"lr": "Logistic regression", "dtc": "Decision tree", "rf": "Random forest",
              "xgb": "XGBoost", "dnn": "DNN"}
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 4.4), squeeze=False)
    cmap = ListedColormap(["#9ecae1", "#fcae91"])
    rng = np.random.default_rng(seed)
    for ax, name in zip(axes[0], models):
        params = ({"max_depth": max_depth, "min_samples_leaf": min_samples_leaf}
                  if name == "dtc" else None)
        model = make_model(name, list(cols), seed=seed, params=params)
        model.fit(data.iloc[rows][list(cols)], y[rows])
        # an array (not a DataFrame) skips the range check of GCS for the off-integer grid
        z = model.predict(grid.to_numpy()).reshape(gx.shape)
        ax.contourf(gx, gy, z, levels=[-0.5, 0.5, 1.5], cmap=cmap, alpha=0.8)
        jx = xs + rng.uniform(-0.2, 0.2, size=xs.shape)  # jitter integer scores for visibility
        for cls, colour, lab in ((0, "#08519c", "good (0)"), (1, "#a50f15", "poor (1)")):
            sel = y == cls
            ax.scatter(jx[sel], ys[sel], s=12, c=colour, alpha=0.7, label=lab, edgecolors="none")
        for col, cut in boundaries.items():
            if col not in cols:
                continue
            values = data[col].to_numpy()
            lower = col in LOWER_IS_POSITIVE
            pos = float(cut)
            if np.all(values == np.round(values)):
                pos = pos + 0.5 if lower else pos - 0.5
            text = f" {col} {'<=' if lower else '>='} {cut}"
            if col == cols[0]:
                ax.axvline(pos, ls="--", c="k", lw=1)
                ax.text(pos, ax.get_ylim()[1], text, va="top", ha="left", fontsize=8)
            else:
                ax.axhline(pos, ls="--", c="k", lw=1)
                ax.text(ax.get_xlim()[0], pos, text, va="bottom", ha="left", fontsize=8)
        ax.set_xlabel(cols[0])
        ax.set_ylabel(cols[1])
        title = labels.get(name, name)
        ax.set_title(f"{title} (depth {max_depth})" if name == "dtc" else title)
        ax.legend(loc="lower right", fontsize=8, title="prognosis", title_fontsize=8)
    fig.suptitle("dashed: learned cut-offs (decision_boundaries)", fontsize=9, y=0.995)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out, dpi=120)
    plt.close(fig)
    return out

