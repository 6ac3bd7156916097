"""The hyper-parameters and run-time options of a training run: :class:`TrainConfig`."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Precision = Literal["auto", "fp32", "bf16", "fp16"]
Schedule = Literal["constant", "onecycle"]
Select = Literal["best", "last"]
TTA = Literal["none", "flip"]


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
    tta
        Test-time augmentation of every prediction (validation, test folds, ``predict``).
        ``"none"`` (the paper's): the volume as it is. ``"flip"``: the mean of the probabilities
        of the volume and of its left-right mirror image (the last axis, ``W``, which is the
        patient's left-right axis when the pre-processing reorients, its default); the
        prediction is then the same for a scan and its mirror image. Prognosis, GCS and age do
        not depend on the side of the lesion, and on the phantom cohort the mirror halves the
        variance of a small network's predictions (see the documentation page "Training
        recipes"). Costs a second forward pass per prediction.
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
    tta: TTA = "none"

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
        need(self.tta in ("none", "flip"), "tta", "'none' or 'flip'")
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
