"""Networks: 3D trunks and the multi-task network with one head per task."""

from ichprog.models.multitask import MultiTaskNet, TaskHead, multitask_loss
from ichprog.models.trunks import TRUNKS, PerezCNN, TrunkSpec, build_trunk

__all__ = ["MultiTaskNet", "TaskHead", "multitask_loss", "TRUNKS", "PerezCNN", "TrunkSpec",
           "build_trunk"]
