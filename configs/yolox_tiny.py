"""YOLOX-Tiny: depth 0.33, width 0.375, 416x416 (5.06M params, 6.45 GFLOPs, 32.8 COCO AP)."""
from .yolox_l import model

model.backbone.bottom_up.update(depth=0.33, width=0.375)
model.backbone.depth = 0.33
model.head.update(in_channels=[96, 192, 384], feat_channels=96)
model.test_square_size = 416
