"""ichprog: prognosis after intracranial hemorrhage from head CT.

Multi-task 3D models (prognosis, GCS, age), their encoders and metrics, tabular baselines with
SHAP, saliency maps, and a phantom cohort to run all of it without patient data.

``pip install ichprog`` installs the core: :mod:`ichprog.encoding`, :mod:`ichprog.metrics`,
:mod:`ichprog.tasks` and :mod:`ichprog.constants` need only numpy, scipy, pandas and scikit-learn.
The other modules are loaded on first use and need an extra (``image``, ``tabular``, ``report``;
``all`` for everything); without it, importing them raises an :class:`ImportError` that names the
``pip install 'ichprog[...]'`` to run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ichprog._version import __version__

__all__ = [
    "__version__",
    "encoding",
    "metrics",
    "tasks",
    "data",
    "models",
    "training",
    "tabular",
    "saliency",
    "experiment",
    "recipes",
    "report",
    "fit_multitask",
    "cross_validate",
    "ablation",
    "FittedModel",
    "CVResult",
]

_SUBMODULES = {"encoding", "metrics", "tasks", "data", "models", "training", "tabular", "saliency",
               "experiment", "recipes", "report", "cli"}
_FROM_EXPERIMENT = {"fit_multitask", "cross_validate", "ablation", "FittedModel", "CVResult"}

if TYPE_CHECKING:  # pragma: no cover
    from ichprog.experiment import CVResult, FittedModel, ablation, cross_validate, fit_multitask


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"ichprog.{name}")
    if name in _FROM_EXPERIMENT:
        return getattr(importlib.import_module("ichprog.experiment"), name)
    raise AttributeError(f"module 'ichprog' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
