"""Named training recipes: how a model is trained, apart from what it is trained for.

A :class:`Recipe` bundles everything between a cohort and a trained model that is not the choice
of tasks: the pre-processing (input size and Hounsfield window), the trunk, its dropout, the
optimiser settings, the learning-rate schedule, which epoch's weights are kept, and whether the
training part is augmented. :func:`ichprog.fit_multitask`, :func:`ichprog.cross_validate` and
:func:`ichprog.experiment.ablation` take ``recipe=`` (a name or a :class:`Recipe`); arguments
passed explicitly (``preprocess=``, ``config=``, ``trunk=``, ``augment=``, ...) override the
recipe's.

Two recipes are registered in :data:`RECIPES`:

``"paper"`` (the default)
    The paper's protocol: 40 x 301 x 301 input, window 15-100 HU, DenseNet121 (dropout 0.2),
    AdamW at a constant 1e-3, batches of 8 with 3-step gradient accumulation, up to 100 epochs
    with early stopping (patience 20) on the validation balanced accuracy, augmentation. GPU
    work: about 4.4 s per training sample on 2 CPU cores.

``"cpu"``
    A recipe that learns in minutes on a laptop CPU: 32 x 48 x 48 input, window -20-100 HU,
    ``densenet_tiny`` (no dropout), AdamW with a one-cycle schedule peaking at 3e-3 over 30
    epochs, the last epoch's weights, batches of 8 without accumulation, float32, every binary
    and ordinal output balanced in the loss (``class_balance``), no
    augmentation (the paper's zoom of up to 10 % rescales the hematoma volume and the CSF
    spaces, which are what the model must measure), no validation part (with the last
    epoch kept, nothing is chosen on it, and at this size each patient counts), and every
    prediction averaged over the volume and its left-right mirror image (``tta="flip"``).
    Why each setting differs from the paper's was measured on the phantom cohort (documentation
    page "Training recipes").

Examples
--------
>>> from ichprog.recipes import get_recipe
>>> cpu = get_recipe("cpu")
>>> cpu.preprocess_config().shape, cpu.preprocess_config().window_range
((32, 48, 48), (-20.0, 100.0))
>>> cfg = cpu.train_config(seed=3)
>>> cfg.schedule, cfg.select, cfg.max_epochs, cfg.seed
('onecycle', 'last', 30, 3)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ichprog._extras import require_extra

# the recipes are checked against ichprog.data and ichprog.training when defined
require_extra(__name__, "image", ("torch", "monai", "nibabel", "safetensors"))

__all__ = ["Recipe", "RECIPES", "get_recipe", "as_recipe"]

#: The trunk a recipe's ``trunk`` replaces (the paper's); presets with another trunk keep theirs.
_REPLACEABLE_TRUNK = "densenet121"


def _frozen(values: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(values or {}))


@dataclass(frozen=True)
class Recipe:
    """How to train an image model (see the module documentation).

    Parameters
    ----------
    name
        Registry name.
    summary
        One line shown in listings and run manifests.
    preprocess
        :class:`~ichprog.data.PreprocessConfig` fields that differ from its defaults.
    train
        :class:`~ichprog.training.TrainConfig` fields that differ from its defaults.
    trunk
        Trunk that replaces the paper's DenseNet121 of a preset (``None``: keep the preset's).
        Presets with another trunk (the Perez et al. baseline) keep theirs.
    dropout
        Trunk dropout (``None``: the trunk's own default).
    augment
        Augment the training part with the paper's random rotation, zoom and noise.
    val_fraction
        Share of each training part held out for validation (the paper's 0.1). 0 trains on all
        of it, which the recipe's training configuration must allow (``select="last"``, no
        early stopping): with nothing chosen on it, a validation part only costs patients.
    """

    name: str
    summary: str
    preprocess: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    trunk: str | None = None
    dropout: float | None = None
    augment: bool = True
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "preprocess", _frozen(self.preprocess))
        object.__setattr__(self, "train", _frozen(self.train))
        # fail now, naming the recipe, rather than at the first fit
        try:
            self.preprocess_config()
            cfg = self.train_config()
            if not 0.0 <= self.val_fraction < 1.0:
                raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
            if self.val_fraction == 0.0 and (cfg.select != "last" or cfg.patience):
                raise ValueError("val_fraction=0 leaves no validation part, which "
                                 "select='best' and early stopping need")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"recipe {self.name!r}: {exc}") from exc

    def preprocess_config(self, **changes: Any) -> Any:
        """The :class:`~ichprog.data.PreprocessConfig` of this recipe, with ``changes``."""
        from ichprog.data import PreprocessConfig

        return PreprocessConfig(**{**self.preprocess, **changes})

    def train_config(self, seed: int = 0, **changes: Any) -> Any:
        """The :class:`~ichprog.training.TrainConfig` of this recipe, seeded, with ``changes``."""
        from ichprog.training import TrainConfig

        return TrainConfig(**{**self.train, "seed": seed, **changes})

    def trunk_for(self, preset_trunk: str) -> str:
        """The trunk to use for a preset whose own trunk is ``preset_trunk``."""
        if self.trunk is not None and preset_trunk == _REPLACEABLE_TRUNK:
            return self.trunk
        return preset_trunk

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (run manifests)."""
        return {"name": self.name, "summary": self.summary,
                "preprocess": {k: list(v) if isinstance(v, tuple) else v
                               for k, v in self.preprocess.items()},
                "train": dict(self.train), "trunk": self.trunk, "dropout": self.dropout,
                "augment": self.augment, "val_fraction": self.val_fraction}

    def replace(self, **changes: Any) -> Recipe:
        """A copy with some fields changed (e.g. ``train={**r.train, "max_epochs": 5}``)."""
        return dataclasses.replace(self, **changes)


PAPER = Recipe(
    "paper",
    "the paper's protocol: 40 x 301 x 301, DenseNet121, constant lr 1e-3, early stopping (GPU)",
)

CPU = Recipe(
    "cpu",
    "learns in minutes on a CPU: 32 x 48 x 48, window -20-100 HU, densenet_tiny, one-cycle lr "
    "3e-3 over 30 epochs, last epoch, balanced outputs, no augmentation, no validation part, "
    "predictions averaged with the mirror image",
    preprocess={"shape": (32, 48, 48), "window_level": 40.0, "window_width": 120.0},
    train={"max_epochs": 30, "lr": 3e-3, "schedule": "onecycle", "select": "last",
           "patience": None, "accumulation_steps": 1, "precision": "fp32",
           "class_balance": True, "tta": "flip"},
    trunk="densenet_tiny",
    augment=False,
    val_fraction=0.0,
)

#: The registered recipes by name.
RECIPES: Mapping[str, Recipe] = MappingProxyType({r.name: r for r in (PAPER, CPU)})


def get_recipe(name: str) -> Recipe:
    """The registered recipe ``name``; ``ValueError`` lists the known ones."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {sorted(RECIPES)}") from None


def as_recipe(recipe: Recipe | str | None) -> Recipe:
    """A :class:`Recipe` from a recipe, its name, or ``None`` (the paper's)."""
    if recipe is None:
        return PAPER
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, str):
        return get_recipe(recipe)
    raise TypeError(f"recipe must be a Recipe, a recipe name or None, got {type(recipe).__name__}")
