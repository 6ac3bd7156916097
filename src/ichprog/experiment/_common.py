"""What the experiments share: resolving a recipe against explicit arguments, the validation
split, the datasets of a training part, and the prediction tables (:func:`prediction_columns`,
:func:`long_predictions`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ichprog._results import check_predictions, long_frame
from ichprog._util import read_csv_verified
from ichprog.constants import ID_COLUMN, PREDICTION_COLUMNS
from ichprog.tasks import Preset, Task, as_preset


def _read_ids_csv(path: Path) -> pd.DataFrame:
    return read_csv_verified(path, dtype={ID_COLUMN: str, "id": str})


def prediction_columns(task: Task) -> list[str]:
    """Names of a task's probability columns in prediction tables.

    ``<task>_prob`` for binary tasks (P(class 1)), ``<task>_prob_gt0``, ``<task>_prob_gt1``, ...
    for the cumulative outputs ``P(y > j)`` of ordinal tasks, ``<task>_value`` for continuous
    ones.
    """
    if task.kind == "ordinal":
        return [f"{task.name}_prob_gt{j}" for j in range(task.n_outputs)]
    if task.kind == "continuous":
        return [f"{task.name}_value"]
    return [f"{task.name}_prob"]


def _probs_from_frame(df: pd.DataFrame, task: Task) -> np.ndarray:
    cols = prediction_columns(task)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"prediction table lacks column(s) {missing} of task {task.name!r}")
    return df[cols].to_numpy(dtype=float)


def _prediction_frame(ids: Sequence[str], probs: Mapping[str, np.ndarray],
                      tasks: Sequence[Task], threshold: float = 0.5,
                      truth: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    data: dict[str, Any] = {ID_COLUMN: [str(i) for i in ids]}
    for t in tasks:
        p = np.asarray(probs[t.name], dtype=float).reshape(len(ids), -1)
        if truth is not None:
            data[f"{t.name}_true"] = np.asarray(truth[t.name])
        for j, col in enumerate(prediction_columns(t)):
            data[col] = p[:, j]
        data[f"{t.name}_pred"] = t.decode(p, threshold=threshold) if t.kind != "continuous" \
            else p[:, 0]
    return pd.DataFrame(data)


def long_predictions(table: Any, tasks: Preset | Sequence[Task] | Task | str | None = None,
                     model: str | None = None) -> pd.DataFrame:
    """Any prediction table of the library in its one long form, ``model, fold, PatientID, task,
    y_true, score, pred`` (:data:`~ichprog.constants.PREDICTION_COLUMNS`).

    Parameters
    ----------
    table
        One of:

        * a result (anything with ``long_predictions``, e.g. a
          :class:`~ichprog.experiment.CVResult`): its long table;
        * a long table: checked, with the patient column of older files (``id``, ``patient``)
          renamed to ``PatientID``;
        * a tabular table (``y_true``, ``y_prob``, ``y_pred``, as in
          :attr:`ichprog.tabular.TabularCVResult.predictions`): task ``"prognosis"``;
        * an image cross-validation table (``<task>_true``, the probability columns of
          :func:`prediction_columns`, ``<task>_pred``, as in
          :attr:`~ichprog.experiment.CVResult.predictions`): needs ``tasks``.
    tasks
        The tasks of an image cross-validation table (a preset, its name, a task or a list).
    model
        Model name where the table has no ``model`` column.

    Returns
    -------
    pandas.DataFrame
        ``score`` is :meth:`Task.score <ichprog.tasks.Task.score>` of the probabilities
        (P(class 1) of a binary task, the expected class of an ordinal one) and ``pred`` the
        decided class. Rows per task, in the table's order; columns other than the schema's
        (e.g. ``repeat``) follow it.
    """
    if not isinstance(table, pd.DataFrame):
        if hasattr(table, "long_predictions"):
            return table.long_predictions
        raise TypeError(f"expected a prediction table or a result, got {type(table).__name__}")
    df = table if "model" in table.columns else table.assign(model=model or "model")
    if "fold" not in df.columns:
        df = df.assign(fold=0)
    df = df.rename(columns={c: ID_COLUMN for c in ("id", "patient") if c in df.columns
                            and ID_COLUMN not in df.columns})
    if "task" in df.columns:
        return check_predictions(df)
    if {"y_true", "y_prob"} <= set(df.columns):
        pred = df["y_pred"] if "y_pred" in df.columns else (df["y_prob"] >= 0.5).astype(int)
        parts = [long_frame(df["model"].to_numpy(), df["fold"].to_numpy(), df[ID_COLUMN],
                            "prognosis", df["y_true"], df["y_prob"], pred)]
        extra = []
    else:
        if tasks is None:
            raise ValueError("an image cross-validation table (<task>_true, <task>_prob..., "
                             "<task>_pred) needs tasks= to be converted")
        preset = as_preset(tasks)
        parts = [long_frame(df["model"].to_numpy(), df["fold"].to_numpy(), df[ID_COLUMN], t.name,
                            df[f"{t.name}_true"], t.score(_probs_from_frame(df, t)),
                            df[f"{t.name}_pred"]) for t in preset]
        extra = [f"{t.name}_true" for t in preset] + [f"{t.name}_pred" for t in preset] + [
            c for t in preset for c in prediction_columns(t)]
    known = {*PREDICTION_COLUMNS, "y_true", "y_prob", "y_pred", *extra}
    others = [c for c in df.columns if c not in known]
    out = pd.concat([p.assign(**{c: df[c].to_numpy() for c in others}) for p in parts],
                    ignore_index=True)
    return check_predictions(out)


def _resolve_preprocess(preprocess: Any) -> Any:
    from ichprog.data import PreprocessConfig

    if preprocess is None:
        return PreprocessConfig()
    if isinstance(preprocess, Mapping):
        return PreprocessConfig.from_dict(dict(preprocess))
    if not isinstance(preprocess, PreprocessConfig):
        raise TypeError(f"preprocess must be a PreprocessConfig, a dict or None, got "
                        f"{type(preprocess).__name__}")
    return preprocess


def _resolve_config(config: Any, seed: int, progress: bool) -> Any:
    from ichprog.training import TrainConfig

    if config is None:
        return TrainConfig(seed=seed, progress=progress)
    if isinstance(config, Mapping):
        return TrainConfig.from_dict(dict(config))
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, a dict or None, got {type(config).__name__}")
    return config


def _apply_recipe(recipe: Any, tasks: Any, trunk: str | None, preprocess: Any, config: Any,
                  augment: Any, model_kwargs: Mapping[str, Any] | None, seed: int,
                  progress: bool) -> tuple[Preset, Any, Any, Any, dict[str, Any]]:
    """Resolve a recipe against the arguments given explicitly (which win)."""
    from ichprog.recipes import as_recipe

    rec = as_recipe(recipe)
    preset = as_preset(tasks)
    preset = as_preset(preset, trunk=trunk or rec.trunk_for(preset.trunk))
    preprocess = rec.preprocess_config() if preprocess is None else _resolve_preprocess(preprocess)
    config = (rec.train_config(seed=seed, progress=progress) if config is None
              else _resolve_config(config, seed, progress))
    augment = rec.augment if augment is None else augment
    kwargs = dict(model_kwargs or {})
    if rec.dropout is not None:
        kwargs.setdefault("dropout", rec.dropout)
    return preset, preprocess, config, augment, kwargs


def _val_fraction(recipe: Any, val_fraction: float | None) -> float:
    """The validation share: the one given, else the recipe's."""
    from ichprog.recipes import as_recipe

    return float(as_recipe(recipe).val_fraction if val_fraction is None else val_fraction)


