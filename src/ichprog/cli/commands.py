"""The commands of ``ichprog``: one handler per subcommand, run by :func:`ichprog.cli.main`."""

from __future__ import annotations

import argparse
import importlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ichprog._extras import MissingExtraError
from ichprog._util import save_figure, write_csv
from ichprog._version import __version__
from ichprog.cli.config import LONG_CLAIMS, _demo_modes, _presets
from ichprog.cli.errors import EXIT_OK, ConfigError
from ichprog.cli.run import _describe_run, _device_text, _duration, _finish, _start
from ichprog.cli.stages import (
    _check_input_size,
    _image_key,
    _load_cohort,
    _load_fitted,
    _preprocess_config,
    _preset,
    _stage_ablation,
    _stage_claims,
    _stage_cv,
    _stage_saliency,
    _stage_tabular,
    _train_config,
)


def _fitted_from_args(args: argparse.Namespace) -> Any:
    """The model of ``--model`` (a saved folder, or an authors' checkpoint with ``--preset``),
    with the plausibility checks that ``--skip-check`` switches off removed."""
    fitted = _fitted_model(args)
    skip = set(getattr(args, "skip_check", None) or ())
    if skip:
        import dataclasses

        checks = fitted.preprocess.checks
        off = {n: False for n in checks.enabled if n in skip or "all" in skip}
        fitted.preprocess = fitted.preprocess.replace(checks=dataclasses.replace(checks, **off))
    return fitted


def _fitted_model(args: argparse.Namespace) -> Any:
    if args.model.is_file():
        if not args.preset:
            raise ConfigError(f"--model {args.model} is a checkpoint file: give its tasks with "
                              "--preset (for example mt_ord_gcs_bin_age)")
        if args.preset not in _presets():
            raise ConfigError(f"--preset: unknown preset {args.preset!r}; choose one of "
                              f"{', '.join(_presets())}")
        from ichprog.data import AUTHORS_PREPROCESS
        from ichprog.experiment import FittedModel

        return FittedModel.from_authors_checkpoint(
            args.model, args.preset,
            preprocess=AUTHORS_PREPROCESS.replace(skull_strip=bool(args.skull_strip)))
    if not args.model.is_dir():
        raise ConfigError(f"--model: folder {args.model} does not exist")
    if args.preset or args.skull_strip:
        raise ConfigError("--preset and --skull-strip apply to the authors' checkpoint files; "
                          f"{args.model} is a saved model folder")
    return _load_fitted(args.model)


def _check_scans(scans: list[Path]) -> None:
    missing = [str(s) for s in scans if not s.exists()]
    if missing:
        raise ConfigError("scan file(s) or folder(s) not found: " + ", ".join(missing))


def _scan_names(scans: list[Path]) -> dict[str, Path]:
    """A short, unique name per scan (file name without .nii[.gz], or the folder's name)."""
    names: dict[str, Path] = {}
    for s in scans:
        name = s.name
        for suffix in (".nii.gz", ".nii", ".dcm"):
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
                break
        if name in names:
            raise ConfigError(f"two scans named {name!r}: {names[name]} and {s}")
        names[name] = s
    return names


def _saliency_of_scans(args: argparse.Namespace) -> int:
    from ichprog import saliency
    from ichprog.data.cache import load_preprocessed

    if not args.scans:
        raise ConfigError("--model needs the scans to explain (NIfTI files or DICOM folders)")
    _check_scans(args.scans)
    fitted = _fitted_from_args(args)
    names = _scan_names(args.scans)
    volumes = {}
    for name, path in names.items():  # read, checked for plausibility and pre-processed
        volumes[name] = load_preprocessed(path, fitted.preprocess)
    out = args.out / "saliency"
    out.mkdir(parents=True, exist_ok=True)
    for method in args.method or ["guided_backprop", "guided_gradcam"]:
        res = saliency.compute_maps({"model": fitted.model}, volumes, method=method,
                                    task=args.task, target=args.target, threshold=0.5,
                                    progress=not args.no_progress)
        fig = saliency.plot_model_grid(volumes, res)
        save_figure(fig, out / f"{method}.png", dpi=100, bbox_inches="tight", facecolor="white")
        saliency.save_maps(res, out / "maps", references={n: str(p) for n, p in names.items()},
                           config=fitted.preprocess, progress=not args.no_progress)
    if not args.quiet:
        print(f"saliency maps in {out} (figures) and {out / 'maps'} (NIfTI, on each scan's grid)")
    return EXIT_OK


