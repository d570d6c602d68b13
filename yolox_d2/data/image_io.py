"""
Reading dataset images: decoding any common image file as ``HxWx3`` uint8 BGR with its EXIF
orientation applied (:func:`decode_image_bgr`; ordinary JPEG files are decoded by
:mod:`~yolox_d2.data.jpeg_decode`, same pixels as PIL, faster), reading a dataset dict's image
with its size checked (:func:`read_image_bgr`), the same for training with a faster decode of
plain 8-bit PNG files (:func:`read_training_image`), and the errors naming the file and
``image_id`` (:class:`ImageReadError`, :class:`ImageSizeMismatchError`).
"""

import io
import logging
import os
import struct
from typing import Any, Dict, Optional, Set, Tuple

import cv2
import numpy as np
from detectron2.data import detection_utils as utils
from detectron2.utils.file_io import PathManager
from PIL import Image

from .jpeg_decode import decode_jpeg_bgr, fast_jpeg_mode, orient_like_exif

__all__ = [
    "ImageReadError",
    "ImageSizeMismatchError",
    "DecodedImage",
    "decode_image_bgr",
    "read_image_bgr",
    "read_training_image",
]

logger = logging.getLogger(__name__)

# EXIF orientations that swap the image axes (transpose, rotate 90 / 270, transverse).
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)
_EXIF_ORIENTATION_TAG = 0x0112
# Files whose declared (stored, pre-EXIF) size was accepted, warned about once per process.
_WARNED_EXIF_SIZE: Set[str] = set()


class ImageReadError(OSError):
    """An image of a dataset dict is missing or cannot be decoded (names the file and id)."""


class ImageSizeMismatchError(ImageReadError):
    """The decoded image size disagrees with the dict's ``height`` / ``width`` (names both)."""


class DecodedImage:
    """
    Result of :func:`decode_image_bgr`.

    Attributes:
        image: ``HxWx3`` uint8 BGR array, in the displayed orientation (EXIF applied).
        mode: the PIL mode of the file (``"RGB"``, ``"L"``, ``"I;16"``, ``"CMYK"``, ...).
        exif_transposed: the file's EXIF orientation swaps the axes (5..8), i.e. the stored
            pixel array is ``W x H`` while the displayed image is ``H x W``.
    """

    __slots__ = ("image", "mode", "exif_transposed")

    def __init__(self, image: np.ndarray, mode: str, exif_transposed: bool) -> None:
        self.image = image
        self.mode = mode
        self.exif_transposed = exif_transposed


