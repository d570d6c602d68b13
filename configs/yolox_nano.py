"""YOLOX-Nano: depth 0.33, width 0.25, depthwise, 416x416 (0.91M params, 1.08 GFLOPs, 25.8 COCO AP)."""
from .yolox_l import model

model.backbone.bottom_up.update(depth=0.33, width=0.25)
model.backbone.depth = 0.33
model.head.update(in_channels=[64, 128, 256], feat_channels=64)
model.backbone.bottom_up.depthwise = True
model.backbone.depthwise = True
model.head.depthwise = True
model.test_square_size = 416
