"""Tabular baselines of the paper's Table 1, SHAP explanations and learned GCS/age cut-offs.

* :mod:`ichprog.tabular.models`: the five model families (random forest, XGBoost, logistic
  regression, decision tree and the dense network of Perez et al.) behind one preprocessor.
* :mod:`ichprog.tabular.cv`: cross-validation on the folds of the image models, and Table 1.
* :mod:`ichprog.tabular.explain`: SHAP values with the fitting explainer per family, feature
  rankings and plots.
* :mod:`ichprog.tabular.boundaries`: cut-offs of a shallow decision tree on (GCS, age) in the
  form the encoders of :mod:`ichprog.encoding` accept, and a decision-region plot.

Names are loaded lazily: torch is imported only by the dense network, SHAP only by the
explanations.
"""

from __future__ import annotations

from ichprog._extras import require_extra

require_extra(__name__, "tabular", ("shap", "xgboost"))

from ichprog._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    # models.py
    "ALL_FEATURES": "models",
    "FEATURE_SETS": "models",
    "MODEL_NAMES": "models",
    "MODEL_LABELS": "models",
    "resolve_features": "models",
    "check_table": "models",
    "TabularPreprocessor": "models",
    "PerezDNNClassifier": "models",
    "make_model": "models",
    "fit_model": "models",
    # cv.py
    "cross_validate_tabular": "cv",
    "TabularCVResult": "cv",
    "table1": "cv",
    "Table1Result": "cv",
    "TABLE1_COLUMNS": "cv",
    "PAPER_TABLE1": "cv",
    # explain.py
    "shap_values": "explain",
    "explainer_kind": "explain",
    "shap_importance": "explain",
    "plot_shap": "explain",
    # boundaries.py
    "decision_boundaries": "boundaries",
    "boundary_splits": "boundaries",
    "fit_boundary_tree": "boundaries",
    "boundary_encoders": "boundaries",
    "boundary_tasks": "boundaries",
    "plot_decision_regions": "boundaries",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
