"""
Collectives of the training recipe on top of :mod:`detectron2.utils.comm`: small integer
broadcasts and in-place averages, on any backend (gloo on the CPU, NCCL on CUDA) and a no-op
in a single process.
"""
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.distributed as dist

from detectron2.utils import comm

__all__ = ["get_world_size", "collective_device", "broadcast_ints_from_main", "all_reduce_mean_"]


def get_world_size(group: Optional[Any] = None) -> int:
    """Number of ranks in ``group`` (``None``: the default group); 1 when not distributed."""
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group) if group is not None else comm.get_world_size()


def collective_device(group: Optional[Any] = None) -> torch.device:
    """Device on which tensors must live for collectives of ``group`` (CUDA for NCCL).

    Args:
        group: process group; ``None`` is the default (global) group. The process group must
            be initialised.
    """
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_ints_from_main(values: Sequence[int], group: Optional[Any] = None) -> List[int]:
    """Broadcast a short list of integers from global rank 0 to all ranks of ``group``.

    Must be called by every rank of ``group`` with a list of the same length (the values of
    ranks other than 0 are ignored). A no-op when not running distributed.

    Args:
        values: the integers to send (rank 0) or placeholders of the same length (others).
        group: process group; ``None`` is the default (global) group.

    Returns:
        Rank 0's values, on every rank.
    """
    values = [int(v) for v in values]
    if get_world_size(group) == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.int64, device=collective_device(group))
    dist.broadcast(tensor, src=0, group=group)
    return [int(v) for v in tensor.tolist()]


@torch.no_grad()
def all_reduce_mean_(tensors: Sequence[torch.Tensor], group: Optional[Any] = None) -> None:
    """Replace every tensor by its average over the ranks of ``group`` (in place).

    Must be called by every rank of ``group`` with tensors of the same shapes and dtypes, in
    the same order. Tensors are reduced in one flat buffer per dtype. A no-op in a single
    process.

    Args:
        tensors: floating-point tensors, on any device.
        group: process group; ``None`` is the default (global) group.

    Raises:
        TypeError: a tensor is not floating point.
    """
    world_size = get_world_size(group)
    if world_size == 1 or not tensors:
        return
    device = collective_device(group)
    buckets: Dict[torch.dtype, List[torch.Tensor]] = {}
    for t in tensors:
        if not t.dtype.is_floating_point:
            raise TypeError(f"only floating point tensors can be averaged, got {t.dtype}")
        buckets.setdefault(t.dtype, []).append(t)
    for dtype, bucket in buckets.items():
        flat = torch.cat([t.detach().reshape(-1).to(device) for t in bucket])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
        flat /= world_size
        offset = 0
        for t in bucket:
            n = t.numel()
            t.copy_(flat[offset : offset + n].view_as(t))
            offset += n
