"""
SimOTA step 2: the cost of every (ground truth, candidate) pair of a chunk of images.

The official cost of a pair is ``cls_weight * BCE(sqrt(sigmoid(cls) * sigmoid(obj)),
onehot(class)).sum(-1) + iou_weight * -log(IoU + 1e-8) + penalty``; the official code
materialises the ``(G, N, C)`` BCE tensor, by far the most expensive step. Its value depends
on a ground truth only through its class, so here every pair first gets a cheap estimate from
per-candidate tables (:func:`class_cost_bounds`, ``O(N * C + G * N)``) with a rigorous bound
on how far the official float32 value can be from it. Only the pairs whose cost interval can
matter (see :mod:`.dynamic_k`) get the exact official value (:func:`exact_class_cost`): the
same elementwise BCE kernel on the same inputs, summed over a contiguous row of ``C`` classes
like the official ``.sum(-1)``. The IoU and geometry terms are the official elementwise
float32 values.
"""

from dataclasses import dataclass
from typing import Tuple

import torch
from torch import Tensor
from torch.nn import functional as F

from ..box_ops import pairwise_box_iou

__all__ = ["PairCosts", "candidate_ious", "class_cost_bounds", "exact_class_cost", "pair_costs"]

_BCE_LOG_CAP = 100.0  # torch's binary_cross_entropy clamps its logarithms at -100


def candidate_ious(gt_boxes: Tensor, boxes: Tensor, gt_valid: Tensor, col_valid: Tensor) -> Tensor:
    """
    (n, G, N) float32 IoU of every (gt, candidate) pair, with the official operations; 0 for
    padding ground truths and padding columns.

    Args:
        gt_boxes: (n, G, 4) XYXY; boxes: (n, N, 4) XYXY candidate boxes.
        gt_valid: (n, G) bool; col_valid: (n, N) bool.
    """
    ious = pairwise_box_iou(gt_boxes, boxes)
    return ious.masked_fill_(~gt_valid.unsqueeze(2), 0.0).masked_fill_(~col_valid.unsqueeze(1), 0.0)


def class_cost_bounds(cls_prob: Tensor, gt_classes: Tensor) -> Tuple[Tensor, Tensor]:
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


