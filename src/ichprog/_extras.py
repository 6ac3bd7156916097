"""Optional dependencies ("extras") and the one check that names a missing one.

``pip install ichprog`` installs the core (numpy, scipy, pandas, scikit-learn): the encoders, the
metrics, the tasks and the constants. The rest of the library needs an extra, declared in
``pyproject.toml`` under ``[project.optional-dependencies]``:

=========== ===================================================== ===============================
extra       packages (import names)                               for
=========== ===================================================== ===============================
``image``   torch, monai, nibabel, safetensors, captum, openpyxl  data, models, training,
                                                                  experiment, saliency
``tabular`` shap, xgboost                                         tabular baselines and SHAP
``report``  matplotlib                                            reports and every figure
``dicom``   pydicom                                               reading DICOM series
``ray``     ray                                                   running jobs on a Ray cluster
``all``     all of the above
=========== ===================================================== ===============================

A heavy package calls :func:`require_extra` at the top of its ``__init__``; a function that needs
another extra than its package (a figure, the tabular dense network) calls it before its lazy
import. Either way a missing extra raises :class:`MissingExtraError`, an :class:`ImportError` whose
message names the extra to install, instead of a bare ``No module named 'torch'``.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

__all__ = ["EXTRAS", "MissingExtraError", "missing_packages", "require_extra"]

EXTRAS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "image": ("torch", "monai", "nibabel", "safetensors", "captum", "openpyxl"),
    "tabular": ("shap", "xgboost"),
    "report": ("matplotlib",),
    "dicom": ("pydicom",),
    "ray": ("ray",),
})
"""The import names each user-facing extra provides (``all`` is their union).

``tests/test_extras.py`` checks this table against ``pyproject.toml``."""


class MissingExtraError(ImportError):
    """A part of ichprog was used without the extra that installs its dependencies.

    Parameters
    ----------
    feature
        What was used, e.g. ``"ichprog.data"``.
    extra
        The extra to install (``"image"``), or several (``("image", "tabular")``).
    missing
        The import names that were not found.

    Attributes
    ----------
    feature, missing
        As given.
    extras
        The extras to install, as a tuple.
    extra
        The first of them.
    """

    def __init__(self, feature: str, extra: str | Sequence[str], missing: Iterable[str]) -> None:
        self.feature = feature
        self.extras = (extra,) if isinstance(extra, str) else tuple(extra)
        self.extra = self.extras[0]
        self.missing = tuple(missing)
        quoted = [repr(e) for e in self.extras]
        names = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"
        noun = "extra" if len(self.extras) == 1 else "extras"
        super().__init__(
            f"{feature} needs the {names} {noun}: pip install 'ichprog[{','.join(self.extras)}]' "
            f"(not installed: {', '.join(self.missing)})",
            name=self.missing[0] if self.missing else None,
        )

    def __reduce__(self) -> tuple[Any, ...]:  # keep the fields when pickled (across processes)
        return type(self), (self.feature, self.extras, self.missing)

    @classmethod
    def combine(cls, feature: str, errors: Sequence[MissingExtraError]) -> MissingExtraError:
        """One error for ``feature`` naming every extra and package of ``errors``."""
        extras = list(dict.fromkeys(e for err in errors for e in err.extras))
        missing = list(dict.fromkeys(m for err in errors for m in err.missing))
        return cls(feature, extras, missing)


def missing_packages(names: Iterable[str]) -> list[str]:
    """The names in ``names`` that cannot be imported, found without importing them.

    A name set to ``None`` in :data:`sys.modules` (the standard way to block an import) counts as
    missing.
    """
    missing = []
    for name in names:
        if name in sys.modules:
            if sys.modules[name] is None:
                missing.append(name)
            continue
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken parent package or a spec-less module
            found = False
        if not found:
            missing.append(name)
    return missing


def require_extra(feature: str, extra: str, packages: Iterable[str] | None = None) -> None:
    """Raise :class:`MissingExtraError` unless the packages ``feature`` needs are importable.

    Parameters
    ----------
    feature
        What needs them, as the user would call it (``"ichprog.data"``,
        ``"ichprog.training.plot_history"``).
    extra
        The extra of ``pyproject.toml`` that installs them; a key of :data:`EXTRAS`.
    packages
        Import names to check; default: every package of ``extra``.

    Raises
    ------
    ValueError
        ``extra`` is not one of :data:`EXTRAS`, or ``packages`` names a package it does not
        install (a programming error, caught by the tests).
    MissingExtraError
        One of the packages is not installed.
    """
    try:
        provided = EXTRAS[extra]
    except KeyError:
        raise ValueError(f"unknown extra {extra!r}; the extras are {sorted(EXTRAS)}") from None
    names = provided if packages is None else tuple(packages)
    stray = [n for n in names if n not in provided]
    if stray:
        raise ValueError(f"the {extra!r} extra does not install {stray}; it installs "
                         f"{list(provided)}")
    missing = missing_packages(names)
    if missing:
        raise MissingExtraError(feature, extra, missing)
