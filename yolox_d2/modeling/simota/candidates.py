"""
SimOTA step 1: the candidate predictions of every image and the geometry prior of every
(ground truth, prediction) pair, then the candidates packed to the front of a ``(n, N)``
buffer in anchor order (the official per-image ``pred[fg_mask]`` compaction, batched).
"""

from dataclasses import dataclass
from typing import Tuple

import torch
from torch import Tensor

__all__ = ["CandidateColumns", "candidate_geometry", "gather_candidates", "pack_candidates"]


def candidate_geometry(
    points: Tensor,
    strides: Tensor,
    gt_boxes: Tensor,
    gt_valid: Tensor,
    *,
    center_radius: float,
    union_with_boxes: bool,
) -> Tuple[Tensor, Tensor]:
    """
    Where the anchor centres lie relative to the ground truths.

    Args:
        points: (A, 2) anchor centres in pixels.
        strides: (A,) stride of every anchor.
        gt_boxes: (n, G, 4) ground-truth boxes, XYXY pixels.
        gt_valid: (n, G) bool, real (non-padding) ground truths.
        center_radius: half-size of the centre region around a ground-truth centre, in strides.
        union_with_boxes: the 2021 rule: candidates are the anchors in a box OR in a centre
            region, the prior is in box AND in centre region. Else (2023 rule) both are the
            centre region.

    Returns:
        candidates: (n, A) bool, union over the image's ground truths of the candidate area.
        prior_ok: (n, G, A) bool, pairs that satisfy the geometry prior (no penalty).
    """
    x = points[:, 0]
    y = points[:, 1]
    x1, y1, x2, y2 = (gt_boxes[..., i : i + 1] for i in range(4))  # (n, G, 1)
    cx = (x1 + x2) * 0.5
    cy = (y1 + y2) * 0.5
    r = center_radius * strides  # (A,)
    # Strict inequalities, as the official ``min(deltas) > 0``; for floats ``a - b > 0``
    # is exactly ``a > b``.
    in_ctr = torch.gt(x, cx - r)
    in_ctr &= torch.gt(y, cy - r)
    in_ctr &= torch.lt(x, cx + r)
    in_ctr &= torch.lt(y, cy + r)
    valid = gt_valid.unsqueeze(-1)
    if union_with_boxes:
        in_box = torch.gt(x, x1)
        in_box &= torch.gt(y, y1)
        in_box &= torch.lt(x, x2)
        in_box &= torch.lt(y, y2)
        prior_ok = in_box & in_ctr
        in_box |= in_ctr
        in_box &= valid
        candidates = in_box.any(dim=1)
    else:
        candidates = (in_ctr & valid).any(dim=1)
        prior_ok = in_ctr
    return candidates, prior_ok


@dataclass
class CandidateColumns:
    """
    The candidate anchors of every image of a chunk, packed to the front in anchor order.

    Attributes:
        index: (n, N) anchor index of every column (padding columns hold ``A``).
        valid: (n, N) bool, real (non-padding) columns.
        num_columns: ``N``, the largest number of candidates of an image in the chunk.
    """

    index: Tensor
    valid: Tensor
    num_columns: int


def pack_candidates(candidates: Tensor) -> CandidateColumns:
    """Packs the ``(n, A)`` candidate mask into :class:`CandidateColumns`."""
    n, A = candidates.shape
    counts = candidates.sum(dim=1)
    N = int(counts.max().item())
    pos = candidates.cumsum(dim=1) - 1
    # Non-candidates are written to a dump column N, dropped afterwards.
    pos = torch.where(candidates, pos, torch.full_like(pos, N))
    anchors = torch.arange(A, device=candidates.device).expand(n, A)
    index = torch.full((n, N + 1), A, dtype=torch.int64, device=candidates.device)
    index.scatter_(1, pos, anchors)
    index = index[:, :N]
    valid = torch.arange(N, device=candidates.device) < counts.unsqueeze(1)
    index = torch.where(valid, index, torch.full_like(index, A))
    return CandidateColumns(index, valid, N)


def gather_candidates(
    columns: CandidateColumns,
    pred_boxes: Tensor,
    cls_logits: Tensor,
    obj_logits: Tensor,
    prior_ok: Tensor,
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """
    The predictions and geometry prior at the candidate columns (padding columns repeat the
    last anchor; callers mask them with ``columns.valid``).

    Args:
        columns: the packed candidates of the chunk.
        pred_boxes: (n, A, 4) predicted boxes; cls_logits: (n, A, C); obj_logits: (n, A).
        prior_ok: (n, G, A) bool, from :func:`candidate_geometry`.

    Returns:
        boxes (n, N, 4), cls_logits (n, N, C), obj_logits (n, N), prior_ok (n, G, N).
    """
    n, A, C = cls_logits.shape
    G, N = prior_ok.shape[1], columns.num_columns
    gather_index = columns.index.clamp(max=A - 1)
    flat_index = (gather_index + torch.arange(n, device=cls_logits.device).unsqueeze(1) * A).view(-1)
    boxes = pred_boxes.reshape(n * A, 4).index_select(0, flat_index).view(n, N, 4)
    cls_c = cls_logits.reshape(n * A, C).index_select(0, flat_index).view(n, N, C)
    obj_c = obj_logits.reshape(n * A).index_select(0, flat_index).view(n, N)
    prior_c = prior_ok.gather(2, gather_index.unsqueeze(1).expand(n, G, N))
    return boxes, cls_c, obj_c, prior_c
