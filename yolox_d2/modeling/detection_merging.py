"""
Merging the detections of several passes over one image (test-time augmentations, the tiles of
a large image) into one :class:`Instances`: class-aware NMS over their union
(:func:`nms_merge`), or weighted box fusion (:func:`weighted_box_fusion`, Solovyev et al.,
"Weighted boxes fusion: ensembling boxes from different object detection models", 2021),
where the boxes that overlap are averaged, weighted by score, instead of all but one being
dropped. :func:`merge_detections` picks one of the two by name.

Every function takes and returns ``Instances`` with ``pred_boxes`` (XYXY), ``scores`` and
``pred_classes`` in the coordinates of one image, the output of a Detectron2 detector.
"""

from typing import List, Sequence, Tuple

import torch
from torch import Tensor

from detectron2.layers import batched_nms
from detectron2.structures import Boxes, Instances, pairwise_iou

__all__ = ["MERGE_METHODS", "concat_detections", "nms_merge", "weighted_box_fusion", "merge_detections"]

#: The names :func:`merge_detections` accepts.
MERGE_METHODS = ("nms", "wbf")


def concat_detections(instances: Sequence[Instances], image_size: Tuple[int, int]) -> Instances:
    """
    The detections of several passes over one image as one ``Instances`` of ``image_size``.

    Args:
        instances: per pass, ``Instances`` with ``pred_boxes``, ``scores``, ``pred_classes`` in
            the image's coordinates (their own ``image_size`` is ignored).
        image_size: ``(h, w)`` of the image.
    """
    if not instances:
        raise ValueError("concat_detections() needs at least one Instances")
    return Instances(
        image_size,
        pred_boxes=Boxes(torch.cat([x.pred_boxes.tensor for x in instances])),
        scores=torch.cat([x.scores for x in instances]),
        pred_classes=torch.cat([x.pred_classes for x in instances]),
    )


def _sorted_and_capped(instances: Instances, max_detections: int) -> Instances:
    order = torch.sort(instances.scores, descending=True, stable=True)[1]
    if max_detections > 0:
        order = order[:max_detections]
    return instances[order]


def nms_merge(
    instances: Instances, nms_thresh: float, max_detections: int = 0, class_agnostic: bool = False
) -> Instances:
    """
    Class-aware (or class-agnostic) NMS over all detections, by decreasing score.

    Args:
        instances: the detections of all passes (see :func:`concat_detections`).
        nms_thresh: IoU above which the lower-scored of two boxes of a class is dropped.
        max_detections: keep the best this many (<= 0: all).
        class_agnostic: NMS across classes.
    """
    groups = torch.zeros_like(instances.pred_classes) if class_agnostic else instances.pred_classes
    keep = batched_nms(instances.pred_boxes.tensor, instances.scores, groups, float(nms_thresh))
    return _sorted_and_capped(instances[keep], max_detections)


def _fuse_class(boxes: Tensor, scores: Tensor, iou_thresh: float, num_passes: int) -> Tuple[Tensor, Tensor]:
    """WBF of the boxes of one class: fused (K, 4) boxes and (K,) scores."""
    order = torch.sort(scores, descending=True, stable=True)[1]
    boxes, scores = boxes[order], scores[order]
    fused = boxes.new_zeros((len(boxes), 4))  # score-weighted box of each cluster
    weight = scores.new_zeros(len(boxes))  # sum of the member scores
    count = scores.new_zeros(len(boxes))
    num_clusters = 0
    for box, score in zip(boxes, scores):
        if num_clusters:
            ious = pairwise_iou(Boxes(box[None]), Boxes(fused[:num_clusters] / weight[:num_clusters, None]))[0]
            best = int(ious.argmax())
            if float(ious[best]) > iou_thresh:
                fused[best] += score * box
                weight[best] += score
                count[best] += 1
                continue
        fused[num_clusters] = score * box
        weight[num_clusters] = score
        count[num_clusters] = 1
        num_clusters += 1
    fused, weight, count = fused[:num_clusters], weight[:num_clusters], count[:num_clusters]
    # mean member score, lowered for clusters found by fewer passes than there were
    fused_scores = weight / count * count.clamp(max=num_passes) / num_passes
    return fused / weight[:, None], fused_scores


def weighted_box_fusion(
    instances: Instances, iou_thresh: float, num_passes: int, max_detections: int = 0
) -> Instances:
    """
    Weighted box fusion, class by class: boxes are taken by decreasing score; a box joins the
    cluster whose fused box it overlaps with IoU > ``iou_thresh`` (else it starts one); a
    cluster's box is the score-weighted mean of its members and its score their mean score
    times ``min(members, num_passes) / num_passes`` (a box seen by one pass in four keeps a
    quarter of its score).

    Args:
        instances: the detections of all passes (see :func:`concat_detections`).
        iou_thresh: IoU above which a box joins a cluster (0.55 in the paper).
        num_passes: the number of passes (augmentations, models) the detections come from.
        max_detections: keep the best this many (<= 0: all).
    """
    if num_passes < 1:
        raise ValueError(f"weighted_box_fusion() needs num_passes >= 1, got {num_passes}")
    boxes, scores, classes = instances.pred_boxes.tensor, instances.scores, instances.pred_classes
    out_boxes: List[Tensor] = [boxes.new_zeros((0, 4))]
    out_scores: List[Tensor] = [scores.new_zeros((0,))]
    out_classes: List[Tensor] = [classes.new_zeros((0,))]
    for c in torch.unique(classes).tolist():
        mask = classes == c
        fused, fused_scores = _fuse_class(boxes[mask], scores[mask], float(iou_thresh), int(num_passes))
        out_boxes.append(fused)
        out_scores.append(fused_scores)
        out_classes.append(torch.full_like(fused_scores, c, dtype=classes.dtype))
    merged = Instances(
        instances.image_size,
        pred_boxes=Boxes(torch.cat(out_boxes)),
        scores=torch.cat(out_scores),
        pred_classes=torch.cat(out_classes),
    )
    return _sorted_and_capped(merged, max_detections)


def merge_detections(
    instances: Sequence[Instances],
    image_size: Tuple[int, int],
    method: str = "nms",
    iou_thresh: float = 0.65,
    max_detections: int = 0,
    class_agnostic: bool = False,
) -> Instances:
    """
    Merge the detections of several passes over one image.

    Args:
        instances: per pass, ``Instances`` in the image's coordinates.
        image_size: ``(h, w)`` of the image.
        method: ``"nms"`` (:func:`nms_merge`) or ``"wbf"`` (:func:`weighted_box_fusion`, with
            ``num_passes = len(instances)``).
        iou_thresh: the NMS threshold, or WBF's cluster threshold.
        max_detections: keep the best this many (<= 0: all).
        class_agnostic: with ``"nms"``, suppress across classes (WBF is always per class).
    """
    if method not in MERGE_METHODS:
        raise ValueError(f"Unknown merge method {method!r}; choose one of {MERGE_METHODS}")
    merged = concat_detections(instances, image_size)
    if method == "nms":
        return nms_merge(merged, iou_thresh, max_detections, class_agnostic)
    return weighted_box_fusion(merged, iou_thresh, len(instances), max_detections)
