"""
Dataset mappers (Detectron2 style callables: dataset dict -> model input dict) for YOLOX.

Training data does not go through a mapper: :class:`yolox_d2.data.mosaic.MosaicMixupDataset`
produces model inputs directly (mosaic needs several dataset dicts per sample).
"""

import logging
from typing import Any, Dict

import numpy as np
import torch
from detectron2.data import detection_utils as utils

from .transforms import SizeLike, letterbox_resize, to_hw

__all__ = ["ImageReadError", "read_image_bgr", "YOLOXTestMapper"]

logger = logging.getLogger(__name__)


class ImageReadError(OSError):
    """An image of a dataset dict is missing or cannot be decoded (names the file and id)."""


def read_image_bgr(dataset_dict: Dict[str, Any], check_size: bool = True) -> np.ndarray:
    """
    Read ``dataset_dict["file_name"]`` as an ``HxWx3`` uint8 BGR array with
    :func:`detectron2.data.detection_utils.read_image` (EXIF orientation applied).

    Args:
        dataset_dict: a Detectron2 dataset dict (``file_name``; ``image_id``, ``height`` and
            ``width`` are used when present).
        check_size: raise when the decoded size differs from ``height`` / ``width``.

    Raises:
        ImageReadError: the file is missing or unreadable; the message names the file and the
            ``image_id`` (the original exception is chained).
    """
    file_name = dataset_dict.get("file_name")
    image_id = dataset_dict.get("image_id")
    try:
        image = utils.read_image(file_name, format="BGR")
    except Exception as e:  # FileNotFoundError, PIL.UnidentifiedImageError, truncated data...
        raise ImageReadError(
            f"Cannot read image file {file_name!r} (image_id={image_id!r}): " f"{type(e).__name__}: {e}"
        ) from e
    if image is None or image.ndim != 3 or image.size == 0:
        raise ImageReadError(f"Image file {file_name!r} (image_id={image_id!r}) decoded to nothing")
    if check_size:
        utils.check_image_size(dataset_dict, image)
    return image


class YOLOXTestMapper:
    """
    Inference mapper: read the image (BGR), resize it keeping the aspect ratio to fit
    ``image_size`` (``r = min(h / H, w / W)``, output ``int(H * r) x int(W * r)``, bilinear)
    and return it **unpadded**; the model pads bottom / right with 114 when batching.

    Returns ``{"image": uint8 tensor (3, int(H*r), int(W*r)), "height": H, "width": W,
    "file_name", "image_id"}``, where ``height`` / ``width`` are the original size (taken from
    the dict when given, as Detectron2 does) so predictions can be rescaled with
    ``detector_postprocess``.
    """

    def __init__(self, image_size: SizeLike = (640, 640)):
        """
        Args:
            image_size: test size ``(height, width)`` (or an int) the image must fit into.
        """
        self.image_size = to_hw(image_size)

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        """
        Args:
            dataset_dict: a Detectron2 dataset dict (not modified).

        Returns:
            The model input dict described in the class docstring.
        """
        image = read_image_bgr(dataset_dict)
        orig_h, orig_w = image.shape[:2]
        resized, _ = letterbox_resize(image, self.image_size)
        return {
            "image": torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1))),
            "height": int(dataset_dict.get("height", orig_h)),
            "width": int(dataset_dict.get("width", orig_w)),
            "file_name": dataset_dict.get("file_name"),
            "image_id": dataset_dict.get("image_id"),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(image_size={self.image_size})"
