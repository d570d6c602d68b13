"""Solver components: the YOLOX learning-rate schedule for Detectron2's ``LRMultiplier``."""

from .lr_scheduler import YOLOXWarmCosineParamScheduler, epochs_to_fractions

__all__ = ["YOLOXWarmCosineParamScheduler", "epochs_to_fractions"]
