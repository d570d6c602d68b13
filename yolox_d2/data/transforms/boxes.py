"""
Box arithmetic shared by the augmentations: array normalisation, clipping to an image, the
YOLOX keep rule for transformed boxes and the final small-box filter.

Boxes are ``(N, 4)`` float arrays, absolute ``XYXY`` in continuous pixel coordinates (pixel
``i`` covers ``[i, i + 1)``); classes are ``(N,)`` integer arrays.
"""

from typing import Tuple

import numpy as np

__all__ = ["as_boxes", "as_classes", "clip_boxes", "box_candidates", "filter_small_boxes"]


def as_boxes(boxes) -> np.ndarray:
    """Return ``boxes`` as a float64 ``(N, 4)`` array (an empty input gives ``(0, 4)``)."""
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def as_classes(classes, n: int) -> np.ndarray:
    """
    Return ``classes`` as an int64 ``(N,)`` array, checking it matches ``n`` boxes.

    Args:
        classes: one class per box.
        n: the number of boxes.
    """
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    if len(classes) != n:
        raise ValueError(f"Got {n} boxes but {len(classes)} classes")
    return classes


def clip_boxes(boxes, width: float, height: float) -> np.ndarray:
    """
    Clip XYXY ``boxes`` to the image ``[0, width] x [0, height]`` (returns a new array).

    Args:
        boxes: ``(N, 4)`` boxes.
        width: image width.
        height: image height.
    """
    out = as_boxes(boxes).copy()
    out[:, 0::2] = out[:, 0::2].clip(0, width)
    out[:, 1::2] = out[:, 1::2].clip(0, height)
    return out


def box_candidates(
    boxes_before,
    boxes_after,
    wh_thr: float = 2.0,
    ar_thr: float = 20.0,
    area_thr: float = 0.2,
    eps: float = 1e-16,
) -> np.ndarray:
    """
    Which transformed boxes are still worth keeping as targets.

    Same rule as the official YOLOX (<= 0.2) ``box_candidates``: a box is kept when, *after*
    the transform (and clipping), both sides are longer than ``wh_thr`` pixels, its aspect
    ratio ``max(w / h, h / w)`` is below ``ar_thr``, and its area is more than ``area_thr``
    times the area it would have had without being cut (``boxes_before``, which the caller
    expresses at the output scale, e.g. the input box times the affine scale).

    Args:
        boxes_before: ``(N, 4)`` reference boxes (unclipped, at the output scale).
        boxes_after: ``(N, 4)`` transformed, clipped boxes.
        wh_thr: minimum side length in pixels (strict).
        ar_thr: maximum aspect ratio (strict).
        area_thr: minimum kept-area fraction (strict).
        eps: numerical guard.

    Returns:
        ``(N,)`` boolean mask.
    """
    b1, b2 = as_boxes(boxes_before), as_boxes(boxes_after)
    w1, h1 = b1[:, 2] - b1[:, 0], b1[:, 3] - b1[:, 1]
    w2, h2 = b2[:, 2] - b2[:, 0], b2[:, 3] - b2[:, 1]
    ar = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + eps) > area_thr) & (ar < ar_thr)


def filter_small_boxes(boxes, classes, min_size: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """
    Drop boxes whose shorter side is ``<= min_size`` pixels (the official ``TrainTransform``
    keeps ``min(w, h) > 1``).

    Args:
        boxes: ``(N, 4)`` XYXY boxes.
        classes: ``(N,)`` classes.
        min_size: side length threshold in pixels.

    Returns:
        ``(boxes, classes)`` restricted to the kept boxes.
    """
    boxes = as_boxes(boxes)
    classes = as_classes(classes, len(boxes))
    keep = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) > min_size
    return boxes[keep], classes[keep]
