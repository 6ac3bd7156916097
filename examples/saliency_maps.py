"""Saliency maps of a baseline and a multi-task model on a phantom cohort, scored against the lesions.

1. A phantom cohort (scans, clinical table, lesion masks) is written and split into a training
   part and a few test patients.
2. Two small DenseNets are trained with ``ichprog.fit_multitask``: the prognosis-only baseline and
   the multi-task model MT (ord GCS, bin age). An untrained network of the same shape is kept as
   a sanity check: guided backpropagation partly reflects the image itself, so a trained model
   should beat it, not only chance.
3. Guided backpropagation maps of the prognosis logit (evidence for a poor prognosis, as in the
   paper), min-max normalised and thresholded at 0.5, for every test patient and model, with a
   progress bar (``ichprog.saliency.compute_maps``).
4. Figures: a slice panel of one patient and a grid comparing the models on the test patients
   with each model's predicted probability, like the paper's Fig. 5 and 6. One map is saved as a
   NIfTI aligned with the patient's original scan.
5. The maps are scored against the lesion masks (mass inside the lesion and its surroundings, the
   pointing game, each next to its chance level) and summarised per model with bootstrap
   intervals, plus the paired difference of each model against the baseline. The multi-task
   model's GCS head is explained too (the evidence for a severe GCS).

Environment variables: ``ICHPROG_EXAMPLE_SMALL=1`` for a quick run (under a minute on a laptop
CPU: 20 patients, small volumes, 2 epochs); ``ICHPROG_EXAMPLE_OUT`` for the output folder
(default: a new temporary folder).

Run with ``python examples/saliency_maps.py``.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import ichprog
from ichprog import saliency
from ichprog.data import PreprocessConfig, VolumeCache, load_volume, make_phantom_cohort
from ichprog.models import MultiTaskNet
from ichprog.training import TrainConfig

SMALL = os.environ.get("ICHPROG_EXAMPLE_SMALL") == "1"
OUT = Path(os.environ.get("ICHPROG_EXAMPLE_OUT") or tempfile.mkdtemp(prefix="ichprog_example_"))
SEED = 0
N_PATIENTS = 20 if SMALL else 80
N_TEST = 4 if SMALL else 16
SCAN_SHAPE = (32, 96, 96) if SMALL else (32, 128, 128)
INPUT_SHAPE = (32, 64, 64) if SMALL else (40, 96, 96)
EPOCHS = 2 if SMALL else 25


def main() -> None:
    t0 = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    print(f"writing to {OUT}")

    # 1. the cohort and a split ------------------------------------------------------------------
    cohort = make_phantom_cohort(N_PATIENTS, seed=SEED, out_dir=OUT / "phantom",
                                 shape=SCAN_SHAPE, progress=False, overwrite=True)
    rng = np.random.default_rng(SEED)
    ids = list(cohort.ids)
    test_ids = sorted(rng.choice(ids, size=N_TEST, replace=False).tolist(), key=ids.index)
    train_ids = [i for i in ids if i not in test_ids]
    cfg = PreprocessConfig(shape=INPUT_SHAPE)
    cache = VolumeCache(OUT / "cache", cfg)  # every scan is pre-processed once
    print(f"{len(cohort)} phantom patients; {len(train_ids)} to train, {len(test_ids)} to test")

    # 2. two models and an untrained one -----------------------------------------------------------
    train_cfg = TrainConfig(max_epochs=EPOCHS, batch_size=4, accumulation_steps=1, patience=None,
                            seed=SEED, device="cpu", progress=False)
    fitted = {}
    for name, preset in (("Baseline", "baseline_densenet"), ("MT (ord GCS, bin age)",
                                                               "mt_ord_gcs_bin_age")):
        fitted[name] = ichprog.fit_multitask(cohort, preset, trunk="densenet_tiny",
                                             preprocess=cfg, config=train_cfg,
                                             train_ids=train_ids, seed=SEED, augment=False,
                                             cache_dir=cache.root, progress=False)
        print(f"trained {name}: best epoch {fitted[name].info['best_epoch']} "
              f"({time.perf_counter() - t0:.0f} s)")
    torch.manual_seed(SEED)
    models = {"Untrained": MultiTaskNet("baseline_densenet", trunk="densenet_tiny"), **fitted}

    # 3. maps of every test patient ---------------------------------------------------------------
    volumes, masks, brains, references = {}, {}, {}, {}
    for pid in test_ids:
        array, affine = load_volume(cohort.image_paths[pid])
        volumes[pid] = cache.get(cohort.image_paths[pid])
        references[pid] = (array.shape, affine)
        mask, mask_affine = load_volume(cohort.mask_paths[pid])
        masks[pid] = saliency.mask_to_input_space(mask, mask_affine, cfg)
        brains[pid] = saliency.brain_mask(volumes[pid])
    result = saliency.compute_maps(models, volumes, method="guided_backprop", task="prognosis",
                                   target=1, threshold=0.5, progress=True)
    print(result.to_frame().pivot(index="patient", columns="model", values="probability")
          .round(2).to_string())

    # 4. figures and NIfTI ------------------------------------------------------------------------
    labels = cohort.labels
    row_labels = {pid: f"{'Poor' if labels[pid] else 'Good'} prognosis ({pid})"
                  for pid in test_ids}
    first = max(test_ids, key=lambda p: int(masks[p].sum()))  # the largest lesion
    saliency.plot_slices(volumes[first], result.maps["MT (ord GCS, bin age)"][first],
                         mask=masks[first], by="lesion", n_slices=4,
                         title=f"MT (ord GCS, bin age), {row_labels[first]}: p = "
                               f"{result.probs['MT (ord GCS, bin age)'][first]:.2f}",
                         path=OUT / "slices.png")
    shown = test_ids[:4]
    saliency.plot_model_grid({p: volumes[p] for p in shown}, result, masks=masks,
                             row_labels=row_labels, path=OUT / "model_grid.png")
    nifti = saliency.save_map(result.maps["MT (ord GCS, bin age)"][first],
                              OUT / "maps" / f"{first}_guided_backprop.nii.gz",
                              references[first], cfg)
    print(f"figures: {OUT / 'slices.png'}, {OUT / 'model_grid.png'}; NIfTI over the scan: {nifti}")

    # 5. scores against the lesions ---------------------------------------------------------------
    spacing = _input_spacing(cohort, cfg)
    scores = saliency.lesion_scores(result, masks, brain_masks=brains, shell_width=5.0,
                                    spacing=spacing)
    scores.to_csv(OUT / "lesion_scores.csv", index=False)
    summary = saliency.summarize_lesion_scores(scores, n_resamples=1000, seed=SEED)
    summary.to_csv(OUT / "lesion_summary.csv", index=False)
    compare = saliency.compare_lesion_scores(scores, baseline="Baseline", seed=SEED)
    compare.to_csv(OUT / "lesion_comparison.csv", index=False)
    with pd.option_context("display.width", 140, "display.precision", 3):
        print(summary[summary.metric.isin(["mass_lesion", "mass_shell", "pointing_lesion"])]
              [["model", "metric", "estimate", "low", "high", "chance", "n_valid"]].to_string())
        print(compare.to_string())

    # the GCS head of the multi-task model: evidence for a severe GCS (class 2)
    gcs = saliency.compute_maps({"MT (ord GCS, bin age)": models["MT (ord GCS, bin age)"]},
                                volumes, method="guided_backprop", task="gcs", target=2,
                                threshold=0.5, progress=False)
    gcs_scores = saliency.lesion_scores(gcs, masks, brain_masks=brains, shell_width=5.0,
                                        spacing=spacing)
    m = saliency.summarize_lesion_scores(gcs_scores, metrics=["mass_lesion"], seed=SEED).iloc[0]
    print(f"GCS head (severe): mass in the lesion {m.estimate:.3f} [{m.low:.3f}, {m.high:.3f}], "
          f"chance {m.chance:.3f}")
    print(f"done in {time.perf_counter() - t0:.0f} s")


def _input_spacing(cohort, cfg: PreprocessConfig) -> tuple[float, float, float]:
    """Voxel size (D, H, W) of the network input in mm, from the first scan's header."""
    import nibabel as nib

    img = nib.as_closest_canonical(nib.load(str(cohort.image_paths[cohort.ids[0]])))
    zooms = img.header.get_zooms()[:3]  # (x, y, z) after reorientation
    extent = (zooms[2] * img.shape[2], zooms[1] * img.shape[1], zooms[0] * img.shape[0])
    depth = max(img.shape[2], cfg.shape[0]) if cfg.pad_depth else img.shape[2]
    return (zooms[2] * depth / cfg.shape[0], extent[1] / cfg.shape[1], extent[2] / cfg.shape[2])


if __name__ == "__main__":
    main()
