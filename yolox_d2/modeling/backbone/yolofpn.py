"""The YOLOv3 FPN neck used by YOLOX-Darknet53, over any Backbone."""
from typing import Dict, Sequence

import torch
from torch import nn

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone

from .neck_utils import level_names, three_level_inputs, upsample2x
from ...layers import ConvBNAct

__all__ = ["YOLOFPN", "build_yolox_yolofpn_backbone"]


def _embedding(in_channels: int, channels: int, **kw) -> nn.Sequential:
    """Five alternating 1x1 / 3x3 convolutions (``channels`` / ``2*channels`` wide)."""
    return nn.Sequential(
        ConvBNAct(in_channels, channels, 1, **kw),
        ConvBNAct(channels, channels * 2, 3, **kw),
        ConvBNAct(channels * 2, channels, 1, **kw),
        ConvBNAct(channels, channels * 2, 3, **kw),
        ConvBNAct(channels * 2, channels, 1, **kw),
    )


class YOLOFPN(Backbone):
    """
    YOLOv3-style top-down FPN: the coarsest feature is passed through unchanged, the two finer
    ones are built by "1x1 reduce, upsample, concat, 5-conv embedding". Outputs ``p3, p4, p5``
    with ``c3/2, c4/2, c5`` channels (128, 256, 512 on Darknet-53).
    """

    def __init__(
        self,
        bottom_up: Backbone,
        in_features: Sequence[str] = ("dark3", "dark4", "dark5"),
        *,
        norm="BN",
        activation="lrelu",
    ):
        """
        Args:
            bottom_up: backbone giving the three ``in_features`` (strides s, 2s, 4s).
            in_features: names of the bottom-up features used.
            norm, activation: see :class:`yolox_d2.layers.ConvBNAct`.
        """
        super().__init__()
        strides, (c3, c4, c5) = three_level_inputs("YOLOFPN", bottom_up, in_features)
        kw = dict(norm=norm, activation=activation)

        self.bottom_up = bottom_up
        self.in_features = list(in_features)
        self.reduce_conv5 = ConvBNAct(c5, c5 // 2, 1, **kw)
        self.embed4 = _embedding(c5 // 2 + c4, c4 // 2, **kw)
        self.reduce_conv4 = ConvBNAct(c4 // 2, c4 // 4, 1, **kw)
        self.embed3 = _embedding(c4 // 4 + c3, c3 // 2, **kw)

        self._out_features = level_names(strides)
        self._out_feature_strides = dict(zip(self._out_features, strides))
        self._out_feature_channels = dict(zip(self._out_features, (c3 // 2, c4 // 2, c5)))
        self._size_divisibility = strides[2]

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        features = self.bottom_up(x)
        x3, x4, x5 = (features[f] for f in self.in_features)
        out4 = self.embed4(torch.cat([upsample2x(self.reduce_conv5(x5)), x4], 1))
        out3 = self.embed3(torch.cat([upsample2x(self.reduce_conv4(out4)), x3], 1))
        return dict(zip(self._out_features, (out3, out4, x5)))


@BACKBONE_REGISTRY.register()
def build_yolox_yolofpn_backbone(cfg, input_shape: ShapeSpec) -> YOLOFPN:
    """Darknet53 + YOLOFPN from a yacs config (``cfg.MODEL.DARKNET`` / ``cfg.MODEL.YOLOX_FPN``)."""
    from .darknet import build_darknet53_backbone

    c = cfg.MODEL.YOLOX_FPN
    return YOLOFPN(
        build_darknet53_backbone(cfg, input_shape),
        in_features=c.IN_FEATURES,
        norm=c.NORM,
        activation=c.ACTIVATION,
    )
