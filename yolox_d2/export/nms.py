"""
The ``"nms"`` output of the exported graphs: :mod:`yolox_d2.modeling.postprocessing`
with traceable NMS operators, the ONNX ``NonMaxSuppression`` while exporting to ONNX, else an
exact per-group NMS (scripted while tracing, so that a TorchScript graph keeps its loop).
"""

import functools
import warnings
from typing import Tuple

import torch
import torchvision  # noqa: F401  (registers torch.ops.torchvision.nms)
from torch import Tensor

from ..modeling.postprocessing import detections_table, select_detections, stable_argsort

__all__ = ["batched_detections", "exact_nms", "export_nms", "onnx_nms"]

# ONNX NonMaxSuppression keeps boxes whose score is strictly above its threshold; candidates
# get their score (>= 0) and non-candidates this value, so the threshold below separates them.
_NOT_A_CANDIDATE = -1.0
_ONNX_NMS_SCORE_THRESHOLD = -0.5


def _nms_per_group_impl(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """
    Exact NMS within each group (no coordinate offsets, so no float32 precision loss on large
    coordinates). Returns the kept indices (int64) in increasing order.
    """
    keep = torch.zeros_like(scores, dtype=torch.bool)
    for group in torch.unique(groups):
        members = torch.where(groups == group)[0]
        kept = torch.ops.torchvision.nms(boxes[members], scores[members], iou_threshold)
        keep[members[kept]] = True
    return torch.where(keep)[0]


@functools.lru_cache(maxsize=None)
def _scripted_nms_per_group():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)  # TorchScript deprecation
        return torch.jit.script(_nms_per_group_impl)


def _nms_per_group(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """:func:`_nms_per_group_impl`, scripted while tracing so the traced graph keeps the loop."""
    if not torch.jit.is_tracing():
        return _nms_per_group_impl(boxes, scores, groups, iou_threshold)
    return _scripted_nms_per_group()(boxes, scores, groups, iou_threshold)


class _OnnxNonMaxSuppression(torch.autograd.Function):
    """
    ONNX ``NonMaxSuppression`` with its native batch and class dimensions (used only while
    exporting to ONNX: the exporter replaces it with the operator via :meth:`symbolic`).

    Inputs: ``boxes`` (N, A, 4) XYXY, ``scores`` (N, C, A) where non-candidates hold
    ``_NOT_A_CANDIDATE``. Output: (M, 3) int64 ``[batch, class, anchor]``.
    """

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:  # noqa: D102
        batch, cls, anchor = torch.where(scores > _ONNX_NMS_SCORE_THRESHOLD)
        groups = batch * scores.shape[1] + cls
        kept = _nms_per_group(boxes[batch, anchor], scores[batch, cls, anchor], groups, iou_threshold)
        return torch.stack((batch[kept], cls[kept], anchor[kept]), dim=1)

    @staticmethod
    def symbolic(g, boxes, scores, iou_threshold: float):  # noqa: D102
        max_per_class = g.op("Constant", value_t=torch.tensor([2**31 - 1], dtype=torch.int64))
        iou = g.op("Constant", value_t=torch.tensor([iou_threshold], dtype=torch.float32))
        score = g.op("Constant", value_t=torch.tensor([_ONNX_NMS_SCORE_THRESHOLD], dtype=torch.float32))
        return g.op("NonMaxSuppression", boxes, scores, max_per_class, iou, score, center_point_box_i=0)


def exact_nms(
    boxes: Tensor, scores: Tensor, groups: Tensor, candidate: Tensor, num_groups: int, iou_threshold: float
) -> Tuple[Tensor, Tensor]:
    """
    :data:`~yolox_d2.modeling.postprocessing.NmsFunction`: exact NMS per (image, group),
    traceable; the kept ``(batch, anchor)`` in ascending order.
    """
    batch, anchor = torch.where(candidate)
    keys = batch * num_groups + groups[batch, anchor]
    kept = _nms_per_group(boxes[batch, anchor], scores[batch, anchor], keys, iou_threshold)
    return batch[kept], anchor[kept]


def onnx_nms(
    boxes: Tensor, scores: Tensor, groups: Tensor, candidate: Tensor, num_groups: int, iou_threshold: float
) -> Tuple[Tensor, Tensor]:
    """
    :data:`~yolox_d2.modeling.postprocessing.NmsFunction` exported as ONNX
    ``NonMaxSuppression``; the kept ``(batch, anchor)`` in ascending order.
    """
    one_hot = groups.unsqueeze(-1) == torch.arange(num_groups, device=groups.device)
    dense = torch.where(
        one_hot & candidate.unsqueeze(-1),
        scores.unsqueeze(-1),
        torch.full_like(scores.unsqueeze(-1), _NOT_A_CANDIDATE),
    )
    selected = _OnnxNonMaxSuppression.apply(boxes, dense.permute(0, 2, 1), float(iou_threshold))
    batch, anchor = selected[:, 0], selected[:, 2]
    order = stable_argsort(batch * scores.shape[1] + anchor)
    return batch[order], anchor[order]


def export_nms(
    boxes: Tensor, scores: Tensor, groups: Tensor, candidate: Tensor, num_groups: int, iou_threshold: float
) -> Tuple[Tensor, Tensor]:
    """:func:`onnx_nms` while exporting to ONNX, else :func:`exact_nms`."""
    nms = onnx_nms if torch.onnx.is_in_onnx_export() else exact_nms
    return nms(boxes, scores, groups, candidate, num_groups, iou_threshold)


def batched_detections(
    boxes: Tensor,
    scores: Tensor,
    classes: Tensor,
    *,
    num_classes: int,
    score_thresh: float,
    nms_thresh: float,
    max_detections: int,
    class_agnostic: bool = False,
) -> Tensor:
    """
    :func:`~yolox_d2.modeling.postprocessing.select_detections` with :func:`export_nms`, in
    operations that trace and export to ONNX with a dynamic batch size and number of anchors.

    Args:
        boxes: (N, A, 4) XYXY boxes.
        scores: (N, A) detection scores (``objectness x best class probability``).
        classes: (N, A) int64 best class of each anchor.
        num_classes: number of classes C (``classes < C``).
        score_thresh: keep anchors with ``score >= score_thresh``.
        nms_thresh: IoU above which the lower-scored box of a class (of any class when
            ``class_agnostic``) is suppressed.
        max_detections: keep at most this many detections per image (<= 0: no cap).
        class_agnostic: NMS across classes.

    Returns:
        (K, 7) float tensor ``[batch_index, x1, y1, x2, y2, score, class]``, grouped by
        ascending batch index, by decreasing score within an image.
    """
    batch, anchor = select_detections(
        boxes,
        scores,
        classes,
        num_classes=num_classes,
        score_thresh=score_thresh,
        nms_thresh=nms_thresh,
        max_detections=max_detections,
        class_agnostic=class_agnostic,
        nms=export_nms,
    )
    return detections_table(boxes, scores, classes, batch, anchor)