def _to_rgb_uint8(image: "Image.Image") -> np.ndarray:
    """
    ``HxWx3`` uint8 RGB from any PIL mode.

    8-bit modes (``1, L, P, LA, PA, RGB, RGBA, RGBX, CMYK, YCbCr, LAB, HSV``) use PIL's
    conversion (the alpha channel is dropped, as ``cv2.imread`` does). 16-bit grayscale
    (``I;16*``, and ``I`` holding values in ``[0, 65535]``) is scaled by ``255 / 65535``
    (PIL's own ``convert("RGB")`` would clip it to 255, a white image). Float images (``F``)
    in ``[0, 1]`` are scaled by 255. Other ranges are refused rather than guessed.
    """
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(image)
        if arr.ndim != 2:
            raise ValueError(f"unsupported {mode} image with shape {arr.shape}")
        if mode == "F":
            if arr.size and not (np.isfinite(arr).all() and arr.min() >= 0 and arr.max() <= 1):
                raise ValueError("float (mode F) image with values outside [0, 1]")
            gray = np.round(arr.astype(np.float64) * 255.0)
        else:
            if arr.size and (arr.min() < 0 or arr.max() > 65535):
                raise ValueError(
                    f"{mode} image with values in [{arr.min()}, {arr.max()}], outside 16 bits"
                )
            gray = np.round(arr.astype(np.float64) * (255.0 / 65535.0))
        gray = gray.astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def decode_image_bgr(file_name: str) -> DecodedImage:
    """
    Decode an image file as an ``HxWx3`` uint8 BGR array, EXIF orientation applied (like
    :func:`detectron2.data.detection_utils.read_image`), from any common mode: grayscale,
    palette, RGBA (alpha dropped), CMYK, 16-bit grayscale (scaled to 8 bits), 16-bit RGB.

    PIL reads the header and the EXIF orientation of every file and decodes it, except
    ordinary 8-bit YCbCr / RGB / grayscale JPEG files, which are decoded by
    :func:`~yolox_d2.data.jpeg_decode.decode_jpeg_bgr` (``simplejpeg``: the same pixels,
    faster; anything it reports as damaged is decoded by PIL, which raises its own error).

    Args:
        file_name: a path or URI readable by Detectron2's ``PathManager``.

    Raises:
        Exception: whatever the file system or PIL raise (missing file, unidentified or
            truncated data, decompression bomb...), or ValueError for unsupported pixel data.
            :func:`read_image_bgr` turns these into :class:`ImageReadError`.
    """
    if isinstance(file_name, os.PathLike):
        file_name = os.fspath(file_name)
    with PathManager.open(file_name, "rb") as f:
        data = f.read()
    pil = Image.open(io.BytesIO(data))
    mode = pil.mode
    try:
        orientation = pil.getexif().get(_EXIF_ORIENTATION_TAG)
    except Exception:  # malformed EXIF: Detectron2 ignores it too
        orientation = None
    transposed = orientation in _TRANSPOSING_ORIENTATIONS
    stored = decode_jpeg_bgr(data) if fast_jpeg_mode(pil.format, mode) else None
    if stored is not None:
        return DecodedImage(orient_like_exif(stored, orientation), mode, transposed)
    pil = utils._apply_exif_orientation(pil)
    rgb = _to_rgb_uint8(pil)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise ValueError(f"decoded to an array of shape {rgb.shape}")
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    return DecodedImage(bgr, mode, transposed)


def _declared_size(dataset_dict: Dict[str, Any]) -> Optional[Tuple[int, int]]:
    """``(height, width)`` of the dict when both are present (else None)."""
    if "height" in dataset_dict and "width" in dataset_dict:
        try:
            return int(dataset_dict["height"]), int(dataset_dict["width"])
        except (TypeError, ValueError):
            return None
    return None


def read_image_bgr(dataset_dict: Dict[str, Any], check_size: bool = True) -> np.ndarray:
    """
    Read ``dataset_dict["file_name"]`` as an ``HxWx3`` uint8 BGR array with
    :func:`decode_image_bgr` (EXIF orientation applied; grayscale, RGBA, CMYK and 16-bit
    files converted).

    Size check (``check_size``): the decoded size must equal the dict's ``height`` /
    ``width``. One exception, for EXIF-rotated photos whose dict records the *stored* size
    (the JPEG header's, before rotation): when the decoded size is exactly the transpose of
    the declared one and the file's EXIF orientation swaps the axes, the image is accepted
    (a warning, once per file and process) and the caller must use the decoded size. Boxes
    are always taken to refer to the displayed (rotated) image, as in Detectron2.

    Args:
        dataset_dict: a Detectron2 dataset dict (``file_name``; ``image_id``, ``height`` and
            ``width`` are used when present). Not modified.
        check_size: check the decoded size against ``height`` / ``width``.

    Raises:
        ImageReadError: the file is missing, empty, truncated or not an image; the message
            names the file and the ``image_id`` (the original exception is chained).
        ImageSizeMismatchError: the size check failed (names the file, id and both sizes).
    """
    file_name = dataset_dict.get("file_name")
    image_id = dataset_dict.get("image_id")
    try:
        decoded = decode_image_bgr(file_name)
    except Exception as e:  # FileNotFoundError, PIL.UnidentifiedImageError, truncated data...
        raise ImageReadError(
            f"Cannot read image file {file_name!r} (image_id={image_id!r}): {type(e).__name__}: {e}"
        ) from e
    image = decoded.image
    declared = _declared_size(dataset_dict)
    if check_size and declared is not None:
        h, w = image.shape[:2]
        if declared != (h, w):
            if decoded.exif_transposed and declared == (w, h):
                if file_name not in _WARNED_EXIF_SIZE:
                    _WARNED_EXIF_SIZE.add(file_name)
                    logger.warning(
                        "%s (image_id=%r): height/width %dx%d are the stored size of an "
                        "EXIF-rotated image; using the displayed size %dx%d (boxes refer to the "
                        "displayed image)",
                        file_name,
                        image_id,
                        declared[0],
                        declared[1],
                        h,
                        w,
                    )
            else:
                raise ImageSizeMismatchError(
                    f"Image file {file_name!r} (image_id={image_id!r}) decodes to height x width "
                    f"{h}x{w} but the dataset dict declares {declared[0]}x{declared[1]}"
                    + (" (the file has an EXIF rotation)" if decoded.exif_transposed else "")
                    + "; fix 'height'/'width' in the annotations"
                )
    return image


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Text chunk keywords from which PIL takes an EXIF orientation (see PIL.Image.getexif).
_PNG_ORIENTATION_KEYWORDS = (b"Raw profile type exif", b"XML:com.adobe.xmp")


