"""Cross-validation of the tabular models on the folds of the image models, and Table 1.

:func:`cross_validate_tabular` runs one model family on one feature set over the folds of
:func:`ichprog.data.make_splits` (the same folds as the image models for the same seed) and keeps
every test patient's prediction. Its metrics are the library's tidy table
(``model, fold, task, metric, value``, task ``"prognosis"``), summarised as "mean ± SD" by
:func:`ichprog.metrics.summarize`. :func:`table1` runs the six columns of the paper's Table 1 on
shared folds and returns them together.

Protocol in each fold
---------------------
* The *test* part is predicted; nothing of it is used for fitting or scaling.
* The *validation* part drives the early stopping of the dense network. The other families have
  no use for it, so for them it is joined to the training part (they see the same patients as
  the dense network, which sees them through its early stopping).
* Min-max scaling is fit on the training part only (inside the model's pipeline).
* The training part is balanced by random oversampling of the minority class
  (:func:`ichprog.data.oversample`), as for the image models; the validation part is not.
* Seeds: the oversampling and the model of fold ``k`` use a seed derived from ``seed`` and ``k``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from ichprog._results import long_frame, table_property_value
from ichprog._util import derive_seed, read_csv_verified, read_json, write_csv, write_json
from ichprog.constants import (
    AGE_COLUMN,
    GCS_COLUMN,
    ID_COLUMN,
    LABEL_COLUMN,
    PAPER_TABLES,
)
from ichprog.tabular.models import (
    FEATURE_SETS,
    MODEL_LABELS,
    MODEL_NAMES,
    check_table,
    make_model,
    resolve_features,
)

__all__ = [
    "TASK",
    "TABLE1_COLUMNS",
    "PAPER_TABLE1",
    "fold_seed",
    "feature_label",
    "TabularCVResult",
    "cross_validate_tabular",
    "Table1Result",
    "table1",
]

#: The task name written in the tidy metrics table.
TASK = "prognosis"

# The format keys of the folders written by TabularCVResult.save and Table1Result.save.
TABULAR_CV_FORMAT = "ichprog-tabular-cv/1"
TABLE1_FORMAT = "ichprog-table1/1"

#: The six columns of the paper's Table 1: (model, feature set).
TABLE1_COLUMNS: tuple[tuple[str, str], ...] = (
    ("dnn", "all"),
    ("rf", "all"),
    ("lr", "gcs"),
    ("lr", "gcs_age"),
    ("dtc", "gcs_age"),
    ("rf", "gcs_age"),
)

_, _TABLE1_ROWS, _TABLE1_CELLS = PAPER_TABLES["table1"]
#: The published Table 1 (10-fold CV, mean ± SD), rows named as in :mod:`ichprog.metrics`.
PAPER_TABLE1: pd.DataFrame = pd.DataFrame(
    {label: list(cells) for label, cells in _TABLE1_CELLS.items()},
    index=pd.Index(_TABLE1_ROWS, name="metric"),
)


def fold_seed(seed: int, fold: int) -> int:
    """The seed of fold ``fold``, derived from the run's ``seed`` (for oversampling and model)."""
    return derive_seed(seed, fold)


def feature_label(features: str | Sequence[str]) -> str:
    """Short display name of a feature set: ``"all"``, ``"GCS"``, ``"GCS & age"`` or the columns.

    Examples
    --------
    >>> feature_label(("GCS", "Age"))
    'GCS & age'
    """
    cols = resolve_features(features)
    for name, display in (("all", "all"), ("gcs", "GCS"), ("gcs_age", "GCS & age")):
        if cols == FEATURE_SETS[name]:
            return display
    return ", ".join(cols)


def _as_table(data: Any) -> tuple[pd.DataFrame, Any]:
    """The clinical table indexed by string patient IDs, and the object to split."""
    table = getattr(data, "table", None)
    if isinstance(table, pd.DataFrame) and hasattr(data, "ids"):
        return table, data
    if not isinstance(data, pd.DataFrame):
        raise TypeError(
            "expected a Cohort or a pandas DataFrame indexed by PatientID, got "
            f"{type(data).__name__}"
        )
    table = data
    if ID_COLUMN in table.columns:
        table = table.set_index(ID_COLUMN)
    table = table.copy()
    table.index = pd.Index([str(i) for i in table.index], name=ID_COLUMN)
    dup = table.index[table.index.duplicated()].unique().tolist()
    if dup:
        raise ValueError(f"patient IDs repeat in the table: {dup[:10]}")
    return table, None


