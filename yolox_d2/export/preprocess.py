"""Input preparation for exported YOLOX graphs (the same pixels the PyTorch model sees)."""

from typing import List, Sequence, Tuple

import numpy as np

from ..data.transforms import YOLOX_PAD_VALUE, SizeLike, letterbox_chw, to_hw

__all__ = ["letterbox_batch"]


def letterbox_batch(
    images_bgr: Sequence[np.ndarray],
    size: SizeLike,
    *,
    size_divisibility: int = 32,
    pad_value: float = YOLOX_PAD_VALUE,
) -> Tuple[np.ndarray, List[float]]:
    """
    Letterbox every image into one ``size`` canvas: resize keeping the aspect ratio to fit
    ``size`` (as :class:`yolox_d2.data.YOLOXTestMapper`), pad bottom/right with ``pad_value``
    to ``size`` rounded up to ``size_divisibility``. This is what :class:`YOLOX` does at
    inference with ``test_square_size = size``.

    Args:
        images_bgr: (H, W, 3) uint8 BGR images (e.g. from ``cv2.imread``), any sizes.
        size: canvas ``(height, width)`` or an int (square).
        size_divisibility: the canvas is rounded up to a multiple of this (32 for YOLOX).
        pad_value: fill of the padding.

    Returns:
        ``(batch, ratios)``: float32 (N, 3, H, W) array (the graph input) and, per image, the
        resize ratio ``r`` (original pixel = network-input pixel / r).
    """
    if len(images_bgr) == 0:
        raise ValueError("letterbox_batch needs at least one image")
    h, w = to_hw(size)
    div = max(int(size_divisibility), 1)
    canvas_h, canvas_w = -(-h // div) * div, -(-w // div) * div
    batch = np.full((len(images_bgr), 3, canvas_h, canvas_w), pad_value, dtype=np.float32)
    ratios = []
    for i, image in enumerate(images_bgr):
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"Image {i}: expected an (H, W, 3) BGR array, got {type(image).__name__} "
                f"{getattr(image, 'shape', '')}"
            )
        chw, ratio = letterbox_chw(image, (h, w))
        batch[i, :, : chw.shape[1], : chw.shape[2]] = chw
        ratios.append(float(ratio))
    return batch, ratios
