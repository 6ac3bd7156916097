"""Helpers shared by the modules of the package (private): atomic writes, content checksums,
run-folder locks, JSON, hashes, seeds.

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

Integrity and ownership
-----------------------
* Every file that the library writes and later reads back gets a checksum record beside it,
  ``<name>.sha256``, in the format of ``sha256sum`` (``sha256sum -c model.safetensors.sha256``
  checks it by hand). :func:`atomic_write` writes the record when asked (``checksum=True``);
  :func:`verify_checksum` compares a file with its record and raises :class:`IntegrityError`
  naming the file. A file without a record (written by an older version, or by hand) is
  accepted as it is.
* :class:`FolderLock` is an exclusive lock on a folder (a ``.lock`` file holding the owner's pid
  and host); a lock left behind by a killed process on the same host is taken over.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "CHECKSUM_SUFFIX",
    "IntegrityError",
    "FolderLock",
    "FolderLockedError",
    "file_sha256",
    "record_checksum",
    "verify_checksum",
    "read_text_verified",
    "read_csv_verified",
    "save_figure",
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


#: Ending of the checksum record written beside a file (``model.safetensors.sha256``).
CHECKSUM_SUFFIX = ".sha256"
_CHUNK = 1 << 20


class IntegrityError(ValueError):
    """A file's content differs from the checksum recorded when it was written (damaged,
    truncated or edited); the message names the file."""


# -- checksums ----------------------------------------------------------------------------------
def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, as 64 hex digits."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def _recorded_digests(path: Path) -> list[str] | None:
    """The digests of a checksum record, newest first (``None`` when there is no record; an
    empty list when it is unreadable)."""
    rec = _record_path(path)
    try:
        lines = rec.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return None
    out = []
    for line in lines:
        word = line.split()[0].lower() if line.split() else ""
        if len(word) == 64 and all(c in "0123456789abcdef" for c in word):
            out.append(word)
    return out


def record_checksum(path: str | os.PathLike[str], digest: str | None = None,
                    also: Sequence[str] = ()) -> str:
    """Write ``<path>.sha256`` (the ``sha256sum`` format) for a file, atomically.

    Parameters
    ----------
    path
        The file.
    digest
        Its SHA-256 when already known; computed otherwise.
    also
        Further digests accepted for the same file (:func:`atomic_write` lists the previous
        content's digest while it replaces the file, so that a process killed between the two
        renames leaves a record that matches whichever content is on disk).

    Returns
    -------
    str
        The digest recorded.
    """
    path = Path(path)
    digest = digest or file_sha256(path)
    lines = [f"{d}  {path.name}\n" for d in dict.fromkeys([digest, *also])]
    write_text(_record_path(path), "".join(lines), fsync=False)
    return digest


def verify_checksum(path: str | os.PathLike[str], required: bool = False) -> bool:
    """Compare a file with the checksum recorded when it was written.

    Parameters
    ----------
    path
        The file.
    required
        Raise when the file has no record (otherwise it is accepted as it is).

    Returns
    -------
    bool
        ``True`` when a record exists and matches, ``False`` when there is no record.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    IntegrityError
        The content differs from the record, the record is unreadable, or (``required``) it is
        missing. The message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    rec = _record_path(path)
    expected = _recorded_digests(path)
    if expected is None:
        if required:
            raise IntegrityError(f"{path}: no checksum record ({rec.name}); the file was not "
                                 "written completely by ichprog")
        return False
    if not expected:
        raise IntegrityError(f"{path}: unreadable checksum record {rec}")
    actual = file_sha256(path)
    if actual not in expected:
        raise IntegrityError(
            f"{path}: the content does not match the checksum recorded when it was written "
            f"(SHA-256 {actual[:12]}... != {expected[0][:12]}... in {rec.name}); the file is "
            "damaged, truncated or was edited. Restore it, or delete it (and its .sha256) to "
            "recompute it")
    return True


def read_text_verified(path: str | os.PathLike[str]) -> str:
    """The UTF-8 text of a file after :func:`verify_checksum`."""
    verify_checksum(path)
    return Path(path).read_text(encoding="utf-8")


def read_csv_verified(path: str | os.PathLike[str], **read_csv: Any) -> Any:
    """A CSV file as a :class:`pandas.DataFrame` after :func:`verify_checksum`; an empty or
    unparsable file raises ``ValueError`` naming it."""
    import pandas as pd

    verify_checksum(path)
    try:
        return pd.read_csv(path, **read_csv)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise ValueError(f"{path}: not a readable CSV table ({exc})") from exc


