"""YOLOX's PAFPN neck: a top-down then bottom-up path of CSP layers over any Backbone."""
from typing import Dict, Optional, Sequence

import torch
from torch import nn

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone

from .neck_utils import level_names, three_level_inputs, upsample2x
from ...layers import ConvBNAct, CSPLayer, conv_block

__all__ = ["YOLOPAFPN", "build_yolox_pafpn_backbone"]


class YOLOPAFPN(Backbone):
    """
    Path-aggregation FPN used by YOLOX. It wraps a ``bottom_up`` Backbone the way
    Detectron2's :class:`FPN` does: the three ``in_features`` (strides s, 2s, 4s, e.g. a
    CSPDarknet's ``dark3, dark4, dark5`` or a ResNet's ``res3, res4, res5``) become outputs
    ``p{log2(stride)}`` (``p3, p4, p5``) with ``out_channels``.
    """

    def __init__(
        self,
        bottom_up: Backbone,
        in_features: Sequence[str] = ("dark3", "dark4", "dark5"),
        out_channels: Optional[Sequence[int]] = None,
        depth: float = 1.0,
        *,
        depthwise: bool = False,
        norm="BN",
        activation="silu",
    ):
        """
        Args:
            bottom_up: backbone giving the three ``in_features`` (ordered fine to coarse, each
                stride twice the previous).
            in_features: names of the bottom-up features used.
            out_channels: channels of the three outputs; default: the bottom-up channels
                (as in every released YOLOX model).
            depth: depth multiplier; each CSP layer has ``round(3 * depth)`` bottlenecks.
            depthwise: depthwise-separable 3x3 convolutions (YOLOX-Nano).
            norm, activation: see :class:`yolox_d2.layers.ConvBNAct`.
        """
        super().__init__()
        strides, (c3, c4, c5) = three_level_inputs("YOLOPAFPN", bottom_up, in_features)
        o3, o4, o5 = out_channels if out_channels is not None else (c3, c4, c5)
        n = round(3 * depth)
        kw = dict(norm=norm, activation=activation)
        conv = conv_block(depthwise)

        self.bottom_up = bottom_up
        self.in_features = list(in_features)
        # top-down path
        self.lateral_conv5 = ConvBNAct(c5, o4, 1, **kw)
        self.top_down_csp4 = CSPLayer(o4 + c4, o4, n, shortcut=False, depthwise=depthwise, **kw)
        self.lateral_conv4 = ConvBNAct(o4, o3, 1, **kw)
        self.top_down_csp3 = CSPLayer(o3 + c3, o3, n, shortcut=False, depthwise=depthwise, **kw)
        # bottom-up path
        self.downsample_conv3 = conv(o3, o3, 3, 2, **kw)
        self.bottom_up_csp4 = CSPLayer(o3 + o3, o4, n, shortcut=False, depthwise=depthwise, **kw)
        self.downsample_conv4 = conv(o4, o4, 3, 2, **kw)
        self.bottom_up_csp5 = CSPLayer(o4 + o4, o5, n, shortcut=False, depthwise=depthwise, **kw)

        self._out_features = level_names(strides)
        self._out_feature_strides = dict(zip(self._out_features, strides))
        self._out_feature_channels = dict(zip(self._out_features, (o3, o4, o5)))
        self._size_divisibility = strides[2]

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        features = self.bottom_up(x)
        x3, x4, x5 = (features[f] for f in self.in_features)

        lateral5 = self.lateral_conv5(x5)
        td4 = self.top_down_csp4(torch.cat([upsample2x(lateral5), x4], 1))
        lateral4 = self.lateral_conv4(td4)
        out3 = self.top_down_csp3(torch.cat([upsample2x(lateral4), x3], 1))
        out4 = self.bottom_up_csp4(torch.cat([self.downsample_conv3(out3), lateral4], 1))
        out5 = self.bottom_up_csp5(torch.cat([self.downsample_conv4(out4), lateral5], 1))
        return dict(zip(self._out_features, (out3, out4, out5)))


@BACKBONE_REGISTRY.register()
def build_yolox_pafpn_backbone(cfg, input_shape: ShapeSpec) -> YOLOPAFPN:
    """CSPDarknet + YOLOPAFPN from a yacs config (``cfg.MODEL.CSPDARKNET`` / ``cfg.MODEL.YOLOX_FPN``)."""
    from .cspdarknet import build_cspdarknet_backbone

    c = cfg.MODEL.YOLOX_FPN
    return YOLOPAFPN(
        build_cspdarknet_backbone(cfg, input_shape),
        in_features=c.IN_FEATURES,
        out_channels=c.OUT_CHANNELS or None,
        depth=c.DEPTH,
        depthwise=c.DEPTHWISE,
        norm=c.NORM,
        activation=c.ACTIVATION,
    )
