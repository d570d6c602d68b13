"""
YOLOX post-processing, written once for :meth:`YOLOX.forward_inference` and the exported
``"nms"`` graphs (:mod:`yolox_d2.export`): ``score = objectness x best class probability``,
score threshold, class-aware (or class-agnostic) NMS per image, the best ``max_detections``
per image, by image and by decreasing score.

Only the NMS operator differs between the two: an :data:`NmsFunction` argument. The eager
model uses :func:`batched_nms_per_image` (Detectron2 / torchvision ``batched_nms``); the export
passes traceable ones (exact per-group NMS for TorchScript, ONNX ``NonMaxSuppression``);
end-to-end (NMS-free) models pass :func:`no_nms`, traceable too. Every
other step is made of operations that trace and export to ONNX with dynamic shapes.
"""

from typing import Callable, List, Sequence, Tuple

import torch
from torch import Tensor

from detectron2.layers import batched_nms
from detectron2.structures import Boxes, Instances

__all__ = [
    "NmsFunction",
    "batched_nms_per_image",
    "detection_scores",
    "detections_table",
    "detections_to_instances",
    "no_nms",
    "select_detections",
    "stable_argsort",
]

#: ``nms(boxes, scores, groups, candidate, num_groups, iou_threshold) -> (batch, anchor)``:
#: NMS within every (image, group) among the candidates. ``boxes`` (N, A, 4) XYXY, ``scores``
#: (N, A), ``groups`` (N, A) int64 in ``[0, num_groups)``, ``candidate`` (N, A) bool; returns
#: the image and anchor indices (int64) of the kept candidates. Detections of equal score in
#: an image keep the order the operator returns them in (the export's operators: anchor order).
NmsFunction = Callable[[Tensor, Tensor, Tensor, Tensor, int, float], Tuple[Tensor, Tensor]]


def detection_scores(obj_prob: Tensor, cls_prob: Tensor) -> Tuple[Tensor, Tensor]:
    """
    Args:
        obj_prob: (N, A) objectness probabilities.
        cls_prob: (N, A, C) class probabilities.

    Returns:
        ``(scores, classes)``: (N, A) ``objectness x best class probability`` and (N, A)
        int64 best class.
    """
    class_probs, classes = cls_prob.max(dim=-1)
    return obj_prob * class_probs, classes


def stable_argsort(values: Tensor, descending: bool = False) -> Tensor:
    """Stable argsort; exported as ONNX TopK, which the ONNX spec makes stable (lower index first)."""
    if torch.onnx.is_in_onnx_export():
        return torch.argsort(values, descending=descending)
    return torch.sort(values, descending=descending, stable=True)[1]


def batched_nms_per_image(
    boxes: Tensor, scores: Tensor, groups: Tensor, candidate: Tensor, num_groups: int, iou_threshold: float
) -> Tuple[Tensor, Tensor]:
    """
    The eager :data:`NmsFunction`: Detectron2's ``batched_nms`` image by image (torchvision's
    order: by decreasing score; among equal scores, anchor order for up to 1000 candidates).
    """
    batches, anchors = [], []
    for i in range(boxes.shape[0]):
        anchor = torch.nonzero(candidate[i]).squeeze(1)
        kept = anchor[batched_nms(boxes[i][anchor], scores[i][anchor], groups[i][anchor], iou_threshold)]
        batches.append(torch.full_like(kept, i))
        anchors.append(kept)
    if not anchors:
        empty = torch.zeros((0,), dtype=torch.int64, device=boxes.device)
        return empty, empty
    return torch.cat(batches), torch.cat(anchors)


def no_nms(
    boxes: Tensor, scores: Tensor, groups: Tensor, candidate: Tensor, num_groups: int, iou_threshold: float
) -> Tuple[Tensor, Tensor]:
    """The :data:`NmsFunction` of NMS-free detectors: every candidate is kept, in anchor order."""
    batch, anchor = torch.where(candidate)
    return batch, anchor


def select_detections(
    boxes: Tensor,
    scores: Tensor,
    classes: Tensor,
    *,
    num_classes: int,
    score_thresh: float,
    nms_thresh: float,
    max_detections: int,
    class_agnostic: bool = False,
    nms: NmsFunction = batched_nms_per_image,
) -> Tuple[Tensor, Tensor]:
    """
    Score threshold, per-image (per-class) NMS and a per-image cap, for a whole batch.

    Args:
        boxes: (N, A, 4) XYXY boxes.
        scores: (N, A) detection scores (see :func:`detection_scores`).
        classes: (N, A) int64 best class of each anchor, in ``[0, num_classes)``.
        num_classes: number of classes C.
        score_thresh: keep anchors with ``score >= score_thresh``.
        nms_thresh: IoU above which the lower-scored box of a class (of any class when
            ``class_agnostic``) is suppressed.
        max_detections: keep at most this many detections per image (<= 0: no cap).
        class_agnostic: NMS across classes.
        nms: the NMS operator (see :data:`NmsFunction`).

    Returns:
        ``(batch, anchor)``: int64 image and anchor index of every detection, grouped by
        ascending image, by decreasing score within an image (ties: in ``nms``'s order).
    """
    candidate = scores >= score_thresh
    groups = torch.zeros_like(classes) if class_agnostic else classes
    batch, anchor = nms(boxes, scores, groups, candidate, 1 if class_agnostic else num_classes, float(nms_thresh))
    order = stable_argsort(scores[batch, anchor], descending=True)
    batch, anchor = batch[order], anchor[order]
    order = stable_argsort(batch)
    batch, anchor = batch[order], anchor[order]
    if max_detections > 0:
        # rank of each detection within its image (rows are grouped by image)
        same_image = batch.unsqueeze(1) == torch.arange(boxes.shape[0], device=boxes.device).unsqueeze(0)
        rank = (same_image.to(torch.int64).cumsum(0) * same_image.to(torch.int64)).sum(1) - 1
        keep = rank < max_detections
        batch, anchor = batch[keep], anchor[keep]
    return batch, anchor


def detections_table(boxes: Tensor, scores: Tensor, classes: Tensor, batch: Tensor, anchor: Tensor) -> Tensor:
    """
    The detections ``(batch, anchor)`` of :func:`select_detections` as one (K, 7) tensor of
    ``boxes``' dtype, rows ``[batch_index, x1, y1, x2, y2, score, class]``.
    """
    return torch.cat(
        (
            batch.to(boxes.dtype).unsqueeze(1),
            boxes[batch, anchor],
            scores[batch, anchor].unsqueeze(1),
            classes[batch, anchor].to(boxes.dtype).unsqueeze(1),
        ),
        dim=1,
    )


def detections_to_instances(
    image_sizes: Sequence[Tuple[int, int]],
    boxes: Tensor,
    scores: Tensor,
    classes: Tensor,
    batch: Tensor,
    anchor: Tensor,
) -> List[Instances]:
    """
    The detections ``(batch, anchor)`` of :func:`select_detections` as one :class:`Instances`
    per image (``pred_boxes``, ``scores``, ``pred_classes``), in their order.

    Args:
        image_sizes: ``(h, w)`` of every image of the batch.
        boxes, scores, classes: as given to :func:`select_detections`.
        batch, anchor: its output.
    """
    results = []
    for i, image_size in enumerate(image_sizes):
        a = anchor[batch == i]
        results.append(
            Instances(image_size, pred_boxes=Boxes(boxes[i][a]), scores=scores[i][a], pred_classes=classes[i][a])
        )
    return results
