"""The decoupled YOLOX head: separate classification and regression/objectness branches."""
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
    ):
        """
        Args:
            in_channels: channels of each input feature level (must match the backbone's
                ``output_shape()``; the :class:`YOLOX` meta-arch checks it).
            num_classes: number of foreground classes.
            feat_channels: width of the stem and branches (``int(256 * width)`` in YOLOX).
            depthwise: depthwise-separable 3x3 convolutions (YOLOX-Nano).
            norm, activation: see :class:`yolox_d2.layers.ConvBNAct`.
            prior_prob: initial foreground probability for the class and objectness biases.
        """
        super().__init__()
        self.in_channels = list(in_channels)
        self.num_classes = num_classes
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

        bias = -math.log((1 - prior_prob) / prior_prob)
        for layer in list(self.cls_preds) + list(self.obj_preds):
            nn.init.constant_(layer.bias, bias)

    def forward(
        self, features: List[torch.Tensor]
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor], List[torch.Tensor]]:
        """
        Args:
            features: one (N, C_l, H_l, W_l) map per level, fine to coarse.

        Returns:
            Three lists with one tensor per level: class logits (N, num_classes, H_l, W_l),
            box regression (N, 4, H_l, W_l) as (dx, dy, log w, log h) in stride units, and
            objectness logits (N, 1, H_l, W_l).
        """
        if len(features) != len(self.stems):
            raise ValueError(f"YOLOXHead expects {len(self.stems)} feature levels, got {len(features)}")
        cls_logits, box_regs, obj_logits = [], [], []
        for level, x in enumerate(features):
            x = self.stems[level](x)
            cls_logits.append(self.cls_preds[level](self.cls_convs[level](x)))
            reg_feat = self.reg_convs[level](x)
            box_regs.append(self.reg_preds[level](reg_feat))
            obj_logits.append(self.obj_preds[level](reg_feat))
        return cls_logits, box_regs, obj_logits
