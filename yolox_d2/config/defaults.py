"""yacs config keys for building YOLOX with Detectron2's ``build_model(cfg)``.

LazyConfig files under ``configs/`` are the primary interface; these keys let users of the
older yacs configs use the registered parts too::

    cfg = get_cfg(); add_yolox_config(cfg)
    cfg.MODEL.META_ARCHITECTURE = "YOLOX"
    cfg.MODEL.BACKBONE.NAME = "build_yolox_pafpn_backbone"
    model = build_model(cfg)
"""
from detectron2.config import CfgNode as CN

__all__ = ["add_yolox_config"]


def add_yolox_config(cfg: CN) -> CN:
    """Add the YOLOX keys (defaults: YOLOX-L on COCO) to a Detectron2 yacs config, in place."""
    cfg.MODEL.CSPDARKNET = CN()
    cfg.MODEL.CSPDARKNET.DEPTH = 1.0
    cfg.MODEL.CSPDARKNET.WIDTH = 1.0
    cfg.MODEL.CSPDARKNET.OUT_FEATURES = ["dark3", "dark4", "dark5"]
    cfg.MODEL.CSPDARKNET.DEPTHWISE = False
    cfg.MODEL.CSPDARKNET.NORM = "BN"
    cfg.MODEL.CSPDARKNET.ACTIVATION = "silu"
    cfg.MODEL.CSPDARKNET.FREEZE_AT = 0  # 0: nothing frozen, 1: stem, k: stem + k-1 stages

    cfg.MODEL.DARKNET = CN()
    cfg.MODEL.DARKNET.DEPTH = 53
    cfg.MODEL.DARKNET.STEM_CHANNELS = 32
    cfg.MODEL.DARKNET.OUT_FEATURES = ["dark3", "dark4", "dark5"]
    cfg.MODEL.DARKNET.NORM = "BN"
    cfg.MODEL.DARKNET.ACTIVATION = "lrelu"
    cfg.MODEL.DARKNET.FREEZE_AT = 0  # 0: nothing frozen, 1: stem, k: stem + k-1 stages

    cfg.MODEL.YOLOX_FPN = CN()
    cfg.MODEL.YOLOX_FPN.IN_FEATURES = ["dark3", "dark4", "dark5"]
    cfg.MODEL.YOLOX_FPN.OUT_CHANNELS = []  # empty: the bottom-up channels
    cfg.MODEL.YOLOX_FPN.DEPTH = 1.0
    cfg.MODEL.YOLOX_FPN.DEPTHWISE = False
    cfg.MODEL.YOLOX_FPN.NORM = "BN"
    cfg.MODEL.YOLOX_FPN.ACTIVATION = "silu"

    cfg.MODEL.YOLOX = CN()
    cfg.MODEL.YOLOX.NUM_CLASSES = 80
    cfg.MODEL.YOLOX.IN_FEATURES = []  # empty: all backbone outputs, by stride
    cfg.MODEL.YOLOX.HEAD_CHANNELS = 256
    cfg.MODEL.YOLOX.HEAD_DEPTHWISE = False
    cfg.MODEL.YOLOX.HEAD_NORM = "BN"
    cfg.MODEL.YOLOX.HEAD_ACTIVATION = "silu"
    cfg.MODEL.YOLOX.SIMOTA_RULE = "legacy"
    cfg.MODEL.YOLOX.IOU_LOSS_TYPE = "iou"
    cfg.MODEL.YOLOX.PAD_VALUE = 114.0
    cfg.MODEL.YOLOX.TEST_SQUARE_SIZE = 640
    cfg.MODEL.YOLOX.SCORE_THRESH_TEST = 0.01
    cfg.MODEL.YOLOX.NMS_THRESH_TEST = 0.65
    # Channels-last (NHWC) weights and inputs: faster convolutions, same arithmetic.
    cfg.MODEL.YOLOX.CHANNELS_LAST = True
    return cfg
