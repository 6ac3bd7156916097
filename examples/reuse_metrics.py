"""Reuse ichprog's metrics in another project (no torch needed).

A small cross-validation of two scikit-learn models on a synthetic clinical table (GCS and age,
the two strongest predictors of the paper), evaluated with the library's metrics:

1. per-fold binary metrics of the prognosis and ordinal metrics of a three-class GCS estimate,
2. the tidy metrics table (``model, fold, task, metric, value``) written as CSV,
3. the paper's "mean ± SD" table as Markdown,
4. seeded 95 % bootstrap intervals on the first test fold.

Environment variables: ``ICHPROG_EXAMPLE_SMALL=1`` for a quick run, ``ICHPROG_EXAMPLE_OUT`` for
the output folder (default: a new temporary folder).

Run with ``python examples/reuse_metrics.py``.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from ichprog.encoding import gcs_ordinal
from ichprog.metrics import (
    UndefinedMetricWarning,
    binary_metrics,
    bootstrap_ci,
    ordinal_metrics,
    summarize,
    tidy,
    to_markdown,
)

SMALL = os.environ.get("ICHPROG_EXAMPLE_SMALL") == "1"
OUT = Path(os.environ.get("ICHPROG_EXAMPLE_OUT") or tempfile.mkdtemp(prefix="ichprog_metrics_"))
SEED = 0


def synthetic_table(n: int, seed: int) -> pd.DataFrame:
    """GCS, age and a poor-prognosis label that depends on both (a stand-in for real data)."""
    rng = np.random.default_rng(seed)
    gcs = rng.choice(np.arange(3, 16), size=n)
    age = np.clip(rng.normal(72, 14, size=n), 18, 100).round(1)
    logit = -0.35 * (gcs - 10) + 0.06 * (age - 72)
    poor = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    ids = [f"P{i:03d}" for i in range(n)]
    return pd.DataFrame({"GCS": gcs, "Age": age, "poor": poor}, index=pd.Index(ids, name="ID"))


def main() -> None:
    n, folds, n_resamples = (120, 5, 200) if SMALL else (261, 10, 1000)
    table = synthetic_table(n, SEED)
    X = table[["GCS", "Age"]].to_numpy(dtype=float)
    y = table["poor"].to_numpy()
    gcs_class = gcs_ordinal(table["GCS"])
    rng = np.random.default_rng(SEED)
    # a noisy reading of the GCS class stands in for an image model's ordinal GCS prediction
    gcs_pred = np.clip(gcs_class + rng.choice([-1, 0, 0, 0, 1], size=n), 0, 2)

    models = {
        "LR (GCS, age)": LogisticRegression(class_weight="balanced"),
        "Majority class": DummyClassifier(strategy="prior"),
    }
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=SEED)
    per_model: dict[str, dict[int, dict[str, dict[str, float]]]] = {m: {} for m in models}
    first_test: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for fold, (train, test) in enumerate(cv.split(X, y)):
        for name, model in models.items():
            prob = model.fit(X[train], y[train]).predict_proba(X[test])[:, 1]
            with warnings.catch_warnings():
                # the majority-class model never predicts a poor prognosis: its precision is
                # undefined, shows as NaN in the tables, and need not warn in every fold
                warnings.simplefilter("ignore", UndefinedMetricWarning)
                prognosis = binary_metrics(y[test], prob)
            per_model[name][fold] = {
                "prognosis": prognosis,
                "gcs": ordinal_metrics(gcs_class[test], gcs_pred[test], labels=[0, 1, 2]),
            }
            if fold == 0:
                first_test[name] = (y[test], prob)

    metrics = pd.concat([tidy(per_fold, model=name) for name, per_fold in per_model.items()],
                        ignore_index=True)
    OUT.mkdir(parents=True, exist_ok=True)
    metrics.to_csv(OUT / "metrics_tidy.csv", index=False)

    prognosis = summarize(metrics[metrics.task == "prognosis"])
    gcs = summarize(metrics[(metrics.task == "gcs") & (metrics.model == "LR (GCS, age)")],
                    columns="task")
    text = [
        f"# Prognosis, {folds}-fold CV (mean ± SD)", "", to_markdown(prognosis), "",
        "# Ordinal GCS (mean ± SD)", "", to_markdown(gcs), "",
    ]

    y0, p0 = first_test["LR (GCS, age)"]
    ci = bootstrap_ci(binary_metrics, y0, p0, n_resamples=n_resamples, seed=SEED)
    g_test = next(iter(cv.split(X, y)))[1]
    ci_gcs = bootstrap_ci(functools.partial(ordinal_metrics, labels=[0, 1, 2]),
                          gcs_class[g_test], gcs_pred[g_test], n_resamples=n_resamples, seed=SEED,
                          progress=False)
    ci.insert(0, "task", "prognosis")
    ci_gcs.insert(0, "task", "gcs")
    text += [f"# Fold 0, 95 % bootstrap intervals ({n_resamples} resamples)", "",
             to_markdown(pd.concat([ci, ci_gcs], ignore_index=True), floatfmt=".3f"), ""]
    (OUT / "summary.md").write_text("\n".join(text), encoding="utf-8")
    print("\n".join(text))

    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "monai", "shap"))
    print(f"heavy modules imported: {heavy or 'none'}")
    print(f"outputs written to {OUT}")


if __name__ == "__main__":
    main()