# -- atomic writes ------------------------------------------------------------------------------
def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], Any], *,
                 suffix: str = "", fsync: bool = True, checksum: bool = False) -> None:
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
    checksum
        Also write the checksum record ``<path>.sha256`` (see :func:`verify_checksum`), computed
        from the temporary file. While the file is replaced the record lists the old and the
        new digest, so that the pair stays consistent when the process is killed at any point.

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
        if checksum:
            # the record accepts the old and the new content while the file is replaced
            digest = file_sha256(tmp)
            before: list[str] = []
            if path.is_file():
                before = (_recorded_digests(path) or [file_sha256(path)])[:1]
            record_checksum(path, digest, also=before)
        os.replace(tmp, path)
        if checksum:
            record_checksum(path, digest)
        else:  # a record of an earlier content would now be wrong
            with contextlib.suppress(FileNotFoundError):
                _record_path(path).unlink()
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = True,
               checksum: bool = False) -> None:
    """Write UTF-8 text atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"), fsync=fsync,
                 checksum=checksum)


def write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True,
                checksum: bool = False) -> None:
    """Write bytes atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda p: p.write_bytes(data), fsync=fsync, checksum=checksum)


def save_figure(fig: Any, path: str | os.PathLike[str], **kwargs: Any) -> None:
    """``fig.savefig(path, **kwargs)`` atomically; the format comes from the name's ending
    unless ``format=`` is given. Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("format", path.suffix.lstrip(".").lower() or "png")
    atomic_write(path, lambda tmp: fig.savefig(tmp, **kwargs), fsync=False)


def write_json(obj: Any, path: str | os.PathLike[str], *, checksum: bool = False) -> None:
    """Write ``obj`` as indented JSON with sorted keys (numpy values and paths converted by
    :func:`json_default`), atomically; parent folders are created.

    The arguments are in the order of :func:`json.dump`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=json_default),
               checksum=checksum)


def write_csv(df: Any, path: str | os.PathLike[str], *, checksum: bool = False,
              **to_csv: Any) -> None:
    """Write a :class:`pandas.DataFrame` as CSV without its index, atomically; parent folders are
    created.

    The arguments are in the order of ``df.to_csv(path)``; further keyword arguments go to
    :meth:`pandas.DataFrame.to_csv` (``index=True`` keeps the index).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_csv.setdefault("index", False)
    write_text(path, df.to_csv(**to_csv), checksum=checksum)


# -- folder locks -------------------------------------------------------------------------------
class FolderLockedError(RuntimeError):
    """Another live process holds the lock of a folder; the message names the folder, the
    process and its host."""


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


class FolderLock:
    """An exclusive lock on a folder, held while a command writes into it.

    The lock is the file ``<folder>/.lock``, created with ``O_CREAT | O_EXCL`` and holding the
    owner's pid, host and start time as JSON. A second writer gets :class:`FolderLockedError`
    naming the owner. A lock whose owner no longer runs (killed with ``kill -9``, power loss)
    is *stale*: on the same host a dead pid is detected and the lock is taken over; a lock from
    another host is never taken over automatically (delete the file by hand).

    Use as a context manager; it is re-entrant in the same process.

    Parameters
    ----------
    folder
        The folder (created when missing).
    what
        Words for the error message (e.g. ``"run folder"``).
    """

    NAME = ".lock"
    _held: dict[str, int] = {}

    def __init__(self, folder: str | os.PathLike[str], what: str = "folder") -> None:
        self.folder = Path(folder)
        self.path = self.folder / self.NAME
        self.what = what

    def owner(self) -> dict[str, Any] | None:
        """The lock file's content, ``None`` when unlocked (``{}`` when unreadable)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return {}
        return data if isinstance(data, dict) else {}

    def _stale(self, owner: dict[str, Any]) -> bool:
        if not owner:  # a lock file written half-way (killed between create and write)
            with contextlib.suppress(OSError):
                return time.time() - self.path.stat().st_mtime > 10.0
            return True
        if owner.get("host") != socket.gethostname():
            return False
        return not _pid_alive(int(owner.get("pid", -1)))

    def acquire(self) -> FolderLock:
        key = str(self.path.resolve())
        if self._held.get(key):
            self._held[key] += 1
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self.owner()
                if owner is None:
                    continue  # released meanwhile
                if self._stale(owner):
                    # take over a dead owner's lock: rename it away first, so that of two
                    # processes recovering at once only one removes it
                    grave = self.path.with_name(f"{self.NAME}.stale-{os.getpid()}")
                    with contextlib.suppress(FileNotFoundError):
                        os.replace(self.path, grave)
                        grave.unlink()
                    continue
                raise FolderLockedError(
                    f"{self.what} {self.folder} is in use by process {owner.get('pid', '?')} on "
                    f"{owner.get('host', '?')} (since {owner.get('since', '?')}); wait for it to "
                    f"finish or use another folder. If no such process runs, delete {self.path}"
                ) from None
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(me))
            self._held[key] = 1
            return self
        raise FolderLockedError(f"could not lock {self.what} {self.folder} ({self.path})")

    def release(self) -> None:
        key = str(self.path.resolve())
        n = self._held.get(key, 0)
        if n > 1:
            self._held[key] = n - 1
            return
        self._held.pop(key, None)
        owner = self.owner()
        if owner and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


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
        It is not valid JSON, declares another format, or does not match its checksum record
        (:class:`IntegrityError`); the message names the file.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no {p.name} in {p.parent}: not {what}")
    try:
        data = json.loads(read_text_verified(p))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
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
