"""The paper's cross-validation: :func:`cross_validate`, its per-fold store in the output folder,
and :class:`CVResult`."""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ichprog._results import table_property_value
from ichprog._util import (
    derive_seed,
    package_versions,
    read_csv_verified,
    read_json,
    read_text_verified,
    stable_hash,
    write_csv,
    write_json,
)
from ichprog.constants import ID_COLUMN
from ichprog.experiment._common import (
    _apply_recipe,
    _prediction_frame,
    _probs_from_frame,
    _read_ids_csv,
    _val_fraction,
    long_predictions,
)
from ichprog.experiment.executors import Executor
from ichprog.experiment.fitted import fit_multitask
from ichprog.tasks import MT_ORD_GCS_BIN_AGE, Preset, Task

CV_FORMAT = "ichprog-cv/1"


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

    def _repr_html_(self) -> str:
        """Jupyter display: the mean ± SD table of :meth:`summary` and how the run was made."""
        from ichprog import _display as d

        budget = self.config.get("run", {}).get("time_budget")
        info = {"tasks": ", ".join(self.preset.task_names), "folds": len(self.folds),
                "test predictions": len(self.predictions),
                "reused folds": ", ".join(map(str, self.reused_folds)) or None,
                "time budget": f"{budget:.0f} s" if budget else None,
                "folder": str(self.out_dir) if self.out_dir is not None else None}
        return d.panel(f"CVResult: {self.name}",
                       [d.facts(info), d.frame(self.summary().reset_index())])

    def _fold_frame(self, fold: int | None) -> pd.DataFrame:
        if fold is None:
            return self.predictions
        df = self.predictions[self.predictions["fold"] == fold]
        if df.empty:
            raise KeyError(f"no predictions for fold {fold}; folds: {self.folds}")
        return df

    @property
    def long_predictions(self) -> pd.DataFrame:
        """The predictions in the library's one long table, ``model, fold, PatientID, task,
        y_true, score, pred`` (see :func:`~ichprog.experiment.long_predictions`), one block of
        rows per task."""
        return long_predictions(self.predictions, self.preset, model=self.name)

    @property
    def metrics(self) -> pd.DataFrame:
        """The tidy metrics table (``model, fold, task, metric, value``) of every fold and task:
        binary metrics for binary tasks, ordinal metrics for ordinal ones (``task.metrics``).

        A property; the former call ``metrics()`` still works and warns.
        """
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
        return table_property_value(tidy(per_fold, model=self.name), "CVResult.metrics")

    def summary(self, decimals: int = 2, skipna: bool = False) -> pd.DataFrame:
        """Mean ± SD over folds (SD with ``ddof=1``), like the paper's Tables 3-4.

        See :func:`ichprog.metrics.summarize`.
        """
        from ichprog.metrics import summarize

        return summarize(self.metrics, decimals=decimals, skipna=skipna)

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
        r = _reader_labels(readers)
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
    def save(self, out_dir: str | Path | None = None, *,
             directory: str | Path | None = None) -> Path:
        """Write ``predictions.csv``, ``metrics.csv``, ``history.csv`` and ``config.json`` into
        ``out_dir`` and return it (``directory=`` is the deprecated name of ``out_dir``)."""
        out = Path(_out_dir(out_dir, directory, "CVResult.save"))
        out.mkdir(parents=True, exist_ok=True)
        write_csv(self.predictions, out / "predictions.csv", checksum=True)
        write_csv(self.metrics, out / "metrics.csv", checksum=True)
        write_csv(self.history, out / "history.csv", checksum=True)
        cfg = dict(self.config)
        cfg.update({"format": CV_FORMAT, "name": self.name, "preset": self.preset.to_dict(),
                    "threshold": self.threshold})
        cfg.setdefault("versions", package_versions())
        write_json(cfg, out / "config.json", checksum=True)
        return out

    @classmethod
    def load(cls, out_dir: str | Path | None = None, *,
             directory: str | Path | None = None) -> CVResult:
        """Read a result written by :meth:`save` (or by :func:`cross_validate` with
        ``out_dir``), without any model (``directory=`` is the deprecated name of
        ``out_dir``)."""
        d = Path(_out_dir(out_dir, directory, "CVResult.load"))
        cfg = read_json(d / "config.json", fmt=CV_FORMAT, what="a cross-validation folder")
        preds = _read_ids_csv(d / "predictions.csv")
        hist_path = d / "history.csv"
        history = read_csv_verified(hist_path) if hist_path.is_file() and \
            hist_path.stat().st_size > 1 else pd.DataFrame()
        return cls(predictions=preds, preset=Preset.from_dict(cfg["preset"]), name=cfg["name"],
                   history=history, config=cfg, out_dir=d, threshold=cfg.get("threshold", 0.5))


