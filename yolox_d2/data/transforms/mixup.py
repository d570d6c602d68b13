"""
The YOLOX MixUp: the partner's random placement (:func:`sample_mixup_params`), its boxes
(:func:`mixup_partner_boxes`), its pixels in one warp (:func:`warp_mixup_partner`) and the
blend (:func:`average_images`).

The step-by-step reference (letterbox canvas, resize, pad, crop, blend) is ``mixup`` in
``tests/reference_transforms.py``.
"""

import math
from typing import NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np

from .affine import RangeLike, affine_pixel_matrix, draw_uniform
from .boxes import as_boxes, as_classes, box_candidates, clip_boxes
from .flip import flip_boxes, flip_matrix
from .letterbox import YOLOX_PAD_VALUE, SizeLike, letterbox_shape, to_hw
from .opencv_output import border_value, write_into

__all__ = [
    "MixupParams",
    "sample_mixup_params",
    "mixup_partner_boxes",
    "warp_mixup_partner",
    "average_images",
]


class MixupParams(NamedTuple):
    """
    The random part of a MixUp (:func:`sample_mixup_params`).

    Attributes:
        jit: scale jitter of the partner's letterboxed canvas.
        flip: mirror the jittered canvas.
        height: jittered canvas height ``max(int(h * jit), 1)``.
        width: jittered canvas width ``max(int(w * jit), 1)``.
        y_off: top of the ``h x w`` window in the (padded) jittered canvas.
        x_off: left of the window.
    """

    jit: float
    flip: bool
    height: int
    width: int
    y_off: int
    x_off: int


def sample_mixup_params(
    rng: np.random.Generator,
    size: SizeLike,
    scale: RangeLike = (0.5, 1.5),
    flip_prob: float = 0.5,
) -> MixupParams:
    """
    Draw a MixUp placement for an ``(h, w)`` image: ``jit ~ U(scale)``, flip with probability
    ``flip_prob``, then window offsets ``U{0, extra - 1}`` along each axis where the jittered
    canvas is larger than ``(h, w)`` (draw order: jit, flip, y, x; the official order).

    Args:
        rng: random generator.
        size: ``(h, w)`` of the image the partner is blended into.
        scale: range of the scale jitter ``jit`` (a pair, or ``v`` for ``1 +- v``).
        flip_prob: probability of mirroring the partner.
    """
    th, tw = to_hw(size)
    jit = draw_uniform(rng, scale, center=1.0)
    flip = bool(rng.uniform() < flip_prob)
    ch, cw = max(int(th * jit), 1), max(int(tw * jit), 1)
    y_off = int(rng.integers(0, ch - th)) if ch > th else 0
    x_off = int(rng.integers(0, cw - tw)) if cw > tw else 0
    return MixupParams(jit, flip, ch, cw, y_off, x_off)


def mixup_partner_boxes(
    partner_size: Sequence[int],
    partner_boxes,
    partner_classes,
    params: MixupParams,
    size: SizeLike,
    *,
    wh_thr: float = 2.0,
    ar_thr: float = 20.0,
    area_thr: float = 0.2,
) -> Tuple[np.ndarray, np.ndarray]:
    """
    The partner's boxes after a MixUp placement: scaled by ``letterbox ratio * jit``, clipped to
    the jittered canvas, mirrored with it, moved to the window, clipped to it and filtered with
    :func:`box_candidates` against their uncut extent.

    Args:
        partner_size: ``(H, W)`` of the partner image.
        partner_boxes: ``(M, 4)`` boxes in the partner's pixels.
        partner_classes: ``(M,)`` classes.
        params: the placement (:func:`sample_mixup_params`).
        size: ``(h, w)`` of the image the partner is blended into.
        wh_thr: :func:`box_candidates` minimum side.
        ar_thr: :func:`box_candidates` maximum aspect ratio.
        area_thr: :func:`box_candidates` minimum visible-area fraction.

    Returns:
        ``(boxes, classes)`` of the kept partner boxes, in the window's pixels (float64).
    """
    th, tw = to_hw(size)
    _, _, r = letterbox_shape(partner_size, (th, tw))
    ch, cw = params.height, params.width
    pboxes = clip_boxes(as_boxes(partner_boxes) * (r * params.jit), cw, ch)
    pclasses = as_classes(partner_classes, len(pboxes))
    if params.flip:
        pboxes = flip_boxes(pboxes, cw)
    shifted = pboxes - np.array([params.x_off, params.y_off, params.x_off, params.y_off], dtype=np.float64)
    cut = clip_boxes(shifted, tw, th)
    keep = box_candidates(shifted, cut, wh_thr=wh_thr, ar_thr=ar_thr, area_thr=area_thr)
    return cut[keep], pclasses[keep]


