"""Generate a phantom cohort, check it against the published cohort, and look at its scans.

1. ``make_phantom_cohort`` writes the public dataset's layout (clinical table, scans in
   ``GOOD_PROGNOSIS/`` and ``POOR_PROGNOSIS/``, lesion masks, the per-patient truth).
2. The table summary and the hidden truth of a few patients.
3. The risk model on a large table-only sample (``phantom_table``): GCS distribution, share of
   poor outcome, Spearman correlations of the label with GCS and age, and poor outcome by ICH
   score next to the 30-day mortality of Hemphill et al. (2001).
4. The cohort is loaded back with ``ichprog.data.load_cohort``, and a few axial slices of two
   patients (one supratentorial bleed with intraventricular extension, one infratentorial) are
   drawn in a brain window after the data layer's reorientation, with the lesion outlined.

Environment variables: ``ICHPROG_EXAMPLE_SMALL=1`` for a quick run (40 patients instead of
120), ``ICHPROG_EXAMPLE_OUT`` for the output folder (default: a new temporary folder).

Run with ``python examples/phantom_cohort.py``.
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
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from ichprog.data import (  # noqa: E402
    PreprocessConfig,
    load_cohort,
    load_volume,
    make_phantom_cohort,
    preprocess_volume,
    schema,
)
from ichprog.data.phantom import HEMPHILL_MORTALITY, REAL_GCS_COUNTS, phantom_table  # noqa: E402

SMALL = os.environ.get("ICHPROG_EXAMPLE_SMALL") == "1"
OUT = Path(os.environ.get("ICHPROG_EXAMPLE_OUT") or tempfile.mkdtemp(prefix="ichprog_example_"))
N_PATIENTS = 40 if SMALL else 120
SEED = 0


def brain_window(path: Path, shape: tuple[int, int, int], level: float = 40.0,
                 width: float = 80.0, nearest: bool = False) -> np.ndarray:
    """A scan (or mask) reoriented to RAS and transposed to (D, H, W) by the data layer."""
    array, affine = load_volume(path)
    cfg = PreprocessConfig(shape=shape, skull_strip=False, window_level=level,
                           window_width=width, pad_depth=False,
                           interpolation="nearest" if nearest else "area")
    return preprocess_volume(array, affine, cfg)


def show_patient(axes: np.ndarray, cohort, truth: pd.DataFrame, pid: str, title: str) -> None:
    array, _ = load_volume(cohort.image_paths[pid])
    d = array.shape[2]
    shape = (d, array.shape[1], array.shape[0])
    ct = brain_window(cohort.image_paths[pid], shape)
    # masks: 0, 1 (hematoma), 2 (IVH) -> a window that keeps the labels apart
    mask = brain_window(cohort.mask_paths[pid], shape, level=1.0, width=2.0, nearest=True) * 2
    lesion_slices = np.flatnonzero((mask > 0.5).any(axis=(1, 2)))
    centre = int(np.argmax((np.abs(mask - 1) < 0.5).sum(axis=(1, 2))))
    picks = sorted(set(np.clip([centre - 4, centre - 2, centre, centre + 2, centre + 5],
                               1, d - 2).tolist()))
    while len(picks) < len(axes) - 1:
        picks = sorted(set(picks + [min(d - 2, picks[-1] + 3)]))
    row = truth.loc[truth["PatientID"] == int(pid)].iloc[0]
    for ax, k in zip(axes[:-1], picks[: len(axes) - 1]):
        ax.imshow(ct[k][:, ::-1], cmap="gray", vmin=0, vmax=1, origin="lower")
        ax.set_title(f"slice {k}", fontsize=7)
    ax = axes[-1]
    ax.imshow(ct[centre][:, ::-1], cmap="gray", vmin=0, vmax=1, origin="lower")
    ax.contour(np.abs(mask[centre][:, ::-1] - 1) < 0.5, levels=[0.5], colors="red",
               linewidths=0.6)
    if (np.abs(mask[centre] - 2) < 0.5).any():
        ax.contour(np.abs(mask[centre][:, ::-1] - 2) < 0.5, levels=[0.5], colors="cyan",
                   linewidths=0.6)
    ax.set_title(f"slice {centre}: mask", fontsize=7)
    axes[0].set_ylabel(f"{title}\nID {pid}, {row['site']} {row['side']}\n"
                       f"{row['volume_ml']:.0f} mL, IVH {int(row['ivh'])}, GCS {row['gcs']}",
                       fontsize=7)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    assert len(lesion_slices) > 0, f"patient {pid}: empty lesion mask"


def main() -> None:
    t0 = time.perf_counter()
    cohort_dir = OUT / "phantom"
    cohort = make_phantom_cohort(N_PATIENTS, seed=SEED, out_dir=cohort_dir, overwrite=True)
    print(f"wrote {len(cohort)} patients to {cohort_dir} in {time.perf_counter() - t0:.1f} s")
    print(cohort.summary().to_string())
    table = cohort.table
    print("\nclinical table (a few columns):")
    print(table[["Age", "GCS", schema.LABEL_COLUMN, "Anticoagulant", "INR", "Glucose"]]
          .describe().round(2).to_string())
    truth = pd.read_csv(cohort_dir / "phantom_truth.csv")
    print("\ntruth of the first patients:")
    cols = ["PatientID", "label", "outcome_probability", "ich_score", "gcs", "age", "site",
            "ivh", "volume_ml", "midline_shift_mm", "ivh_volume_ml"]
    print(truth[cols].head(8).round(2).to_string(index=False))

    # --- the risk model on a large sample, without images --------------------------------------
    n_big = 5_000 if SMALL else 50_000
    big, big_truth = phantom_table(n_big, seed=SEED + 1)
    y = big[schema.LABEL_COLUMN]
    gcs_share = np.bincount(big["GCS"], minlength=16)[3:] / n_big
    print(f"\ntable-only sample of {n_big} patients")
    print(f"poor outcome {y.mean():.3f} (published 162/261 = {162 / 261:.3f})")
    print(f"Spearman(GCS, label) {stats.spearmanr(big['GCS'], y)[0]:+.3f} (published -0.34), "
          f"Spearman(age, label) {stats.spearmanr(big['Age'], y)[0]:+.3f} (published +0.39)")
    gcs_table = pd.DataFrame({"GCS": range(3, 16), "phantom per 261": gcs_share * 261,
                              "published": REAL_GCS_COUNTS})
    print(gcs_table.round(1).to_string(index=False))
    by_score = big_truth.groupby("ich_score")["label"].agg(["mean", "size"])
    by_score["Hemphill 30-day mortality"] = [
        HEMPHILL_MORTALITY[min(int(s), 5)] for s in by_score.index]
    print("\npoor outcome by ICH score:")
    print(by_score.rename(columns={"mean": "poor outcome", "size": "patients"}).round(3)
          .to_string())

    # --- load it back and look at two patients ----------------------------------------------
    loaded = load_cohort(cohort_dir / "clinical.csv", image_dir=cohort_dir,
                         mask_dir=cohort_dir / "masks")
    assert loaded.ids == cohort.ids and loaded.labels.tolist() == cohort.labels.tolist()
    supra = truth[(truth["infratentorial"] == 0) & (truth["ivh"] == 1)]
    infra = truth[truth["infratentorial"] == 1]
    if not len(supra) or not len(infra):
        raise RuntimeError("this seed drew no supratentorial IVH or no infratentorial bleed; "
                           "raise N_PATIENTS or change SEED")
    pick_supra = str(supra.sort_values("volume_ml").iloc[len(supra) // 2]["PatientID"])
    pick_infra = str(infra.sort_values("volume_ml").iloc[-1]["PatientID"])
    fig, axes = plt.subplots(2, 6, figsize=(12, 4.6))
    show_patient(axes[0], loaded, truth, pick_supra, "supratentorial + IVH")
    show_patient(axes[1], loaded, truth, pick_infra, "infratentorial")
    fig.suptitle("Phantom head CTs, brain window 0-80 HU (radiological view: patient's right "
                 "on the left, anterior up); red: hematoma, cyan: intraventricular blood",
                 fontsize=8)
    fig.tight_layout()
    figure = OUT / "phantom_slices.png"
    fig.savefig(figure, dpi=75)
    plt.close(fig)
    print(f"\nfigure: {figure}")
    print(f"done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
