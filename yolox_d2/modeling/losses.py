"""YOLOX training losses (IoU / GIoU box loss, objectness, classification, L1).

``L = (L_cls + box_weight * L_iou + L_obj + L_l1) / num_fg`` with, per the official
implementation (``YOLOXHead.get_losses``):

* box: ``1 - IoU**2`` (or ``1 - GIoU``) between every positive prediction and its matched gt;
* objectness: BCE-with-logits over *all* predictions, target 1 for positives, 0 otherwise;
* classification: BCE-with-logits over positives, target ``onehot(class) * IoU(pred, gt)``;
* L1 (last epochs only): on the raw regression outputs ``(dx, dy, log w, log h)`` against
  ``(gt_cx / s - grid_x, gt_cy / s - grid_y, log(gt_w / s + 1e-8), log(gt_h / s + 1e-8))``.

Every term is a sum normalised by ``num_fg_normalizer`` (the number of positives, averaged
over workers by the caller). The losses are computed in float32.
"""

import logging
from typing import Dict, Optional, Union

import torch
from torch import Tensor
from torch.nn import functional as F

from .box_ops import aligned_box_giou, aligned_box_iou
from .simota import SimOTAAssignment

__all__ = ["iou_loss", "yolox_losses"]

logger = logging.getLogger(__name__)

_IOU_LOSS_TYPES = ("iou", "giou")
_REDUCTIONS = ("none", "sum", "mean")


