"""
The coupled YOLOv3 head, anchor-free: the first rung of the YOLOX roadmap (YOLOX paper,
arXiv 2107.08430, Table 2), where one convolution predicts box, objectness and classes at once.
"""
import math
from typing import List, Sequence, Tuple

import torch
from torch import nn

from ...layers import ConvBNAct

__all__ = ["CoupledHead"]


class CoupledHead(nn.Module):
    """
    Per feature level, as the YOLOv3 head: a 3x3 conv widening the level's channels by
    ``expansion`` (2 in YOLOv3), then one 1x1 prediction conv with ``4 + 1 + num_classes``
    outputs, channels ``[dx, dy, log w, log h, objectness, classes]`` (the YOLOv3 layout), one
    prediction per location (anchor-free). Same outputs as :class:`YOLOXHead`, so the
    :class:`YOLOX` meta-architecture, its losses and its assigners work unchanged.

    Size: on YOLOX-Darknet53's neck (128 / 256 / 512 channels, 80 classes) the model has
    62.69 M parameters, which is the paper's YOLOv3 baseline (63.00 M, 3 anchors per location)
    less the prediction weights of two anchors.
    """

    def __init__(
        self,
        *,
        in_channels: Sequence[int],
        num_classes: int,
        expansion: float = 2.0,
        norm="BN",
        activation="lrelu",
        prior_prob: float = 0.01,
    ):
        """
        Args:
            in_channels: channels of each input feature level (checked by :class:`YOLOX`).
            num_classes: number of foreground classes.
            expansion: width of the 3x3 conv, a multiple of each level's input channels.
            norm, activation: see :class:`yolox_d2.layers.ConvBNAct` (YOLOv3: LeakyReLU).
            prior_prob: initial foreground probability for the class and objectness biases.
        """
        super().__init__()
        if expansion <= 0:
            raise ValueError(f"expansion must be > 0, got {expansion}")
        self.in_channels = list(in_channels)
        self.num_classes = num_classes
        widths = [int(round(c * expansion)) for c in in_channels]
        self.convs = nn.ModuleList(
            [ConvBNAct(c, w, 3, norm=norm, activation=activation) for c, w in zip(in_channels, widths)]
        )
        self.preds = nn.ModuleList([nn.Conv2d(w, 5 + num_classes, 1) for w in widths])
        bias = -math.log((1 - prior_prob) / prior_prob)
        for layer in self.preds:
            nn.init.constant_(layer.bias[4:], bias)

    def forward(
        self, features: List[torch.Tensor]
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor], List[torch.Tensor]]:
        """
        Args:
            features: one (N, C_l, H_l, W_l) map per level, fine to coarse.

        Returns:
            class logits, box regression and objectness logits per level, as
            :meth:`YOLOXHead.forward`.
        """
        if len(features) != len(self.preds):
            raise ValueError(f"CoupledHead expects {len(self.preds)} feature levels, got {len(features)}")
        cls_logits, box_regs, obj_logits = [], [], []
        for conv, pred, x in zip(self.convs, self.preds, features):
            out = pred(conv(x))
            box_regs.append(out[:, :4])
            obj_logits.append(out[:, 4:5])
            cls_logits.append(out[:, 5:])
        return cls_logits, box_regs, obj_logits
