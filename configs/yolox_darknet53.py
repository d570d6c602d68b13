"""YOLOX-Darknet53: Darknet-53 + SPP, YOLOv3 FPN, decoupled head (63.7M params, 185.3 GFLOPs, 47.7 COCO AP)."""
from .common.models.yolox_darknet53 import model
from .yolox_l import dataloader, lr_multiplier, optimizer, train

train.output_dir = "./output/yolox_darknet53"
