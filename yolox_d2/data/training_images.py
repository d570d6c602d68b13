"""
:class:`TrainingImages`: the training set behind
:class:`~yolox_d2.data.mosaic_dataset.MosaicMixupDataset` as compact records (file, size, XYXY
boxes, classes; serialized to keep DataLoader worker memory flat), each loaded with its boxes
clipped to the decoded image.

An entry whose image cannot be decoded is reported once (a warning naming the file and
``image_id``) and remembered by the process: :meth:`TrainingImages.load` raises
:class:`UnreadableImage` naming the entry, :meth:`TrainingImages.readable` draws a replacement
that is not known to be unreadable.

Optionally the decoded images are kept in a RAM cache shared by the DataLoader workers
(:class:`~yolox_d2.data.image_cache.SharedImageCache`): each file is then decoded once per
rank while it stays unchanged, with the same pixels as without the cache.
"""

import logging
from typing import Any, Dict, Optional, Sequence, Set, Tuple

import numpy as np
from detectron2.data.common import DatasetFromList
from detectron2.structures import BoxMode

from .image_cache import SharedImageCache
from .image_io import ImageReadError, read_training_image
from .transforms import clip_boxes

__all__ = ["TrainingImages", "UnreadableImage", "compact_record"]

logger = logging.getLogger(__name__)


def compact_record(d: Dict[str, Any]) -> Dict[str, Any]:
    """
    Keep what training needs from a *validated* dataset dict (see
    :func:`~yolox_d2.data.validation.validate_dataset_dicts`): boxes as an XYXY_ABS float32
    array and int64 classes, crowd boxes left out. Boxes are clipped later, against the
    decoded image.

    Args:
        d: a validated Detectron2 dataset dict.

    Returns:
        ``{"file_name", "image_id", "height", "width" (when the dict has them), "boxes",
        "classes"}``.
    """
    boxes, classes = [], []
    for ann in d.get("annotations", []):
        if ann.get("iscrowd", 0):
            continue
        boxes.append(BoxMode.convert(list(ann["bbox"]), BoxMode(ann["bbox_mode"]), BoxMode.XYXY_ABS))
        classes.append(int(ann["category_id"]))
    size = {"height": int(d["height"]), "width": int(d["width"])} if "height" in d and "width" in d else {}
    return {
        "file_name": d["file_name"],
        "image_id": d.get("image_id"),
        **size,
        "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        "classes": np.asarray(classes, dtype=np.int64),
    }


class UnreadableImage(Exception):
    """Dataset entry ``index`` could not be loaded (the error is ``cause``)."""

    def __init__(self, index: int, cause: ImageReadError) -> None:
        """
        Args:
            index: the entry of :class:`TrainingImages`.
            cause: the read error (it names the file and ``image_id``).
        """
        super().__init__(str(cause))
        self.index = index
        self.cause = cause


class TrainingImages:
    """
    The compact records of validated training dataset dicts (:func:`compact_record`), read
    with :func:`~yolox_d2.data.image_io.read_training_image`, and the entries this process
    found unreadable.

    Attributes:
        annotated: ``int64`` indices of the entries with at least one box (MixUp partners).
        cache: the shared decoded-image cache (None: images are decoded on every use).
    """

    def __init__(
        self,
        dataset_dicts: Sequence[Dict[str, Any]],
        cache_images: bool = False,
        cache_max_bytes: Optional[int] = None,
    ) -> None:
        """
        Args:
            dataset_dicts: *validated* Detectron2 dataset dicts
                (:func:`~yolox_d2.data.validation.validate_dataset_dicts`), not empty.
            cache_images: keep the decoded images in a
                :class:`~yolox_d2.data.image_cache.SharedImageCache` in ``/dev/shm``
                (``height * width * 3`` bytes per image with a declared size, reserved up
                front, within ``cache_max_bytes``; files changed on disk are decoded again).
            cache_max_bytes: the cache's bound in bytes; None: half the free space of
                ``/dev/shm``. Images beyond it (in dataset order) are not cached.
        """
        records = [compact_record(d) for d in dataset_dicts]
        self.annotated = np.asarray([i for i, r in enumerate(records) if len(r["boxes"])], dtype=np.int64)
        self.cache: Optional[SharedImageCache] = None
        if cache_images:
            slots = [r["height"] * r["width"] * 3 if "height" in r else 0 for r in records]
            self.cache = SharedImageCache(slots, max_bytes=cache_max_bytes)
        self._records = DatasetFromList(records, copy=False, serialize=True)
        # Entries this process failed to decode (per process: workers learn on their own).
        self._bad_indices: Set[int] = set()

    def __len__(self) -> int:
        return len(self._records)

    def record(self, index: int) -> Dict[str, Any]:
        """The compact record of entry ``index`` (``file_name``, ``image_id``, ``boxes``, ...)."""
        return self._records[int(index)]

    def load(self, index: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Dict[str, Any]]:
        """
        Image (BGR), boxes (XYXY, clipped to the decoded image; boxes left empty are dropped),
        classes and the compact record of dataset entry ``index``.

        Args:
            index: the entry.

        Raises:
            UnreadableImage: the image cannot be decoded (logged once per file; the entry
                is remembered as bad).
        """
        index = int(index)
        record = self._records[index]
        try:
            if self.cache is None:
                image = read_training_image(record)
            else:
                image = self.cache.get(index, record["file_name"], lambda: read_training_image(record))
        except ImageReadError as e:
            if index not in self._bad_indices:
                self._bad_indices.add(index)
                logger.warning(
                    "Skipping training image %s (image_id=%r): %s. Another image is drawn "
                    "instead (%d unreadable so far in this process).",
                    record["file_name"],
                    record["image_id"],
                    e,
                    len(self._bad_indices),
                )
            raise UnreadableImage(index, e) from e
        h, w = image.shape[:2]
        boxes = record["boxes"].astype(np.float64)
        classes = record["classes"].copy()
        if len(boxes):
            # Boxes are clipped to the *decoded* image (EXIF applied), not to the declared size.
            boxes = clip_boxes(boxes, w, h)
            keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            if not keep.all():
                logger.debug(
                    "%s (image_id=%r): %d boxes outside the %dx%d image dropped",
                    record["file_name"],
                    record["image_id"],
                    int((~keep).sum()),
                    w,
                    h,
                )
                boxes, classes = boxes[keep], classes[keep]
        return image, boxes, classes, record

    def readable(self, index: int, rng: np.random.Generator, pool: Optional[np.ndarray] = None) -> int:
        """
        ``index`` if it is not known to be unreadable, else a uniform redraw (from ``pool``,
        default the whole dataset) that is not known to be unreadable; -1 when every entry of
        ``pool`` is unreadable.

        Args:
            index: the entry drawn.
            rng: the generator of any redraw.
            pool: the entries to redraw from (e.g. :attr:`annotated`); None: all.

        Raises:
            RuntimeError: every image of the dataset is unreadable.
        """
        if index not in self._bad_indices:
            return index
        n = len(self) if pool is None else len(pool)
        for _ in range(64):
            j = int(rng.integers(0, n)) if pool is None else int(pool[rng.integers(0, n)])
            if j not in self._bad_indices:
                return j
        candidates = [
            i for i in (range(n) if pool is None else pool.tolist()) if i not in self._bad_indices
        ]
        if not candidates:
            if pool is not None:
                return -1
            raise RuntimeError(
                f"MosaicMixupDataset: every image is unreadable ({len(self._bad_indices)} "
                "failed in this process); see the warnings above for the files"
            )
        return int(candidates[rng.integers(0, len(candidates))])
