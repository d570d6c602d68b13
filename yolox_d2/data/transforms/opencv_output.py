"""
Getting OpenCV results where they belong: the per-channel border value of a constant border,
and a result written into a preallocated array (OpenCV may or may not honour ``dst=``).
"""

from typing import Tuple

import numpy as np

__all__ = ["border_value", "write_into"]


def border_value(fill: int, image: np.ndarray) -> Tuple[int, ...]:
    """
    A per-channel border value for OpenCV.

    Args:
        fill: the value of every channel.
        image: the image the border belongs to (``HxW`` or ``HxWxC``).
    """
    channels = 1 if image.ndim == 2 else image.shape[2]
    return (int(fill),) * max(channels, 1)


def write_into(out: np.ndarray, result: np.ndarray) -> np.ndarray:
    """
    Make sure an OpenCV result (``dst=out`` or not) is in ``out`` (copy when it is not).

    Args:
        out: the array the result belongs in.
        result: what OpenCV returned.

    Returns:
        ``out``.
    """
    if result is not out and not (result.shape == out.shape and np.shares_memory(result, out)):
        out[...] = result.reshape(out.shape)
    return out
