"""
YOLOX training / test augmentations as pure numpy + OpenCV functions.

Conventions used by every function in this module:

* ``image``: ``HxWxC`` ``uint8`` array in BGR order (C is normally 3).
* ``boxes``: ``(N, 4)`` float array, absolute ``XYXY`` in *continuous* pixel coordinates
  (pixel ``i`` covers ``[i, i + 1)``; a box covering a whole ``W``-wide image is ``[0, W]``).
* ``classes``: ``(N,)`` integer array, one entry per box.
* Sizes are ``(height, width)``; an ``int`` means a square size.
* Randomness comes only from the ``rng`` argument (a :class:`numpy.random.Generator`), never
  from global random state, so results are reproducible.

Boxes are transformed together with the pixels and are never left pointing at content that is
not there: every function clips boxes to the output image and the cropping / warping ones drop
boxes that became too small with :func:`box_candidates` (the rule the official YOLOX <= 0.2
applied after its random affine; YOLOX 0.3 only clips and later drops boxes whose shorter side
is <= 1 px).

The numbers (ranges, fill value 114, the mosaic layout) follow the official implementation
(Megvii-BaseDetection/YOLOX); the code is written independently.

Two implementations of the Mosaic -> random affine -> MixUp chain live here, sharing every
random draw and all the box arithmetic:

* the step-by-step *reference* (:func:`mosaic`, :func:`random_affine`, :func:`mixup`): each step
  produces its full image (the ``2h x 2w`` mosaic canvas, the warped image, ...);
* the *fused* renderers used by :class:`~yolox_d2.data.mosaic.MosaicMixupDataset`
  (:func:`render_mosaic_affine`, :func:`warp_mixup_partner`): every output pixel is sampled
  once, bilinearly, straight from the source image it comes from (no canvas, no intermediate
  resize), and a final horizontal flip can be folded into the warps. For the same draws they
  give the same boxes as the reference and the same pixels up to interpolation (one bilinear
  sampling instead of a resize followed by a warp; tile seams are not blended).
"""

import logging
import math
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

__all__ = [
    "YOLOX_PAD_VALUE",
    "to_hw",
    "letterbox_shape",
    "letterbox_resize",
    "pad_to_size",
    "letterbox",
    "clip_boxes",
    "box_candidates",
    "filter_small_boxes",
    "flip_boxes",
    "horizontal_flip",
    "sample_hsv_offsets",
    "apply_hsv_offsets",
    "augment_hsv",
    "sample_affine_matrix",
    "affine_pixel_matrix",
    "apply_affine_to_boxes",
    "affine_boxes",
    "random_affine",
    "MosaicTile",
    "mosaic_center",
    "mosaic_tiles",
    "mosaic_boxes",
    "mosaic_slots_visible",
    "render_mosaic_affine",
    "mosaic",
    "MixupParams",
    "sample_mixup_params",
    "mixup_partner_boxes",
    "warp_mixup_partner",
    "average_images",
    "mixup",
]

logger = logging.getLogger(__name__)

#: Value YOLOX uses for every padded / empty pixel (all three channels).
YOLOX_PAD_VALUE = 114

SizeLike = Union[int, Sequence[int]]
RangeLike = Union[float, Sequence[float]]


def to_hw(size: SizeLike) -> Tuple[int, int]:
    """
    Normalise a size argument to ``(height, width)`` ints.

    Args:
        size: an ``int`` (square) or a 2-sequence ``(height, width)`` (lists, tuples and
            omegaconf ``ListConfig`` are accepted).
    """
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    size = tuple(size)
    if len(size) != 2:
        raise ValueError(f"Expected a size (height, width), got {size!r}")
    return int(size[0]), int(size[1])


def _as_boxes(boxes) -> np.ndarray:
    """Return ``boxes`` as a float64 ``(N, 4)`` array (an empty input gives ``(0, 4)``)."""
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def _as_classes(classes, n: int) -> np.ndarray:
    """Return ``classes`` as an int64 ``(N,)`` array, checking it matches ``n`` boxes."""
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    if len(classes) != n:
        raise ValueError(f"Got {n} boxes but {len(classes)} classes")
    return classes


def _fill_tuple(fill: int, image: np.ndarray) -> Tuple[int, ...]:
    """A per-channel border value for OpenCV."""
    channels = 1 if image.ndim == 2 else image.shape[2]
    return (int(fill),) * max(channels, 1)


# ---------------------------------------------------------------------------------------------
# Resizing / padding
# ---------------------------------------------------------------------------------------------
def letterbox_shape(image_size: SizeLike, size: SizeLike) -> Tuple[int, int, float]:
    """
    Output size of :func:`letterbox_resize` without resizing anything.

    Args:
        image_size: ``(H, W)`` of the input image.
        size: target ``(height, width)`` or an int.

    Returns:
        ``(new_h, new_w, r)`` with ``r = min(h / H, w / W)``, ``new_h = max(int(H * r), 1)`` and
        ``new_w = max(int(W * r), 1)`` (the pixel scale is ``new_w / W`` by ``new_h / H``).
    """
    h, w = to_hw(size)
    H, W = to_hw(image_size)
    r = min(h / H, w / W)
    return max(int(H * r), 1), max(int(W * r), 1), r


def letterbox_resize(image: np.ndarray, size: SizeLike) -> Tuple[np.ndarray, float]:
    """
    Resize keeping the aspect ratio so the image fits inside ``size`` (no padding).

    With the input ``H x W`` and ``size = (h, w)``, ``r = min(h / H, w / W)`` and the output
    is ``int(H * r) x int(W * r)`` (``cv2.INTER_LINEAR``), exactly like the official YOLOX
    ``preproc``. The image is returned unchanged (not copied) when no resize is needed.

    Args:
        image: ``HxWxC`` uint8 image.
        size: target ``(height, width)`` or an int.

    Returns:
        ``(resized_image, r)``. Boxes follow with ``boxes * r``.
    """
    H, W = image.shape[:2]
    new_h, new_w, r = letterbox_shape((H, W), size)
    if (new_h, new_w) == (H, W):
        return image, r
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if resized.ndim == 2 and image.ndim == 3:  # cv2 drops a single channel axis
        resized = resized[:, :, None]
    return resized, r


