"""The ``ichprog`` command line: every stage of the paper's protocol, and the demo.

Exit codes (scripts can rely on them):

* ``0``: success;
* ``2``: usage or configuration error (unknown option, unknown or mistyped configuration key,
  value out of range, missing input file) or a missing extra (the message names the
  ``pip install 'ichprog[...]'`` to run); nothing was computed;
* ``1``: runtime failure (invalid data found while running, a failed stage, interruption is
  ``130``).

A user error never prints a traceback; ``--debug`` shows one for any error.

Every command writes into one output folder (``--out``) with the layout of
:data:`ichprog.report.RUN_LAYOUT`; running a command again in the same folder reuses what is
finished there (pre-processed volumes, finished folds, finished stages) and says so.

The code is split by job: :mod:`~ichprog.cli.errors` (exit codes, :class:`ConfigError`),
:mod:`~ichprog.cli.config` (the configuration schema, TOML, overrides, the demo sizes),
:mod:`~ichprog.cli.run` (the run folder: manifest, stage markers), :mod:`~ichprog.cli.stages`
(phantom, tabular, cv, ablation, claims, saliency), :mod:`~ichprog.cli.commands` (one handler per
subcommand), :mod:`~ichprog.cli.parser` (:func:`build_parser`) and this module (:func:`main`).
``import ichprog.cli`` does not import numpy or torch; the stages import what they use.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Sequence
from typing import Any

# The public names, and (``noqa: F401``) the constants and private helpers that were importable
# from ``ichprog.cli`` before it became a package.
from ichprog._extras import MissingExtraError
from ichprog.cli.commands import (  # noqa: F401
    _COMMAND_PACKAGES,
    _HANDLERS,
    _check_extras,
    _cmd_ablation,
    _cmd_cv,
    _cmd_demo,
    _cmd_phantom,
    _cmd_predict,
    _cmd_report,
    _cmd_saliency,
    _cmd_tabular,
    _cmd_train,
    _demo_notes,
    _Handler,
)
from ichprog.cli.config import (  # noqa: F401
    _TRAIN_KEYS,
    CONFIG_SCHEMA,
    LONG_CLAIMS,
    _check_range,
    _coerce,
    _config_from_args,
    _demo_mode,
    _demo_modes,
    _Key,
    _parse_override,
    _presets,
    _recipe_sections,
    _toml_value,
    _type_name,
    default_config,
    dump_config,
    load_config,
    validate_config,
)
from ichprog.cli.errors import (  # noqa: F401
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    ConfigError,
)
from ichprog.cli.parser import (  # noqa: F401
    _EPILOG_EXIT,
    _add_common,
    _add_data,
    _add_model,
    _Formatter,
    build_parser,
)
from ichprog.cli.run import (  # noqa: F401
    _DERIVED,
    _describe_cohort,
    _describe_run,
    _device_text,
    _duration,
    _finish,
    _forget_results,
    _hash,
    _Run,
    _start,
)
from ichprog.cli.stages import (  # noqa: F401
    _bootstrap,
    _check_input_size,
    _cv_kwargs,
    _cv_preset,
    _image_key,
    _load_cohort,
    _load_fitted,
    _not_available,
    _pick_patients,
    _preprocess_config,
    _preset,
    _run_tabular,
    _splits,
    _stage_ablation,
    _stage_claims,
    _stage_cv,
    _stage_key,
    _stage_saliency,
    _stage_tabular,
    _train_config,
    _write_results,
)

__all__ = [
    "main",
    "build_parser",
    "ConfigError",
    "CONFIG_SCHEMA",
    "DEMO_MODES",
    "default_config",
    "load_config",
    "validate_config",
    "dump_config",
    "EXIT_OK",
    "EXIT_FAILURE",
    "EXIT_USAGE",
]

DEMO_MODES: dict[str, dict[str, dict[str, Any]]]
"""Sizes of ``ichprog demo`` (default), ``--quick`` and ``--full``, as configuration sections.

The default and quick modes train with the "cpu" recipe (:mod:`ichprog.recipes`), the full mode
with the paper's. Built on first use (see :mod:`ichprog.cli.config`)."""


def __getattr__(name: str) -> Any:
    from ichprog.cli import config

    if name == "DEMO_MODES" or name in config._OLD_CHOICES:
        return getattr(config, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    from ichprog.cli.config import _OLD_CHOICES

    return sorted(set(globals()) | {"DEMO_MODES", *_OLD_CHOICES})


def _summarize_warnings(caught: Sequence[warnings.WarningMessage], quiet: bool) -> None:
    """One line per kind of warning raised while running (``--debug`` shows each one)."""
    if quiet or not caught:
        return
    kinds: dict[str, list[str]] = {}
    for w in caught:
        kinds.setdefault(w.category.__name__, []).append(str(w.message).splitlines()[0])
    for name, msgs in kinds.items():
        first = msgs[0] if len(msgs[0]) <= 160 else msgs[0][:157] + "..."
        more = f" (and {len(msgs) - 1} more like it)" if len(msgs) > 1 else ""
        print(f"warning: {name}: {first}{more}", file=sys.stderr)
    if "UndefinedMetricWarning" in kinds:
        print("note: a metric undefined on a fold (e.g. NPV without a negative prediction) is "
              "left out of that fold's mean; the report marks such cells with (n/N)",
              file=sys.stderr)


def _run_folder_lock(args: Any) -> contextlib.AbstractContextManager[Any]:
    """The lock of the folder a command writes into (``--out``; the run folder of ``report``):
    a second command on the same folder stops with an error instead of mixing its files in."""
    from ichprog._util import FolderLock

    if args.command == "predict":  # writes one file, atomically
        return contextlib.nullcontext()
    if args.command == "report":
        folder = args.out if args.out is not None else args.run_dir
        if not args.run_dir.is_dir():
            return contextlib.nullcontext()  # the command reports the missing folder
    else:
        folder = getattr(args, "out", None)
    if folder is None:
        return contextlib.nullcontext()
    return FolderLock(folder, "run folder")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ichprog`` console script.

    Parameters
    ----------
    argv
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit code: 0 success, 2 usage or configuration error, 1 runtime failure, 130
        interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help/--version
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    debug = bool(getattr(args, "debug", False))
    try:
        _check_extras(args.command)
        with _run_folder_lock(args):
            if debug:
                return _HANDLERS[args.command](args)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                code = _HANDLERS[args.command](args)
        _summarize_warnings(caught, quiet=bool(getattr(args, "quiet", False)))
        return code
    except (ConfigError, MissingExtraError) as exc:
        if debug:
            raise
        print(f"ichprog {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"ichprog {args.command}: interrupted; finished stages are kept and will be "
              "reused", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, KeyError, FileNotFoundError, NotADirectoryError, PermissionError,
            RuntimeError, TypeError, OSError) as exc:
        if debug:
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"ichprog {args.command}: error: {msg}", file=sys.stderr)
        print("(run again with --debug for the traceback)", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
