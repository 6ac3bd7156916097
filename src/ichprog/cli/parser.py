"""The argument parser of ``ichprog``: :func:`build_parser` and the options its subcommands
share."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import Any

from ichprog._version import __version__
from ichprog.cli.config import _presets, _trunks

_EPILOG_EXIT = textwrap.dedent("""\
    exit codes: 0 success, 2 usage or configuration error, 1 runtime failure, 130 interrupted.
    """)


# Placeholders of help texts, filled from the registries when the help is shown (reading
# them imports numpy and torch, which building the parser must not).
_HELP_LISTS: dict[str, Any] = {
    "{presets}": lambda: ", ".join(_presets()),
    "{trunks}": lambda: ", ".join(t for t in _trunks() if t),
}


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        for key, names in _HELP_LISTS.items():
            if text and key in text:
                text = text.replace(key, names())
        return text


def _add_common(p: argparse.ArgumentParser, out_required: bool = True) -> None:
    p.add_argument("--out", "-o", type=Path, required=out_required, metavar="DIR",
                   help="output folder (created if missing; finished stages in it are reused)")
    p.add_argument("--config", "-c", type=Path, metavar="FILE",
                   help="TOML configuration file (see configs/ and docs/cli.md)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE",
                   help="override one configuration value, e.g. --set train.epochs=5 "
                        "(repeatable; applied after --config)")
    p.add_argument("--seed", type=int, metavar="N", help="master seed (run.seed)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--quiet", "-q", action="store_true", help="print only errors")


def _add_data(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data (default: the phantom cohort)")
    g.add_argument("--table", type=Path, metavar="CSV",
                   help="clinical table of your cohort (sets data.source = 'table')")
    g.add_argument("--image-dir", type=Path, metavar="DIR", help="folder of the scans")
    g.add_argument("--mask-dir", type=Path, metavar="DIR", help="folder of lesion masks")
    g.add_argument("--n-patients", type=int, metavar="N", help="phantom cohort size")
    g.add_argument("--shape", type=int, nargs=3, metavar=("D", "H", "W"),
                   help="network input size after pre-processing (preprocess.shape)")


def _add_model(p: argparse.ArgumentParser, preset: bool = True) -> None:
    g = p.add_argument_group("model and training")
    if preset:
        g.add_argument("--preset", metavar="NAME", help="model preset: {presets}")
    g.add_argument("--trunk", metavar="NAME", help="trunk: {trunks}")
    g.add_argument("--epochs", type=int, metavar="N", help="maximum epochs (train.epochs)")
    g.add_argument("--folds", type=int, metavar="K", help="cross-validation folds (cv.folds)")
    g.add_argument("--device", metavar="DEV", help="auto, cpu, cuda or mps (run.device)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ichprog`` with every subcommand.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog="ichprog",
        formatter_class=_Formatter,
        description="Prognosis after intracranial hemorrhage from head CT: multi-task 3D models, "
                    "tabular baselines, saliency maps and reports.",
        epilog=textwrap.dedent("""\
            examples:
              ichprog demo --out demo-out              # the whole protocol on the phantom (CPU, <15 min)
              ichprog demo --quick --out demo-quick    # the same, smaller (about 2 min)
              ichprog phantom --out runs/p --n-patients 60
              ichprog cv --preset mt_ord_gcs_bin_age --out runs/cv --folds 5 --epochs 10
              ichprog cv --config configs/paper.toml --out runs/paper
              ichprog report runs/cv

            """) + _EPILOG_EXIT,
    )
    parser.add_argument("--version", action="version", version=f"ichprog {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_demo, _add_phantom, _add_tabular, _add_train, _add_cv, _add_ablation,
                _add_predict, _add_saliency, _add_convert, _add_report):
        add(sub)
    return parser


def _command(sub: Any, name: str, help_: str, examples: str) -> argparse.ArgumentParser:
    """A subcommand whose help ends with its examples and the exit codes; it takes ``--debug``."""
    p = sub.add_parser(name, help=help_, description=help_, formatter_class=_Formatter,
                       epilog="examples:\n" + textwrap.indent(textwrap.dedent(examples), "  ")
                       + "\n" + _EPILOG_EXIT)
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return p


def _add_demo(sub: Any) -> None:
    p = _command(sub, "demo",
                 "Run the whole protocol on the phantom cohort and write DIR/report.html.", """\
        ichprog demo --out demo-out            # default: CPU, at most 15 minutes
        ichprog demo --quick --out demo-quick  # about 2 minutes
        ichprog demo --full --out demo-full    # the paper's sizes (needs a GPU)
        """)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes, about 2 minutes on a CPU")
    mode.add_argument("--full", action="store_true",
                      help="the paper's protocol: 261 patients, 40x301x301, DenseNet121, 10 folds, "
                           "100 epochs (GPU work)")
    p.add_argument("--long-claims", action="store_true",
                   help="test the paper's claims on 3 repeats of the folds with a learning curve "
                        "at 64, 96 and 128 patients (default mode: about 35 minutes on 2 CPU "
                        "cores)")
    _add_common(p)
    _add_data(p)
    _add_model(p, preset=False)


def _add_phantom(sub: Any) -> None:
    p = _command(sub, "phantom",
                 "Generate a phantom cohort (synthetic scans, masks and clinical table).",
                 """\
        ichprog phantom --out phantom-60 --n-patients 60
        ichprog phantom --out phantom --set data.phantom_shape=[40,128,128]
        """)
    _add_common(p)
    p.add_argument("--n-patients", type=int, metavar="N", help="cohort size (data.n_patients)")


def _add_tabular(sub: Any) -> None:
    p = _command(sub, "tabular",
                 "Cross-validate the tabular baselines (Table 1) with SHAP importances.",
                 """\
        ichprog tabular --out runs/tab
        ichprog tabular --out runs/tab --table CLINICAL_DATA_ICH.csv --folds 10
        """)
    _add_common(p)
    _add_data(p)
    p.add_argument("--folds", type=int, metavar="K", help="folds (tabular.folds)")


def _add_train(sub: Any) -> None:
    p = _command(sub, "train",
                 "Train one model on the whole cohort (10 %% held out for early stopping).",
                 """\
        ichprog train --preset mt_ord_gcs_bin_age --out runs/model --epochs 20
        ichprog train --config configs/cpu-small.toml --out runs/model
        """)
    _add_common(p)
    _add_data(p)
    _add_model(p)


def _add_cv(sub: Any) -> None:
    p = _command(sub, "cv", "Cross-validate one or more presets (Tables 2-4).", """\
        ichprog cv --preset mt_ord_gcs_bin_age --out runs/cv --folds 5 --epochs 10
        ichprog cv --preset baseline_densenet --preset mt_bin_gcs_bin_age --out runs/cv
        ichprog cv --config configs/paper.toml --out runs/paper
        ichprog cv --out /shared/runs/cv --executor ray --ray-address auto
        """)
    _add_common(p)
    _add_data(p)
    _add_model(p, preset=False)
    p.add_argument("--preset", action="append", metavar="NAME",
                   help="preset to cross-validate (repeatable; default cv.models)")
    _add_executor(p)


def _add_executor(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("execution (default: serial, in this process)")
    g.add_argument("--executor", metavar="NAME",
                   help="'serial' or 'ray': one Ray task per fold (cv.executor; needs "
                        "ichprog[ray])")
    g.add_argument("--ray-address", metavar="ADDR",
                   help="Ray cluster to connect to, e.g. auto or ray://head:10001 "
                        "(cv.ray_address; default: start Ray on this machine)")


def _add_ablation(sub: Any) -> None:
    p = _command(sub, "ablation", "Ablate the loss terms of a multi-task preset (Fig. 2).", """\
        ichprog ablation --out runs/abl --preset mt_ord_gcs_bin_age --folds 5
        ichprog ablation --out /shared/runs/abl --executor ray --ray-address auto
        """)
    _add_common(p)
    _add_data(p)
    _add_model(p)
    _add_executor(p)


def _add_predict(sub: Any) -> None:
    p = _command(sub, "predict",
                 "Predict every task of a trained model, or of a cross-validation's fold "
                 "ensemble, on new scans.", """\
        ichprog predict --model runs/cv --input scans/ --out preds.csv   # ensemble + preds.html
        ichprog predict --model runs/cv --preset mt_ord_gcs_bin_age --input scan.nii.gz
        ichprog predict --model runs/m/train/model scan1.nii.gz scan2.nii.gz --out preds.csv
        ichprog predict --model runs/m/train/model dicom/patient7/ --out preds.csv
        ichprog predict --model DenseNet_fold0.pth --preset mt_ord_gcs_bin_age dicom/*/ -o p.csv
        """)
    p.add_argument("--model", type=Path, required=True, metavar="DIR",
                   help="a cross-validation (a run folder of 'ichprog cv' or 'ichprog demo', or "
                        "its cv/<preset> folder): its fold models predict as one ensemble; one "
                        "saved model folder (DIR/train/model of 'ichprog train', or a fold's "
                        "DIR/cv/<preset>/fold_00/model); or one of the authors' published "
                        "checkpoint files (with --preset; their input pipeline is used)")
    p.add_argument("--preset", metavar="NAME",
                   help="the tasks of an authors' checkpoint file, or the cross-validated model "
                        "of a run folder that holds several: {presets}")
    p.add_argument("--skull-strip", action="store_true",
                   help="strip the skull before an authors' checkpoint (their scans were "
                        "stripped beforehand)")
    p.add_argument("scans", nargs="*", type=Path, metavar="SCAN",
                   help="NIfTI files or folders of DICOM files (one CT series each)")
    p.add_argument("--input", "-i", type=Path, action="append", metavar="PATH",
                   help="a NIfTI file, a folder of NIfTI files, or a folder of DICOM files (one "
                        "CT series); repeatable")
    p.add_argument("--threshold", default="0.5", metavar="T",
                   help="threshold of the decoded classes: a probability (default 0.5) or "
                        "'validation' (the ensemble's thresholds chosen on validation parts)")
    p.add_argument("--no-saliency", action="store_true",
                   help="leave the Grad-CAM panels out of the ensemble's HTML summary")
    p.add_argument("--out", "-o", type=Path, metavar="CSV",
                   help="write the predictions to this CSV (an ensemble also writes the HTML "
                        "summary beside it, same name, .html; a folder gets predictions.csv "
                        "and summary.html); default: print them")
    p.add_argument("--skip-check", action="append", metavar="CHECK",
                   choices=("hu_range", "tissue", "size", "mask_grid", "all"),
                   help="switch off a plausibility check of the scans (repeatable): hu_range, "
                        "tissue, size, mask_grid or all (see docs/reliability.md)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--quiet", "-q", action="store_true", help="print only errors")


def _add_convert(sub: Any) -> None:
    p = _command(sub, "convert", "Convert DICOM series (folders of DICOM files) to NIfTI.", """\
        ichprog convert dicom/patient7/ patient7.nii.gz
        ichprog convert dicom/* --out nifti/        # one <folder name>.nii.gz per series
        """)
    p.add_argument("sources", nargs="+", type=Path, metavar="SOURCE",
                   help="DICOM folders (or single DICOM files); with one source, a final "
                        "argument ending in .nii or .nii.gz is the destination file")
    p.add_argument("--out", "-o", type=Path, metavar="DIR",
                   help="folder for <source name>.nii.gz files (created)")
    p.add_argument("--series", metavar="UID",
                   help="SeriesInstanceUID to read when a folder holds several series")
    p.add_argument("--overwrite", action="store_true", help="replace existing NIfTI files")
    p.add_argument("--quiet", "-q", action="store_true", help="print only errors")


def _add_saliency(sub: Any) -> None:
    p = _command(sub, "saliency", "Saliency maps and lesion scores of cross-validated models, "
                 "or of one model on given scans.", """\
        ichprog saliency --out runs/cv               # explains the models of 'ichprog cv'
        ichprog saliency --out runs/cv --set saliency.n_patients=8
        ichprog saliency --out maps --model runs/m/train/model dicom/patient7/ scan2.nii.gz
        ichprog saliency --out maps --model DenseNet_fold0.pth --preset mt_ord_gcs_bin_age dicom/p7/
        """)
    _add_common(p)
    g = p.add_argument_group("one model on given scans (instead of a run's models and cohort)")
    g.add_argument("scans", nargs="*", type=Path, metavar="SCAN",
                   help="NIfTI files or DICOM folders to explain (with --model)")
    g.add_argument("--model", type=Path, metavar="DIR",
                   help="a saved model folder, or an authors' checkpoint file with --preset")
    g.add_argument("--preset", metavar="NAME",
                   help="the tasks of an authors' checkpoint file: {presets}")
    g.add_argument("--skull-strip", action="store_true",
                   help="strip the skull before an authors' checkpoint")
    g.add_argument("--method", action="append", choices=("guided_backprop", "gradcam",
                                                         "guided_gradcam"),
                   help="saliency method (repeatable; default guided_backprop and "
                        "guided_gradcam)")
    g.add_argument("--task", default="prognosis", metavar="NAME",
                   help="the head to explain (default prognosis)")
    g.add_argument("--target", type=int, default=1, metavar="K",
                   help="the class to explain (default 1: poor prognosis)")
    g.add_argument("--skip-check", action="append", metavar="CHECK",
                   choices=("hu_range", "tissue", "size", "mask_grid", "all"),
                   help="switch off a plausibility check of the scans (repeatable): hu_range, "
                        "tissue, size, mask_grid or all (see docs/reliability.md)")


def _add_report(sub: Any) -> None:
    p = _command(sub, "report", "Build DIR/report.html and DIR/report.md from a run folder.", """\
        ichprog report demo-out
        ichprog report runs/cv --out reports/cv
        """)
    p.add_argument("run_dir", type=Path, metavar="DIR", help="a run folder")
    p.add_argument("--out", "-o", type=Path, metavar="DIR", help="write the report here instead")
    p.add_argument("--quiet", "-q", action="store_true", help="print only errors")
