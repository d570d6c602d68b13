"""
The anchor points of YOLOX's dense predictions and the decoding of their box regression.

Predictions are flattened by level (fine to coarse), then row-major: anchor ``i`` of a level
of width ``W`` and stride ``s`` is the grid cell ``(x, y) = (i % W, i // W)``, its centre
``(x + 0.5, y + 0.5) * s``.
"""

import math
from typing import Sequence, Tuple

import torch
from torch import Tensor

from .box_ops import cxcywh_to_xyxy

__all__ = ["MAX_LOG_SIZE", "anchor_grid", "decode_boxes"]

#: Log sizes are clamped at this in :func:`decode_boxes` (boxes up to 10^4 strides wide).
MAX_LOG_SIZE = math.log(1e4)


def anchor_grid(features: Sequence[Tensor], strides: Sequence[int]) -> Tuple[Tensor, Tensor]:
    """
    Args:
        features: the per-level (N, C, H_l, W_l) feature maps (only their shapes, device and
            dtype matter).
        strides: the stride of every level.

    Returns:
        The integer grid position (A, 2) as (x, y) of every prediction, in the flattening order,
        and its stride (A,), both of the features' dtype.
    """
    ref = features[0]
    grids, anchor_strides = [], []
    for f, s in zip(features, strides):
        h, w = f.shape[-2:]
        ys, xs = torch.meshgrid(torch.arange(h, device=ref.device), torch.arange(w, device=ref.device), indexing="ij")
        grids.append(torch.stack((xs, ys), dim=-1).reshape(-1, 2))
        anchor_strides.append(torch.full((h * w,), float(s), device=ref.device))
    return torch.cat(grids).to(ref.dtype), torch.cat(anchor_strides).to(ref.dtype)


def decode_boxes(box_reg: Tensor, grid: Tensor, strides: Tensor) -> Tensor:
    """
    (dx, dy, log w, log h) in stride units -> absolute XYXY boxes. The log sizes are
    clamped at ``log(1e4)`` (boxes up to 10^4 strides wide) so a diverging prediction
    gives a huge but finite box instead of inf/NaN; the official weights never get near it.

    Args:
        box_reg: (..., A, 4) raw box regression.
        grid: (A, 2) grid positions; strides: (A,) strides (see :func:`anchor_grid`).
    """
    s = strides.unsqueeze(-1)
    centers = (box_reg[..., :2] + grid) * s
    sizes = torch.exp(box_reg[..., 2:4].clamp(max=MAX_LOG_SIZE)) * s
    return cxcywh_to_xyxy(torch.cat((centers, sizes), dim=-1))
