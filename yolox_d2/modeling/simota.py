"""SimOTA label assignment (YOLOX), vectorised over a padded batch.

The assignment reproduces the official YOLOX ``get_assignments`` of the installed reference
(``YOLOXHead.get_in_boxes_info`` + ``dynamic_k_matching`` for the 2021 "legacy" rule,
``get_geometry_constraint`` + ``simota_matching`` for the post-2023 rule), but processes every
image of a batch at once: ground truths are padded to ``(B, G)`` with a validity mask and the
candidate predictions of every image are packed to the front of a ``(B, N)`` buffer, in anchor
order, exactly like the official per-image ``pred[fg_mask]`` compaction, so the dynamic-k
selection runs over the official candidate set.

Cost. The official cost of a (ground truth, candidate) pair is
``BCE(sqrt(sigmoid(cls) * sigmoid(obj)), onehot(class)).sum(-1) + 3 * -log(IoU + 1e-8)
+ penalty``; the official code materialises the ``(G, N, C)`` BCE tensor, by far the most
expensive step. Its value depends on a ground truth only through its class, so here every pair
first gets a cheap estimate from per-candidate tables,
``sum_c BCE(p_c, 0) + BCE(p_k, 1) - BCE(p_k, 0)`` (``O(N * C + G * N)``), with a rigorous bound on
how far the official float32 value can be from it (any summation order of ``C`` non-negative
terms, logarithms within a few ulps). Only the pairs whose cost interval can matter (they may be
among the ``k`` lowest of their ground truth, or the lowest of a prediction claimed by several
ground truths) get the exact official value: the same elementwise BCE kernel on the same
inputs, summed over a contiguous row of ``C`` classes like the official ``.sum(-1)``. Those are
typically ``k`` plus a few pairs per ground truth, so the assignment is the official one at a
fraction of the cost. The IoU and geometry terms are the official elementwise float32 values.

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
_BCE_LOG_CAP = 100.0  # torch's binary_cross_entropy clamps its logarithms at -100

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

    The costs that decide the assignment are the official float32 values; the classification
    cost of the other pairs is only bounded (see the module docstring), which gives the same
    assignment without the official ``(G, N, C)`` tensor.

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
        max_chunk_elements: memory bound, in tensor elements. The largest intermediates are
            the per-(image, gt, anchor) geometry tensors, then the per-(image, gt, candidate)
            IoU and cost tensors. The batch is processed in chunks of images such that
            ``images * G * A`` stays within the bound (a single image with more than
            ``max_chunk_elements / A`` ground truths is still processed whole), and the exact
            classification costs are computed in blocks of ``max_chunk_elements / C`` pairs.
            The result does not depend on the chunking.
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
        if not (math.isfinite(cls_weight) and math.isfinite(iou_weight)):
            raise ValueError(f"cls_weight and iou_weight must be finite, got {cls_weight}, {iou_weight}")
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
        # Strict inequalities, as the official ``min(deltas) > 0``; for floats ``a - b > 0``
        # is exactly ``a > b``.
        in_ctr = torch.gt(x, cx - r)
        in_ctr &= torch.gt(y, cy - r)
        in_ctr &= torch.lt(x, cx + r)
        in_ctr &= torch.lt(y, cy + r)
        valid = gt_valid.unsqueeze(-1)
        if self._union_candidates:
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

    @staticmethod
    def _pairwise_iou(gt_boxes: Tensor, boxes: Tensor) -> Tensor:
        """
        (n, G, N) float32 IoU, with the official operations (``intersection / (area_gt +
        area_pred - intersection)``), for every (gt, candidate) pair, padding included. Guarded
        against empty / inverted boxes: sides are clamped to [0, 1e18] px so that products of
        two sides cannot overflow float32 (no inf / inf).
        """
        g = gt_boxes.unsqueeze(2)  # (n, G, 1, 4)
        p = boxes.unsqueeze(1)  # (n, 1, N, 4)
        g_neg, p_neg = -g[..., :2], -p[..., :2]
        # min(x2) - max(x1), as min(x2) + min(-x1): the same values, and torch.minimum of
        # broadcast operands is several times faster than torch.maximum on the CPU.
        inter = torch.minimum(g[..., 2], p[..., 2]).add_(torch.minimum(g_neg[..., 0], p_neg[..., 0]))
        inter.clamp_(0, _MAX_SIDE)
        ih = torch.minimum(g[..., 3], p[..., 3]).add_(torch.minimum(g_neg[..., 1], p_neg[..., 1]))
        inter.mul_(ih.clamp_(0, _MAX_SIDE))
        del ih
        sides_gt = (gt_boxes[..., 2:] - gt_boxes[..., :2]).clamp_(0, _MAX_SIDE)
        sides_pd = (boxes[..., 2:] - boxes[..., :2]).clamp_(0, _MAX_SIDE)
        area_gt = sides_gt[..., 0] * sides_gt[..., 1]  # (n, G)
        area_pd = sides_pd[..., 0] * sides_pd[..., 1]  # (n, N)
        union = (area_gt.unsqueeze(2) + area_pd.unsqueeze(1)).sub_(inter)
        return inter.div_(union.clamp_(min=torch.finfo(union.dtype).tiny))

    def _class_cost_bounds(self, cls_prob: Tensor, gt_classes: Tensor) -> Tuple[Tensor, Tensor]:
        """
        An estimate of the official float32 classification cost
        ``BCE(cls_prob, onehot(class)).sum(-1)`` of every (gt, candidate) pair, and a half-width
        that bounds its distance to the official value, whatever the order in which the official
        sum is evaluated.

        The cost is ``S + d_k`` with ``S = sum_c BCE(p_c, 0) = sum_c min(-log(1 - p_c), 100)``
        and ``d_k = BCE(p_k, 1) - BCE(p_k, 0) = clamp(log((1 - p_k) / p_k), -100, 100)``
        (``k`` the gt class). All ``C`` terms of the official sum are non-negative, so any
        float32 summation is within ``(C - 1) u`` of the exact sum (``u = 2^-24``, relative).
        ``S`` is estimated with one logarithm per 4 classes (of the product of four ``1 - p``,
        which cannot underflow: ``1 - p`` is 0 or >= 2^-24 in float32). With the rounding of
        the estimate itself, logarithms a few ulps apart (vectorised vs scalar) and an absolute
        ``u`` per term (``log(1 - p)`` vs ``log1p(-p)``),
        ``(4 C + 64) * 2^-23 * (|estimate| + 2 S + 1)`` is a safe half-width.

        Args:
            cls_prob: (n, N, C) ``sqrt(sigmoid(cls) * sigmoid(obj))``.
            gt_classes: (n, G) class ids in [0, C).

        Returns:
            estimate, half_width: (n, G, N) float32.
        """
        n, N, C = cls_prob.shape
        G = gt_classes.shape[1]
        q = 1.0 - cls_prob
        # d_k for every class, gathered per gt
        d = q.div(cls_prob).log_().clamp_(-_BCE_LOG_CAP, _BCE_LOG_CAP)
        est = d.transpose(1, 2).gather(1, gt_classes.unsqueeze(2).expand(n, G, N))
        del d
        # S: the terms with p == 1 are exactly 100 (torch clamps log(0) at -100)
        s = q.new_zeros((n, N))
        if bool(q.amin() == 0):
            zero = q == 0
            s.add_(zero.to(q.dtype).sum(dim=2), alpha=_BCE_LOG_CAP)
            q.masked_fill_(zero, 1.0)
            del zero
        pad = (-C) % 4
        if pad:
            q = F.pad(q, (0, pad), value=1.0)
        q = q.view(n, N, -1, 4)
        prod = (q[..., 0] * q[..., 1]).mul_(q[..., 2]).mul_(q[..., 3])  # (n, N, ceil(C / 4))
        del q
        s.sub_(prod.log_().sum(dim=2))  # (n, N)
        del prod
        est.add_(s.unsqueeze(1))
        kappa = (4 * C + 64) * 2.0**-23
        half = torch.add(s.mul_(2.0 * kappa).add_(kappa).unsqueeze(1), est.abs(), alpha=kappa)
        return est, half

    def _exact_class_cost(self, cls_prob: Tensor, b: Tensor, n: Tensor, classes: Tensor) -> Tensor:
        """
        The official classification cost of the pairs ``(image b[i], candidate n[i])`` with
        ground-truth class ``classes[i]``: the same elementwise BCE on the same float32 inputs,
        summed over a contiguous row of ``C`` classes like the official ``.sum(-1)``.
        Computed in blocks of ``max_chunk_elements / C`` pairs.
        """
        C = cls_prob.shape[2]
        out = cls_prob.new_empty(b.shape)
        block = max(1, self.max_chunk_elements // C)
        for s in range(0, b.numel(), block):
            e = min(b.numel(), s + block)
            rows = cls_prob[b[s:e], n[s:e]]  # (p, C)
            target = F.one_hot(classes[s:e], C).to(rows.dtype)
            out[s:e] = F.binary_cross_entropy(rows, target, reduction="none").sum(dim=-1)
        return out

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
        device = cls_logits.device
        candidates, prior_ok = self._geometry(points, strides, gt_boxes, gt_valid)
        index, col_valid, N = self._pack_candidates(candidates)
        if N == 0:
            return  # no candidate anywhere in the chunk: all background
        gather_index = index.clamp(max=A - 1)

        # ---- gather the candidates (n, N, ...)
        flat_index = (gather_index + torch.arange(n, device=device).unsqueeze(1) * A).view(-1)
        boxes = pred_boxes.reshape(n * A, 4).index_select(0, flat_index).view(n, N, 4)
        cls_c = cls_logits.reshape(n * A, C).index_select(0, flat_index).view(n, N, C)
        obj_c = obj_logits.reshape(n * A).index_select(0, flat_index).view(n, N)
        prior_ok = prior_ok.gather(2, gather_index.unsqueeze(1).expand(n, G, N))
        bad_gt = ~gt_valid.unsqueeze(2)  # (n, G, 1)
        bad_col = ~col_valid.unsqueeze(1)  # (n, 1, N)
        ious = self._pairwise_iou(gt_boxes, boxes).masked_fill_(bad_gt, 0.0).masked_fill_(bad_col, 0.0)

        # ---- the elementwise official cost terms: iou_weight * -log(IoU + 1e-8), the penalty
        # (+inf for invalid pairs; only valid pairs are ever looked up)
        iou_cost = torch.log(ious + 1e-8).mul_(-self.iou_weight)
        penalty = torch.where(prior_ok, iou_cost.new_zeros(()), iou_cost.new_full((), self._penalty))
        penalty.masked_fill_(bad_gt, float("inf")).masked_fill_(bad_col, float("inf"))
        del prior_ok
        cls_prob = cls_c.sigmoid_().mul_(obj_c.sigmoid().unsqueeze(-1)).sqrt_()  # (n, N, C)
        safe_classes = torch.where(gt_valid, gt_classes, torch.zeros_like(gt_classes)).clamp(0, C - 1)

        def total(cls_cost: Tensor, iou_c: Tensor, pen: Tensor) -> Tensor:
            # cls_weight * cls + iou term + penalty: the official operations, in order
            if self.cls_weight != 1.0:
                cls_cost = cls_cost * self.cls_weight
            return (cls_cost + iou_c).add_(pen)

        # ---- cost bounds of every pair (invalid pairs: +inf through the penalty)
        est, half = self._class_cost_bounds(cls_prob, safe_classes)
        cls_lo, cls_hi = est - half, est.add_(half)
        del half, est
        if self.cls_weight < 0:
            cls_lo, cls_hi = cls_hi, cls_lo
        cost_lo = total(cls_lo, iou_cost, penalty)
        del cls_lo
        cost_hi = total(cls_hi, iou_cost, penalty)
        del cls_hi

        # ---- dynamic k per gt (n, G): int(sum of the top-k IoUs over the image's candidates)
        topk_n = min(self.candidate_topk, N)
        dynamic_k = ious.topk(topk_n, dim=2).values.sum(dim=2).int().clamp(min=1).long()
        num_candidates = col_valid.sum(dim=1, keepdim=True)  # (n, 1)
        # The official k never exceeds the candidate count nor candidate_topk (IoU <= 1); the
        # clamps only guard against IoUs a rounding error above 1.
        dynamic_k = torch.minimum(dynamic_k, num_candidates).clamp(max=topk_n)
        dynamic_k = torch.where(gt_valid, dynamic_k, torch.zeros_like(dynamic_k))

        # ---- pairs whose exact cost can matter
        # (a) the k lowest of a gt: the k-th lowest upper bound is >= the exact k-th lowest
        #     cost, so only pairs with a lower bound at or below it can be taken (ties included);
        kth_hi = cost_hi.topk(topk_n, dim=2, largest=False, sorted=True).values.gather(
            2, (dynamic_k - 1).clamp(min=0).unsqueeze(2)
        )
        kth_hi.masked_fill_((dynamic_k == 0).unsqueeze(2), float("-inf"))  # padding gts
        need = cost_lo <= kth_hi  # invalid pairs have cost_lo = +inf
        pair = torch.nonzero(need.view(-1)).squeeze(1)  # flat (image, gt, column), ascending
        del need
        # (b) a prediction that may be taken by several gts goes to the gt of lowest cost over
        #     all gts of the image: its pairs with a lower bound at or below the column's lowest
        #     upper bound.
        # (torch.unique, not bincount: deterministic on CUDA)
        cols, counts = torch.unique(pair // (G * N) * N + pair % N, return_counts=True)
        contested = cols[counts >= 2]  # flat (image, column)
        if contested.numel():
            mb, mn = contested // N, contested % N
            col_hi = cost_hi[mb, :, mn].min(dim=1, keepdim=True).values  # (M, 1)
            mi, mg = torch.nonzero(cost_lo[mb, :, mn] <= col_hi, as_tuple=True)
            pair = torch.unique(torch.cat((pair, (mb[mi] * G + mg) * N + mn[mi])))
        del cost_lo, cost_hi
        pb, pg, pn = pair // (G * N), pair // N % G, pair % N  # by (image, gt), then column

        # ---- the official cost of those pairs
        cost = total(
            self._exact_class_cost(cls_prob, pb, pn, safe_classes[pb, pg]),
            iou_cost[pb, pg, pn],
            penalty[pb, pg, pn],
        )
        del cls_prob, iou_cost, penalty

        # ---- k lowest costs per gt, ties -> lower anchor index: order the pairs by
        # (image, gt, cost, column) with two stable sorts, keep the first k of every gt
        row = pb * G + pg
        order = torch.sort(cost, stable=True).indices
        order = order[torch.sort(row[order], stable=True).indices]
        row_sorted = row[order]
        rank = torch.arange(row.numel(), device=device) - torch.searchsorted(row_sorted, row_sorted)
        taken = order[rank < dynamic_k.view(-1)[row_sorted]]

        # ---- one gt per prediction: lowest cost among all gts of the image
        col = pb * N + pn  # (image, column) of every pair
        col_taken = col[taken]
        cols, counts = torch.unique(col_taken, return_counts=True)
        num_matches = torch.zeros(n * N, dtype=torch.int64, device=device)
        num_matches[cols] = counts
        assigned = torch.zeros(n * N, dtype=torch.int64, device=device)
        assigned[col_taken] = pg[taken]
        contested = num_matches[col] > 1  # pairs in columns taken more than once
        if bool(contested.any()):
            c_col, c_cost, c_gt = col[contested], cost[contested], pg[contested]
            best = torch.full((n * N,), float("inf"), device=device)
            best = best.scatter_reduce(0, c_col, c_cost, "amin")
            at_best = c_cost == best[c_col]  # ties -> lowest gt index, like torch.min
            first = torch.full((n * N,), G, dtype=torch.int64, device=device)
            first = first.scatter_reduce(0, c_col[at_best], c_gt[at_best], "amin")
            assigned = torch.where(num_matches > 1, first, assigned)

        # ---- write back to (n, A)
        fb, fn = torch.nonzero((num_matches > 0).view(n, N), as_tuple=True)
        fgt = assigned.view(n, N)[fb, fn]
        anchors = index[fb, fn]
        out_fg[fb, anchors] = True
        out_gt[fb, anchors] = fgt
        out_iou[fb, anchors] = ious[fb, fgt, fn]
