"""Load a cohort, pre-process its scans once, split it, and feed a training fold to torch.

1. A phantom cohort written in the public dataset's layout (``clinical.csv``,
   ``GOOD_PROGNOSIS/``, ``POOR_PROGNOSIS/``, ``masks/``) and loaded back with ``load_cohort``,
   exactly as a real cohort would be.
2. The pre-processing of one scan step by step (reorientation, skull strip, window, padding,
   resize), saved as a figure, and a map in network space written back as a NIfTI aligned with
   the original scan (``to_original_space``).
3. The persistent cache: the first pass decodes every scan, the second one reads ``.npy`` files.
4. Ten-fold stratified splits (saved as JSON), oversampling of the training part, and a
   ``CTDataset`` with the paper's augmentations in a ``DataLoader``.

Environment variables: ``ICHPROG_EXAMPLE_SMALL=1`` for a quick run (12 small scans, a small
network input), ``ICHPROG_EXAMPLE_OUT`` for the output folder (default: a new temporary folder).

Run with ``python examples/load_and_preprocess.py``.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from nibabel.orientations import aff2axcodes  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from ichprog.data import (  # noqa: E402
    CTDataset,
    PreprocessConfig,
    VolumeCache,
    load_cohort,
    load_volume,
    make_phantom_cohort,
    make_splits,
    oversample,
    save_volume,
    strip_skull,
)
from ichprog.data.preprocess import (  # noqa: E402
    canonical_orientation,
    pad_depth,
    resize_volume,
    to_dhw,
    to_original_space,
    window_hu,
)
from ichprog.tasks import MT_ORD_GCS_BIN_AGE  # noqa: E402

SMALL = os.environ.get("ICHPROG_EXAMPLE_SMALL") == "1"
OUT = Path(os.environ.get("ICHPROG_EXAMPLE_OUT") or tempfile.mkdtemp(prefix="ichprog_data_"))
SEED = 0
N_PATIENTS = 24 if SMALL else 60
SCAN_SHAPE = (24, 128, 128) if SMALL else (32, 256, 256)  # (D, H, W) of the phantom scans
CONFIG = PreprocessConfig(shape=(32, 96, 96)) if SMALL else PreprocessConfig()  # the paper's


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)

    # 1. a cohort on disk, loaded like a real one -------------------------------------------
    phantom_dir = OUT / "phantom"
    make_phantom_cohort(n=N_PATIENTS, seed=SEED, out_dir=phantom_dir, shape=SCAN_SHAPE,
                        progress=False, overwrite=True)
    cohort = load_cohort(phantom_dir / "clinical.csv", mask_dir=phantom_dir / "masks")
    print(cohort)
    print(cohort.summary().to_string())
    targets = cohort.targets(MT_ORD_GCS_BIN_AGE)
    print("ordinal GCS classes (0 mild, 1 moderate, 2 severe):",
          np.bincount(targets["gcs"], minlength=3).tolist())

    # 2. one scan, step by step ---------------------------------------------------------------
    pid = cohort.ids[0]
    hu, affine = load_volume(cohort.image_path(pid))
    print(f"patient {pid}: file shape {hu.shape} (x, y, z), {hu.dtype}, "
          f"axes {''.join(aff2axcodes(affine))} -> reoriented to RAS+ "
          f"(voxel axis -> world axis, direction: {canonical_orientation(affine).tolist()})")
    dhw = to_dhw(hu, affine).astype(np.float32)  # the steps of preprocess_volume, one by one
    stripped = strip_skull(dhw, hu_range=CONFIG.strip_range, iterations=CONFIG.strip_iterations)
    windowed = window_hu(stripped, CONFIG.window_level, CONFIG.window_width, CONFIG.window)
    bandpass = window_hu(stripped, CONFIG.window_level, CONFIG.window_width, "bandpass")
    final = resize_volume(pad_depth(windowed, CONFIG.shape[0]), CONFIG.shape, CONFIG.interpolation)
    z = dhw.shape[0] // 2
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.8))
    for ax, img, title in zip(
        axes,
        [np.clip(dhw[z], -100, 200), np.clip(stripped[z], -100, 200), windowed[z], bandpass[z],
         final[final.shape[0] // 2]],
        ["reoriented HU", "skull stripped", "window (clip)", "window (bandpass)",
         f"network input {CONFIG.shape}"],
    ):
        ax.imshow(img, cmap="gray", origin="lower")
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(OUT / "preprocessing_steps.png", dpi=80)
    plt.close(fig)

    # a "saliency map" in network space (here: the hematoma-like bright voxels) back to the scan
    saliency = (final > 0.6).astype(np.float32)
    back = to_original_space(saliency, hu.shape, affine, CONFIG)
    save_volume(back, affine, OUT / f"{pid}_map_in_scan_space.nii.gz")
    print(f"map saved in the scan's grid: {back.shape}, {int((back > 0.5).sum())} voxels > 0.5")

    # 3. the cache: first pass decodes, second pass reads .npy files -------------------------
    cache = VolumeCache(OUT / "cache", CONFIG)
    paths = list(cohort.image_paths.values())
    t0 = time.perf_counter()
    cache.warm(paths, progress=not SMALL)
    first = (time.perf_counter() - t0) / len(paths)
    t0 = time.perf_counter()
    for p in paths:
        cache.get(p)
    second = (time.perf_counter() - t0) / len(paths)
    print(f"cache {cache.folder}: first pass {first:.3f} s/scan, cached {second:.4f} s/scan "
          f"({first / second:.0f}x)")

    # 4. splits, oversampling, dataset --------------------------------------------------------
    folds = 5 if SMALL else 10
    splits = make_splits(cohort, folds=folds, seed=SEED, val_fraction=0.1)
    splits.save(OUT / "splits.json")
    print(splits)
    fold = splits[0]
    train_ids = oversample(fold.train, cohort.subset(fold.train).labels, seed=SEED)
    classes = cohort.targets(MT_ORD_GCS_BIN_AGE, ids=train_ids)
    loss_targets = {t.name: t.loss_targets(classes[t.name]) for t in MT_ORD_GCS_BIN_AGE}
    train_ds = CTDataset(cohort, train_ids, CONFIG, targets=loss_targets, augment=True,
                         cache_dir=OUT / "cache", seed=SEED)
    loader = DataLoader(train_ds, batch_size=4, shuffle=True)
    train_ds.set_epoch(0)
    batch = next(iter(loader))
    print(f"fold 0: {len(fold.train)} training patients -> {len(train_ids)} after oversampling; "
          f"batch image {tuple(batch['image'].shape)}, targets "
          + ", ".join(f"{k} {tuple(v.shape)}" for k, v in batch["targets"].items()))
    print(f"outputs in {OUT}")


if __name__ == "__main__":
    main()
