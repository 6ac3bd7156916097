"""A persistent cache of pre-processed volumes.

Decoding a ``.nii.gz`` CT, stripping the skull and resizing it costs a few hundred milliseconds;
reading the result back from a ``.npy`` file costs a few. :class:`VolumeCache` runs
:func:`ichprog.data.load_volume` + :func:`ichprog.data.preprocess_volume` once per file and
configuration and keeps the float32 ``(D, H, W)`` result on disk::

    <root>/<config.key()>/config.json
    <root>/<config.key()>/<sha256 of the file's bytes>.npy
    <root>/<config.key()>/<sha256 of the file's bytes>.npy.sha256

(for a DICOM folder, the hash of its files' names and contents)
Entries are keyed by the file's *content* (so renaming or copying a scan reuses its entry and
editing it makes a new one) and by the pre-processing settings. Within a process the content hash
of a file is remembered by (path, size, modification time), so a cached epoch reads each file's
``.npy`` only. Every write goes to a temporary file that is then renamed with :func:`os.replace`:
two processes may fill the same cache at once, and an interrupted write leaves no partial entry.
Each entry has a checksum record (``.npy.sha256``) that is verified when the entry is read; a
damaged entry is reported with a warning and computed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ichprog._util import CHECKSUM_SUFFIX, atomic_write, file_sha256, verify_checksum, write_text
from ichprog.data.nifti import load_volume
from ichprog.data.plausibility import check_scan
from ichprog.data.preprocess import PIPELINE_VERSION, PreprocessConfig, preprocess_volume

__all__ = ["VolumeCache", "default_cache_root", "file_digest", "load_preprocessed", "CACHE_ENV"]

#: Environment variable that sets the default cache folder.
CACHE_ENV = "ICHPROG_CACHE"



def default_cache_root() -> Path:
    """``$ICHPROG_CACHE`` if set, else ``~/.cache/ichprog``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "ichprog"


