from .cspdarknet import CSPDarknet, build_cspdarknet_backbone
from .darknet import Darknet53, DarknetResidual, build_darknet53_backbone
from .pafpn import YOLOPAFPN, build_yolox_pafpn_backbone
from .yolofpn import YOLOFPN, build_yolox_yolofpn_backbone

__all__ = [k for k in globals().keys() if not k.startswith("_")]
