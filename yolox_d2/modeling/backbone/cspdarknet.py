"""Modified CSPDarknet (YOLOv5 / YOLOX backbone) as a Detectron2 Backbone."""
from typing import Sequence

import torch
from torch import nn

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY

from .stages import SequentialStagesBackbone
from ...layers import CSPLayer, Focus, SPPBottleneck, conv_block

__all__ = ["CSPDarknet", "build_cspdarknet_backbone"]


class CSPDarknet(SequentialStagesBackbone):
    """
    Focus stem and four CSP stages; the last stage has an SPP block. Stage outputs are named
    ``stem`` (stride 2), ``dark2`` (4), ``dark3`` (8), ``dark4`` (16) and ``dark5`` (32) with
    ``64, 128, 256, 512, 1024`` channels times ``width``.
    """

    def __init__(
        self,
        depth: float = 1.0,
        width: float = 1.0,
        *,
        out_features: Sequence[str] = ("dark3", "dark4", "dark5"),
        depthwise: bool = False,
        norm="BN",
        activation="silu",
        in_channels: int = 3,
        freeze_at: int = 0,
    ):
        """
        Args:
            depth: depth multiplier; a CSP stage has ``round(3 * depth)`` bottlenecks
                (x3 for dark3 and dark4), at least one.
            width: channel multiplier (base channels ``int(64 * width)``).
            out_features: names of the stages to return, in any of
                ``stem, dark2, dark3, dark4, dark5``.
            depthwise: depthwise-separable 3x3 convolutions (YOLOX-Nano).
            norm: Detectron2 norm name or callable (BatchNorm gets YOLOX's eps/momentum).
            activation: ``"silu"`` (YOLOX) / ``"relu"`` / ``"lrelu"`` or a module.
            in_channels: input image channels.
            freeze_at: stages to freeze (see :meth:`freeze`): 0 none, 1 the Focus stem,
                ``k`` the stem and ``dark2 .. dark<k>``; frozen BatchNorm layers become
                ``FrozenBatchNorm2d``.
        """
        super().__init__()
        base = int(width * 64)
        blocks = max(round(depth * 3), 1)
        kw = dict(norm=norm, activation=activation)
        conv = conv_block(depthwise)

        self.stem = Focus(in_channels, base, 3, **kw)
        self.dark2 = nn.Sequential(
            conv(base, base * 2, 3, 2, **kw),
            CSPLayer(base * 2, base * 2, blocks, depthwise=depthwise, **kw),
        )
        self.dark3 = nn.Sequential(
            conv(base * 2, base * 4, 3, 2, **kw),
            CSPLayer(base * 4, base * 4, blocks * 3, depthwise=depthwise, **kw),
        )
        self.dark4 = nn.Sequential(
            conv(base * 4, base * 8, 3, 2, **kw),
            CSPLayer(base * 8, base * 8, blocks * 3, depthwise=depthwise, **kw),
        )
        self.dark5 = nn.Sequential(
            conv(base * 8, base * 16, 3, 2, **kw),
            SPPBottleneck(base * 16, base * 16, **kw),
            CSPLayer(base * 16, base * 16, blocks, shortcut=False, depthwise=depthwise, **kw),
        )

        self._set_stages(
            ("stem", "dark2", "dark3", "dark4", "dark5"),
            (2, 4, 8, 16, 32),
            (base, base * 2, base * 4, base * 8, base * 16),
            out_features,
        )
        # The Focus stem needs an even input size; a multiple of the coarsest output stride
        # also makes every output exactly input / stride (YOLOX sizes are multiples of 32).
        # Necks (YOLOPAFPN, Detectron2's FPN) declare their own.
        self._size_divisibility = max(self._out_feature_strides[f] for f in self._out_features)
        self.freeze(freeze_at)

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility


@BACKBONE_REGISTRY.register()
def build_cspdarknet_backbone(cfg, input_shape: ShapeSpec) -> CSPDarknet:
    """Build a :class:`CSPDarknet` from a yacs config (``cfg.MODEL.CSPDARKNET``)."""
    c = cfg.MODEL.CSPDARKNET
    return CSPDarknet(
        c.DEPTH,
        c.WIDTH,
        out_features=c.OUT_FEATURES,
        depthwise=c.DEPTHWISE,
        norm=c.NORM,
        activation=c.ACTIVATION,
        in_channels=input_shape.channels,
        freeze_at=c.FREEZE_AT,
    )
