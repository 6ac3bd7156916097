"""The commands of ``ichprog``: one handler per subcommand, run by :func:`ichprog.cli.main`."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from typing import Any

from ichprog._version import __version__
from ichprog.cli.config import LONG_CLAIMS, _demo_modes
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


def _cmd_saliency(args: argparse.Namespace) -> int:
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
    run.manifest["train"] = {k: fitted.info.get(k) for k in ("best_epoch", "epochs_run",
                                                              "stop_reason")}
    _finish(run, t0)
    run.say(f"model in {out / 'model'} (best epoch {fitted.info.get('best_epoch')} of "
            f"{fitted.info.get('epochs_run')}); predict with "
            f"'ichprog predict --model {out / 'model'} SCAN...'")
    return EXIT_OK


def _cmd_predict(args: argparse.Namespace) -> int:
    from ichprog.cli.predict import _scan_paths, is_single_model, predict_ensemble

    if not args.model.is_dir():
        raise ConfigError(f"--model: folder {args.model} does not exist")
    if args.threshold != "validation":
        try:
            args.threshold = float(args.threshold)
        except ValueError:
            raise ConfigError(f"--threshold: {args.threshold!r} is neither a probability nor "
                              "'validation'") from None
        if not 0.0 < args.threshold < 1.0:
            raise ConfigError(f"--threshold: {args.threshold} must lie strictly between 0 and 1")
    if not is_single_model(args.model):
        return predict_ensemble(args)
    if args.threshold == "validation":
        raise ConfigError("--threshold validation needs a cross-validation's ensemble; "
                          f"{args.model} is one saved model")
    scans = _scan_paths(args)
    fitted = _load_fitted(args.model)
    df = fitted.predict([str(s) for s in scans], threshold=args.threshold,
                        progress=not args.no_progress)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.out)
        if not args.quiet:
            print(f"wrote {args.out}")
    else:
        print(df.to_string())
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
    run.manifest["mode"] = mode
    if mode == "full" and _device_text(cfg["run"]["device"]).startswith("cpu"):
        run.say("warning: --full runs the paper's protocol (DenseNet121 at 40 x 301 x 301, 10 "
                "folds, up to 100 epochs); without a GPU it takes days. Interrupt with Ctrl-C "
                "at any time: finished folds are kept and reused.")
    cohort = _load_cohort(run)
    _describe_run(run, "phantom", "tabular", "cv", "ablation", "saliency", "report")
    run.manifest["summary"]["demo mode"] = mode
    run.manifest["subtitle"] = (f"ichprog demo ({mode} mode), {time.strftime('%Y-%m-%d %H:%M')}, "
                                f"ichprog {__version__}")
    run.manifest["notes"] = _demo_notes(cfg, mode)
    run.save()
    _stage_tabular(run, cohort)
    _stage_cv(run, cohort, cfg["cv"]["models"])
    _stage_ablation(run, cohort)
    _stage_saliency(run, cohort)
    _stage_claims(run, cohort)
    _finish(run, t0)
    paths = build_report(run.out)
    run.say(f"report: {paths['html']} (Markdown: {paths['markdown']}); total "
            f"{_duration(run.manifest['wall_time_s'])}")
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
                                  "train": _cmd_train, "predict": _cmd_predict, "demo": _cmd_demo}
