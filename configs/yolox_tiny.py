"""YOLOX-Tiny: depth 0.33, width 0.375, 416x416 (5.06M params, 6.45 GFLOPs, 32.8 COCO AP)."""
from yolox_d2.data import yolox_augmentation_defaults

from .yolox_l import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.update(depth=0.33, width=0.375)
model.backbone.depth = 0.33
model.head.update(in_channels=[96, 192, 384], feat_channels=96)
train.output_dir = "./output/yolox_tiny"
# Small models: no MixUp, milder mosaic scale; 416x416 (train, test and model follow it).
dataloader.train.dataset.update(**yolox_augmentation_defaults("tiny"))
train.multiscale.random_size = (10, 20)  # 320-640, as the official Tiny/Nano
