"""Helpers shared by the YOLOX necks."""
import math
from typing import List, Sequence, Tuple

import torch
from torch.nn import functional as F

from detectron2.modeling import Backbone

__all__ = ["three_level_inputs", "upsample2x", "level_names"]


def three_level_inputs(
    neck_name: str, bottom_up: Backbone, in_features: Sequence[str]
) -> Tuple[List[int], List[int]]:
    """
    Validate that ``bottom_up`` gives the three ``in_features`` with strides s, 2s, 4s and
    return their (strides, channels).
    """
    if len(in_features) != 3:
        raise ValueError(f"{neck_name} needs 3 in_features, got {list(in_features)}")
    shapes = bottom_up.output_shape()
    missing = [f for f in in_features if f not in shapes]
    if missing:
        raise ValueError(
            f"{neck_name} in_features {missing} are not produced by the bottom-up "
            f"{type(bottom_up).__name__} (it gives {sorted(shapes)})"
        )
    strides = [shapes[f].stride for f in in_features]
    if strides[1] != 2 * strides[0] or strides[2] != 2 * strides[1]:
        raise ValueError(f"{neck_name} in_features must have strides s, 2s, 4s; got {strides}")
    return strides, [shapes[f].channels for f in in_features]


def level_names(strides: Sequence[int]) -> List[str]:
    """Detectron2's FPN naming: ``p{log2(stride)}``."""
    return [f"p{int(math.log2(s))}" for s in strides]


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")
