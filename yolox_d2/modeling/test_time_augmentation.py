"""
Test-time augmentation for a YOLOX model, in the manner of Detectron2's
``GeneralizedRCNNWithTTA``: a wrapper module with the model's own interface (``list[dict]`` in,
``[{"instances": Instances}]`` out, in the original image's coordinates) that runs the model on
resized and horizontally flipped copies of every input and merges the detections
(:mod:`yolox_d2.modeling.detection_merging`: class-aware NMS or weighted box fusion).

It evaluates like the model it wraps (``inference_on_dataset``, ``--eval-only``); a config
switches it on with a ``test_time_augmentation`` node read by
:func:`yolox_d2.engine.predictor.build_inference_model`::

    python tools/lazyconfig_train_net.py --config-file configs/deepforest/yolox_nano_trees.py \\
        --eval-only train.init_checkpoint=model_final.pth \\
        test_time_augmentation.enabled=True "test_time_augmentation.scales=[320,416,512]"
"""

from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from detectron2.structures import Boxes, Instances

from ..data.transforms import letterbox_shape
from .detection_merging import MERGE_METHODS, merge_detections

__all__ = ["TTA_OPTIONS", "YOLOXWithTTA"]

#: The keyword arguments of :class:`YOLOXWithTTA` after ``model`` (the keys a config's
#: ``test_time_augmentation`` node may set besides ``enabled``).
TTA_OPTIONS = ("scales", "flip", "merge", "iou_thresh", "max_detections")

#: WBF's cluster IoU threshold when none is given (the paper's value).
WBF_IOU_THRESH = 0.55


def _flip_boxes(instances: Instances, width: int) -> Instances:
    """Boxes of a horizontally flipped image back to the image (``x -> width - x``)."""
    boxes = instances.pred_boxes.tensor
    flipped = torch.stack((width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]), dim=1)
    return Instances(
        instances.image_size, pred_boxes=Boxes(flipped), scores=instances.scores, pred_classes=instances.pred_classes
    )


class YOLOXWithTTA(nn.Module):
    """
    Run ``model`` on every input at each of ``scales`` (the letterbox size: the longer side of
    the network input, the shorter side in proportion), and on the horizontal flip of each when
    ``flip``, then merge the passes of each image. A scale equal to the input's longer side
    uses the input as given, so ``YOLOXWithTTA(model, scales=(416,), flip=False)`` on 416
    letterboxed inputs returns exactly what ``model`` returns. Resizing is bilinear, from the
    input tensor (what the test mapper gave the model).

    The model must be in eval mode and return, for each input dict, the detections in the
    coordinates given by the dict's ``"height"`` / ``"width"`` (default: the image's size), as
    :class:`~yolox_d2.modeling.YOLOX` does. One batch per scale holds every input and its flip.
    """

    def __init__(
        self,
        model: nn.Module,
        scales: Sequence[int] = (),
        flip: bool = True,
        merge: str = "nms",
        iou_thresh: Optional[float] = None,
        max_detections: Optional[int] = None,
    ):
        """
        Args:
            model: the detector (e.g. a :class:`~yolox_d2.modeling.YOLOX`), in eval mode.
            scales: letterbox sizes (pixels of the longer side) to run at; empty: only the
                size of the given input.
            flip: also run on the horizontally flipped image at every scale.
            merge: ``"nms"`` (class-aware NMS over all passes) or ``"wbf"`` (weighted box
                fusion).
            iou_thresh: the merge's IoU threshold; default the model's ``test_nms_thresh``
                (0.65 if it has none) for NMS, 0.55 for WBF.
            max_detections: detections kept per image after merging; default the model's
                ``max_detections_per_image`` (100 if it has none); <= 0: all.
        """
        super().__init__()
        if merge not in MERGE_METHODS:
            raise ValueError(f"test-time augmentation merge={merge!r}: choose one of {MERGE_METHODS}")
        scales = tuple(int(s) for s in scales)
        if any(s <= 0 for s in scales):
            raise ValueError(f"test-time augmentation scales must be positive sizes, got {scales}")
        self.model = model
        self.scales = scales
        self.flip = bool(flip)
        self.merge = merge
        if iou_thresh is None:
            iou_thresh = getattr(model, "test_nms_thresh", 0.65) if merge == "nms" else WBF_IOU_THRESH
        self.iou_thresh = float(iou_thresh)
        if max_detections is None:
            max_detections = getattr(model, "max_detections_per_image", 100)
        self.max_detections = int(max_detections)
        self.class_agnostic = bool(getattr(model, "test_class_agnostic_nms", False))

    @property
    def num_passes(self) -> int:
        """Passes per image: ``len(scales)`` (at least 1) times 2 with ``flip``."""
        return max(len(self.scales), 1) * (2 if self.flip else 1)

    def _resized(self, image: Tensor, scale: Optional[int]) -> Tensor:
        """``image`` (C, h, w) letterbox-resized so its longer side is ``scale`` (None: as is)."""
        h, w = image.shape[-2:]
        if scale is None or scale == max(h, w):
            return image
        new_h, new_w, _ = letterbox_shape((h, w), scale)
        resized = F.interpolate(image[None].float(), size=(new_h, new_w), mode="bilinear", align_corners=False)
        return resized[0]

    def augmented_inputs(self, batched_inputs: List[Dict[str, Any]]) -> List[List[Dict[str, Any]]]:
        """
        The model inputs of every pass: one list per scale (in ``scales`` order) of the resized
        inputs followed, with ``flip``, by their flips; ``"height"`` / ``"width"`` are the
        original image's.

        Args:
            batched_inputs: the model's inputs (``"image"`` (C, h, w), optional
                ``"height"`` / ``"width"``).
        """
        per_scale = []
        for scale in self.scales or (None,):
            plain, flipped = [], []
            for x in batched_inputs:
                image = x["image"]
                size = {"height": x.get("height", image.shape[-2]), "width": x.get("width", image.shape[-1])}
                resized = self._resized(image, scale)
                plain.append({"image": resized, **size})
                if self.flip:
                    flipped.append({"image": resized.flip(-1), **size})
            per_scale.append(plain + flipped)
        return per_scale

    @torch.no_grad()
    def forward(self, batched_inputs: List[Dict[str, Any]]) -> List[Dict[str, Instances]]:
        """
        Args:
            batched_inputs: the model's inputs (see :meth:`augmented_inputs`).

        Returns:
            ``[{"instances": Instances}]``, one per input: the merged detections in the
            original image's coordinates, by decreasing score.
        """
        if self.training:
            raise RuntimeError("YOLOXWithTTA is for inference: call .eval() first")
        n = len(batched_inputs)
        passes: List[List[Instances]] = [[] for _ in range(n)]
        for inputs in self.augmented_inputs(batched_inputs):
            outputs = self.model(inputs)
            for i in range(n):
                passes[i].append(outputs[i]["instances"])
                if self.flip:
                    passes[i].append(_flip_boxes(outputs[n + i]["instances"], int(inputs[n + i]["width"])))
        results = []
        for x, detections in zip(batched_inputs, passes):
            image_size = (int(x.get("height", x["image"].shape[-2])), int(x.get("width", x["image"].shape[-1])))
            merged = merge_detections(
                detections,
                image_size,
                method=self.merge,
                iou_thresh=self.iou_thresh,
                max_detections=self.max_detections,
                class_agnostic=self.class_agnostic,
            )
            results.append({"instances": merged})
        return results
