"""Prediction tasks and the paper's model configurations.

Every image model of the paper is a trunk, one head per :class:`Task` and a weighted sum of the
tasks' losses. A :class:`Preset` names such a list of tasks together with a trunk; the presets
below reproduce every column of the paper, and :func:`ablations` derives the loss ablations of its
Fig. 2 from any preset.

This module needs only numpy (no torch): the loss itself lives in :mod:`ichprog.models`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Literal

import numpy as np

from ichprog import encoding
from ichprog._validation import as_float_array, check_labels, first_bad
from ichprog.constants import AGE_COLUMN, GCS_COLUMN, GCS_ORDINAL_CLASSES, LABEL_COLUMN

__all__ = [
    "Task",
    "Preset",
    "PROGNOSIS",
    "GCS_BINARY",
    "GCS_ORDINAL",
    "AGE_BINARY",
    "BASELINE_PEREZ",
    "BASELINE_DENSENET",
    "BASELINE_GCS_BIN",
    "BASELINE_GCS_ORD",
    "BASELINE_AGE",
    "MT_BIN_GCS_BIN_AGE",
    "MT_ORD_GCS_BIN_AGE",
    "PRESETS",
    "ENCODERS",
    "ablations",
    "get_preset",
    "as_preset",
]

Kind = Literal["binary", "ordinal", "continuous"]


def _identity_binary(values: Any) -> np.ndarray:
    arr = as_float_array(values, "label")
    return check_labels(arr, values, "a binary label must be 0 or 1; got {raw!r} at position {pos}",
                        allowed=(0.0, 1.0))


def _identity_float(values: Any) -> np.ndarray:
    arr = as_float_array(values, "value")
    bad = ~np.isfinite(arr)
    if bad.any():
        pos = first_bad(bad)
        raise ValueError(f"a continuous target must be finite; got {arr[pos]!r} at position {pos}")
    return arr


#: Encoders a :class:`Task` can name (so that tasks serialise to JSON). Users may also pass a
#: callable directly.
ENCODERS: dict[str, Callable[..., np.ndarray]] = {
    "label": _identity_binary,
    "identity": _identity_float,
    "gcs_binary": encoding.gcs_binary,
    "gcs_ordinal": encoding.gcs_ordinal,
    "age_binary": encoding.age_binary,
}


@dataclass(frozen=True)
class Task:
    """One prediction target of a (multi-task) model.

    Parameters
    ----------
    name
        Key of the task's output (``"prognosis"``, ``"gcs"``, ``"age"``, ...).
    column
        Column of the clinical table the target is read from.
    kind
        ``"binary"`` (one logit, BCE), ``"ordinal"`` (``n_classes - 1`` cumulative logits, BCE on
        cumulative targets) or ``"continuous"`` (one output, mean squared error).
    n_classes
        Number of classes (2 for binary, ``>= 3`` for ordinal, 1 for continuous).
    weight
        Weight of the task's loss in the weighted sum.
    encoder
        Name in :data:`ENCODERS` or a callable mapping the raw column to class indices (or floats
        for continuous tasks).
    encoder_kwargs
        Keyword arguments for the encoder, e.g. ``{"threshold": 8}``.
    decode_rule
        Ordinal decoding rule (see :func:`ichprog.encoding.cumulative_decode`).
    label
        Human-readable name for tables and figures.
    """

    name: str
    column: str
    kind: Kind = "binary"
    n_classes: int = 2
    weight: float = 1.0
    encoder: str | Callable[..., np.ndarray] = "label"
    encoder_kwargs: Mapping[str, Any] = field(default_factory=dict)
    decode_rule: encoding.DecodeRule = "count"
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("binary", "ordinal", "continuous"):
            raise ValueError(f"Task {self.name!r}: kind must be binary, ordinal or continuous, got {self.kind!r}")
        if self.kind == "binary" and self.n_classes != 2:
            raise ValueError(f"Task {self.name!r}: a binary task has n_classes=2, got {self.n_classes}")
        if self.kind == "ordinal" and self.n_classes < 3:
            raise ValueError(f"Task {self.name!r}: an ordinal task needs n_classes >= 3, got {self.n_classes}")
        if self.kind == "continuous" and self.n_classes != 1:
            object.__setattr__(self, "n_classes", 1)
        try:
            weight = float(self.weight)
        except (TypeError, ValueError):
            raise ValueError(f"Task {self.name!r}: weight must be a number, got {self.weight!r}") from None
        if not (weight >= 0 and np.isfinite(weight)):
            raise ValueError(f"Task {self.name!r}: weight must be a finite number >= 0, got {self.weight!r}")
        object.__setattr__(self, "weight", weight)
        if isinstance(self.encoder, str) and self.encoder not in ENCODERS:
            raise ValueError(
                f"Task {self.name!r}: unknown encoder {self.encoder!r}; known: {sorted(ENCODERS)}"
            )
        if self.decode_rule not in encoding.DECODE_RULES:
            raise ValueError(f"Task {self.name!r}: decode_rule must be one of {encoding.DECODE_RULES}")
        # Sequences are kept as tuples, so that a task read back from JSON compares equal and hashes.
        object.__setattr__(self, "encoder_kwargs", {
            k: tuple(v) if isinstance(v, list) else v for k, v in dict(self.encoder_kwargs).items()
        })
        if not self.label:
            object.__setattr__(self, "label", self.name)

    def __hash__(self) -> int:
        return hash((self.name, self.column, self.kind, self.n_classes, self.weight, str(self.encoder),
                     tuple(sorted(self.encoder_kwargs.items())), self.decode_rule))

    # -- shapes ---------------------------------------------------------------------------------
    @property
    def n_outputs(self) -> int:
        """Number of logits of the task's head: 1 for binary/continuous, ``n_classes - 1`` ordinal."""
        return self.n_classes - 1 if self.kind == "ordinal" else 1

    @property
    def labels(self) -> list[int]:
        """All class labels of the task (pass them to the ordinal metrics)."""
        return list(range(self.n_classes)) if self.kind != "continuous" else []

    # -- targets --------------------------------------------------------------------------------
    def encode(self, values: Any) -> np.ndarray:
        """Raw column values -> class indices (int) or floats (continuous)."""
        fn = ENCODERS[self.encoder] if isinstance(self.encoder, str) else self.encoder
        out = np.asarray(fn(values, **self.encoder_kwargs))
        if self.kind != "continuous":
            bad = (out < 0) | (out >= self.n_classes)
            if bad.any():
                pos = first_bad(bad)
                raise ValueError(
                    f"Task {self.name!r}: encoder produced class {out[pos]} at position {pos}, "
                    f"outside 0..{self.n_classes - 1}"
                )
        return out

    def targets(self, table: Any) -> np.ndarray:
        """Class indices (or floats) of this task for every row of a clinical table."""
        if self.column not in table.columns:
            raise KeyError(
                f"Task {self.name!r} reads column {self.column!r}, which the clinical table lacks"
            )
        try:
            return self.encode(table[self.column])
        except ValueError as exc:
            raise ValueError(f"column {self.column!r}: {exc}") from exc

    def loss_targets(self, classes: Any) -> np.ndarray:
        """Float targets ``(n, n_outputs)`` for the loss: cumulative for ordinal tasks."""
        arr = np.asarray(classes)
        if self.kind == "ordinal":
            return encoding.cumulative_encode(arr, self.n_classes).astype(np.float32)
        if self.kind == "binary":
            arr = _identity_binary(arr)
        return arr.astype(np.float32).reshape(-1, 1)

    # -- outputs --------------------------------------------------------------------------------
    def decode(self, probs: Any, threshold: float = 0.5) -> np.ndarray:
        """Probabilities ``(n, n_outputs)`` (or ``(n,)``) -> predicted classes (or values)."""
        p = np.asarray(probs, dtype=float)
        if self.kind == "ordinal":
            return encoding.cumulative_decode(p, rule=self.decode_rule, threshold=threshold)
        p = p.reshape(-1)
        if self.kind == "binary":
            return (p >= threshold).astype(np.int64)
        return p

    def score(self, probs: Any) -> np.ndarray:
        """One score per sample for ranking metrics: P(class 1) for binary tasks, the expected
        class ``sum_j P(y > j)`` for ordinal ones, the value for continuous ones."""
        p = np.asarray(probs, dtype=float)
        if self.kind == "ordinal":
            return p.reshape(len(p), -1).sum(axis=1)
        return p.reshape(-1)

    def metrics(self, y_true: Any, probs: Any, threshold: float = 0.5) -> dict[str, float]:
        """The paper's metrics for this task: binary metrics for binary tasks, ordinal metrics
        (on decoded classes) for ordinal ones, MAE/RMSE for continuous ones."""
        from ichprog import metrics as _m

        y = np.asarray(y_true)
        if self.kind == "binary":
            return _m.binary_metrics(y, self.score(probs), threshold=threshold)
        if self.kind == "ordinal":
            return _m.ordinal_metrics(y, self.decode(probs, threshold), labels=self.labels)
        pred = self.decode(probs)
        err = pred - y.astype(float)
        return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2)))}

    # -- variants and serialisation -------------------------------------------------------------
    def replace(self, **changes: Any) -> Task:
        """A copy with some fields changed, e.g. ``task.replace(weight=0.5)``."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if not isinstance(self.encoder, str):
            d["encoder"] = f"{getattr(self.encoder, '__module__', '?')}.{getattr(self.encoder, '__qualname__', repr(self.encoder))}"
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Task:
        d = dict(d)
        if isinstance(d.get("encoder"), str) and d["encoder"] not in ENCODERS:
            raise ValueError(
                f"Task {d.get('name')!r} was saved with a custom encoder {d['encoder']!r}; "
                "rebuild the Task with that callable instead of loading it from JSON"
            )
        return cls(**d)


PROGNOSIS = Task("prognosis", LABEL_COLUMN, "binary", weight=0.4, encoder="label",
                 label="Prognosis")
GCS_BINARY = Task("gcs", GCS_COLUMN, "binary", weight=0.3, encoder="gcs_binary",
                  label="Binary GCS")
GCS_ORDINAL = Task("gcs", GCS_COLUMN, "ordinal", n_classes=len(GCS_ORDINAL_CLASSES), weight=0.3,
                   encoder="gcs_ordinal", label="Ordinal GCS")
AGE_BINARY = Task("age", AGE_COLUMN, "binary", weight=0.3, encoder="age_binary",
                  label="Binary age")


@dataclass(frozen=True)
class Preset:
    """A named model configuration: the tasks (first = the monitored, primary task) and a trunk."""

    name: str
    tasks: tuple[Task, ...]
    trunk: str = "densenet121"
    label: str = ""

    def __post_init__(self) -> None:
        tasks = tuple(self.tasks)
        if not tasks:
            raise ValueError(f"Preset {self.name!r} has no task")
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"Preset {self.name!r}: task names must be unique, got {names}")
        object.__setattr__(self, "tasks", tasks)
        if not self.label:
            object.__setattr__(self, "label", self.name)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, key: int | str) -> Task:
        if isinstance(key, str):
            for t in self.tasks:
                if t.name == key:
                    return t
            raise KeyError(f"Preset {self.name!r} has no task {key!r}; tasks: {self.task_names}")
        return self.tasks[key]

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def primary(self) -> Task:
        """The task whose validation balanced accuracy drives early stopping."""
        return self.tasks[0]

    @property
    def weights(self) -> dict[str, float]:
        return {t.name: t.weight for t in self.tasks}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "trunk": self.trunk,
                "tasks": [t.to_dict() for t in self.tasks]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Preset:
        return cls(name=d["name"], label=d.get("label", ""), trunk=d.get("trunk", "densenet121"),
                   tasks=tuple(Task.from_dict(t) for t in d["tasks"]))


def _single(name: str, task: Task, trunk: str = "densenet121", label: str = "") -> Preset:
    return Preset(name, (task.replace(weight=1.0),), trunk=trunk, label=label or name)


BASELINE_PEREZ = _single("baseline_perez", PROGNOSIS, trunk="perez2023", label="Baseline [Perez 2023]")
BASELINE_DENSENET = _single("baseline_densenet", PROGNOSIS, label="Baseline DenseNet121")
BASELINE_GCS_BIN = _single("baseline_gcs_bin", GCS_BINARY, label="Baseline binary GCS")
BASELINE_GCS_ORD = _single("baseline_gcs_ord", GCS_ORDINAL, label="Baseline ordinal GCS")
BASELINE_AGE = _single("baseline_age", AGE_BINARY, label="Baseline binary age")
MT_BIN_GCS_BIN_AGE = Preset("mt_bin_gcs_bin_age", (PROGNOSIS, GCS_BINARY, AGE_BINARY),
                            label="MT (bin GCS, bin age)")
MT_ORD_GCS_BIN_AGE = Preset("mt_ord_gcs_bin_age", (PROGNOSIS, GCS_ORDINAL, AGE_BINARY),
                            label="MT (ord GCS, bin age)")

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (BASELINE_PEREZ, BASELINE_DENSENET, BASELINE_GCS_BIN, BASELINE_GCS_ORD, BASELINE_AGE,
              MT_BIN_GCS_BIN_AGE, MT_ORD_GCS_BIN_AGE)
}


def get_preset(name: str) -> Preset:
    """Look a preset up by name (see :data:`PRESETS`)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known presets: {sorted(PRESETS)}") from None


