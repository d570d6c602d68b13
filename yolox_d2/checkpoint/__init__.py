from .atomic import AtomicDetectionCheckpointer, atomic_torch_save, atomic_write
from .official_weights import CheckpointMismatchError, convert_official_state_dict, official_key_map

__all__ = [
    "AtomicDetectionCheckpointer",
    "atomic_torch_save",
    "atomic_write",
    "CheckpointMismatchError",
    "convert_official_state_dict",
    "official_key_map",
]