def _out_dir(out_dir: str | Path | None, directory: str | Path | None, where: str) -> str | Path:
    """``out_dir``, or the deprecated keyword ``directory`` of ``where`` (with a warning)."""
    if directory is not None:
        warnings.warn(f"{where}(directory=...) is deprecated and will be removed in version 0.3; "
                      "use out_dir=", DeprecationWarning, stacklevel=3)
        if out_dir is not None:
            raise TypeError(f"{where}: pass out_dir or directory, not both")
        return directory
    if out_dir is None:
        raise TypeError(f"{where}: missing the folder (out_dir)")
    return out_dir


def _reader_labels(readers: pd.DataFrame) -> pd.DataFrame:
    """The readers' labels as 0/1 integers indexed by string patient IDs; raises naming the
    reader and patient of a label that is missing or not 0/1, or a patient listed twice."""
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
    return r


def cross_validate(cohort: Any, tasks: Preset | Sequence[Task] | Task | str = MT_ORD_GCS_BIN_AGE,
                   folds: int = 10, seed: int = 0, out_dir: str | Path | None = None, *,
                   trunk: str | None = None, recipe: Any = None, splits: Any = None,
                   val_fraction: float | None = None, only_folds: Iterable[int] | None = None,
                   preprocess: Any = None, config: Any = None, cache_dir: Any = None,
                   augment: Any = None,
                   oversample: bool = True, model_kwargs: Mapping[str, Any] | None = None,
                   preload: bool = False, name: str | None = None, threshold: float = 0.5,
                   keep_checkpoints: bool = False, overwrite: bool = False,
                   progress: bool = True, executor: Any = "serial",
                   time_budget: float | str | None = None) -> CVResult:
    """The paper's cross-validation of one image model.

    Parameters
    ----------
    cohort
        A :class:`~ichprog.data.Cohort` with images.
    tasks
        A preset, its name, a task or a list of tasks (default MT (ord GCS, bin age)).
    folds, seed, val_fraction
        Passed to :func:`ichprog.data.make_splits` (stratified on prognosis) unless ``splits``
        is given (``val_fraction`` default: the recipe's). ``seed`` also derives each fold's
        training seed.
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
    executor
        Where the folds are trained: ``"serial"`` (default: one after the other in this
        process), ``"ray"`` (one Ray task per fold, see
        :class:`~ichprog.experiment.RayExecutor`; needs ``ichprog[ray]``) or an
        :class:`~ichprog.experiment.Executor`. The results do not depend on it. With several
        nodes, ``out_dir`` must be on storage every node sees (see "Running on a cluster").
    time_budget
        Wall-clock budget of the whole cross-validation (seconds or e.g. ``"10min"``). Each
        fold to train gets an equal share of it (folds reused from ``out_dir`` cost nothing)
        and plans its epochs within that share as :func:`fit_multitask` does; with a parallel
        executor the folds' shares overlap, so the whole takes less. Each fold's plan is in
        its ``fold.json`` (``info.time_budget``).

    Returns
    -------
    CVResult
    """
    from ichprog.experiment.executors import as_executor

    ex = as_executor(executor)
    plan = _plan_cv(cohort, tasks, folds, seed, out_dir, trunk=trunk, recipe=recipe,
                    splits=splits, val_fraction=val_fraction, only_folds=only_folds,
                    preprocess=preprocess, config=config, cache_dir=cache_dir, augment=augment,
                    oversample=oversample, model_kwargs=model_kwargs, preload=preload, name=name,
                    threshold=threshold, keep_checkpoints=keep_checkpoints, overwrite=overwrite,
                    progress=progress, time_budget=time_budget)
    return _execute([plan], ex, progress)[0]


def _plan_with_defaults(cohort: Any, tasks: Any, **kwargs: Any) -> _CVPlan:
    """:func:`_plan_cv` with :func:`cross_validate`'s defaults for what ``kwargs`` leaves out
    (an argument :func:`cross_validate` does not take raises :class:`TypeError`)."""
    import inspect

    params = inspect.signature(cross_validate).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise TypeError(f"cross_validate() got unexpected keyword argument(s) {unknown}")
    args = {k: p.default for k, p in params.items()
            if p.default is not inspect.Parameter.empty}
    args.update(kwargs)
    args.pop("tasks", None)
    args.pop("executor", None)
    return _plan_cv(cohort, tasks, **args)