def pad_to_size(image: np.ndarray, size: SizeLike, fill: int = YOLOX_PAD_VALUE) -> np.ndarray:
    """
    Pad ``image`` at the bottom / right to exactly ``size`` with the constant ``fill``.

    Args:
        image: ``HxWxC`` uint8 image no larger than ``size``.
        size: output ``(height, width)`` or an int.
        fill: padding value for every channel (YOLOX uses 114).
    """
    h, w = to_hw(size)
    H, W = image.shape[:2]
    if H > h or W > w:
        raise ValueError(f"Cannot pad an image of size {(H, W)} to the smaller size {(h, w)}")
    out = np.full((h, w) + image.shape[2:], fill, dtype=image.dtype)
    out[:H, :W] = image
    return out


def letterbox(
    image: np.ndarray, boxes, size: SizeLike, fill: int = YOLOX_PAD_VALUE
) -> Tuple[np.ndarray, np.ndarray, float]:
    """
    :func:`letterbox_resize` then :func:`pad_to_size` (the official training ``preproc``).

    Args:
        image: ``HxWxC`` uint8 image.
        boxes: ``(N, 4)`` XYXY boxes of ``image``.
        size: output ``(height, width)`` or an int.
        fill: padding value.

    Returns:
        ``(padded_image, boxes * r, r)``.
    """
    resized, r = letterbox_resize(image, size)
    return pad_to_size(resized, size, fill), (_as_boxes(boxes) * r).astype(np.float32), r


# ---------------------------------------------------------------------------------------------
# Box utilities
# ---------------------------------------------------------------------------------------------
def clip_boxes(boxes, width: float, height: float) -> np.ndarray:
    """
    Clip XYXY ``boxes`` to the image ``[0, width] x [0, height]`` (returns a new array).

    Args:
        boxes: ``(N, 4)`` boxes.
        width: image width.
        height: image height.
    """
    out = _as_boxes(boxes).copy()
    out[:, 0::2] = out[:, 0::2].clip(0, width)
    out[:, 1::2] = out[:, 1::2].clip(0, height)
    return out


def box_candidates(
    boxes_before,
    boxes_after,
    wh_thr: float = 2.0,
    ar_thr: float = 20.0,
    area_thr: float = 0.2,
    eps: float = 1e-16,
) -> np.ndarray:
    """
    Which transformed boxes are still worth keeping as targets.

    Same rule as the official YOLOX (<= 0.2) ``box_candidates``: a box is kept when, *after*
    the transform (and clipping), both sides are longer than ``wh_thr`` pixels, its aspect
    ratio ``max(w / h, h / w)`` is below ``ar_thr``, and its area is more than ``area_thr``
    times the area it would have had without being cut (``boxes_before``, which the caller
    expresses at the output scale, e.g. the input box times the affine scale).

    Args:
        boxes_before: ``(N, 4)`` reference boxes (unclipped, at the output scale).
        boxes_after: ``(N, 4)`` transformed, clipped boxes.
        wh_thr: minimum side length in pixels (strict).
        ar_thr: maximum aspect ratio (strict).
        area_thr: minimum kept-area fraction (strict).
        eps: numerical guard.

    Returns:
        ``(N,)`` boolean mask.
    """
    b1, b2 = _as_boxes(boxes_before), _as_boxes(boxes_after)
    w1, h1 = b1[:, 2] - b1[:, 0], b1[:, 3] - b1[:, 1]
    w2, h2 = b2[:, 2] - b2[:, 0], b2[:, 3] - b2[:, 1]
    ar = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + eps) > area_thr) & (ar < ar_thr)


def filter_small_boxes(boxes, classes, min_size: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """
    Drop boxes whose shorter side is ``<= min_size`` pixels (the official ``TrainTransform``
    keeps ``min(w, h) > 1``).

    Args:
        boxes: ``(N, 4)`` XYXY boxes.
        classes: ``(N,)`` classes.
        min_size: side length threshold in pixels.

    Returns:
        ``(boxes, classes)`` restricted to the kept boxes.
    """
    boxes = _as_boxes(boxes)
    classes = _as_classes(classes, len(boxes))
    keep = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) > min_size
    return boxes[keep], classes[keep]


# ---------------------------------------------------------------------------------------------
# Photometric / flip
# ---------------------------------------------------------------------------------------------
def flip_boxes(boxes, width: float) -> np.ndarray:
    """
    Mirror XYXY boxes left-right inside an image ``width`` wide: ``x1' = W - x2``,
    ``x2' = W - x1`` (returns a new float64 array).
    """
    boxes = _as_boxes(boxes)
    flipped = boxes.copy()
    flipped[:, 0] = width - boxes[:, 2]
    flipped[:, 2] = width - boxes[:, 0]
    return flipped


def horizontal_flip(image: np.ndarray, boxes) -> Tuple[np.ndarray, np.ndarray]:
    """
    Mirror the image left-right (always; the caller draws the probability).

    Args:
        image: ``HxWxC`` image.
        boxes: ``(N, 4)`` XYXY boxes.

    Returns:
        ``(flipped_image, flipped_boxes)`` with ``x1' = W - x2`` and ``x2' = W - x1``.
    """
    W = image.shape[1]
    if image.dtype == np.uint8 and image.ndim in (2, 3) and (image.ndim == 2 or image.shape[2] <= 4):
        flipped = cv2.flip(image, 1)  # much faster than numpy on 3-byte pixels
        if flipped.ndim == 2 and image.ndim == 3:
            flipped = flipped[:, :, None]
    else:
        flipped = np.ascontiguousarray(image[:, ::-1])
    return flipped, flip_boxes(boxes, W)


