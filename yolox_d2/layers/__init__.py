"""Building blocks shared by the YOLOX backbones, necks and head."""
from .conv_bn_act import (
    YOLOX_BN_EPS,
    YOLOX_BN_MOMENTUM,
    ConvBNAct,
    DepthwiseSeparableConv,
    conv_block,
    fuse_conv_bn,
    get_activation,
    get_yolox_norm,
)
from .csp import Bottleneck, CSPLayer
from .focus import Focus, space_to_depth
from .spp import SPPBottleneck

__all__ = [k for k in globals().keys() if not k.startswith("_")]
