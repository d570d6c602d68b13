"""The YOLOX meta-architecture: anchor-free dense detector with SimOTA label assignment, and
optionally end-to-end (NMS-free) with a positive sample selector (:mod:`..pss`)."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.modeling.meta_arch.dense_detector import DenseDetector, permute_to_N_HWA_K
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import ImageList, Instances

from ...layers import ConvBNAct
from .. import anchors
from ..losses import yolox_losses
from ..postprocessing import (
    batched_nms_per_image, detection_scores, detections_to_instances, no_nms, select_detections
)
from ..pss import end_to_end_objectness_logits, pss_loss
from ..simota import OneToOneMatcher, SimOTAMatcher
from .training_batch import average_over_workers, check_gt_classes, pad_ground_truths, resize_training_batch
from .yolox_head import YOLOXHead

__all__ = ["YOLOX"]


@META_ARCH_REGISTRY.register()
class YOLOX(DenseDetector):
    """
    YOLOX (:paper:`yolox`): a decoupled head over a feature pyramid, one prediction per
    location, SimOTA label assignment in training and ``objectness x class`` scores with
    class-aware NMS in inference. With ``end_to_end=True`` (the paper's "NMS free" step) a
    positive sample selector branch of the head is trained with a one-to-one assignment and
    a stop-gradient, and inference ranks by ``objectness x class x pss`` without NMS
    (:mod:`yolox_d2.modeling.pss` documents the design).

    Inputs follow Detectron2 (``list[dict]`` with ``"image"`` (C, H, W) in ``input_format``,
    ``"instances"`` in training, optional ``"height"``/``"width"``); inference returns
    ``[{"instances": Instances}]`` in the original image coordinates.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        head: nn.Module,
        head_in_features: Optional[Sequence[str]] = None,
        num_classes: int,
        matcher: Optional[SimOTAMatcher] = None,
        pixel_mean: Sequence[float] = (0.0, 0.0, 0.0),
        pixel_std: Sequence[float] = (1.0, 1.0, 1.0),
        input_format: str = "BGR",
        pad_value: float = 114.0,
        test_square_size: int = 0,
        test_score_thresh: float = 0.01,
        test_nms_thresh: float = 0.65,
        test_class_agnostic_nms: bool = False,
        max_detections_per_image: int = 100,
        use_l1_loss: bool = False,
        iou_loss_type: str = "iou",
        box_loss_weight: float = 5.0,
        channels_last: bool = True,
        end_to_end: bool = False,
        one_to_one_matcher: Optional[OneToOneMatcher] = None,
        pss_loss_weight: float = 1.0,
        test_nms: Optional[bool] = None,
    ):
        """
        Args:
            backbone: a Backbone whose ``output_shape()`` gives the head's levels (e.g.
                :class:`YOLOPAFPN` over :class:`CSPDarknet`).
            head: a :class:`YOLOXHead` (or any module with the same outputs).
            head_in_features: backbone outputs fed to the head, fine to coarse; default all,
                sorted by stride.
            num_classes: number of foreground classes (must equal the head's).
            matcher: label assigner; default ``SimOTAMatcher()`` (the 2021 rule). Any callable
                with its signature and result (e.g. :class:`yolox_d2.modeling.CenterMatcher`).
            pixel_mean, pixel_std: per-channel normalisation in ``input_format`` order. YOLOX
                weights use raw 0-255 BGR (mean 0, std 1); ImageNet backbones need their own.
            input_format: channel order of ``"image"`` (used for visualisation).
            pad_value: value (before normalisation) of the bottom/right padding that makes a
                batch rectangular; YOLOX uses 114.
            test_square_size: if > 0, inference batches are padded to at least this square
                size (the official letterbox canvas, e.g. 640). 0 pads to the backbone's
                ``size_divisibility`` only.
            test_score_thresh: keep detections with ``objectness * class score >=`` this.
            test_nms_thresh: IoU threshold of class-aware NMS.
            test_class_agnostic_nms: NMS across classes instead of per class.
            max_detections_per_image: keep at most this many detections per image (<= 0: all).
            use_l1_loss: add the L1 loss on raw box offsets (switched on for the last
                no-augmentation epochs by :class:`yolox_d2.engine.YOLOXModeSwitchHook`).
            iou_loss_type: ``"iou"`` (1 - IoU^2) or ``"giou"``.
            box_loss_weight: weight of the IoU loss.
            channels_last: keep the backbone/head weights and the network input in the
                channels-last (NHWC) memory format. Same arithmetic, faster convolutions on
                oneDNN (CPU) and cuDNN; on a 2-core CPU it cuts YOLOX-S inference by about a
                third and a training step by about a quarter (``bench/bench_forward.py``).
            end_to_end: NMS-free YOLOX: needs a head built with ``end_to_end=True`` (its PSS
                branch); adds ``loss_pss`` in training and the PSS probability to the score.
            one_to_one_matcher: the one-to-one assignment of the PSS targets (end-to-end only);
                default ``OneToOneMatcher()`` (the 2021 SimOTA rule, as the default matcher).
            pss_loss_weight: weight of ``loss_pss`` (end-to-end only; see :mod:`..pss`).
            test_nms: apply NMS at inference; default (None) for plain models, not for
                end-to-end ones.
        """
        super().__init__(
            backbone, head, head_in_features, pixel_mean=pixel_mean, pixel_std=pixel_std
        )
        shapes = self.backbone.output_shape()
        self.strides = [shapes[f].stride for f in self.head_in_features]
        head_channels = getattr(head, "in_channels", None)
        backbone_channels = [shapes[f].channels for f in self.head_in_features]
        if head_channels is not None and list(head_channels) != backbone_channels:
            raise ValueError(
                f"YOLOX head in_channels {list(head_channels)} do not match the backbone "
                f"features {self.head_in_features} with channels {backbone_channels}"
            )
        head_classes = getattr(head, "num_classes", num_classes)
        if head_classes != num_classes:
            raise ValueError(f"YOLOX num_classes={num_classes} but the head has {head_classes}")
        self.num_classes = num_classes
        self.matcher = matcher if matcher is not None else SimOTAMatcher()
        self.end_to_end = bool(end_to_end)
        if bool(getattr(head, "end_to_end", False)) != self.end_to_end:
            raise ValueError(
                f"YOLOX end_to_end={self.end_to_end} but its head has "
                f"end_to_end={getattr(head, 'end_to_end', False)}: set both (the head holds the PSS branch)"
            )
        self.one_to_one_matcher = one_to_one_matcher if one_to_one_matcher is not None else OneToOneMatcher()
        self.pss_loss_weight = float(pss_loss_weight)
        self.test_nms = (not self.end_to_end) if test_nms is None else bool(test_nms)
        self.input_format = input_format
        self.pad_value = float(pad_value)
        self.test_square_size = int(test_square_size)
        self.test_score_thresh = test_score_thresh
        self.test_nms_thresh = test_nms_thresh
        self.test_class_agnostic_nms = test_class_agnostic_nms
        self.max_detections_per_image = max_detections_per_image
        self.use_l1_loss = use_l1_loss
        self.iou_loss_type = iou_loss_type
        self.box_loss_weight = box_loss_weight
        self._normalize = not (
            all(m == 0 for m in pixel_mean) and all(s == 1 for s in pixel_std)
        )
        self.train_size: Optional[Tuple[int, int]] = None
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.backbone.to(memory_format=torch.channels_last)
            self.head.to(memory_format=torch.channels_last)
        self._anchor_cache: Dict[Tuple, Tuple[Tensor, Tensor]] = {}

    @classmethod
    def from_config(cls, cfg):
        """Build from a yacs config extended by :func:`yolox_d2.config.add_yolox_config`."""
        backbone = build_backbone(cfg)
        c = cfg.MODEL.YOLOX
        shapes = backbone.output_shape()
        in_features = list(c.IN_FEATURES) or sorted(shapes, key=lambda k: shapes[k].stride)
        head = YOLOXHead(
            in_channels=[shapes[f].channels for f in in_features],
            num_classes=c.NUM_CLASSES,
            feat_channels=c.HEAD_CHANNELS,
            depthwise=c.HEAD_DEPTHWISE,
            norm=c.HEAD_NORM,
            activation=c.HEAD_ACTIVATION,
        )
        return {
            "backbone": backbone,
            "head": head,
            "head_in_features": in_features,
            "num_classes": c.NUM_CLASSES,
            "matcher": SimOTAMatcher(rule=c.SIMOTA_RULE),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "input_format": cfg.INPUT.FORMAT,
            "pad_value": c.PAD_VALUE,
            "test_square_size": c.TEST_SQUARE_SIZE,
            "test_score_thresh": c.SCORE_THRESH_TEST,
            "test_nms_thresh": c.NMS_THRESH_TEST,
            "max_detections_per_image": cfg.TEST.DETECTIONS_PER_IMAGE,
            "iou_loss_type": c.IOU_LOSS_TYPE,
            "channels_last": c.CHANNELS_LAST,
        }

    # ------------------------------------------------------------------ public helpers
    def set_train_size(self, size: Optional[Tuple[int, int]]) -> None:
        """Multi-scale training: resize every training batch to ``(h, w)`` (None: as given)."""
        self.train_size = None if size is None else (int(size[0]), int(size[1]))

    @torch.no_grad()
    def fuse(self) -> "YOLOX":
        """Fold every BatchNorm into its convolution, for faster inference. Returns self."""
        if self.training:
            raise RuntimeError("YOLOX.fuse() is for inference: call model.eval() first")
        for module in self.modules():
            if isinstance(module, ConvBNAct):
                module.fuse()
        return self

    # ------------------------------------------------------------------ forward
    def forward(self, batched_inputs: List[Dict[str, Tensor]]):
        images = self.preprocess_image(batched_inputs)
        gt_instances = None
        if self.training:
            if any("instances" not in x for x in batched_inputs):
                raise ValueError("YOLOX training needs 'instances' in every input dict")
            gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
            check_gt_classes(batched_inputs, gt_instances, self.num_classes)
            if self.train_size is not None:
                images, gt_instances = resize_training_batch(images, gt_instances, self.train_size)

        features, predictions = self.run_network(images.tensor)

        if self.training:
            return self.forward_training(images, features, predictions, gt_instances)

        results = self.forward_inference(images, features, predictions)
        processed_results = []
        for results_per_image, input_per_image, image_size in zip(
            results, batched_inputs, images.image_sizes
        ):
            height = input_per_image.get("height", image_size[0])
            width = input_per_image.get("width", image_size[1])
            processed_results.append({"instances": detector_postprocess(results_per_image, height, width)})
        return processed_results

    def run_network(self, x: Tensor) -> Tuple[List[Tensor], Tuple[List[Tensor], ...]]:
        """
        Backbone + head on a preprocessed (normalised, padded) ``(N, 3, H, W)`` batch.

        Returns:
            The head's input features (fine to coarse) and its outputs: per-level lists of
            class logits, box regression and objectness logits (see :class:`YOLOXHead`), and
            of PSS logits for an end-to-end model.
        """
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        features = self.backbone(x)
        features = [features[f] for f in self.head_in_features]
        return features, self.head(features)

    def preprocess_image(self, batched_inputs: List[Dict[str, Tensor]]) -> ImageList:
        """
        Pad bottom/right with ``pad_value`` to a common size, then normalise. The padded size
        follows the backbone like ``ImageList.from_tensors`` in Detectron2's meta-archs:
        ``size_divisibility``, or ``padding_constraints`` (``size_divisibility``,
        ``square_size``) when the backbone gives them.
        """
        images = [self._move_to_current_device(x["image"]) for x in batched_inputs]
        image_sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
        constraints = self.backbone.padding_constraints or {}
        div = max(int(constraints.get("size_divisibility", self.backbone.size_divisibility)), 1)
        square = int(constraints.get("square_size", 0))
        if not self.training and self.test_square_size > 0:
            square = max(square, self.test_square_size)
        max_h = max(max(h for h, _ in image_sizes), square)
        max_w = max(max(w for _, w in image_sizes), square)
        max_h = -(-max_h // div) * div
        max_w = -(-max_w // div) * div
        batch = images[0].new_full(
            (len(images), images[0].shape[0], max_h, max_w), self.pad_value, dtype=torch.float32
        )
        for i, (im, (h, w)) in enumerate(zip(images, image_sizes)):
            batch[i, :, :h, :w].copy_(im)
        return ImageList(self.normalize_images(batch), image_sizes)

    # ------------------------------------------------------------------ shared pieces
    def normalize_images(self, images: Tensor) -> Tensor:
        """
        ``(images - pixel_mean) / pixel_std`` for a padded (N, 3, H, W) batch in
        ``input_format``; ``images`` itself when the normalisation is the identity (mean 0,
        std 1, the YOLOX weights).
        """
        if self._normalize:
            return (images - self.pixel_mean) / self.pixel_std
        return images

    def flatten_predictions(self, predictions) -> Tuple[Tensor, Tensor, Tensor]:
        """
        The head's per-level (N, K, H, W) outputs (see :meth:`run_network`) -> (N, A, C) class
        logits, (N, A, 4) box regression and (N, A) objectness logits, anchors in the order of
        :meth:`anchor_grid` (PSS logits: :meth:`flatten_pss_logits`).
        """
        cls_logits, box_regs, obj_logits = predictions[:3]
        cls = torch.cat([permute_to_N_HWA_K(x, self.num_classes) for x in cls_logits], dim=1)
        reg = torch.cat([permute_to_N_HWA_K(x, 4) for x in box_regs], dim=1)
        obj = torch.cat([permute_to_N_HWA_K(x, 1) for x in obj_logits], dim=1).squeeze(-1)
        return cls, reg, obj

    def flatten_pss_logits(self, predictions) -> Tensor:
        """The (N, A) PSS logits of an end-to-end head's outputs, in :meth:`anchor_grid` order."""
        if len(predictions) < 4:
            raise ValueError("flatten_pss_logits needs the outputs of an end-to-end head (4 lists)")
        return torch.cat([permute_to_N_HWA_K(x, 1) for x in predictions[3]], dim=1).squeeze(-1)

    def anchor_grid(self, features: List[Tensor]) -> Tuple[Tensor, Tensor]:
        """
        Returns the integer grid position (A, 2) as (x, y) of every prediction, in the order
        the predictions are flattened (level, then row-major), and its stride (A,)
        (:func:`yolox_d2.modeling.anchors.anchor_grid`).

        Cached per feature shapes, except while tracing: a traced graph must compute the grid
        from its input's shape (dynamic sizes) and must not leave a traced tensor in the cache.
        """
        if torch.jit.is_tracing():
            return anchors.anchor_grid(features, self.strides)
        ref = features[0]
        key = (tuple(tuple(f.shape[-2:]) for f in features), ref.device, ref.dtype)
        if key not in self._anchor_cache:
            self._anchor_cache.clear()
            self._anchor_cache[key] = anchors.anchor_grid(features, self.strides)
        return self._anchor_cache[key]

    #: :func:`yolox_d2.modeling.anchors.decode_boxes`: raw regression -> XYXY boxes.
    decode_boxes = staticmethod(anchors.decode_boxes)

    # ------------------------------------------------------------------ training
    def forward_training(self, images, features, predictions, gt_instances):
        # SimOTA and the losses in float32 (float32 copies below), also under mixed-precision autocast
        with torch.autocast(self.device.type, enabled=False):
            return self._float32_losses(images, features, predictions, gt_instances)

    def _float32_losses(self, images, features, predictions, gt_instances):
        cls_logits, box_reg, obj_logits = self.flatten_predictions(predictions)
        cls_logits, box_reg, obj_logits = cls_logits.float(), box_reg.float(), obj_logits.float()
        grid, strides = self.anchor_grid(features)
        grid, strides = grid.float(), strides.float()
        pred_boxes = self.decode_boxes(box_reg, grid, strides)

        gt_boxes, gt_classes, gt_valid = self.label_inputs(gt_instances)
        assignment_inputs = (
            pred_boxes.detach(),
            cls_logits.detach(),
            obj_logits.detach(),
            (grid + 0.5) * strides.unsqueeze(-1),
            strides,
            gt_boxes,
            gt_classes,
            gt_valid,
        )
        assignment = self.matcher(*assignment_inputs)
        losses = yolox_losses(
            cls_logits=cls_logits,
            obj_logits=obj_logits,
            box_preds_xyxy=pred_boxes,
            reg_raw=box_reg,
            anchor_grid=grid,
            anchor_strides=strides,
            assignment=assignment,
            gt_boxes=gt_boxes,
            gt_classes=gt_classes,
            use_l1=self.use_l1_loss,
            iou_loss_type=self.iou_loss_type,
            box_weight=self.box_loss_weight,
            # the number of positives averaged over all workers
            num_fg_normalizer=average_over_workers(assignment.num_fg, self.device),
        )
        if self.end_to_end:
            pss_logits = self.flatten_pss_logits(predictions).float()
            # the one-to-one cost ranks by the end-to-end score (objectness x pss), see ..pss
            e2e_obj = end_to_end_objectness_logits(obj_logits, pss_logits)
            one_to_one = self.one_to_one_matcher(*assignment_inputs[:2], e2e_obj, *assignment_inputs[3:])
            num_gt = average_over_workers(int(gt_valid.sum()), self.device)
            loss = pss_loss(pss_logits, cls_logits, obj_logits, one_to_one, gt_classes, normalizer=num_gt)
            losses["loss_pss"] = self.pss_loss_weight * loss
        return losses

    def label_inputs(self, gt_instances: List[Instances]) -> Tuple[Tensor, Tensor, Tensor]:
        """Pad per-image ground truths to (N, G, 4) boxes, (N, G) classes and (N, G) validity."""
        return pad_ground_truths(gt_instances, self.device)

    # ------------------------------------------------------------------ inference
    def objectness_probabilities(self, predictions) -> Tensor:
        """(N, A) objectness probabilities of the head's outputs, times the PSS probabilities
        for an end-to-end model: ``score = this x best class probability``."""
        obj = self.flatten_predictions(predictions)[2].sigmoid()
        return obj * self.flatten_pss_logits(predictions).sigmoid() if self.end_to_end else obj

    def forward_inference(self, images: ImageList, features: List[Tensor], predictions) -> List[Instances]:
        """
        Decode, score, threshold, NMS (unless ``test_nms`` is off, the end-to-end default) and
        cap (:mod:`yolox_d2.modeling.postprocessing`); boxes in the coordinates of the
        (unpadded) network input.
        """
        cls_logits, box_reg, _ = self.flatten_predictions(predictions)
        scores, classes = detection_scores(self.objectness_probabilities(predictions), cls_logits.sigmoid())
        grid, strides = self.anchor_grid(features)
        boxes = self.decode_boxes(box_reg, grid, strides)
        batch, anchor = select_detections(
            boxes,
            scores,
            classes,
            num_classes=self.num_classes,
            score_thresh=self.test_score_thresh,
            nms_thresh=self.test_nms_thresh,
            max_detections=self.max_detections_per_image,
            class_agnostic=self.test_class_agnostic_nms,
            nms=batched_nms_per_image if self.test_nms else no_nms,
        )
        return detections_to_instances(images.image_sizes, boxes, scores, classes, batch, anchor)
