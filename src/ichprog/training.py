"""The one training loop of the library, its checkpoints, and batched prediction.

Every image model of the paper (single-task baselines, multi-task models, ablations) is trained by
:func:`train` with the recipe of the paper:

* AdamW (learning rate 1e-3, weight decay 1e-4, ``amsgrad=True``), batches of 8 and gradient
  accumulation over 3 batches. The last, possibly incomplete, accumulation group of an epoch is
  applied too, and every optimizer step averages the loss over exactly the samples it saw.
* Early stopping with a patience of 20 epochs on the validation balanced accuracy of the primary
  task (the first task of the model's preset) at threshold 0.5; for an ordinal primary task the
  balanced accuracy of the decoded classes. The best weights are restored at the end.
* Mixed precision where the hardware supports it: bfloat16 autocast on CPUs and on GPUs with
  bfloat16 support, float16 autocast with a gradient scaler on older GPUs.

Random oversampling of the minority class and augmentation belong to the *training dataset* (see
:func:`ichprog.data.oversample` and ``CTDataset(augment=True)``); :mod:`ichprog.experiment` wires
them up on the training part only.

Reproducibility and resuming
----------------------------
Each epoch draws all of its randomness (shuffling, dropout, augmentation through the global
generators) from generators re-seeded with ``(config.seed, epoch)``; a dataset that has a
``set_epoch(epoch)`` method is told the epoch as well. A checkpoint is written atomically after
every epoch: the weights (safetensors), the optimizer, gradient-scaler and random-generator states
(a second safetensors file, no pickle) and a JSON sidecar that commits them. A run killed at any
point and started again with the same ``out_dir`` resumes after the last finished epoch and ends
with the same weights and history as an uninterrupted run. The sidecar holds a hash of everything
that determines the result (training configuration, model configuration, initial weights, the
patients of both datasets); a different configuration in the same folder raises an error unless
``overwrite=True`` is passed, and a finished run with the same configuration is reused.

Checkpoint folder layout::

    out_dir/
      checkpoint.json              sidecar: configuration, hash, epoch, metrics, file names
      weights-e0007.safetensors    weights after the last finished epoch
      state-e0007.safetensors      optimizer, gradient scaler and random-generator states
      best-e0004.safetensors       weights of the best epoch so far
      history.csv                  one row per epoch: losses per task, validation metrics per task
      history.png                  the same, plotted (written when training ends)
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import random
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ichprog._util import (
    atomic_write,
    derive_seed,
    json_default,
    package_versions,
    stable_hash,
    write_csv,
    write_json,
)
from ichprog.models import MultiTaskNet, multitask_loss
from ichprog.tasks import Task

__all__ = [
    "TrainConfig",
    "TrainResult",
    "ArrayDataset",
    "train",
    "predict_proba",
    "resolve_device",
    "resolve_precision",
    "resolve_channels_last",
    "seed_everything",
    "save_checkpoint",
    "load_checkpoint",
    "read_sidecar",
    "save_weights",
    "load_weights",
    "plot_history",
    "targets_to_classes",
]

Precision = Literal["auto", "fp32", "bf16", "fp16"]
Schedule = Literal["constant", "onecycle"]
Select = Literal["best", "last"]

CHECKPOINT_FORMAT = "ichprog-checkpoint/1"
SIDECAR = "checkpoint.json"

# Fields of TrainConfig that do not change the numbers a run produces (left out of its hash).
_NOT_HASHED = ("device", "progress", "num_workers", "eval_batch_size", "compile")


@dataclass
class TrainConfig:
    """Hyper-parameters and run-time options of :func:`train`.

    The defaults are the paper's recipe.

    Parameters
    ----------
    max_epochs
        Upper bound on the number of epochs (100 in the paper).
    batch_size
        Samples per forward pass (8).
    accumulation_steps
        Batches whose gradients are accumulated before an optimizer step (3).
    lr, weight_decay, amsgrad
        AdamW settings (1e-3, 1e-4, ``True``).
    patience
        Epochs without improvement of the monitored score before stopping (20); ``None`` or 0
        disables early stopping.
    threshold
        Probability threshold for the monitored balanced accuracy and the validation metrics.
    seed
        Seed of the shuffling, dropout and augmentation of every epoch.
    device
        ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
    precision
        ``"auto"`` (bfloat16 autocast on CPU and bfloat16-capable GPUs, float16 with a gradient
        scaler on older GPUs), ``"bf16"``, ``"fp16"`` or ``"fp32"``.
    channels_last
        Use the ``channels_last_3d`` memory format. ``None`` (default): on with bfloat16
        autocast on a CPU, where it was measured faster (1.9x instead of 1.6x over float32 per
        DenseNet121 training step at 40 x 301 x 301), off otherwise (slower in float32).
    compile
        Wrap the model with :func:`torch.compile` for training (first epoch slower).
    num_workers
        Data-loader worker processes (0: load in the main process).
    eval_batch_size
        Batch size for validation and prediction (default ``batch_size``).
    progress
        Show progress bars (tqdm).
    schedule
        Learning-rate schedule. ``"constant"`` (the paper's: ``lr`` throughout; its
        ReduceLROnPlateau with factor 0.98 changes nothing in effect). ``"onecycle"``: PyTorch's
        :class:`~torch.optim.lr_scheduler.OneCycleLR` over all optimizer steps of
        ``max_epochs`` epochs, rising from ``lr / 25`` to ``lr`` during the first 20 % and
        annealing (cosine) to about zero by the last step, with Adam's first moment cycled
        between 0.85 and 0.95 against it. Measured on the phantom cohort it is what lets a
        small network trained for tens of epochs from scratch settle on weights that generalise
        (see the documentation page "Training recipes").
    select
        Which weights the run ends with. ``"best"`` (the paper's): those of the epoch with the
        best monitored validation score. ``"last"``: those of the last epoch; the natural choice
        with ``schedule="onecycle"``, and when the validation part is too small (a few patients)
        to rank epochs by. Early stopping needs ``"best"``.
    class_balance
        Weight the positive targets of every binary and ordinal output in the training loss by
        negatives / positives in the training set (:func:`ichprog.models.balanced_pos_weight`),
        so that a rare class (GCS 3-8, age >= 80) is not outvoted into the majority class. Off
        in the paper's recipe, which balances only the primary task, by oversampling.
    """

    max_epochs: int = 100
    batch_size: int = 8
    accumulation_steps: int = 3
    lr: float = 1e-3
    weight_decay: float = 1e-4
    amsgrad: bool = True
    patience: int | None = 20
    threshold: float = 0.5
    seed: int = 0
    device: str = "auto"
    precision: Precision = "auto"
    channels_last: bool | None = None
    compile: bool = False
    num_workers: int = 0
    eval_batch_size: int | None = None
    progress: bool = True
    schedule: Schedule = "constant"
    select: Select = "best"
    class_balance: bool = False

    def __post_init__(self) -> None:
        def need(cond: bool, name: str, rule: str) -> None:
            if not cond:
                raise ValueError(f"TrainConfig.{name} must be {rule}, got {getattr(self, name)!r}")

        need(isinstance(self.max_epochs, int) and self.max_epochs >= 1, "max_epochs", "an int >= 1")
        need(isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size", "an int >= 1")
        need(isinstance(self.accumulation_steps, int) and self.accumulation_steps >= 1,
             "accumulation_steps", "an int >= 1")
        need(self.lr > 0 and math.isfinite(self.lr), "lr", "a finite number > 0")
        need(self.weight_decay >= 0 and math.isfinite(self.weight_decay), "weight_decay",
             "a finite number >= 0")
        need(self.patience is None or (isinstance(self.patience, int) and self.patience >= 0),
             "patience", "None or an int >= 0")
        need(0.0 < self.threshold < 1.0, "threshold", "in (0, 1)")
        need(isinstance(self.seed, int | np.integer) and self.seed >= 0, "seed", "an int >= 0")
        need(self.precision in ("auto", "fp32", "bf16", "fp16"), "precision",
             "one of 'auto', 'fp32', 'bf16', 'fp16'")
        need(isinstance(self.num_workers, int) and self.num_workers >= 0, "num_workers",
             "an int >= 0")
        need(self.eval_batch_size is None or self.eval_batch_size >= 1, "eval_batch_size",
             "None or an int >= 1")
        need(self.schedule in ("constant", "onecycle"), "schedule", "'constant' or 'onecycle'")
        need(self.select in ("best", "last"), "select", "'best' or 'last'")
        if self.select == "last" and self.patience:
            raise ValueError(f"TrainConfig.patience={self.patience} stops early on the validation "
                             "score, which needs select='best'; with select='last' set patience "
                             "to 0 or None")
        self.seed = int(self.seed)

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Rebuild a configuration from :meth:`to_dict`; unknown keys raise ``TypeError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise TypeError(f"TrainConfig has no field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**dict(d))

    def hashed_fields(self) -> dict[str, Any]:
        """The fields that determine the numbers of a run (everything but device, progress bars,
        worker count, evaluation batch size and compilation)."""
        return {k: v for k, v in self.to_dict().items() if k not in _NOT_HASHED}


# ---------------------------------------------------------------------------------------------
# devices, precision, seeds
# ---------------------------------------------------------------------------------------------
def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> the first CUDA device if one is available, else the CPU.

    Parameters
    ----------
    device
        ``"auto"`` or anything :class:`torch.device` accepts.

    Returns
    -------
    torch.device
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was requested but CUDA is not available")
    return dev


def resolve_precision(precision: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """The autocast dtype (``None`` for float32) and whether a gradient scaler is needed.

    ``"auto"`` picks bfloat16 on CPUs and on GPUs that support it, float16 (with a gradient
    scaler) on older GPUs, and float32 on other devices.

    Parameters
    ----------
    precision
        ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"fp32"``.
    device
        The device the model runs on.
    """
    if precision == "fp32":
        return None, False
    if precision == "bf16":
        return torch.bfloat16, False
    if precision == "fp16":
        if device.type == "cpu":
            raise ValueError("precision='fp16' needs a GPU; use 'bf16' or 'fp32' on the CPU")
        return torch.float16, device.type == "cuda"
    if precision != "auto":
        raise ValueError(f"precision must be 'auto', 'bf16', 'fp16' or 'fp32', got {precision!r}")
    if device.type == "cpu":
        return torch.bfloat16, False
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, False
        return torch.float16, True
    return None, False


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (all CUDA devices included).

    Parameters
    ----------
    seed
        A non-negative integer.
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (global generator used by transforms)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# an in-memory dataset with the CTDataset item contract
# ---------------------------------------------------------------------------------------------
class ArrayDataset(Dataset):
    """Pre-processed volumes held in memory, with the item contract of ``CTDataset``.

    Parameters
    ----------
    volumes
        ``(N, D, H, W)`` array or a sequence of ``(D, H, W)`` arrays (already pre-processed).
    ids
        One identifier per volume (default ``"0"``, ``"1"``, ...).
    targets
        Optional ``{task name: array (N, n_outputs)}`` of loss targets (see
        :meth:`ichprog.tasks.Task.loss_targets`).

    Notes
    -----
    Items are ``{"image": float32 (1, D, H, W), "id": str, "index": int, "targets": {...}}``
    (``"targets"`` only when given).
    """

    def __init__(self, volumes: np.ndarray | Sequence[np.ndarray], ids: Sequence[str] | None = None,
                 targets: Mapping[str, np.ndarray] | None = None):
        vols = [np.asarray(v) for v in volumes]
        for i, v in enumerate(vols):
            if v.ndim != 3:
                raise ValueError(f"volume {i} must be a pre-processed (D, H, W) array, got shape "
                                 f"{v.shape}")
            if not np.issubdtype(v.dtype, np.number):
                raise ValueError(f"volume {i} must be numeric, got dtype {v.dtype}")
        self.volumes = vols
        self.ids = [str(i) for i in (ids if ids is not None else range(len(vols)))]
        if len(self.ids) != len(vols):
            raise ValueError(f"got {len(vols)} volumes but {len(self.ids)} ids")
        self.targets: dict[str, np.ndarray] | None = None
        if targets is not None:
            self.targets = {}
            for name, arr in targets.items():
                a = np.asarray(arr, dtype=np.float32)
                a = a.reshape(len(a), -1)
                if len(a) != len(vols):
                    raise ValueError(f"targets[{name!r}] has {len(a)} rows for {len(vols)} volumes")
                self.targets[name] = a

    def __len__(self) -> int:
        return len(self.volumes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {
            "image": torch.from_numpy(np.ascontiguousarray(self.volumes[index], dtype=np.float32))[None],
            "id": self.ids[index],
            "index": int(index),
        }
        if self.targets is not None:
            item["targets"] = {k: torch.from_numpy(v[index]) for k, v in self.targets.items()}
        return item


# ---------------------------------------------------------------------------------------------
# safetensors I/O (no pickle anywhere)
# ---------------------------------------------------------------------------------------------
def save_weights(model: nn.Module, path: str | Path, metadata: Mapping[str, Any] | None = None) -> None:
    """Write a module's ``state_dict`` to a safetensors file, atomically.

    Parameters
    ----------
    model
        The module (its tensors are copied to the CPU, contiguous).
    path
        Target file.
    metadata
        Optional JSON-serialisable values stored in the file's header under ``"ichprog"``.
    """
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    meta = {"ichprog": json.dumps(dict(metadata or {}), sort_keys=True)}
    atomic_write(Path(path), lambda p: save_file(tensors, str(p), metadata=meta))


def load_weights(model: nn.Module, path: str | Path, strict: bool = True) -> nn.Module:
    """Load a safetensors ``state_dict`` written by :func:`save_weights` into ``model``.

    Raises ``FileNotFoundError`` naming the file, and ``RuntimeError`` listing missing and
    unexpected keys when the file does not fit the model.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    state = load_file(str(path))
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise RuntimeError(f"weights in {path} do not fit the model: {exc}") from exc
    return model


def _optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = val.detach().to("cpu").contiguous().clone()
            else:
                plain.setdefault(str(idx), {})[key] = val
    return tensors, {"param_groups": sd["param_groups"], "plain_state": plain}


def _optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor],
                            meta: Mapping[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, val in tensors.items():
        if not name.startswith("optim."):
            continue
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = val
    for idx, d in meta.get("plain_state", {}).items():
        state.setdefault(int(idx), {}).update(d)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _rng_to_tensors() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    name, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)  # type: ignore[misc]  # noqa: NPY002
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, pystate, pygauss = random.getstate()
    tensors["rng.python"] = torch.tensor(pystate, dtype=torch.int64)
    meta = {"numpy": [name, int(pos), int(has_gauss), float(gauss)],
            "python": [version, pygauss]}
    return tensors, meta


