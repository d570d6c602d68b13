"""YOLOX models. Importing this registers the backbones and the meta-architecture."""
from .backbone import (
    CSPDarknet,
    Darknet53,
    YOLOFPN,
    YOLOPAFPN,
    build_cspdarknet_backbone,
    build_darknet53_backbone,
    build_yolox_pafpn_backbone,
    build_yolox_yolofpn_backbone,
)
from .center_matcher import CenterMatcher
from .meta_arch import YOLOX, CoupledHead, YOLOXHead
from .simota import OneToOneMatcher, SimOTAAssignment, SimOTAMatcher
from .test_time_augmentation import YOLOXWithTTA

__all__ = [k for k in globals().keys() if not k.startswith("_")]
