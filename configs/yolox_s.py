"""YOLOX-S: depth 0.33, width 0.50, 640x640 (9.0M params, 26.8 GFLOPs, 40.5 COCO AP)."""
from yolox_d2.data import yolox_augmentation_defaults

from .yolox_l import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.update(depth=0.33, width=0.50)
model.backbone.depth = 0.33
model.head.update(in_channels=[128, 256, 512], feat_channels=128)
train.output_dir = "./output/yolox_s"
# Small models: no MixUp, milder mosaic scale.
dataloader.train.dataset.update(**yolox_augmentation_defaults("s"))
