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
"""

import logging
import math
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

__all__ = [
    "YOLOX_PAD_VALUE",
    "to_hw",
    "letterbox_resize",
    "pad_to_size",
    "letterbox",
    "clip_boxes",
    "box_candidates",
    "filter_small_boxes",
    "horizontal_flip",
    "augment_hsv",
    "sample_affine_matrix",
    "apply_affine_to_boxes",
    "random_affine",
    "mosaic",
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
    h, w = to_hw(size)
    H, W = image.shape[:2]
    r = min(h / H, w / W)
    new_h, new_w = max(int(H * r), 1), max(int(W * r), 1)
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
    boxes = _as_boxes(boxes)
    flipped = boxes.copy()
    flipped[:, 0] = W - boxes[:, 2]
    flipped[:, 2] = W - boxes[:, 0]
    return np.ascontiguousarray(image[:, ::-1]), flipped


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
    with probability 1/2, offsets are truncated to integers, then hue is shifted modulo 180
    (OpenCV's 8-bit hue range) and saturation / value are shifted and clipped to [0, 255].
    When all offsets are 0 the image is returned unchanged (a copy), without the lossy
    BGR -> HSV -> BGR round trip.

    Args:
        image: ``HxWx3`` uint8 BGR image (not modified).
        rng: random generator.
        hgain: maximum hue offset (OpenCV hue units, 0..180).
        sgain: maximum saturation offset (0..255 units).
        vgain: maximum value offset (0..255 units).

    Returns:
        The jittered image (new array).
    """
    gains = rng.uniform(-1.0, 1.0, 3) * np.array([hgain, sgain, vgain], dtype=np.float64)
    gains *= rng.integers(0, 2, 3)
    offsets = gains.astype(np.int16)
    if not offsets.any():
        return image.copy()
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.int16)
    hsv[..., 0] = (hsv[..., 0] + offsets[0]) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] + offsets[1], 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] + offsets[2], 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)


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
    if width is None or height is None:
        return np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
    return _clipped_quad_bbox(corners, float(width), float(height))


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

    # continuous coords p_c = pixel index + 0.5 ->  pixel-index matrix for cv2.warpAffine
    A = M[:, :2]
    M_pix = np.concatenate([A, (M[:, 2] + A @ np.array([0.5, 0.5]) - 0.5)[:, None]], axis=1)
    out = cv2.warpAffine(
        image,
        M_pix,
        dsize=(out_w, out_h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=_fill_tuple(fill, image),
    )
    if out.ndim == 2 and image.ndim == 3:
        out = out[:, :, None]

    boxes = _as_boxes(boxes)
    classes = _as_classes(classes, len(boxes))
    if len(boxes):
        warped = apply_affine_to_boxes(boxes, M, out_w, out_h)
        keep = box_candidates(boxes * s, warped, wh_thr=wh_thr, ar_thr=ar_thr, area_thr=area_thr)
        boxes, classes = warped[keep], classes[keep]
    return out, boxes.astype(np.float32), classes


# ---------------------------------------------------------------------------------------------
# Mosaic / MixUp
# ---------------------------------------------------------------------------------------------
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
    Combine 4 images into a ``2h x 2w`` canvas filled with ``fill`` (the YOLOX mosaic).

    A centre ``(xc, yc)`` is drawn uniformly in ``[0.5 w, 1.5 w] x [0.5 h, 1.5 h]`` (then
    truncated to ints, y drawn first). Each image is first letterbox-resized to fit ``(h, w)``
    (:func:`letterbox_resize`), then placed with a corner at the centre: image 0 top-left,
    1 top-right, 2 bottom-left, 3 bottom-right; parts outside the canvas are cut. Boxes are
    scaled and shifted with their image, clipped to the pasted region and filtered with
    :func:`box_candidates` against their uncut extent (boxes mostly cut off are dropped).

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
    yc = int(rng.uniform(0.5 * h, 1.5 * h))
    xc = int(rng.uniform(0.5 * w, 1.5 * w))
    channels = images[0].shape[2] if images[0].ndim == 3 else 1
    canvas = np.full((2 * h, 2 * w, channels), fill, dtype=np.uint8)
    all_boxes: List[np.ndarray] = []
    all_classes: List[np.ndarray] = []
    for i, (img, boxes, classes) in enumerate(zip(images, boxes_list, classes_list)):
        img, r = letterbox_resize(img, (h, w))
        if img.ndim == 2:
            img = img[:, :, None]
        ih, iw = img.shape[:2]
        x0 = xc - iw if i in (0, 2) else xc
        y0 = yc - ih if i in (0, 1) else yc
        # pasted region, cut to the canvas
        px1, py1 = max(x0, 0), max(y0, 0)
        px2, py2 = min(x0 + iw, 2 * w), min(y0 + ih, 2 * h)
        if px2 > px1 and py2 > py1:
            canvas[py1:py2, px1:px2] = img[py1 - y0 : py2 - y0, px1 - x0 : px2 - x0]
        boxes = _as_boxes(boxes)
        classes = _as_classes(classes, len(boxes))
        if len(boxes) == 0:
            continue
        placed = boxes * r + np.array([x0, y0, x0, y0], dtype=np.float64)
        cut = placed.copy()
        cut[:, 0::2] = cut[:, 0::2].clip(px1, max(px2, px1))
        cut[:, 1::2] = cut[:, 1::2].clip(py1, max(py2, py1))
        keep = box_candidates(placed, cut, wh_thr=wh_thr, ar_thr=ar_thr, area_thr=area_thr)
        all_boxes.append(cut[keep])
        all_classes.append(classes[keep])
    if all_boxes:
        out_boxes = np.concatenate(all_boxes).astype(np.float32)
        out_classes = np.concatenate(all_classes)
    else:
        out_boxes, out_classes = np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)
    if images[0].ndim == 2:
        canvas = canvas[:, :, 0]
    return canvas, out_boxes, out_classes


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
    flip, y offset, x offset. Partner boxes follow the same path, are clipped to the window
    and filtered with :func:`box_candidates` against their uncut extent; ``image``'s own boxes
    are unchanged. (The official pads the jittered canvas with 0 rather than 114.)

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
    jit = _draw(rng, scale, center=1.0)
    flip = rng.uniform() < flip_prob

    resized, r = letterbox_resize(partner_image, (th, tw))
    if resized.ndim == 2:
        resized = resized[:, :, None]
    canvas = pad_to_size(resized, (th, tw), fill)
    ch, cw = max(int(th * jit), 1), max(int(tw * jit), 1)
    canvas = cv2.resize(canvas, (cw, ch), interpolation=cv2.INTER_LINEAR)
    if canvas.ndim == 2:
        canvas = canvas[:, :, None]
    r *= jit
    pboxes = clip_boxes(_as_boxes(partner_boxes) * r, cw, ch)
    pclasses = _as_classes(partner_classes, len(pboxes))
    if flip:
        canvas = canvas[:, ::-1]
        pboxes = pboxes[:, [2, 1, 0, 3]] * np.array([-1, 1, -1, 1]) + np.array([cw, 0, cw, 0])

    padded = np.full((max(ch, th), max(cw, tw), canvas.shape[2]), fill, dtype=np.uint8)
    padded[:ch, :cw] = canvas
    y_off = int(rng.integers(0, padded.shape[0] - th)) if padded.shape[0] > th else 0
    x_off = int(rng.integers(0, padded.shape[1] - tw)) if padded.shape[1] > tw else 0
    window = padded[y_off : y_off + th, x_off : x_off + tw]

    shifted = pboxes - np.array([x_off, y_off, x_off, y_off], dtype=np.float64)
    cut = clip_boxes(shifted, tw, th)
    keep = box_candidates(shifted, cut, wh_thr=wh_thr, ar_thr=ar_thr, area_thr=area_thr)

    img = image if image.ndim == 3 else image[:, :, None]
    blended = (0.5 * img.astype(np.float32) + 0.5 * window.astype(np.float32)).astype(np.uint8)
    if image.ndim == 2:
        blended = blended[:, :, 0]
    own = _as_boxes(boxes)
    out_boxes = np.concatenate([own, cut[keep]]).astype(np.float32)
    out_classes = np.concatenate([_as_classes(classes, len(own)), pclasses[keep]])
    return blended, out_boxes, out_classes
