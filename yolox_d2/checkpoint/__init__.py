from .atomic import AtomicDetectionCheckpointer, atomic_torch_save, atomic_write
from .class_predictions import (
    ReinitializedClassPredictions,
    class_prediction_keys,
    pop_mismatched_class_predictions,
)
from .official_weights import CheckpointMismatchError, convert_official_state_dict, official_key_map

__all__ = [
    "AtomicDetectionCheckpointer",
    "atomic_torch_save",
    "atomic_write",
    "CheckpointMismatchError",
    "convert_official_state_dict",
    "official_key_map",
    "ReinitializedClassPredictions",
    "class_prediction_keys",
    "pop_mismatched_class_predictions",
]
