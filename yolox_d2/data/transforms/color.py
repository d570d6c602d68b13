"""
The YOLOX HSV jitter: random integer offsets for hue, saturation and value
(:func:`sample_hsv_offsets`) applied with 8-bit lookup tables (:func:`apply_hsv_offsets`).
"""

from typing import Optional

import cv2
import numpy as np

from .opencv_output import write_into

__all__ = ["sample_hsv_offsets", "apply_hsv_offsets"]


def sample_hsv_offsets(
    rng: np.random.Generator, hgain: float = 5.0, sgain: float = 30.0, vgain: float = 30.0
) -> np.ndarray:
    """
    The random part of the YOLOX HSV jitter: offsets ``uniform(-1, 1) * gain`` for H, S and V,
    each switched on with probability 1/2, truncated to integers (the official draws).

    Args:
        rng: random generator.
        hgain: maximum hue offset (OpenCV hue units, 0..180).
        sgain: maximum saturation offset (0..255 units).
        vgain: maximum value offset (0..255 units).

    Returns:
        ``(3,)`` int16 offsets ``(dh, ds, dv)``.
    """
    gains = rng.uniform(-1.0, 1.0, 3) * np.array([hgain, sgain, vgain], dtype=np.float64)
    gains *= rng.integers(0, 2, 3)
    return gains.astype(np.int16)


def _hsv_lut(offsets: np.ndarray) -> np.ndarray:
    """``cv2.LUT`` table (256 x 1 x 3) for HSV offsets: hue modulo 180, S / V clipped."""
    v = np.arange(256, dtype=np.int32)
    lut = np.empty((256, 1, 3), dtype=np.uint8)
    lut[:, 0, 0] = np.mod(v + int(offsets[0]), 180)
    lut[:, 0, 1] = np.clip(v + int(offsets[1]), 0, 255)
    lut[:, 0, 2] = np.clip(v + int(offsets[2]), 0, 255)
    return lut


def apply_hsv_offsets(image: np.ndarray, offsets, out: Optional[np.ndarray] = None) -> np.ndarray:
    """
    Shift hue (modulo 180, OpenCV's 8-bit hue range), saturation and value (clipped to
    [0, 255]) of a BGR image by integer ``offsets``; 8-bit lookup tables, same result as the
    official int16 arithmetic. All-zero offsets copy the image (no lossy HSV round trip).

    Args:
        image: ``HxWx3`` uint8 BGR image (not modified unless it is ``out``).
        offsets: ``(dh, ds, dv)`` integers (:func:`sample_hsv_offsets`).
        out: optional ``HxWx3`` uint8 array to write the result into (may be ``image``).

    Returns:
        The jittered image (``out`` when given, else a new array).
    """
    offsets = np.asarray(offsets).astype(np.int64).reshape(3)
    if not offsets.any():
        if out is None:
            return image.copy()
        if out is not image:
            out[...] = image
        return out
    if out is image:  # in place: no temporary (the conversions are pixel-wise)
        hsv = write_into(image, cv2.cvtColor(image, cv2.COLOR_BGR2HSV, dst=image))
    else:
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    write_into(hsv, cv2.LUT(hsv, _hsv_lut(offsets), dst=hsv))
    if out is None:
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    return write_into(out, cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR, dst=out))
