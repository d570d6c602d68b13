"""YOLOX-Nano: depth 0.33, width 0.25, depthwise, 416x416 (0.91M params, 1.08 GFLOPs, 25.8 COCO AP)."""
from .yolox_l import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.update(depth=0.33, width=0.25)
model.backbone.depth = 0.33
model.head.update(in_channels=[64, 128, 256], feat_channels=64)
model.backbone.bottom_up.depthwise = True
model.backbone.depthwise = True
model.head.depthwise = True
model.test_square_size = 416
train.output_dir = "./output/yolox_nano"
# Small models: no MixUp, milder mosaic scale.
dataloader.train.dataset.update(enable_mixup=False, mosaic_scale=(0.5, 1.5))
dataloader.train.dataset.image_size = (416, 416)
dataloader.test.mapper.image_size = (416, 416)
train.multiscale.random_size = (10, 20)  # 320-640, as the official Tiny/Nano
dataloader.train.dataset.mosaic_prob = 0.5
