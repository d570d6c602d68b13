"""YOLOX-M: depth 0.67, width 0.75, 640x640 (25.3M params, 73.8 GFLOPs, 46.9 COCO AP)."""
from yolox_d2.data import yolox_augmentation_defaults

from .yolox_l import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.update(depth=0.67, width=0.75)
model.backbone.depth = 0.67
model.head.update(in_channels=[192, 384, 768], feat_channels=192)
dataloader.train.dataset.update(**yolox_augmentation_defaults("m"))
train.output_dir = "./output/yolox_m"
