"""
SimOTA step 3: dynamic-k matching. Every ground truth ``g`` takes its ``k_g`` lowest-cost
candidates, ``k_g = max(1, int(sum of its candidate_topk largest IoUs))``; a candidate taken
by several ground truths goes to the one of lowest cost.

The exact costs are only known for the pairs that can decide the matching
(:func:`pairs_that_can_match`, from the cost bounds of :mod:`.costs`); the matching itself
(:func:`k_lowest_pairs`, :func:`one_gt_per_column`) works on that sparse list of pairs.

Ties: the official code picks the k lowest-cost candidates with ``torch.topk``, whose choice
among *equal* costs is implementation defined (it differs between CPU and CUDA). Here, among
equal costs the candidate with the lower anchor index is taken, deterministically. Equal costs
are rare but not impossible (the ``1e5`` / ``1e6`` geometry penalty leaves a float32 resolution
of about 0.008 / 0.06 on the penalised costs).
"""

from typing import Tuple

import torch
from torch import Tensor

__all__ = ["dynamic_k", "k_lowest_pairs", "one_gt_per_column", "pairs_that_can_match"]


def dynamic_k(ious: Tensor, col_valid: Tensor, gt_valid: Tensor, candidate_topk: int) -> Tensor:
    """
    (n, G) int64 ``k`` of every ground truth: ``int(sum of the top-k IoUs over the image's
    candidates)``, at least 1, 0 for padding ground truths.

    Args:
        ious: (n, G, N) IoU of every (gt, candidate) pair (0 for padding).
        col_valid: (n, N) bool, real candidate columns; gt_valid: (n, G) bool.
        candidate_topk: number of largest IoUs summed (also the largest possible k).
    """
    topk_n = min(candidate_topk, ious.shape[2])
    k = ious.topk(topk_n, dim=2).values.sum(dim=2).int().clamp(min=1).long()
    num_candidates = col_valid.sum(dim=1, keepdim=True)  # (n, 1)
    # The official k never exceeds the candidate count nor candidate_topk (IoU <= 1); the
    # clamps only guard against IoUs a rounding error above 1.
    k = torch.minimum(k, num_candidates).clamp(max=topk_n)
    return torch.where(gt_valid, k, torch.zeros_like(k))


def pairs_that_can_match(cost_lo: Tensor, cost_hi: Tensor, k: Tensor, candidate_topk: int) -> Tensor:
    """
    The pairs whose exact cost can change the matching, as flat ``(image, gt, column)``
    indices into ``(n, G, N)``, ascending:

    (a) pairs that can be among the ``k`` lowest of their gt: the k-th lowest upper bound is
        >= the exact k-th lowest cost, so only pairs with a lower bound at or below it can be
        taken (ties included);
    (b) for a column that several gts may take (it goes to the gt of lowest cost over all gts
        of the image): its pairs with a lower bound at or below the column's lowest upper bound.

    Args:
        cost_lo, cost_hi: (n, G, N) bounds of the official costs (+inf for padding pairs).
        k: (n, G) from :func:`dynamic_k`.
        candidate_topk: as given to :func:`dynamic_k`.
    """
    n, G, N = cost_lo.shape
    kth_hi = cost_hi.topk(min(candidate_topk, N), dim=2, largest=False, sorted=True).values.gather(
        2, (k - 1).clamp(min=0).unsqueeze(2)
    )
    kth_hi.masked_fill_((k == 0).unsqueeze(2), float("-inf"))  # padding gts
    need = cost_lo <= kth_hi  # invalid pairs have cost_lo = +inf
    pair = torch.nonzero(need.view(-1)).squeeze(1)
    del need
    # (torch.unique, not bincount: deterministic on CUDA)
    cols, counts = torch.unique(pair // (G * N) * N + pair % N, return_counts=True)
    contested = cols[counts >= 2]  # flat (image, column)
    if contested.numel():
        mb, mn = contested // N, contested % N
        col_hi = cost_hi[mb, :, mn].min(dim=1, keepdim=True).values  # (M, 1)
        mi, mg = torch.nonzero(cost_lo[mb, :, mn] <= col_hi, as_tuple=True)
        pair = torch.unique(torch.cat((pair, (mb[mi] * G + mg) * N + mn[mi])))
    return pair


def k_lowest_pairs(cost: Tensor, rows: Tensor, k: Tensor) -> Tensor:
    """
    Indices of the pairs among the ``k`` lowest costs of their gt, ties -> lower column: the
    pairs ordered by (row, cost, column) with two stable sorts, the first ``k`` of every row.

    Args:
        cost: (P,) exact costs of the pairs, ordered by row then column.
        rows: (P,) flat ``image * G + gt`` of every pair.
        k: (n, G) from :func:`dynamic_k`.
    """
    order = torch.sort(cost, stable=True).indices
    order = order[torch.sort(rows[order], stable=True).indices]
    row_sorted = rows[order]
    rank = torch.arange(rows.numel(), device=cost.device) - torch.searchsorted(row_sorted, row_sorted)
    return order[rank < k.view(-1)[row_sorted]]


def one_gt_per_column(
    cols: Tensor, gts: Tensor, cost: Tensor, taken: Tensor, num_cols: int, num_gts: int
) -> Tuple[Tensor, Tensor]:
    """
    One gt per taken column: a column taken by several gts goes to the gt of lowest cost among
    all gts of the image (of its pairs), ties -> lowest gt index, like ``torch.min``.

    Args:
        cols: (P,) flat ``image * N + column`` of every pair; gts: (P,) gt of every pair.
        cost: (P,) exact costs; taken: indices of the pairs taken by :func:`k_lowest_pairs`.
        num_cols: ``n * N``; num_gts: ``G``.

    Returns:
        num_matches: (n * N,) int64, how many gts took each column (0: background).
        assigned: (n * N,) int64, the gt of each column with ``num_matches > 0``.
    """
    device = cost.device
    col_taken = cols[taken]
    taken_cols, counts = torch.unique(col_taken, return_counts=True)
    num_matches = torch.zeros(num_cols, dtype=torch.int64, device=device)
    num_matches[taken_cols] = counts
    assigned = torch.zeros(num_cols, dtype=torch.int64, device=device)
    assigned[col_taken] = gts[taken]
    contested = num_matches[cols] > 1  # pairs in columns taken more than once
    if bool(contested.any()):
        c_col, c_cost, c_gt = cols[contested], cost[contested], gts[contested]
        best = torch.full((num_cols,), float("inf"), device=device)
        best = best.scatter_reduce(0, c_col, c_cost, "amin")
        at_best = c_cost == best[c_col]
        first = torch.full((num_cols,), num_gts, dtype=torch.int64, device=device)
        first = first.scatter_reduce(0, c_col[at_best], c_gt[at_best], "amin")
        assigned = torch.where(num_matches > 1, first, assigned)
    return num_matches, assigned
