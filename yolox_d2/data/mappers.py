"""
Dataset mappers (Detectron2 style callables: dataset dict -> model input dict) for YOLOX.

Training data does not go through a mapper:
:class:`~yolox_d2.data.mosaic_dataset.MosaicMixupDataset` produces model inputs directly
(mosaic needs several dataset dicts per sample).
"""

from typing import Any, Dict

import torch

from .image_io import read_image_bgr
from .transforms import SizeLike, letterbox_chw, to_hw

__all__ = ["YOLOXTestMapper"]


class YOLOXTestMapper:
    """
    Inference mapper: read the image (BGR), resize it keeping the aspect ratio to fit
    ``image_size`` (``r = min(h / H, w / W)``, output ``int(H * r) x int(W * r)``, bilinear)
    and return it **unpadded** (:func:`~yolox_d2.data.transforms.letterbox_chw`); the model
    pads bottom / right with 114 when batching.

    Returns ``{"image": uint8 tensor (3, int(H*r), int(W*r)), "height": H, "width": W,
    "file_name", "image_id"}``, where ``height`` / ``width`` are the original size (the dict's
    when given: :func:`~yolox_d2.data.image_io.read_image_bgr` checks the decoded size against
    it) so predictions can be rescaled with ``detector_postprocess``. For an EXIF-rotated photo
    whose dict records the stored (pre-rotation) size, the displayed size is returned instead,
    so predictions stay in the frame of the displayed image that the annotations refer to.

    Bad data: an image that cannot be read, or whose size disagrees with the dict, raises
    :class:`~yolox_d2.data.image_io.ImageReadError` /
    :class:`~yolox_d2.data.image_io.ImageSizeMismatchError` naming the file and ``image_id``.
    Evaluation does not skip images: a skipped image would silently change the dataset being
    scored.
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
        # the dict's height / width (checked), or the displayed size of an EXIF-rotated photo
        height, width = image.shape[:2]
        chw, _ = letterbox_chw(image, self.image_size)
        return {
            "image": torch.as_tensor(chw),
            "height": int(height),
            "width": int(width),
            "file_name": dataset_dict.get("file_name"),
            "image_id": dataset_dict.get("image_id"),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(image_size={self.image_size})"
