"""The authors' published fold checkpoints as :class:`~ichprog.models.MultiTaskNet` models.

The paper's authors saved the ``state_dict`` of their own modules. Each holds

* ``feature_extractor``: MONAI's ``DenseNet121(spatial_dims=3, in_channels=1, out_channels=1
  or 14, dropout_prob=0.2)`` with ``class_layers`` replaced by ``Identity`` (so its keys are
  ``feature_extractor.features.*``, exactly the parameters and buffers of ichprog's
  ``densenet121`` trunk);
* one head per task, ``Sequential(ReLU, AdaptiveAvgPool3d(1), Flatten, Linear(1024, k))`` (keys
  ``<head>.3.weight`` and ``<head>.3.bias``), named ``binary_head`` (prognosis),
  ``ordinal_head`` or ``ordinal_headGCS`` (GCS: ``k = 1`` binary, ``k = 2`` ordinal) and
  ``ordinal_headAge`` (age).

ichprog's heads compute the same function (ReLU, global average pooling, flatten, linear), so
the weights are renamed, checked against the chosen preset, and loaded. The file is read with
``torch.load(weights_only=True)``: a checkpoint that holds anything besides tensors and plain
containers is refused, and no code stored in it runs.

Feed the models with :data:`ichprog.data.AUTHORS_PREPROCESS`, the authors' input pipeline.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from ichprog.models.multitask import MultiTaskNet
from ichprog.tasks import Preset, Task, as_preset

__all__ = ["load_authors_checkpoint", "read_authors_state_dict", "UnsafeCheckpointError",
           "AUTHORS_HEADS"]

#: The authors' head names and the task each one predicts.
AUTHORS_HEADS: Mapping[str, str] = {
    "binary_head": "prognosis",
    "ordinal_head": "gcs",
    "ordinal_headGCS": "gcs",
    "ordinal_headAge": "age",
}
_TRUNK_PREFIX = "feature_extractor.features."
_LINEAR_INDEX = "3"  # Sequential(ReLU, AdaptiveAvgPool3d, Flatten, Linear)
_WRAPPERS = ("state_dict", "model_state_dict", "model")


class UnsafeCheckpointError(ValueError):
    """A checkpoint holds Python objects other than tensors and plain containers (arbitrary
    pickle), so it is refused without running anything in it."""


def read_authors_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a checkpoint file as a flat ``{name: tensor}`` dict, without running pickle code.

    ``torch.load(path, map_location="cpu", weights_only=True)``; a dict wrapping the weights
    under ``state_dict``, ``model_state_dict`` or ``model`` is unwrapped, and the ``module.``
    prefix of ``DataParallel`` is removed.

    Raises
    ------
    FileNotFoundError
        No such file.
    UnsafeCheckpointError
        The file's pickle asks for anything but tensors and containers; nothing in it ran.
    ValueError
        Not a PyTorch file, or not a dict of tensors.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    with open(p, "rb") as f:
        head = f.read(4)
    # torch.save writes a zip archive; files of torch < 1.6 start with a pickle protocol byte
    if head != b"PK\x03\x04" and not head.startswith(b"\x80"):
        raise ValueError(f"{p}: not a PyTorch checkpoint (neither a zip archive nor a pickle)")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = next((line.strip() for line in str(exc).splitlines()
                       if "Unsupported" in line), type(exc).__name__)
        raise UnsafeCheckpointError(
            f"{p}: refused: the file holds Python objects beyond tensors and plain containers, "
            "which only a full pickle load could create (and that runs code from the file). "
            "ichprog reads weights only (torch.load(weights_only=True)); nothing in the file "
            f"was run. If you trust its origin, save its state_dict alone. Details: "
            f"{detail}") from None
    except Exception as exc:  # torch raises several types for files it cannot read
        raise ValueError(f"{p}: not a PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc
    if isinstance(obj, Mapping):
        for key in _WRAPPERS:  # {"state_dict": {...}, "epoch": ...}
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{p}: expected a state dict (names -> tensors), got "
                         f"{type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{p}: entries that are not tensors: {bad[:5]}")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _heads_in(state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Authors' head name -> number of outputs."""
    out: dict[str, int] = {}
    for head in AUTHORS_HEADS:
        w = state.get(f"{head}.{_LINEAR_INDEX}.weight")
        if w is not None:
            out[head] = int(w.shape[0])
    return out


def _describe_heads(heads: Mapping[str, int]) -> str:
    from ichprog.tasks import PRESETS

    text = ", ".join(f"{h} ({k} output{'s' if k != 1 else ''})" for h, k in heads.items())
    fits = [name for name, preset in PRESETS.items()
            if preset.trunk == "densenet121"
            and sorted((t.name, t.n_outputs) for t in preset.tasks)
            == sorted((AUTHORS_HEADS[h], k) for h, k in heads.items())]
    return text + (f"; presets with these heads: {fits}" if fits else "")


