"""YOLOX-Darknet53: Darknet-53 + SPP, YOLOv3 FPN, decoupled head (63.7M params, 185.3 GFLOPs, 47.7 COCO AP)."""
from yolox_d2.data import yolox_augmentation_defaults

from .common.models.yolox_darknet53 import model
from .yolox_l import dataloader, lr_multiplier, optimizer, train

dataloader.train.dataset.update(**yolox_augmentation_defaults("darknet53"))
# The inference canvas follows the one input size, as in yolox_l.py.
model.test_square_size = "${..dataloader.train.dataset.image_size[0]}"
train.output_dir = "./output/yolox_darknet53"