def warp_mixup_partner(
    partner_image: np.ndarray,
    params: MixupParams,
    size: SizeLike,
    *,
    fill: int = YOLOX_PAD_VALUE,
    flip: bool = False,
) -> np.ndarray:
    """
    The ``(h, w)`` window of a MixUp partner (what the blend takes from it) in one bilinear
    warp: letterbox scale, jitter scale, mirror, window offset (and an optional final mirror of
    the whole window, ``flip``) composed; everything outside the partner image is ``fill``.
    Same geometry as the step-by-step reference (letterbox canvas, resize, mirror, pad, crop;
    ``mixup`` in ``tests/reference_transforms.py``); pixels differ only by interpolation.

    Args:
        partner_image: ``HxWxC`` uint8 partner.
        params: the placement (:func:`sample_mixup_params`).
        size: ``(h, w)`` of the window.
        fill: value outside the partner.
        flip: mirror the window left-right.

    Returns:
        ``h x w x C`` uint8 window (``h x w`` for a 2-D partner).
    """
    th, tw = to_hw(size)
    H, W = partner_image.shape[:2]
    lh, lw, _ = letterbox_shape((H, W), (th, tw))
    ch, cw = params.height, params.width
    A = np.diag([lw / W * cw / tw, lh / H * ch / th, 1.0])  # letterbox then jitter resize
    if params.flip:
        A = flip_matrix(cw) @ A
    A = np.array([[1.0, 0.0, -params.x_off], [0.0, 1.0, -params.y_off], [0.0, 0.0, 1.0]]) @ A
    if flip:
        A = flip_matrix(tw) @ A
    # only the window pixels near the partner need the warp, the others are `fill`
    xs = np.array([A[0, 2], A[0, 0] * W + A[0, 2]])
    ys = np.array([A[1, 2], A[1, 1] * H + A[1, 2]])
    x1, x2 = max(int(math.floor(xs.min())) - 1, 0), min(int(math.ceil(xs.max())) + 1, tw)
    y1, y2 = max(int(math.floor(ys.min())) - 1, 0), min(int(math.ceil(ys.max())) + 1, th)
    channels = partner_image.shape[2:] if partner_image.ndim == 3 else ()
    out = np.full((th, tw) + channels, fill, dtype=np.uint8)
    if x2 > x1 and y2 > y1:
        A = np.array([[1.0, 0.0, -x1], [0.0, 1.0, -y1], [0.0, 0.0, 1.0]]) @ A
        roi = out[y1:y2, x1:x2]
        warped = cv2.warpAffine(
            partner_image,
            affine_pixel_matrix(A[:2]),
            dsize=(x2 - x1, y2 - y1),
            dst=roi if roi.ndim == 2 or roi.shape[2] in (3, 4) else None,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=border_value(fill, partner_image),
        )
        write_into(roi, warped)
    return out


def average_images(a: np.ndarray, b: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """
    ``floor((a + b) / 2)`` of two uint8 images without widening (``(a & b) + ((a ^ b) >> 1)``):
    exactly the official ``(0.5 * a + 0.5 * b).astype(uint8)`` in float32.

    Args:
        a: uint8 image.
        b: uint8 image of the same shape.
        out: optional output (may be ``a`` or ``b``).
    """
    if a.shape != b.shape or a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"average_images() needs two uint8 images of one shape, got {a.shape}, {b.shape}")
    if out is None:
        out = np.empty_like(a)
    arrays = (a, b, out)
    if a.nbytes % 8 == 0 and all(x.flags.c_contiguous for x in arrays):
        # 8 pixels per operation: the shift may carry a bit into the next byte, masked off;
        # per-byte sums stay <= 255, so nothing carries across bytes.
        a, b, out64 = (x.reshape(-1).view(np.uint64) for x in arrays)
        both = np.bitwise_and(a, b)
        np.bitwise_xor(a, b, out=out64)
        np.right_shift(out64, np.uint64(1), out=out64)
        np.bitwise_and(out64, np.uint64(0x7F7F7F7F7F7F7F7F), out=out64)
        np.add(out64, both, out=out64)
        return out
    both = np.bitwise_and(a, b)
    np.bitwise_xor(a, b, out=out)
    np.right_shift(out, 1, out=out)
    np.add(out, both, out=out)
    return out