def sample_hsv_offsets(
    rng: np.random.Generator, hgain: float = 5.0, sgain: float = 30.0, vgain: float = 30.0
) -> np.ndarray:
    """
    The random part of :func:`augment_hsv`: offsets ``uniform(-1, 1) * gain`` for H, S and V,
    each switched on with probability 1/2, truncated to integers (the official draws).

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


def _write(out: np.ndarray, result: np.ndarray) -> np.ndarray:
    """Make sure an OpenCV result (``dst=out`` or not) is in ``out`` (copy when it is not)."""
    if result is not out and not (result.shape == out.shape and np.shares_memory(result, out)):
        out[...] = result.reshape(out.shape)
    return out


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
        hsv = _write(image, cv2.cvtColor(image, cv2.COLOR_BGR2HSV, dst=image))
    else:
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    _write(hsv, cv2.LUT(hsv, _hsv_lut(offsets), dst=hsv))
    if out is None:
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    return _write(out, cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR, dst=out))


def augment_hsv(
    image: np.ndarray,
    rng: np.random.Generator,
    hgain: float = 5.0,
    sgain: float = 30.0,
    vgain: float = 30.0,
) -> np.ndarray:
    """
    Random HSV jitter with the official YOLOX ranges.

    Offsets ``uniform(-1, 1) * gain`` are drawn for H, S and V, each channel is switched on
    with probability 1/2, offsets are truncated to integers (:func:`sample_hsv_offsets`), then
    hue is shifted modulo 180 (OpenCV's 8-bit hue range) and saturation / value are shifted and
    clipped to [0, 255] (:func:`apply_hsv_offsets`). When all offsets are 0 the image is
    returned unchanged (a copy), without the lossy BGR -> HSV -> BGR round trip.

    Args:
        image: ``HxWx3`` uint8 BGR image (not modified).
        rng: random generator.
        hgain: maximum hue offset (OpenCV hue units, 0..180).
        sgain: maximum saturation offset (0..255 units).
        vgain: maximum value offset (0..255 units).

    Returns:
        The jittered image (new array).
    """
    return apply_hsv_offsets(image, sample_hsv_offsets(rng, hgain, sgain, vgain))


# ---------------------------------------------------------------------------------------------
# Random affine
# ---------------------------------------------------------------------------------------------
def _draw(rng: np.random.Generator, value: RangeLike, center: float = 0.0) -> float:
    """A number from ``[center - value, center + value]`` (scalar) or ``[lo, hi]`` (pair)."""
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(rng.uniform(center - value, center + value))
    value = tuple(value)
    if len(value) != 2:
        raise ValueError(f"Expected a number or a (low, high) pair, got {value!r}")
    return float(rng.uniform(float(value[0]), float(value[1])))


def sample_affine_matrix(
    rng: np.random.Generator,
    input_size: SizeLike,
    output_size: SizeLike,
    degrees: RangeLike = 10.0,
    translate: float = 0.1,
    scale: RangeLike = (0.1, 2.0),
    shear: RangeLike = 2.0,
) -> Tuple[np.ndarray, float]:
    """
    Draw the YOLOX random affine: centre, rotate + scale, shear, translate.

    ``M = T @ S @ R @ C``: ``C`` moves the input centre to the origin, ``R`` rotates by
    ``a ~ U(-degrees, degrees)`` (counter-clockwise on screen) and scales by
    ``s ~ U(scale)``, ``S`` shears by ``U(-shear, shear)`` degrees along x and y and ``T``
    puts the origin at ``U(0.5 - translate, 0.5 + translate)`` times the output size.
    Draw order: angle, scale, shear x, shear y, translation x, translation y.

    Args:
        rng: random generator.
        input_size: ``(height, width)`` of the input image.
        output_size: ``(height, width)`` of the output image.
        degrees: rotation range: ``d`` means ``U(-d, d)``, a pair means ``U(lo, hi)``.
        translate: fraction of the output size for the random translation of the centre.
        scale: scale range: a pair ``(lo, hi)`` or a scalar ``v`` meaning ``U(1 - v, 1 + v)``.
        shear: shear range in degrees (like ``degrees``).

    Returns:
        ``(M, s)``: the ``2x3`` matrix in continuous pixel coordinates and the scale ``s``.
    """
    in_h, in_w = to_hw(input_size)
    out_h, out_w = to_hw(output_size)
    C = np.eye(3)
    C[0, 2], C[1, 2] = -in_w / 2.0, -in_h / 2.0

    angle = math.radians(_draw(rng, degrees))
    s = _draw(rng, scale, center=1.0)
    if s <= 0:
        raise ValueError(f"The affine scale must be positive, drew {s} from {scale!r}")
    R = np.eye(3)
    cos, sin = math.cos(angle) * s, math.sin(angle) * s
    # image y points down: a positive angle turns the picture counter-clockwise on screen
    R[:2, :2] = [[cos, sin], [-sin, cos]]

    S = np.eye(3)
    S[0, 1] = math.tan(math.radians(_draw(rng, shear)))
    S[1, 0] = math.tan(math.radians(_draw(rng, shear)))

    T = np.eye(3)
    T[0, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_w
    T[1, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_h
    M = T @ S @ R @ C
    return M[:2], s


def _clipped_quad_bbox(quads: np.ndarray, width: float, height: float) -> np.ndarray:
    """
    Axis-aligned box of ``quad & [0, width] x [0, height]`` for convex quadrilaterals.

    The visible part of a convex polygon is bounded by its vertices inside the image, its edge
    crossings with the image border, and the image corners inside it; the box is their extent.
    ``quads`` is ``(N, 4, 2)`` (vertices in order); polygons entirely outside give ``[0, 0, 0,
    0]``.
    """
    n = len(quads)
    lims = np.array([width, height], dtype=np.float64)
    a = quads
    d = np.roll(quads, -1, axis=1) - a
    points = [a]
    valid = [((a >= 0) & (a <= lims)).all(-1)]
    for axis in (0, 1):
        other = 1 - axis
        for value in (0.0, lims[axis]):
            with np.errstate(divide="ignore", invalid="ignore"):
                t = (value - a[..., axis]) / d[..., axis]
            p_other = a[..., other] + t * d[..., other]
            ok = np.isfinite(t) & (t >= 0) & (t <= 1) & (p_other >= 0) & (p_other <= lims[other])
            p = np.empty_like(a)
            p[..., axis] = value
            p[..., other] = np.where(ok, p_other, 0.0)
            points.append(p)
            valid.append(ok)
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    rel = corners[None, :, None, :] - a[:, None, :, :]  # (N, corner, edge, 2)
    cross = d[:, None, :, 0] * rel[..., 1] - d[:, None, :, 1] * rel[..., 0]
    diag1, diag2 = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    nondegenerate = np.abs(diag1[:, 0] * diag2[:, 1] - diag1[:, 1] * diag2[:, 0]) > 1e-9
    inside = ((cross >= 0).all(-1) | (cross <= 0).all(-1)) & nondegenerate[:, None]
    points.append(np.broadcast_to(corners, (n, 4, 2)))
    valid.append(inside)
    P = np.concatenate(points, axis=1)
    V = np.concatenate(valid, axis=1)
    lo = np.where(V[..., None], P, np.inf).min(axis=1)
    hi = np.where(V[..., None], P, -np.inf).max(axis=1)
    out = np.concatenate([lo, hi], axis=1)
    out[~V.any(axis=1)] = 0.0
    return out


def apply_affine_to_boxes(
    boxes, M: np.ndarray, width: Optional[float] = None, height: Optional[float] = None
) -> np.ndarray:
    """
    Transform XYXY boxes by a ``2x3`` affine matrix.

    Without ``width`` / ``height`` the result is the axis-aligned box around the four warped
    corners (it contains the whole warped rectangle). With them, it is the box around the part
    of the warped rectangle inside ``[0, width] x [0, height]``: tighter than clipping the
    corner box when a rotated corner leaves the image; boxes entirely outside become
    ``[0, 0, 0, 0]``.

    Args:
        boxes: ``(N, 4)`` XYXY boxes.
        M: ``2x3`` matrix in continuous pixel coordinates.
        width: output image width (clip), optional.
        height: output image height (clip), optional.

    Returns:
        ``(N, 4)`` float64 boxes.
    """
    boxes = _as_boxes(boxes)
    n = len(boxes)
    if n == 0:
        return boxes.copy()
    corners = boxes[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(n * 4, 2)  # clockwise on screen
    corners = (corners @ M[:, :2].T + M[:, 2]).reshape(n, 4, 2)
    hull = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
    if width is None or height is None:
        return hull
    # a quad inside the image is its own visible part: only the others need clipping
    outside = (hull[:, :2] < 0).any(axis=1) | (hull[:, 2] > width) | (hull[:, 3] > height)
    if outside.any():
        hull[outside] = _clipped_quad_bbox(corners[outside], float(width), float(height))
    return hull


def affine_pixel_matrix(M: np.ndarray) -> np.ndarray:
    """
    The ``2x3`` matrix for ``cv2.warpAffine`` (pixel-index coordinates, pixel ``i`` centred at
    ``i``) of a ``2x3`` affine ``M`` in continuous coordinates (pixel ``i`` centred at
    ``i + 0.5``): the half-pixel-centre convention that keeps boxes and pixels aligned.
    """
    M = np.asarray(M, dtype=np.float64)[:2]
    A = M[:, :2]
    return np.concatenate([A, (M[:, 2] + A @ np.array([0.5, 0.5]) - 0.5)[:, None]], axis=1)


def affine_boxes(
    boxes,
    classes,
    M: np.ndarray,
    s: float,
    output_size: SizeLike,
    *,
    wh_thr: float = 2.0,
    ar_thr: float = 20.0,
    area_thr: float = 0.2,
) -> Tuple[np.ndarray, np.ndarray]:
    """
    The box part of :func:`random_affine`: each box becomes the box around the visible part of
    its warped rectangle (:func:`apply_affine_to_boxes`), then boxes are filtered with
    :func:`box_candidates` against the untransformed boxes times the scale ``s``.

    Args:
        boxes: ``(N, 4)`` XYXY boxes of the input image.
        classes: ``(N,)`` classes.
        M: ``2x3`` affine in continuous coordinates (:func:`sample_affine_matrix`).
        s: its scale.
        output_size: ``(height, width)`` of the output image.
        wh_thr: :func:`box_candidates` minimum side after the transform.
        ar_thr: :func:`box_candidates` maximum aspect ratio.
        area_thr: :func:`box_candidates` minimum kept-area fraction.

    Returns:
        ``(boxes, classes)``: the kept boxes (float32) and their classes.
    """
    out_h, out_w = to_hw(output_size)
    boxes = _as_boxes(boxes)
    classes = _as_classes(classes, len(boxes))
    if len(boxes):
        warped = apply_affine_to_boxes(boxes, M, out_w, out_h)
        keep = box_candidates(boxes * s, warped, wh_thr=wh_thr, ar_thr=ar_thr, area_thr=area_thr)
        boxes, classes = warped[keep], classes[keep]
    return boxes.astype(np.float32), classes


def random_affine(
    image: np.ndarray,
    boxes,
    classes,
    rng: np.random.Generator,
    *,
    degrees: RangeLike = 10.0,
    translate: float = 0.1,
    scale: RangeLike = (0.1, 2.0),
    shear: RangeLike = 2.0,
    target_size: Optional[SizeLike] = None,
    border: Sequence[int] = (0, 0),
    fill: int = YOLOX_PAD_VALUE,
    wh_thr: float = 2.0,
    ar_thr: float = 20.0,
    area_thr: float = 0.2,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Random rotation / scale / shear / translation of an image and its boxes
    (see :func:`sample_affine_matrix`); uncovered pixels get ``fill``.

    The input centre lands at the output centre (up to ``translate``), so a ``2h x 2w``
    mosaic canvas warped to ``target_size = (h, w)`` shows its middle part (the official
    YOLOX <= 0.2 behaviour, ``border = -size / 2``). Each box becomes the box around the
    visible part of its warped rectangle (:func:`apply_affine_to_boxes`; the official clips the
    corner box instead, which overshoots when a rotated corner leaves the image), then is
    filtered with :func:`box_candidates` against the untransformed boxes times the
    scale. The pixel warp uses the half-pixel-centre convention, so boxes and pixels agree to
    interpolation accuracy.

    Args:
        image: ``HxWxC`` uint8 image.
        boxes: ``(N, 4)`` XYXY boxes.
        classes: ``(N,)`` classes.
        rng: random generator.
        degrees: rotation range in degrees (see :func:`sample_affine_matrix`).
        translate: translation range, a fraction of the output size.
        scale: scale range ``(lo, hi)`` (the YOLOX mosaic scale) or ``v`` for ``1 +- v``.
        shear: shear range in degrees.
        target_size: output ``(height, width)``; ``None`` means ``(H + 2 * border[0],
            W + 2 * border[1])``.
        border: used only when ``target_size`` is None (YOLOv5 / YOLOX <= 0.2 convention,
            negative values shrink the output).
        fill: value of pixels coming from outside the input.
        wh_thr: :func:`box_candidates` minimum side after the transform.
        ar_thr: :func:`box_candidates` maximum aspect ratio.
        area_thr: :func:`box_candidates` minimum kept-area fraction.

    Returns:
        ``(image, boxes, classes)``: the ``target_size`` image and the kept boxes / classes.
    """
    H, W = image.shape[:2]
    if target_size is None:
        out_h, out_w = H + 2 * int(border[0]), W + 2 * int(border[1])
    else:
        out_h, out_w = to_hw(target_size)
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"Invalid affine output size {(out_h, out_w)}")
    M, s = sample_affine_matrix(rng, (H, W), (out_h, out_w), degrees, translate, scale, shear)
    out = cv2.warpAffine(
        image,
        affine_pixel_matrix(M),
        dsize=(out_w, out_h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=_fill_tuple(fill, image),
    )
    if out.ndim == 2 and image.ndim == 3:
        out = out[:, :, None]
    boxes, classes = affine_boxes(
        boxes, classes, M, s, (out_h, out_w), wh_thr=wh_thr, ar_thr=ar_thr, area_thr=area_thr
    )
    return out, boxes, classes


# ---------------------------------------------------------------------------------------------
# Mosaic / MixUp
# ---------------------------------------------------------------------------------------------
class MosaicTile(NamedTuple):
    """
    Where one image of a mosaic goes, in canvas pixels (see :func:`mosaic_tiles`).

    Attributes:
        r: letterbox ratio ``min(h / H, w / W)`` (boxes are scaled by it).
        height: letterboxed image height ``max(int(H * r), 1)`` (the pixel scale is
            ``height / H`` by ``width / W``).
        width: letterboxed image width.
        x0: canvas x of the letterboxed image's left edge (may be negative).
        y0: canvas y of its top edge (may be negative).
        x1: pasted region ``[x1, x2) x [y1, y2)``: the image cut to the canvas; empty when
            ``x2 <= x1`` or ``y2 <= y1``.
        y1: see ``x1``.
        x2: see ``x1``.
        y2: see ``x1``.
    """

    r: float
    height: int
    width: int
    x0: int
    y0: int
    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def empty(self) -> bool:
        """No pixel of the image lands on the canvas."""
        return self.x2 <= self.x1 or self.y2 <= self.y1


def mosaic_center(rng: np.random.Generator, size: SizeLike) -> Tuple[int, int]:
    """
    The mosaic centre ``(xc, yc)``: uniform in ``[0.5 w, 1.5 w] x [0.5 h, 1.5 h]``, truncated
    to ints, y drawn first (the official order).

    Args:
        rng: random generator.
        size: ``(h, w)`` the network input size (the canvas is ``2h x 2w``).
    """
    h, w = to_hw(size)
    yc = int(rng.uniform(0.5 * h, 1.5 * h))
    xc = int(rng.uniform(0.5 * w, 1.5 * w))
    return xc, yc


def mosaic_tiles(
    image_sizes: Sequence[Optional[Sequence[int]]], center: Tuple[int, int], size: SizeLike
) -> List[Optional[MosaicTile]]:
    """
    Layout of the 4 mosaic images: each is letterbox-resized to fit ``(h, w)``
    (:func:`letterbox_shape`) and placed with a corner at the centre: image 0 top-left, 1
    top-right, 2 bottom-left, 3 bottom-right; parts outside the ``2h x 2w`` canvas are cut.

    Args:
        image_sizes: 4 ``(H, W)`` image sizes; None for an image that is not used (its tile is
            None).
        center: ``(xc, yc)`` from :func:`mosaic_center`.
        size: ``(h, w)``.

    Returns:
        4 :class:`MosaicTile` (or None).
    """
    if len(image_sizes) != 4:
        raise ValueError("A mosaic needs exactly 4 images")
    h, w = to_hw(size)
    xc, yc = (int(v) for v in center)
    tiles: List[Optional[MosaicTile]] = []
    for i, image_size in enumerate(image_sizes):
        if image_size is None:
            tiles.append(None)
            continue
        ih, iw, r = letterbox_shape(tuple(image_size)[:2], (h, w))
        x0 = xc - iw if i in (0, 2) else xc
        y0 = yc - ih if i in (0, 1) else yc
        tiles.append(
            MosaicTile(
                r, ih, iw, x0, y0, max(x0, 0), max(y0, 0), min(x0 + iw, 2 * w), min(y0 + ih, 2 * h)
            )
        )
    return tiles


def mosaic_boxes(
    tiles: Sequence[Optional[MosaicTile]],
    boxes_list: Sequence,
    classes_list: Sequence,
    *,
    wh_thr: float = 2.0,
    ar_thr: float = 20.0,
    area_thr: float = 0.2,
) -> Tuple[np.ndarray, np.ndarray]:
    """
    The box part of :func:`mosaic`: boxes are scaled and shifted with their image, clipped to
    its pasted region and filtered with :func:`box_candidates` against their uncut extent.

    Args:
        tiles: 4 tiles from :func:`mosaic_tiles` (None: the image is not used, its boxes are
            ignored).
        boxes_list: 4 ``(N_i, 4)`` XYXY box arrays, in each image's own pixels.
        classes_list: 4 ``(N_i,)`` class arrays.
        wh_thr: :func:`box_candidates` minimum side.
        ar_thr: :func:`box_candidates` maximum aspect ratio.
        area_thr: :func:`box_candidates` minimum visible-area fraction.

    Returns:
        ``(boxes, classes)`` in canvas pixels (boxes float32).
    """
    all_boxes: List[np.ndarray] = []
    all_classes: List[np.ndarray] = []
    for tile, boxes, classes in zip(tiles, boxes_list, classes_list):
        boxes = _as_boxes(boxes)
        classes = _as_classes(classes, len(boxes))
        if tile is None or len(boxes) == 0:
            continue
        placed = boxes * tile.r + np.array([tile.x0, tile.y0, tile.x0, tile.y0], dtype=np.float64)
        cut = placed.copy()
        cut[:, 0::2] = cut[:, 0::2].clip(tile.x1, max(tile.x2, tile.x1))
        cut[:, 1::2] = cut[:, 1::2].clip(tile.y1, max(tile.y2, tile.y1))
        keep = box_candidates(placed, cut, wh_thr=wh_thr, ar_thr=ar_thr, area_thr=area_thr)
        all_boxes.append(cut[keep])
        all_classes.append(classes[keep])
    if all_boxes:
        return np.concatenate(all_boxes).astype(np.float32), np.concatenate(all_classes)
    return np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)


