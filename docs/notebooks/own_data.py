# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Your own data: NIfTI scans and a clinical table
#
# What ichprog needs from your data, and how to train and predict on it:
#
# * a clinical table (CSV or Excel) with a `PatientID` column, the label
#   `Label (poor_prognosis)` (0 good, 1 poor), `GCS` (3-15) and `Age`; other columns of the
#   public table are optional;
# * one head CT per patient as NIfTI (`.nii` or `.nii.gz`), named `<PatientID>.nii.gz` (or
#   `<PatientID>_brain.nii.gz`), either in `GOOD_PROGNOSIS/` and `POOR_PROGNOSIS/` folders (the
#   public dataset's layout) or all in one folder; a DICOM series works too, as a folder
#   `<PatientID>/` of its slices in place of the file (page "DICOM input");
# * optionally a lesion mask per patient, `<PatientID>_mask.nii.gz`, for the saliency scores.
#
# Here the folder is written from synthetic scans so that the notebook runs anywhere; replace
# `MY_DATA` with your folder.
#
# **Runtime on 2 CPU cores:** 1 min 40 s at the size below (96 patients, a one-minute training
# budget that takes most of it), measured on two cores shared with other jobs. The page you
# are reading was executed at the small size that CI uses (`ICHPROG_EXAMPLE_SMALL=1`: 24
# patients, a 6-second budget, 16 s).

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm, no ipywidgets
# %matplotlib inline
import os
import shutil
from pathlib import Path

import pandas as pd

import ichprog as ip

SMALL = os.environ.get("ICHPROG_EXAMPLE_SMALL") == "1"  # the size CI and the docs run
WORK = Path(os.environ.get("ICHPROG_EXAMPLE_OUT") or "ichprog-notebooks") / "own_data"
if SMALL:
    N, SCAN, BUDGET = 24, (16, 48, 48), "6s"
    SIZE = {"preprocess": ip.recipes.get_recipe("cpu").preprocess_config(shape=(32, 32, 32)),
            "model_kwargs": {"trunk_kwargs": {"block_config": (1, 1, 1, 1)}}}
else:
    N, SCAN, BUDGET, SIZE = 96, (32, 96, 96), "1min", {}

# %% [markdown]
# ## A folder in the expected layout
#
# Synthetic scans stand in for yours: they are copied under IDs such as `ICH-007`, with a table
# that holds only the four required columns. Running the cell again finds the folder complete
# and leaves it alone.

# %%
MY_DATA = WORK / "my_data"
if not (MY_DATA / "clinical.csv").is_file():
    source = ip.data.make_phantom_cohort(N, seed=1, out_dir=WORK / "source", shape=SCAN,
                                         progress=False)
    rows = []
    for pid in source.ids:
        new_id = f"ICH-{int(pid):03d}"
        label = int(source.labels[pid])
        folder = MY_DATA / ("POOR_PROGNOSIS" if label else "GOOD_PROGNOSIS")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(source.image_path(pid), folder / f"{new_id}.nii.gz")
        (MY_DATA / "masks").mkdir(exist_ok=True)
        shutil.copy(source.mask_path(pid), MY_DATA / "masks" / f"{new_id}_mask.nii.gz")
        row = source.table.loc[pid]
        rows.append({"PatientID": new_id, "Label (poor_prognosis)": label,
                     "GCS": int(row["GCS"]), "Age": int(row["Age"])})
    pd.DataFrame(rows).to_csv(MY_DATA / "clinical.csv", index=False)
sorted(p.name for p in MY_DATA.iterdir())

# %% [markdown]
# ## Loading it
#
# `load_cohort` joins the table to the scans by `PatientID` and checks every header. Problems are
# reported with the file, the patient and the column: a patient without a scan, a scan without a
# patient, a label that disagrees with its folder, a GCS outside 3-15. With
# `drop_incomplete=True` incomplete patients are left out and listed instead.

# %%
cohort = ip.data.load_cohort(MY_DATA / "clinical.csv", image_dir=MY_DATA,
                             mask_dir=MY_DATA / "masks")
cohort

# %%
scan, affine = ip.data.load_volume(cohort.image_path(cohort.ids[0]))
print(f"{cohort.ids[0]}: {scan.shape} voxels, {scan.dtype}, "
      f"HU from {scan.min()} to {scan.max()}")

# %% [markdown]
# ## Training within a budget, predicting new scans
#
# Three quarters of the patients train a model with the `"cpu"` recipe; the rest play new
# patients whose scans are given as files. Predictions for a mapping `{PatientID: file}` come
# back keyed by `PatientID`. The pre-processed volumes are cached in `cache_dir` (without it,
# in `~/.cache/ichprog`, said once when first used).

# %%
fold = ip.data.make_splits(cohort, folds=4, seed=0, val_fraction=0).folds[0]
model = ip.fit_multitask(cohort, "mt_bin_gcs_bin_age", recipe="cpu", train_ids=fold.train,
                         time_budget=BUDGET, out_dir=WORK / "model", cache_dir=WORK / "cache",
                         progress=False, **SIZE)
model.summary()

# %%
new_scans = {pid: cohort.image_path(pid) for pid in fold.test}
pred = model.predict(new_scans)
pred.join(cohort.labels.rename("label")).head()

# %% [markdown]
# The saved model (`WORK / "model" / "model"`) is weights (safetensors, no pickle) plus JSON;
# `ip.FittedModel.load(folder)` reads it back in another session, and the command line
# `ichprog predict` uses it on scans.

# %%
again = ip.FittedModel.load(WORK / "model" / "model")
bool((again.predict(new_scans)["prognosis_prob"] - pred["prognosis_prob"]).abs().max() < 1e-6)