def iou_loss(
    pred_xyxy: Tensor,
    target_xyxy: Tensor,
    loss_type: str = "iou",
    reduction: str = "none",
    eps: float = 1e-16,
) -> Tensor:
    """
    Box regression loss of YOLOX between paired boxes.

    ``"iou"``: ``1 - IoU**2``; ``"giou"``: ``1 - clamp(GIoU, -1, 1)``; with
    ``IoU = inter / (union + eps)`` and ``GIoU = IoU - (enclosing - union) / max(enclosing, eps)``,
    as the official ``IOUloss`` (which works in cxcywh; the values agree up to float rounding).

    Args:
        pred_xyxy: (..., 4) predicted boxes, XYXY.
        target_xyxy: (..., 4) target boxes, XYXY, same shape as ``pred_xyxy``.
        loss_type: ``"iou"`` or ``"giou"``.
        reduction: ``"none"`` (per box, shape ``(...)``), ``"sum"`` or ``"mean"``.
        eps: added to the union / floor of the enclosing area, against division by zero.

    Returns:
        the loss, per box or reduced.
    """
    if pred_xyxy.shape[-1:] != (4,):
        raise ValueError(f"pred_xyxy must have a last dimension of 4, got {tuple(pred_xyxy.shape)}")
    if target_xyxy.shape != pred_xyxy.shape:
        raise ValueError(
            f"target_xyxy must have the shape of pred_xyxy {tuple(pred_xyxy.shape)}, "
            f"got {tuple(target_xyxy.shape)}"
        )
    if loss_type not in _IOU_LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {_IOU_LOSS_TYPES}, got {loss_type!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")

    # Box sides are capped in the areas (see box_ops): diverging boxes give finite losses and
    # gradients.
    if loss_type == "iou":
        loss = 1 - aligned_box_iou(pred_xyxy, target_xyxy, eps)[0] ** 2
    else:
        loss = 1 - aligned_box_giou(pred_xyxy, target_xyxy, eps).clamp(min=-1.0, max=1.0)

    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    return loss


def yolox_losses(
    cls_logits: Tensor,
    obj_logits: Tensor,
    box_preds_xyxy: Tensor,
    reg_raw: Optional[Tensor],
    anchor_grid: Tensor,
    anchor_strides: Tensor,
    assignment: SimOTAAssignment,
    gt_boxes: Tensor,
    gt_classes: Tensor,
    *,
    num_fg_normalizer: Union[float, Tensor],
    use_l1: bool = False,
    iou_loss_type: str = "iou",
    box_weight: float = 5.0,
) -> Dict[str, Tensor]:
    """
    The YOLOX losses for a batch, given a SimOTA assignment.

    Args:
        cls_logits: (B, A, C) raw class logits (with grad).
        obj_logits: (B, A) raw objectness logits (with grad).
        box_preds_xyxy: (B, A, 4) decoded predicted boxes, XYXY pixels (with grad).
        reg_raw: (B, A, 4) raw regression outputs ``(dx, dy, log w, log h)`` in stride units,
            for the L1 loss; may be None when ``use_l1`` is False.
        anchor_grid: (A, 2) integer grid position (x, y) of every prediction (cell top-left
            in stride units, the official ``x_shifts`` / ``y_shifts``).
        anchor_strides: (A,) stride of every prediction.
        assignment: the :class:`SimOTAAssignment` of these predictions.
        gt_boxes: (B, G, 4) padded ground-truth boxes, XYXY pixels.
        gt_classes: (B, G) int64 ground-truth classes, in ``[0, C)`` where matched.
        num_fg_normalizer: the normaliser of every term, i.e. the number of positives averaged
            over workers; values below 1 are raised to 1 (as the official ``max(num_fg, 1)``).
        use_l1: add the L1 loss on raw regression outputs (the last, no-augmentation epochs).
        iou_loss_type: ``"iou"`` (``1 - IoU**2``) or ``"giou"``.
        box_weight: weight of the box loss (5.0 officially).

    Returns:
        dict with scalar tensors ``loss_cls``, ``loss_box_reg`` (already multiplied by
        ``box_weight``), ``loss_obj`` and ``loss_l1``. When ``use_l1`` is False, ``loss_l1``
        is a zero that is still connected to the graph (so that every loss has a gradient
        path and distributed training sees the same graph in every phase).
    """
    _check_loss_inputs(
        cls_logits,
        obj_logits,
        box_preds_xyxy,
        reg_raw,
        anchor_grid,
        anchor_strides,
        assignment,
        gt_boxes,
        gt_classes,
        use_l1,
    )
    if iou_loss_type not in _IOU_LOSS_TYPES:
        raise ValueError(f"iou_loss_type must be one of {_IOU_LOSS_TYPES}, got {iou_loss_type!r}")
    if isinstance(num_fg_normalizer, Tensor):
        norm = num_fg_normalizer.detach().float().clamp(min=1.0)
    else:
        norm = max(float(num_fg_normalizer), 1.0)

    B, A, C = cls_logits.shape
    G = gt_boxes.shape[1]
    fg = assignment.fg_mask
    cls_logits = cls_logits.float()
    obj_logits = obj_logits.float()
    box_preds_xyxy = box_preds_xyxy.float()

    # Matched ground truth of every positive, (F, ...) in (image, anchor) order.
    if G > 0:
        matched = assignment.matched_gt.clamp(0, G - 1)
        fg_gt_boxes = gt_boxes.float().gather(1, matched.unsqueeze(-1).expand(B, A, 4))[fg]
        fg_gt_classes = gt_classes.gather(1, matched)[fg].long()
    else:
        fg_gt_boxes = box_preds_xyxy.new_zeros((0, 4))
        fg_gt_classes = gt_classes.new_zeros((0,), dtype=torch.int64)
    fg_iou = assignment.matched_iou[fg].to(cls_logits.dtype)

    # Objectness: every prediction.
    loss_obj = F.binary_cross_entropy_with_logits(obj_logits, fg.to(obj_logits.dtype), reduction="sum")

    # Classification: positives, IoU-aware soft target.
    cls_target = F.one_hot(fg_gt_classes, C).to(cls_logits.dtype) * fg_iou.unsqueeze(-1)
    loss_cls = F.binary_cross_entropy_with_logits(cls_logits[fg], cls_target, reduction="sum")

    # Box: positives.
    loss_box = iou_loss(box_preds_xyxy[fg], fg_gt_boxes, loss_type=iou_loss_type, reduction="sum")

    if use_l1:
        assert reg_raw is not None  # checked above
        fg_grid = anchor_grid.to(fg_gt_boxes.dtype).expand(B, A, 2)[fg]
        fg_stride = anchor_strides.to(fg_gt_boxes.dtype).expand(B, A)[fg].unsqueeze(-1)
        gt_ctr = (fg_gt_boxes[:, :2] + fg_gt_boxes[:, 2:]) / 2
        # clamp: an inverted (invalid) gt box gives log(1e-8), not log(negative) = NaN
        gt_wh = (fg_gt_boxes[:, 2:] - fg_gt_boxes[:, :2]).clamp(min=0)
        l1_target = torch.cat((gt_ctr / fg_stride - fg_grid, torch.log(gt_wh / fg_stride + 1e-8)), dim=-1)
        loss_l1 = F.l1_loss(reg_raw.float()[fg], l1_target, reduction="sum")
    else:
        # An empty sum: exactly 0, NaN-proof, and attached to the graph.
        source = reg_raw if reg_raw is not None else box_preds_xyxy
        loss_l1 = source.float().reshape(-1)[:0].sum()

    return {
        "loss_cls": loss_cls / norm,
        "loss_box_reg": box_weight * loss_box / norm,
        "loss_obj": loss_obj / norm,
        "loss_l1": loss_l1 / norm,
    }


def _check_loss_inputs(
    cls_logits: Tensor,
    obj_logits: Tensor,
    box_preds_xyxy: Tensor,
    reg_raw: Optional[Tensor],
    anchor_grid: Tensor,
    anchor_strides: Tensor,
    assignment: SimOTAAssignment,
    gt_boxes: Tensor,
    gt_classes: Tensor,
    use_l1: bool,
) -> None:
    if cls_logits.dim() != 3:
        raise ValueError(f"cls_logits must be (B, A, C), got {tuple(cls_logits.shape)}")
    B, A, _ = cls_logits.shape
    if obj_logits.shape != (B, A):
        raise ValueError(f"obj_logits must be (B, A) = {(B, A)}, got {tuple(obj_logits.shape)}")
    if box_preds_xyxy.shape != (B, A, 4):
        raise ValueError(f"box_preds_xyxy must be (B, A, 4) = {(B, A, 4)}, got {tuple(box_preds_xyxy.shape)}")
    if reg_raw is not None and reg_raw.shape != (B, A, 4):
        raise ValueError(f"reg_raw must be (B, A, 4) = {(B, A, 4)}, got {tuple(reg_raw.shape)}")
    if use_l1 and reg_raw is None:
        raise ValueError("reg_raw is required when use_l1 is True")
    if anchor_grid.shape != (A, 2):
        raise ValueError(f"anchor_grid must be (A, 2) = {(A, 2)}, got {tuple(anchor_grid.shape)}")
    if anchor_strides.shape != (A,):
        raise ValueError(f"anchor_strides must be (A,) = {(A,)}, got {tuple(anchor_strides.shape)}")
    for name in ("fg_mask", "matched_gt", "matched_iou"):
        shape = tuple(getattr(assignment, name).shape)
        if shape != (B, A):
            raise ValueError(f"assignment.{name} must be (B, A) = {(B, A)}, got {shape}")
    if gt_boxes.dim() != 3 or gt_boxes.shape[0] != B or gt_boxes.shape[2] != 4:
        raise ValueError(f"gt_boxes must be (B, G, 4) with B={B}, got {tuple(gt_boxes.shape)}")
    if gt_classes.shape != gt_boxes.shape[:2]:
        raise ValueError(
            f"gt_classes must be (B, G) = {tuple(gt_boxes.shape[:2])}, got {tuple(gt_classes.shape)}"
        )
