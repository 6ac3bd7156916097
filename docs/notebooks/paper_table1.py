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
# # Reproducing Table 1: the tabular baselines
#
# Table 1 of the paper compares tabular models on the clinical variables: a deep network and a
# random forest on all 42 variables, logistic regression on GCS alone, and logistic regression,
# a decision tree and a random forest on GCS and age, all cross-validated on the same folds.
# `ichprog.tabular.table1` runs every column on shared folds and puts the published values
# beside the result. No image is needed, so the phantom's clinical table is enough.
#
# **Runtime on 2 CPU cores:** 35 s at the size below (261 patients, 10 folds, the published
# protocol), measured on two cores shared with other jobs. The page you are reading was
# executed at the small size that CI uses (`ICHPROG_EXAMPLE_SMALL=1`: 5 folds and a shorter
# DNN training, 9 s). The numbers
# come from synthetic patients: compare the *ranking* of the columns with the paper's, not the
# values.

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm, no ipywidgets
import os

import ichprog.tabular as tab
from ichprog.data import phantom_table
from ichprog.metrics import UndefinedMetricWarning

SMALL = os.environ.get("ICHPROG_EXAMPLE_SMALL") == "1"  # the size CI and the docs run
warnings.simplefilter("ignore", UndefinedMetricWarning)  # a fold predicting one class only
FOLDS = 5 if SMALL else 10
PARAMS = {"dnn": {"max_epochs": 30}} if SMALL else None

# %% [markdown]
# ## The clinical table
#
# 261 patients with the 44 columns of the public table (the size of the paper's cohort).
# `phantom_table` draws it in a fraction of a second; with your own data, pass the table
# that `ichprog.data.load_table` reads, or a `Cohort`.

# %%
table, truth = phantom_table(261, seed=0)
table[["PatientID", "Label (poor_prognosis)", "GCS", "Age"]].head()

# %% [markdown]
# ## The six columns of Table 1 on shared folds

# %%
result = tab.table1(table, folds=FOLDS, seed=0, params=PARAMS, progress=False)
result.summary()

# %% [markdown]
# ## Beside the published values
#
# `compare()` interleaves this run (`ichprog`) with the paper's values (`paper`) for every
# column and metric.

# %%
compare = result.compare()
compare.loc[["auc", "balanced_accuracy", "recall", "specificity"]]

# %% [markdown]
# The per-patient out-of-fold predictions and the tidy metrics (`model, fold, task, metric,
# value`) are there to be saved or re-scored:

# %%
result.metrics().head()
