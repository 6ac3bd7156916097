"""Networks: 3D trunks, the multi-task network with one head per task, and the authors'
published checkpoints loaded into it."""

from ichprog._extras import require_extra

require_extra(__name__, "image", ("torch", "monai"))

from ichprog.models.authors import (
    AUTHORS_HEADS,
    UnsafeCheckpointError,
    load_authors_checkpoint,
    read_authors_state_dict,
)
from ichprog.models.multitask import MultiTaskNet, TaskHead, balanced_pos_weight, multitask_loss
from ichprog.models.trunks import (
    TRUNKS,
    Bf16SafeConv3d,
    PerezCNN,
    TrunkSpec,
    build_trunk,
    make_bf16_safe,
)

__all__ = ["MultiTaskNet", "TaskHead", "multitask_loss", "balanced_pos_weight", "TRUNKS", "PerezCNN", "TrunkSpec",
           "build_trunk", "Bf16SafeConv3d", "make_bf16_safe", "load_authors_checkpoint",
           "read_authors_state_dict", "UnsafeCheckpointError", "AUTHORS_HEADS"]
