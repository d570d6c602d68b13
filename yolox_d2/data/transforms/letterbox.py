"""
Sizes and the YOLOX letterbox: resize keeping the aspect ratio to fit a size, pad bottom /
right with 114, and the network-input layout (CHW) of the test-time letterbox.

Images are ``HxWxC`` uint8 arrays (BGR); sizes are ``(height, width)`` (an ``int`` means a
square size).
"""

from typing import Sequence, Tuple, Union

import cv2
import numpy as np

from .boxes import as_boxes

__all__ = [
    "YOLOX_PAD_VALUE",
    "SizeLike",
    "to_hw",
    "letterbox_shape",
    "letterbox_resize",
    "letterbox_chw",
    "pad_to_size",
    "letterbox",
]

#: Value YOLOX uses for every padded / empty pixel (all three channels).
YOLOX_PAD_VALUE = 114

SizeLike = Union[int, Sequence[int]]


def to_hw(size: SizeLike) -> Tuple[int, int]:
    """
    Normalise a size argument to ``(height, width)`` ints.

    Args:
        size: an ``int`` (square) or a 2-sequence ``(height, width)`` (lists, tuples and
            omegaconf ``ListConfig`` are accepted).
    """
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    size = tuple(size)
    if len(size) != 2:
        raise ValueError(f"Expected a size (height, width), got {size!r}")
    return int(size[0]), int(size[1])


def letterbox_shape(image_size: SizeLike, size: SizeLike) -> Tuple[int, int, float]:
    """
    Output size of :func:`letterbox_resize` without resizing anything.

    Args:
        image_size: ``(H, W)`` of the input image.
        size: target ``(height, width)`` or an int.

    Returns:
        ``(new_h, new_w, r)`` with ``r = min(h / H, w / W)``, ``new_h = max(int(H * r), 1)`` and
        ``new_w = max(int(W * r), 1)`` (the pixel scale is ``new_w / W`` by ``new_h / H``).
    """
    h, w = to_hw(size)
    H, W = to_hw(image_size)
    r = min(h / H, w / W)
    return max(int(H * r), 1), max(int(W * r), 1), r


def letterbox_resize(image: np.ndarray, size: SizeLike) -> Tuple[np.ndarray, float]:
    """
    Resize keeping the aspect ratio so the image fits inside ``size`` (no padding).

    With the input ``H x W`` and ``size = (h, w)``, ``r = min(h / H, w / W)`` and the output
    is ``int(H * r) x int(W * r)`` (``cv2.INTER_LINEAR``), exactly like the official YOLOX
    ``preproc``. The image is returned unchanged (not copied) when no resize is needed.

    Args:
        image: ``HxWxC`` uint8 image.
        size: target ``(height, width)`` or an int.

    Returns:
        ``(resized_image, r)``. Boxes follow with ``boxes * r``.
    """
    H, W = image.shape[:2]
    new_h, new_w, r = letterbox_shape((H, W), size)
    if (new_h, new_w) == (H, W):
        return image, r
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if resized.ndim == 2 and image.ndim == 3:  # cv2 drops a single channel axis
        resized = resized[:, :, None]
    return resized, r


def letterbox_chw(image: np.ndarray, size: SizeLike) -> Tuple[np.ndarray, float]:
    """
    :func:`letterbox_resize` (no padding) then ``HWC -> CHW``: the network input of one test
    image, as :class:`~yolox_d2.data.mappers.YOLOXTestMapper` gives it to the model (which
    pads bottom / right with 114 when batching).

    Args:
        image: ``HxWxC`` uint8 image (BGR).
        size: target ``(height, width)`` or an int.

    Returns:
        ``(chw, r)``: a C-contiguous ``(C, int(H * r), int(W * r))`` array of the image's
        dtype and the resize ratio ``r`` (a float; original pixel = input pixel / ``r``).
    """
    if image.ndim != 3:
        raise ValueError(f"letterbox_chw() needs an HxWxC image, got an array of shape {image.shape}")
    resized, r = letterbox_resize(image, size)
    return np.ascontiguousarray(resized.transpose(2, 0, 1)), float(r)


def pad_to_size(image: np.ndarray, size: SizeLike, fill: int = YOLOX_PAD_VALUE) -> np.ndarray:
    """
    Pad ``image`` at the bottom / right to exactly ``size`` with the constant ``fill``.

    Args:
        image: ``HxWxC`` uint8 image no larger than ``size``.
        size: output ``(height, width)`` or an int.
        fill: padding value for every channel (YOLOX uses 114).
    """
    h, w = to_hw(size)
    H, W = image.shape[:2]
    if H > h or W > w:
        raise ValueError(f"Cannot pad an image of size {(H, W)} to the smaller size {(h, w)}")
    out = np.full((h, w) + image.shape[2:], fill, dtype=image.dtype)
    out[:H, :W] = image
    return out


def letterbox(
    image: np.ndarray, boxes, size: SizeLike, fill: int = YOLOX_PAD_VALUE
) -> Tuple[np.ndarray, np.ndarray, float]:
    """
    :func:`letterbox_resize` then :func:`pad_to_size` (the official training ``preproc``).

    Args:
        image: ``HxWxC`` uint8 image.
        boxes: ``(N, 4)`` XYXY boxes of ``image``.
        size: output ``(height, width)`` or an int.
        fill: padding value.

    Returns:
        ``(padded_image, boxes * r, r)``.
    """
    resized, r = letterbox_resize(image, size)
    return pad_to_size(resized, size, fill), (as_boxes(boxes) * r).astype(np.float32), r