def _rename(state: Mapping[str, torch.Tensor], preset: Preset, source: str
            ) -> dict[str, torch.Tensor]:
    heads = _heads_in(state)
    if not heads:
        raise ValueError(f"{source}: no head of the authors' layout ({sorted(AUTHORS_HEADS)}, "
                         f"keys '<head>.3.weight'); is it one of their checkpoints?")
    by_task: dict[str, str] = {}
    for head in heads:
        task = AUTHORS_HEADS[head]
        if task in by_task:
            raise ValueError(f"{source}: two heads for the task {task!r}: {by_task[task]} and "
                             f"{head}")
        by_task[task] = head
    wanted = {t.name: t for t in preset.tasks}
    missing = [t for t in wanted if t not in by_task]
    extra = [by_task[t] for t in by_task if t not in wanted]
    if missing or extra:
        raise ValueError(
            f"{source}: the checkpoint does not fit the preset {preset.name!r} (tasks "
            f"{list(wanted)}): " + (f"no head for {missing}; " if missing else "")
            + (f"heads {extra} are not tasks of the preset; " if extra else "")
            + f"the file has {_describe_heads(heads)}")
    for name, wanted_task in wanted.items():
        k = heads[by_task[name]]
        if k != wanted_task.n_outputs:
            raise ValueError(
                f"{source}: head {by_task[name]} has {k} output(s), but the preset's task "
                f"{name!r} ({wanted_task.kind}) has {wanted_task.n_outputs}; the file has "
                f"{_describe_heads(heads)}")
    out: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for key, value in state.items():
        if key.startswith(_TRUNK_PREFIX):
            out["trunk." + key[len(_TRUNK_PREFIX):]] = value
            continue
        head, _, rest = key.partition(".")
        if head in heads and rest in (f"{_LINEAR_INDEX}.weight", f"{_LINEAR_INDEX}.bias"):
            out[f"heads.{AUTHORS_HEADS[head]}.out.{rest.split('.')[1]}"] = value
            continue
        unexpected.append(key)
    if unexpected:
        raise ValueError(f"{source}: {len(unexpected)} entr(y/ies) outside the authors' layout: "
                         f"{unexpected[:10]}")
    return out


def load_authors_checkpoint(path: str | os.PathLike[str],
                            preset: Preset | str | Task | list[Task] | tuple[Task, ...],
                            device: str | torch.device = "cpu") -> MultiTaskNet:
    """Load one of the authors' published fold checkpoints as a :class:`MultiTaskNet`.

    Parameters
    ----------
    path
        A ``.pth`` / ``.pt`` file holding the ``state_dict`` of the authors' module (see the
        module documentation for the layout).
    preset
        The tasks of the model (a :class:`~ichprog.tasks.Preset`, its name, a task or a list
        of tasks), e.g. ``"mt_ord_gcs_bin_age"`` for their ordinal-GCS multi-task model
        (``binary_head``, ``ordinal_headGCS`` with 2 outputs, ``ordinal_headAge``),
        ``"mt_bin_gcs_bin_age"`` for the binary-GCS one. The trunk is always DenseNet121.
    device
        Where the returned model lives.

    Returns
    -------
    MultiTaskNet
        In evaluation mode; ``model(x)`` on a ``(N, 1, 40, 301, 301)`` batch made with
        :data:`ichprog.data.AUTHORS_PREPROCESS` gives the logits of the authors' model.

    Raises
    ------
    FileNotFoundError
        No such file.
    UnsafeCheckpointError
        The file would need a full pickle load; it is refused and nothing in it runs.
    ValueError
        Not the authors' layout, or heads that do not match the preset's tasks and output
        counts (the message lists the file's heads and the presets that fit them), or tensors
        of the wrong shape. Every message names the file.

    Examples
    --------
    >>> model = load_authors_checkpoint("DenseNet_ThreeClassGCS_fold0.pth",
    ...                                 "mt_ord_gcs_bin_age")  # doctest: +SKIP
    """
    source = str(path)
    state = read_authors_state_dict(path)
    p = as_preset(preset)
    net = MultiTaskNet(p, trunk="densenet121")
    renamed = _rename(state, net.preset, source)
    try:
        net.load_state_dict(renamed, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{source}: the weights do not fit DenseNet121 with the heads of "
                         f"{net.preset.name!r}: {exc}") from None
    return net.to(device).eval()