def _affine3(M: np.ndarray) -> np.ndarray:
    """``3x3`` homogeneous form of a ``2x3`` affine."""
    A = np.eye(3)
    A[:2] = np.asarray(M, dtype=np.float64)[:2]
    return A


def _inverse2x2(A: np.ndarray) -> np.ndarray:
    """Inverse of a 2x2 matrix (closed form; ``np.linalg.inv`` costs far more at this size)."""
    (a, b), (c, d) = A
    det = a * d - b * c
    if det == 0:
        raise ValueError(f"Singular affine matrix {A.tolist()}")
    return np.array([[d, -b], [-c, a]], dtype=np.float64) / det


def _flip3(width: float) -> np.ndarray:
    """``3x3`` left-right mirror of an image ``width`` wide (continuous coordinates)."""
    return np.array([[-1.0, 0.0, float(width)], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def mosaic_slots_visible(
    center: Tuple[int, int], size: SizeLike, M: np.ndarray, margin: float = 1.0
) -> List[bool]:
    """
    Which of the 4 mosaic slots can show in the output of the affine ``M`` (``2h x 2w``
    canvas -> ``(h, w)``), whatever the images' sizes: slot ``i`` is the largest region an
    image placed there can cover (``w x h`` next to the centre, cut to the canvas). A slot is
    visible when it meets the canvas-space bounding box of the output (grown by ``margin``
    canvas pixels for the bilinear footprint). An image in an invisible slot contributes no
    pixel and no box (its boxes are all cut away by the affine), so it need not be read.

    Args:
        center: ``(xc, yc)`` from :func:`mosaic_center`.
        size: ``(h, w)``.
        M: ``2x3`` canvas-to-output affine (continuous coordinates).
        margin: safety margin in canvas pixels.

    Returns:
        4 booleans.
    """
    h, w = to_hw(size)
    xc, yc = center
    M = np.asarray(M, dtype=np.float64)[:2]
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64) - M[:, 2]
    corners = corners @ _inverse2x2(M[:, :2]).T  # output corners in canvas coordinates
    lo = corners.min(axis=0) - margin
    hi = corners.max(axis=0) + margin
    slots = [
        (xc - w, yc - h, xc, yc),
        (xc, yc - h, xc + w, yc),
        (xc - w, yc, xc, yc + h),
        (xc, yc, xc + w, yc + h),
    ]
    visible = []
    for x1, y1, x2, y2 in slots:
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, 2 * w), min(y2, 2 * h)
        visible.append(
            bool(x2 > x1 and y2 > y1 and x1 < hi[0] and x2 > lo[0] and y1 < hi[1] and y2 > lo[1])
        )
    return visible


