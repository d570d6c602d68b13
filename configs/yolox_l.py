"""YOLOX-L: depth 1.0, width 1.0, 640x640 (54.2M params, 155.6 GFLOPs, 49.7 COCO AP)."""
from .common.data.coco import dataloader
from .common.models.yolox import model
from .common.optim import SGD as optimizer
from .common.train import lr_multiplier, train

train.output_dir = "./output/yolox_l"