def _loss_targets(cohort: Any, preset: Preset, ids: Sequence[str]) -> tuple[dict[str, np.ndarray],
                                                                             dict[str, np.ndarray]]:
    """Class indices and loss targets for ``ids`` (which may repeat, after oversampling)."""
    unique = list(dict.fromkeys(ids))
    classes_u = cohort.targets(preset, ids=unique)
    pos = {pid: i for i, pid in enumerate(unique)}
    idx = np.array([pos[i] for i in ids], dtype=np.int64)
    classes = {k: np.asarray(v)[idx] for k, v in classes_u.items()}
    return classes, {t.name: t.loss_targets(classes[t.name]) for t in preset}


def _split_validation(cohort: Any, preset: Preset, ids: Sequence[str], val_fraction: float,
                      seed: int) -> tuple[list[str], list[str]]:
    from sklearn.model_selection import train_test_split

    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if val_fraction == 0.0:
        return list(ids), []
    primary = preset.primary
    y = cohort.targets([primary], ids=ids)[primary.name]
    strat = y if primary.kind != "continuous" else None
    try:
        tr, va = train_test_split(list(ids), test_size=val_fraction, stratify=strat,
                                  random_state=seed % 2**32)
    except ValueError as exc:
        raise ValueError(f"cannot split {len(ids)} patients into training and a stratified "
                         f"{val_fraction:.0%} validation part on task {primary.name!r}: {exc}. "
                         "Pass val_ids explicitly or use a larger cohort.") from exc
    order = {pid: i for i, pid in enumerate(ids)}
    return sorted(tr, key=order.__getitem__), sorted(va, key=order.__getitem__)


def _datasets(cohort: Any, preset: Preset, train_ids: Sequence[str], val_ids: Sequence[str],
              preprocess: Any, cache_dir: Any, augment: Any, oversample: bool, seed: int,
              preload: bool) -> tuple[Any, Any, list[str]]:
    from ichprog.data import CTDataset
    from ichprog.data import oversample as _oversample

    primary = preset.primary
    train_list = [str(i) for i in train_ids]
    if oversample and primary.kind != "continuous":
        y = cohort.targets([primary], ids=train_list)[primary.name]
        train_list = _oversample(train_list, y, seed=seed)
    _, tr_targets = _loss_targets(cohort, preset, train_list)
    _, va_targets = _loss_targets(cohort, preset, [str(i) for i in val_ids])
    train_ds = CTDataset(cohort, train_list, preprocess, targets=tr_targets, augment=augment,
                         cache_dir=cache_dir, seed=seed, preload=preload)
    val_ds = CTDataset(cohort, [str(i) for i in val_ids], preprocess, targets=va_targets,
                       augment=False, cache_dir=cache_dir, seed=seed, preload=preload)
    return train_ds, val_ds, train_list