def _plan_cv(cohort: Any, tasks: Any, folds: int, seed: int, out_dir: str | Path | None, *,
             trunk: str | None, recipe: Any, splits: Any, val_fraction: float | None,
             only_folds: Iterable[int] | None, preprocess: Any, config: Any, cache_dir: Any,
             augment: Any, oversample: bool, model_kwargs: Mapping[str, Any] | None,
             preload: bool, name: str | None, threshold: float, keep_checkpoints: bool,
             overwrite: bool, progress: bool, time_budget: float | str | None = None) -> _CVPlan:
    """Everything of :func:`cross_validate` before training: the resolved settings, the folds,
    ``config.json``'s content and ``splits.json`` written."""
    from ichprog.data import Splits, make_splits
    from ichprog.training import parse_duration

    preset, preprocess, base_config, augment, model_kwargs = _apply_recipe(
        recipe, tasks, trunk, preprocess, config, augment, model_kwargs, seed, progress)
    val_fraction = _val_fraction(recipe, val_fraction)
    if splits is None:
        splits = make_splits(cohort, folds=folds, seed=seed, val_fraction=val_fraction)
    elif not isinstance(splits, Splits):
        raise TypeError(f"splits must be an ichprog.data.Splits, got {type(splits).__name__}")
    name = name or preset.label
    out = Path(out_dir) if out_dir is not None else None
    fold_list = _selected_folds(list(splits.folds), only_folds)
    run_config = _run_config(preset, preprocess, base_config, augment, oversample, model_kwargs,
                             threshold)
    if time_budget is not None:  # a budget plans fewer epochs: not the same folds as without
        run_config["time_budget"] = parse_duration(time_budget)
    config_json = {"seed": int(seed), "folds": len(splits.folds), "val_fraction": val_fraction,
                   "run": run_config, "splits_seed": getattr(splits, "seed", None),
                   "versions": package_versions()}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        splits.save(out / "splits.json")
    fit_kwargs = {"preprocess": preprocess, "cache_dir": cache_dir, "augment": augment,
                  "oversample": oversample, "model_kwargs": model_kwargs, "preload": preload,
                  "keep_checkpoints": keep_checkpoints, "overwrite": overwrite,
                  "progress": progress}
    return _CVPlan(cohort=cohort, preset=preset, name=name, seed=int(seed), out=out,
                   fold_list=fold_list, run_config=run_config, base_config=base_config,
                   store=_FoldStore(out, overwrite), fit_kwargs=fit_kwargs, threshold=threshold,
                   config_json=config_json)


def _selected_folds(fold_list: list[Any], only_folds: Iterable[int] | None) -> list[Any]:
    if only_folds is None:
        return fold_list
    wanted = {int(k) for k in only_folds}
    unknown = sorted(wanted - {f.index for f in fold_list})
    if unknown:
        raise ValueError(f"only_folds: no fold(s) {unknown}; folds are 0..{len(fold_list) - 1}")
    return [f for f in fold_list if f.index in wanted]


def _run_config(preset: Preset, preprocess: Any, base_config: Any, augment: Any,
                oversample: bool, model_kwargs: Mapping[str, Any] | None,
                threshold: float) -> dict[str, Any]:
    """The settings every fold's hash covers (the fold's seed and patients come on top)."""
    return {
        "preset": preset.to_dict(),
        "preprocess": preprocess.to_dict(),
        "train_config": base_config.hashed_fields(),
        "augment": augment if isinstance(augment, bool) else dataclasses.asdict(augment),
        "oversample": bool(oversample),
        "model_kwargs": {k: list(v) if isinstance(v, tuple) else v
                         for k, v in dict(model_kwargs or {}).items()},
        "threshold": threshold,
    }


@dataclass
class FoldJob:
    """Everything one fold of one configuration needs, to be trained in any process on any node.

    Built by :func:`cross_validate` and :func:`~ichprog.ablation`, run by :func:`run_fold_job`
    through an :class:`~ichprog.experiment.executors.Executor`. It holds the cohort (its image
    paths and clinical table), the tasks, the fold's patients, its seed, configuration hash and
    training settings, and ``folder``, the fold's folder in the output folder (``None``: nothing
    is written, and a failed job starts again from the beginning).
    """

    cohort: Any
    preset: Preset
    fold: Any
    config: Any
    fold_seed: int
    fold_hash: str
    folder: Path | None
    fit_kwargs: dict[str, Any]
    threshold: float
    name: str

    def __repr__(self) -> str:
        return (f"FoldJob(name={self.name!r}, fold={self.fold.index}, seed={self.fold_seed}, "
                f"folder={str(self.folder) if self.folder else None!r})")


