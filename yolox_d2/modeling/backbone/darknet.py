"""Darknet-53 (and -21) with an SPP block, the backbone of YOLOv3 and YOLOX-Darknet53."""
from typing import List, Sequence

import torch
from torch import nn

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY

from .stages import SequentialStagesBackbone
from ...layers import ConvBNAct, SPPBottleneck

__all__ = ["Darknet53", "DarknetResidual", "build_darknet53_backbone"]


class DarknetResidual(nn.Module):
    """``x + conv3x3(conv1x1(x))``, with the 1x1 halving the channels."""

    def __init__(self, channels: int, *, norm="BN", activation="lrelu"):
        super().__init__()
        self.conv1 = ConvBNAct(channels, channels // 2, 1, norm=norm, activation=activation)
        self.conv2 = ConvBNAct(channels // 2, channels, 3, norm=norm, activation=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class Darknet53(SequentialStagesBackbone):
    """
    Darknet backbone with stages ``stem`` (stride 2), ``dark2`` (4), ``dark3`` (8),
    ``dark4`` (16), ``dark5`` (32). ``dark5`` ends in the YOLOv3-SPP block, so its output has
    ``8 * stem_channels`` channels (512 by default) rather than 1024.
    """

    _BLOCKS_PER_STAGE = {21: (1, 2, 2, 1), 53: (2, 8, 8, 4)}

    def __init__(
        self,
        depth: int = 53,
        *,
        stem_channels: int = 32,
        out_features: Sequence[str] = ("dark3", "dark4", "dark5"),
        norm="BN",
        activation="lrelu",
        in_channels: int = 3,
        freeze_at: int = 0,
    ):
        """
        Args:
            depth: 53 or 21 (residual blocks per stage 2/8/8/4 or 1/2/2/1).
            stem_channels: channels of the first convolution (stage widths double from it).
            out_features: stages to return.
            norm, activation: see :class:`yolox_d2.layers.ConvBNAct`; YOLOX-Darknet53 uses
                LeakyReLU(0.1).
            in_channels: input image channels.
            freeze_at: stages to freeze (see :meth:`freeze`): 0 none, 1 the stem, ``k`` the
                stem and ``dark2 .. dark<k>``; frozen BatchNorm layers become
                ``FrozenBatchNorm2d``.
        """
        super().__init__()
        if depth not in self._BLOCKS_PER_STAGE:
            raise ValueError(f"Darknet depth must be one of {sorted(self._BLOCKS_PER_STAGE)}, got {depth}")
        kw = dict(norm=norm, activation=activation)
        blocks = self._BLOCKS_PER_STAGE[depth]
        c = stem_channels
        self.stem = nn.Sequential(ConvBNAct(in_channels, c, 3, **kw), *self._stage(c, 1, **kw))
        c *= 2
        self.dark2 = nn.Sequential(*self._stage(c, blocks[0], **kw))
        self.dark3 = nn.Sequential(*self._stage(c * 2, blocks[1], **kw))
        self.dark4 = nn.Sequential(*self._stage(c * 4, blocks[2], **kw))
        c5 = c * 8
        self.dark5 = nn.Sequential(
            *self._stage(c5, blocks[3], **kw),
            # YOLOv3-SPP block: 1x1, 3x3, SPP, 3x3, 1x1.
            ConvBNAct(c5 * 2, c5, 1, **kw),
            ConvBNAct(c5, c5 * 2, 3, **kw),
            SPPBottleneck(c5 * 2, c5, **kw),
            ConvBNAct(c5, c5 * 2, 3, **kw),
            ConvBNAct(c5 * 2, c5, 1, **kw),
        )

        self._set_stages(
            ("stem", "dark2", "dark3", "dark4", "dark5"),
            (2, 4, 8, 16, 32),
            (c, c * 2, c * 4, c * 8, c5),
            out_features,
        )
        self.freeze(freeze_at)

    @staticmethod
    def _stage(in_channels: int, num_blocks: int, **kw) -> List[nn.Module]:
        """A stride-2 3x3 conv doubling the channels, then ``num_blocks`` residual blocks."""
        out = in_channels * 2
        return [ConvBNAct(in_channels, out, 3, 2, **kw)] + [
            DarknetResidual(out, **kw) for _ in range(num_blocks)
        ]


@BACKBONE_REGISTRY.register()
def build_darknet53_backbone(cfg, input_shape: ShapeSpec) -> Darknet53:
    """Build a :class:`Darknet53` from a yacs config (``cfg.MODEL.DARKNET``)."""
    c = cfg.MODEL.DARKNET
    return Darknet53(
        c.DEPTH,
        stem_channels=c.STEM_CHANNELS,
        out_features=c.OUT_FEATURES,
        norm=c.NORM,
        activation=c.ACTIVATION,
        in_channels=input_shape.channels,
        freeze_at=c.FREEZE_AT,
    )
