"""Solver components: the YOLOX learning-rate schedule for Detectron2's ``LRMultiplier`` and the
schedule in epochs resolved at start-up (:mod:`.schedule`)."""

from .lr_scheduler import YOLOXWarmCosineParamScheduler, epochs_to_fractions
from .schedule import ResolvedSchedule, resolve_schedule, training_set_length

__all__ = [
    "ResolvedSchedule",
    "YOLOXWarmCosineParamScheduler",
    "epochs_to_fractions",
    "resolve_schedule",
    "training_set_length",
]