def run_fold_job(job: FoldJob) -> tuple[pd.DataFrame, pd.DataFrame | None, dict[str, Any]]:
    """Train one fold and write it to its folder: ``fold.json`` marked ``running``, the model
    and checkpoints (an interrupted job run again resumes from them), then ``predictions.csv``
    and ``fold.json`` marked ``done``.

    A module-level function, so that an executor can send it to another process.

    Returns
    -------
    tuple
        The fold's prediction table, its training history (``None`` without epochs) and the
        model's :attr:`~ichprog.experiment.FittedModel.info`.
    """
    store = _FoldStore(job.folder.parent if job.folder is not None else None, overwrite=False)
    store.start(job.fold.index, job.fold_hash, job.fold_seed)
    p, h, info = _run_fold(job.cohort, job.preset, job.fold, job.config, job.fold_seed,
                           job.folder, job.fit_kwargs, job.threshold, job.name)
    store.finish(job.fold, job.fold_hash, job.fold_seed, p, info)
    return p, h, info


@dataclass
class _CVPlan:
    """One configuration of an experiment, between its set-up and its :class:`CVResult`: the
    folds to train as :class:`FoldJob` values, the folds read back from the fold store."""

    cohort: Any
    preset: Preset
    name: str
    seed: int
    out: Path | None
    fold_list: list[Any]
    run_config: dict[str, Any]
    base_config: Any
    store: _FoldStore
    fit_kwargs: dict[str, Any]
    threshold: float
    config_json: dict[str, Any]
    found: dict[int, tuple[pd.DataFrame, pd.DataFrame | None]] = field(default_factory=dict)

    def jobs(self, in_process: bool) -> list[FoldJob]:
        """The folds to train (finished ones are read back into ``found``); outside the calling
        process no progress bars are drawn."""
        fit_kwargs = dict(self.fit_kwargs)
        if not in_process:
            fit_kwargs["progress"] = False
        out: list[FoldJob] = []
        for fold in self.fold_list:
            fold_seed = derive_seed(self.seed, fold.index)
            fold_hash = stable_hash({"run": self.run_config, "seed": fold_seed,
                                     "train": fold.train, "val": fold.val, "test": fold.test},
                                    length=20)
            done = self.store.finished(fold.index, fold_hash)
            if done is not None:
                self.found[fold.index] = done
                continue
            cfg = dataclasses.replace(self.base_config, seed=fold_seed)
            if not in_process:
                cfg = dataclasses.replace(cfg, progress=False)
            out.append(FoldJob(cohort=self.cohort, preset=self.preset, fold=fold, config=cfg,
                               fold_seed=fold_seed, fold_hash=fold_hash,
                               folder=self.store.folder(fold.index), fit_kwargs=fit_kwargs,
                               threshold=self.threshold, name=self.name))
        budget = self.run_config.get("time_budget")
        if budget is not None and out:  # an equal share for each fold to train
            for job in out:
                job.fit_kwargs = {**job.fit_kwargs, "time_budget": budget / len(out)}
        return out

    def result(self, trained: Mapping[int, tuple[pd.DataFrame, pd.DataFrame | None,
                                                 Mapping[str, Any]]]) -> CVResult:
        """The :class:`CVResult` from the trained and the reused folds (written to ``out``)."""
        preds: list[pd.DataFrame] = []
        hists: list[pd.DataFrame] = []
        for fold in self.fold_list:
            p, h = self.found[fold.index] if fold.index in self.found \
                else trained[fold.index][:2]
            preds.append(p)
            if h is not None:
                hists.append(h)
        predictions = pd.concat(preds, ignore_index=True)
        predictions["model"] = self.name
        history = pd.concat(hists, ignore_index=True) if hists else pd.DataFrame()
        result = CVResult(predictions=predictions, preset=self.preset, name=self.name,
                          history=history, config=self.config_json,
                          reused_folds=sorted(self.found), out_dir=self.out,
                          threshold=self.threshold)
        if self.out is not None:
            result.save(self.out)
        return result


def _execute(plans: Sequence[_CVPlan], ex: Executor, progress: bool) -> list[CVResult]:
    """Run the folds of every plan with one executor (one job per configuration and fold) and
    return each plan's result."""
    per_plan = [plan.jobs(ex.in_process) for plan in plans]
    jobs = [job for js in per_plan for job in js]
    desc = f"cross-validation {plans[0].name}" if len(plans) == 1 else "ablation"
    outputs = ex.map(run_fold_job, jobs, progress=progress and bool(jobs), desc=desc)
    results = []
    k = 0
    for plan, js in zip(plans, per_plan):
        trained = {job.fold.index: outputs[k + i] for i, job in enumerate(js)}
        k += len(js)
        results.append(plan.result(trained))
    return results


