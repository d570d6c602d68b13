"""
One-to-one label assignment under the SimOTA cost: the target of the positive sample selector
(PSS) of end-to-end YOLOX (:mod:`yolox_d2.modeling.pss`).

Every ground truth gets (at most) one positive: its candidate of lowest SimOTA cost
(:mod:`.candidates`, :mod:`.costs`: same geometry rule, same cost) under the scores it is
given; end-to-end YOLOX gives it the end-to-end score, objectness x pss in place of the
objectness (:mod:`yolox_d2.modeling.pss` says why).

Conflicts (two ground truths whose best candidate is the same prediction) are settled greedily,
in rounds: every unmatched ground truth proposes its lowest-cost free candidate; a candidate
proposed by several goes to the lowest cost (ties: lowest gt index, as
:func:`.dynamic_k.one_gt_per_column`); the others propose again among the candidates still
free. PSS (Zhou et al. 2021, arXiv 2101.11782) takes its one-to-one assignment from a
bipartite (Hungarian) matching; the greedy rounds give the same result whenever the best
candidates do not conflict (nearly always: an object's best candidate sits near its centre),
without a per-image solver. Ties between candidates: lowest anchor index.
"""

from typing import Optional

import torch
from torch import Tensor

from .candidates import candidate_geometry, gather_candidates, pack_candidates
from .costs import candidate_ious, pair_costs
from .dynamic_k import one_gt_per_column
from .matcher import SimOTAAssignment, assign_in_chunks, check_cost_arguments

__all__ = ["OneToOneMatcher"]


class OneToOneMatcher:
    """
    One positive per ground truth: its candidate of lowest SimOTA cost (see the module
    docstring). Same call as :class:`~yolox_d2.modeling.SimOTAMatcher`, and the same result
    type, :class:`~yolox_d2.modeling.SimOTAAssignment`, in which every positive has its own
    ground truth (``num_fg`` = number of ground truths with a candidate).

    The classification cost is the estimate of :meth:`PairCosts.estimate` (within float32
    rounding of the official value), computed for every (gt, candidate) pair. Computed without
    gradient, in float32.

    Args:
        rule: SimOTA geometry rule, ``"legacy"`` (2021) or ``"2023"``
            (:class:`~yolox_d2.modeling.SimOTAMatcher`); use the detector's own.
        center_radius: half-size of the centre region, in strides; ``None``: the rule's.
        cls_weight, iou_weight: weights of the classification and IoU costs (1.0 and 3.0).
        max_chunk_elements: memory bound: images are assigned in chunks such that
            ``images * G * A`` stays within it (the result does not depend on the chunking).
    """

    def __init__(
        self,
        *,
        rule: str = "legacy",
        center_radius: Optional[float] = None,
        cls_weight: float = 1.0,
        iou_weight: float = 3.0,
        max_chunk_elements: int = 2**27,
    ) -> None:
        self.geometry, self.center_radius = check_cost_arguments(
            rule, center_radius, cls_weight, iou_weight, max_chunk_elements
        )
        self.rule = rule
        self.cls_weight = float(cls_weight)
        self.iou_weight = float(iou_weight)
        self.max_chunk_elements = int(max_chunk_elements)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(rule={self.rule!r}, center_radius={self.center_radius}, "
            f"cls_weight={self.cls_weight}, iou_weight={self.iou_weight})"
        )

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
        Args: as :meth:`SimOTAMatcher.__call__` (``(B, A, ...)`` predictions, ``(A, 2)`` anchor
        centres and ``(A,)`` strides, ``(B, G, ...)`` padded ground truths and validity).

        Returns:
            SimOTAAssignment with one positive per matched ground truth.
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
        candidates, prior_ok = candidate_geometry(
            points,
            strides,
            gt_boxes,
            gt_valid,
            center_radius=self.center_radius,
            union_with_boxes=self.geometry.union_with_boxes,
        )
        columns = pack_candidates(candidates)
        if columns.num_columns == 0:
            return
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
            penalty=self.geometry.penalty,
        )
        # As in SimOTA, a gt may take any candidate of its image (the union of the gts'
        # candidate areas), pairs outside its geometry prior at the rule's penalty; +inf for
        # padding pairs.
        cost = costs.estimate()
        match = greedy_one_to_one(cost)  # (n, G) column or -1
        fb, fg = torch.nonzero(match >= 0, as_tuple=True)
        cols = match[fb, fg]
        anchors = columns.index[fb, cols]
        out_fg[fb, anchors] = True
        out_gt[fb, anchors] = fg
        out_iou[fb, anchors] = ious[fb, fg, cols]


def greedy_one_to_one(cost: Tensor) -> Tensor:
    """
    Greedy one-to-one matching of rows (ground truths) to columns (candidates).

    Args:
        cost: (n, G, N) pair costs, +inf for pairs that may not match.

    Returns:
        (n, G) int64: the column of every row, -1 for rows left unmatched (no finite cost to
        a free column). Rounds as in the module docstring; ties: lowest column, then lowest row.
    """
    n, G, N = cost.shape
    device = cost.device
    match = torch.full((n, G), -1, dtype=torch.int64, device=device)
    free = torch.ones((n, N), dtype=torch.bool, device=device)
    open_rows = torch.ones((n, G), dtype=torch.bool, device=device)
    inf = cost.new_full((), float("inf"))
    while True:
        available = open_rows.unsqueeze(2) & free.unsqueeze(1)
        best_cost, best_col = torch.where(available, cost, inf).min(dim=2)  # first minimum: lowest column
        images, rows = torch.nonzero(open_rows & torch.isfinite(best_cost), as_tuple=True)
        if images.numel() == 0:
            return match
        flat_cols = images * N + best_col[images, rows]
        _, assigned = one_gt_per_column(
            flat_cols, rows, best_cost[images, rows], torch.arange(images.numel(), device=device), n * N, G
        )
        won = assigned[flat_cols] == rows
        wi, wr, wc = images[won], rows[won], best_col[images[won], rows[won]]
        match[wi, wr] = wc
        free[wi, wc] = False
        open_rows[wi, wr] = False
