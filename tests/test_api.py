"""The public API, pinned.

Every public module's ``__all__`` is compared with the names below. A change fails this test on
purpose: update the list together with docs/api-stability.md (deprecation policy) and the
changelog. The names that docs/architecture.md names as interfaces between modules are checked
separately, so that they cannot disappear from an ``__all__`` unnoticed.
"""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

PINNED: dict[str, set[str]] = {
    "ichprog": {
        "CVResult", "FittedModel", "__version__", "ablation", "cross_validate", "data",
        "encoding", "experiment", "fit_multitask", "metrics", "models", "recipes", "report",
        "saliency", "tabular", "tasks", "training"
    },
    "ichprog.encoding": {
        "AgeBinaryEncoder", "CumulativeEncoder", "DECODE_RULES", "GCSBinaryEncoder",
        "GCSOrdinalEncoder", "GCS_MAX", "GCS_MIN", "age_binary", "cumulative_decode",
        "cumulative_encode", "gcs_binary", "gcs_ordinal", "non_monotone_fraction", "validate_age",
        "validate_gcs"
    },
    "ichprog.metrics": {
        "CALIBRATION_METRICS", "CALIBRATORS", "Calibrator", "calibration_metrics",
        "calibration_metrics_batch",
        "calibration_summary", "calibration_table", "choose_threshold", "decision_curve",
        "fit_calibrator", "net_benefit",
        "BINARY_METRICS", "BOOTSTRAP_COLUMNS", "ORDINAL_METRICS", "TIDY_COLUMNS",
        "UndefinedMetricWarning", "binary_metrics", "binary_metrics_batch", "bootstrap_ci",
        "mean_sd_table", "oci",
        "oci_from_confusion", "ordinal_confusion_matrix", "ordinal_metrics",
        "ordinal_metrics_from_confusion", "quadratic_weighted_kappa", "resample_counts",
        "roc_auc", "summarize", "summary_stats", "tidy", "to_markdown", "uoc_from_confusion",
        "uoc_index", "uoc_index_from_confusion"
    },
    "ichprog.tasks": {
        "AGE_BINARY", "BASELINE_AGE", "BASELINE_DENSENET", "BASELINE_GCS_BIN", "BASELINE_GCS_ORD",
        "BASELINE_PEREZ", "ENCODERS", "GCS_BINARY", "GCS_ORDINAL", "MT_BIN_GCS_BIN_AGE",
        "MT_ORD_GCS_BIN_AGE", "PRESETS", "PROGNOSIS", "Preset", "Task", "ablations", "as_preset",
        "get_preset"
    },
    "ichprog.data": {
        "AUTHORS_PREPROCESS", "Augment", "BINARY_COLUMNS", "COLUMNS", "CTDataset", "Cohort", "DicomError", "Fold",
        "GantryTiltError", "ID_COLUMN", "ImplausibleScanError", "ImplausibleScanWarning",
        "LABEL_COLUMN", "MixedSeriesError", "ModalityError", "NUMERIC_COLUMNS", "PhantomConfig",
        "PreprocessConfig", "ScanChecks", "SliceSpacingError", "Splits", "TransferSyntaxError",
        "VolumeCache", "check_mask_grid", "check_scan", "list_dicom_series", "load_cohort",
        "load_dicom_series", "load_table", "load_volume", "make_phantom_cohort", "make_splits",
        "oversample", "phantom_table", "preprocess_volume", "save_dicom_series", "save_volume",
        "strip_skull", "to_original_space"
    },
    "ichprog.models": {
        "AUTHORS_HEADS", "Bf16SafeConv3d", "MultiTaskNet", "PerezCNN", "TRUNKS", "TaskHead",
        "TrunkSpec", "UnsafeCheckpointError", "balanced_pos_weight", "build_trunk",
        "load_authors_checkpoint", "make_bf16_safe", "multitask_loss", "read_authors_state_dict"
    },
    "ichprog.training": {
        "ArrayDataset", "CheckpointWarning", "TrainConfig", "TrainResult", "load_checkpoint",
        "load_weights",
        "plot_history", "predict_proba", "read_sidecar", "resolve_channels_last",
        "resolve_device", "resolve_precision", "save_checkpoint", "save_weights",
        "seed_everything", "targets_to_classes", "train", "parse_duration"
    },
    "ichprog.tabular": {
        "ALL_FEATURES", "FEATURE_SETS", "MODEL_LABELS", "MODEL_NAMES", "PAPER_TABLE1",
        "PerezDNNClassifier", "TABLE1_COLUMNS", "Table1Result", "TabularCVResult",
        "TabularPreprocessor", "boundary_encoders", "boundary_splits", "boundary_tasks",
        "check_table", "cross_validate_tabular", "decision_boundaries", "explainer_kind",
        "fit_boundary_tree", "fit_model", "make_model", "plot_decision_regions", "plot_shap",
        "resolve_features", "shap_importance", "shap_values", "table1"
    },
    "ichprog.saliency": {
        "BRAIN_WINDOW", "CHANCE_COLUMNS", "ConstantMapWarning", "Explainer", "METHODS",
        "SCORE_COLUMNS", "SIGNS", "SaliencyMaps", "as_network", "bootstrap_mean", "brain_mask",
        "compare_lesion_scores", "compute_maps", "gradcam", "guided_backprop", "guided_gradcam",
        "lesion_scores", "map_to_original", "mask_to_input_space", "normalize_map",
        "plot_model_grid", "plot_slices", "predict_probability", "resolve_target", "saliency_map",
        "save_map", "save_maps", "select_slices", "summarize_lesion_scores"
    },
    "ichprog.experiment": {
        "AblationResult", "CVResult", "ClaimsResult", "FittedModel", "Result", "ablation",
        "check_claims", "cross_validate", "fit_multitask", "long_predictions",
        "prediction_columns", "reference_predictions", "Executor", "SerialExecutor",
        "RayExecutor", "as_executor", "FoldEnsemble", "load_ensemble"
    },
    "ichprog.recipes": {"RECIPES", "Recipe", "as_recipe", "get_recipe"},
    "ichprog.report": {
        "METRIC_LABELS", "PAPER_TABLES", "PHANTOM_NOTE", "RUN_LAYOUT", "Report", "build_report",
        "confusion_figure", "figure_to_png", "importance_figure", "interval_table",
        "metric_bars_figure", "paper_table", "roc_figure", "summary_table",
        "training_curves_figure", "calibration_section", "decision_curve_figure",
        "model_card_section", "read_model_card", "reliability_figure"
    },
    "ichprog.cli": {
        "CONFIG_SCHEMA", "ConfigError", "DEMO_MODES", "EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE",
        "build_parser", "default_config", "dump_config", "load_config", "main", "validate_config"
    },
}

