"""The manifest of a run folder, ``run.json``: :class:`RunManifest`.

The command line (:mod:`ichprog.cli.run`) writes it and the report
(:func:`ichprog.report.build_report`) reads it, both through this one declared type, so neither
restates the other's keys. Standard library only: ``import ichprog.cli`` stays light.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ichprog._util import read_text_verified, write_text

#: The file name of the manifest in a run folder.
MANIFEST_FILE = "run.json"
#: The format key written into every manifest (manifests of earlier releases have none).
MANIFEST_FORMAT = "ichprog-run/1"


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and all(_is_str(x) for x in v)


def _str_map(v: Any) -> bool:
    return isinstance(v, dict) and all(_is_str(k) and _is_str(x) for k, x in v.items())


def _number_map(v: Any) -> bool:
    return isinstance(v, dict) and all(_is_str(k) and _is_number(x) for k, x in v.items())


def _mapping(v: Any) -> bool:
    return isinstance(v, dict)


#: Per key: the check of its value and how the check reads in an error message.
_CHECKS: dict[str, tuple[Any, str]] = {
    "format": (_is_str, "a string"),
    "command": (_is_str, "a string"),
    "title": (_is_str, "a string"),
    "subtitle": (_is_str, "a string"),
    "mode": (lambda v: v is None or _is_str(v), "a string"),
    "phantom": (lambda v: isinstance(v, bool), "true or false"),
    "versions": (_mapping, "a table of package -> version"),
    "timings": (_number_map, "a table of stage -> seconds"),
    "reused": (_str_list, "a list of stage names"),
    "labels": (_str_map, "a table of model -> label"),
    "model_order": (_str_list, "a list of model names"),
    "cohort": (_mapping, "a table"),
    "summary": (_mapping, "a table"),
    "notes": (_str_list, "a list of strings"),
    "wall_time_s": (lambda v: v is None or _is_number(v), "a number of seconds"),
    "train": (_mapping, "a table"),
    "tabular": (_mapping, "a table"),
    "claims": (_mapping, "a table"),
    "saliency": (_mapping, "a table"),
}


@dataclass
class RunManifest:
    """What a run folder holds and how it was made (``run.json``).

    Attributes
    ----------
    command
        The command line that wrote the folder last.
    title, subtitle
        The report's title and subtitle.
    versions
        Package versions of the run.
    timings
        Wall time per stage in seconds.
    reused
        Stages the last command found finished and reused.
    labels
        Display names of the models (preset name -> label).
    model_order
        The cross-validated models in the order of the tables.
    phantom
        Whether the cohort is the synthetic phantom (the report then says so).
    mode
        The ``ichprog demo`` mode, if the demo wrote the folder.
    cohort
        The cohort's description (patients, classes, GCS counts).
    summary
        What was run, as readable key/value pairs.
    notes
        Notes printed in the report.
    wall_time_s
        Wall time of the last command.
    train, tabular, claims, saliency
        What the stages of those names recorded (best epoch, learned cut-offs, verdicts,
        explained patients); empty when the stage did not run.
    extra
        Keys of the file that this release does not know (kept and written back).
    """

    command: str = ""
    title: str = "ichprog report"
    subtitle: str = ""
    versions: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    model_order: list[str] = field(default_factory=list)
    phantom: bool = True
    mode: str | None = None
    cohort: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    wall_time_s: float | None = None
    train: dict[str, Any] = field(default_factory=dict)
    tabular: dict[str, Any] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)
    saliency: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``run.json``: every field (the empty stage records and unset
        values left out) and the unknown keys read from the file."""
        out: dict[str, Any] = {"format": MANIFEST_FORMAT}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None or (f.name in ("train", "tabular", "claims", "saliency")
                                 and not value):
                continue
            out[f.name] = value
        return {**self.extra, **out}

    @classmethod
    def from_dict(cls, data: Any, source: str = MANIFEST_FILE) -> RunManifest:
        """A manifest from the JSON object of ``run.json``, checked.

        Raises
        ------
        ValueError
            ``data`` is not an object, its format is not this release's, or a known key holds
            a value of the wrong kind; the message names ``source`` and the key.
        """
        if not isinstance(data, dict):
            raise ValueError(f"{source}: a run manifest is a JSON object, got "
                             f"{type(data).__name__}")
        for key, (ok, what) in _CHECKS.items():
            if key in data and not ok(data[key]):
                raise ValueError(f"{source}: run manifest key {key!r} must be {what}, got "
                                 f"{data[key]!r}")
        fmt = data.get("format", MANIFEST_FORMAT)
        if fmt != MANIFEST_FORMAT:
            raise ValueError(f"{source}: run manifest format {fmt!r}, this release reads "
                             f"{MANIFEST_FORMAT!r}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names and k != "format"}
        return cls(**known, extra=extra)

    @classmethod
    def load(cls, path: str | os.PathLike[str], missing_ok: bool = False) -> RunManifest:
        """Read and check a ``run.json`` (a folder is read as its ``run.json``).

        Parameters
        ----------
        path
            The file or its run folder.
        missing_ok
            Return an empty manifest when the file does not exist (instead of raising
            :class:`FileNotFoundError`).

        Raises
        ------
        ValueError
            The file is not valid JSON or not a valid manifest, or does not match its checksum
            record (:class:`ichprog._util.IntegrityError`); the message names the file.
        """
        p = Path(path)
        if p.is_dir():
            p = p / MANIFEST_FILE
        if not p.is_file():
            if missing_ok:
                return cls()
            raise FileNotFoundError(f"no run manifest {p}")
        try:
            data = json.loads(read_text_verified(p))  # against its checksum record
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{p} is not valid JSON: {exc}") from exc
        return cls.from_dict(data, source=str(p))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the manifest as indented JSON, atomically (a folder gets its ``run.json``);
        returns the file."""
        p = Path(path)
        if p.is_dir():
            p = p / MANIFEST_FILE
        write_text(p, json.dumps(self.to_dict(), indent=2, default=str), checksum=True)
        return p