@dataclass
class TabularCVResult:
    """Predictions and fitted models of one tabular model over the folds.

    Attributes
    ----------
    model : str
        Family (``"dnn"``, ``"rf"``, ``"xgb"``, ``"lr"`` or ``"dtc"``).
    features : tuple of str
        Input columns.
    label : str
        Name in the ``model`` column of the metrics, e.g. ``"LR (GCS & age)"``.
    predictions : pandas.DataFrame
        One row per test patient and fold: ``model, fold, PatientID, y_true, y_prob, y_pred``
        (``y_prob`` the probability of poor prognosis, ``y_pred`` at ``threshold``).
    fitted : list of sklearn.pipeline.Pipeline
        The model of each fold (preprocessor + estimator).
    train_ids : list of list of str
        The balanced training IDs of each fold (oversampled, so IDs repeat).
    info : pandas.DataFrame
        Per fold: sizes, seed, and for the dense network the kept (best validation) epoch,
        the epochs run and the best validation balanced accuracy.
    splits : ichprog.data.Splits or None
        The folds used.
    threshold : float
        Probability threshold of ``y_pred`` and of the metrics.
    seed : int
        The run's seed.
    """

    model: str
    features: tuple[str, ...]
    label: str
    predictions: pd.DataFrame
    fitted: list[Any] = field(default_factory=list)
    train_ids: list[list[str]] = field(default_factory=list)
    info: pd.DataFrame = field(default_factory=pd.DataFrame)
    splits: Any = None
    threshold: float = 0.5
    seed: int = 0

    @property
    def long_predictions(self) -> pd.DataFrame:
        """The predictions in the library's one long table, ``model, fold, PatientID, task,
        y_true, score, pred`` (task ``"prognosis"``, ``score`` = ``y_prob``)."""
        p = self.predictions
        return long_frame(p["model"].to_numpy(), p["fold"].to_numpy(), p[ID_COLUMN], TASK,
                          p["y_true"], p["y_prob"], p["y_pred"])

    @property
    def metrics(self) -> pd.DataFrame:
        """The tidy metrics table (``model, fold, task, metric, value``), one fold at a time.

        A test fold holding one class only gives NaN for the metrics that need both (AUC,
        balanced accuracy, and specificity or recall), with an
        :class:`~ichprog.metrics.UndefinedMetricWarning`. A property; the former call
        ``metrics()`` still works and warns.
        """
        from ichprog.metrics import binary_metrics, tidy

        per_fold: dict[int, dict[str, float]] = {}
        for fold, group in self.predictions.groupby("fold", sort=True):
            per_fold[int(str(fold))] = binary_metrics(group["y_true"].to_numpy(),
                                                      group["y_prob"].to_numpy(), self.threshold)
        return table_property_value(tidy(per_fold, model=self.label, task=TASK),
                                    "TabularCVResult.metrics")

    def summary(self, decimals: int = 2, skipna: bool = False) -> pd.DataFrame:
        """The "mean ± SD" table over folds (:func:`ichprog.metrics.summarize`)."""
        from ichprog.metrics import summarize

        return summarize(self.metrics, columns="model", decimals=decimals, skipna=skipna)

    def save(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write ``predictions.csv``, ``metrics.csv``, ``folds.csv``, ``config.json`` and
        ``splits.json`` (when the folds are known) into ``out_dir``.

        The fitted models are not written; :meth:`load` gives a result without them.

        Returns
        -------
        pathlib.Path
            The folder.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_csv(self.predictions, out / "predictions.csv", checksum=True)
        write_csv(self.metrics, out / "metrics.csv", checksum=True)
        write_csv(self.info, out / "folds.csv", checksum=True)
        params = self.fitted[0]["model"].get_params().items() if self.fitted else []
        write_json({"format": TABULAR_CV_FORMAT, "model": self.model,
                    "features": list(self.features), "label": self.label,
                    "threshold": self.threshold, "seed": self.seed,
                    "params": {k: repr(v) for k, v in params}}, out / "config.json",
                   checksum=True)
        if self.splits is not None and hasattr(self.splits, "save"):
            self.splits.save(out / "splits.json")
        return out

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> TabularCVResult:
        """Read a result written by :meth:`save` (predictions, fold table, settings and splits;
        ``fitted`` and ``train_ids`` are empty)."""
        d = Path(out_dir)
        cfg = _read_config(d / "config.json", TABULAR_CV_FORMAT)
        preds = read_csv_verified(d / "predictions.csv", dtype={ID_COLUMN: str})
        folds = d / "folds.csv"
        info = read_csv_verified(folds) if folds.is_file() and folds.stat().st_size > 1 \
            else pd.DataFrame()
        return cls(model=cfg["model"], features=tuple(cfg["features"]), label=cfg["label"],
                   predictions=preds, info=info, splits=_read_splits(d / "splits.json"),
                   threshold=float(cfg["threshold"]), seed=int(cfg["seed"]))


def _read_config(path: Path, expected: str) -> dict[str, Any]:
    """The JSON file of a saved result, checked for its format (files written before the format
    was recorded have none and are accepted)."""
    return dict(read_json(path, fmt=expected, what="a saved result folder", unversioned_ok=True))


def _read_splits(path: Path) -> Any:
    if not path.is_file():
        return None
    from ichprog.data import Splits

    return Splits.load(path)


def cross_validate_tabular(
    cohort: Any,
    model: str = "lr",
    features: str | Sequence[str] = (GCS_COLUMN, AGE_COLUMN),
    folds: int = 10,
    seed: int = 0,
    *,
    splits: Any = None,
    val_fraction: float = 0.1,
    balance: bool = True,
    threshold: float = 0.5,
    params: Mapping[str, Any] | None = None,
    label: str | None = None,
    progress: bool = True,
) -> TabularCVResult:
    """Cross-validate one tabular model on the folds of the image models.

    Parameters
    ----------
    cohort
        A :class:`~ichprog.data.Cohort`, or a table indexed by ``PatientID`` (or with a
        ``PatientID`` column) holding the features and ``Label (poor_prognosis)``.
    model
        ``"dnn"``, ``"rf"``, ``"xgb"``, ``"lr"`` or ``"dtc"`` (see
        :func:`ichprog.tabular.make_model`).
    features
        A list of columns, or ``"all"`` (the 42 inputs), ``"gcs"``, ``"gcs_age"``.
    folds, seed, val_fraction
        Passed to :func:`ichprog.data.make_splits` (same values, same folds as the image
        models). Ignored when ``splits`` is given.
    splits
        Precomputed :class:`~ichprog.data.Splits` (or a list of folds with ``train``, ``val``
        and ``test`` ID lists).
    balance
        Oversample the minority class of each training part.
    threshold
        Probability threshold for ``y_pred`` and the metrics (the paper's 0.5).
    params
        Keyword arguments for the estimator (e.g. ``{"max_epochs": 20}`` for the DNN).
    label
        Name in the metrics table; default ``"<MODEL> (<features>)"``, e.g. ``"LR (GCS & age)"``.
    progress
        Show a progress bar over folds.

    Returns
    -------
    TabularCVResult
        ``.predictions`` (per fold and patient), ``.metrics`` (tidy), ``.summary()``.

    Raises
    ------
    KeyError
        A requested column is absent.
    ValueError
        Invalid values (naming column, patient and value), an unknown model, split IDs absent
        from the table, a training part with one class, or the DNN without a validation part.

    Examples
    --------
    >>> result = cross_validate_tabular(table, "lr", ("GCS", "Age"), folds=5)  # doctest: +SKIP
    >>> result.summary()  # doctest: +SKIP
    """
    key = str(model).lower()
    if key not in MODEL_NAMES:
        raise ValueError(f"model must be one of {MODEL_NAMES}, got {model!r}")
    cols = resolve_features(features)
    table, split_source = _as_table(cohort)
    checked = check_table(table, cols, label=True)
    y_all = checked[LABEL_COLUMN].astype(int)
    X_all = checked[list(cols)]
    name = label or f"{MODEL_LABELS[key]} ({feature_label(cols)})"
    splits, fold_list = _tabular_folds(splits, split_source, y_all, set(X_all.index), folds,
                                       seed, val_fraction)

    rows: list[pd.DataFrame] = []
    fitted: list[Any] = []
    train_sets: list[list[str]] = []
    info: list[dict[str, Any]] = []
    for fold in tqdm(fold_list, desc=f"{name} folds", disable=not progress, leave=False):
        pred, pipe, balanced, row = _fit_fold(key, cols, fold, seed, X_all, y_all, balance,
                                              params, threshold, name)
        rows.append(pred)
        fitted.append(pipe)
        train_sets.append(list(balanced))
        info.append(row)
    predictions = pd.concat(rows, ignore_index=True)
    return TabularCVResult(model=key, features=cols, label=name, predictions=predictions,
                           fitted=fitted, train_ids=train_sets, info=pd.DataFrame(info),
                           splits=splits, threshold=threshold, seed=int(seed))


def _tabular_folds(splits: Any, split_source: Any, y_all: pd.Series, known: set[str], folds: int,
                   seed: int, val_fraction: float) -> tuple[Any, list[Any]]:
    """The splits (drawn like the image models' unless given) and their folds, checked against
    the table's patient IDs."""
    if splits is None:
        from ichprog.data import make_splits

        source = split_source if split_source is not None else y_all
        splits = make_splits(source, folds=folds, seed=seed, val_fraction=val_fraction)
    fold_list = list(getattr(splits, "folds", splits))
    for fold in fold_list:
        absent = [i for part in (fold.train, fold.val, fold.test) for i in part
                  if str(i) not in known]
        if absent:
            raise ValueError(f"fold {fold.index}: patient IDs not in the table: {absent[:10]}")
    return splits, fold_list


def _fit_fold(key: str, cols: Sequence[str], fold: Any, seed: int, X_all: pd.DataFrame,
              y_all: pd.Series, balance: bool, params: Mapping[str, Any] | None,
              threshold: float, name: str) -> tuple[pd.DataFrame, Any, list[str], dict[str, Any]]:
    """Fit one fold's model on its (oversampled) training part and predict its test part: the
    fold's predictions, the fitted pipeline, the training IDs and the fold's row of ``info``."""
    from ichprog.data import oversample

    k = int(fold.index)
    s = fold_seed(seed, k)
    train = [str(i) for i in fold.train]
    val = [str(i) for i in fold.val]
    test = [str(i) for i in fold.test]
    if key != "dnn":
        train = train + val
    counts = y_all.loc[train].value_counts().to_dict()
    if len(counts) < 2:
        raise ValueError(
            f"fold {k}: the training part holds one class only ({counts}); a classifier "
            "cannot be fit. Use fewer folds or check the labels."
        )
    balanced = oversample(train, y_all.loc[train].to_numpy(), seed=s) if balance else train
    pipe = make_model(key, cols, seed=s, params=params)
    row: dict[str, Any] = {"fold": k, "seed": s, "n_train": len(train),
                           "n_train_balanced": len(balanced), "n_val": len(val),
                           "n_test": len(test)}
    Xtr, ytr = X_all.loc[balanced], y_all.loc[balanced].to_numpy()
    if key == "dnn":
        if not val:
            raise ValueError(
                f"fold {k}: the dense network needs a validation part for early stopping; "
                "use val_fraction > 0 or splits with validation IDs"
            )
        prep = pipe["prep"].fit(Xtr)
        pipe["model"].fit(prep.transform(Xtr), ytr, X_val=prep.transform(X_all.loc[val]),
                          y_val=y_all.loc[val].to_numpy())
        net = pipe["model"]
        row.update(best_epoch=net.best_epoch_, n_epochs=net.n_epochs_,
                   best_val_balanced_accuracy=net.best_score_)
    else:
        pipe.fit(Xtr, ytr)
    prob = pipe.predict_proba(X_all.loc[test])[:, list(pipe.classes_).index(1)]
    pred = pd.DataFrame({
        "model": name,
        "fold": k,
        ID_COLUMN: test,
        "y_true": y_all.loc[test].to_numpy(),
        "y_prob": prob,
        "y_pred": (prob >= threshold).astype(int),
    })
    return pred, pipe, balanced, row


@dataclass
class Table1Result:
    """The columns of Table 1, cross-validated on shared folds.

    Attributes
    ----------
    results : dict of str to TabularCVResult
        Column label (e.g. ``"LR (GCS & age)"``) -> its result.
    splits : ichprog.data.Splits
        The folds shared by all columns.
    """

    results: dict[str, TabularCVResult]
    splits: Any = None

    @property
    def metrics(self) -> pd.DataFrame:
        """All columns' tidy metrics tables, concatenated (a property; the former call
        ``metrics()`` still works and warns)."""
        table = pd.concat([r.metrics for r in self.results.values()], ignore_index=True)
        return table_property_value(table, "Table1Result.metrics")

    @property
    def predictions(self) -> pd.DataFrame:
        """All columns' per-patient predictions, concatenated (``model, fold, PatientID,
        y_true, y_prob, y_pred``; a property, the former call ``predictions()`` still works and
        warns)."""
        table = pd.concat([r.predictions for r in self.results.values()], ignore_index=True)
        return table_property_value(table, "Table1Result.predictions")

    @property
    def long_predictions(self) -> pd.DataFrame:
        """All columns' predictions in the library's one long table."""
        return pd.concat([r.long_predictions for r in self.results.values()],
                         ignore_index=True)

    def summary(self, decimals: int = 2, skipna: bool = False) -> pd.DataFrame:
        """Table 1: metrics as rows, the model/feature columns as columns, "mean ± SD"."""
        from ichprog.metrics import summarize

        return summarize(self.metrics, columns="model", decimals=decimals, skipna=skipna)

    def save(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write every column's result into a sub-folder of ``out_dir`` (see
        :meth:`TabularCVResult.save`), the shared ``splits.json``, ``metrics.csv`` of all
        columns and ``table1.json`` (column label -> sub-folder); returns ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        folders: dict[str, str] = {}
        for label, res in self.results.items():
            folder = _slug(label)
            if folder in folders.values():
                folder = f"{folder}_{len(folders)}"
            folders[label] = folder
            res.save(out / folder)
        write_csv(self.metrics, out / "metrics.csv")
        if self.splits is not None and hasattr(self.splits, "save"):
            self.splits.save(out / "splits.json")
        # a list of pairs: write_json sorts the keys of a mapping, and the column order matters
        write_json({"format": TABLE1_FORMAT, "columns": [[k, v] for k, v in folders.items()]},
                   out / "table1.json")
        return out

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> Table1Result:
        """Read a Table 1 written by :meth:`save`."""
        d = Path(out_dir)
        cfg = _read_config(d / "table1.json", TABLE1_FORMAT)
        results = {label: TabularCVResult.load(d / folder) for label, folder in cfg["columns"]}
        return cls(results=results, splits=_read_splits(d / "splits.json"))

    def compare(self, decimals: int = 2) -> pd.DataFrame:
        """This run next to the published values: columns ``(label, "ichprog" | "paper")``."""
        ours = self.summary(decimals=decimals)
        parts = {}
        for col in ours.columns:
            parts[(col, "ichprog")] = ours[col]
            if col in PAPER_TABLE1.columns:
                parts[(col, "paper")] = PAPER_TABLE1[col].reindex(ours.index)
        return pd.DataFrame(parts)

    def to_markdown(self, decimals: int = 2) -> str:
        """The summary as a Markdown table."""
        from ichprog.metrics import to_markdown

        return to_markdown(self.summary(decimals=decimals))


def _slug(label: str) -> str:
    """A folder name for a column label: ``"LR (GCS & age)"`` -> ``"lr_gcs_age"``."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_") or "column"


def table1(
    cohort: Any,
    folds: int = 10,
    seed: int = 0,
    columns: Sequence[tuple[str, str | Sequence[str]]] = TABLE1_COLUMNS,
    *,
    splits: Any = None,
    val_fraction: float = 0.1,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = True,
) -> Table1Result:
    """Run the columns of the paper's Table 1 on the same folds.

    Parameters
    ----------
    cohort
        A :class:`~ichprog.data.Cohort` or a clinical table (see :func:`cross_validate_tabular`).
    folds, seed, val_fraction
        The folds (:func:`ichprog.data.make_splits`), made once and shared by every column.
    columns
        ``(model, features)`` pairs; default :data:`TABLE1_COLUMNS` (DNN and RF on all
        variables; LR on GCS; LR, DTC and RF on GCS and age). Add ``("xgb", "all")`` for the
        XGBoost column the paper omitted.
    splits
        Precomputed folds instead of ``folds``/``seed``.
    params
        Per model family, keyword arguments for its estimator, e.g. ``{"dnn": {"max_epochs": 30}}``.
    progress
        Show progress bars.

    Returns
    -------
    Table1Result
        ``.summary()`` is Table 1; ``.metrics`` the tidy table of all columns; ``.compare()``
        puts the published values beside.
    """
    source, split_source = _as_table(cohort)
    if splits is None:
        from ichprog.data import make_splits

        labels = check_table(source, [], label=True)[LABEL_COLUMN].astype(int)
        splits = make_splits(split_source if split_source is not None else labels,
                             folds=folds, seed=seed, val_fraction=val_fraction)
    results: dict[str, TabularCVResult] = {}
    params = params or {}
    for model, features in tqdm(list(columns), desc="Table 1", disable=not progress):
        res = cross_validate_tabular(cohort, model, features, seed=seed, splits=splits,
                                     params=params.get(model), progress=progress)
        if res.label in results:
            raise ValueError(f"column {res.label!r} requested twice")
        results[res.label] = res
    return Table1Result(results=results, splits=splits)
