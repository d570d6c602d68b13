"""
Horizontal flip: of boxes, of an image with its boxes, and as a matrix (to fold the flip into
a warp).
"""

from typing import Tuple

import cv2
import numpy as np

from .boxes import as_boxes

__all__ = ["flip_boxes", "horizontal_flip", "flip_matrix"]


def flip_boxes(boxes, width: float) -> np.ndarray:
    """
    Mirror XYXY boxes left-right inside an image ``width`` wide: ``x1' = W - x2``,
    ``x2' = W - x1`` (returns a new float64 array).

    Args:
        boxes: ``(N, 4)`` XYXY boxes.
        width: image width.
    """
    boxes = as_boxes(boxes)
    flipped = boxes.copy()
    flipped[:, 0] = width - boxes[:, 2]
    flipped[:, 2] = width - boxes[:, 0]
    return flipped


def horizontal_flip(image: np.ndarray, boxes) -> Tuple[np.ndarray, np.ndarray]:
    """
    Mirror the image left-right (always; the caller draws the probability).

    Args:
        image: ``HxWxC`` image.
        boxes: ``(N, 4)`` XYXY boxes.

    Returns:
        ``(flipped_image, flipped_boxes)`` with ``x1' = W - x2`` and ``x2' = W - x1``.
    """
    W = image.shape[1]
    if image.dtype == np.uint8 and image.ndim in (2, 3) and (image.ndim == 2 or image.shape[2] <= 4):
        flipped = cv2.flip(image, 1)  # much faster than numpy on 3-byte pixels
        if flipped.ndim == 2 and image.ndim == 3:
            flipped = flipped[:, :, None]
    else:
        flipped = np.ascontiguousarray(image[:, ::-1])
    return flipped, flip_boxes(boxes, W)


def flip_matrix(width: float) -> np.ndarray:
    """
    ``3x3`` left-right mirror of an image ``width`` wide (continuous coordinates), to compose
    with other homogeneous affines.

    Args:
        width: image width.
    """
    return np.array([[-1.0, 0.0, float(width)], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
