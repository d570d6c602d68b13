"""
The YOLOX mosaic, rendered together with the random affine that follows it: the mosaic centre
and the layout of its 4 images (:func:`mosaic_tiles`), their boxes (:func:`mosaic_boxes`),
which slots can show in the output (:func:`mosaic_slots_visible`) and the output pixels, each
sampled once from its source image (:func:`render_mosaic_affine`, no ``2h x 2w`` canvas).

The step-by-step reference (build the canvas, then warp it) is ``mosaic`` /
``random_affine`` in ``tests/reference_transforms.py``; the tests check both give the same
boxes and the same pixels up to interpolation.
"""

import math
from typing import List, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np

from .affine import affine_pixel_matrix
from .boxes import as_boxes, as_classes, box_candidates
from .flip import flip_matrix
from .letterbox import YOLOX_PAD_VALUE, SizeLike, letterbox_shape, to_hw
from .opencv_output import border_value, write_into

__all__ = [
    "MosaicTile",
    "mosaic_center",
    "mosaic_tiles",
    "mosaic_boxes",
    "mosaic_slots_visible",
    "render_mosaic_affine",
]


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
    The box part of the mosaic (on its ``2h x 2w`` canvas): boxes are scaled and shifted with
    their image, clipped to its pasted region and filtered with :func:`box_candidates` against
    their uncut extent.

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
        boxes = as_boxes(boxes)
        classes = as_classes(classes, len(boxes))
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
        borderValue=border_value(fill, out),
    )
    if warped.ndim == 2:
        warped = warped[:, :, None]
    # output pixels (centres at index + 0.5) inside the quad, 1/256 px precision
    pts = np.round((quad - [rx1 + 0.5, ry1 + 0.5]) * 256.0).astype(np.int32)
    mask = np.zeros((ry2 - ry1, rx2 - rx1), dtype=np.uint8)
    cv2.fillConvexPoly(mask, pts, 1, lineType=cv2.LINE_8, shift=8)
    roi = out[ry1:ry2, rx1:rx2]
    if roi.shape[2] <= 4:
        write_into(roi, cv2.copyTo(warped, mask, roi))
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
    The pixels of the mosaic of ``images`` (laid out by ``tiles``) warped to ``size`` by the
    canvas-to-output affine ``M`` (the random affine), without building the ``2h x 2w``
    canvas: each output pixel is sampled once (bilinear) from the source image whose pasted
    region contains its centre; pixels of no region get ``fill``. Same geometry as the
    two-step reference (``tests/reference_transforms.py``); the pixels differ only by
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
        A = flip_matrix(out_w) @ A
    for img, tile in zip(images, tiles):
        if img is None or tile is None or tile.empty:
            continue
        if img.ndim == 2:
            img = img[:, :, None]
        _paste_warped_tile(out, img, tile, A, fill)
    if first is not None and first.ndim == 2:
        return out[:, :, 0]
    return out
