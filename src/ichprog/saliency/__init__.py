"""Saliency maps for multi-task CT models: guided backpropagation, Grad-CAM and guided Grad-CAM
for any head and class, figures over the CT, NIfTI export aligned with the original scan, and
quantitative scores against lesion masks.
"""

from ichprog._extras import require_extra

require_extra(__name__, "image", ("torch", "captum"))

from ichprog.saliency.figures import BRAIN_WINDOW, plot_model_grid, plot_slices, select_slices
from ichprog.saliency.io import (
    brain_mask,
    map_to_original,
    mask_to_input_space,
    save_map,
    save_maps,
)
from ichprog.saliency.maps import (
    METHODS,
    SIGNS,
    ConstantMapWarning,
    Explainer,
    SaliencyMaps,
    as_network,
    compute_maps,
    gradcam,
    guided_backprop,
    guided_gradcam,
    normalize_map,
    predict_probability,
    resolve_target,
    saliency_map,
)
from ichprog.saliency.scoring import (
    CHANCE_COLUMNS,
    SCORE_COLUMNS,
    bootstrap_mean,
    compare_lesion_scores,
    lesion_scores,
    summarize_lesion_scores,
)

__all__ = [
    "BRAIN_WINDOW",
    "CHANCE_COLUMNS",
    "SCORE_COLUMNS",
    "bootstrap_mean",
    "brain_mask",
    "map_to_original",
    "mask_to_input_space",
    "save_map",
    "save_maps",
    "compare_lesion_scores",
    "lesion_scores",
    "plot_model_grid",
    "plot_slices",
    "select_slices",
    "summarize_lesion_scores",
    "METHODS",
    "SIGNS",
    "ConstantMapWarning",
    "Explainer",
    "SaliencyMaps",
    "as_network",
    "compute_maps",
    "gradcam",
    "guided_backprop",
    "guided_gradcam",
    "normalize_map",
    "predict_probability",
    "resolve_target",
    "saliency_map",
]
