"""YOLOX-Darknet53: Darknet-53 + SPP backbone, YOLOv3 FPN neck, decoupled head, LeakyReLU."""
from detectron2.config import LazyCall as L

from yolox_d2.modeling import YOLOFPN, Darknet53, YOLOXHead

from .yolox import model

model.backbone = L(YOLOFPN)(
    bottom_up=L(Darknet53)(depth=53, out_features=["dark3", "dark4", "dark5"], activation="lrelu"),
    in_features=["dark3", "dark4", "dark5"],
    activation="lrelu",
)
model.head.in_channels = [128, 256, 512]
model.head.feat_channels = 256
model.head.activation = "lrelu"
