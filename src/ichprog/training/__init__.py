"""The one training loop of the library, its checkpoints, and batched prediction.

Every image model of the paper (single-task baselines, multi-task models, ablations) is trained by
:func:`train` with the recipe of the paper:

* AdamW (learning rate 1e-3, weight decay 1e-4, ``amsgrad=True``), batches of 8 and gradient
  accumulation over 3 batches. The last, possibly incomplete, accumulation group of an epoch is
  applied too, and every optimizer step averages the loss over exactly the samples it saw.
* Early stopping with a patience of 20 epochs on the validation balanced accuracy of the primary
  task (the first task of the model's preset) at threshold 0.5; for an ordinal primary task the
  balanced accuracy of the decoded classes. The best weights are restored at the end.
* Mixed precision where the hardware supports it: bfloat16 autocast on CPUs and on GPUs with
  bfloat16 support, float16 autocast with a gradient scaler on older GPUs.

Random oversampling of the minority class and augmentation belong to the *training dataset* (see
:func:`ichprog.data.oversample` and ``CTDataset(augment=True)``); :mod:`ichprog.experiment` wires
them up on the training part only.

Reproducibility and resuming
----------------------------
Each epoch draws all of its randomness (shuffling, dropout, augmentation through the global
generators) from generators re-seeded with ``(config.seed, epoch)``; a dataset that has a
``set_epoch(epoch)`` method is told the epoch as well. A checkpoint is written atomically after
every epoch: the weights (safetensors), the optimizer, gradient-scaler and random-generator states
(a second safetensors file, no pickle) and a JSON sidecar that commits them. A run killed at any
point and started again with the same ``out_dir`` resumes after the last finished epoch and ends
with the same weights and history as an uninterrupted run. The sidecar holds a hash of everything
that determines the result (training configuration, model configuration, initial weights, the
patients of both datasets); a different configuration in the same folder raises an error unless
``overwrite=True`` is passed, and a finished run with the same configuration is reused.

Checkpoint folder layout::

    out_dir/
      checkpoint.json              sidecar: configuration, hash, epoch, metrics, file names
      weights-e0007.safetensors    weights after the last finished epoch
      state-e0007.safetensors      optimizer, gradient scaler and random-generator states
      best-e0004.safetensors       weights of the best epoch so far
      history.csv                  one row per epoch: losses per task, validation metrics per task
      history.png                  the same, plotted (written when training ends)

The code is split by job: :mod:`~ichprog.training.config` (:class:`TrainConfig`),
:mod:`~ichprog.training.device` (device, precision, memory format, seeds),
:mod:`~ichprog.training.dataset` (:class:`ArrayDataset`), :mod:`~ichprog.training.checkpoint`
(safetensors files and the sidecar), :mod:`~ichprog.training.fingerprint` (the run's hash),
:mod:`~ichprog.training.schedule` (accumulation groups, learning-rate schedule),
:mod:`~ichprog.training.resume` (resuming, reusing and saving a run in its folder),
:mod:`~ichprog.training.inference` (:func:`predict_proba`, the validation pass),
:mod:`~ichprog.training.history` (:class:`TrainResult`, :func:`plot_history`) and
:mod:`~ichprog.training.loop` (:func:`train`). Every name is imported from
``ichprog.training``.
"""

from __future__ import annotations

from ichprog._extras import require_extra

require_extra(__name__, "image", ("torch", "safetensors"))

# The public names, and (``noqa: F401``) the constants and private helpers that were importable
# from ``ichprog.training`` before it became a package. To monkeypatch a constant, patch it in the
# submodule that owns it (e.g. ``ichprog.training.loop.LONG_RUN_S``).
from ichprog.training.checkpoint import (  # noqa: F401
    CHECKPOINT_FORMAT,
    PREVIOUS_SIDECAR,
    SIDECAR,
    CheckpointWarning,
    _load_best_state,
    _load_state,
    _optimizer_from_tensors,
    _optimizer_to_tensors,
    _rng_from_tensors,
    _rng_to_tensors,
    _save_state,
    load_checkpoint,
    load_weights,
    read_sidecar,
    save_checkpoint,
    save_weights,
)
from ichprog.training.config import (  # noqa: F401
    _NOT_HASHED,
    Precision,
    Schedule,
    Select,
    TrainConfig,
)
from ichprog.training.dataset import ArrayDataset
from ichprog.training.device import (  # noqa: F401
    _autocast,
    _to_device,
    resolve_channels_last,
    resolve_device,
    resolve_precision,
    seed_everything,
)
from ichprog.training.fingerprint import (  # noqa: F401
    _dataset_fingerprint,
    _diff_keys,
    _run_payload,
    _weights_digest,
)
from ichprog.training.history import TrainResult, plot_history
from ichprog.training.inference import (  # noqa: F401
    _batch_targets,
    _probs_from_logits,
    _progress,
    _run_inference,
    _validation_metrics,
    predict_proba,
    targets_to_classes,
)
from ichprog.training.loop import (  # noqa: F401
    LONG_RUN_S,
    _duration,
    _iter_epochs,
    _pos_weight,
    _seed_epoch,
    _warn_if_long,
    train,
)
from ichprog.training.resume import _save_run  # noqa: F401
from ichprog.training.schedule import _fast_forward, _group_weights, _make_scheduler  # noqa: F401

__all__ = [
    "TrainConfig",
    "TrainResult",
    "ArrayDataset",
    "train",
    "predict_proba",
    "resolve_device",
    "resolve_precision",
    "resolve_channels_last",
    "seed_everything",
    "save_checkpoint",
    "load_checkpoint",
    "read_sidecar",
    "CheckpointWarning",
    "save_weights",
    "load_weights",
    "plot_history",
    "targets_to_classes",
]
