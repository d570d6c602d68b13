"""
Pictures of training samples exactly as the model receives them, for checking a dataset and
its augmentation before training (``tools/browse_dataset.py``).

:class:`TrainingSampleBrowser` builds a config's training dataset (``dataloader.train.dataset``,
a :class:`~yolox_d2.data.mosaic.MosaicMixupDataset`) and draws each sample with Detectron2's
``Visualizer``: on the left the model input (``image_size``, after Mosaic / affine / MixUp /
HSV / flip, or the plain letterbox with ``no_aug``) with its ``gt_boxes`` / ``gt_classes``, on
the right the source image of the sample's primary record with the record's annotations,
scaled to the same height (the output file names the record). Class names are the dataset's ``thing_classes``. Multi-scale
training resizes whole batches inside the model afterwards; it is not shown.
"""

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
from detectron2.config import instantiate
from detectron2.data import MetadataCatalog
from detectron2.structures import BoxMode
from detectron2.utils.colormap import colormap
from detectron2.utils.registry import locate
from detectron2.utils.visualizer import Visualizer

from .mappers import read_image_bgr
from .validation.metadata import dataset_names

__all__ = ["TrainingSampleBrowser", "side_by_side"]

#: Width in pixels of the white line between the two halves of a picture.
SEPARATOR = 4
_COLORS = colormap(rgb=True, maximum=1)


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left`` and ``right`` (same height) put side by side, with a white line between them."""
    line = np.full((left.shape[0], SEPARATOR, 3), 255, dtype=np.uint8)
    return np.concatenate([left, line, right], axis=1)


def _scaled_to_height(image: np.ndarray, boxes: np.ndarray, height: int) -> Tuple[np.ndarray, np.ndarray]:
    """``image`` resized to ``height`` (aspect ratio kept) and its XYXY ``boxes`` with it."""
    h, w = image.shape[:2]
    width = max(int(round(w * height / h)), 1)
    resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if height < h else cv2.INTER_LINEAR)
    return resized, boxes * np.asarray([width / w, height / h] * 2)


def _draw(image_bgr: np.ndarray, boxes: np.ndarray, classes: Sequence[int], names: Optional[List[str]], title: str):
    """``image_bgr`` with XYXY ``boxes`` labelled by class name and a title, as BGR."""
    visualizer = Visualizer(image_bgr[:, :, ::-1], metadata=None)
    labels = [names[c] if names is not None and 0 <= c < len(names) else str(c) for c in classes]
    colors = [_COLORS[c % len(_COLORS)] for c in classes]
    visualizer.overlay_instances(boxes=boxes, labels=labels, assigned_colors=colors)
    visualizer.draw_text(title, (4, 2), horizontal_alignment="left", color="w")
    return np.ascontiguousarray(visualizer.output.get_image()[:, :, ::-1])


def _record_boxes(record: Mapping[str, Any]) -> Tuple[np.ndarray, List[int]]:
    """XYXY_ABS boxes and class ids of a dataset dict's annotations."""
    boxes, classes = [], []
    for ann in record.get("annotations", []):
        boxes.append(BoxMode.convert(list(ann["bbox"]), BoxMode(ann["bbox_mode"]), BoxMode.XYXY_ABS))
        classes.append(int(ann["category_id"]))
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), classes


class TrainingSampleBrowser:
    """Draws the samples of a LazyConfig's training dataset next to their source images."""

    def __init__(self, dataset_cfg: Any, *, no_aug: bool = False):
        """
        Args:
            dataset_cfg: the config node of the training dataset (``cfg.dataloader.train.dataset``):
                a :class:`~yolox_d2.data.mosaic.MosaicMixupDataset` call whose
                ``dataset_dicts`` is a list or a call returning one (e.g.
                ``get_validated_dataset_dicts(names=...)``, whose ``names`` give the metadata).
            no_aug: show the "no augmentation" phase of the recipe (the dataset's
                ``set_mosaic_enabled(False)``: letterbox, HSV and flip only).

        Raises:
            ValueError: the node has no ``dataset_dicts`` or the dataset no mosaic switch.
        """
        if "dataset_dicts" not in dataset_cfg or "_target_" not in dataset_cfg:
            raise ValueError(
                "dataloader.train.dataset must be a call with a 'dataset_dicts' argument "
                "(MosaicMixupDataset), got keys " + ", ".join(map(str, dataset_cfg))
            )
        # The records are built once and given to the dataset, so that each sample's
        # primary record (and its annotations) can be found again.
        self.records = instantiate(dataset_cfg.dataset_dicts)
        target = dataset_cfg["_target_"]
        target = locate(target) if isinstance(target, str) else target
        kwargs = {k: instantiate(v) for k, v in dataset_cfg.items() if k not in ("_target_", "dataset_dicts")}
        self.dataset = target(dataset_dicts=self.records, **kwargs)
        if no_aug:
            if not callable(getattr(self.dataset, "set_mosaic_enabled", None)):
                raise ValueError(f"{type(self.dataset).__name__} has no set_mosaic_enabled(): no --no-aug phase")
            self.dataset.set_mosaic_enabled(False)
        self.no_aug = bool(no_aug)
        self._by_file: Dict[Tuple[str, Any], Mapping[str, Any]] = {
            (str(r["file_name"]), r.get("image_id")): r for r in self.records
        }
        self.class_names = self._class_names(dataset_cfg)

    @staticmethod
    def _class_names(dataset_cfg: Any) -> Optional[List[str]]:
        """``thing_classes`` of the first dataset named in the node that declares them."""
        dicts_cfg = dataset_cfg.dataset_dicts
        names = dataset_names(dicts_cfg.get("names") if hasattr(dicts_cfg, "get") else None)
        names += dataset_names(dataset_cfg.get("dataset_name"))
        for name in names:
            classes = MetadataCatalog.get(name).get("thing_classes")
            if classes is not None:
                return list(classes)
        return None

    def __len__(self) -> int:
        return len(self.dataset)

    def sample_indices(self, num: int, seed: int = 0) -> List[int]:
        """``num`` dataset indices in a random order fixed by ``seed`` (repeating if needed)."""
        order = np.random.default_rng(seed).permutation(len(self.dataset))
        return [int(order[i % len(order)]) for i in range(num)]

    def source_record(self, sample: Mapping[str, Any]) -> Mapping[str, Any]:
        """The dataset dict of a sample's primary image."""
        return self._by_file[(str(sample["file_name"]), sample.get("image_id"))]

    def draw(self, index: int) -> Tuple[np.ndarray, Dict[str, Any]]:
        """
        Build sample ``index`` and draw it.

        Returns:
            ``(picture, sample)``: the BGR picture (model input left, source right) and the
            dataset's sample dict.
        """
        sample = self.dataset[index]
        image = np.ascontiguousarray(sample["image"].numpy().transpose(1, 2, 0))
        instances = sample["instances"]
        h, w = image.shape[:2]
        phase = "no-aug" if self.no_aug else "aug"
        left = _draw(
            image,
            instances.gt_boxes.tensor.numpy(),
            instances.gt_classes.tolist(),
            self.class_names,
            f"input {h}x{w} {phase}: {len(instances)} boxes",
        )
        record = self.source_record(sample)
        boxes, classes = _record_boxes(record)
        source = read_image_bgr(record, check_size=False)
        title = f"source {source.shape[0]}x{source.shape[1]}: {len(classes)} boxes"
        # drawn at the height of the input, so that both halves get the same label size
        source, boxes = _scaled_to_height(source, boxes, h)
        right = _draw(source, boxes, classes, self.class_names, title)
        return side_by_side(left, right), sample