def _cmd_saliency(args: argparse.Namespace) -> int:
    if args.model is not None:
        return _saliency_of_scans(args)
    if args.scans:
        raise ConfigError("scans to explain need --model (without it, the run's cross-validated "
                          "models explain its cohort)")
    t0 = time.perf_counter()
    old = args.out / "config.toml"
    if getattr(args, "config", None) is None and old.is_file():
        args.config = old  # explain the run with the settings it was trained with
    run = _start(args)
    cohort = _load_cohort(run)
    _stage_saliency(run, cohort)
    _finish(run, t0)
    run.say(f"saliency maps in {run.out / 'saliency'}")
    return EXIT_OK


def _cmd_train(args: argparse.Namespace) -> int:
    from ichprog.experiment import fit_multitask

    t0 = time.perf_counter()
    run = _start(args)
    cfg = run.cfg
    cohort = _load_cohort(run)
    preset = _preset(cfg, cfg["model"]["preset"])
    _check_input_size(cfg, preset)
    _describe_run(run, "train")
    seed = cfg["run"]["seed"]
    out = run.out / "train"
    with run.stage("train", _image_key(cfg, preset.name)) as todo:
        if todo:
            fit_multitask(cohort, preset, preprocess=_preprocess_config(cfg),
                          config=_train_config(cfg, seed), val_fraction=cfg["cv"]["val_fraction"],
                          seed=seed, out_dir=out, cache_dir=run.out / "cache",
                          augment=cfg["train"]["augment"],
                          model_kwargs={"dropout": cfg["model"]["dropout"]}, preload=True,
                          overwrite=True, progress=cfg["run"]["progress"])
    fitted = _load_fitted(out)
    run.manifest.train = {k: fitted.info.get(k) for k in ("best_epoch", "epochs_run",
                                                           "stop_reason")}
    _finish(run, t0)
    run.say(f"model in {out / 'model'} (best epoch {fitted.info.get('best_epoch')} of "
            f"{fitted.info.get('epochs_run')}); predict with "
            f"'ichprog predict --model {out / 'model'} SCAN...'")
    return EXIT_OK


def _cmd_predict(args: argparse.Namespace) -> int:
    from ichprog.cli.predict import is_single_model, predict_ensemble, scan_inputs

    args.scans = scan_inputs(args)
    _check_scans(args.scans)
    if args.threshold != "validation":
        try:
            args.threshold = float(args.threshold)
        except ValueError:
            raise ConfigError(f"--threshold: {args.threshold!r} is neither a probability nor "
                              "'validation'") from None
        if not 0.0 < args.threshold < 1.0:
            raise ConfigError(f"--threshold: {args.threshold} must lie strictly between 0 and 1")
    if args.model.is_dir() and not is_single_model(args.model):
        return predict_ensemble(args)
    if args.threshold == "validation":
        raise ConfigError("--threshold validation needs a cross-validation's ensemble; "
                          f"{args.model} is one model")
    fitted = _fitted_from_args(args)
    df = fitted.predict([str(s) for s in args.scans], threshold=args.threshold,
                        progress=not args.no_progress)
    if args.out is not None:
        write_csv(df, args.out, index=True)
        if not args.quiet:
            print(f"wrote {args.out}")
    else:
        print(df.to_string())
    return EXIT_OK