def exact_class_cost(
    cls_prob: Tensor, images: Tensor, columns: Tensor, classes: Tensor, max_block_elements: int
) -> Tensor:
    """
    The official classification cost of the pairs ``(image images[i], candidate columns[i])``
    with ground-truth class ``classes[i]``: the same elementwise BCE on the same float32
    inputs, summed over a contiguous row of ``C`` classes like the official ``.sum(-1)``.

    Args:
        cls_prob: (n, N, C) ``sqrt(sigmoid(cls) * sigmoid(obj))``.
        images, columns, classes: (P,) int64 pair coordinates and gt classes.
        max_block_elements: memory bound; computed in blocks of ``max_block_elements / C`` pairs.

    Returns:
        (P,) float32 costs.
    """
    C = cls_prob.shape[2]
    out = cls_prob.new_empty(images.shape)
    block = max(1, max_block_elements // C)
    for s in range(0, images.numel(), block):
        e = min(images.numel(), s + block)
        rows = cls_prob[images[s:e], columns[s:e]]  # (p, C)
        target = F.one_hot(classes[s:e], C).to(rows.dtype)
        out[s:e] = F.binary_cross_entropy(rows, target, reduction="none").sum(dim=-1)
    return out


@dataclass
class PairCosts:
    """
    The terms of the official cost of every (gt, candidate) pair of a chunk (``n`` images,
    ``G`` ground truths, ``N`` candidate columns, ``C`` classes).

    Attributes:
        iou_cost: (n, G, N) ``iou_weight * -log(IoU + 1e-8)``.
        penalty: (n, G, N) geometry penalty (0 or the rule's), +inf for padding pairs (only
            valid pairs are ever looked up).
        cls_prob: (n, N, C) ``sqrt(sigmoid(cls) * sigmoid(obj))``.
        gt_classes: (n, G) ground-truth classes, padding clamped into ``[0, C)``.
        cls_weight: weight of the classification cost.
    """

    iou_cost: Tensor
    penalty: Tensor
    cls_prob: Tensor
    gt_classes: Tensor
    cls_weight: float

    def total(self, cls_cost: Tensor, iou_cost: Tensor, penalty: Tensor) -> Tensor:
        """``cls_weight * cls_cost + iou_cost + penalty``: the official operations, in order."""
        if self.cls_weight != 1.0:
            cls_cost = cls_cost * self.cls_weight
        return (cls_cost + iou_cost).add_(penalty)

    def bounds(self) -> Tuple[Tensor, Tensor]:
        """(n, G, N) lower and upper bounds of the official cost of every pair."""
        est, half = class_cost_bounds(self.cls_prob, self.gt_classes)
        cls_lo, cls_hi = est - half, est.add_(half)
        del half, est
        if self.cls_weight < 0:
            cls_lo, cls_hi = cls_hi, cls_lo
        cost_lo = self.total(cls_lo, self.iou_cost, self.penalty)
        del cls_lo
        return cost_lo, self.total(cls_hi, self.iou_cost, self.penalty)

    def estimate(self) -> Tensor:
        """
        (n, G, N) the cost of every pair with the classification term estimated by
        :func:`class_cost_bounds` (within its half-width of the official float32 value):
        enough where no float32 parity is at stake (the one-to-one assignment).
        """
        est, _ = class_cost_bounds(self.cls_prob, self.gt_classes)
        return self.total(est, self.iou_cost, self.penalty)

    def exact(self, images: Tensor, gts: Tensor, columns: Tensor, max_block_elements: int) -> Tensor:
        """(P,) official cost of the pairs ``(images[i], gts[i], columns[i])``."""
        cls_cost = exact_class_cost(
            self.cls_prob, images, columns, self.gt_classes[images, gts], max_block_elements
        )
        return self.total(cls_cost, self.iou_cost[images, gts, columns], self.penalty[images, gts, columns])


def pair_costs(
    ious: Tensor,
    prior_ok: Tensor,
    cls_logits: Tensor,
    obj_logits: Tensor,
    gt_classes: Tensor,
    gt_valid: Tensor,
    col_valid: Tensor,
    *,
    cls_weight: float,
    iou_weight: float,
    penalty: float,
) -> PairCosts:
    """
    The :class:`PairCosts` of a chunk.

    Args:
        ious: (n, G, N) from :func:`candidate_ious`.
        prior_ok: (n, G, N) bool, pairs that satisfy the geometry prior.
        cls_logits: (n, N, C) class logits of the candidates (overwritten: the probabilities
            are computed in place).
        obj_logits: (n, N) objectness logits of the candidates.
        gt_classes: (n, G) int64; gt_valid: (n, G) bool; col_valid: (n, N) bool.
        cls_weight, iou_weight: weights of the classification and IoU costs.
        penalty: cost added to the pairs that fail the geometry prior.
    """
    C = cls_logits.shape[2]
    iou_cost = torch.log(ious + 1e-8).mul_(-iou_weight)
    pen = torch.where(prior_ok, iou_cost.new_zeros(()), iou_cost.new_full((), penalty))
    pen.masked_fill_(~gt_valid.unsqueeze(2), float("inf")).masked_fill_(~col_valid.unsqueeze(1), float("inf"))
    cls_prob = cls_logits.sigmoid_().mul_(obj_logits.sigmoid().unsqueeze(-1)).sqrt_()
    safe_classes = torch.where(gt_valid, gt_classes, torch.zeros_like(gt_classes)).clamp(0, C - 1)
    return PairCosts(iou_cost, pen, cls_prob, safe_classes, cls_weight)
