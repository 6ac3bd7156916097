"""Helpers shared by the modules of the package (private): atomic writes, JSON, hashes, seeds.

Only the standard library is imported here; numpy and pandas are imported inside the functions
that need them, so that importing this module stays cheap (the command line uses it before it
knows whether it will need numpy).

Kept values
-----------
Several modules had their own copy of these helpers, and the copies did not all compute the same
values. Seeds and hashes decide which folds, checkpoints and stages are reused, so every caller
keeps its exact output through a parameter:

* :func:`derive_seed` keeps the low 31 bits of the first 32-bit word of a
  :class:`numpy.random.SeedSequence` state (``bits=31``: training epochs, experiment folds,
  tabular folds) or the whole word (``bits=32``: the folds of :func:`ichprog.data.make_splits`
  and the per-item augmentation seeds of :class:`ichprog.data.CTDataset`).
* :func:`stable_hash` hashes ``json.dumps(obj, sort_keys=True, default=...)`` with SHA-256 and
  keeps ``length`` hex digits: 20 with :func:`json_default` for training runs and experiment
  folds, 16 with ``default=str`` for the stages of the command line, 16 without any fallback
  (``default=None``) for :meth:`ichprog.data.PreprocessConfig.key`.
* :func:`package_versions` reads the ``__version__`` of imported modules (checkpoints and
  experiment folders; a missing one reads ``"not installed"``) or the installed distributions'
  metadata (the command line's run manifest; a missing one is left out).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "RUN_PACKAGES",
    "MANIFEST_PACKAGES",
    "atomic_write",
    "write_text",
    "write_bytes",
    "write_json",
    "write_csv",
    "read_json",
    "json_default",
    "stable_hash",
    "derive_seed",
    "package_versions",
]

#: Modules whose versions checkpoints and experiment folders record (import names).
RUN_PACKAGES: tuple[str, ...] = ("torch", "numpy", "pandas", "monai", "sklearn", "safetensors")
#: Distributions whose versions the command line's run manifest records.
MANIFEST_PACKAGES: tuple[str, ...] = ("numpy", "pandas", "scikit-learn", "torch", "monai", "shap",
                                      "xgboost")


# -- atomic writes ------------------------------------------------------------------------------
def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], Any], *,
                 suffix: str = "", fsync: bool = True) -> None:
    """Write ``path`` through a temporary file in the same folder, then rename it over ``path``.

    Readers see the old file or the new one, never a partly written one.

    Parameters
    ----------
    path
        Target file; its folder must exist.
    write
        Called with the temporary file's path; writes the content there.
    suffix
        Ending of the temporary file's name, for writers that choose the format by it (e.g.
        ``".nii.gz"``).
    fsync
        Flush the temporary file to the disk before the rename.

    Notes
    -----
    The temporary file (``.<name>.<pid>-<random>.tmp<suffix>``) is unique to the call, so
    processes and threads that write the same path at once never share one; it is removed when
    ``write`` fails.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp{suffix}")
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = True) -> None:
    """Write UTF-8 text atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"), fsync=fsync)


def write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True) -> None:
    """Write bytes atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda p: p.write_bytes(data), fsync=fsync)


def write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` as indented JSON with sorted keys (numpy values and paths converted by
    :func:`json_default`), atomically; parent folders are created.

    The arguments are in the order of :func:`json.dump`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=json_default))


def write_csv(df: Any, path: str | os.PathLike[str]) -> None:
    """Write a :class:`pandas.DataFrame` as CSV without its index, atomically; parent folders are
    created.

    The arguments are in the order of ``df.to_csv(path)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, df.to_csv(index=False))


# -- JSON and hashes ----------------------------------------------------------------------------
def read_json(path: str | os.PathLike[str], *, fmt: str | None = None, what: str = "a saved folder",
              unversioned_ok: bool = False) -> Any:
    """Read a JSON file written by :func:`write_json`, checking its ``"format"`` key.

    Parameters
    ----------
    path
        The file.
    fmt
        The format the file must declare (``None``: no check).
    what
        What a folder holding the file is, for the message when the file is missing.
    unversioned_ok
        Accept a file without a ``"format"`` key (written before the format was recorded).

    Raises
    ------
    FileNotFoundError
        The file does not exist (the message names its folder and ``what``).
    ValueError
        It is not valid JSON, or declares another format (the message names the file).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no {p.name} in {p.parent}: not {what}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p} is not valid JSON: {exc}") from exc
    if fmt is not None:
        found = data.get("format", fmt if unversioned_ok else None) \
            if isinstance(data, dict) else None
        if found != fmt:
            raise ValueError(f"{p}: format {found!r}, expected {fmt!r}")
    return data


def json_default(obj: Any) -> Any:
    """``default=`` of :func:`json.dumps` for numpy scalars and arrays and for paths.

    Raises
    ------
    TypeError
        For any other type, as :func:`json.dumps` does.
    """
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def stable_hash(obj: Any, length: int,
                default: Callable[[Any], Any] | None = json_default) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``obj`` as JSON with sorted keys.

    Equal objects give equal hashes in every process and Python version (unlike :func:`hash`).

    Parameters
    ----------
    obj
        A JSON-serialisable object.
    length
        Number of hex digits kept (at most 64).
    default
        Fallback of :func:`json.dumps` for other values: :func:`json_default` (numpy values,
        paths), ``str``, or ``None`` to refuse them with a ``TypeError``.
    """
    text = json.dumps(obj, sort_keys=True, default=default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


# -- seeds --------------------------------------------------------------------------------------
def derive_seed(*keys: int, bits: int = 31) -> int:
    """A seed derived from non-negative integers, stable across platforms and Python versions.

    The first 32-bit word of the state of ``numpy.random.SeedSequence(keys)``, of which the low
    ``bits`` bits are kept (31: a seed every library accepts; 32: the whole word).
    """
    import numpy as np

    if not 1 <= bits <= 32:
        raise ValueError(f"bits must be from 1 to 32, got {bits}")
    word = int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])
    return word & ((1 << bits) - 1)


# -- provenance ---------------------------------------------------------------------------------
def package_versions(packages: Sequence[str] = RUN_PACKAGES,
                     source: Literal["module", "distribution"] = "module") -> dict[str, str]:
    """Versions of ichprog, Python and ``packages``, for the provenance of written results.

    Parameters
    ----------
    packages
        Import names (``source="module"``) or distribution names (``"distribution"``).
    source
        ``"module"``: the ``__version__`` of the imported module, ``"not installed"`` when it
        cannot be imported (checkpoints, experiment folders). ``"distribution"``: the installed
        distribution's version (:func:`importlib.metadata.version`), left out when it is not
        installed (the command line's run manifest).
    """
    import platform

    from ichprog._version import __version__

    out = {"ichprog": __version__, "python": platform.python_version()}
    for name in packages:
        if source == "module":
            try:
                mod = __import__(name)
            except ImportError:  # pragma: no cover - the run packages are dependencies
                out[name] = "not installed"
            else:
                out[name] = str(getattr(mod, "__version__", "?"))
        else:
            with contextlib.suppress(Exception):
                from importlib.metadata import version

                out[name] = version(name)
    return out
