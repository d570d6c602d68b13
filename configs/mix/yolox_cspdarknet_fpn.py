"""YOLOX-S with Detectron2's standard FPN in place of the PAFPN neck."""
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone import FPN

from ..yolox_s import dataloader, lr_multiplier, model, optimizer, train

model.backbone = L(FPN)(
    bottom_up=model.backbone.bottom_up,  # CSPDarknet-S: dark3-dark5, strides 8/16/32
    in_features=["dark3", "dark4", "dark5"],
    out_channels=128,
    norm="BN",  # Detectron2's default is no norm; the YOLOX parts all use BatchNorm
    top_block=None,  # p3, p4, p5 only: the levels the YOLOX head predicts on
)
model.head.in_channels = [128, 128, 128]

train.output_dir = "./output/yolox_cspdarknet_fpn"
