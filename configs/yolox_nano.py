"""YOLOX-Nano: depth 0.33, width 0.25, depthwise, 416x416 (0.91M params, 1.08 GFLOPs, 25.8 COCO AP)."""
from yolox_d2.data import yolox_augmentation_defaults

from .yolox_l import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.update(depth=0.33, width=0.25)
model.backbone.depth = 0.33
model.head.update(in_channels=[64, 128, 256], feat_channels=64)
model.backbone.bottom_up.depthwise = True
model.backbone.depthwise = True
model.head.depthwise = True
train.output_dir = "./output/yolox_nano"
# Small models: no MixUp, milder mosaic scale, mosaic prob 0.5; 416x416 (train, test and model
# follow it).
dataloader.train.dataset.update(**yolox_augmentation_defaults("nano"))
train.multiscale.random_size = (10, 20)  # 320-640, as the official Tiny/Nano
