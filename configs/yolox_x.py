"""YOLOX-X: depth 1.33, width 1.25, 640x640 (99.1M params, 281.9 GFLOPs, 51.1 COCO AP)."""
from yolox_d2.data import yolox_augmentation_defaults

from .yolox_l import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.update(depth=1.33, width=1.25)
model.backbone.depth = 1.33
model.head.update(in_channels=[320, 640, 1280], feat_channels=320)
dataloader.train.dataset.update(**yolox_augmentation_defaults("x"))
train.output_dir = "./output/yolox_x"
