"""
The size of an image file as displayed, from its header only (no pixel decoding).

Detectron2's convention, which the YOLOX data pipeline follows
(:func:`yolox_d2.data.decode_image_bgr`, like :func:`detectron2.data.detection_utils.read_image`):
images are used **after** their EXIF orientation is applied, and boxes refer to that displayed
image. An EXIF orientation 5-8 (transpose, rotate 90/270, transverse) swaps the stored width
and height, so the displayed size is the stored one transposed. Ultralytics normalises YOLO
labels by the same displayed size (``exif_size``).

PNG files: only an ``eXIf`` chunk placed before the pixel data (where the PNG specification
puts it) is seen; reading one placed after would decode the whole image.
"""

import os
from typing import Tuple

from PIL import Image

__all__ = ["IMAGE_EXTENSIONS", "EXIF_ORIENTATION_TAG", "TRANSPOSING_ORIENTATIONS", "displayed_image_size"]

#: Image file extensions of datasets given as folders (lower case; Ultralytics' set that PIL reads).
IMAGE_EXTENSIONS = (".bmp", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp")
EXIF_ORIENTATION_TAG = 0x0112
#: EXIF orientations that swap the image axes.
TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)


def _orientation(image: Image.Image) -> int:
    if image.format == "PNG":  # PngImageFile.getexif() decodes the image when eXIf is not in the header
        raw = image.info.get("exif")
        if not raw:
            return 1
        exif = Image.Exif()
        exif.load(raw)
    else:
        exif = image.getexif()
    return int(exif.get(EXIF_ORIENTATION_TAG, 1) or 1)


def displayed_image_size(path: str) -> Tuple[int, int]:
    """
    ``(height, width)`` of an image file after its EXIF orientation, from the header.

    Args:
        path: a local image file.

    Raises:
        OSError: the file is missing or is not an image PIL can identify
            (``PIL.UnidentifiedImageError`` is an ``OSError``).
    """
    with Image.open(os.fspath(path)) as image:
        width, height = image.size
        try:
            orientation = _orientation(image)
        except Exception:  # malformed EXIF block: ignored, as Detectron2's read_image does
            orientation = 1
    if orientation in TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    return int(height), int(width)
