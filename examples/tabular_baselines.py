"""Tabular baselines of Table 1, SHAP rankings and learned GCS/age cut-offs on a phantom cohort.

Run::

    python examples/tabular_baselines.py

Environment variables:

* ``ICHPROG_EXAMPLE_SMALL=1``: a quick version (5 folds, a shorter DNN training, fewer patients
  explained by the DNN's kernel explainer); under a minute on a laptop CPU.
* ``ICHPROG_EXAMPLE_OUT``: output folder (default: a new temporary folder).

Writes ``table1.md`` (this run beside the published values), ``table1_metrics.csv`` (tidy),
``table1_predictions.csv`` (per patient and fold), ``shap_<model>.csv`` rankings with their
beeswarm and bar plots, ``boundaries.json`` and ``decision_regions.png``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import ichprog.tabular as tab
from ichprog.data import phantom_table
from ichprog.metrics import UndefinedMetricWarning, to_markdown


def main() -> None:
    small = os.environ.get("ICHPROG_EXAMPLE_SMALL", "") not in ("", "0")
    out = Path(os.environ.get("ICHPROG_EXAMPLE_OUT") or tempfile.mkdtemp(prefix="ichprog_tab_"))
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    # 261 patients with the 44 columns of the public table (no images needed)
    table, _truth = phantom_table(261, seed=0)
    print(f"phantom table: {table.shape[0]} patients, "
          f"{int(table['Label (poor_prognosis)'].sum())} with poor prognosis")

    # --- Table 1: six model/feature columns on the folds of the image models ----------------
    folds = 5 if small else 10
    columns = list(tab.TABLE1_COLUMNS) + ([] if small else [("xgb", "all")])
    params = {"dnn": {"max_epochs": 30}} if small else None
    with warnings.catch_warnings():
        # a fold where a model predicts one class only has an undefined precision or NPV
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        result = tab.table1(table, folds=folds, seed=0, columns=columns, params=params,
                            progress=False)
        compare = result.compare()
        result.metrics.to_csv(out / "table1_metrics.csv", index=False)
    result.predictions.to_csv(out / "table1_predictions.csv", index=False)
    (out / "table1.md").write_text(to_markdown(compare) + "\n", encoding="utf-8")
    print(f"\nTable 1 on the phantom cohort ({folds}-fold CV, mean ± SD):")
    print(to_markdown(result.summary()))

    # --- SHAP: which variables drive the predictions? ---------------------------------------
    print("\nSHAP rankings (all 42 variables, top 5):")
    for name in ("lr", "rf", "dnn"):
        kw = {"max_samples": 20 if small else 100, "max_background": 20 if small else 50,
              "params": params.get(name) if params else None} if name == "dnn" else {}
        ranking, explanation = tab.shap_importance(name, table, "all", seed=0,
                                                   return_explanation=True, **kw)
        ranking.to_csv(out / f"shap_{name}.csv")
        tab.plot_shap(explanation, out, name=f"shap_{name}", max_display=12,
                      title=f"{tab.MODEL_LABELS[name]}, all variables")
        top = ", ".join(f"{f} ({v:.3f})" for f, v in
                        zip(ranking["feature"][:5], ranking["mean_abs_shap"][:5]))
        print(f"  {tab.MODEL_LABELS[name]:>3}: {top}")

    # --- cut-offs of GCS and age for the encoders -------------------------------------------
    cuts = tab.decision_boundaries(table, features=("GCS", "Age"))
    (out / "boundaries.json").write_text(json.dumps(cuts, indent=2), encoding="utf-8")
    tab.plot_decision_regions(table, out / "decision_regions.png", boundaries=cuts)
    print(f"\nlearned cut-offs: {cuts}  (the paper: GCS <= 8, age >= 80)")
    tasks = tab.boundary_tasks(cuts)
    print("tasks with these cut-offs:", {k: t.encoder_kwargs for k, t in tasks.items()})

    print(f"\noutputs in {out} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
