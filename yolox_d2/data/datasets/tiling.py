"""
Cutting large annotated photos into overlapping tiles: :func:`tile_starts` places the tiles
along one axis, :func:`boxes_in_tile` keeps (and clips) the boxes of a tile, and
:func:`build_tiles` writes the tiles of :class:`~yolox_d2.data.datasets.voc_xml.VOCSource`
photos as PNG files and returns their Detectron2 dataset dicts, split by source photo.
"""

import logging
import os
from typing import Any, Dict, List, Sequence, Tuple

import cv2
import numpy as np
from detectron2.structures import BoxMode

from .voc_xml import VOCSource

__all__ = ["check_tiling_params", "tile_starts", "boxes_in_tile", "build_tiles"]

logger = logging.getLogger(__name__)


def check_tiling_params(tile_size: int, overlap: int, min_visible: float) -> None:
    """
    Raise ``ValueError`` naming the first invalid tiling parameter.

    Args:
        tile_size: tile side in pixels, > 0.
        overlap: overlap between neighbouring tiles, in ``[0, tile_size)``.
        min_visible: minimum visible area fraction of a kept box, in ``(0, 1]``.
    """
    if tile_size <= 0:
        raise ValueError(f"tile_size must be positive, got {tile_size}")
    if not 0 <= overlap < tile_size:
        raise ValueError(f"overlap must be in [0, tile_size), got {overlap}")
    if not 0.0 < min_visible <= 1.0:
        raise ValueError(f"min_visible must be in (0, 1], got {min_visible}")


def tile_starts(length: int, tile: int, stride: int) -> List[int]:
    """
    Tile start offsets along one axis: ``0, stride, 2*stride, ...`` plus a last tile flush
    with the end, so the tiles cover ``[0, length)``; a single ``[0, length)`` tile when
    ``length <= tile``.

    Args:
        length: image size along the axis.
        tile: tile size.
        stride: step between tiles (``tile - overlap``), > 0.
    """
    if stride <= 0:
        raise ValueError(f"Tile stride must be positive, got {stride}")
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def boxes_in_tile(
    boxes: np.ndarray, tile_box: Sequence[float], min_visible: float
) -> Tuple[np.ndarray, np.ndarray]:
    """
    Boxes of a photo that belong to a tile, in tile coordinates.

    Args:
        boxes: ``(N, 4)`` XYXY boxes in photo pixels.
        tile_box: ``(x0, y0, x1, y1)`` of the tile in photo pixels.
        min_visible: keep a box when at least this fraction of its area is inside the tile.

    Returns:
        ``(clipped boxes relative to the tile, indices of the kept boxes)``.
    """
    x0, y0, x1, y1 = tile_box
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    clipped = boxes.copy()
    clipped[:, 0::2] = clipped[:, 0::2].clip(x0, x1)
    clipped[:, 1::2] = clipped[:, 1::2].clip(y0, y1)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = np.nonzero((area > 0) & (inside > 0) & (inside >= min_visible * area))[0]
    return clipped[keep] - np.array([x0, y0, x0, y0], dtype=np.float64), keep


def _read_photo(src: VOCSource) -> np.ndarray:
    """The BGR photo of ``src``; warns when its size differs from the xml's."""
    image = cv2.imread(src.image_path, cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"Cannot read source photo {src.image_path!r}")
    H, W = image.shape[:2]
    if (src.width, src.height) != (W, H) and src.width is not None:
        logger.warning(
            "%s: xml size %sx%s != image size %dx%d; using the image size",
            src.xml_path,
            src.width,
            src.height,
            W,
            H,
        )
    return image


def _tile_record(
    src: VOCSource,
    file_name: str,
    tile_box: List[int],
    image_id: int,
    boxes: np.ndarray,
    keep: np.ndarray,
) -> Dict[str, Any]:
    """The dataset dict of one tile (boxes from :func:`boxes_in_tile`, all of class 0)."""
    x0, y0, x1, y1 = tile_box
    return {
        "file_name": file_name,
        "height": y1 - y0,
        "width": x1 - x0,
        "image_id": image_id,
        "source_image": src.name,
        "tile_box": tile_box,
        "annotations": [
            {
                "bbox": [round(float(v), 3) for v in b],
                "bbox_mode": int(BoxMode.XYXY_ABS),
                "category_id": 0,
                "iscrowd": 0,
                "source_label": src.labels[int(k)],
            }
            for b, k in zip(boxes, keep)
        ],
    }


def build_tiles(
    sources: Sequence[VOCSource],
    out_dir: str,
    tile_size: int,
    overlap: int,
    min_visible: float,
    val_sources: Sequence[str],
) -> Dict[str, List[Dict[str, Any]]]:
    """
    Write the tiles of every source photo to ``out_dir``; return the per-split records.

    Tiles are ``tile_size`` squares (smaller at a photo smaller than that) with stride
    ``tile_size - overlap``, the last one flush with the photo's edge (:func:`tile_starts`),
    named ``<source name>_x<x0>_y<y0>.png``. The photo's decoded size is used (a differing
    xml size is warned about).

    Args:
        sources: the annotated photos.
        out_dir: an existing directory for the PNG tiles.
        tile_size: tile side in pixels.
        overlap: overlap between neighbouring tiles in pixels.
        min_visible: keep a box in a tile when at least this fraction of its area is inside.
        val_sources: names of the sources whose tiles form the ``"val"`` split; the others
            form ``"train"``.

    Returns:
        ``{"train": [...], "val": [...]}`` JSON-serialisable dataset dicts: ``file_name``
        (relative to ``out_dir``), ``height``, ``width``, ``image_id`` (0, 1, ... over both
        splits), ``source_image``, ``tile_box`` and ``annotations`` (``bbox`` XYXY in tile
        pixels rounded to 3 decimals, ``bbox_mode`` as an int, ``category_id`` 0: one class,
        ``iscrowd`` 0, and the VOC label as ``source_label``).

    Raises:
        OSError: a photo cannot be read or a tile cannot be written.
    """
    splits: Dict[str, List[Dict[str, Any]]] = {"train": [], "val": []}
    stride = tile_size - overlap
    image_id = 0
    for src in sources:
        image = _read_photo(src)
        H, W = image.shape[:2]
        split = "val" if src.name in val_sources else "train"
        for y0 in tile_starts(H, tile_size, stride):
            for x0 in tile_starts(W, tile_size, stride):
                x1, y1 = min(x0 + tile_size, W), min(y0 + tile_size, H)
                boxes, keep = boxes_in_tile(src.boxes, (x0, y0, x1, y1), min_visible)
                rel = f"{src.name}_x{x0}_y{y0}.png"
                if not cv2.imwrite(os.path.join(out_dir, rel), image[y0:y1, x0:x1]):
                    raise OSError(f"Cannot write tile {os.path.join(out_dir, rel)!r}")
                splits[split].append(_tile_record(src, rel, [x0, y0, x1, y1], image_id, boxes, keep))
                image_id += 1
    return splits
