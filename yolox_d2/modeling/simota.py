"""SimOTA label assignment (YOLOX), vectorised over a padded batch.

The assignment reproduces the official YOLOX ``get_assignments`` of the installed reference
(``YOLOXHead.get_in_boxes_info`` + ``dynamic_k_matching`` for the 2021 "legacy" rule,
``get_geometry_constraint`` + ``simota_matching`` for the post-2023 rule), but processes every
image of a batch at once: ground truths are padded to ``(B, G)`` with a validity mask and the
candidate predictions of every image are packed to the front of a ``(B, N)`` buffer, in anchor
order, exactly like the official per-image ``pred[fg_mask]`` compaction. The cost matrix is
therefore the official one (same float32 operations in the same order), and the dynamic-k
selection runs over the same candidate set.

Ties: the official code picks the k lowest-cost candidates with ``torch.topk``, whose choice
among *equal* costs is implementation defined (it differs between CPU and CUDA). Here, among
equal costs the candidate with the lower anchor index is taken, deterministically. Equal costs
are rare but not impossible (the ``1e5`` / ``1e6`` geometry penalty leaves a float32 resolution
of about 0.008 / 0.06 on the penalised costs).
"""

import logging
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["SimOTAAssignment", "SimOTAMatcher"]

logger = logging.getLogger(__name__)

_MAX_SIDE = 1e18  # see losses.MAX_BOX_SIDE

# rule -> (default centre radius, candidates are "in box OR in centre", penalty for pairs that
# fail the geometry prior)
_RULES = {
    # 2021 rule (released weights, mmdetection): radius 2.5 strides; candidates = in box OR in
    # centre region of any gt; +1e5 for (gt, prediction) pairs that are not in box AND in centre.
    "legacy": (2.5, True, 100000.0),
    # Official code after January 2023: radius 1.5; candidates = in centre region only;
    # +1e6 for pairs outside the centre region.
    "2023": (1.5, False, 1e6),
}


@dataclass
class SimOTAAssignment:
    """
    Result of :class:`SimOTAMatcher` for a batch of ``B`` images with ``A`` predictions each.

    Attributes:
        fg_mask: (B, A) bool, predictions assigned to a ground truth (foreground).
        matched_gt: (B, A) int64, index into the padded ground-truth axis ``G``; meaningful
            where ``fg_mask`` (0 elsewhere).
        matched_iou: (B, A) float32, IoU between the predicted box and its matched ground
            truth where ``fg_mask``, 0 elsewhere.
        num_fg: total number of foreground predictions over the batch.
    """

    fg_mask: Tensor
    matched_gt: Tensor
    matched_iou: Tensor
    num_fg: int


