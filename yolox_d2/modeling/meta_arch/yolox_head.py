"""The decoupled YOLOX head: separate classification and regression/objectness branches, and
optionally the positive sample selector (PSS) branch of end-to-end YOLOX (:mod:`..pss`)."""
import math
from typing import List, Sequence, Tuple

import torch
from torch import nn

from ...layers import ConvBNAct, conv_block

__all__ = ["YOLOXHead"]


class YOLOXHead(nn.Module):
    """
    Per feature level: a 1x1 stem to ``feat_channels``; a classification branch (two 3x3
    convs, then a 1x1 conv to ``num_classes`` logits) and a regression branch (two 3x3 convs,
    then a 1x1 conv to 4 box offsets and a 1x1 conv to 1 objectness logit). Weights are not
    shared across levels.

    With ``end_to_end=True`` each level also has a PSS branch (YOLOX paper, Sec. 2.1 "End-to-end
    YOLO", after PSS, Zhou et al. 2021, arXiv 2101.11782): two 3x3 convs like the other branches,
    then a 1x1 conv to 1 logit, on the **detached** output of the regression branch (the
    stop-gradient: nothing the PSS branch learns reaches the stem, the regression branch or
    what lies below). With YOLOX-Darknet53's width (256) it adds 3.54 M parameters and 19.8
    GFLOPs at 640x640, the paper's 63.72 M / 185.3 -> 67.27 M / 205.1.
    """

    def __init__(
        self,
        *,
        in_channels: Sequence[int],
        num_classes: int,
        feat_channels: int = 256,
        depthwise: bool = False,
        norm="BN",
        activation="silu",
        prior_prob: float = 0.01,
        end_to_end: bool = False,
    ):
        """
        Args:
            in_channels: channels of each input feature level (must match the backbone's
                ``output_shape()``; the :class:`YOLOX` meta-arch checks it).
            num_classes: number of foreground classes.
            feat_channels: width of the stem and branches (``int(256 * width)`` in YOLOX).
            depthwise: depthwise-separable 3x3 convolutions (YOLOX-Nano).
            norm, activation: see :class:`yolox_d2.layers.ConvBNAct`.
            prior_prob: initial foreground probability for the class and objectness biases
                (and the PSS bias).
            end_to_end: add the PSS branch (see above); :meth:`forward` then returns its
                logits as a fourth list.
        """
        super().__init__()
        self.in_channels = list(in_channels)
        self.num_classes = num_classes
        self.end_to_end = bool(end_to_end)
        kw = dict(norm=norm, activation=activation)
        conv = conv_block(depthwise)

        def branch():
            return nn.Sequential(
                conv(feat_channels, feat_channels, 3, **kw),
                conv(feat_channels, feat_channels, 3, **kw),
            )

        self.stems = nn.ModuleList([ConvBNAct(c, feat_channels, 1, **kw) for c in in_channels])
        self.cls_convs = nn.ModuleList([branch() for _ in in_channels])
        self.reg_convs = nn.ModuleList([branch() for _ in in_channels])
        self.cls_preds = nn.ModuleList([nn.Conv2d(feat_channels, num_classes, 1) for _ in in_channels])
        self.reg_preds = nn.ModuleList([nn.Conv2d(feat_channels, 4, 1) for _ in in_channels])
        self.obj_preds = nn.ModuleList([nn.Conv2d(feat_channels, 1, 1) for _ in in_channels])
        prior_layers = list(self.cls_preds) + list(self.obj_preds)
        if self.end_to_end:
            self.pss_convs = nn.ModuleList([branch() for _ in in_channels])
            self.pss_preds = nn.ModuleList([nn.Conv2d(feat_channels, 1, 1) for _ in in_channels])
            prior_layers += list(self.pss_preds)

        bias = -math.log((1 - prior_prob) / prior_prob)
        for layer in prior_layers:
            nn.init.constant_(layer.bias, bias)

    def forward(self, features: List[torch.Tensor]) -> Tuple[List[torch.Tensor], ...]:
        """
        Args:
            features: one (N, C_l, H_l, W_l) map per level, fine to coarse.

        Returns:
            Three lists with one tensor per level: class logits (N, num_classes, H_l, W_l),
            box regression (N, 4, H_l, W_l) as (dx, dy, log w, log h) in stride units, and
            objectness logits (N, 1, H_l, W_l); with ``end_to_end`` a fourth list of PSS
            logits (N, 1, H_l, W_l).
        """
        if len(features) != len(self.stems):
            raise ValueError(f"YOLOXHead expects {len(self.stems)} feature levels, got {len(features)}")
        cls_logits, box_regs, obj_logits, pss_logits = [], [], [], []
        for level, x in enumerate(features):
            x = self.stems[level](x)
            cls_logits.append(self.cls_preds[level](self.cls_convs[level](x)))
            reg_feat = self.reg_convs[level](x)
            box_regs.append(self.reg_preds[level](reg_feat))
            obj_logits.append(self.obj_preds[level](reg_feat))
            if self.end_to_end:
                # stop-gradient: the PSS branch reads the regression features, never trains them
                pss_feat = self.pss_convs[level](reg_feat.detach())
                pss_logits.append(self.pss_preds[level](pss_feat))
        if self.end_to_end:
            return cls_logits, box_regs, obj_logits, pss_logits
        return cls_logits, box_regs, obj_logits
