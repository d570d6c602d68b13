"""Solver components: the YOLOX learning-rate schedule for Detectron2's ``LRMultiplier``."""

from .lr_scheduler import YOLOXWarmCosineParamScheduler

__all__ = ["YOLOXWarmCosineParamScheduler"]
