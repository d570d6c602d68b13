from .official_weights import CheckpointMismatchError, convert_official_state_dict, official_key_map

__all__ = ["CheckpointMismatchError", "convert_official_state_dict", "official_key_map"]
