"""
Fixed centre-based label assignment: the "anchor-free" and "multi positives" rungs of the YOLOX
roadmap (YOLOX paper, arXiv 2107.08430, Sec. 2.1 and Table 2), before SimOTA.

* anchor-free (``window=1``): "one prediction per cell, the centre cell of each object
  positive, scale ranges per FPN level" (as FCOS, Tian et al. 2019): an object is assigned
  to the one level whose size range holds its longer side, and the cell of that level that
  contains its centre is its positive;
* multi positives (``window=3``): the 3x3 cells around that centre cell (FCOS's centre
  sampling), up to 9 positives per object.

The cells of the window are not required to lie inside the box: YOLOX regresses the box
centre as an offset from the cell, so a neighbouring cell of a small object can still predict
it. A cell claimed by several objects goes to the smallest one (FCOS's rule; ties: lowest gt
index). Two objects of one level with the same centre cell (``window=1``) thus leave the
larger one without a positive.
"""

import math
from typing import Sequence, Tuple

import torch
from torch import Tensor

from .box_ops import aligned_box_iou, box_areas
from .simota import SimOTAAssignment, check_assignment_inputs

__all__ = ["CenterMatcher", "DEFAULT_LEVEL_SIZE_RANGES"]

#: Longer box side (pixels) assigned to each of the stride 8 / 16 / 32 levels: FCOS's P3-P5
#: ranges (largest centre-to-side distance 0-64, 64-128, 128+ px) at the box centre.
DEFAULT_LEVEL_SIZE_RANGES: Tuple[Tuple[float, float], ...] = ((0.0, 128.0), (128.0, 256.0), (256.0, math.inf))


class CenterMatcher:
    """
    Centre-cell label assignment (see the module docstring). Same call as
    :class:`~yolox_d2.modeling.SimOTAMatcher` and the same result,
    :class:`~yolox_d2.modeling.SimOTAAssignment` (``matched_iou`` = IoU of each positive's
    predicted box with its object, the IoU-aware class target of the YOLOX losses).

    Args:
        window: side of the square of positive cells around the centre cell (odd): 1 (one
            positive per object) or 3 (up to 9).
        level_size_ranges: per level, fine to coarse, the ``[low, high)`` range of the longer
            box side (pixels) assigned to it; as many ranges as the model has levels.
    """

    def __init__(
        self,
        *,
        window: int = 1,
        level_size_ranges: Sequence[Sequence[float]] = DEFAULT_LEVEL_SIZE_RANGES,
    ) -> None:
        if int(window) < 1 or int(window) % 2 != 1:
            raise ValueError(f"window must be an odd number >= 1, got {window}")
        ranges = tuple((float(lo), float(hi)) for lo, hi in level_size_ranges)
        if not ranges or any(lo >= hi for lo, hi in ranges):
            raise ValueError(f"level_size_ranges must be non-empty [low, high) pairs, got {level_size_ranges!r}")
        self.window = int(window)
        self.level_size_ranges = ranges

    def __repr__(self) -> str:
        return f"{type(self).__name__}(window={self.window}, level_size_ranges={self.level_size_ranges})"

    @torch.no_grad()
    def __call__(
        self,
        pred_boxes: Tensor,
        cls_logits: Tensor,
        obj_logits: Tensor,
        anchor_points: Tensor,
        anchor_strides: Tensor,
        gt_boxes: Tensor,
        gt_classes: Tensor,
        gt_valid: Tensor,
    ) -> SimOTAAssignment:
        """
        Args: as :meth:`SimOTAMatcher.__call__`; only the predicted boxes are read (for
        ``matched_iou``), not the scores.
        """
        check_assignment_inputs(
            pred_boxes, cls_logits, obj_logits, anchor_points, anchor_strides, gt_boxes, gt_classes, gt_valid
        )
        B, A = pred_boxes.shape[:2]
        G = gt_boxes.shape[1]
        device = pred_boxes.device
        level_strides = torch.unique(anchor_strides.float())  # ascending: fine to coarse
        if len(level_strides) != len(self.level_size_ranges):
            raise ValueError(
                f"CenterMatcher has {len(self.level_size_ranges)} level_size_ranges but the model has "
                f"{len(level_strides)} levels (strides {level_strides.tolist()})"
            )
        if G == 0 or A == 0:
            zeros = torch.zeros((B, A), device=device)
            return SimOTAAssignment(zeros.bool(), zeros.long(), zeros, 0)

        boxes = gt_boxes.float()
        side = (boxes[..., 2:] - boxes[..., :2]).amax(dim=-1)  # (B, G)
        low = side.new_tensor([lo for lo, _ in self.level_size_ranges])
        high = side.new_tensor([hi for _, hi in self.level_size_ranges])
        in_range = (side.unsqueeze(-1) >= low) & (side.unsqueeze(-1) < high)  # (B, G, L)
        # objects outside every range go to the nearest end (tiny: finest, huge: coarsest)
        level = torch.where(
            in_range.any(-1), in_range.float().argmax(-1), torch.where(side < low[0], 0, len(low) - 1)
        )
        gt_stride = level_strides[level]  # (B, G)

        centre = (boxes[..., :2] + boxes[..., 2:]) / 2
        centre_cell = torch.floor(centre / gt_stride.unsqueeze(-1))  # (B, G, 2)
        strides = anchor_strides.float()
        cells = torch.floor(anchor_points.float() / strides.unsqueeze(-1))  # (A, 2)
        offset = (cells.view(1, 1, A, 2) - centre_cell.unsqueeze(2)).abs().amax(-1)  # (B, G, A)
        claim = (offset <= self.window // 2) & (strides.view(1, 1, A) == gt_stride.unsqueeze(-1))
        claim &= gt_valid.unsqueeze(-1)

        area = box_areas(boxes).unsqueeze(-1).expand(B, G, A)
        owner = torch.where(claim, area, area.new_full((), math.inf)).argmin(dim=1)  # first: lowest gt
        fg_mask = claim.any(dim=1)
        matched_gt = torch.where(fg_mask, owner, torch.zeros_like(owner))
        matched_boxes = boxes.gather(1, matched_gt.unsqueeze(-1).expand(B, A, 4))
        iou = aligned_box_iou(pred_boxes.float(), matched_boxes)[0]
        matched_iou = torch.where(fg_mask, iou, torch.zeros_like(iou))
        return SimOTAAssignment(fg_mask, matched_gt, matched_iou, int(fg_mask.sum().item()))