def _run_fold(cohort: Any, preset: Preset, fold: Any, config: Any, fold_seed: int,
              fdir: Path | None, fit_kwargs: Mapping[str, Any], threshold: float,
              name: str) -> tuple[pd.DataFrame, pd.DataFrame | None, dict[str, Any]]:
    """Train one fold's model and predict its test patients: the fold's prediction table, its
    training history (both with a ``fold`` column; ``None`` without epochs) and the model's
    :attr:`~FittedModel.info`."""
    from ichprog.data import CTDataset

    fitted = fit_multitask(cohort, preset, config=config, train_ids=fold.train,
                           val_ids=fold.val, seed=fold_seed, out_dir=fdir, **fit_kwargs)
    test_ds = CTDataset(cohort, fold.test, fit_kwargs["preprocess"],
                        cache_dir=fit_kwargs["cache_dir"], preload=fit_kwargs["preload"])
    probs = fitted._predict_ds(test_ds)
    truth = cohort.targets(preset, ids=fold.test)
    p = _prediction_frame(fold.test, probs, preset.tasks, threshold, truth)
    p.insert(0, "fold", fold.index)
    p.insert(0, "model", name)
    h = None
    if len(fitted.history):
        h = fitted.history.copy()
        h.insert(0, "fold", fold.index)
    return p, h, fitted.info


class _FoldStore:
    """The ``fold_XX`` folders of a cross-validation (``None``: nothing is stored).

    A fold is marked ``running`` in its ``fold.json`` while it trains and ``done`` once its
    ``predictions.csv`` is written. A finished fold with the same configuration hash is read back
    instead of being trained; a fold computed with another configuration raises, or is removed
    with ``overwrite``.
    """

    def __init__(self, out: Path | None, overwrite: bool):
        self.out = out
        self.overwrite = overwrite

    def folder(self, index: int) -> Path | None:
        return self.out / f"fold_{index:02d}" if self.out is not None else None

    def finished(self, index: int,
                 fold_hash: str) -> tuple[pd.DataFrame, pd.DataFrame | None] | None:
        """The predictions and training history (``None`` when none was saved) of a finished
        fold with this hash, or ``None`` when the fold must be trained."""
        fdir = self.folder(index)
        if fdir is None or not (fdir / "fold.json").is_file():
            return None
        try:
            meta = json.loads(read_text_verified(fdir / "fold.json"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{fdir / 'fold.json'}: not valid JSON ({exc})") from exc
        if meta.get("hash") != fold_hash:
            if not self.overwrite:
                raise ValueError(
                    f"{fdir / 'fold.json'} was computed with another configuration (hash "
                    f"{meta.get('hash')} != {fold_hash}); use another out_dir or "
                    "overwrite=True")
            shutil.rmtree(fdir)
            return None
        if meta.get("status") != "done" or not (fdir / "predictions.csv").is_file():
            return None
        p = _read_ids_csv(fdir / "predictions.csv")
        h = None
        hp = fdir / "model" / "history.csv"
        if hp.is_file() and hp.stat().st_size > 1:
            h = read_csv_verified(hp)
            h.insert(0, "fold", index)
        return p, h

    def start(self, index: int, fold_hash: str, fold_seed: int) -> None:
        fdir = self.folder(index)
        if fdir is not None:
            write_json({"hash": fold_hash, "seed": fold_seed, "fold": index,
                        "status": "running"}, fdir / "fold.json", checksum=True)

    def finish(self, fold: Any, fold_hash: str, fold_seed: int, predictions: pd.DataFrame,
               info: Mapping[str, Any]) -> None:
        fdir = self.folder(fold.index)
        if fdir is None:
            return
        write_csv(predictions, fdir / "predictions.csv", checksum=True)
        write_json({"hash": fold_hash, "seed": fold_seed, "fold": fold.index,
                    "status": "done", "best_epoch": info.get("best_epoch"),
                    "epochs_run": info.get("epochs_run"),
                    "stop_reason": info.get("stop_reason"),
                    "resumed_from": info.get("resumed_from"),
                    "n_train": len(fold.train), "n_val": len(fold.val),
                    "n_test": len(fold.test)}, fdir / "fold.json", checksum=True)
