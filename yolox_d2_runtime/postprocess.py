"""
Detections from the outputs of an exported YOLOX graph, in numpy: the rule of
``yolox_d2``'s ``YOLOX.forward_inference`` followed by Detectron2's ``detector_postprocess``.

For a ``"decoded"`` graph (N, A, 5 + C) ``[box, objectness, class probabilities]``:
``score = objectness x best class probability``, the anchor keeps that best class, anchors
with ``score >= score_thresh`` are candidates, NMS per class (a box is dropped when its IoU with
a better-scored box of its class is above ``nms_thresh``; across classes when
``class_agnostic``), the ``max_detections`` best per image, best score first. Then boxes go to
original-image pixels and are clipped to the image; boxes left empty are dropped.
"""

from dataclasses import dataclass
from typing import List, Sequence

import numpy as np

from .preprocess import Letterbox

__all__ = ["BOX_FORMATS", "Detections", "decoded_to_detections", "nms", "nms_rows_to_detections"]

BOX_FORMATS = ("xyxy", "cxcywh")


@dataclass
class Detections:
    """
    Detections of one image, best score first, in original-image pixels.

    Attributes:
        boxes: float32 (K, 4) XYXY.
        scores: float32 (K,) ``objectness x class probability``.
        classes: int64 (K,) class indices.
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def to_list(self) -> List[dict]:
        """JSON-ready ``[{"box": [x1, y1, x2, y2], "score": s, "class": c}, ...]``."""
        return [
            {"box": [float(v) for v in box], "score": float(score), "class": int(cls)}
            for box, score, cls in zip(self.boxes, self.scores, self.classes)
        ]


def _iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0)


def nms(boxes: np.ndarray, scores: np.ndarray, groups: np.ndarray, iou_thresh: float) -> np.ndarray:
    """
    Greedy NMS within each group (as torchvision's ``batched_nms``): in decreasing score order,
    a box is kept unless its IoU with a kept box of its group is above ``iou_thresh``.

    Args:
        boxes: (K, 4) XYXY.
        scores: (K,) scores.
        groups: (K,) integer group of each box (the class, or all zeros).
        iou_thresh: the suppression IoU.

    Returns:
        int64 indices of the kept boxes, by decreasing score.
    """
    order = np.argsort(-scores, kind="stable")
    keep = np.zeros(len(scores), dtype=bool)
    boxes = boxes.astype(np.float32, copy=False)
    for group in np.unique(groups):
        members = order[groups[order] == group]
        while len(members):
            best = members[0]
            keep[best] = True
            rest = members[1:]
            members = rest[_iou_one_to_many(boxes[best], boxes[rest]) <= iou_thresh]
    return order[keep[order]]


def _finish(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, letterbox: Letterbox) -> Detections:
    boxes = letterbox.to_image(boxes)
    nonempty = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return Detections(
        boxes=boxes[nonempty],
        scores=scores[nonempty].astype(np.float32),
        classes=classes[nonempty].astype(np.int64),
    )


def decoded_to_detections(
    predictions: np.ndarray,
    letterboxes: Sequence[Letterbox],
    *,
    score_thresh: float,
    nms_thresh: float,
    max_detections: int,
    class_agnostic: bool = False,
    box_format: str = "xyxy",
) -> List[Detections]:
    """
    Detections (see the module docstring) from the output of a ``"decoded"`` graph.

    Args:
        predictions: (N, A, 5 + C) ``[box, objectness, class probabilities]`` in canvas pixels.
        letterboxes: one :class:`Letterbox` per image of the batch.
        score_thresh: keep ``score >= score_thresh``.
        nms_thresh: NMS IoU.
        max_detections: at most this many per image (<= 0: no cap).
        class_agnostic: NMS across classes.
        box_format: ``"xyxy"`` or ``"cxcywh"``, the graph's box format.
    """
    if box_format not in BOX_FORMATS:
        raise ValueError(f"box_format must be one of {list(BOX_FORMATS)}, got {box_format!r}")
    predictions = np.asarray(predictions)
    if predictions.ndim != 3 or predictions.shape[-1] < 6:
        raise ValueError(f"Expected decoded predictions (N, A, 5 + C), got shape {predictions.shape}")
    if len(letterboxes) != len(predictions):
        raise ValueError(f"{len(predictions)} images of predictions but {len(letterboxes)} letterboxes")
    results = []
    for pred, letterbox in zip(predictions, letterboxes):
        class_probs = pred[:, 5:]
        classes = np.argmax(class_probs, axis=1)
        scores = pred[:, 4] * class_probs[np.arange(len(pred)), classes]
        candidate = scores >= score_thresh
        boxes, scores, classes = pred[candidate, :4], scores[candidate], classes[candidate]
        if box_format == "cxcywh":
            boxes = np.concatenate((boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2), axis=1)
        kept = nms(boxes, scores, np.zeros_like(classes) if class_agnostic else classes, nms_thresh)
        if max_detections > 0:
            kept = kept[:max_detections]
        results.append(_finish(boxes[kept], scores[kept], classes[kept], letterbox))
    return results


def nms_rows_to_detections(
    rows: np.ndarray, letterboxes: Sequence[Letterbox], *, score_thresh: float = 0.0, max_detections: int = 0
) -> List[Detections]:
    """
    Detections from the output of an ``"nms"`` graph: (K, 7) rows ``[batch_index, x1, y1, x2,
    y2, score, class]`` in canvas pixels, already thresholded, NMS-ed and sorted by the graph.

    Args:
        rows: the graph's output.
        letterboxes: one :class:`Letterbox` per image of the batch.
        score_thresh: also drop rows under this score (the graph's own threshold is fixed at
            export; a lower value here changes nothing).
        max_detections: also keep at most this many per image (<= 0: the graph's cap only).
    """
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] != 7:
        raise ValueError(f"Expected (K, 7) detection rows, got shape {rows.shape}")
    results = []
    for i, letterbox in enumerate(letterboxes):
        r = rows[(rows[:, 0] == i) & (rows[:, 5] >= score_thresh)]
        if max_detections > 0:
            r = r[:max_detections]
        results.append(_finish(r[:, 1:5], r[:, 5], r[:, 6].astype(np.int64), letterbox))
    return results
