"""
Sliced inference for images much larger than the network input (as the ``sahi`` package
does it, written for Detectron2 models): the image is cut into overlapping square tiles
(:func:`tile_windows`), the tiles run through the model in batches, each at the network input
size, their boxes are shifted back into the image, and the detections of all tiles (plus,
optionally, one pass over the whole image) are merged by :func:`merge_tile_detections`::

    detector = SlicedDetector(model, input_size=(416, 416), tile_size=416, overlap=0.2)
    instances = detector(cv2.imread("orthophoto.png"))["instances"]

An object cut by a tile border gives a truncated box in that tile and, when it is smaller than
the overlap, a whole box in a neighbouring tile. The merge drops the truncated piece when a
whole box of another pass contains it, then runs class-aware NMS over what is left (the
duplicates of objects seen whole by two tiles). An object larger than the overlap is never
whole in any tile and may come out as pieces: choose ``overlap * tile_size`` above the size of
the largest objects, or add the whole-image pass.
"""

import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from detectron2.structures import Boxes, Instances
from detectron2.structures.boxes import pairwise_intersection

from ..data.transforms import SizeLike, letterbox_chw, to_hw
from ..modeling.detection_merging import concat_detections, nms_merge

__all__ = ["tile_windows", "truncated_boxes", "covered_pieces", "merge_tile_detections", "SlicedDetector"]

logger = logging.getLogger(__name__)


