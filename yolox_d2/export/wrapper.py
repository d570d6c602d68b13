"""
An ``nn.Module`` around a :class:`~yolox_d2.modeling.YOLOX` that maps one padded image tensor
to plain tensors, so that it can be traced (TorchScript) and exported (ONNX).

Graph input: ``images``, float32 ``(N, 3, H, W)`` in the model's ``input_format`` (BGR, 0-255
for the YOLOX weights) with ``H`` and ``W`` multiples of the backbone's ``size_divisibility``
(32); the model's ``pixel_mean`` / ``pixel_std`` normalisation, when it has one, is part of the
graph. :func:`yolox_d2.export.letterbox_batch` prepares such a batch from BGR images exactly
like the PyTorch inference path (letterbox resize, bottom/right padding with 114).

Graph outputs, by ``output``:

* ``"raw"``, ``raw_layout="concat"``: ``predictions`` (N, A, 5 + C) float32, per anchor
  ``[dx, dy, log w, log h, objectness logit, C class logits]``.
* ``"raw"``, ``raw_layout="levels"``: one tensor per level (``raw_p3``, ``raw_p4``,
  ``raw_p5``), (N, 5 + C, H_l, W_l) with the same channels (the official YOLOX head layout).
* ``"decoded"``: ``predictions`` (N, A, 5 + C) float32, per anchor ``[box(4), objectness
  probability, C class probabilities]`` with the box XYXY (``box_format="xyxy"``) or
  ``(cx, cy, w, h)`` (``"cxcywh"``, the official YOLOX layout) in input pixels.
* ``"nms"``: ``detections`` (K, 7) float32, rows ``[batch_index, x1, y1, x2, y2, score,
  class]`` for the whole batch, grouped by ascending ``batch_index`` and sorted by decreasing
  score within an image; ``score = objectness x best class probability``, ``score >=
  score_thresh``, per-image per-class NMS (or class-agnostic), at most ``max_detections``
  rows per image: the same detections as :meth:`YOLOX.forward_inference`.

End-to-end (NMS-free) models (``YOLOX(end_to_end=True)``, :mod:`yolox_d2.modeling.pss`): the
PSS probability is folded into the objectness, so every layout keeps its meaning and
``score = objectness x best class probability`` stays the detection score:

* ``"raw"``: one more channel, the PSS logit, last: (N, A, 6 + C) ``[..., C class logits,
  pss logit]`` (per level (N, 6 + C, H_l, W_l));
* ``"decoded"``: same (N, A, 5 + C) layout, the objectness column holds ``objectness x pss``
  probability; threshold and top-k need no NMS
  (``detections_from_predictions(..., apply_nms=False)``);
* ``"nms"``: the model's own post-processing, i.e. no NMS for an end-to-end model (unless
  its ``test_nms`` is on): threshold and per-image cap only.

Anchors ``A = sum_l H_l W_l`` are ordered by level (stride 8, 16, 32) then row-major; anchor
``i`` of a level with width ``W_l`` and stride ``s`` sits at grid cell ``(x, y) = (i % W_l, i
// W_l)`` and decodes as ``center = (dx + x, dy + y) * s``, ``size = exp(log wh) * s``.
Boxes are in the coordinates of the network input (the letterboxed canvas): divide by the
letterbox ratio to get original-image pixels.
"""

import logging
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..modeling import YOLOX
from ..modeling.box_ops import cxcywh_to_xyxy, xyxy_to_cxcywh
from ..modeling.postprocessing import detection_scores, detections_table, no_nms, select_detections
from .nms import batched_detections

__all__ = [
    "YOLOXExportWrapper",
    "OUTPUT_MODES",
    "RAW_LAYOUTS",
    "BOX_FORMATS",
    "DETECTION_COLUMNS",
    "detections_from_predictions",
    "decode_raw_predictions",
]

logger = logging.getLogger(__name__)

OUTPUT_MODES = ("raw", "decoded", "nms")
RAW_LAYOUTS = ("concat", "levels")
BOX_FORMATS = ("xyxy", "cxcywh")
#: Column names of the (K, 7) ``detections`` output of the ``"nms"`` mode.
DETECTION_COLUMNS = ("batch_index", "x1", "y1", "x2", "y2", "score", "class")


def _check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def detections_from_predictions(
    predictions: Tensor,
    *,
    box_format: str = "xyxy",
    score_thresh: float,
    nms_thresh: float,
    max_detections: int,
    class_agnostic: bool = False,
    apply_nms: bool = True,
) -> Tensor:
    """
    The ``"nms"`` post-processing applied to the output of a ``"decoded"`` export (e.g. one
    run in onnxruntime): same rows as the ``"nms"`` mode.

    Args:
        predictions: (N, A, 5 + C) decoded predictions ``[box, objectness, class probs]``.
        box_format: ``"xyxy"`` or ``"cxcywh"``, the format the predictions were exported with.
        score_thresh, nms_thresh, max_detections, class_agnostic: see
            :func:`yolox_d2.export.batched_detections`.
        apply_nms: False for an end-to-end model: threshold and cap only.

    Returns:
        (K, 7) ``[batch_index, x1, y1, x2, y2, score, class]``.
    """
    _check_choice("box_format", box_format, BOX_FORMATS)
    if predictions.dim() != 3 or predictions.shape[-1] < 6:
        raise ValueError(f"Expected decoded predictions (N, A, 5 + C), got {tuple(predictions.shape)}")
    boxes = predictions[..., :4]
    if box_format == "cxcywh":
        boxes = cxcywh_to_xyxy(boxes)
    scores, classes = detection_scores(predictions[..., 4], predictions[..., 5:])
    return _detections(
        boxes,
        scores,
        classes,
        num_classes=predictions.shape[-1] - 5,
        score_thresh=score_thresh,
        nms_thresh=nms_thresh,
        max_detections=max_detections,
        class_agnostic=class_agnostic,
        apply_nms=apply_nms,
    )


