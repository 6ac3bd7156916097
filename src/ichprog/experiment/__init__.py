"""Experiments: one model for a notebook, the paper's cross-validation, its ablations.

* :func:`fit_multitask` trains one image model on a cohort and returns a :class:`FittedModel`
  (``predict``, ``predict_proba``, ``save`` / ``load``).
* :func:`cross_validate` runs the paper's protocol (stratified k folds, a stratified validation
  part inside each training part, oversampling and augmentation of the training part only) and
  returns a :class:`CVResult` with the per-patient predictions of every fold, the metrics of every
  task (``metrics()``, ``summary()``), bootstrap intervals (``bootstrap()``) and the comparison
  with external readers (``compare_readers()``).
* :func:`ablation` runs :func:`ichprog.tasks.ablations` of a preset through
  :func:`cross_validate` on the same folds (the data of the paper's Fig. 2) and plots it.

Seeds
-----
One ``seed`` fixes everything: the folds (:func:`ichprog.data.make_splits`), and for fold ``k``
a seed derived from ``(seed, k)`` that initialises the network and seeds oversampling,
augmentation and the training loop. The same seed on the same hardware gives the same numbers.

Output folder of :func:`cross_validate`
---------------------------------------
::

    out_dir/
      config.json          preset, training and pre-processing settings, seeds, package versions
      splits.json          the folds (patient IDs), see ichprog.data.Splits
      predictions.csv      one row per test patient and fold: true classes, probabilities,
                           decoded classes of every task
      metrics.csv          the tidy metrics table (model, fold, task, metric, value)
      history.csv          training history of every fold (one row per fold and epoch)
      fold_00/
        fold.json          the fold's configuration hash, seed, best epoch and status
        predictions.csv    the fold's test predictions
        model/             the fold's FittedModel (model.safetensors, fitted.json, history.csv,
                           history.png)
        checkpoints/       training checkpoints while the fold runs (kept with
                           keep_checkpoints=True); an interrupted fold resumes from them
      fold_01/ ...

A fold whose ``fold.json`` and ``predictions.csv`` exist with the same configuration is not
trained again (``CVResult.reused_folds`` lists it); a fold with another configuration raises
unless ``overwrite=True``. Tables and figures can be regenerated from the CSV files alone
(:meth:`CVResult.load`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ichprog._util import (
    atomic_write,
    derive_seed,
    package_versions,
    stable_hash,
    write_csv,
    write_json,
)
from ichprog.constants import ID_COLUMN
from ichprog.tasks import MT_ORD_GCS_BIN_AGE, Preset, Task, ablations, as_preset

__all__ = [
    "FittedModel",
    "CVResult",
    "AblationResult",
    "fit_multitask",
    "cross_validate",
    "ablation",
    "prediction_columns",
    "check_claims",
    "ClaimsResult",
    "reference_predictions",
]

FITTED_FORMAT = "ichprog-fitted-model/1"
CV_FORMAT = "ichprog-cv/1"


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _read_ids_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={ID_COLUMN: str, "id": str})


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

    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
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


# ---------------------------------------------------------------------------------------------
# one model
# ---------------------------------------------------------------------------------------------
class FittedModel:
    """A trained multi-task image model with its pre-processing settings.

    Parameters
    ----------
    model
        The :class:`~ichprog.models.MultiTaskNet` (best epoch's weights).
    preprocess
        The :class:`~ichprog.data.PreprocessConfig` its inputs were made with.
    config
        The :class:`~ichprog.training.TrainConfig` it was trained with.
    history
        Per-epoch training history (see :class:`~ichprog.training.TrainResult`).
    info
        Seeds, patient IDs of the training and validation parts, best epoch, package versions.

    Notes
    -----
    :meth:`predict` and :meth:`predict_proba` accept

    * file paths (``str`` or :class:`~pathlib.Path`): each scan is read and pre-processed with
      :attr:`preprocess` (:func:`ichprog.data.preprocess_volume`);
    * numpy arrays: taken as **already pre-processed** ``(D, H, W)`` volumes of shape
      ``preprocess.shape`` with values in ``[0, 1]`` (a ``(N, D, H, W)`` stack is N volumes).
      Arrays in Hounsfield units are refused; pass the file or pre-process them first;
    * a :class:`~ichprog.data.Cohort`: every patient's scan, pre-processed (rows are its IDs);
    * a list mixing paths and arrays.
    """

    def __init__(self, model: Any, preprocess: Any, config: Any, history: pd.DataFrame | None = None,
                 info: Mapping[str, Any] | None = None):
        self.model = model
        self.preprocess = preprocess
        self.config = config
        self.history = history if history is not None else pd.DataFrame()
        self.info: dict[str, Any] = dict(info or {})

    # -- description ------------------------------------------------------------------------
    @property
    def preset(self) -> Preset:
        """The tasks (and trunk) of the model."""
        return self.model.preset

    @property
    def tasks(self) -> tuple[Task, ...]:
        return self.model.tasks

    def __repr__(self) -> str:
        return (f"FittedModel(preset={self.preset.name!r}, trunk={self.model.trunk_name!r}, "
                f"tasks={self.preset.task_names}, input={tuple(self.preprocess.shape)}, "
                f"best_epoch={self.info.get('best_epoch')})")

    # -- inputs -----------------------------------------------------------------------------
    def _dataset(self, inputs: Any, cache_dir: Any = False) -> Any:
        from ichprog.data import Cohort, CTDataset
        from ichprog.training import ArrayDataset

        if isinstance(inputs, Cohort):
            return CTDataset(inputs, inputs.ids, self.preprocess, cache_dir=cache_dir)
        if isinstance(inputs, str | Path):
            inputs = [inputs]
        elif isinstance(inputs, np.ndarray):
            arr = inputs
            if arr.ndim == 5 and arr.shape[1] == 1:
                arr = arr[:, 0]
            inputs = [arr] if arr.ndim == 3 else list(arr)
        elif hasattr(inputs, "detach") and hasattr(inputs, "cpu"):  # a torch tensor
            return self._dataset(inputs.detach().cpu().numpy(), cache_dir)
        items = list(inputs)
        if not items:
            raise ValueError("no input to predict: pass paths, arrays or a Cohort")
        vols: list[np.ndarray] = []
        ids: list[str] = []
        for i, x in enumerate(items):
            if isinstance(x, str | Path):
                vols.append(self._load_path(Path(x)))
                ids.append(str(x))
            else:
                vols.append(self._check_array(np.asarray(x), i))
                ids.append(str(i))
        return ArrayDataset(vols, ids=ids)

    def _load_path(self, path: Path) -> np.ndarray:
        from ichprog.data import load_volume, preprocess_volume

        if not path.is_file():
            raise FileNotFoundError(f"no scan at {path}")
        array, affine = load_volume(path)
        try:
            return preprocess_volume(array, affine, self.preprocess)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc

    def _check_array(self, arr: np.ndarray, i: int) -> np.ndarray:
        expected = tuple(self.preprocess.shape)
        if arr.ndim != 3:
            raise ValueError(f"input {i}: expected a pre-processed (D, H, W) volume, got shape "
                             f"{arr.shape}")
        if tuple(arr.shape) != expected:
            raise ValueError(f"input {i}: volume of shape {arr.shape}, but the model was trained "
                             f"on pre-processed volumes of shape {expected}; pass the file path "
                             "or run ichprog.data.preprocess_volume with model.preprocess")
        if not np.isfinite(arr).all():
            raise ValueError(f"input {i}: the volume holds NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -0.5 or hi > 1.5:
            raise ValueError(f"input {i}: values range from {lo:g} to {hi:g}, not the [0, 1] of a "
                             "pre-processed volume (Hounsfield units?); pass the file path or run "
                             "ichprog.data.preprocess_volume first")
        return arr.astype(np.float32, copy=False)

    # -- prediction -------------------------------------------------------------------------
    def predict_proba(self, inputs: Any, batch_size: int | None = None, device: str | None = None,
                      precision: str | None = None, progress: bool = False,
                      cache_dir: Any = False) -> dict[str, np.ndarray]:
        """Per-task probabilities.

        Parameters
        ----------
        inputs
            Paths, pre-processed arrays or a Cohort (see the class notes).
        batch_size, device, precision
            Default: those of the training configuration.
        progress
            Show a progress bar.
        cache_dir
            Volume cache for a Cohort's scans (``False``: none).

        Returns
        -------
        dict
            ``{task name: (n, n_outputs)}``: P(class 1) of binary tasks, the cumulative
            ``P(y > j)`` of ordinal tasks.
        """
        ds = self._dataset(inputs, cache_dir)
        return self._predict_ds(ds, batch_size=batch_size, device=device, precision=precision,
                                progress=progress)

    def predict(self, inputs: Any, threshold: float = 0.5, **kwargs: Any) -> pd.DataFrame:
        """Probabilities and decoded classes of every task, one row per input.

        Parameters
        ----------
        inputs
            Paths, pre-processed arrays or a Cohort (see the class notes).
        threshold
            Decision threshold (binary tasks; each cumulative output of ordinal tasks).
        **kwargs
            Passed to :meth:`predict_proba`.

        Returns
        -------
        pandas.DataFrame
            Indexed by input (the path, the array's position or the patient ID), with the
            probability columns of :func:`prediction_columns` and ``<task>_pred`` (decoded
            class) for every task.
        """
        ds = self._dataset(inputs, kwargs.pop("cache_dir", False))
        probs = self._predict_ds(ds, **kwargs)
        frame = _prediction_frame(ds.ids, probs, self.tasks, threshold=threshold)
        return frame.rename(columns={ID_COLUMN: "input"}).set_index("input")

    def _predict_ds(self, ds: Any, batch_size: int | None = None, device: str | None = None,
                    precision: str | None = None, progress: bool = False) -> dict[str, np.ndarray]:
        from ichprog.training import predict_proba

        return predict_proba(self.model, ds,
                             batch_size=batch_size or self.config.eval_batch_size
                             or self.config.batch_size,
                             device=device or self.config.device,
                             precision=precision or self.config.precision,
                             channels_last=self.config.channels_last, progress=progress)

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``model.safetensors``, ``fitted.json`` and ``history.csv`` (no pickle).

        Returns
        -------
        pathlib.Path
            The folder.
        """
        from ichprog.training import save_weights

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        save_weights(self.model, out / "model.safetensors")
        write_csv(self.history, out / "history.csv")
        write_json({
            "format": FITTED_FORMAT,
            "model": self.model.config(),
            "preprocess": self.preprocess.to_dict(),
            "train_config": self.config.to_dict(),
            "info": self.info,
            "versions": package_versions(),
        }, out / "fitted.json")
        return out

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> FittedModel:
        """Load a model written by :meth:`save`.

        Raises ``FileNotFoundError`` / ``ValueError`` naming the file when the folder does not
        hold a saved model.
        """
        from ichprog.data import PreprocessConfig
        from ichprog.models import MultiTaskNet
        from ichprog.training import TrainConfig, load_weights

        d = Path(directory)
        meta_path = d / "fitted.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"no fitted.json in {d}: not a saved FittedModel")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != FITTED_FORMAT:
            raise ValueError(f"{meta_path}: format {meta.get('format')!r}, expected "
                             f"{FITTED_FORMAT!r}")
        model = MultiTaskNet.from_config(meta["model"])
        load_weights(model, d / "model.safetensors")
        model.to(device).eval()
        history = pd.read_csv(d / "history.csv") if (d / "history.csv").is_file() and \
            (d / "history.csv").stat().st_size > 1 else pd.DataFrame()
        return cls(model, PreprocessConfig.from_dict(meta["preprocess"]),
                   TrainConfig.from_dict(meta["train_config"]), history, meta.get("info", {}))


def fit_multitask(cohort: Any, tasks: Preset | Sequence[Task] | Task | str = MT_ORD_GCS_BIN_AGE,
                  trunk: str | None = None, *, recipe: Any = None, preprocess: Any = None,
                  config: Any = None,
                  train_ids: Sequence[str] | None = None, val_ids: Sequence[str] | None = None,
                  val_fraction: float = 0.1, seed: int = 0, out_dir: str | Path | None = None,
                  cache_dir: Any = None, augment: Any = None, oversample: bool = True,
                  model_kwargs: Mapping[str, Any] | None = None, preload: bool = False,
                  keep_checkpoints: bool = True, overwrite: bool = False,
                  progress: bool = True) -> FittedModel:
    """Train one multi-task image model on a cohort (by default with the paper's recipe).

    Parameters
    ----------
    cohort
        A :class:`~ichprog.data.Cohort` with images.
    tasks
        A preset, its name, a task or a list of tasks (default: MT (ord GCS, bin age)).
    trunk
        Trunk name; default the recipe's, else the preset's (``"densenet121"`` or
        ``"perez2023"``).
    recipe
        A :class:`~ichprog.recipes.Recipe` or its name: ``"paper"`` (default; GPU-sized) or
        ``"cpu"`` (learns in minutes on a CPU). It supplies ``preprocess``, ``config``, the trunk,
        its dropout and ``augment`` wherever those are not given.
    preprocess
        :class:`~ichprog.data.PreprocessConfig` (default: the recipe's; the paper's is
        40 x 301 x 301).
    config
        :class:`~ichprog.training.TrainConfig` (default: the recipe's, seeded with ``seed``).
    train_ids, val_ids
        Patients to train on and to monitor early stopping on. Default: all patients, with a
        stratified ``val_fraction`` of them (on the primary task) held out for validation.
    val_fraction
        Share held out for validation when ``val_ids`` is not given.
    seed
        Seeds the validation split, the network's initialisation, oversampling and augmentation.
    out_dir
        Where to write the model (``model/``) and training checkpoints (``checkpoints/``); an
        interrupted call resumes there. ``None``: nothing is written.
    cache_dir
        Volume cache folder (see :class:`~ichprog.data.VolumeCache`).
    augment
        Augment the training part (``True``: the paper's augmentations; an
        :class:`~ichprog.data.Augment`; ``False``; ``None``: the recipe's).
    oversample
        Randomly oversample the minority class of the primary task in the training part.
    model_kwargs
        Extra :class:`~ichprog.models.MultiTaskNet` arguments (``dropout``, ``trunk_kwargs``).
    preload
        Keep all volumes in memory (small cohorts).
    keep_checkpoints
        Keep ``out_dir/checkpoints`` after training.
    overwrite
        Replace a run with a different configuration in ``out_dir`` instead of raising.
    progress
        Progress bars.

    Returns
    -------
    FittedModel
    """
    from ichprog.models import MultiTaskNet
    from ichprog.training import seed_everything, train

    preset, preprocess, config, augment, model_kwargs = _apply_recipe(
        recipe, tasks, trunk, preprocess, config, augment, model_kwargs, seed, progress)
    ids = [str(i) for i in (train_ids if train_ids is not None else cohort.ids)]
    if val_ids is None:
        ids, val_list = _split_validation(cohort, preset, ids, val_fraction, seed)
    else:
        val_list = [str(i) for i in val_ids]
        both = sorted(set(ids) & set(val_list))
        if both:
            raise ValueError(f"patients in both the training and the validation part: {both[:10]}")
    train_ds, val_ds, train_list = _datasets(cohort, preset, ids, val_list, preprocess, cache_dir,
                                             augment, oversample, derive_seed(seed, 1), preload)
    seed_everything(derive_seed(seed, 2))
    model = MultiTaskNet(preset, **dict(model_kwargs or {}))
    out = Path(out_dir) if out_dir is not None else None
    ckpt = out / "checkpoints" if out is not None else None
    result = train(model, train_ds, val_ds, config, out_dir=ckpt, overwrite=overwrite)
    info = {
        "seed": int(seed),
        "train_ids": ids,
        "val_ids": val_list,
        "n_train_after_oversampling": len(train_list),
        "oversample": bool(oversample),
        "augment": augment if isinstance(augment, bool) else dataclasses.asdict(augment),
        "best_epoch": result.best_epoch,
        "best_score": result.best_score,
        "epochs_run": result.epochs_run,
        "stop_reason": result.stop_reason,
        "device": result.device,
        "precision": result.precision,
        "config_hash": result.config_hash,
        "reused": result.reused,
        "resumed_from": result.resumed_from,
    }
    fitted = FittedModel(result.model, preprocess, config, result.history, info)
    if out is not None:
        fitted.save(out / "model")
        if len(result.history):
            import matplotlib.pyplot as plt

            plt.close(result.plot_history(out / "model" / "history.png"))
        if not keep_checkpoints and ckpt is not None:
            shutil.rmtree(ckpt, ignore_errors=True)
    return fitted


# ---------------------------------------------------------------------------------------------
# cross-validation
# ---------------------------------------------------------------------------------------------
@dataclass
class CVResult:
    """Per-fold, per-patient predictions of a cross-validation, and everything derived from them.

    Attributes
    ----------
    predictions
        One row per fold and test patient: ``model``, ``fold``, ``PatientID`` and, for every
        task, ``<task>_true``, the probability columns of :func:`prediction_columns` and
        ``<task>_pred``.
    preset
        The tasks (and trunk).
    name
        Model name in the tables (default: the preset's label).
    history
        Training history of every fold (a ``fold`` column added).
    config
        Settings of the run (as written to ``config.json``).
    reused_folds
        Folds read back from ``out_dir`` instead of being trained.
    out_dir
        The output folder, if any.
    threshold
        Decision threshold of the metrics.
    """

    predictions: pd.DataFrame
    preset: Preset
    name: str
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    config: dict[str, Any] = field(default_factory=dict)
    reused_folds: list[int] = field(default_factory=list)
    out_dir: Path | None = None
    threshold: float = 0.5

    @property
    def folds(self) -> list[int]:
        """Fold indices present in the predictions."""
        return sorted(int(f) for f in self.predictions["fold"].unique())

    def __repr__(self) -> str:
        return (f"CVResult(name={self.name!r}, tasks={self.preset.task_names}, "
                f"folds={len(self.folds)}, patients={len(self.predictions)}, "
                f"reused_folds={self.reused_folds})")

    def _fold_frame(self, fold: int | None) -> pd.DataFrame:
        if fold is None:
            return self.predictions
        df = self.predictions[self.predictions["fold"] == fold]
        if df.empty:
            raise KeyError(f"no predictions for fold {fold}; folds: {self.folds}")
        return df

    def metrics(self) -> pd.DataFrame:
        """The tidy metrics table (``model, fold, task, metric, value``) of every fold and task:
        binary metrics for binary tasks, ordinal metrics for ordinal ones (``task.metrics``)."""
        from ichprog.metrics import tidy

        per_fold: dict[int, dict[str, dict[str, float]]] = {}
        for fold in self.folds:
            df = self._fold_frame(fold)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                per_fold[fold] = {
                    t.name: t.metrics(df[f"{t.name}_true"].to_numpy(), _probs_from_frame(df, t),
                                      threshold=self.threshold)
                    for t in self.preset
                }
        return tidy(per_fold, model=self.name)

    def summary(self, decimals: int = 2, skipna: bool = False) -> pd.DataFrame:
        """Mean ± SD over folds (SD with ``ddof=1``), like the paper's Tables 3-4.

        See :func:`ichprog.metrics.summarize`.
        """
        from ichprog.metrics import summarize

        return summarize(self.metrics(), decimals=decimals, skipna=skipna)

    def bootstrap(self, fold: int | None = 0, n_resamples: int = 1000, ci: float = 0.95,
                  seed: int = 0, tasks: Sequence[str] | None = None,
                  ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Percentile bootstrap intervals of every metric on one fold's test set (Table 2).

        Parameters
        ----------
        fold
            The fold (``None``: all test predictions pooled).
        n_resamples, ci, seed
            See :func:`ichprog.metrics.bootstrap_ci` (1000 resamples of the test-set size).
        tasks
            Task names (default all).
        ids
            Restrict to these patients (e.g. the ones external readers labelled).

        Returns
        -------
        pandas.DataFrame
            Columns ``model, fold, task, metric, estimate, low, high, n_valid``.
        """
        from ichprog.metrics import binary_metrics, bootstrap_ci, ordinal_metrics

        df = self._fold_frame(fold)
        if ids is not None:
            df = self._select_ids(df, ids)
        frames = []
        for t in self.preset:
            if tasks is not None and t.name not in tasks:
                continue
            y = df[f"{t.name}_true"].to_numpy()
            probs = _probs_from_frame(df, t)
            if t.kind == "binary":
                fn: Any = partial(binary_metrics, threshold=self.threshold)
                score = t.score(probs)
            elif t.kind == "ordinal":
                fn = partial(ordinal_metrics, labels=t.labels)
                score = t.decode(probs, threshold=self.threshold)
            else:
                continue
            table = bootstrap_ci(fn, y, score, n_resamples=n_resamples, ci=ci, seed=seed,
                                 progress=False)
            table.insert(0, "task", t.name)
            table.insert(0, "fold", "all" if fold is None else fold)
            table.insert(0, "model", self.name)
            frames.append(table)
        return pd.concat(frames, ignore_index=True)

    @staticmethod
    def _select_ids(df: pd.DataFrame, ids: Sequence[str]) -> pd.DataFrame:
        ids = [str(i) for i in ids]
        counts = df[ID_COLUMN].value_counts()
        missing = [i for i in ids if i not in counts.index]
        if missing:
            raise KeyError(f"patient(s) {missing[:10]} have no test prediction in the selected "
                           "fold(s)")
        twice = [i for i in ids if counts[i] > 1]
        if twice:
            raise ValueError(f"patient(s) {twice[:10]} are predicted in several folds; pass fold=")
        return df.set_index(ID_COLUMN).loc[ids].reset_index()

    def compare_readers(self, readers: pd.DataFrame, task: str = "prognosis",
                        fold: int | None = None, n_resamples: int = 1000, ci: float = 0.95,
                        seed: int = 0, formatted: bool = False,
                        decimals: int = 2) -> pd.DataFrame:
        """The model beside external readers on the same patients (the "NRs" column of Table 2).

        Parameters
        ----------
        readers
            Binary labels (0/1) of the readers: index ``PatientID``, one column per reader.
        task
            The binary task the readers labelled.
        fold
            The fold the readers' patients come from (default: looked up in all folds).
        n_resamples, ci, seed
            Bootstrap of the model's metrics on those patients.
        formatted
            Return the paper's strings instead of numbers: the model as
            ``"estimate (low-high)"``, the readers as ``"mean ± SD"``.
        decimals
            Decimals of the formatted table.

        Returns
        -------
        pandas.DataFrame
            Indexed by metric, with the columns ``model``, ``model_low``, ``model_high``,
            ``readers_mean``, ``readers_sd`` (``ddof=1``) and one column per reader (numbers);
            or, with ``formatted=True``, the columns ``<model name>`` and ``NRs``.

        Raises
        ------
        ValueError
            A reader's label is missing or not 0/1 (the message names patient and reader).
        KeyError
            A patient has no test prediction.
        """
        from ichprog.metrics import binary_metrics

        t = self.preset[task]
        if t.kind != "binary":
            raise ValueError(f"readers can be compared on a binary task; {task!r} is {t.kind}")
        if not isinstance(readers, pd.DataFrame) or readers.shape[1] == 0:
            raise TypeError("readers must be a DataFrame indexed by PatientID with one column "
                            "per reader")
        r = readers.copy()
        r.index = r.index.map(str)
        if r.index.has_duplicates:
            dup = r.index[r.index.duplicated()].tolist()
            raise ValueError(f"readers: patient(s) {dup[:10]} appear more than once")
        for col in r.columns:
            vals = pd.to_numeric(r[col], errors="coerce")
            bad = vals.isna() | ~vals.isin([0, 1])
            if bad.any():
                pid = r.index[bad.to_numpy()][0]
                value = r.loc[pid, col]
                value = value.item() if isinstance(value, np.generic) else value
                raise ValueError(f"readers: reader {col!r} gives {value!r} for patient "
                                 f"{pid!r}; labels must be 0 or 1")
            r[col] = vals.astype(int)
        df = self._select_ids(self._fold_frame(fold), list(r.index))
        y = df[f"{t.name}_true"].to_numpy()
        boot = self.bootstrap(fold=fold, n_resamples=n_resamples, ci=ci, seed=seed,
                              tasks=[task], ids=list(r.index)).set_index("metric")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            per_reader = {str(c): binary_metrics(y, r.loc[df[ID_COLUMN], c].to_numpy(float))
                          for c in r.columns}
        metrics = list(boot.index)
        table = pd.DataFrame(index=pd.Index(metrics, name="metric"))
        table["model"] = boot["estimate"]
        table["model_low"] = boot["low"]
        table["model_high"] = boot["high"]
        reader_vals = pd.DataFrame({c: [m[k] for k in metrics] for c, m in per_reader.items()},
                                   index=table.index)
        table["readers_mean"] = reader_vals.mean(axis=1)
        table["readers_sd"] = reader_vals.std(axis=1, ddof=1)
        table = pd.concat([table, reader_vals], axis=1)
        table.attrs.update({"n_patients": len(df), "n_readers": r.shape[1], "task": task,
                            "n_resamples": n_resamples, "ci": ci, "seed": seed})
        if not formatted:
            return table
        f = f"{{:.{decimals}f}}"
        out = pd.DataFrame(index=table.index)
        out[self.name] = [f"{f.format(a)} ({f.format(lo)}-{f.format(hi)})" for a, lo, hi in
                          zip(table["model"], table["model_low"], table["model_high"])]
        out["NRs"] = [f"{f.format(m)} ± {f.format(s)}" for m, s in
                      zip(table["readers_mean"], table["readers_sd"])]
        return out

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``predictions.csv``, ``metrics.csv``, ``history.csv`` and ``config.json``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        write_csv(self.predictions, out / "predictions.csv")
        write_csv(self.metrics(), out / "metrics.csv")
        write_csv(self.history, out / "history.csv")
        cfg = dict(self.config)
        cfg.update({"format": CV_FORMAT, "name": self.name, "preset": self.preset.to_dict(),
                    "threshold": self.threshold})
        cfg.setdefault("versions", package_versions())
        write_json(cfg, out / "config.json")
        return out

    @classmethod
    def load(cls, directory: str | Path) -> CVResult:
        """Read a result written by :meth:`save` (or by :func:`cross_validate` with
        ``out_dir``), without any model."""
        d = Path(directory)
        path = d / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"no config.json in {d}: not a cross-validation folder")
        cfg = json.loads(path.read_text(encoding="utf-8"))
        if cfg.get("format") != CV_FORMAT:
            raise ValueError(f"{path}: format {cfg.get('format')!r}, expected {CV_FORMAT!r}")
        preds = _read_ids_csv(d / "predictions.csv")
        hist_path = d / "history.csv"
        history = pd.read_csv(hist_path) if hist_path.is_file() and hist_path.stat().st_size > 1 \
            else pd.DataFrame()
        return cls(predictions=preds, preset=Preset.from_dict(cfg["preset"]), name=cfg["name"],
                   history=history, config=cfg, out_dir=d, threshold=cfg.get("threshold", 0.5))


def cross_validate(cohort: Any, tasks: Preset | Sequence[Task] | Task | str = MT_ORD_GCS_BIN_AGE,
                   folds: int = 10, seed: int = 0, out_dir: str | Path | None = None, *,
                   trunk: str | None = None, recipe: Any = None, splits: Any = None,
                   val_fraction: float = 0.1, only_folds: Iterable[int] | None = None,
                   preprocess: Any = None, config: Any = None, cache_dir: Any = None,
                   augment: Any = None,
                   oversample: bool = True, model_kwargs: Mapping[str, Any] | None = None,
                   preload: bool = False, name: str | None = None, threshold: float = 0.5,
                   keep_checkpoints: bool = False, overwrite: bool = False,
                   progress: bool = True) -> CVResult:
    """The paper's cross-validation of one image model.

    Parameters
    ----------
    cohort
        A :class:`~ichprog.data.Cohort` with images.
    tasks
        A preset, its name, a task or a list of tasks (default MT (ord GCS, bin age)).
    folds, seed, val_fraction
        Passed to :func:`ichprog.data.make_splits` (stratified on prognosis) unless ``splits``
        is given. ``seed`` also derives each fold's training seed.
    out_dir
        Output folder (layout in the module documentation); finished folds found there are
        reused, an interrupted fold resumes. ``None``: nothing is written.
    trunk
        Trunk name (default the recipe's, else the preset's).
    recipe
        A :class:`~ichprog.recipes.Recipe` or its name (``"paper"``, the default, or
        ``"cpu"``); see :func:`fit_multitask`.
    splits
        A :class:`~ichprog.data.Splits` to use instead of drawing new folds (the ablations
        share one).
    only_folds
        Run only these fold indices (e.g. ``[0]`` for a quick look).
    preprocess, config, cache_dir, augment, oversample, model_kwargs, preload
        As in :func:`fit_multitask`; ``config.seed`` is replaced by each fold's seed.
    name
        Model name in the tables (default: the preset's label).
    threshold
        Decision threshold of the metrics and decoded classes.
    keep_checkpoints
        Keep each fold's training checkpoints after it finishes.
    overwrite
        Replace folds computed with a different configuration instead of raising.
    progress
        Progress bars.

    Returns
    -------
    CVResult
    """
    from ichprog.data import Splits, make_splits

    preset, preprocess, base_config, augment, model_kwargs = _apply_recipe(
        recipe, tasks, trunk, preprocess, config, augment, model_kwargs, seed, progress)
    if splits is None:
        splits = make_splits(cohort, folds=folds, seed=seed, val_fraction=val_fraction)
    elif not isinstance(splits, Splits):
        raise TypeError(f"splits must be an ichprog.data.Splits, got {type(splits).__name__}")
    name = name or preset.label
    out = Path(out_dir) if out_dir is not None else None
    fold_list = list(splits.folds)
    if only_folds is not None:
        wanted = {int(k) for k in only_folds}
        unknown = sorted(wanted - {f.index for f in fold_list})
        if unknown:
            raise ValueError(f"only_folds: no fold(s) {unknown}; folds are 0..{len(fold_list) - 1}")
        fold_list = [f for f in fold_list if f.index in wanted]
    run_config = {
        "preset": preset.to_dict(),
        "preprocess": preprocess.to_dict(),
        "train_config": base_config.hashed_fields(),
        "augment": augment if isinstance(augment, bool) else dataclasses.asdict(augment),
        "oversample": bool(oversample),
        "model_kwargs": {k: list(v) if isinstance(v, tuple) else v
                         for k, v in dict(model_kwargs or {}).items()},
        "threshold": threshold,
    }
    config_json = {"seed": int(seed), "folds": len(splits.folds), "val_fraction": val_fraction,
                   "run": run_config, "splits_seed": getattr(splits, "seed", None),
                   "versions": package_versions()}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        splits.save(out / "splits.json")

    from tqdm.auto import tqdm

    preds: list[pd.DataFrame] = []
    hists: list[pd.DataFrame] = []
    reused: list[int] = []
    for fold in tqdm(fold_list, desc=f"cross-validation {name}", unit="fold",
                     disable=not progress):
        fold_seed = derive_seed(seed, fold.index)
        fold_hash = stable_hash({"run": run_config, "seed": fold_seed, "train": fold.train,
                                 "val": fold.val, "test": fold.test}, length=20)
        fdir = out / f"fold_{fold.index:02d}" if out is not None else None
        if fdir is not None and (fdir / "fold.json").is_file():
            meta = json.loads((fdir / "fold.json").read_text(encoding="utf-8"))
            if meta.get("hash") != fold_hash:
                if not overwrite:
                    raise ValueError(
                        f"{fdir / 'fold.json'} was computed with another configuration (hash "
                        f"{meta.get('hash')} != {fold_hash}); use another out_dir or "
                        "overwrite=True")
                shutil.rmtree(fdir)
            elif meta.get("status") == "done" and (fdir / "predictions.csv").is_file():
                p = _read_ids_csv(fdir / "predictions.csv")
                preds.append(p)
                hp = fdir / "model" / "history.csv"
                if hp.is_file() and hp.stat().st_size > 1:
                    h = pd.read_csv(hp)
                    h.insert(0, "fold", fold.index)
                    hists.append(h)
                reused.append(fold.index)
                continue
        if fdir is not None:
            write_json({"hash": fold_hash, "seed": fold_seed, "fold": fold.index,
                        "status": "running"}, fdir / "fold.json")
        cfg = dataclasses.replace(base_config, seed=fold_seed)
        fitted = fit_multitask(cohort, preset, preprocess=preprocess, config=cfg,
                               train_ids=fold.train, val_ids=fold.val, seed=fold_seed,
                               out_dir=fdir, cache_dir=cache_dir, augment=augment,
                               oversample=oversample, model_kwargs=model_kwargs, preload=preload,
                               keep_checkpoints=keep_checkpoints, overwrite=overwrite,
                               progress=progress)
        from ichprog.data import CTDataset

        test_ds = CTDataset(cohort, fold.test, preprocess, cache_dir=cache_dir, preload=preload)
        probs = fitted._predict_ds(test_ds)
        truth = cohort.targets(preset, ids=fold.test)
        p = _prediction_frame(fold.test, probs, preset.tasks, threshold, truth)
        p.insert(0, "fold", fold.index)
        p.insert(0, "model", name)
        preds.append(p)
        if len(fitted.history):
            h = fitted.history.copy()
            h.insert(0, "fold", fold.index)
            hists.append(h)
        if fdir is not None:
            write_csv(p, fdir / "predictions.csv")
            write_json({"hash": fold_hash, "seed": fold_seed, "fold": fold.index,
                        "status": "done", "best_epoch": fitted.info.get("best_epoch"),
                        "epochs_run": fitted.info.get("epochs_run"),
                        "stop_reason": fitted.info.get("stop_reason"),
                        "n_train": len(fold.train), "n_val": len(fold.val),
                        "n_test": len(fold.test)}, fdir / "fold.json")
    predictions = pd.concat(preds, ignore_index=True)
    predictions["model"] = name
    history = pd.concat(hists, ignore_index=True) if hists else pd.DataFrame()
    result = CVResult(predictions=predictions, preset=preset, name=name, history=history,
                      config=config_json, reused_folds=reused, out_dir=out, threshold=threshold)
    if out is not None:
        result.save(out)
    return result


# ---------------------------------------------------------------------------------------------
# ablations
# ---------------------------------------------------------------------------------------------
@dataclass
class AblationResult:
    """The loss ablations of a preset (the paper's Fig. 2).

    Attributes
    ----------
    metrics
        Tidy metrics of every configuration (``model`` = configuration label).
    results
        Configuration name -> :class:`CVResult`.
    task
        The task the figure shows (the preset's primary task).
    figure_path
        The PNG written (``None`` without ``out_dir``).
    """

    metrics: pd.DataFrame
    results: dict[str, CVResult]
    task: str
    figure_path: Path | None = None

    def plot(self, path: str | Path | None = None, metrics: Sequence[str] | None = None,
             kind: str = "box") -> Any:
        """Plot the ablation: one panel per metric, one box (``kind="box"``) or mean ± SD bar
        (``kind="bar"``) per configuration. Returns the matplotlib figure; saved as PNG when
        ``path`` is given."""
        return plot_ablation(self.metrics, task=self.task, path=path, metrics=metrics, kind=kind)


def plot_ablation(tidy_df: pd.DataFrame, task: str = "prognosis", path: str | Path | None = None,
                  metrics: Sequence[str] | None = None, kind: str = "box") -> Any:
    """Plot a tidy metrics table of several configurations, one panel per metric.

    Parameters
    ----------
    tidy_df
        Tidy metrics (``model, fold, task, metric, value``).
    task
        The task to show.
    path
        Save as PNG there.
    metrics
        Metrics to show (default: all of the task, in table order).
    kind
        ``"box"`` (one box of the fold values per configuration) or ``"bar"`` (mean ± SD).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if kind not in ("box", "bar"):
        raise ValueError(f"kind must be 'box' or 'bar', got {kind!r}")
    df = tidy_df[tidy_df["task"] == task]
    if df.empty:
        raise ValueError(f"no metrics of task {task!r}; tasks: {sorted(tidy_df['task'].unique())}")
    metrics = list(metrics) if metrics is not None else list(dict.fromkeys(df["metric"]))
    models = list(dict.fromkeys(df["model"]))
    ncol = min(4, len(metrics))
    nrow = math.ceil(len(metrics) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 3.0 * nrow), squeeze=False,
                             constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, m in zip(axes.ravel(), metrics):
        values = [df[(df["model"] == mod) & (df["metric"] == m)]["value"].dropna().to_numpy()
                  for mod in models]
        pos = np.arange(len(models))
        if kind == "box":
            bp = ax.boxplot(values, positions=pos, widths=0.6, patch_artist=True)
            for patch, c in zip(bp["boxes"], colors):
                patch.set_facecolor(c)
                patch.set_alpha(0.6)
        else:
            means = [v.mean() if len(v) else np.nan for v in values]
            sds = [v.std(ddof=1) if len(v) > 1 else 0.0 for v in values]
            ax.bar(pos, means, yerr=sds, color=colors[: len(models)], alpha=0.7, capsize=3)
        ax.set_title(m)
        ax.set_xticks(pos)
        ax.set_xticklabels([str(i + 1) for i in pos])
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[i % len(colors)], alpha=0.6)
               for i in range(len(models))]
    fig.legend(handles, [f"{i + 1}: {mod}" for i, mod in enumerate(models)], loc="outside lower center",
               ncol=min(2, len(models)), fontsize=8)
    fig.suptitle(f"Ablation of the loss terms ({task})")
    if path is not None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(p, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    return fig


def ablation(cohort: Any, preset: Preset | Sequence[Task] | str = MT_ORD_GCS_BIN_AGE,
             folds: int = 10, seed: int = 0, out_dir: str | Path | None = None, *,
             splits: Any = None, val_fraction: float = 0.1, kind: str = "box",
             plot_metrics: Sequence[str] | None = None, progress: bool = True,
             **cv_kwargs: Any) -> AblationResult:
    """Cross-validate every loss ablation of a preset on the same folds (the paper's Fig. 2).

    Parameters
    ----------
    cohort
        A :class:`~ichprog.data.Cohort` with images.
    preset
        A multi-task preset; :func:`ichprog.tasks.ablations` derives the configurations (the
        full model, each model with auxiliary losses removed, the primary task alone).
    folds, seed, val_fraction, splits
        The folds, drawn once and shared by every configuration.
    out_dir
        One sub-folder per configuration (the :func:`cross_validate` layout), plus
        ``ablation_metrics.csv`` and ``ablation.png``.
    kind
        ``"box"`` or ``"bar"`` (mean ± SD) in the figure.
    plot_metrics
        Metrics in the figure (default all of the primary task).
    progress
        Progress bars.
    **cv_kwargs
        Passed to :func:`cross_validate` (``trunk``, ``config``, ``preprocess``, ...).

    Returns
    -------
    AblationResult
    """
    from ichprog.data import make_splits

    base = as_preset(preset, trunk=cv_kwargs.pop("trunk", None))
    configs = ablations(base)
    if splits is None:
        splits = make_splits(cohort, folds=folds, seed=seed, val_fraction=val_fraction)
    out = Path(out_dir) if out_dir is not None else None
    results: dict[str, CVResult] = {}
    for cname, p in configs.items():
        results[cname] = cross_validate(cohort, p, seed=seed, splits=splits,
                                        out_dir=out / cname if out is not None else None,
                                        name=p.label, progress=progress, **cv_kwargs)
    tidy_all = pd.concat([r.metrics() for r in results.values()], ignore_index=True)
    res = AblationResult(metrics=tidy_all, results=results, task=base.primary.name)
    if out is not None:
        write_csv(tidy_all, out / "ablation_metrics.csv")
        import matplotlib.pyplot as plt

        fig = res.plot(out / "ablation.png", metrics=plot_metrics, kind=kind)
        plt.close(fig)
        res.figure_path = out / "ablation.png"
    return res


from ichprog.experiment.claims import (  # noqa: E402  (the claims build on the names above)
    ClaimsResult,
    check_claims,
    reference_predictions,
)