class SimOTAMatcher:
    """
    SimOTA dynamic label assignment (YOLOX, "Exceeding YOLO Series in 2021", Sec. 2.1).

    For every image and every ground truth ``g``:

    1. candidate predictions are those whose anchor centre lies inside a ground-truth box or in
       the square of half-size ``center_radius * stride`` around a ground-truth centre (rule
       dependent, see ``rule``); all later steps only look at the candidates of the image;
    2. ``cost = cls_weight * BCE(sqrt(sigmoid(cls) * sigmoid(obj)), onehot(class)).sum()
       + iou_weight * -log(IoU + 1e-8) + penalty * (pair fails the geometry prior)``;
    3. ``k = max(1, int(sum of the candidate_topk largest IoUs of g))``; ``g`` takes its ``k``
       lowest-cost candidates;
    4. a prediction taken by several ground truths goes to the ground truth of lowest cost
       (over all ground truths of the image, as in the official code).

    The object is a plain callable, like :class:`detectron2.modeling.Matcher`. The assignment is
    computed without gradient, in float32.

    Args:
        rule: ``"legacy"`` (default): the 2021 rule that trained the released YOLOX weights
            and that mmdetection uses: radius 2.5, candidates = in box OR in centre region,
            +1e5 cost for pairs that are not in box AND in centre region.
            ``"2023"``: the official rule since January 2023: radius 1.5, candidates = in
            centre region only, +1e6 cost for pairs outside it.
            The default is ``"legacy"`` because it is the rule the published numbers (and the
            released checkpoints that this project can fine-tune) were obtained with.
        center_radius: half-size of the centre region, in strides; ``None`` = the rule's
            default (2.5 or 1.5).
        cls_weight: weight of the classification cost (1.0 officially).
        iou_weight: weight of the IoU cost (3.0 officially).
        candidate_topk: number of largest IoUs summed to get a ground truth's dynamic k
            (10 officially). It is also the largest possible k.
        max_chunk_elements: memory bound, in tensor elements. The largest intermediate is the
            per-(image, gt, candidate, class) BCE tensor of the classification cost, then the
            per-(image, gt, anchor) geometry and cost tensors. The batch is processed in chunks
            of images such that ``images * G * A`` stays within the bound, and within a chunk
            the classification cost is computed in blocks of ground truths such that
            ``images * gts * candidates * C`` stays within it (a single image with more than
            ``max_chunk_elements / A`` ground truths is still processed whole for the pairwise
            tensors). The result does not depend on the chunking.
    """

    def __init__(
        self,
        *,
        rule: str = "legacy",
        center_radius: Optional[float] = None,
        cls_weight: float = 1.0,
        iou_weight: float = 3.0,
        candidate_topk: int = 10,
        max_chunk_elements: int = 2**27,
    ) -> None:
        if rule not in _RULES:
            raise ValueError(f"rule must be one of {sorted(_RULES)}, got {rule!r}")
        default_radius, union_candidates, penalty = _RULES[rule]
        if center_radius is None:
            center_radius = default_radius
        if not (center_radius > 0 and math.isfinite(center_radius)):
            raise ValueError(f"center_radius must be a positive finite number, got {center_radius}")
        if int(candidate_topk) < 1:
            raise ValueError(f"candidate_topk must be >= 1, got {candidate_topk}")
        if int(max_chunk_elements) < 1:
            raise ValueError(f"max_chunk_elements must be >= 1, got {max_chunk_elements}")
        self.rule = rule
        self.center_radius = float(center_radius)
        self.cls_weight = float(cls_weight)
        self.iou_weight = float(iou_weight)
        self.candidate_topk = int(candidate_topk)
        self.max_chunk_elements = int(max_chunk_elements)
        self._union_candidates = union_candidates
        self._penalty = penalty

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(rule={self.rule!r}, center_radius={self.center_radius}, "
            f"cls_weight={self.cls_weight}, iou_weight={self.iou_weight}, "
            f"candidate_topk={self.candidate_topk}, max_chunk_elements={self.max_chunk_elements})"
        )

    # ------------------------------------------------------------------ public entry point
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
        Args:
            pred_boxes: (B, A, 4) decoded predicted boxes, XYXY absolute pixels.
            cls_logits: (B, A, C) raw class logits.
            obj_logits: (B, A) raw objectness logits.
            anchor_points: (A, 2) anchor centres in pixels, ``(grid_xy + 0.5) * stride``.
            anchor_strides: (A,) stride of every anchor.
            gt_boxes: (B, G, 4) ground-truth boxes, XYXY pixels, padded (G may be 0).
            gt_classes: (B, G) int64 class ids (padding entries are ignored).
            gt_valid: (B, G) bool, True for real (non-padding) ground truths.

        Returns:
            SimOTAAssignment
        """
        self._check_inputs(
            pred_boxes,
            cls_logits,
            obj_logits,
            anchor_points,
            anchor_strides,
            gt_boxes,
            gt_classes,
            gt_valid,
        )
        B, A, C = cls_logits.shape
        G = gt_boxes.shape[1]
        device = pred_boxes.device

        fg_mask = torch.zeros((B, A), dtype=torch.bool, device=device)
        matched_gt = torch.zeros((B, A), dtype=torch.int64, device=device)
        matched_iou = torch.zeros((B, A), dtype=torch.float32, device=device)
        if B == 0 or A == 0 or G == 0:
            return SimOTAAssignment(fg_mask, matched_gt, matched_iou, 0)

        points = anchor_points.float()
        strides = anchor_strides.float()
        # Pairwise (image, gt, anchor) tensors of a chunk stay within the bound; the larger
        # (image, gt, candidate, class) BCE tensor is further split by gt blocks in _class_cost.
        images_per_chunk = max(1, min(B, self.max_chunk_elements // (G * A)))
        if images_per_chunk < B:
            logger.debug(
                "SimOTA: %d images x %d gts x %d anchors exceeds %d elements; "
                "assigning %d image(s) at a time",
                B,
                G,
                A,
                self.max_chunk_elements,
                images_per_chunk,
            )
        for start in range(0, B, images_per_chunk):
            sl = slice(start, min(B, start + images_per_chunk))
            self._assign_chunk(
                pred_boxes[sl].float(),
                cls_logits[sl].float(),
                obj_logits[sl].float(),
                points,
                strides,
                gt_boxes[sl].float(),
                gt_classes[sl].long(),
                gt_valid[sl],
                fg_mask[sl],
                matched_gt[sl],
                matched_iou[sl],
            )
        num_fg = int(fg_mask.sum().item())
        return SimOTAAssignment(fg_mask, matched_gt, matched_iou, num_fg)

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _check_inputs(
        pred_boxes: Tensor,
        cls_logits: Tensor,
        obj_logits: Tensor,
        anchor_points: Tensor,
        anchor_strides: Tensor,
        gt_boxes: Tensor,
        gt_classes: Tensor,
        gt_valid: Tensor,
    ) -> None:
        if cls_logits.dim() != 3 or cls_logits.shape[2] < 1:
            raise ValueError(f"cls_logits must be (B, A, C) with C >= 1, got {tuple(cls_logits.shape)}")
        B, A, _ = cls_logits.shape
        if pred_boxes.shape != (B, A, 4):
            raise ValueError(f"pred_boxes must be (B, A, 4) = {(B, A, 4)}, got {tuple(pred_boxes.shape)}")
        if obj_logits.shape != (B, A):
            raise ValueError(f"obj_logits must be (B, A) = {(B, A)}, got {tuple(obj_logits.shape)}")
        if anchor_points.shape != (A, 2):
            raise ValueError(f"anchor_points must be (A, 2) = {(A, 2)}, got {tuple(anchor_points.shape)}")
        if anchor_strides.shape != (A,):
            raise ValueError(f"anchor_strides must be (A,) = {(A,)}, got {tuple(anchor_strides.shape)}")
        if gt_boxes.dim() != 3 or gt_boxes.shape[0] != B or gt_boxes.shape[2] != 4:
            raise ValueError(f"gt_boxes must be (B, G, 4) with B={B}, got {tuple(gt_boxes.shape)}")
        G = gt_boxes.shape[1]
        if gt_classes.shape != (B, G):
            raise ValueError(f"gt_classes must be (B, G) = {(B, G)}, got {tuple(gt_classes.shape)}")
        if gt_valid.shape != (B, G):
            raise ValueError(f"gt_valid must be (B, G) = {(B, G)}, got {tuple(gt_valid.shape)}")
        if gt_valid.dtype != torch.bool:
            raise ValueError(f"gt_valid must be a bool tensor, got {gt_valid.dtype}")
        if gt_classes.is_floating_point() or gt_classes.is_complex():
            raise ValueError(f"gt_classes must be an integer tensor, got {gt_classes.dtype}")

    def _geometry(
        self, points: Tensor, strides: Tensor, gt_boxes: Tensor, gt_valid: Tensor
    ) -> Tuple[Tensor, Tensor]:
        """
        Returns:
            candidates: (n, A) bool, union over the image's ground truths of the candidate area.
            prior_ok: (n, G, A) bool, pairs that satisfy the geometry prior (no penalty).
        """
        x = points[:, 0]
        y = points[:, 1]
        x1, y1, x2, y2 = (gt_boxes[..., i : i + 1] for i in range(4))  # (n, G, 1)
        cx = (x1 + x2) * 0.5
        cy = (y1 + y2) * 0.5
        r = self.center_radius * strides  # (A,)
        # Strict inequalities, as the official ``min(deltas) > 0``.
        in_ctr = (x - (cx - r) > 0) & (y - (cy - r) > 0) & ((cx + r) - x > 0) & ((cy + r) - y > 0)
        valid = gt_valid.unsqueeze(-1)
        if self._union_candidates:
            in_box = (x - x1 > 0) & (y - y1 > 0) & (x2 - x > 0) & (y2 - y > 0)
            candidates = ((in_box | in_ctr) & valid).any(dim=1)
            prior_ok = in_box & in_ctr
        else:
            candidates = (in_ctr & valid).any(dim=1)
            prior_ok = in_ctr
        return candidates, prior_ok

    @staticmethod
    def _pack_candidates(candidates: Tensor) -> Tuple[Tensor, Tensor, int]:
        """
        Packs the candidate anchors of every image to the front, keeping anchor order.

        Returns:
            index: (n, N) anchor index of every packed column (padding columns hold A).
            col_valid: (n, N) bool, real (non-padding) columns.
            N: the largest number of candidates of an image in the chunk.
        """
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
        col_valid = torch.arange(N, device=candidates.device) < counts.unsqueeze(1)
        index = torch.where(col_valid, index, torch.full_like(index, A))
        return index, col_valid, N

    def _class_cost(self, cls_prob: Tensor, gt_classes: Tensor, gt_valid: Tensor) -> Tensor:
        """
        ``BCE(cls_prob, onehot(gt_class)).sum(-1)`` for every (gt, candidate) pair, with the
        float32 operations of the official code (so the same values).

        The cost depends on a ground truth only through its class, so when the images have
        fewer distinct classes than ground-truth slots (crowded images) it is computed once
        per (image, distinct class) and gathered. The (n, rows, N, C) BCE intermediate is
        built in blocks of rows so that it stays within ``max_chunk_elements``.

        Args:
            cls_prob: (n, N, C) ``sqrt(sigmoid(cls) * sigmoid(obj))``.
            gt_classes: (n, G) class ids in [0, C).
            gt_valid: (n, G) bool.

        Returns:
            (n, G, N) float32
        """
        n, N, C = cls_prob.shape
        G = gt_classes.shape[1]
        device = cls_prob.device
        present = torch.zeros((n, C), dtype=torch.bool, device=device)
        present[torch.nonzero(gt_valid, as_tuple=True)[0], gt_classes[gt_valid]] = True
        U = int(present.sum(dim=1).max().item())  # most distinct classes in an image
        per_class = U < G
        if per_class:
            # rows: the distinct classes of every image first (then filler classes).
            rows = torch.sort(present.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :U]
        else:
            rows = gt_classes
        R = rows.shape[1]
        block = max(1, self.max_chunk_elements // max(1, n * N * C))
        out = cls_prob.new_empty((n, R, N))
        for r0 in range(0, R, block):
            r1 = min(R, r0 + block)
            onehot = F.one_hot(rows[:, r0:r1], C).to(cls_prob.dtype)  # (n, r, C)
            shape = (n, r1 - r0, N, C)
            bce = F.binary_cross_entropy(
                cls_prob.unsqueeze(1).expand(shape),
                onehot.unsqueeze(2).expand(shape),
                reduction="none",
            )
            out[:, r0:r1] = bce.sum(dim=-1)
            del bce
        if not per_class:
            return out
        slot = torch.zeros((n, C), dtype=torch.int64, device=device)
        slot.scatter_(1, rows, torch.arange(U, device=device).expand(n, U))
        return out.gather(1, slot.gather(1, gt_classes).unsqueeze(2).expand(n, G, N))

    def _assign_chunk(
        self,
        pred_boxes: Tensor,
        cls_logits: Tensor,
        obj_logits: Tensor,
        points: Tensor,
        strides: Tensor,
        gt_boxes: Tensor,
        gt_classes: Tensor,
        gt_valid: Tensor,
        out_fg: Tensor,
        out_gt: Tensor,
        out_iou: Tensor,
    ) -> None:
        """Assigns one chunk of images, writing into the (n, A) output views."""
        n, A, C = cls_logits.shape
        G = gt_boxes.shape[1]
        candidates, prior_ok = self._geometry(points, strides, gt_boxes, gt_valid)
        index, col_valid, N = self._pack_candidates(candidates)
        if N == 0:
            return  # no candidate anywhere in the chunk: all background
        gather_index = index.clamp(max=A - 1)

        # ---- gather the candidates (n, N, ...)
        boxes = pred_boxes.gather(1, gather_index.unsqueeze(-1).expand(n, N, 4))
        cls_c = cls_logits.gather(1, gather_index.unsqueeze(-1).expand(n, N, C))
        obj_c = obj_logits.gather(1, gather_index)
        prior_ok = prior_ok.gather(2, gather_index.unsqueeze(1).expand(n, G, N))
        pair_valid = gt_valid.unsqueeze(2) & col_valid.unsqueeze(1)  # (n, G, N)

        # ---- IoU (n, G, N), float32; guarded against empty / inverted boxes
        gtb = gt_boxes.unsqueeze(2)  # (n, G, 1, 4)
        pdb = boxes.unsqueeze(1)  # (n, 1, N, 4)
        tl = torch.max(gtb[..., :2], pdb[..., :2])
        br = torch.min(gtb[..., 2:], pdb[..., 2:])
        # sides capped at 1e18 px: products of two sides cannot overflow float32 (no inf/inf)
        inter = (br - tl).clamp(0, _MAX_SIDE).prod(dim=-1)
        area_gt = (gt_boxes[..., 2:] - gt_boxes[..., :2]).clamp(0, _MAX_SIDE).prod(dim=-1)  # (n, G)
        area_pd = (boxes[..., 2:] - boxes[..., :2]).clamp(0, _MAX_SIDE).prod(dim=-1)  # (n, N)
        union = area_gt.unsqueeze(2) + area_pd.unsqueeze(1) - inter
        ious = inter / union.clamp(min=torch.finfo(union.dtype).tiny)
        ious = torch.where(pair_valid, ious, torch.zeros_like(ious))
        del tl, br, inter, union

        # ---- cost (n, G, N); invalid pairs get +inf
        cls_prob = (cls_c.sigmoid() * obj_c.unsqueeze(-1).sigmoid()).sqrt()
        safe_classes = torch.where(gt_valid, gt_classes, torch.zeros_like(gt_classes)).clamp(0, C - 1)
        cost = self._class_cost(cls_prob, safe_classes, gt_valid)
        if self.cls_weight != 1.0:
            cost = cost * self.cls_weight
        cost = cost + self.iou_weight * -torch.log(ious + 1e-8)
        cost = cost + self._penalty * (~prior_ok).to(cost.dtype)
        cost = torch.where(pair_valid, cost, torch.full_like(cost, float("inf")))
        del cls_prob, cls_c, prior_ok

        # ---- dynamic k per gt (n, G): int(sum of the top-k IoUs over the image's candidates)
        topk_n = min(self.candidate_topk, N)
        topk_ious = ious.topk(topk_n, dim=2).values
        dynamic_k = topk_ious.sum(dim=2).int().clamp(min=1).long()
        num_candidates = col_valid.sum(dim=1, keepdim=True)  # (n, 1)
        # The official k never exceeds the candidate count nor candidate_topk (IoU <= 1); the
        # clamps only guard against IoUs a rounding error above 1.
        dynamic_k = torch.minimum(dynamic_k, num_candidates).clamp(max=topk_n)
        dynamic_k = torch.where(gt_valid, dynamic_k, torch.zeros_like(dynamic_k))

        # ---- k lowest costs per gt, ties -> lower anchor index
        kmax = topk_n
        smallest = cost.topk(kmax, dim=2, largest=False, sorted=True).values  # (n, G, kmax)
        kth = smallest.gather(2, (dynamic_k - 1).clamp(0, kmax - 1).unsqueeze(2))  # (n, G, 1)
        below = cost < kth
        at = cost == kth
        room = dynamic_k.unsqueeze(2) - below.sum(dim=2, keepdim=True)
        matching = below | (at & (at.cumsum(dim=2) <= room))
        matching &= (dynamic_k > 0).unsqueeze(2) & pair_valid
        del below, at, smallest

        # ---- one gt per prediction: lowest cost among all gts of the image
        num_matches = matching.sum(dim=1)  # (n, N)
        fg = num_matches > 0
        cost_argmin = cost.min(dim=1).indices  # (n, N)
        only_match = matching.to(torch.uint8).argmax(dim=1)
        assigned = torch.where(num_matches > 1, cost_argmin, only_match)
        iou_assigned = ious.gather(1, assigned.unsqueeze(1)).squeeze(1)

        # ---- scatter back to (n, A); padding columns go to a dump column A
        fg_full = torch.zeros((n, A + 1), dtype=torch.bool, device=fg.device)
        fg_full.scatter_(1, index, fg)
        gt_full = torch.zeros((n, A + 1), dtype=torch.int64, device=fg.device)
        gt_full.scatter_(1, index, torch.where(fg, assigned, torch.zeros_like(assigned)))
        iou_full = torch.zeros((n, A + 1), dtype=torch.float32, device=fg.device)
        iou_full.scatter_(1, index, torch.where(fg, iou_assigned, torch.zeros_like(iou_assigned)))
        out_fg.copy_(fg_full[:, :A])
        out_gt.copy_(gt_full[:, :A])
        out_iou.copy_(iou_full[:, :A])