def _rng_from_tensors(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    name, pos, has_gauss, gauss = meta["numpy"]
    keys = tensors["rng.numpy"].numpy().astype(np.uint32)
    np.random.set_state((name, keys, int(pos), int(has_gauss), float(gauss)))  # noqa: NPY002
    version, pygauss = meta["python"]
    random.setstate((int(version), tuple(int(x) for x in tensors["rng.python"].tolist()), pygauss))


def _save_state(path: Path, optimizer: torch.optim.Optimizer,
                scaler: torch.amp.GradScaler | None) -> None:
    from safetensors.torch import save_file

    tensors, opt_meta = _optimizer_to_tensors(optimizer)
    rng_t, rng_meta = _rng_to_tensors()
    tensors.update(rng_t)
    meta = {"optimizer": json.dumps(opt_meta), "rng": json.dumps(rng_meta),
            "scaler": json.dumps(scaler.state_dict() if scaler is not None and scaler.is_enabled()
                                 else {})}
    atomic_write(path, lambda p: save_file(tensors, str(p), metadata=meta))


def _load_state(path: Path, optimizer: torch.optim.Optimizer,
                scaler: torch.amp.GradScaler | None) -> None:
    from safetensors import safe_open

    tensors: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        for k in fh.keys():  # noqa: SIM118 (safe_open has no __iter__)
            tensors[k] = fh.get_tensor(k)
    _optimizer_from_tensors(optimizer, tensors, json.loads(meta["optimizer"]))
    sc = json.loads(meta.get("scaler", "{}"))
    if scaler is not None and scaler.is_enabled() and sc:
        scaler.load_state_dict(sc)
    _rng_from_tensors(tensors, json.loads(meta["rng"]))


def read_sidecar(out_dir: str | Path) -> dict[str, Any] | None:
    """The JSON sidecar of the checkpoint in ``out_dir``, or ``None`` when there is none.

    Raises ``ValueError`` naming the file when it is not a valid ichprog checkpoint sidecar.
    """
    path = Path(out_dir) / SIDECAR
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an ichprog checkpoint (format {data.get('format')!r}, "
                         f"expected {CHECKPOINT_FORMAT!r})")
    return data


def save_checkpoint(out_dir: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    sidecar: Mapping[str, Any], scaler: torch.amp.GradScaler | None = None,
                    best_model_state: Mapping[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """Write an end-of-epoch checkpoint atomically and return the sidecar written.

    The weights and the optimizer/RNG state go to files named after the epoch; the sidecar
    ``checkpoint.json``, replaced last, commits them, and files of earlier epochs are removed
    afterwards. A run killed at any moment therefore leaves a consistent checkpoint behind.

    Parameters
    ----------
    out_dir
        Checkpoint folder.
    model, optimizer, scaler
        What to save.
    sidecar
        JSON-serialisable values; must hold ``"epoch"`` (finished epochs). ``"best_epoch"`` names
        the epoch whose weights are ``best_model_state``.
    best_model_state
        Weights of the best epoch, written when ``sidecar["best_epoch"]`` is new.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    epoch = int(sidecar["epoch"])
    data = dict(sidecar)
    data["format"] = CHECKPOINT_FORMAT
    data["weights"] = f"weights-e{epoch:04d}.safetensors"
    data["state"] = f"state-e{epoch:04d}.safetensors"
    save_weights(model, out / data["weights"], {"epoch": epoch})
    _save_state(out / data["state"], optimizer, scaler)
    best_epoch = data.get("best_epoch")
    if best_epoch:
        data["best_weights"] = f"best-e{int(best_epoch):04d}.safetensors"
        if not (out / data["best_weights"]).exists():
            if best_model_state is None:
                raise ValueError(f"best epoch {best_epoch} has no weights file in {out} and no "
                                 "best_model_state was given")
            from safetensors.torch import save_file

            best = {k: v.detach().to("cpu").contiguous() for k, v in best_model_state.items()}
            atomic_write(out / data["best_weights"],
                         lambda p: save_file(best, str(p), metadata={"epoch": str(best_epoch)}))
    write_json(data, out / SIDECAR)
    keep = {data["weights"], data["state"], data.get("best_weights")}
    for f in out.glob("*-e[0-9][0-9][0-9][0-9].safetensors"):
        if f.name not in keep:
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
    return data


def _load_best_state(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return dict(load_file(str(path)))


def load_checkpoint(out_dir: str | Path, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None,
                    scaler: torch.amp.GradScaler | None = None, which: str = "last",
                    restore_rng: bool = True) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` and return its sidecar.

    Parameters
    ----------
    out_dir
        Checkpoint folder.
    model
        Receives the weights (``which="last"``: after the last finished epoch; ``"best"``: of
        the best epoch).
    optimizer, scaler
        Receive their states when given (with ``which="last"``); the global random generators
        are restored too unless ``restore_rng=False``.
    """
    data = read_sidecar(out_dir)
    if data is None:
        raise FileNotFoundError(f"no checkpoint ({SIDECAR}) in {out_dir}")
    out = Path(out_dir)
    if which == "best":
        if not data.get("best_weights"):
            raise ValueError(f"the checkpoint in {out} has no best weights yet")
        model.load_state_dict(_load_best_state(out / data["best_weights"]))
        return data
    if which != "last":
        raise ValueError(f"which must be 'last' or 'best', got {which!r}")
    load_weights(model, out / data["weights"])
    if optimizer is not None:
        state_path = out / data["state"]
        if not state_path.is_file():
            raise FileNotFoundError(f"the checkpoint in {out} names a missing state file {state_path}")
        if restore_rng:
            _load_state(state_path, optimizer, scaler)
        else:
            rng = _rng_to_tensors()
            _load_state(state_path, optimizer, scaler)
            _rng_from_tensors(*rng)
    return data


# ---------------------------------------------------------------------------------------------
# fingerprints
# ---------------------------------------------------------------------------------------------
def _weights_digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _dataset_fingerprint(ds: Dataset) -> dict[str, Any]:
    fp: dict[str, Any] = {"length": len(ds)}  # type: ignore[arg-type]
    ids = getattr(ds, "ids", None)
    if ids is not None:
        fp["ids"] = hashlib.sha256("\x1f".join(map(str, ids)).encode()).hexdigest()[:16]
    cfg = getattr(ds, "config", None)
    if cfg is not None and hasattr(cfg, "key"):
        fp["preprocess"] = cfg.key()
    for attr in ("augment", "seed"):
        val = getattr(ds, attr, None)
        if dataclasses.is_dataclass(val) and not isinstance(val, type):
            fp[attr] = dataclasses.asdict(val)
        elif isinstance(val, bool | int | float | str):
            fp[attr] = val
    return fp


def _run_payload(model: MultiTaskNet, config: TrainConfig, train_ds: Dataset,
                 val_ds: Dataset, init_digest: str) -> dict[str, Any]:
    return {
        "train_config": config.hashed_fields(),
        "model": model.config(),
        "initial_weights": init_digest,
        "train_data": _dataset_fingerprint(train_ds),
        "val_data": _dataset_fingerprint(val_ds),
    }


def _diff_keys(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out += _diff_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    model
        The trained model, with the weights of the best epoch loaded.
    history
        One row per epoch: ``epoch``, ``train_loss``, ``train_loss_<task>``, ``val_loss``,
        ``val_loss_<task>``, ``val_<task>_<metric>`` for every metric of every task,
        ``val_score`` (the monitored score), ``improved``, ``lr``, ``seconds``.
    best_epoch, best_score
        The epoch (1-based) whose weights were kept, and its monitored score.
    epochs_run
        Epochs finished.
    stop_reason
        ``"early_stopping"`` or ``"max_epochs"``.
    config
        The :class:`TrainConfig` used.
    out_dir
        Checkpoint folder (``None`` when nothing was written).
    resumed_from
        The epoch a resumed run started after (``None`` for a fresh run).
    reused
        ``True`` when a finished run was found in ``out_dir`` and nothing was trained.
    device, precision
        Where and how the model was trained (e.g. ``"cpu"``, ``"bfloat16"``).
    config_hash
        Hash of everything that determines the result (see the module documentation).
    """

    model: MultiTaskNet
    history: pd.DataFrame
    best_epoch: int
    best_score: float
    epochs_run: int
    stop_reason: str
    config: TrainConfig
    out_dir: Path | None = None
    resumed_from: int | None = None
    reused: bool = False
    device: str = "cpu"
    precision: str = "float32"
    config_hash: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def plot_history(self, path: str | Path | None = None) -> Any:
        """Plot the history (see :func:`plot_history`); returns the matplotlib figure."""
        return plot_history(self.history, [t.name for t in self.model.tasks], path=path)


# ---------------------------------------------------------------------------------------------
# targets, evaluation
# ---------------------------------------------------------------------------------------------
def targets_to_classes(task: Task, loss_targets: np.ndarray) -> np.ndarray:
    """Invert :meth:`ichprog.tasks.Task.loss_targets`: class indices (or values) per sample.

    Parameters
    ----------
    task
        The task.
    loss_targets
        ``(n, n_outputs)`` targets as the datasets hold them (cumulative for ordinal tasks).
    """
    t = np.asarray(loss_targets, dtype=np.float64).reshape(len(loss_targets), -1)
    if task.kind == "continuous":
        return t[:, 0]
    if task.kind == "ordinal":
        return np.rint(t.sum(axis=1)).astype(np.int64)
    return np.rint(t[:, 0]).astype(np.int64)


def _batch_targets(batch: Mapping[str, Any], tasks: Sequence[Task], where: str) -> dict[str, torch.Tensor]:
    if "targets" not in batch:
        raise ValueError(f"the {where} dataset has no targets; build it with targets for the "
                         f"tasks {[t.name for t in tasks]}")
    targets = batch["targets"]
    missing = [t.name for t in tasks if t.name not in targets]
    if missing:
        raise KeyError(f"the {where} dataset lacks targets for task(s) {missing}; it has "
                       f"{sorted(targets)}")
    return {t.name: targets[t.name] for t in tasks}


def resolve_channels_last(channels_last: bool | None, device: torch.device,
                          amp_dtype: torch.dtype | None) -> bool:
    """``None`` -> ``True`` for bfloat16 autocast on a CPU, else ``False``; booleans pass."""
    if channels_last is None:
        return device.type == "cpu" and amp_dtype == torch.bfloat16
    return bool(channels_last)


def _to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if channels_last and x.ndim == 5:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    return x


def _progress(iterable: Any, enabled: bool, **kwargs: Any) -> Any:
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not enabled, **kwargs)


@torch.no_grad()
def _run_inference(model: nn.Module, dataset: Dataset, tasks: Sequence[Task], batch_size: int,
                   device: torch.device, amp_dtype: torch.dtype | None, channels_last: bool,
                   progress: bool, with_targets: bool, desc: str = "predict",
                   num_workers: int = 0) -> dict[str, Any]:
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    ids: list[str] = []
    logits: dict[str, list[np.ndarray]] = {t.name: [] for t in tasks}
    targets: dict[str, list[np.ndarray]] = {t.name: [] for t in tasks}
    loss_sum: dict[str, float] = {t.name: 0.0 for t in tasks}
    total_sum = 0.0
    n = 0
    try:
        for batch in _progress(loader, progress, desc=desc, leave=False, unit="batch"):
            x = _to_device(batch["image"], device, channels_last)
            with _autocast(device, amp_dtype):
                out = model(x)
            out = {k: v.float() for k, v in out.items()}
            bs = x.shape[0]
            ids += [str(i) for i in batch["id"]] if "id" in batch else [str(n + i) for i in range(bs)]
            for t in tasks:
                logits[t.name].append(out[t.name].cpu().numpy())
            if with_targets:
                tg = _batch_targets(batch, tasks, "validation")
                total, per_task = multitask_loss(out, tg, tasks)
                total_sum += float(total) * bs
                for t in tasks:
                    loss_sum[t.name] += float(per_task[t.name]) * bs
                    targets[t.name].append(tg[t.name].reshape(bs, -1).cpu().numpy())
            n += bs
    finally:
        model.train(was_training)
    result: dict[str, Any] = {"ids": ids, "n": n}
    result["logits"] = {k: np.concatenate(v).astype(np.float64) if v else np.zeros((0, 1))
                        for k, v in logits.items()}
    if with_targets:
        result["targets"] = {k: np.concatenate(v) for k, v in targets.items()}
        result["loss"] = total_sum / max(n, 1)
        result["loss_per_task"] = {k: v / max(n, 1) for k, v in loss_sum.items()}
    return result


def _probs_from_logits(task: Task, logits: np.ndarray) -> np.ndarray:
    if task.kind == "continuous":
        return logits
    return 1.0 / (1.0 + np.exp(-logits))


def predict_proba(model: MultiTaskNet, dataset: Dataset, batch_size: int = 8,
                  device: str | torch.device = "auto", precision: str = "auto",
                  channels_last: bool | None = None, progress: bool = False,
                  num_workers: int = 0) -> dict[str, np.ndarray]:
    """Per-task probabilities of a model on every item of a dataset, in dataset order.

    Parameters
    ----------
    model
        A :class:`~ichprog.models.MultiTaskNet` (evaluated in eval mode; its mode is restored).
    dataset
        Items ``{"image": (1, D, H, W), ...}`` (``CTDataset``, :class:`ArrayDataset`); targets
        are not needed.
    batch_size, device, precision, channels_last, num_workers
        As in :class:`TrainConfig`.
    progress
        Show a progress bar.

    Returns
    -------
    dict
        ``{task name: float64 array (n, n_outputs)}``: sigmoid outputs (``P(y > j)`` for the
        cumulative outputs of ordinal tasks), raw values for continuous tasks.
    """
    dev = resolve_device(device)
    amp, _ = resolve_precision(precision, dev)
    cl = resolve_channels_last(channels_last, dev, amp)
    model.to(dev)
    if cl:
        model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    res = _run_inference(model, dataset, model.tasks, batch_size, dev, amp, cl,
                         progress, with_targets=False, num_workers=num_workers)
    return {t.name: _probs_from_logits(t, res["logits"][t.name]) for t in model.tasks}


def _validation_metrics(tasks: Sequence[Task], res: Mapping[str, Any],
                        threshold: float) -> tuple[dict[str, float], float]:
    row: dict[str, float] = {"val_loss": float(res["loss"])}
    for t in tasks:
        row[f"val_loss_{t.name}"] = float(res["loss_per_task"][t.name])
    score = float("nan")
    for i, t in enumerate(tasks):
        y = targets_to_classes(t, res["targets"][t.name])
        probs = _probs_from_logits(t, res["logits"][t.name])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = t.metrics(y, probs, threshold=threshold)
        for k, v in m.items():
            row[f"val_{t.name}_{k}"] = float(v)
        if i == 0:
            if "balanced_accuracy" not in m:
                raise ValueError(f"the primary task {t.name!r} ({t.kind}) has no balanced accuracy "
                                 "to monitor; make a binary or ordinal task the first task")
            score = float(m["balanced_accuracy"])
    return row, score


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------
def _group_weights(n_samples: int, batch_size: int, steps: int) -> list[tuple[float, bool]]:
    """For each batch of an epoch: (weight of its mean loss, whether an optimizer step follows).

    Batches are grouped ``steps`` at a time (the last group may be shorter); a batch's weight is
    its share of the samples of its group, so every step averages over exactly its samples.
    """
    n_batches = math.ceil(n_samples / batch_size)
    sizes = [min(batch_size, n_samples - b * batch_size) for b in range(n_batches)]
    out: list[tuple[float, bool]] = []
    for g in range(0, n_batches, steps):
        group = sizes[g:g + steps]
        total = sum(group)
        for j, s in enumerate(group):
            out.append((s / total, j == len(group) - 1))
    return out


#: Projected training time (s) above which :func:`train` says how long it will take.
LONG_RUN_S = 600.0


def _warn_if_long(seconds: float, epochs_left: int, device: torch.device) -> None:
    """After the first epoch: warn when the remaining epochs will take long, with a way out."""
    left = seconds * epochs_left
    if left <= LONG_RUN_S:
        return
    hint = ("; recipe='cpu' (ichprog.recipes) trains a smaller model that learns in minutes on "
            "a CPU" if device.type == "cpu" else "")
    warnings.warn(f"training: the first epoch took {seconds:.0f} s, so the remaining "
                  f"{epochs_left} epoch(s) will take about {_duration(left)} on {device} (early "
                  f"stopping may end it sooner){hint}", UserWarning, stacklevel=3)


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _pos_weight(train_ds: Dataset, tasks: Sequence[Task]) -> dict[str, torch.Tensor]:
    from ichprog.models import balanced_pos_weight

    targets = getattr(train_ds, "targets", None)
    if not targets:
        raise ValueError("TrainConfig.class_balance needs a training dataset with a .targets "
                         "mapping (CTDataset or ArrayDataset built with targets)")
    return balanced_pos_weight(targets, tasks)


def _make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig,
                    steps_per_epoch: int) -> Any:
    """The learning-rate scheduler of ``config.schedule`` (``None`` for a constant rate), stepped
    once per optimizer step."""
    if config.schedule == "constant":
        return None
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=max(1, config.max_epochs * steps_per_epoch),
        pct_start=0.2)


def _fast_forward(scheduler: Any, steps: int) -> None:
    """Advance a freshly built scheduler by ``steps`` optimizer steps (when resuming): the
    schedule is a function of the step count alone, so this restores it exactly."""
    if scheduler is None:
        return
    with warnings.catch_warnings():  # "lr_scheduler.step() before optimizer.step()"
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(steps):
            scheduler.step()


def _seed_epoch(seed: int, epoch: int) -> torch.Generator:
    s = derive_seed(seed, epoch)
    seed_everything(s)
    return torch.Generator().manual_seed(s)


def _iter_epochs(start: int, stop: int, progress: bool) -> Iterator[int]:
    yield from _progress(range(start, stop + 1), progress, desc="epochs", unit="epoch",
                         initial=start - 1, total=stop)


def train(model: MultiTaskNet, train_ds: Dataset, val_ds: Dataset,
          config: TrainConfig | None = None, out_dir: str | Path | None = None, *,
          overwrite: bool = False,
          callback: Callable[[int, Mapping[str, Any]], None] | None = None) -> TrainResult:
    """Train a multi-task model with the paper's recipe (see the module documentation).

    Parameters
    ----------
    model
        The network; its tasks (``model.tasks``) define the loss and the monitored primary task.
    train_ds, val_ds
        Datasets with the ``CTDataset`` item contract, *with* targets for every task of the
        model. Oversampling and augmentation, if wanted, belong to ``train_ds``.
    config
        Hyper-parameters (default: the paper's, :class:`TrainConfig`).
    out_dir
        Checkpoint folder. An unfinished run with the same configuration there is resumed, a
        finished one is reused; ``None`` writes nothing (and cannot resume).
    overwrite
        Discard a checkpoint with a *different* configuration in ``out_dir`` instead of raising.
    callback
        Called as ``callback(epoch, history_row)`` after each epoch's checkpoint is written.

    Returns
    -------
    TrainResult
        With the best epoch's weights loaded into ``model``.

    Raises
    ------
    ValueError
        When ``out_dir`` holds a run with another configuration (the message lists the
        differences), when a dataset is empty, or when a loss is not finite (naming the
        patients of the batch).
    """
    config = config or TrainConfig()
    tasks = list(model.tasks)
    if len(train_ds) == 0 or len(val_ds) == 0:  # type: ignore[arg-type]
        raise ValueError(f"empty dataset: {len(train_ds)} training and "  # type: ignore[arg-type]
                         f"{len(val_ds)} validation items")  # type: ignore[arg-type]
    device = resolve_device(config.device)
    amp_dtype, use_scaler = resolve_precision(config.precision, device)
    precision_name = "float32" if amp_dtype is None else str(amp_dtype).replace("torch.", "")

    payload = _run_payload(model, config, train_ds, val_ds, _weights_digest(model))
    run_hash = stable_hash(payload, length=20)

    model.to(device)
    channels_last = resolve_channels_last(config.channels_last, device, amp_dtype)
    if channels_last:
        model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay, amsgrad=config.amsgrad)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    steps_per_epoch = sum(step for _, step in _group_weights(
        len(train_ds), config.batch_size, config.accumulation_steps))  # type: ignore[arg-type]
    scheduler = _make_scheduler(optimizer, config, steps_per_epoch)
    pos_weight = _pos_weight(train_ds, tasks) if config.class_balance else None

    out = Path(out_dir) if out_dir is not None else None
    start_epoch = 1
    best_score = -math.inf
    best_epoch = 0
    wait = 0
    rows: list[dict[str, Any]] = []
    best_state: dict[str, torch.Tensor] | None = None
    resumed_from: int | None = None
    stop_reason = "max_epochs"

    if out is not None:
        side = read_sidecar(out)
        if side is not None and side.get("config_hash") != run_hash:
            if not overwrite:
                diffs = _diff_keys(side.get("payload", {}), json.loads(json.dumps(
                    payload, default=json_default)))
                raise ValueError(
                    f"{out / SIDECAR} holds a run with a different configuration (hash "
                    f"{side.get('config_hash')} != {run_hash}); differences: "
                    f"{'; '.join(diffs) or 'unknown'}. Use another out_dir or pass "
                    "overwrite=True to discard it.")
            for f in [*out.glob("*-e[0-9][0-9][0-9][0-9].safetensors"), out / SIDECAR,
                      out / "history.csv", out / "history.png"]:
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()
            side = None
        if side is not None:
            load_checkpoint(out, model, optimizer, scaler)
            rows = list(side.get("history", []))
            best_score = float(side["best_score"]) if side.get("best_score") is not None else -math.inf
            best_epoch = int(side.get("best_epoch") or 0)
            wait = int(side.get("epochs_without_improvement", 0))
            start_epoch = int(side["epoch"]) + 1
            resumed_from = int(side["epoch"])
            if side.get("finished"):
                load_checkpoint(out, model, which="best")
                return TrainResult(
                    model=model, history=pd.DataFrame(rows), best_epoch=best_epoch,
                    best_score=best_score, epochs_run=int(side["epoch"]),
                    stop_reason=str(side.get("stop_reason")), config=config, out_dir=out,
                    resumed_from=resumed_from, reused=True, device=str(device),
                    precision=precision_name, config_hash=run_hash)
            if best_epoch:
                best_state = _load_best_state(out / side["best_weights"])
            _fast_forward(scheduler, (start_epoch - 1) * steps_per_epoch)

    train_fwd: Callable[[torch.Tensor], dict[str, torch.Tensor]] = model
    if config.compile:
        train_fwd = torch.compile(model)  # type: ignore[assignment]

    patience = config.patience or 0
    if patience and wait >= patience:
        stop_reason = "early_stopping"
        start_epoch = config.max_epochs + 1
    eval_bs = config.eval_batch_size or config.batch_size
    primary = tasks[0]

    for epoch in _iter_epochs(start_epoch, config.max_epochs, config.progress):
        t0 = time.perf_counter()
        gen = _seed_epoch(config.seed, epoch)
        if hasattr(train_ds, "set_epoch"):
            train_ds.set_epoch(epoch)
        loader = DataLoader(train_ds, batch_size=config.batch_size, shuffle=True, generator=gen,
                            num_workers=config.num_workers, drop_last=False,
                            persistent_workers=False)
        plan = _group_weights(len(train_ds), config.batch_size,  # type: ignore[arg-type]
                              config.accumulation_steps)
        model.train()
        optimizer.zero_grad(set_to_none=True)
        sums = {t.name: 0.0 for t in tasks}
        total_sum = 0.0
        n_seen = 0
        for b, batch in enumerate(_progress(loader, config.progress, desc=f"epoch {epoch}",
                                            leave=False, unit="batch")):
            x = _to_device(batch["image"], device, channels_last)
            targets = _batch_targets(batch, tasks, "training")
            try:
                with _autocast(device, amp_dtype):
                    outputs = train_fwd(x)
            except ValueError as exc:
                if x.shape[0] == 1 and "more than 1 value per channel" in str(exc):
                    raise ValueError(
                        f"epoch {epoch}: the last training batch holds a single sample "
                        f"({len(train_ds)} samples, batch_size={config.batch_size}) and "  # type: ignore[arg-type]
                        "the trunk's last BatchNorm sees one value per channel at this input "
                        "size; change batch_size or use larger inputs") from exc
                raise
            total, per_task = multitask_loss(outputs, targets, tasks, pos_weight)
            if not torch.isfinite(total):
                raise FloatingPointError(
                    f"non-finite training loss {float(total)} at epoch {epoch}, batch {b} "
                    f"(patients {list(batch.get('id', []))}); per task: "
                    f"{ {k: float(v) for k, v in per_task.items()} }")
            weight, step = plan[b]
            scaler.scale(total * weight).backward()
            if step:
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                if scheduler is not None and scheduler.last_epoch < scheduler.total_steps - 1:
                    scheduler.step()  # the rate of the next step (the last step's is final)
            bs = x.shape[0]
            n_seen += bs
            total_sum += float(total.detach()) * bs
            for t in tasks:
                sums[t.name] += float(per_task[t.name].detach()) * bs
        if n_seen != len(train_ds):  # type: ignore[arg-type]
            raise RuntimeError(f"the training loader yielded {n_seen} samples, expected "
                               f"{len(train_ds)}")  # type: ignore[arg-type]

        res = _run_inference(model, val_ds, tasks, eval_bs, device, amp_dtype,
                             channels_last, False, with_targets=True,
                             num_workers=config.num_workers)
        row: dict[str, Any] = {"epoch": epoch, "train_loss": total_sum / n_seen}
        row.update({f"train_loss_{k}": v / n_seen for k, v in sums.items()})
        vrow, score = _validation_metrics(tasks, res, config.threshold)
        row.update(vrow)
        row["val_score"] = score
        improved = (config.select == "last" or bool(np.isfinite(score) and score > best_score)
                    or best_epoch == 0)
        if improved:
            best_score = score if np.isfinite(score) else -math.inf
            best_epoch = epoch
            wait = 0
            best_state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
        else:
            wait += 1
        row["improved"] = improved
        row["lr"] = float(optimizer.param_groups[0]["lr"])
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        if epoch == start_epoch:
            _warn_if_long(row["seconds"], config.max_epochs - epoch, device)
        done = bool(patience and wait >= patience) or epoch == config.max_epochs
        if patience and wait >= patience:
            stop_reason = "early_stopping"
        if out is not None:
            _save_run(out, model, optimizer, scaler, best_state, rows, epoch, best_epoch,
                      best_score, wait, done, stop_reason, run_hash, payload, config, primary)
        if callback is not None:
            callback(epoch, row)
        if done:
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    history = pd.DataFrame(rows)
    epochs_run = int(history["epoch"].max()) if len(history) else 0
    result = TrainResult(model=model, history=history, best_epoch=best_epoch,
                         best_score=best_score, epochs_run=epochs_run, stop_reason=stop_reason,
                         config=config, out_dir=out, resumed_from=resumed_from, reused=False,
                         device=str(device), precision=precision_name, config_hash=run_hash)
    if out is not None and len(history):
        try:
            fig = result.plot_history(out / "history.png")
            import matplotlib.pyplot as plt

            plt.close(fig)
        except Exception as exc:  # plotting must never lose a finished run
            warnings.warn(f"could not plot the training history: {exc}", stacklevel=2)
    return result


def _save_run(out: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
              scaler: torch.amp.GradScaler, best_state: Mapping[str, torch.Tensor] | None,
              rows: list[dict[str, Any]], epoch: int, best_epoch: int, best_score: float,
              wait: int, done: bool, stop_reason: str, run_hash: str, payload: Mapping[str, Any],
              config: TrainConfig, primary: Task) -> None:
    out.mkdir(parents=True, exist_ok=True)
    history = pd.DataFrame(rows)
    write_csv(history, out / "history.csv")
    sidecar = {
        "epoch": epoch,
        "finished": done,
        "stop_reason": stop_reason if done else None,
        "best_epoch": best_epoch,
        "best_score": best_score if math.isfinite(best_score) else None,
        "monitor": f"val_{primary.name}_balanced_accuracy",
        "epochs_without_improvement": wait,
        "metrics": rows[-1],
        "history": rows,
        "history_file": "history.csv",
        "config": config.to_dict(),
        "config_hash": run_hash,
        "payload": payload,
        "versions": package_versions(),
    }
    save_checkpoint(out, model, optimizer, sidecar, scaler, best_model_state=best_state)


# ---------------------------------------------------------------------------------------------
# plotting
# ---------------------------------------------------------------------------------------------
def plot_history(history: pd.DataFrame, tasks: Sequence[str] | None = None,
                 path: str | Path | None = None, metrics: Sequence[str] = ("balanced_accuracy",
                                                                            "auc")) -> Any:
    """Plot a training history: losses per task (left) and validation metrics per task (right).

    Parameters
    ----------
    history
        :attr:`TrainResult.history` (or ``history.csv`` read back with pandas).
    tasks
        Task names to show (default: every task found in the columns).
    path
        Save the figure there as PNG (atomically) when given.
    metrics
        Validation metrics to draw for every task, where present.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if tasks is None:
        tasks = [c[len("train_loss_"):] for c in history.columns if c.startswith("train_loss_")]
    fig, (ax_l, ax_m) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    ep = history["epoch"]
    ax_l.plot(ep, history["train_loss"], "k-", label="train (weighted sum)")
    ax_l.plot(ep, history["val_loss"], "k--", label="validation (weighted sum)")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, t in enumerate(tasks):
        c = colors[i % len(colors)]
        if f"train_loss_{t}" in history:
            ax_l.plot(ep, history[f"train_loss_{t}"], "-", color=c, alpha=0.7, label=f"train {t}")
        if f"val_loss_{t}" in history:
            ax_l.plot(ep, history[f"val_loss_{t}"], "--", color=c, alpha=0.7, label=f"val {t}")
        for j, m in enumerate(metrics):
            col = f"val_{t}_{m}"
            if col in history:
                ax_m.plot(ep, history[col], ["-", ":", "-.", "--"][j % 4], color=c,
                          marker="o", ms=3, label=f"{t} {m}")
    if "improved" in history and "val_score" in history:
        best = history.loc[history["improved"].astype(bool), "epoch"]
        if len(best):
            ax_m.axvline(int(best.iloc[-1]), color="grey", lw=0.8, ls=":", label="best epoch")
    ax_l.set(xlabel="epoch", ylabel="BCE loss", title="Losses")
    ax_m.set(xlabel="epoch", ylabel="value", title="Validation metrics", ylim=(-0.02, 1.02))
    ax_l.legend(fontsize=7)
    ax_m.legend(fontsize=7)
    if path is not None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(p, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    return fig