#: The interfaces of docs/architecture.md, by module.
ARCHITECTURE: dict[str, set[str]] = {
    "ichprog.encoding": {"gcs_binary", "gcs_ordinal", "age_binary", "cumulative_encode",
                         "cumulative_decode", "non_monotone_fraction", "GCSBinaryEncoder",
                         "GCSOrdinalEncoder", "AgeBinaryEncoder", "CumulativeEncoder"},
    "ichprog.tasks": {"Task", "Preset", "as_preset", "ablations"},
    "ichprog.metrics": {"binary_metrics", "ordinal_metrics", "uoc_index", "oci", "bootstrap_ci",
                        "tidy", "summarize", "to_markdown"},
    "ichprog.data": {"Cohort", "load_cohort", "load_volume", "save_volume", "PreprocessConfig",
                     "preprocess_volume", "VolumeCache", "CTDataset", "make_splits", "Splits",
                     "Fold", "oversample", "make_phantom_cohort"},
    "ichprog.models": {"MultiTaskNet", "multitask_loss"},
    "ichprog.training": {"TrainConfig", "train", "predict_proba"},
    "ichprog.experiment": {"fit_multitask", "cross_validate", "ablation", "FittedModel",
                           "CVResult"},
    "ichprog.saliency": {"guided_backprop", "gradcam", "guided_gradcam", "lesion_scores"},
    "ichprog.tabular": {"cross_validate_tabular", "shap_importance", "decision_boundaries"},
    "ichprog.report": {"Report", "build_report"},
    "ichprog.cli": {"main"},
}


@pytest.mark.parametrize("module", sorted(PINNED))
def test_all_is_pinned(module):
    mod = importlib.import_module(module)
    names = set(mod.__all__)
    assert len(names) == len(mod.__all__), f"{module}.__all__ lists a name twice"
    added, removed = sorted(names - PINNED[module]), sorted(PINNED[module] - names)
    assert not added and not removed, (
        f"{module}.__all__ changed: added {added}, removed {removed}. Update tests/test_api.py, "
        "and follow docs/api-stability.md for removals (deprecate first)."
    )


@pytest.mark.parametrize("module", sorted(PINNED))
def test_every_public_name_resolves_and_is_documented(module):
    mod = importlib.import_module(module)
    assert (mod.__doc__ or "").strip(), f"{module} has no module docstring"
    for name in mod.__all__:
        obj = getattr(mod, name)  # lazy names must resolve too
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert (obj.__doc__ or "").strip(), f"{module}.{name} has no docstring"


@pytest.mark.parametrize("module", sorted(ARCHITECTURE))
def test_architecture_interfaces_are_public(module):
    mod = importlib.import_module(module)
    missing = sorted(ARCHITECTURE[module] - set(mod.__all__))
    assert not missing, f"{module} no longer exports {missing} (docs/architecture.md)"


def test_top_level_shortcuts_are_the_experiment_functions():
    import ichprog
    from ichprog import experiment

    for name in ("fit_multitask", "cross_validate", "ablation", "FittedModel", "CVResult"):
        assert getattr(ichprog, name) is getattr(experiment, name)
    assert isinstance(ichprog.__version__, str) and ichprog.__version__.count(".") >= 1


def test_console_script_entry_point():
    from importlib.metadata import entry_points

    eps = [e for e in entry_points(group="console_scripts") if e.name == "ichprog"]
    assert eps and eps[0].value == "ichprog.cli:main"


def test_light_modules_import_without_torch():
    # docs/architecture.md: encoding, metrics and tasks import without torch, MONAI or SHAP
    code = ("import sys; import ichprog.encoding, ichprog.metrics, ichprog.tasks; "
            "heavy = [m for m in ('torch', 'monai', 'shap') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


DOCS = sorted((Path(__file__).resolve().parents[1] / "docs").glob("*.md"))


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_docs_reference_importable_modules_and_valid_python(page):
    import re

    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"^::: (ichprog[\w.]*)", text, flags=re.M):
        try:
            importlib.import_module(target)
        except ImportError:
            module, _, attr = target.rpartition(".")
            assert hasattr(importlib.import_module(module), attr), f"{page.name}: ::: {target}"
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        compile(block, f"{page.name} snippet", "exec")
