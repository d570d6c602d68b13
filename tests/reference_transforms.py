"""
Step-by-step reference of the YOLOX Mosaic -> random affine -> MixUp chain (and the HSV jitter
in one call), used by the tests only: each step produces its full image (the ``2h x 2w``
mosaic canvas, the warped image, the letterboxed MixUp canvas, ...).

The library renders the same chain fused (:func:`yolox_d2.data.transforms.render_mosaic_affine`,
:func:`yolox_d2.data.transforms.warp_mixup_partner`); both share every random draw and all the
box arithmetic (the functions of :mod:`yolox_d2.data.transforms` called here), so the tests can
check that they give the same boxes and the same pixels up to interpolation. Conventions: see
:mod:`yolox_d2.data.transforms`.
"""

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from yolox_d2.data.transforms import (
    YOLOX_PAD_VALUE,
    SizeLike,
    RangeLike,
    affine_boxes,
    affine_pixel_matrix,
    apply_hsv_offsets,
    average_images,
    letterbox_resize,
    mixup_partner_boxes,
    mosaic_boxes,
    mosaic_center,
    mosaic_tiles,
    pad_to_size,
    sample_affine_matrix,
    sample_hsv_offsets,
    sample_mixup_params,
    to_hw,
)
from yolox_d2.data.transforms.boxes import as_boxes, as_classes
from yolox_d2.data.transforms.opencv_output import border_value

__all__ = ["augment_hsv", "random_affine", "mosaic", "mixup"]


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
    M, s = sample_affine_matrix(rng, (H, W), (out_h, out_w), degrees, translate, scale, shear, pivot="center")
    out = cv2.warpAffine(
        image,
        affine_pixel_matrix(M),
        dsize=(out_w, out_h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border_value(fill, image),
    )
    if out.ndim == 2 and image.ndim == 3:
        out = out[:, :, None]
    boxes, classes = affine_boxes(
        boxes, classes, M, s, (out_h, out_w), wh_thr=wh_thr, ar_thr=ar_thr, area_thr=area_thr
    )
    return out, boxes, classes


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
    own = as_boxes(boxes)
    out_boxes = np.concatenate([own, pb]).astype(np.float32)
    out_classes = np.concatenate([as_classes(classes, len(own)), pc])
    return blended, out_boxes, out_classes