def _png_is_plain(data: bytes) -> bool:
    """
    Whether PNG ``data`` is one that OpenCV decodes exactly like PIL: 8-bit gray / RGB / RGBA,
    not animated, and nothing PIL could take an EXIF orientation from (an ``eXIf`` chunk, or
    a ``tEXt`` / ``zTXt`` / ``iTXt`` chunk with an EXIF or XMP keyword). Walks the chunk
    headers (a few dozen) without touching the compressed data.
    """
    if len(data) < 33 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        return False
    if data[24] != 8 or data[25] not in (0, 2, 6):  # bit depth, colour type
        return False
    pos, end = 8, len(data)
    while pos + 8 <= end:
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind in (b"eXIf", b"acTL"):
            return False
        if kind in (b"tEXt", b"zTXt", b"iTXt") and data[pos + 8 : pos + 8 + min(length, 80)].startswith(
            _PNG_ORIENTATION_KEYWORDS
        ):
            return False
        if kind == b"IEND":
            return True
        pos += 12 + length
    return False  # no IEND: truncated, let the general reader judge


def _decode_plain_png(data: bytes) -> Optional[np.ndarray]:
    """
    OpenCV decode of a plain PNG (:func:`_png_is_plain`), which gives exactly the pixels of
    :func:`decode_image_bgr` (PIL, alpha dropped), about 30% faster. None for anything else
    (other formats or PNG kinds, or data OpenCV cannot decode): the caller then uses the
    general reader, which applies EXIF, converts other modes and raises the errors.
    """
    if not _png_is_plain(data):
        return None
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if image is None or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        return None
    return image


def read_training_image(record: Dict[str, Any]) -> np.ndarray:
    """
    :func:`read_image_bgr` of a training record (same pixels, same errors), with a faster
    decode for plain 8-bit PNG files (:func:`_decode_plain_png`) whose decoded size matches
    the record's; every other case (JPEG, EXIF, unusual modes, unreadable or mismatching
    files) goes through ``read_image_bgr`` itself.

    Args:
        record: a dataset dict (``file_name``; ``image_id``, ``height`` and ``width`` when
            present).

    Raises:
        ImageReadError: as :func:`read_image_bgr` (:class:`ImageSizeMismatchError` included).
    """
    file_name = record.get("file_name")
    if isinstance(file_name, (str, os.PathLike)) and os.fspath(file_name).lower().endswith(".png"):
        try:
            with PathManager.open(os.fspath(file_name), "rb") as f:
                data = f.read()
        except Exception:  # noqa: BLE001 - read_image_bgr reports it with the file name
            data = b""
        image = _decode_plain_png(data) if data else None
        if image is not None and (
            "height" not in record or (record["height"], record["width"]) == image.shape[:2]
        ):
            return image
    return read_image_bgr(record)
