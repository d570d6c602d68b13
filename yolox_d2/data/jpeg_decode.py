"""
Fast decoding of ordinary JPEG files with `simplejpeg <https://pypi.org/project/simplejpeg/>`_
(libjpeg-turbo, bundled in its wheel), giving exactly the pixels of the PIL reader of
:func:`~yolox_d2.data.image_io.decode_image_bgr`: both run libjpeg-turbo with its defaults
(accurate integer IDCT, fancy upsampling), and the EXIF orientation is applied as the same
pixel permutation PIL's ``transpose`` makes (:func:`orient_like_exif`). ``bench/bench_decode.py``
measures it (2-3x faster than the PIL decode it replaces, on par with ``cv2.imdecode``,
identical pixels on every file measured) and ``tests/test_image_decode.py`` checks the
equality.

Only baseline / progressive 8-bit YCbCr, RGB and grayscale JPEG files are decoded here
(:func:`fast_jpeg_mode`); CMYK / YCCK files, other formats, files libjpeg-turbo reports as
damaged (even recoverable warnings, ``strict=True``) and a missing ``simplejpeg`` package are
left to the PIL reader, which keeps its conversions and its errors.
"""

from typing import Optional

import numpy as np

try:
    import simplejpeg
except ImportError:  # optional speed-up: the PIL reader decodes every JPEG too
    simplejpeg = None

__all__ = ["FAST_JPEG_AVAILABLE", "fast_jpeg_mode", "decode_jpeg_bgr", "orient_like_exif"]

FAST_JPEG_AVAILABLE = simplejpeg is not None
# PIL modes of the JPEG files whose simplejpeg decode equals PIL's ``convert("RGB")``.
_FAST_MODES = ("RGB", "L")


def fast_jpeg_mode(pil_format: Optional[str], pil_mode: str) -> bool:
    """
    Whether a file that PIL opened as ``pil_format`` / ``pil_mode`` is decoded by
    :func:`decode_jpeg_bgr`: a plain ``"JPEG"`` (not MPO) in mode ``"RGB"`` (YCbCr or RGB
    data) or ``"L"`` (grayscale), with ``simplejpeg`` installed.

    Args:
        pil_format: ``PIL.Image.Image.format`` of the opened file.
        pil_mode: ``PIL.Image.Image.mode`` of the opened file.
    """
    return FAST_JPEG_AVAILABLE and pil_format == "JPEG" and pil_mode in _FAST_MODES


def decode_jpeg_bgr(data: bytes) -> Optional[np.ndarray]:
    """
    ``HxWx3`` uint8 BGR pixels of JPEG ``data`` as stored (no EXIF orientation applied;
    grayscale replicated to 3 channels), or None when libjpeg-turbo reports any problem,
    recoverable ones included (truncated or corrupt data...), or ``simplejpeg`` is missing:
    the caller then uses the PIL reader, which raises its own error for damaged files.

    Args:
        data: the whole file.
    """
    if simplejpeg is None:
        return None
    try:
        image = simplejpeg.decode_jpeg(data, colorspace="BGR", fastdct=False, fastupsample=False, strict=True)
    except ValueError:  # simplejpeg's error for anything libjpeg-turbo reports
        return None
    if image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        return None
    return image


def orient_like_exif(image: np.ndarray, orientation: Optional[int]) -> np.ndarray:
    """
    ``image`` (``HxWxC``, stored orientation) turned into its displayed orientation for the
    EXIF ``orientation`` tag: the permutation of Detectron2's ``_apply_exif_orientation``
    (PIL ``transpose``: 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise,
    7 transverse, 8 rotate 90 counter-clockwise); any other value leaves it as is.

    Args:
        image: an ``HxWxC`` array.
        orientation: the EXIF orientation tag (0x0112) value, or None.

    Returns:
        A C-contiguous array (``image`` itself when nothing changes).
    """
    if orientation == 2:
        image = image[:, ::-1]
    elif orientation == 3:
        image = image[::-1, ::-1]
    elif orientation == 4:
        image = image[::-1]
    elif orientation == 5:
        image = image.transpose(1, 0, 2)
    elif orientation == 6:
        image = image.transpose(1, 0, 2)[:, ::-1]
    elif orientation == 7:
        image = image[::-1, ::-1].transpose(1, 0, 2)
    elif orientation == 8:
        image = image.transpose(1, 0, 2)[::-1]
    return np.ascontiguousarray(image)
