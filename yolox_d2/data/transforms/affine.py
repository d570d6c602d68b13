"""
The YOLOX random affine (rotation, scale, shear, translation): drawing the matrix, moving boxes
with it (the box around the visible part of each warped rectangle) and the matrix
``cv2.warpAffine`` needs for the pixels.
"""

import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from .boxes import as_boxes, as_classes, box_candidates
from .letterbox import SizeLike, to_hw

__all__ = [
    "RangeLike",
    "draw_uniform",
    "sample_affine_matrix",
    "apply_affine_to_boxes",
    "affine_pixel_matrix",
    "affine_boxes",
]

#: A range: a number ``v`` (``U(center - v, center + v)``) or a pair ``(low, high)``.
RangeLike = Union[float, Sequence[float]]


def draw_uniform(rng: np.random.Generator, value: RangeLike, center: float = 0.0) -> float:
    """
    A uniform number from ``[center - value, center + value]`` (scalar ``value``) or
    ``[lo, hi]`` (pair ``value``).

    Args:
        rng: random generator (one ``uniform`` draw).
        value: the range.
        center: centre of a scalar range.
    """
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(rng.uniform(center - value, center + value))
    value = tuple(value)
    if len(value) != 2:
        raise ValueError(f"Expected a number or a (low, high) pair, got {value!r}")
    return float(rng.uniform(float(value[0]), float(value[1])))


#: Where :func:`sample_affine_matrix` pivots: the input centre or its top-left corner.
AFFINE_PIVOTS = ("center", "origin")
#: The default pivot: the official yolox 0.3.0 one.
DEFAULT_AFFINE_PIVOT = "origin"


def sample_affine_matrix(
    rng: np.random.Generator,
    input_size: SizeLike,
    output_size: SizeLike,
    degrees: RangeLike = 10.0,
    translate: float = 0.1,
    scale: RangeLike = (0.1, 2.0),
    shear: RangeLike = 2.0,
    pivot: str = DEFAULT_AFFINE_PIVOT,
) -> Tuple[np.ndarray, float]:
    """
    Draw the YOLOX random affine: rotate + scale, shear, translate about a pivot.

    ``M = T @ S @ R @ C``: ``C`` moves the pivot to the origin, ``R`` rotates by
    ``a ~ U(-degrees, degrees)`` (counter-clockwise on screen) and scales by
    ``s ~ U(scale)``, ``S`` shears by ``U(-shear, shear)`` degrees along x and y and ``T``
    moves the pivot to its place in the output.
    Draw order: angle, scale, shear x, shear y, translation x, translation y.

    With ``pivot="origin"`` (the default, the official yolox 0.3.0 ``get_affine_matrix``)
    ``C`` is the identity (the input's top-left corner is the pivot) and ``T`` puts it at
    ``U(-translate, translate)`` times the output size: the output shows the top-left part
    of the input. With ``pivot="center"`` ``C`` moves the input centre to the origin and
    ``T`` puts it at ``U(0.5 - translate, 0.5 + translate)`` times the output size. Same
    draws, same order.

    Args:
        rng: random generator.
        input_size: ``(height, width)`` of the input image.
        output_size: ``(height, width)`` of the output image.
        degrees: rotation range: ``d`` means ``U(-d, d)``, a pair means ``U(lo, hi)``.
        translate: fraction of the output size for the random translation of the pivot.
        scale: scale range: a pair ``(lo, hi)`` or a scalar ``v`` meaning ``U(1 - v, 1 + v)``.
        shear: shear range in degrees (like ``degrees``).
        pivot: ``"origin"`` (the input's top-left corner goes to the output's, as the
            official 0.3.0 code does; default) or ``"center"`` (the input centre goes to the
            output centre).

    Returns:
        ``(M, s)``: the ``2x3`` matrix in continuous pixel coordinates and the scale ``s``.
    """
    if pivot not in AFFINE_PIVOTS:
        raise ValueError(f"The affine pivot must be one of {AFFINE_PIVOTS}, got {pivot!r}")
    in_h, in_w = to_hw(input_size)
    out_h, out_w = to_hw(output_size)
    C = np.eye(3)
    if pivot == "center":
        C[0, 2], C[1, 2] = -in_w / 2.0, -in_h / 2.0

    angle = math.radians(draw_uniform(rng, degrees))
    s = draw_uniform(rng, scale, center=1.0)
    if s <= 0:
        raise ValueError(f"The affine scale must be positive, drew {s} from {scale!r}")
    R = np.eye(3)
    cos, sin = math.cos(angle) * s, math.sin(angle) * s
    # image y points down: a positive angle turns the picture counter-clockwise on screen
    R[:2, :2] = [[cos, sin], [-sin, cos]]

    S = np.eye(3)
    S[0, 1] = math.tan(math.radians(draw_uniform(rng, shear)))
    S[1, 0] = math.tan(math.radians(draw_uniform(rng, shear)))

    T = np.eye(3)
    mid = 0.5 if pivot == "center" else 0.0
    T[0, 2] = rng.uniform(mid - translate, mid + translate) * out_w
    T[1, 2] = rng.uniform(mid - translate, mid + translate) * out_h
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
    boxes = as_boxes(boxes)
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
    The box part of the random affine (the pixel part is a ``cv2.warpAffine`` with
    :func:`affine_pixel_matrix`, or the fused renderer
    :func:`~yolox_d2.data.transforms.mosaic.render_mosaic_affine`): each box becomes the box
    around the visible part of its warped rectangle (:func:`apply_affine_to_boxes`), then
    boxes are filtered with :func:`box_candidates` against the untransformed boxes times the
    scale ``s``.

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
    boxes = as_boxes(boxes)
    classes = as_classes(classes, len(boxes))
    if len(boxes):
        warped = apply_affine_to_boxes(boxes, M, out_w, out_h)
        keep = box_candidates(boxes * s, warped, wh_thr=wh_thr, ar_thr=ar_thr, area_thr=area_thr)
        boxes, classes = warped[keep], classes[keep]
    return boxes.astype(np.float32), classes
