"""Checkpoints in safetensors (no pickle anywhere): weights, the optimizer, gradient-scaler and
random-generator states, and the JSON sidecar that commits them.

Every file has a checksum record (``<name>.sha256``) verified when it is read. The sidecar of the
previous epoch is kept as ``checkpoint.prev.json`` together with its files, so that a checkpoint
found damaged on resume (a truncated weights file, an edited sidecar) falls back to the epoch
before it, with a warning, instead of stopping the run."""

from __future__ import annotations

import contextlib
import json
import random
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ichprog._util import CHECKSUM_SUFFIX, atomic_write, verify_checksum, write_json

CHECKPOINT_FORMAT = "ichprog-checkpoint/1"
SIDECAR = "checkpoint.json"
#: The sidecar of the epoch before the last, kept for the fall-back on resume.
PREVIOUS_SIDECAR = "checkpoint.prev.json"


class CheckpointWarning(UserWarning):
    """A damaged checkpoint was skipped and the previous one loaded instead."""


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and header metadata of a safetensors file, after its checksum is verified.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file does not match its checksum record (:class:`ichprog._util.IntegrityError`) or
        is not a readable safetensors file (truncated, damaged header); the message names it.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    verify_checksum(path)
    tensors: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            for k in fh.keys():  # noqa: SIM118 (safe_open has no __iter__)
                tensors[k] = fh.get_tensor(k)
    except Exception as exc:  # safetensors raises its own SafetensorError, or OSError
        reason = str(exc) or type(exc).__name__
        raise ValueError(f"{path}: not a readable safetensors file, truncated or damaged "
                         f"({reason})") from exc
    return tensors, meta


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
    atomic_write(Path(path), lambda p: save_file(tensors, str(p), metadata=meta), checksum=True)


def load_weights(model: nn.Module, path: str | Path, strict: bool = True) -> nn.Module:
    """Load a safetensors ``state_dict`` written by :func:`save_weights` into ``model``.

    Raises ``FileNotFoundError`` naming the file, ``ValueError`` naming it when it is damaged
    or truncated (checksum record, safetensors header), and ``RuntimeError`` listing missing and
    unexpected keys when the file does not fit the model.
    """
    path = Path(path)
    state, _ = read_safetensors(path)
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
    atomic_write(path, lambda p: save_file(tensors, str(p), metadata=meta), checksum=True)


def _load_state(path: Path, optimizer: torch.optim.Optimizer,
                scaler: torch.amp.GradScaler | None) -> None:
    tensors, meta = read_safetensors(path)
    _optimizer_from_tensors(optimizer, tensors, json.loads(meta["optimizer"]))
    sc = json.loads(meta.get("scaler", "{}"))
    if scaler is not None and scaler.is_enabled() and sc:
        scaler.load_state_dict(sc)
    _rng_from_tensors(tensors, json.loads(meta["rng"]))


def read_sidecar(out_dir: str | Path, previous: bool = False) -> dict[str, Any] | None:
    """The JSON sidecar of the checkpoint in ``out_dir``, or ``None`` when there is none.

    ``previous=True`` reads the sidecar of the epoch before (``checkpoint.prev.json``).

    Raises ``ValueError`` naming the file when it is not a valid ichprog checkpoint sidecar or
    does not match its checksum record.
    """
    path = Path(out_dir) / (PREVIOUS_SIDECAR if previous else SIDECAR)
    if not path.is_file():
        return None
    verify_checksum(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not an ichprog checkpoint (a JSON object is expected)")
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
                         lambda p: save_file(best, str(p), metadata={"epoch": str(best_epoch)}),
                         checksum=True)
    keep = {data["weights"], data["state"], data.get("best_weights")}
    try:
        prev = read_sidecar(out)
    except ValueError:
        prev = None
    if prev is not None and int(prev.get("epoch", -1)) != epoch:
        # the epoch before stays on disk, for the fall-back of load_checkpoint
        write_json(prev, out / PREVIOUS_SIDECAR, checksum=True)
        keep |= {prev.get("weights"), prev.get("state"), prev.get("best_weights")}
    else:
        with contextlib.suppress(ValueError):
            older = read_sidecar(out, previous=True)
            if older is not None:
                keep |= {older.get("weights"), older.get("state"), older.get("best_weights")}
    write_json(data, out / SIDECAR, checksum=True)
    for f in out.glob("*-e[0-9][0-9][0-9][0-9].safetensors"):
        if f.name not in keep:
            for g in (f, f.with_name(f.name + CHECKSUM_SUFFIX)):
                with contextlib.suppress(FileNotFoundError):
                    g.unlink()
    return data


def _load_best_state(path: Path) -> dict[str, torch.Tensor]:
    return read_safetensors(path)[0]


def load_checkpoint(out_dir: str | Path, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None,
                    scaler: torch.amp.GradScaler | None = None, which: str = "last",
                    restore_rng: bool = True) -> dict[str, Any]:
    """Load the newest intact checkpoint written by :func:`save_checkpoint` and return its
    sidecar.

    The last epoch's checkpoint is tried first; when it is damaged (a file missing, truncated or
    not matching its checksum record) the previous epoch's is loaded instead, with a
    :class:`CheckpointWarning`. Parameters as in :func:`_load_checkpoint_from`.

    Raises
    ------
    FileNotFoundError
        No checkpoint in ``out_dir``.
    ValueError
        Neither checkpoint can be loaded; the message names the damaged files.
    """
    errors: list[str] = []
    for previous in (False, True):
        try:
            data = read_sidecar(out_dir, previous=previous)
            if data is None:
                if not previous:
                    errors.append(f"no {SIDECAR}")
                continue
            _load_checkpoint_from(out_dir, data, model, optimizer, scaler, which, restore_rng)
        except (ValueError, FileNotFoundError) as exc:
            if which not in ("last", "best"):
                raise
            errors.append(str(exc))
            continue
        if errors and errors != [f"no {SIDECAR}"]:
            warnings.warn(f"the last checkpoint in {out_dir} is damaged ({errors[0]}); resuming "
                          f"from the previous one (epoch {data.get('epoch')})", CheckpointWarning,
                          stacklevel=2)
        return data
    if errors == [f"no {SIDECAR}"]:
        raise FileNotFoundError(f"no checkpoint ({SIDECAR}) in {out_dir}")
    raise ValueError(f"no intact checkpoint in {out_dir}: " + "; ".join(errors))


def _load_checkpoint_from(out_dir: str | Path, data: Mapping[str, Any], model: nn.Module,
                          optimizer: torch.optim.Optimizer | None = None,
                          scaler: torch.amp.GradScaler | None = None, which: str = "last",
                          restore_rng: bool = True) -> None:
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
    out = Path(out_dir)
    if which == "best":
        if not data.get("best_weights"):
            raise ValueError(f"the checkpoint in {out} has no best weights yet")
        model.load_state_dict(_load_best_state(out / data["best_weights"]))
        return
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
