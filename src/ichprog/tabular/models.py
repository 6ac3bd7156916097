"""The five tabular model families of the paper's Table 1 and their input preparation.

* :class:`TabularPreprocessor`: selects the requested clinical columns by name, validates them and
  min-max scales the numeric ones (fit on the training part only).
* :class:`PerezDNNClassifier`: the dense network of Perez et al. (2023) as a scikit-learn
  classifier (torch is imported only when it is fitted or used).
* :func:`make_model`: ``"rf"``, ``"xgb"``, ``"lr"``, ``"dtc"`` or ``"dnn"`` as a
  :class:`~sklearn.pipeline.Pipeline` of the preprocessor and the estimator, seeded.

The hyper-parameters of the random forest, XGBoost, logistic regression and decision tree were never
published: they are the libraries' defaults, with ``random_state`` fixed.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from tqdm.auto import tqdm

from ichprog._extras import require_extra
from ichprog.constants import (
    AGE_COLUMN,
    BINARY_COLUMNS,
    COLUMNS,
    GCS_COLUMN,
    GCS_MAX,
    GCS_MIN,
    ID_COLUMN,
    LABEL_COLUMN,
    NUMERIC_COLUMNS,
)

__all__ = [
    "ALL_FEATURES",
    "FEATURE_SETS",
    "MODEL_NAMES",
    "MODEL_LABELS",
    "resolve_features",
    "check_table",
    "TabularPreprocessor",
    "PerezDNNClassifier",
    "make_model",
    "fit_model",
]

#: The 42 model inputs in the order of the public table: 20 binary, 21 numeric and GCS.
ALL_FEATURES: tuple[str, ...] = tuple(c for c in COLUMNS if c not in (ID_COLUMN, LABEL_COLUMN))
assert len(ALL_FEATURES) == 42 and set(ALL_FEATURES) == (
    set(BINARY_COLUMNS) | set(NUMERIC_COLUMNS) | {GCS_COLUMN}
)

#: Named feature sets: every clinical input, GCS alone, GCS and age.
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "all": ALL_FEATURES,
    "gcs": (GCS_COLUMN,),
    "gcs_age": (GCS_COLUMN, AGE_COLUMN),
}

#: The model families, by short name.
MODEL_NAMES: tuple[str, ...] = ("dnn", "rf", "xgb", "lr", "dtc")

#: Display names as in the paper.
MODEL_LABELS: dict[str, str] = {
    "dnn": "DNN", "rf": "RF", "xgb": "XGB", "lr": "LR", "dtc": "DTC",
}


def resolve_features(features: str | Sequence[str]) -> tuple[str, ...]:
    """Turn a feature-set name or a list of column names into a tuple of column names.

    Parameters
    ----------
    features
        ``"all"`` (the 42 clinical inputs), ``"gcs"``, ``"gcs_age"`` (case-insensitive), a single
        column name, or a sequence of column names.

    Returns
    -------
    tuple of str
        The column names, in the given order.

    Raises
    ------
    ValueError
        For an empty list, a repeated column, the label column, or an unknown set name.

    Examples
    --------
    >>> resolve_features("gcs_age")
    ('GCS', 'Age')
    >>> resolve_features(["Age", "Glucose"])
    ('Age', 'Glucose')
    """
    if isinstance(features, str):
        key = features.lower().replace(" ", "_").replace("&", "").replace("__", "_")
        if key in FEATURE_SETS:
            return FEATURE_SETS[key]
        if features in ALL_FEATURES:
            return (features,)
        raise ValueError(
            f"features: unknown feature set {features!r}; use one of {sorted(FEATURE_SETS)} or a "
            "list of column names"
        )
    cols = tuple(str(c) for c in features)
    if not cols:
        raise ValueError("features: the list of columns is empty")
    dup = sorted({c for c in cols if cols.count(c) > 1})
    if dup:
        raise ValueError(f"features: columns listed more than once: {dup}")
    if LABEL_COLUMN in cols:
        raise ValueError(f"features: the label column {LABEL_COLUMN!r} cannot be an input")
    return cols


def _describe(table: pd.DataFrame, source: str | None) -> str:
    return f" in {source}" if source else ""


def check_table(
    table: pd.DataFrame,
    features: Sequence[str],
    *,
    label: bool = False,
    source: str | None = None,
) -> pd.DataFrame:
    """Validate the requested columns of a clinical table and return them as floats.

    Parameters
    ----------
    table
        A table with one row per patient (index: patient IDs).
    features
        Column names to check.
    label
        Also check the label column (0/1).
    source
        Where the table came from (a file name), used in error messages.

    Returns
    -------
    pandas.DataFrame
        The requested columns (and the label last, when ``label``) as ``float64``, same index.

    Raises
    ------
    KeyError
        When a column is absent (the message lists the missing columns).
    ValueError
        For non-numeric, missing or infinite values (naming the column, the patient and the value),
        GCS outside 3-15 or not an integer, a negative age, or a label or binary column
        (:data:`ichprog.data.schema.BINARY_COLUMNS`) with a value other than 0/1.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(table).__name__}")
    where = _describe(table, source)
    cols = list(features) + ([LABEL_COLUMN] if label else [])
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise KeyError(
            f"column(s) {missing} not found{where}; available columns: {list(table.columns)}"
        )
    out = {}
    for col in cols:
        raw = table[col]
        num = pd.to_numeric(raw, errors="coerce")
        bad = num.isna() | ~np.isfinite(num.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            pid = bad.index[np.flatnonzero(bad.to_numpy())[0]]
            value = raw.loc[bad].iloc[0]
            kind = "missing or non-numeric" if pd.isna(num.loc[bad].iloc[0]) else "infinite"
            raise ValueError(
                f"column {col!r}{where}: {kind} value {value!r} for patient {pid!r} "
                f"({int(bad.sum())} such row(s)); expected finite numbers"
            )
        values = num.astype(float)
        if col == GCS_COLUMN:
            wrong = (values < GCS_MIN) | (values > GCS_MAX) | (values != np.round(values))
            if wrong.any():
                pos = int(np.flatnonzero(wrong.to_numpy())[0])
                raise ValueError(
                    f"column {col!r}{where}: value {values.iloc[pos]!r} for patient "
                    f"{values.index[pos]!r}; expected an integer from {GCS_MIN} to {GCS_MAX}"
                )
        if col == LABEL_COLUMN or col in BINARY_COLUMNS:
            wrong = ~values.isin([0.0, 1.0])
            if wrong.any():
                pos = int(np.flatnonzero(wrong.to_numpy())[0])
                expected = ("0 (good prognosis) or 1 (poor prognosis)" if col == LABEL_COLUMN
                            else "0 or 1 (a binary column)")
                raise ValueError(
                    f"column {col!r}{where}: value {values.iloc[pos]!r} for patient "
                    f"{values.index[pos]!r}; expected {expected}"
                )
        if col == AGE_COLUMN and (values < 0).any():
            pos = int(np.flatnonzero((values < 0).to_numpy())[0])
            raise ValueError(
                f"column {col!r}{where}: value {values.iloc[pos]!r} for patient "
                f"{values.index[pos]!r}; expected a non-negative number of years"
            )
        out[col] = values
    return pd.DataFrame(out, index=table.index)


class TabularPreprocessor(TransformerMixin, BaseEstimator):
    """Select clinical columns by name and min-max scale the numeric ones.

    Binary columns (:data:`ichprog.data.schema.BINARY_COLUMNS`) pass unchanged, GCS stays an
    integer 3-15 (as in Perez et al.), and every other column is min-max scaled with the minimum
    and maximum of the data given to :meth:`fit` (the training part). Values of later data outside
    that range are *not* clipped, so they may fall outside [0, 1]. A column that is constant in the
    training part is mapped to 0.

    Parameters
    ----------
    features
        Column names or a named set (see :func:`resolve_features`).

    Attributes
    ----------
    feature_names_in_ : ndarray of str
        The selected columns, in order.
    scaled_ : ndarray of bool
        Which columns are min-max scaled.
    data_min_, data_range_ : ndarray
        Per-column minimum and range seen in :meth:`fit` (0 and 1 for unscaled columns).
    """

    def __init__(self, features: str | Sequence[str] = "all"):
        self.features = features

    def _select(self, X: Any) -> np.ndarray:
        cols = resolve_features(self.features)
        if isinstance(X, pd.DataFrame):
            return check_table(X, cols).to_numpy(dtype=float)
        arr = np.asarray(X, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != len(cols):
            raise ValueError(
                f"expected a DataFrame with columns {list(cols)} or an array of shape "
                f"(n, {len(cols)}), got shape {arr.shape}"
            )
        if not np.isfinite(arr).all():
            row, col = np.argwhere(~np.isfinite(arr))[0]
            raise ValueError(f"column {cols[col]!r}: non-finite value at row {row}")
        return arr

    def fit(self, X: Any, y: Any = None) -> TabularPreprocessor:
        """Learn the minimum and range of each numeric column from ``X`` (the training part)."""
        cols = resolve_features(self.features)
        arr = self._select(X)
        if arr.shape[0] == 0:
            raise ValueError("cannot fit the preprocessor on an empty table")
        self.feature_names_in_ = np.asarray(cols, dtype=object)
        self.n_features_in_ = len(cols)
        self.scaled_ = np.asarray([c not in BINARY_COLUMNS and c != GCS_COLUMN for c in cols])
        lo = arr.min(axis=0)
        rng = arr.max(axis=0) - lo
        rng[rng == 0] = 1.0
        self.data_min_ = np.where(self.scaled_, lo, 0.0)
        self.data_range_ = np.where(self.scaled_, rng, 1.0)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Return the selected columns as a float array, numeric ones scaled."""
        check_is_fitted(self, "data_min_")
        arr = self._select(X)
        return (arr - self.data_min_) / self.data_range_

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Undo the scaling (back to the clinical units)."""
        check_is_fitted(self, "data_min_")
        return np.asarray(X, dtype=float) * self.data_range_ + self.data_min_

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The selected column names."""
        return np.asarray(resolve_features(self.features), dtype=object)


class PerezDNNClassifier(ClassifierMixin, BaseEstimator):
    """The tabular dense network of Perez et al. (2023) as a scikit-learn classifier.

    Architecture: ``n_features -> 64 -> ReLU -> Dropout(0.3) -> 32 -> ReLU -> 16 -> ReLU ->
    BatchNorm1d -> 1`` (one logit, binary cross-entropy). Trained with Adam (learning rate 1e-3,
    weight decay 1e-3), batches of 128, up to 100 epochs; early stopping with a patience of 20
    epochs on the validation balanced accuracy (threshold 0.5); the weights of the best
    validation epoch are restored at the end. The validation balanced accuracy of a small
    validation part takes few distinct values, so epochs that tie on it are told apart by the
    validation loss: an epoch improves on the best when its balanced accuracy is higher, or equal
    with a lower loss (the patience counter restarts then too).

    The validation data are either given to :meth:`fit` (``X_val``, ``y_val``) or split off the
    training data (stratified, ``val_fraction``, seeded), so the estimator works inside
    :class:`~sklearn.pipeline.Pipeline` and :func:`~sklearn.model_selection.cross_val_score`.
    A last training batch of a single sample is merged into the previous one (BatchNorm needs two).

    Parameters
    ----------
    hidden
        Widths of the hidden layers.
    dropout
        Dropout after the first hidden layer.
    lr, weight_decay
        Adam's learning rate and weight decay.
    batch_size, max_epochs, patience
        Mini-batch size, epoch limit, and epochs without improvement before stopping.
    val_fraction
        Fraction of the training data held out for early stopping when no ``X_val`` is given.
    restore_best_weights
        Keep the weights of the best validation epoch (default) rather than the last.
    threshold
        Probability threshold of :meth:`predict` and of the validation balanced accuracy.
    random_state
        Seed for the weights, dropout, shuffling and the validation split.
    progress
        Show a progress bar over epochs.
    num_threads
        torch CPU threads while fitting and predicting (restored afterwards). The network is
        tiny, so one thread is fastest, and much faster than several on a busy machine;
        ``None`` keeps torch's setting.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The two class labels; ``classes_[1]`` is the positive class.
    best_epoch_ : int
        Zero-based epoch whose weights are kept.
    n_epochs_ : int
        Epochs run.
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``val_balanced_accuracy``.
    network_ : torch.nn.Module
        The fitted network (evaluation mode, weights converted to double precision for
        prediction).
    """

    def __init__(
        self,
        hidden: Sequence[int] = (64, 32, 16),
        dropout: float = 0.3,
        lr: float = 1e-3,
        weight_decay: float = 1e-3,
        batch_size: int = 128,
        max_epochs: int = 100,
        patience: int = 20,
        val_fraction: float = 0.1,
        restore_best_weights: bool = True,
        threshold: float = 0.5,
        random_state: int | None = 0,
        progress: bool = False,
        num_threads: int | None = 1,
    ):
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.val_fraction = val_fraction
        self.restore_best_weights = restore_best_weights
        self.threshold = threshold
        self.random_state = random_state
        self.progress = progress
        self.num_threads = num_threads

    # -- helpers ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        import torch

        before = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(int(self.num_threads))
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _build(self, n_features: int) -> Any:
        import torch.nn as nn

        widths = [int(w) for w in self.hidden]
        if len(widths) != 3:
            raise ValueError(f"hidden must list three layer widths, got {self.hidden!r}")
        return nn.Sequential(
            nn.Linear(n_features, widths[0]),
            nn.ReLU(),
            nn.Dropout(float(self.dropout)),
            nn.Linear(widths[0], widths[1]),
            nn.ReLU(),
            nn.Linear(widths[1], widths[2]),
            nn.ReLU(),
            nn.BatchNorm1d(widths[2]),
            nn.Linear(widths[2], 1),
        )

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _encode_y(self, y: Any, name: str) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {y.shape}")
        unknown = ~np.isin(y, self.classes_)
        if unknown.any():
            raise ValueError(
                f"{name}: label {y[unknown][0]!r} not among the training classes "
                f"{self.classes_.tolist()}"
            )
        return (y == self.classes_[1]).astype(np.float32)

    # -- scikit-learn API ------------------------------------------------------------------
    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> PerezDNNClassifier:
        """Train the network with early stopping on the validation balanced accuracy.

        Parameters
        ----------
        X, y
            Training inputs ``(n_samples, n_features)`` and binary labels.
        X_val, y_val
            Validation data for early stopping. When omitted, a stratified ``val_fraction`` of
            ``X`` is held out (seeded by ``random_state``).

        Returns
        -------
        self
        """
        require_extra("ichprog.tabular.PerezDNNClassifier", "image", ("torch",))
        import torch

        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        classes, counts = np.unique(y, return_counts=True)
        if classes.size < 2:
            raise ValueError(
                f"PerezDNNClassifier needs two classes in y; got one class only "
                f"({classes.tolist()}, {int(counts.sum())} samples)"
            )
        if classes.size > 2:
            raise ValueError(
                "Only binary classification is supported by PerezDNNClassifier; y has "
                f"{classes.size} classes {classes.tolist()} with counts {counts.tolist()}"
            )
        self.classes_ = classes
        y01 = self._encode_y(y, "y")
        seed = 0 if self.random_state is None else int(self.random_state)
        X, y01, Xv, yv = self._validation_data(X, y01, X_val, y_val, counts, seed)
        if X.shape[0] < 2:
            raise ValueError("PerezDNNClassifier needs at least two training samples")

        with self._threads(), torch.random.fork_rng(devices=[]):
            net, history, best_epoch = self._train(X, y01, Xv, yv, seed)
        self.network_ = net
        self.history_ = history
        self.best_epoch_ = best_epoch
        self.best_score_ = history[best_epoch]["val_balanced_accuracy"] if history else np.nan
        self.n_epochs_ = len(history)
        return self

    def _validation_data(self, X: np.ndarray, y01: np.ndarray, X_val: Any, y_val: Any,
                         counts: np.ndarray, seed: int) -> tuple[np.ndarray, ...]:
        """``(X, y01, X_val, y_val)``: the validation data given, or a stratified
        ``val_fraction`` of ``X`` held out; the validation labels must hold both classes."""
        if (X_val is None) != (y_val is None):
            raise ValueError("give both X_val and y_val, or neither")
        if X_val is None:
            if not 0 < self.val_fraction < 1:
                raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
            try:
                X, Xv, y01, yv = train_test_split(
                    X, y01, test_size=self.val_fraction, stratify=y01, random_state=seed
                )
            except ValueError as exc:
                raise ValueError(
                    f"cannot hold out a stratified validation split of {self.val_fraction} from "
                    f"{len(y01)} samples with class counts {counts.tolist()}: {exc}"
                ) from exc
        else:
            Xv = check_array(X_val, dtype=np.float64, input_name="X_val")
            if Xv.shape[1] != X.shape[1]:
                raise ValueError(
                    f"X_val has {Xv.shape[1]} features, X has {X.shape[1]}"
                )
            yv = self._encode_y(y_val, "y_val")
            if yv.shape != (Xv.shape[0],):
                raise ValueError(f"y_val must have shape ({Xv.shape[0]},), got {yv.shape}")
        if np.unique(yv).size < 2:
            raise ValueError(
                f"the validation data hold one class only ({len(yv)} samples); the balanced "
                "accuracy used for early stopping needs both"
            )
        return X, y01, Xv, yv

    def _batch_bounds(self, n: int) -> list[tuple[int, int]]:
        """``(start, stop)`` of every mini-batch of ``n`` samples (no batch of one sample)."""
        bs = max(2, int(self.batch_size))
        starts = list(range(0, n, bs))
        if n - starts[-1] == 1 and len(starts) > 1:
            starts.pop()  # merge a single trailing sample into the previous batch
        return [(s, starts[i + 1] if i + 1 < len(starts) else n) for i, s in enumerate(starts)]

    def _train(self, X: np.ndarray, y01: np.ndarray, Xv: np.ndarray, yv: np.ndarray,
               seed: int) -> tuple[Any, list[dict[str, float]], int]:
        """Train from a seeded initialisation with early stopping on the validation balanced
        accuracy (ties: lower validation loss); returns the network (double precision,
        evaluation mode), the history and the kept epoch."""
        import torch

        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        net = self._build(X.shape[1])
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        xt = torch.as_tensor(X, dtype=torch.float32)
        yt = torch.as_tensor(y01, dtype=torch.float32)
        xv = torch.as_tensor(Xv, dtype=torch.float32)
        yvt = torch.as_tensor(yv, dtype=torch.float32)
        n = xt.shape[0]
        bounds = self._batch_bounds(n)

        best_score, best_loss = -np.inf, np.inf
        best_state: dict[str, Any] | None = None
        best_epoch = -1
        stale = 0
        history: list[dict[str, float]] = []
        epochs = tqdm(range(int(self.max_epochs)), desc="DNN epochs", disable=not self.progress,
                      leave=False)
        for epoch in epochs:
            net.train()
            order = torch.randperm(n, generator=gen)
            total = 0.0
            for a, b in bounds:
                idx = order[a:b]
                opt.zero_grad()
                loss = loss_fn(net(xt[idx]).squeeze(1), yt[idx])
                loss.backward()
                opt.step()
                total += float(loss.item()) * (b - a)
            net.eval()
            with torch.no_grad():
                logits = net(xv).squeeze(1)
                vloss = float(loss_fn(logits, yvt).item())
                pv = torch.sigmoid(logits).numpy()
            score = float(balanced_accuracy_score(yv, (pv >= self.threshold).astype(float)))
            history.append({"epoch": epoch, "train_loss": total / n, "val_loss": vloss,
                            "val_balanced_accuracy": score})
            better = score > best_score or (score == best_score and vloss < best_loss)
            if better:
                best_score, best_loss, best_epoch, stale = score, vloss, epoch, 0
                best_state = copy.deepcopy(net.state_dict())
            else:
                stale += 1
            if stale >= int(self.patience):
                break
        if self.restore_best_weights and best_state is not None:
            net.load_state_dict(best_state)
        else:
            best_epoch = len(history) - 1
        # predict in double precision (exact copy of the float32 weights), so that a
        # patient's output does not depend on which other patients share the batch
        return net.double().eval(), history, best_epoch

    def decision_function(self, X: Any) -> np.ndarray:
        """The network's logit for the positive class, shape ``(n_samples,)``."""
        import torch

        check_is_fitted(self, "network_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        with self._threads(), torch.no_grad():
            out = self.network_(torch.as_tensor(X, dtype=torch.float64)).squeeze(1)
        return out.numpy().astype(float)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape ``(n_samples, 2)``, columns in the order of ``classes_``."""
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """Class labels: ``classes_[1]`` where the probability reaches ``threshold``."""
        p = self.predict_proba(X)[:, 1]
        return self.classes_[(p >= self.threshold).astype(int)]


def make_model(
    name: str,
    features: str | Sequence[str] = "all",
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
) -> Pipeline:
    """A seeded, unfitted tabular model: the preprocessor followed by one estimator.

    Parameters
    ----------
    name
        ``"dnn"`` (:class:`PerezDNNClassifier`), ``"rf"``
        (:class:`~sklearn.ensemble.RandomForestClassifier`), ``"xgb"``
        (:class:`xgboost.XGBClassifier`), ``"lr"``
        (:class:`~sklearn.linear_model.LogisticRegression`) or ``"dtc"``
        (:class:`~sklearn.tree.DecisionTreeClassifier`).
    features
        Columns or a named set (see :func:`resolve_features`).
    seed
        ``random_state`` of the estimator.
    params
        Extra keyword arguments for the estimator (otherwise library defaults).

    Returns
    -------
    sklearn.pipeline.Pipeline
        Steps ``"prep"`` (:class:`TabularPreprocessor`) and ``"model"``.
    """
    key = str(name).lower()
    kw = dict(params or {})
    if key == "dnn":
        est: Any = PerezDNNClassifier(random_state=seed, **kw)
    elif key == "rf":
        from sklearn.ensemble import RandomForestClassifier

        est = RandomForestClassifier(random_state=seed, **kw)
    elif key == "xgb":
        from xgboost import XGBClassifier

        est = XGBClassifier(random_state=seed, **kw)
    elif key == "lr":
        from sklearn.linear_model import LogisticRegression

        est = LogisticRegression(random_state=seed, **kw)
    elif key == "dtc":
        from sklearn.tree import DecisionTreeClassifier

        est = DecisionTreeClassifier(random_state=seed, **kw)
    else:
        raise ValueError(f"model must be one of {MODEL_NAMES}, got {name!r}")
    cols = resolve_features(features)
    spec: str | tuple[str, ...] = features if isinstance(features, str) else cols
    return Pipeline([("prep", TabularPreprocessor(spec)), ("model", est)])


def fit_model(
    name: str,
    table: pd.DataFrame,
    features: str | Sequence[str] = "all",
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    balance: bool = True,
) -> Pipeline:
    """Fit a model family on a whole table the way the cross-validation fits a fold.

    The minority class is oversampled (:func:`ichprog.data.oversample`). For the dense network a
    stratified validation part (its ``val_fraction``, default 10 %) is split off *before* the
    oversampling, so that no copy of a validation patient is trained on.

    Parameters
    ----------
    name
        Model family (see :func:`make_model`).
    table
        Clinical table with the features and ``Label (poor_prognosis)``, one row per patient.
    features, seed, params
        See :func:`make_model`; ``seed`` also seeds the split and the oversampling.
    balance
        Oversample the minority class.

    Returns
    -------
    sklearn.pipeline.Pipeline
        The fitted model, with two extra attributes: ``train_ids_`` (the balanced training IDs,
        repeated where oversampled) and ``val_ids_`` (the dense network's validation IDs; empty
        for the other families).
    """
    from ichprog.data import oversample

    cols = resolve_features(features)
    checked = check_table(table, cols, label=True)
    frame = table.copy()
    frame.index = pd.Index([str(i) for i in frame.index], name=frame.index.name)
    if frame.index.has_duplicates:
        raise ValueError("patient IDs repeat in the table")
    y = pd.Series(checked[LABEL_COLUMN].to_numpy(dtype=int), index=frame.index)
    pipe = make_model(name, cols, seed=seed, params=params)
    ids = list(frame.index)
    val: list[str] = []
    if name.lower() == "dnn":
        fraction = float(pipe["model"].val_fraction)
        try:
            ids, val = train_test_split(ids, test_size=fraction, stratify=y.to_numpy(),
                                        random_state=seed)
        except ValueError as exc:
            raise ValueError(f"cannot split a stratified validation part of {fraction} off "
                             f"{len(ids)} patients: {exc}") from exc
    if balance:
        ids = oversample(ids, y.loc[ids].to_numpy(), seed=seed)
    if val:
        prep = pipe["prep"].fit(frame.loc[ids])
        pipe["model"].fit(prep.transform(frame.loc[ids]), y.loc[ids].to_numpy(),
                          X_val=prep.transform(frame.loc[val]), y_val=y.loc[val].to_numpy())
    else:
        pipe.fit(frame.loc[ids], y.loc[ids].to_numpy())
    pipe.train_ids_ = list(ids)
    pipe.val_ids_ = list(val)
    return pipe