def _detections(boxes, scores, classes, *, apply_nms: bool, **kwargs) -> Tensor:
    """(K, 7) detections: :func:`batched_detections`, or without NMS (end-to-end models)."""
    if apply_nms:
        return batched_detections(boxes, scores, classes, **kwargs)
    batch, anchor = select_detections(boxes, scores, classes, nms=no_nms, **kwargs)
    return detections_table(boxes, scores, classes, batch, anchor)


def decode_raw_predictions(model: YOLOX, raw: Tensor, input_size: Tuple[int, int]) -> Tensor:
    """
    Decode the output of a ``"raw"`` (``"concat"``) export into the ``"decoded"`` (XYXY)
    layout, with the model's strides and :meth:`YOLOX.decode_boxes`.

    Args:
        model: the YOLOX the graph was exported from (for its strides).
        raw: (N, A, 5 + C) ``[dx, dy, log w, log h, objectness logit, class logits]``; for an
            end-to-end model (N, A, 6 + C), the PSS logit last.
        input_size: ``(H, W)`` of the graph input the predictions are for.

    Returns:
        (N, A, 5 + C) ``[x1, y1, x2, y2, objectness, class probabilities]`` (objectness x pss
        for an end-to-end model).
    """
    h, w = int(input_size[0]), int(input_size[1])
    # Only the shapes of the feature maps matter to the anchor grid.
    shapes = [raw.new_empty((1, 0, -(-h // s), -(-w // s))) for s in model.strides]
    grid, strides = model.anchor_grid(shapes)
    if grid.shape[0] != raw.shape[1]:
        raise ValueError(f"{raw.shape[1]} raw predictions, but a {h}x{w} input gives {grid.shape[0]} anchors")
    boxes = model.decode_boxes(raw[..., :4], grid, strides)
    if model.end_to_end:
        obj = raw[..., 4:5].sigmoid() * raw[..., -1:].sigmoid()
        return torch.cat((boxes, obj, raw[..., 5:-1].sigmoid()), dim=-1)
    return torch.cat((boxes, raw[..., 4:].sigmoid()), dim=-1)


class YOLOXExportWrapper(nn.Module):
    """
    Traceable / exportable view of a :class:`YOLOX` (see the module docstring for the input and
    outputs). It reuses the model's ``normalize_images``, ``run_network``,
    ``flatten_predictions``, ``anchor_grid``, ``decode_boxes`` and post-processing; the anchor grid is computed from the input's shape in the graph, so
    one export serves every batch size and input size.

    Example::

        model = instantiate(cfg.model).eval().fuse()
        wrapper = YOLOXExportWrapper(model, output="decoded")
        predictions = wrapper(images)        # (N, A, 5 + C)
    """

    def __init__(
        self,
        model: YOLOX,
        output: str = "decoded",
        *,
        raw_layout: str = "concat",
        box_format: str = "xyxy",
        score_thresh: Optional[float] = None,
        nms_thresh: Optional[float] = None,
        max_detections: Optional[int] = None,
        class_agnostic: Optional[bool] = None,
    ):
        """
        Args:
            model: a YOLOX model in eval mode (fused or not).
            output: ``"raw"``, ``"decoded"`` or ``"nms"``.
            raw_layout: for ``"raw"``: ``"concat"`` (one (N, A, 5 + C) tensor) or ``"levels"``
                (one (N, 5 + C, H_l, W_l) tensor per level).
            box_format: for ``"decoded"``: ``"xyxy"`` or ``"cxcywh"``.
            score_thresh, nms_thresh, max_detections, class_agnostic: for ``"nms"``; default
                the model's ``test_score_thresh``, ``test_nms_thresh``,
                ``max_detections_per_image`` and ``test_class_agnostic_nms``. They are
                constants of the exported graph. NMS itself is applied when the model's
                ``test_nms`` is on (not for an end-to-end model, by default).
        """
        super().__init__()
        if not isinstance(model, YOLOX):
            raise TypeError(f"YOLOXExportWrapper needs a yolox_d2 YOLOX model, got {type(model).__name__}")
        if model.training:
            raise ValueError("Export needs an inference model: call model.eval() first")
        self.model = model
        self.output = _check_choice("output", output, OUTPUT_MODES)
        self.raw_layout = _check_choice("raw_layout", raw_layout, RAW_LAYOUTS)
        self.box_format = _check_choice("box_format", box_format, BOX_FORMATS)
        self.score_thresh = float(model.test_score_thresh if score_thresh is None else score_thresh)
        self.nms_thresh = float(model.test_nms_thresh if nms_thresh is None else nms_thresh)
        self.max_detections = int(
            model.max_detections_per_image if max_detections is None else max_detections
        )
        self.class_agnostic = bool(
            model.test_class_agnostic_nms if class_agnostic is None else class_agnostic
        )
        if not 0.0 <= self.nms_thresh <= 1.0:
            raise ValueError(f"nms_thresh must be in [0, 1], got {self.nms_thresh}")

    @property
    def size_divisibility(self) -> int:
        """Input height and width must be multiples of this (32 for YOLOX)."""
        return max(int(self.model.backbone.size_divisibility), 1)

    @property
    def num_classes(self) -> int:
        return int(self.model.num_classes)

    @property
    def output_names(self) -> List[str]:
        """Names of the graph outputs, in order."""
        if self.output == "nms":
            return ["detections"]
        if self.output == "raw" and self.raw_layout == "levels":
            return [f"raw_{name}" for name in self.model.head_in_features]
        return ["predictions"]

    def describe(self) -> str:
        """A one-line description of the outputs (logged by the exporters)."""
        c = self.num_classes
        e2e = self.model.end_to_end
        if self.output == "nms":
            nms = (
                f"NMS IoU {self.nms_thresh}{' class-agnostic' if self.class_agnostic else ''}"
                if self.model.test_nms
                else "no NMS"
            )
            return (
                "detections (K, 7) [batch_index, x1, y1, x2, y2, score, class], "
                f"score >= {self.score_thresh}, {nms}, <= {self.max_detections} per image"
            )
        if self.output == "decoded":
            box = "x1, y1, x2, y2" if self.box_format == "xyxy" else "cx, cy, w, h"
            obj = "objectness x pss" if e2e else "objectness"
            return f"predictions (N, A, {5 + c}) [{box}, {obj}, {c} class probabilities]"
        channels = f"dx, dy, log w, log h, objectness logit, {c} class logits" + (", pss logit" if e2e else "")
        k = 5 + c + int(e2e)
        if self.raw_layout == "levels":
            return ", ".join(f"{n} (N, {k}, H, W)" for n in self.output_names) + f" [{channels}]"
        return f"predictions (N, A, {k}) [{channels}]"

    def check_input(self, images: Tensor) -> None:
        """Raise a ValueError naming the problem when ``images`` is not a valid graph input."""
        if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                "Expected images as a float tensor (N, 3, H, W), got "
                f"{type(images).__name__} {tuple(getattr(images, 'shape', ()))}"
            )
        if not images.is_floating_point():
            raise ValueError(f"Expected floating point images (0-255 values), got {images.dtype}")
        div = self.size_divisibility
        h, w = int(images.shape[-2]), int(images.shape[-1])
        if h % div or w % div:
            raise ValueError(f"Input height and width must be multiples of {div}, got {h}x{w}")

    def forward(self, images: Tensor) -> Union[Tensor, Tuple[Tensor, ...]]:
        """
        Args:
            images: (N, 3, H, W) float, H and W multiples of :attr:`size_divisibility`.

        Returns:
            The tensor(s) named by :attr:`output_names` (see the module docstring).
        """
        if not torch.jit.is_tracing():
            self.check_input(images)
        model = self.model
        features, predictions = model.run_network(model.normalize_images(images))

        if self.output == "raw" and self.raw_layout == "levels":
            # channels [box, obj, classes(, pss)]: the head's lists reordered, level by level
            order = (1, 2, 0) + ((3,) if model.end_to_end else ())
            return tuple(torch.cat([predictions[i][level] for i in order], dim=1) for level in range(len(features)))
        cls_flat, reg_flat, obj_flat = model.flatten_predictions(predictions)
        if self.output == "raw":
            raw = [reg_flat, obj_flat.unsqueeze(-1), cls_flat]
            if model.end_to_end:
                raw.append(model.flatten_pss_logits(predictions).unsqueeze(-1))
            return torch.cat(raw, dim=-1)

        grid, strides = model.anchor_grid(features)  # not cached while tracing
        boxes = model.decode_boxes(reg_flat, grid, strides)
        obj_prob = model.objectness_probabilities(predictions)
        cls_prob = cls_flat.sigmoid()
        if self.output == "decoded":
            if self.box_format == "cxcywh":
                boxes = xyxy_to_cxcywh(boxes)
            return torch.cat((boxes, obj_prob.unsqueeze(-1), cls_prob), dim=-1)

        scores, classes = detection_scores(obj_prob, cls_prob)
        return _detections(
            boxes,
            scores,
            classes,
            num_classes=self.num_classes,
            score_thresh=self.score_thresh,
            nms_thresh=self.nms_thresh,
            max_detections=self.max_detections,
            class_agnostic=self.class_agnostic,
            apply_nms=self.model.test_nms,
        )
