"""The SimOTA matcher: candidates (:mod:`.candidates`) -> costs (:mod:`.costs`) -> dynamic-k
matching (:mod:`.dynamic_k`), for a padded batch of images, chunked to a memory bound."""

import logging
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor

from .candidates import CandidateColumns, candidate_geometry, gather_candidates, pack_candidates
from .costs import PairCosts, candidate_ious, pair_costs
from .dynamic_k import dynamic_k, k_lowest_pairs, one_gt_per_column, pairs_that_can_match

__all__ = [
    "SIMOTA_RULES",
    "SimOTAAssignment",
    "SimOTAMatcher",
    "SimOTARule",
    "assign_in_chunks",
    "check_assignment_inputs",
    "check_cost_arguments",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimOTARule:
    """
    The geometry of a SimOTA rule.

    Attributes:
        center_radius: default half-size of the centre region, in strides.
        union_with_boxes: candidates are "in box OR in centre region" (else centre region only).
        penalty: cost added to the (gt, prediction) pairs that fail the geometry prior.
    """

    center_radius: float
    union_with_boxes: bool
    penalty: float


#: The SimOTA rules by name (see :class:`SimOTAMatcher`).
SIMOTA_RULES = {
    # 2021 rule (released weights, mmdetection): radius 2.5 strides; candidates = in box OR in
    # centre region of any gt; +1e5 for (gt, prediction) pairs that are not in box AND in centre.
    "legacy": SimOTARule(2.5, True, 100000.0),
    # Official code after January 2023: radius 1.5; candidates = in centre region only;
    # +1e6 for pairs outside the centre region.
    "2023": SimOTARule(1.5, False, 1e6),
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


def check_cost_arguments(
    rule: str, center_radius: Optional[float], cls_weight: float, iou_weight: float, max_chunk_elements: int
) -> Tuple[SimOTARule, float]:
    """Check the arguments the matchers share; return the rule's geometry and the centre radius
    (the rule's default when ``center_radius`` is ``None``). Raises ``ValueError`` naming the
    bad argument."""
    if rule not in SIMOTA_RULES:
        raise ValueError(f"rule must be one of {sorted(SIMOTA_RULES)}, got {rule!r}")
    geometry = SIMOTA_RULES[rule]
    radius = geometry.center_radius if center_radius is None else center_radius
    if not (radius > 0 and math.isfinite(radius)):
        raise ValueError(f"center_radius must be a positive finite number, got {center_radius}")
    if not (math.isfinite(cls_weight) and math.isfinite(iou_weight)):
        raise ValueError(f"cls_weight and iou_weight must be finite, got {cls_weight}, {iou_weight}")
    if int(max_chunk_elements) < 1:
        raise ValueError(f"max_chunk_elements must be >= 1, got {max_chunk_elements}")
    return geometry, float(radius)


def check_assignment_inputs(
    pred_boxes: Tensor,
    cls_logits: Tensor,
    obj_logits: Tensor,
    anchor_points: Tensor,
    anchor_strides: Tensor,
    gt_boxes: Tensor,
    gt_classes: Tensor,
    gt_valid: Tensor,
) -> None:
    """Raise ``ValueError`` naming the argument when the matcher inputs do not have the
    shapes and dtypes of :meth:`SimOTAMatcher.__call__` (``B``, ``A``, ``G`` taken from
    ``cls_logits`` and ``gt_boxes``)."""
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


def assign_in_chunks(
    assign_chunk,
    max_chunk_elements: int,
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
    The batch driver of the matchers: allocate the (B, A) outputs, then call
    ``assign_chunk(pred_boxes, cls_logits, obj_logits, points, strides, gt_boxes, gt_classes,
    gt_valid, out_fg, out_gt, out_iou)`` on float32 slices of as many images at a time as keep
    ``images x G x A`` within ``max_chunk_elements`` (at least one), writing into views.
    The inputs are checked first (:func:`check_assignment_inputs`).

    Args:
        assign_chunk: the per-chunk assignment (a matcher's method).
        max_chunk_elements: the memory bound, in (gt, anchor) pairs per chunk.
        pred_boxes, cls_logits, obj_logits, anchor_points, anchor_strides, gt_boxes,
            gt_classes, gt_valid: as for :meth:`SimOTAMatcher.__call__`.
    """
    check_assignment_inputs(
        pred_boxes, cls_logits, obj_logits, anchor_points, anchor_strides, gt_boxes, gt_classes, gt_valid
    )
    B, A = cls_logits.shape[:2]
    G = gt_boxes.shape[1]
    device = pred_boxes.device
    fg_mask = torch.zeros((B, A), dtype=torch.bool, device=device)
    matched_gt = torch.zeros((B, A), dtype=torch.int64, device=device)
    matched_iou = torch.zeros((B, A), dtype=torch.float32, device=device)
    if B == 0 or A == 0 or G == 0:
        return SimOTAAssignment(fg_mask, matched_gt, matched_iou, 0)

    points = anchor_points.float()
    strides = anchor_strides.float()
    images_per_chunk = max(1, min(B, max_chunk_elements // (G * A)))
    if images_per_chunk < B:
        logger.debug(
            "SimOTA: %d images x %d gts x %d anchors exceeds %d elements; assigning %d image(s) at a time",
            B,
            G,
            A,
            max_chunk_elements,
            images_per_chunk,
        )
    for start in range(0, B, images_per_chunk):
        sl = slice(start, min(B, start + images_per_chunk))
        assign_chunk(
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
    return SimOTAAssignment(fg_mask, matched_gt, matched_iou, int(fg_mask.sum().item()))


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
    cost of the other pairs is only bounded (see :mod:`.costs`), which gives the same
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
        geometry, center_radius = check_cost_arguments(rule, center_radius, cls_weight, iou_weight, max_chunk_elements)
        if int(candidate_topk) < 1:
            raise ValueError(f"candidate_topk must be >= 1, got {candidate_topk}")
        self.rule = rule
        self.center_radius = center_radius
        self.cls_weight = float(cls_weight)
        self.iou_weight = float(iou_weight)
        self.candidate_topk = int(candidate_topk)
        self.max_chunk_elements = int(max_chunk_elements)
        self._union_candidates = geometry.union_with_boxes
        self._penalty = geometry.penalty

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
        return assign_in_chunks(
            self._assign_chunk,
            self.max_chunk_elements,
            pred_boxes,
            cls_logits,
            obj_logits,
            anchor_points,
            anchor_strides,
            gt_boxes,
            gt_classes,
            gt_valid,
        )

    # ------------------------------------------------------------------ internals
    def _geometry(
        self, points: Tensor, strides: Tensor, gt_boxes: Tensor, gt_valid: Tensor
    ) -> Tuple[Tensor, Tensor]:
        """Candidates (n, A) and geometry prior (n, G, A) of the rule (:func:`candidate_geometry`)."""
        return candidate_geometry(
            points,
            strides,
            gt_boxes,
            gt_valid,
            center_radius=self.center_radius,
            union_with_boxes=self._union_candidates,
        )

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
        candidates, prior_ok = self._geometry(points, strides, gt_boxes, gt_valid)
        columns = pack_candidates(candidates)
        if columns.num_columns == 0:
            return  # no candidate anywhere in the chunk: all background
        boxes, cls_c, obj_c, prior_ok = gather_candidates(columns, pred_boxes, cls_logits, obj_logits, prior_ok)
        ious = candidate_ious(gt_boxes, boxes, gt_valid, columns.valid)
        costs = pair_costs(
            ious,
            prior_ok,
            cls_c,
            obj_c,
            gt_classes,
            gt_valid,
            columns.valid,
            cls_weight=self.cls_weight,
            iou_weight=self.iou_weight,
            penalty=self._penalty,
        )
        del prior_ok, cls_c
        k = dynamic_k(ious, columns.valid, gt_valid, self.candidate_topk)
        images, gts, cols, cost = self._deciding_pairs(costs, k)
        del costs
        self._match(images, gts, cols, cost, k, columns, ious, out_fg, out_gt, out_iou)

    def _deciding_pairs(self, costs: PairCosts, k: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """
        The pairs that can decide the matching (by image, gt, then column) and their exact
        official costs: ``(images, gts, columns, cost)``, each (P,).
        """
        cost_lo, cost_hi = costs.bounds()
        pair = pairs_that_can_match(cost_lo, cost_hi, k, self.candidate_topk)
        del cost_lo, cost_hi
        G, N = costs.iou_cost.shape[1:]
        images, gts, cols = pair // (G * N), pair // N % G, pair % N
        return images, gts, cols, costs.exact(images, gts, cols, self.max_chunk_elements)

    @staticmethod
    def _match(
        images: Tensor,
        gts: Tensor,
        cols: Tensor,
        cost: Tensor,
        k: Tensor,
        columns: CandidateColumns,
        ious: Tensor,
        out_fg: Tensor,
        out_gt: Tensor,
        out_iou: Tensor,
    ) -> None:
        """Dynamic-k matching of the deciding pairs, written back to the (n, A) outputs."""
        n, G, N = ious.shape
        taken = k_lowest_pairs(cost, images * G + gts, k)
        num_matches, assigned = one_gt_per_column(images * N + cols, gts, cost, taken, n * N, G)
        fb, fn = torch.nonzero((num_matches > 0).view(n, N), as_tuple=True)
        fgt = assigned.view(n, N)[fb, fn]
        anchors = columns.index[fb, fn]
        out_fg[fb, anchors] = True
        out_gt[fb, anchors] = fgt
        out_iou[fb, anchors] = ious[fb, fgt, fn]