def as_preset(tasks: Preset | Sequence[Task] | Task | str, trunk: str | None = None) -> Preset:
    """Normalise what users pass as ``tasks=`` (a preset, its name, one task or a list of tasks)."""
    if isinstance(tasks, str):
        preset = get_preset(tasks)
    elif isinstance(tasks, Preset):
        preset = tasks
    elif isinstance(tasks, Task):
        preset = Preset(tasks.name, (tasks,))
    else:
        seq = tuple(tasks)
        if not all(isinstance(t, Task) for t in seq):
            raise TypeError("tasks must be a Preset, a preset name, a Task or a sequence of Task")
        preset = Preset("+".join(t.name for t in seq), seq)
    if trunk is not None and trunk != preset.trunk:
        preset = dataclasses.replace(preset, trunk=trunk,
                                     label=_relabel(preset.label, preset.trunk, trunk))
    return preset


#: How each trunk is named in model labels.
TRUNK_LABELS = {"densenet121": "DenseNet121", "densenet_tiny": "tiny DenseNet",
                "perez2023": "Perez CNN"}


def _relabel(label: str, old: str, new: str) -> str:
    """A preset's label once its trunk is replaced: the label names what the model runs."""
    old_name, new_name = TRUNK_LABELS.get(old, old), TRUNK_LABELS.get(new, new)
    if old_name in label:
        return label.replace(old_name, new_name)
    return f"{label} [{new_name}]"