def _convert_targets(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """(DICOM source, NIfTI destination) pairs of ``ichprog convert``."""
    sources = list(args.sources)
    nifti = (".nii", ".nii.gz")
    if args.out is None:
        if len(sources) == 2 and sources[1].name.lower().endswith(nifti):
            return [(sources[0], sources[1])]
        raise ConfigError("convert: give SOURCE DEST.nii.gz for one series, or --out DIR")
    if args.out.name.lower().endswith(nifti):
        raise ConfigError(f"--out {args.out}: a folder is expected; for one file use "
                          "'ichprog convert SOURCE DEST.nii.gz'")
    pairs = []
    for src in sources:
        stem = src.name[:-4] if src.is_file() and src.name.lower().endswith(".dcm") else src.name
        pairs.append((src, args.out / f"{stem}.nii.gz"))
    names = [dest.name for _, dest in pairs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"convert: several sources would be written to {dup}; convert them "
                          "into different folders")
    return pairs


def _cmd_convert(args: argparse.Namespace) -> int:
    from ichprog.data import save_volume
    from ichprog.data.dicom import load_dicom_series

    pairs = _convert_targets(args)
    for src, _ in pairs:
        if not src.exists():
            raise ConfigError(f"convert: {src} does not exist")
    for src, dest in pairs:
        if dest.exists() and not args.overwrite:
            raise ConfigError(f"convert: {dest} exists; pass --overwrite to replace it")
        array, affine = load_dicom_series(src, series=args.series)
        save_volume(array, affine, dest)
        if not args.quiet:
            print(f"{src} -> {dest} ({' x '.join(str(n) for n in array.shape)} voxels, "
                  f"{array.dtype})")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from ichprog.report import build_report

    t0 = time.perf_counter()
    mode = "quick" if args.quick else "full" if args.full else "default"
    base = {k: dict(v) for k, v in _demo_modes()[mode].items()}
    base["run"] = {"name": f"phantom demo ({mode})"}
    if args.long_claims:
        base["claims"] = {**base.get("claims", {}), **LONG_CLAIMS}
    run = _start(args, base=base)
    cfg = run.cfg
    if cfg["data"]["source"] != "phantom":
        run.say("note: the demo runs on your cohort ([data] source = 'table')")
    run.manifest.mode = mode
    if mode == "full" and _device_text(cfg["run"]["device"]).startswith("cpu"):
        run.say("warning: --full runs the paper's protocol (DenseNet121 at 40 x 301 x 301, 10 "
                "folds, up to 100 epochs); without a GPU it takes days. Interrupt with Ctrl-C "
                "at any time: finished folds are kept and reused.")
    cohort = _load_cohort(run)
    _describe_run(run, "phantom", "tabular", "cv", "ablation", "saliency", "report")
    run.manifest.summary["demo mode"] = mode
    run.manifest.subtitle = (f"ichprog demo ({mode} mode), {time.strftime('%Y-%m-%d %H:%M')}, "
                             f"ichprog {__version__}")
    run.manifest.notes = _demo_notes(cfg, mode)
    run.save()
    _stage_tabular(run, cohort)
    _stage_cv(run, cohort, cfg["cv"]["models"])
    _stage_ablation(run, cohort)
    _stage_saliency(run, cohort)
    _stage_claims(run, cohort)
    _finish(run, t0)
    paths = build_report(run.out)
    run.say(f"report: {paths['html']} (Markdown: {paths['markdown']}); total "
            f"{_duration(run.manifest.wall_time_s or 0.0)}")
    return EXIT_OK


def _demo_notes(cfg: Mapping[str, Any], mode: str) -> list[str]:
    notes = []
    if mode != "full":
        notes.append(
            "CPU sizes: a DenseNet121 training step at the paper's input of 1 x 40 x 301 x 301 "
            "costs about 4.4 s per sample on a CPU (float32), so this run uses a smaller input "
            f"({' x '.join(map(str, cfg['preprocess']['shape']))}) and the "
            f"'{cfg['model']['trunk'] or 'preset'}' trunk, {cfg['cv']['folds']} folds and "
            f"{cfg['train']['epochs']} epochs. `ichprog demo --full` runs the paper's protocol "
            "(10 folds, 100 epochs, 40 x 301 x 301, DenseNet121) on a GPU.")
    return notes


_Handler = Callable[[argparse.Namespace], int]


def _cmd_report(args: argparse.Namespace) -> int:
    from ichprog.report import build_report

    if not args.run_dir.is_dir():
        raise ConfigError(f"run folder {args.run_dir} does not exist")
    paths = build_report(args.run_dir, out_dir=args.out)
    if not args.quiet:
        print(f"wrote {paths['html']} and {paths['markdown']}")
    return EXIT_OK


def _cmd_phantom(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    run = _start(args)
    if run.cfg["data"]["source"] != "phantom":
        raise ConfigError("'ichprog phantom' generates a phantom cohort; [data] source must be "
                          "'phantom'")
    cohort = _load_cohort(run)
    _finish(run, t0)
    run.say(f"phantom cohort of {len(cohort)} patients in {run.out / 'phantom'}")
    return EXIT_OK


def _cmd_tabular(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    run = _start(args)
    cohort = _load_cohort(run)
    _stage_tabular(run, cohort)
    _finish(run, t0)
    run.say(f"tabular results in {run.out / 'tabular'}")
    return EXIT_OK


def _cmd_cv(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    run = _start(args)
    cohort = _load_cohort(run)
    _describe_run(run, "cv")
    _stage_cv(run, cohort, run.cfg["cv"]["models"])
    _finish(run, t0)
    run.say(f"cross-validation results in {run.out / 'cv'}; 'ichprog report {run.out}' "
            "builds the report")
    return EXIT_OK


def _cmd_ablation(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    run = _start(args)
    cohort = _load_cohort(run)
    _describe_run(run, "ablation")
    _stage_ablation(run, cohort)
    _finish(run, t0)
    run.say(f"ablation results in {run.out / 'ablation'}")
    return EXIT_OK


_HANDLERS: dict[str, _Handler] = {"report": _cmd_report, "phantom": _cmd_phantom,
                                  "tabular": _cmd_tabular, "cv": _cmd_cv,
                                  "ablation": _cmd_ablation, "saliency": _cmd_saliency,
                                  "train": _cmd_train, "predict": _cmd_predict, "demo": _cmd_demo,
                                  "convert": _cmd_convert}

#: The packages of ichprog each command uses; :func:`_check_extras` imports them before the command
#: starts, so that a missing extra stops it before anything is computed.
_COMMAND_PACKAGES: dict[str, tuple[str, ...]] = {
    "report": ("ichprog.report",),
    "phantom": ("ichprog.data",),
    "tabular": ("ichprog.data", "ichprog.tabular", "ichprog.report"),
    "cv": ("ichprog.data", "ichprog.experiment"),
    "ablation": ("ichprog.data", "ichprog.experiment", "ichprog.report"),
    "saliency": ("ichprog.data", "ichprog.experiment", "ichprog.saliency", "ichprog.report"),
    "train": ("ichprog.data", "ichprog.experiment"),
    "predict": ("ichprog.experiment",),
    "convert": ("ichprog.data",),
    "demo": ("ichprog.data", "ichprog.experiment", "ichprog.tabular", "ichprog.saliency",
             "ichprog.report"),
}


def _check_extras(command: str) -> None:
    """Raise one :class:`~ichprog._extras.MissingExtraError` naming every extra that ``command``
    needs and that is not installed."""
    errors = []
    for package in _COMMAND_PACKAGES.get(command, ()):
        try:
            importlib.import_module(package)
        except MissingExtraError as exc:
            errors.append(exc)
    if errors:
        raise MissingExtraError.combine(f"'ichprog {command}'", errors)
