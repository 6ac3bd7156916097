"""``ichprog predict`` with the fold ensemble of a cross-validation: the per-patient table and a
one-page HTML summary (probabilities with their spread across folds, the model card's intended
use, and a Grad-CAM map of the prognosis head over each scan)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ichprog.cli.errors import EXIT_OK, ConfigError

#: Scans with a saliency panel in the HTML summary (each costs one backward pass per fold).
MAX_SALIENCY_SCANS = 12

_NIFTI = (".nii", ".nii.gz")


def scan_inputs(args: argparse.Namespace) -> list[Path]:
    """The scans of the positional arguments and of ``--input``: a NIfTI file; a folder of
    NIfTI files (all of them, sorted); or a folder of DICOM files (one CT series, read by
    :func:`ichprog.data.load_volume`)."""
    paths: list[Path] = list(args.scans)
    for p in args.input or []:
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith(_NIFTI))
            paths += found or [p]
        else:
            paths.append(p)
    if not paths:
        raise ConfigError("no scan given: pass --input PATH (a NIfTI file, a folder of them, or "
                          "a folder of DICOM files) or the scans as arguments")
    return paths


def is_single_model(folder: Path) -> bool:
    """Whether ``folder`` is one saved model (``fitted.json``, or ``model/fitted.json``)."""
    return (folder / "fitted.json").is_file() or (folder / "model" / "fitted.json").is_file()


def _saliency_panels(ens: Any, volumes: list[Any], ids: list[str],
                     probs: Any) -> list[tuple[str, bytes]]:
    """A Grad-CAM panel of the prognosis head per scan (the mean of the fold models' maps,
    scaled to [0, 1] and thresholded at 0.5 as in the paper)."""
    import warnings

    import numpy as np

    from ichprog import saliency
    from ichprog.report import figure_to_png

    if "prognosis" not in ens.preset.task_names:
        return []
    panels = []
    for vol, pid in list(zip(volumes, ids))[:MAX_SALIENCY_SCANS]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            maps = [saliency.gradcam(m.model, vol, task="prognosis", target=1, normalize=True)
                    for m in ens.models]
            avg = saliency.normalize_map(np.mean(maps, axis=0), threshold=0.5)
        p = probs.loc[pid, "prognosis_prob"]
        fig = saliency.plot_slices(vol, avg, n_slices=4,
                                   title=f"{Path(pid).name}: P(poor prognosis) = {p:.2f}")
        panels.append((pid, figure_to_png(fig)))
    return panels


def _summary_html(ens: Any, table: Any, panels: list[tuple[str, bytes]], html_path: Path,
                  model_dir: Path) -> None:
    from ichprog.experiment import prediction_columns
    from ichprog.report import Report
    from ichprog.report.modelcard import read_model_card

    card: dict[str, Any] = {}
    if ens.source is not None and (ens.source / "model_card.json").is_file():
        card = read_model_card(ens.source / "model_card.json")
    cal = ens.info.get("calibration", {}).get("method", "none") if ens.calibrated else "none"
    rep = Report("ichprog predictions",
                 subtitle=f"{ens.name}: mean of {len(ens.folds)} fold models, calibration "
                          f"{cal}, model folder {model_dir}")
    if card.get("data", {}).get("phantom"):
        rep.note("This model was trained on the synthetic **phantom cohort**: its predictions "
                 "test the software and mean nothing clinically.", "warning")
    rep.note("Research use only; not for clinical decisions about an individual patient (see "
             "the model card's out-of-scope uses).", "info")
    rep.heading("Probabilities")
    rep.text("Each cell: the mean probability over the fold models, with the 90 % range across "
             "folds in brackets and the standard deviation after ±. A wide range means the fold "
             "models disagree: the prediction is uncertain.")
    cells = {}
    for t in ens.preset:
        for col in prediction_columns(t):
            if t.kind == "continuous":
                continue
            name = {"prognosis_prob": "P(poor prognosis)", "age_prob": "P(age >= 80)",
                    "gcs_prob": "P(GCS <= 8)", "gcs_prob_gt0": "P(GCS <= 12)",
                    "gcs_prob_gt1": "P(GCS <= 8)"}.get(col, col)
            cells[name] = [f"{m:.2f} [{lo:.2f}-{hi:.2f}] ± {sd:.2f}" for m, lo, hi, sd in zip(
                table[col], table[f"{col}_q05"], table[f"{col}_q95"], table[f"{col}_sd"])]
    import pandas as pd

    shown = pd.DataFrame(cells, index=[Path(str(i)).name for i in table.index])
    shown.index.name = "scan"
    rep.table(shown, caption=f"Predicted probabilities ({len(ens.folds)} fold models)")
    thresholds = table.attrs.get("thresholds", {})
    preds = pd.DataFrame({f"{t} (threshold {thresholds.get(t, 0.5):.2f})": table[f"{t}_pred"]
                          for t in ens.preset.task_names if f"{t}_pred" in table.columns})
    preds.index = shown.index
    rep.table(preds, caption="Decoded classes (prognosis 1 = poor; GCS 0 mild, 1 moderate, "
                             "2 severe; age 1 = 80 or older)")
    if panels:
        rep.heading("Where the evidence for a poor prognosis lies")
        rep.text("Grad-CAM of the prognosis head, averaged over the fold models, scaled to "
                 "[0, 1] and shown from 0.5 up, over the pre-processed scan (radiological "
                 "orientation: the patient's left on the right). Saliency shows where the "
                 "network's evidence lies, not why.")
        for pid, png in panels:
            rep.figure(png, caption=Path(pid).name, name=f"saliency-{Path(pid).name}")
    if card.get("intended_use"):
        rep.heading("Intended use")
        rep.bullets(card["intended_use"])
        rep.text("**Out of scope**")
        rep.bullets(card.get("out_of_scope", []))
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(rep.to_html(), encoding="utf-8")


def predict_ensemble(args: argparse.Namespace) -> int:
    """``ichprog predict --model CV_RUN_DIR --input PATH``: the per-patient table (CSV) and
    the HTML summary beside it."""
    from ichprog.experiment import load_ensemble

    scans = list(args.scans)
    try:
        ens = load_ensemble(args.model, model=getattr(args, "preset", None))
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(f"--model: {exc}") from exc
    skip = set(getattr(args, "skip_check", None) or ())
    if skip:  # --skip-check: the same plausibility checks off for every fold model
        import dataclasses

        for m in ens.models:
            checks = m.preprocess.checks
            off = {n: False for n in checks.enabled if n in skip or "all" in skip}
            m.preprocess = m.preprocess.replace(checks=dataclasses.replace(checks, **off))
    ds = ens.models[0]._dataset([str(s) for s in scans])
    table = ens.predict(list(ds.volumes), progress=not args.no_progress,
                        threshold=args.threshold)
    table.index = [str(s) for s in scans]
    table.index.name = "input"
    if args.out is None:
        print(table.to_string())
        return EXIT_OK
    out = Path(args.out)
    csv = out if out.suffix == ".csv" else out / "predictions.csv"
    html = csv.with_suffix(".html") if out.suffix == ".csv" else out / "summary.html"
    csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(csv)
    from ichprog._extras import MissingExtraError

    try:
        panels = [] if args.no_saliency else _saliency_panels(ens, list(ds.volumes),
                                                              list(table.index), table)
        _summary_html(ens, table, panels, html, Path(args.model))
    except MissingExtraError as exc:  # the table is written; the summary needs matplotlib
        print(f"wrote {csv}; no HTML summary: {exc}")
        return EXIT_OK
    if not args.quiet:
        print(f"wrote {csv} and {html}")
    return EXIT_OK
