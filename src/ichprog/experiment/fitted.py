"""One model: :func:`fit_multitask` trains it, :class:`FittedModel` predicts with it and saves
and loads it."""

from __future__ import annotations

import dataclasses
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ichprog._extras import MissingExtraError
from ichprog._util import (
    derive_seed,
    package_versions,
    read_json,
    verify_checksum,
    write_csv,
    write_json,
)
from ichprog.constants import ID_COLUMN
from ichprog.experiment._common import (
    _apply_recipe,
    _datasets,
    _prediction_frame,
    _split_validation,
    _val_fraction,
)
from ichprog.tasks import MT_ORD_GCS_BIN_AGE, Preset, Task

FITTED_FORMAT = "ichprog-fitted-model/1"


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

    * file paths (``str`` or :class:`~pathlib.Path`) of NIfTI files or DICOM folders (see
      :func:`ichprog.data.load_volume`): each scan is read and pre-processed with
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
        from ichprog.data.cache import load_preprocessed

        if not path.exists():
            raise FileNotFoundError(f"no scan at {path}")
        return load_preprocessed(path, self.preprocess)

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
                             channels_last=self.config.channels_last, progress=progress,
                             tta=self.config.tta)

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``model.safetensors``, ``fitted.json``, ``history.csv`` (no pickle) and the
        model card ``model_card.json`` (:func:`ichprog.experiment.modelcard.fitted_model_card`).

        Returns
        -------
        pathlib.Path
            The folder.
        """
        from ichprog.training import save_weights

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        save_weights(self.model, out / "model.safetensors")
        write_csv(self.history, out / "history.csv", checksum=True)
        write_json({
            "format": FITTED_FORMAT,
            "model": self.model.config(),
            "preprocess": self.preprocess.to_dict(),
            "train_config": self.config.to_dict(),
            "info": self.info,
            "versions": package_versions(),
        }, out / "fitted.json", checksum=True)
        from ichprog.experiment.modelcard import fitted_model_card

        write_json(fitted_model_card(self), out / "model_card.json")
        return out

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> FittedModel:
        """Load a model written by :meth:`save`.

        Raises ``FileNotFoundError`` / ``ValueError`` naming the file when the folder does not
        hold a saved model, when a file does not match the checksum recorded when it was saved
        (:class:`ichprog._util.IntegrityError`, a ``ValueError``), or when ``fitted.json`` is
        not valid JSON or describes invalid settings.
        """
        from ichprog.data import PreprocessConfig
        from ichprog.models import MultiTaskNet
        from ichprog.training import TrainConfig, load_weights

        d = Path(directory)
        meta_path = d / "fitted.json"
        meta = read_json(meta_path, fmt=FITTED_FORMAT, what="a saved FittedModel")
        missing = [k for k in ("model", "preprocess", "train_config") if k not in meta]
        if missing:
            raise ValueError(f"{meta_path}: missing entr{'y' if len(missing) == 1 else 'ies'} "
                             f"{missing}")
        try:
            model = MultiTaskNet.from_config(meta["model"])
            preprocess = PreprocessConfig.from_dict(meta["preprocess"])
            config = TrainConfig.from_dict(meta["train_config"])
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"{meta_path}: invalid settings ({type(exc).__name__}: {exc})") \
                from exc
        try:
            load_weights(model, d / "model.safetensors")
        except RuntimeError as exc:
            raise ValueError(f"{d / 'model.safetensors'} does not fit the network described in "
                             f"{meta_path}: {exc}") from exc
        model.to(device).eval()
        hpath = d / "history.csv"
        history = pd.DataFrame()
        if hpath.is_file() and hpath.stat().st_size > 1:
            verify_checksum(hpath)
            history = pd.read_csv(hpath)
        return cls(model, preprocess, config, history, meta.get("info", {}))


    @classmethod
    def from_authors_checkpoint(cls, path: str | Path, preset: Any, preprocess: Any = None,
                                device: str = "auto") -> FittedModel:
        """One of the authors' published fold checkpoints, ready to predict.

        Parameters
        ----------
        path
            The checkpoint (their module's ``state_dict``), read with weights only (see
            :func:`ichprog.models.load_authors_checkpoint`).
        preset
            Its tasks: a preset name such as ``"mt_ord_gcs_bin_age"``, a preset or tasks.
        preprocess
            Default :data:`ichprog.data.AUTHORS_PREPROCESS`, their input pipeline (which expects
            skull-stripped scans; ``AUTHORS_PREPROCESS.replace(skull_strip=True)`` strips them).
        device
            Where predictions run (``"auto"``: a GPU when there is one).

        Returns
        -------
        FittedModel
            Predicting in float32; ``info`` records the checkpoint's path and SHA-256.
        """
        from ichprog.data import AUTHORS_PREPROCESS
        from ichprog.data.cache import file_digest
        from ichprog.models import load_authors_checkpoint
        from ichprog.training import TrainConfig

        model = load_authors_checkpoint(path, preset)
        info = {"source": "authors' checkpoint", "checkpoint": str(path),
                "sha256": file_digest(path)}
        return cls(model, preprocess if preprocess is not None else AUTHORS_PREPROCESS,
                   TrainConfig(device=device, precision="fp32"), info=info)


def fit_multitask(cohort: Any, tasks: Preset | Sequence[Task] | Task | str = MT_ORD_GCS_BIN_AGE,
                  trunk: str | None = None, *, recipe: Any = None, preprocess: Any = None,
                  config: Any = None,
                  train_ids: Sequence[str] | None = None, val_ids: Sequence[str] | None = None,
                  val_fraction: float | None = None, seed: int = 0, out_dir: str | Path | None = None,
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
        Share held out for validation when ``val_ids`` is not given (default: the recipe's,
        0.1 in the paper's; 0: none, which needs ``select="last"`` and no early stopping).
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
    ids, val_list = _training_parts(cohort, preset, train_ids, val_ids,
                                    _val_fraction(recipe, val_fraction), seed)
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
        **_run_info(result),
    }
    fitted = FittedModel(result.model, preprocess, config, result.history, info)
    if out is not None:
        _write_fitted(fitted, result, out, ckpt, keep_checkpoints)
    return fitted


def _training_parts(cohort: Any, preset: Preset, train_ids: Sequence[str] | None,
                    val_ids: Sequence[str] | None, val_fraction: float,
                    seed: int) -> tuple[list[str], list[str]]:
    """The patients to train on and the patients to monitor early stopping on: ``val_ids``, or a
    stratified ``val_fraction`` of the training patients."""
    ids = [str(i) for i in (train_ids if train_ids is not None else cohort.ids)]
    if val_ids is None:
        return _split_validation(cohort, preset, ids, val_fraction, seed)
    val_list = [str(i) for i in val_ids]
    both = sorted(set(ids) & set(val_list))
    if both:
        raise ValueError(f"patients in both the training and the validation part: {both[:10]}")
    return ids, val_list


def _run_info(result: Any) -> dict[str, Any]:
    """What :attr:`FittedModel.info` records of the training run (a ``TrainResult``)."""
    return {
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


def _write_fitted(fitted: FittedModel, result: Any, out: Path, ckpt: Path | None,
                  keep_checkpoints: bool) -> None:
    """Save the model and its history plot under ``out/model``; drop the checkpoints unless kept."""
    fitted.save(out / "model")
    if len(result.history):
        try:
            fig = result.plot_history(out / "model" / "history.png")
        except MissingExtraError as exc:  # the model is saved; only the figure is missing
            warnings.warn(f"history.png not written: {exc}", stacklevel=3)
        else:
            import matplotlib.pyplot as plt

            plt.close(fig)
    if not keep_checkpoints and ckpt is not None:
        shutil.rmtree(ckpt, ignore_errors=True)