def ablations(preset: Preset | Sequence[Task], keep: str | None = None,
              primary_weight: float | None = None) -> dict[str, Preset]:
    """The loss ablations of the paper's Fig. 2, derived from a multi-task preset.

    Returns every configuration that keeps the primary task (``keep``, default the preset's first
    task) and removes any subset of the auxiliary tasks, largest first: with three tasks the full
    model, the two models with one auxiliary loss removed, and the primary task alone. Removed
    terms are dropped; the remaining weights stay as they are (e.g. 0.4 / 0.3), as the paper
    describes. The authors' scripts raised the prognosis weight to 0.5 in the reduced models; pass
    ``primary_weight=0.5`` to reproduce that (it applies to every configuration but the full one).
    """
    p = as_preset(preset)
    primary = p[keep] if keep is not None else p.primary
    aux = [t for t in p.tasks if t.name != primary.name]
    out: dict[str, Preset] = {}
    reduced_primary = primary if primary_weight is None else primary.replace(weight=primary_weight)
    for k in range(len(aux), -1, -1):
        for subset in combinations(aux, k):
            tasks = ((primary if k == len(aux) else reduced_primary), *subset)
            if k == len(aux):
                name, label = p.name, p.label
            elif k == 0:
                name, label = f"{p.name}-only_{primary.name}", f"{primary.label} only"
            else:
                dropped = [t for t in aux if t not in subset]
                name = f"{p.name}-no_" + "-no_".join(t.name for t in dropped)
                label = f"{p.label} w/o " + ", ".join(t.label for t in dropped)
            out[name] = Preset(name, tasks, trunk=p.trunk, label=label)
    return out
