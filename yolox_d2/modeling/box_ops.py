"""
Box arithmetic of YOLOX on XYXY boxes: areas, the IoU of paired boxes (the box loss), the IoU of
every pair of two sets (SimOTA), GIoU, and the ``(cx, cy, w, h)`` <-> XYXY conversions.

Box sides are clamped to ``[0, MAX_BOX_SIDE]`` px in every area, so that a product of two sides
(<= 1e36) cannot overflow float32: diverging boxes give finite IoUs, losses *and* gradients, and
empty or inverted boxes have area 0.
"""

from typing import Tuple

import torch
from torch import Tensor

__all__ = [
    "MAX_BOX_SIDE",
    "aligned_box_giou",
    "aligned_box_iou",
    "box_areas",
    "cxcywh_to_xyxy",
    "pairwise_box_iou",
    "xyxy_to_cxcywh",
]

MAX_BOX_SIDE = 1e18


def box_areas(boxes: Tensor) -> Tensor:
    """(...) areas of (..., 4) XYXY boxes, sides clamped to ``[0, MAX_BOX_SIDE]``."""
    return (boxes[..., 2:] - boxes[..., :2]).clamp(0, MAX_BOX_SIDE).prod(dim=-1)


def aligned_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 0.0) -> Tuple[Tensor, Tensor]:
    """
    IoU of paired boxes, ``intersection / (union + eps)``, differentiable.

    Args:
        boxes1, boxes2: (..., 4) XYXY boxes of the same shape; ``boxes1[i]`` pairs with
            ``boxes2[i]``.
        eps: added to the union, against division by zero.

    Returns:
        ``(iou, union)``, both (...).
    """
    tl = torch.max(boxes1[..., :2], boxes2[..., :2])
    br = torch.min(boxes1[..., 2:], boxes2[..., 2:])
    intersection = (br - tl).clamp(0, MAX_BOX_SIDE).prod(dim=-1)
    union = box_areas(boxes1) + box_areas(boxes2) - intersection
    return intersection / (union + eps), union


def aligned_box_giou(boxes1: Tensor, boxes2: Tensor, eps: float = 0.0) -> Tensor:
    """
    Generalised IoU of paired boxes, ``IoU - (enclosing - union) / max(enclosing, eps)`` with
    the IoU of :func:`aligned_box_iou` (same ``eps``); differentiable.

    Args:
        boxes1, boxes2: (..., 4) XYXY boxes of the same shape.
        eps: added to the union and floor of the enclosing area, against division by zero.

    Returns:
        (...) GIoU, in ``[-1, 1]`` up to rounding.
    """
    iou, union = aligned_box_iou(boxes1, boxes2, eps)
    enclosing_tl = torch.min(boxes1[..., :2], boxes2[..., :2])
    enclosing_br = torch.max(boxes1[..., 2:], boxes2[..., 2:])
    enclosing = (enclosing_br - enclosing_tl).clamp(max=MAX_BOX_SIDE).prod(dim=-1)
    return iou - (enclosing - union) / enclosing.clamp(min=eps)


def pairwise_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """
    IoU of every pair of two sets of boxes, ``intersection / (area1 + area2 - intersection)``
    (the official SimOTA operations), with the union floored at the smallest positive float.
    Computed with in-place operations, for label assignment under ``torch.no_grad()``.

    Args:
        boxes1: (..., M, 4) XYXY boxes.
        boxes2: (..., K, 4) XYXY boxes, same leading dimensions.

    Returns:
        (..., M, K) IoU.
    """
    b1 = boxes1.unsqueeze(-2)  # (..., M, 1, 4)
    b2 = boxes2.unsqueeze(-3)  # (..., 1, K, 4)
    b1_neg, b2_neg = -b1[..., :2], -b2[..., :2]
    # min(x2) - max(x1), as min(x2) + min(-x1): the same values, and torch.minimum of
    # broadcast operands is several times faster than torch.maximum on the CPU.
    inter = torch.minimum(b1[..., 2], b2[..., 2]).add_(torch.minimum(b1_neg[..., 0], b2_neg[..., 0]))
    inter.clamp_(0, MAX_BOX_SIDE)
    ih = torch.minimum(b1[..., 3], b2[..., 3]).add_(torch.minimum(b1_neg[..., 1], b2_neg[..., 1]))
    inter.mul_(ih.clamp_(0, MAX_BOX_SIDE))
    del ih
    union = (box_areas(boxes1).unsqueeze(-1) + box_areas(boxes2).unsqueeze(-2)).sub_(inter)
    return inter.div_(union.clamp_(min=torch.finfo(union.dtype).tiny))


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """(..., 4) ``(cx, cy, w, h)`` -> (..., 4) XYXY."""
    centers, sizes = boxes[..., :2], boxes[..., 2:]
    return torch.cat((centers - sizes / 2, centers + sizes / 2), dim=-1)


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """(..., 4) XYXY -> (..., 4) ``(cx, cy, w, h)``."""
    return torch.cat(((boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]), dim=-1)