def _folder_files(folder: Path) -> list[Path]:
    return [f for f in sorted(folder.iterdir()) if f.is_file() and not f.name.startswith(".")]


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, as hex. For a folder (a DICOM series), the SHA-256 of the
    names and digests of the files directly inside it (hidden files left out)."""
    p = Path(path)
    if p.is_dir():
        h = hashlib.sha256(b"folder\0")
        for member in _folder_files(p):
            h.update(f"{member.name}\0{file_digest(member)}\n".encode())
        return h.hexdigest()
    return file_sha256(p)


def load_preprocessed(
    path: str | os.PathLike[str], config: PreprocessConfig | None = None
) -> np.ndarray:
    """Read a volume file and pre-process it, without any cache (what :class:`VolumeCache`
    stores).

    Raises
    ------
    FileNotFoundError, ValueError
        From :func:`~ichprog.data.load_volume` and :func:`~ichprog.data.preprocess_volume`; the
        message names the file.
    ImplausibleScanError
        The scan fails a plausibility check of ``config.checks``
        (:func:`~ichprog.data.check_scan`).
    """
    cfg = config if config is not None else PreprocessConfig()
    array, affine = load_volume(path)
    check_scan(array, affine, str(path), input_shape=cfg.shape, checks=cfg.checks)
    try:
        return preprocess_volume(array, affine, cfg)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def _atomic_save_npy(array: np.ndarray, dest: Path) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to a name
            np.save(f, array, allow_pickle=False)

    atomic_write(dest, write, fsync=False, checksum=True)


class VolumeCache:
    """Persistent cache of :func:`ichprog.data.preprocess_volume` results, keyed by file content
    and settings.

    Parameters
    ----------
    root
        Cache folder; default :func:`default_cache_root` (``$ICHPROG_CACHE`` or
        ``~/.cache/ichprog``). Created on first write.
    config
        Pre-processing settings; default :class:`~ichprog.data.PreprocessConfig` (the paper's).

    Attributes
    ----------
    hits, misses : int
        Number of :meth:`get` calls served from disk and computed, in this process.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ichprog.data import VolumeCache, PreprocessConfig, save_volume
    >>> tmp = tempfile.mkdtemp()
    >>> save_volume(np.full((16, 16, 6), 40, dtype=np.int16), np.eye(4), os.path.join(tmp, "a.nii.gz"))
    >>> cache = VolumeCache(os.path.join(tmp, "cache"), PreprocessConfig((8, 12, 12), skull_strip=False))
    >>> cache.get(os.path.join(tmp, "a.nii.gz")).shape
    (8, 12, 12)
    >>> cache.get(os.path.join(tmp, "a.nii.gz")) is not None and (cache.misses, cache.hits)
    (1, 1)
    """

    def __init__(
        self, root: str | os.PathLike[str] | None = None, config: PreprocessConfig | None = None
    ) -> None:
        self.config = config if config is not None else PreprocessConfig()
        if not isinstance(self.config, PreprocessConfig):
            raise TypeError(f"config must be a PreprocessConfig, got {type(self.config).__name__}")
        self.root = Path(root).expanduser() if root is not None else default_cache_root()
        self.folder = self.root / self.config.key()
        self._digests: dict[tuple[Any, ...], str] = {}
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"VolumeCache(root={str(self.root)!r}, key={self.config.key()!r}, shape={self.config.shape})"

    # -- keys -------------------------------------------------------------------------------
    def digest(self, path: str | os.PathLike[str]) -> str:
        """Content hash of a file, remembered per (path, size, mtime) in this process."""
        p = Path(path)
        try:
            st = p.stat()
        except FileNotFoundError:
            raise FileNotFoundError(f"volume file not found: {p}") from None
        memo: tuple[Any, ...] = (str(p.absolute()), st.st_size, st.st_mtime_ns)
        if p.is_dir():  # a DICOM folder: the size and time of every file
            memo += tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns)
                          for f in _folder_files(p))
        d = self._digests.get(memo)
        if d is None:
            d = file_digest(p)
            self._digests[memo] = d
        return d

    def path_for(self, path: str | os.PathLike[str]) -> Path:
        """Where the entry of a volume file lives (whether or not it exists yet)."""
        return self.folder / f"{self.digest(path)}.npy"

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, (str, os.PathLike)):
            return False
        return self.path_for(path).is_file()

    # -- reading and filling ------------------------------------------------------------------
    def _write_config(self) -> None:
        cfg_file = self.folder / "config.json"
        if cfg_file.exists():
            return
        payload = {"pipeline_version": PIPELINE_VERSION, "config": self.config.to_dict()}
        write_text(cfg_file, json.dumps(payload, indent=1), fsync=False)

    def _read(self, entry: Path) -> np.ndarray | None:
        try:
            verify_checksum(entry)
            arr = np.load(entry, allow_pickle=False)
        except FileNotFoundError:
            return None
        except Exception as exc:  # a damaged entry: recompute it
            warnings.warn(f"VolumeCache: unreadable entry {entry} ({exc}); recomputing it",
                          RuntimeWarning, stacklevel=3)
            return None
        if arr.shape != self.config.shape or arr.dtype != np.float32:
            warnings.warn(
                f"VolumeCache: entry {entry} has shape {arr.shape} {arr.dtype}, expected "
                f"{self.config.shape} float32; recomputing it", RuntimeWarning, stacklevel=3,
            )
            return None
        return arr

    def compute(self, path: str | os.PathLike[str]) -> np.ndarray:
        """Load and pre-process a file without touching the cache."""
        return load_preprocessed(path, self.config)

    def get(self, path: str | os.PathLike[str]) -> np.ndarray:
        """The pre-processed float32 ``(D, H, W)`` volume of a file, from the cache or computed
        and stored on first use.

        Raises
        ------
        FileNotFoundError, ValueError
            From :func:`~ichprog.data.load_volume` and :func:`~ichprog.data.preprocess_volume`,
            naming the file.
        """
        entry = self.path_for(path)
        arr = self._read(entry)
        if arr is not None:
            self.hits += 1
            return arr
        arr = self.compute(path)
        self.misses += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write_config()
        _atomic_save_npy(arr, entry)
        return arr

    def warm(self, paths: Iterable[str | os.PathLike[str]], progress: bool = True) -> int:
        """Fill the cache for many files (each decoded once); returns how many were computed.

        Parameters
        ----------
        paths
            Volume files.
        progress
            Show a tqdm progress bar.
        """
        from tqdm.auto import tqdm

        items = list(paths)
        computed = 0
        for p in tqdm(items, desc="pre-processing volumes", unit="vol", disable=not progress):
            if self.path_for(p).is_file():
                continue
            before = self.misses
            self.get(p)
            computed += self.misses - before
        return computed

    def size_bytes(self) -> int:
        """Disk space used by this configuration's entries."""
        if not self.folder.is_dir():
            return 0
        return sum(f.stat().st_size for f in self.folder.glob("*.npy"))

    def clear(self) -> int:
        """Delete this configuration's entries (other configurations are kept); returns how many
        files were removed."""
        if not self.folder.is_dir():
            return 0
        n = 0
        for f in self.folder.iterdir():
            if f.is_file() and not f.name.endswith(CHECKSUM_SUFFIX):
                f.unlink(missing_ok=True)
                n += 1
            elif f.is_file():
                f.unlink(missing_ok=True)
        self.folder.rmdir()
        return n

    def info(self) -> dict[str, Any]:
        """Root, configuration key, number of entries, bytes, hits and misses."""
        n = len(list(self.folder.glob("*.npy"))) if self.folder.is_dir() else 0
        return {"root": str(self.root), "key": self.config.key(), "entries": n,
                "bytes": self.size_bytes(), "hits": self.hits, "misses": self.misses}
