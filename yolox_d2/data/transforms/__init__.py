"""
YOLOX training / test augmentations as pure numpy + OpenCV functions.

Conventions used by every function of the package:

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

Modules: :mod:`.letterbox` (sizes, letterbox resize / pad, the CHW test input), :mod:`.boxes`
(box arithmetic), :mod:`.flip`, :mod:`.color` (HSV jitter), :mod:`.affine` (random affine),
:mod:`.mosaic` (mosaic layout, boxes and the fused mosaic + affine renderer), :mod:`.mixup`
and :mod:`.opencv_output` (small OpenCV helpers).

The Mosaic -> random affine -> MixUp chain of
:class:`~yolox_d2.data.mosaic_dataset.MosaicMixupDataset` is *fused*
(:func:`render_mosaic_affine`, :func:`warp_mixup_partner`): every output pixel is sampled
once, bilinearly, straight from the source image it comes from (no ``2h x 2w`` canvas, no
intermediate resize), and a final horizontal flip can be folded into the warps. The
step-by-step reference, where each step produces its full image, lives in
``tests/reference_transforms.py`` and shares every random draw and all the box arithmetic:
for the same draws both give the same boxes and the same pixels up to interpolation (one
bilinear sampling instead of a resize followed by a warp; tile seams are not blended).
"""

from .affine import AFFINE_PIVOTS, DEFAULT_AFFINE_PIVOT, RangeLike, affine_boxes, affine_pixel_matrix, apply_affine_to_boxes, sample_affine_matrix
from .boxes import box_candidates, clip_boxes, filter_small_boxes
from .color import apply_hsv_offsets, sample_hsv_offsets
from .flip import flip_boxes, horizontal_flip
from .letterbox import (
    YOLOX_PAD_VALUE,
    SizeLike,
    letterbox,
    letterbox_chw,
    letterbox_resize,
    letterbox_shape,
    pad_to_size,
    to_hw,
)
from .mixup import MixupParams, average_images, mixup_partner_boxes, sample_mixup_params, warp_mixup_partner
from .mosaic import (
    MosaicTile,
    mosaic_boxes,
    mosaic_center,
    mosaic_slots_visible,
    mosaic_tiles,
    render_mosaic_affine,
)

__all__ = [
    "YOLOX_PAD_VALUE",
    "SizeLike",
    "RangeLike",
    "to_hw",
    "letterbox_shape",
    "letterbox_resize",
    "letterbox_chw",
    "pad_to_size",
    "letterbox",
    "clip_boxes",
    "box_candidates",
    "filter_small_boxes",
    "flip_boxes",
    "horizontal_flip",
    "sample_hsv_offsets",
    "apply_hsv_offsets",
    "sample_affine_matrix",
    "AFFINE_PIVOTS",
    "DEFAULT_AFFINE_PIVOT",
    "affine_pixel_matrix",
    "apply_affine_to_boxes",
    "affine_boxes",
    "MosaicTile",
    "mosaic_center",
    "mosaic_tiles",
    "mosaic_boxes",
    "mosaic_slots_visible",
    "render_mosaic_affine",
    "MixupParams",
    "sample_mixup_params",
    "mixup_partner_boxes",
    "warp_mixup_partner",
    "average_images",
]
