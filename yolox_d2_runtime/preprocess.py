"""
The YOLOX inference letterbox in numpy and OpenCV: the same pixels as
``yolox_d2.export.letterbox_batch`` (and so as the PyTorch model's own preprocessing).
"""

from typing import List, Sequence, Tuple, Union

import cv2
import numpy as np

__all__ = ["PAD_VALUE", "SIZE_DIVISIBILITY", "Letterbox", "letterbox_images", "to_hw"]

#: Fill of the padding (the official YOLOX value).
PAD_VALUE = 114
#: The canvas is rounded up to a multiple of this (the largest YOLOX stride).
SIZE_DIVISIBILITY = 32

SizeLike = Union[int, Sequence[int]]


def to_hw(size: SizeLike) -> Tuple[int, int]:
    """``(height, width)`` from an int (square) or a pair."""
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    if len(size) != 2:
        raise ValueError(f"A size is an int or (height, width), got {size!r}")
    return int(size[0]), int(size[1])


class Letterbox:
    """
    Where one image sits on the canvas: resized by ``ratio = min(h / H, w / W)`` to
    ``resized_hw = (int(H * ratio), int(W * ratio))`` at the top left.

    Attributes:
        image_hw: ``(H, W)`` of the original image.
        resized_hw: ``(height, width)`` of the resized image on the canvas.
        ratio: the resize ratio.
    """

    def __init__(self, image_hw: Tuple[int, int], size: SizeLike):
        """
        Args:
            image_hw: ``(H, W)`` of the original image.
            size: the letterbox target ``(h, w)`` or an int.
        """
        h, w = to_hw(size)
        H, W = int(image_hw[0]), int(image_hw[1])
        if H < 1 or W < 1:
            raise ValueError(f"Image size must be positive, got {H}x{W}")
        self.image_hw = (H, W)
        self.ratio = min(h / H, w / W)
        self.resized_hw = (max(int(H * self.ratio), 1), max(int(W * self.ratio), 1))

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        """
        Map XYXY canvas boxes to original-image pixels as Detectron2's
        ``detector_postprocess`` does: scale by ``W / resized_w`` and ``H / resized_h``, then
        clip to ``[0, W] x [0, H]``. Returns a new float32 array.
        """
        H, W = self.image_hw
        rh, rw = self.resized_hw
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        scale = np.array([W / rw, H / rh, W / rw, H / rh], dtype=np.float32)
        limit = np.array([W, H, W, H], dtype=np.float32)
        return np.clip(boxes * scale, 0, limit)

    def __repr__(self) -> str:
        return f"Letterbox(image_hw={self.image_hw}, resized_hw={self.resized_hw}, ratio={self.ratio:.6g})"


def letterbox_images(
    images_bgr: Sequence[np.ndarray], size: SizeLike, pad_value: float = PAD_VALUE
) -> Tuple[np.ndarray, List[Letterbox]]:
    """
    Letterbox BGR images into one batch: each resized keeping its aspect ratio with
    ``cv2.INTER_LINEAR`` (unchanged when it already fits exactly), placed at the top left of a
    ``size`` canvas rounded up to a multiple of 32, the rest filled with ``pad_value``.

    Args:
        images_bgr: (H, W, 3) uint8 BGR images (``cv2.imread``), any sizes.
        size: letterbox target ``(h, w)`` or an int: the model's input size.
        pad_value: fill of the padding.

    Returns:
        ``(batch, letterboxes)``: the float32 (N, 3, H, W) graph input and one
        :class:`Letterbox` per image.
    """
    if len(images_bgr) == 0:
        raise ValueError("letterbox_images needs at least one image")
    h, w = to_hw(size)
    canvas_h = -(-h // SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY
    canvas_w = -(-w // SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY
    batch = np.full((len(images_bgr), 3, canvas_h, canvas_w), pad_value, dtype=np.float32)
    letterboxes = []
    for i, image in enumerate(images_bgr):
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"Image {i}: expected an (H, W, 3) uint8 BGR array, got {type(image).__name__} "
                f"{getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}"
            )
        box = Letterbox(image.shape[:2], (h, w))
        rh, rw = box.resized_hw
        if (rh, rw) != box.image_hw:
            image = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_LINEAR)
        batch[i, :, :rh, :rw] = image.transpose(2, 0, 1)
        letterboxes.append(box)
    return batch, letterboxes