def _tile_starts(length: int, tile: int, stride: int) -> List[int]:
    """Starts of the tiles along one axis: every ``stride``, the last one flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def tile_windows(image_size: Tuple[int, int], tile_size: int, overlap: float) -> np.ndarray:
    """
    The tiles covering an image, row by row.

    Tiles are ``tile_size`` squares (a side of the image shorter than ``tile_size`` is covered
    whole), ``tile_size - round(overlap * tile_size)`` apart; the last tile of a row / column
    is moved back to end on the image border, so every tile has the same size.

    Args:
        image_size: ``(h, w)`` of the image.
        tile_size: tile side in pixels, > 0.
        overlap: overlap of neighbouring tiles as a fraction of ``tile_size``, in [0, 1).

    Returns:
        ``(K, 4)`` int64 array of ``[x0, y0, x1, y1]`` tile windows (pixel corners).
    """
    if int(tile_size) <= 0:
        raise ValueError(f"tile_size must be a positive number of pixels, got {tile_size}")
    if not 0.0 <= float(overlap) < 1.0:
        raise ValueError(f"overlap must be a fraction of the tile size in [0, 1), got {overlap}")
    height, width = int(image_size[0]), int(image_size[1])
    tile = int(tile_size)
    stride = max(tile - int(round(float(overlap) * tile)), 1)
    tile_h, tile_w = min(tile, height), min(tile, width)
    windows = [
        [x0, y0, x0 + tile_w, y0 + tile_h]
        for y0 in _tile_starts(height, tile, stride)
        for x0 in _tile_starts(width, tile, stride)
    ]
    return np.asarray(windows, dtype=np.int64)


def truncated_boxes(boxes: Tensor, window: Sequence[int], image_size: Tuple[int, int], margin: float) -> Tensor:
    """
    Which boxes of a tile reach one of its *inner* edges (an edge that is not the image's):
    the boxes of objects the tile may show only in part.

    Args:
        boxes: (N, 4) XYXY boxes in image coordinates.
        window: the tile ``[x0, y0, x1, y1]``.
        image_size: ``(h, w)`` of the image.
        margin: a box edge within this many pixels of an inner edge reaches it.

    Returns:
        (N,) bool.
    """
    x0, y0, x1, y1 = (float(v) for v in window)
    height, width = image_size
    cut = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    if x0 > 0:
        cut |= boxes[:, 0] <= x0 + margin
    if y0 > 0:
        cut |= boxes[:, 1] <= y0 + margin
    if x1 < width:
        cut |= boxes[:, 2] >= x1 - margin
    if y1 < height:
        cut |= boxes[:, 3] >= y1 - margin
    return cut


def merge_tile_detections(
    detections: Sequence[Instances],
    windows: Sequence[Sequence[int]],
    image_size: Tuple[int, int],
    nms_thresh: float,
    containment_thresh: float = 0.8,
    border_margin: float = 2.0,
    max_detections: int = 0,
    class_agnostic: bool = False,
) -> Instances:
    """
    Merge the detections of the tiles of one image (and of a whole-image pass, whose window is
    the whole image and so has no inner edge).

    1. A box that reaches an inner edge of its tile (:func:`truncated_boxes`) is dropped when
       a box of another pass, of the same class, that does not reach an inner edge of its own
       tile covers at least ``containment_thresh`` of its area: it is a piece of that object.
    2. Class-aware NMS at ``nms_thresh`` over the rest, by decreasing score.

    Args:
        detections: per pass, ``Instances`` in image coordinates.
        windows: per pass, its ``[x0, y0, x1, y1]`` window in the image.
        image_size: ``(h, w)`` of the image.
        nms_thresh: IoU of the NMS of step 2 (the model's ``test_nms_thresh``).
        containment_thresh: fraction of a truncated box's area that must lie inside a whole
            box of another pass for it to be dropped.
        border_margin: pixels within which a box edge reaches a tile edge.
        max_detections: keep the best this many (<= 0: all).
        class_agnostic: merge across classes.
    """
    if len(detections) != len(windows):
        raise ValueError(f"{len(detections)} sets of detections for {len(windows)} tile windows")
    merged = concat_detections(detections, image_size)
    boxes = merged.pred_boxes.tensor
    cut = torch.cat(
        [truncated_boxes(d.pred_boxes.tensor, w, image_size, border_margin) for d, w in zip(detections, windows)]
    )
    source = torch.cat(
        [torch.full((len(d),), i, dtype=torch.int64, device=boxes.device) for i, d in enumerate(detections)]
    )
    if bool(cut.any()) and bool((~cut).any()):
        keep = torch.ones(len(merged), dtype=torch.bool, device=boxes.device)
        keep[covered_pieces(merged, cut, source, containment_thresh, class_agnostic)] = False
        merged = merged[keep]
    return nms_merge(merged, nms_thresh, max_detections, class_agnostic)


# Rows of truncated pieces compared at once with the whole boxes: bounds the (pieces x whole)
# comparison to _PIECE_BLOCK x len(whole) booleans and floats, whatever the number of tiles.
_PIECE_BLOCK = 1024


def covered_pieces(
    merged: Instances, cut: Tensor, source: Tensor, containment_thresh: float, class_agnostic: bool
) -> Tensor:
    """
    Indices into ``merged`` of the truncated boxes (``cut``) that a whole box of another pass
    (``source`` differs) and, unless ``class_agnostic``, of the same class covers at least
    ``containment_thresh`` of (see :func:`merge_tile_detections`). Compared in blocks of
    truncated boxes, so memory stays bounded for any number of detections.
    """
    boxes = merged.pred_boxes.tensor
    pieces, whole = torch.nonzero(cut).squeeze(1), torch.nonzero(~cut).squeeze(1)
    whole_boxes = Boxes(boxes[whole])
    whole_source, whole_classes = source[whole][None, :], merged.pred_classes[whole][None, :]
    dropped = []
    for start in range(0, len(pieces), _PIECE_BLOCK):
        block = pieces[start : start + _PIECE_BLOCK]
        piece_boxes = Boxes(boxes[block])
        inside = pairwise_intersection(piece_boxes, whole_boxes)
        covers = inside >= containment_thresh * piece_boxes.area().clamp(min=1e-6)[:, None]
        covers &= source[block][:, None] != whole_source
        if not class_agnostic:
            covers &= merged.pred_classes[block][:, None] == whole_classes
        dropped.append(block[covers.any(dim=1)])
    return torch.cat(dropped)


class SlicedDetector:
    """
    Run a Detectron2 detector on overlapping tiles of a large BGR image and merge the results
    (see the module docstring). Each tile is letterboxed to ``input_size`` (as
    :class:`~yolox_d2.engine.YOLOXPredictor` does with a whole image) and the tiles go
    through the model ``batch_size`` at a time; the result is in the image's coordinates.
    """

    def __init__(
        self,
        model: nn.Module,
        input_size: SizeLike,
        tile_size: int,
        overlap: float = 0.2,
        whole_image: bool = False,
        batch_size: int = 8,
        nms_thresh: Optional[float] = None,
        containment_thresh: float = 0.8,
        border_margin: float = 2.0,
        max_detections: int = 0,
    ):
        """
        Args:
            model: the detector in eval mode: ``model(list[dict])`` with ``"image"`` (3, h, w)
                BGR and ``"height"`` / ``"width"``, returning ``[{"instances"}]`` in those
                coordinates (e.g. :class:`~yolox_d2.modeling.YOLOX`).
            input_size: the network input ``(h, w)`` (or an int) each tile is letterboxed to.
            tile_size: tile side in pixels of the image.
            overlap: overlap of neighbouring tiles, a fraction of ``tile_size`` in [0, 1).
            whole_image: also run once on the whole image (letterboxed to ``input_size``) and
                merge it with the tiles: large objects are seen whole.
            batch_size: tiles per model call.
            nms_thresh: IoU of the merge's NMS; default the model's ``test_nms_thresh``
                (0.65 if it has none).
            containment_thresh, border_margin: see :func:`merge_tile_detections`.
            max_detections: detections kept per image after merging (<= 0: all; each tile
                keeps the model's own ``max_detections_per_image``).
        """
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        tile_windows((int(tile_size), int(tile_size)), tile_size, overlap)  # checks the arguments
        self.model = model
        self.input_size = to_hw(input_size)
        self.tile_size = int(tile_size)
        self.overlap = float(overlap)
        self.whole_image = bool(whole_image)
        self.batch_size = int(batch_size)
        self.nms_thresh = float(nms_thresh if nms_thresh is not None else getattr(model, "test_nms_thresh", 0.65))
        self.containment_thresh = float(containment_thresh)
        self.border_margin = float(border_margin)
        self.max_detections = int(max_detections)
        self.class_agnostic = bool(getattr(model, "test_class_agnostic_nms", False))

    def _input(self, image_bgr: np.ndarray) -> Dict[str, Any]:
        chw, _ = letterbox_chw(image_bgr, self.input_size)
        return {"image": torch.from_numpy(chw), "height": image_bgr.shape[0], "width": image_bgr.shape[1]}

    @torch.no_grad()
    def __call__(self, image_bgr: np.ndarray) -> Dict[str, Instances]:
        """
        Args:
            image_bgr: (H, W, 3) uint8 BGR image.

        Returns:
            ``{"instances": Instances}`` in the image's coordinates, by decreasing score.
        """
        if not isinstance(image_bgr, np.ndarray) or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise ValueError(
                "SlicedDetector expects an (H, W, 3) BGR numpy image, got "
                f"{type(image_bgr).__name__} {getattr(image_bgr, 'shape', '')}"
            )
        image_size = (int(image_bgr.shape[0]), int(image_bgr.shape[1]))
        windows = [list(map(int, w)) for w in tile_windows(image_size, self.tile_size, self.overlap)]
        detections: List[Instances] = []
        for start in range(0, len(windows), self.batch_size):
            chunk = windows[start : start + self.batch_size]
            outputs = self.model([self._input(image_bgr[y0:y1, x0:x1]) for x0, y0, x1, y1 in chunk])
            for (x0, y0, _, _), output in zip(chunk, outputs):
                tile = output["instances"]
                shift = tile.pred_boxes.tensor.new_tensor([x0, y0, x0, y0])
                detections.append(
                    Instances(
                        image_size,
                        pred_boxes=Boxes(tile.pred_boxes.tensor + shift),
                        scores=tile.scores,
                        pred_classes=tile.pred_classes,
                    )
                )
        if self.whole_image:
            detections.append(self.model([self._input(image_bgr)])[0]["instances"])
            windows.append([0, 0, image_size[1], image_size[0]])
        logger.debug("Sliced %s into %d tiles of %d px", image_size, len(windows) - self.whole_image, self.tile_size)
        merged = merge_tile_detections(
            detections,
            windows,
            image_size,
            nms_thresh=self.nms_thresh,
            containment_thresh=self.containment_thresh,
            border_margin=self.border_margin,
            max_detections=self.max_detections,
            class_agnostic=self.class_agnostic,
        )
        return {"instances": merged}