def _paste_warped_tile(
    out: np.ndarray, image: np.ndarray, tile: MosaicTile, A: np.ndarray, fill: int
) -> None:
    """
    Draw the pasted region of one mosaic image, mapped to the output by the canvas-to-output
    affine ``A`` (3x3, continuous coordinates), into ``out``: one bilinear warp of the source
    pixels it needs (plus a 1-pixel replicated margin, so edge pixels are not blended with the
    fill), restricted to the output pixels whose centres fall inside the region.
    """
    out_h, out_w = out.shape[:2]
    rect = np.array(
        [[tile.x1, tile.y1], [tile.x2, tile.y1], [tile.x2, tile.y2], [tile.x1, tile.y2]], dtype=np.float64
    )
    quad = rect @ A[:2, :2].T + A[:2, 2]
    rx1, ry1 = np.maximum(np.floor(quad.min(axis=0)).astype(np.int64), 0)
    rx2 = min(int(math.ceil(quad[:, 0].max())), out_w)
    ry2 = min(int(math.ceil(quad[:, 1].max())), out_h)
    rx1, ry1 = int(rx1), int(ry1)
    if rx2 <= rx1 or ry2 <= ry1:
        return
    H, W = image.shape[:2]
    sx, sy = tile.width / W, tile.height / H  # the letterbox resize's pixel scale
    # source pixels under the pasted region, with one more pixel on each side when available
    u1 = max(int(math.floor((tile.x1 - tile.x0) / sx)) - 1, 0)
    u2 = min(int(math.ceil((tile.x2 - tile.x0) / sx)) + 1, W)
    v1 = max(int(math.floor((tile.y1 - tile.y0) / sy)) - 1, 0)
    v2 = min(int(math.ceil((tile.y2 - tile.y0) / sy)) + 1, H)
    src = cv2.copyMakeBorder(image[v1:v2, u1:u2], 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    # padded-crop coordinates -> source -> canvas -> output -> ROI
    S = np.array(
        [[sx, 0.0, tile.x0 + (u1 - 1) * sx], [0.0, sy, tile.y0 + (v1 - 1) * sy], [0.0, 0.0, 1.0]]
    )
    shift = np.array([[1.0, 0.0, -rx1], [0.0, 1.0, -ry1], [0.0, 0.0, 1.0]])
    B = shift @ A @ S
    warped = cv2.warpAffine(
        src,
        affine_pixel_matrix(B[:2]),
        dsize=(rx2 - rx1, ry2 - ry1),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=_fill_tuple(fill, out),
    )
    if warped.ndim == 2:
        warped = warped[:, :, None]
    # output pixels (centres at index + 0.5) inside the quad, 1/256 px precision
    pts = np.round((quad - [rx1 + 0.5, ry1 + 0.5]) * 256.0).astype(np.int32)
    mask = np.zeros((ry2 - ry1, rx2 - rx1), dtype=np.uint8)
    cv2.fillConvexPoly(mask, pts, 1, lineType=cv2.LINE_8, shift=8)
    roi = out[ry1:ry2, rx1:rx2]
    if roi.shape[2] <= 4:
        _write(roi, cv2.copyTo(warped, mask, roi))
    else:
        np.copyto(roi, warped, where=mask[:, :, None].astype(bool))


def render_mosaic_affine(
    images: Sequence[Optional[np.ndarray]],
    tiles: Sequence[Optional[MosaicTile]],
    M: np.ndarray,
    size: SizeLike,
    *,
    fill: int = YOLOX_PAD_VALUE,
    flip: bool = False,
) -> np.ndarray:
    """
    The pixels of :func:`mosaic` followed by :func:`random_affine` with the canvas-to-output
    matrix ``M``, without building the ``2h x 2w`` canvas: each output pixel is sampled once
    (bilinear) from the source image whose pasted region contains its centre; pixels of no
    region get ``fill``. Same geometry as the two-step reference; the pixels differ only by
    interpolation (one sampling instead of a resize then a warp) and along tile seams (not
    blended: each side keeps its own edge pixels).

    Args:
        images: the 4 source images (``HxWxC`` uint8, any sizes, C <= 4); None for an image
            that is not drawn (e.g. in a slot that :func:`mosaic_slots_visible` rules out).
        tiles: their :func:`mosaic_tiles` layout.
        M: ``2x3`` canvas-to-output affine in continuous coordinates
            (:func:`sample_affine_matrix` with input size ``(2h, 2w)``).
        size: output ``(h, w)``.
        fill: value of uncovered pixels.
        flip: also mirror the output left-right (as :func:`horizontal_flip` would after).

    Returns:
        The ``h x w x C`` uint8 output (``h x w`` for 2-D inputs).
    """
    if len(images) != 4 or len(tiles) != 4:
        raise ValueError("render_mosaic_affine() needs exactly 4 images and 4 tiles")
    out_h, out_w = to_hw(size)
    first = next((img for img in images if img is not None), None)
    channels = 3 if first is None else (first.shape[2] if first.ndim == 3 else 1)
    out = np.full((out_h, out_w, channels), fill, dtype=np.uint8)
    A = _affine3(M)
    if flip:
        A = _flip3(out_w) @ A
    for img, tile in zip(images, tiles):
        if img is None or tile is None or tile.empty:
            continue
        if img.ndim == 2:
            img = img[:, :, None]
        _paste_warped_tile(out, img, tile, A, fill)
    if first is not None and first.ndim == 2:
        return out[:, :, 0]
    return out


def mosaic(
    images: Sequence[np.ndarray],
    boxes_list: Sequence,
    classes_list: Sequence,
    rng: np.random.Generator,
    size: SizeLike = (640, 640),
    *,
    fill: int = YOLOX_PAD_VALUE,
    wh_thr: float = 2.0,
    ar_thr: float = 20.0,
    area_thr: float = 0.2,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Combine 4 images into a ``2h x 2w`` canvas filled with ``fill`` (the YOLOX mosaic; the
    step-by-step reference of :func:`render_mosaic_affine`).

    A centre ``(xc, yc)`` is drawn uniformly in ``[0.5 w, 1.5 w] x [0.5 h, 1.5 h]``
    (:func:`mosaic_center`). Each image is first letterbox-resized to fit ``(h, w)``
    (:func:`letterbox_resize`), then placed with a corner at the centre: image 0 top-left,
    1 top-right, 2 bottom-left, 3 bottom-right; parts outside the canvas are cut
    (:func:`mosaic_tiles`). Boxes are scaled and shifted with their image, clipped to the
    pasted region and filtered with :func:`box_candidates` against their uncut extent (boxes
    mostly cut off are dropped; :func:`mosaic_boxes`).

    Args:
        images: 4 ``HxWxC`` uint8 images (any sizes).
        boxes_list: 4 ``(N_i, 4)`` XYXY box arrays, in each image's own pixels.
        classes_list: 4 ``(N_i,)`` class arrays.
        rng: random generator.
        size: ``(h, w)``: the network input size; the canvas is ``2h x 2w``.
        fill: value of the empty canvas.
        wh_thr: :func:`box_candidates` minimum side.
        ar_thr: :func:`box_candidates` maximum aspect ratio.
        area_thr: :func:`box_candidates` minimum visible-area fraction.

    Returns:
        ``(canvas, boxes, classes)`` with boxes in canvas pixels.
    """
    if not (len(images) == len(boxes_list) == len(classes_list) == 4):
        raise ValueError("mosaic() needs exactly 4 images, box arrays and class arrays")
    h, w = to_hw(size)
    center = mosaic_center(rng, (h, w))
    channels = images[0].shape[2] if images[0].ndim == 3 else 1
    canvas = np.full((2 * h, 2 * w, channels), fill, dtype=np.uint8)
    tiles = mosaic_tiles([img.shape[:2] for img in images], center, (h, w))
    for img, tile in zip(images, tiles):
        if tile.empty:
            continue
        img, _ = letterbox_resize(img, (h, w))
        if img.ndim == 2:
            img = img[:, :, None]
        canvas[tile.y1 : tile.y2, tile.x1 : tile.x2] = img[
            tile.y1 - tile.y0 : tile.y2 - tile.y0, tile.x1 - tile.x0 : tile.x2 - tile.x0
        ]
    out_boxes, out_classes = mosaic_boxes(
        tiles, boxes_list, classes_list, wh_thr=wh_thr, ar_thr=ar_thr, area_thr=area_thr
    )
    if images[0].ndim == 2:
        canvas = canvas[:, :, 0]
    return canvas, out_boxes, out_classes


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
    """
    th, tw = to_hw(size)
    jit = _draw(rng, scale, center=1.0)
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
    pboxes = clip_boxes(_as_boxes(partner_boxes) * (r * params.jit), cw, ch)
    pclasses = _as_classes(partner_classes, len(pboxes))
    if params.flip:
        pboxes = pboxes[:, [2, 1, 0, 3]] * np.array([-1, 1, -1, 1]) + np.array([cw, 0, cw, 0])
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
    The ``(h, w)`` window of a MixUp partner (what :func:`mixup` blends in) in one bilinear
    warp: letterbox scale, jitter scale, mirror, window offset (and an optional final mirror of
    the whole window, ``flip``) composed; everything outside the partner image is ``fill``.
    Same geometry as the step-by-step :func:`mixup`; pixels differ only by interpolation.

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
        A = _flip3(cw) @ A
    A = np.array([[1.0, 0.0, -params.x_off], [0.0, 1.0, -params.y_off], [0.0, 0.0, 1.0]]) @ A
    if flip:
        A = _flip3(tw) @ A
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
            borderValue=_fill_tuple(fill, partner_image),
        )
        _write(roi, warped)
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


def mixup(
    image: np.ndarray,
    boxes,
    classes,
    partner_image: np.ndarray,
    partner_boxes,
    partner_classes,
    rng: np.random.Generator,
    *,
    scale: RangeLike = (0.5, 1.5),
    flip_prob: float = 0.5,
    fill: int = YOLOX_PAD_VALUE,
    wh_thr: float = 2.0,
    ar_thr: float = 20.0,
    area_thr: float = 0.2,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    YOLOX MixUp (a "copy-paste"-style blend): ``0.5 * image + 0.5 * placed partner``.

    The partner is letterboxed into an ``H x W`` canvas (``fill`` padding, like the official),
    the canvas is resized by ``j ~ U(scale)``, mirrored with probability ``flip_prob``, padded
    with ``fill`` to at least ``H x W``, and a random ``H x W`` window of it (offsets
    ``U{0, extra - 1}``) is blended with ``image`` (truncated to uint8). Draw order: ``j``,
    flip, y offset, x offset (:func:`sample_mixup_params`). Partner boxes follow the same path,
    are clipped to the window and filtered with :func:`box_candidates` against their uncut
    extent (:func:`mixup_partner_boxes`); ``image``'s own boxes are unchanged. (The official
    pads the jittered canvas with 0 rather than 114.) This is the step-by-step reference of
    :func:`warp_mixup_partner` + :func:`average_images`.

    Args:
        image: ``HxWxC`` uint8 image (e.g. the mosaic output).
        boxes: ``(N, 4)`` boxes of ``image``.
        classes: ``(N,)`` classes of ``image``.
        partner_image: the image to blend in (any size).
        partner_boxes: ``(M, 4)`` boxes of ``partner_image`` in its own pixels.
        partner_classes: ``(M,)`` classes.
        rng: random generator.
        scale: range of the partner's random scale jitter ``j``.
        flip_prob: probability of mirroring the partner.
        fill: padding value.
        wh_thr: :func:`box_candidates` minimum side.
        ar_thr: :func:`box_candidates` maximum aspect ratio.
        area_thr: :func:`box_candidates` minimum visible-area fraction.

    Returns:
        ``(image, boxes, classes)``: the blend and the concatenated targets.
    """
    th, tw = image.shape[:2]
    params = sample_mixup_params(rng, (th, tw), scale, flip_prob)
    ch, cw = params.height, params.width

    resized, _ = letterbox_resize(partner_image, (th, tw))
    if resized.ndim == 2:
        resized = resized[:, :, None]
    canvas = pad_to_size(resized, (th, tw), fill)
    canvas = cv2.resize(canvas, (cw, ch), interpolation=cv2.INTER_LINEAR)
    if canvas.ndim == 2:
        canvas = canvas[:, :, None]
    if params.flip:
        canvas = canvas[:, ::-1]
    padded = np.full((max(ch, th), max(cw, tw), canvas.shape[2]), fill, dtype=np.uint8)
    padded[:ch, :cw] = canvas
    window = padded[params.y_off : params.y_off + th, params.x_off : params.x_off + tw]

    pb, pc = mixup_partner_boxes(
        partner_image.shape[:2],
        partner_boxes,
        partner_classes,
        params,
        (th, tw),
        wh_thr=wh_thr,
        ar_thr=ar_thr,
        area_thr=area_thr,
    )
    img = image if image.ndim == 3 else image[:, :, None]
    blended = average_images(np.ascontiguousarray(img), np.ascontiguousarray(window))
    if image.ndim == 2:
        blended = blended[:, :, 0]
    own = _as_boxes(boxes)
    out_boxes = np.concatenate([own, pb]).astype(np.float32)
    out_classes = np.concatenate([_as_classes(classes, len(own)), pc])
    return blended, out_boxes, out_classes
