"""YOLOX-L: depth 1.0, width 1.0, 640x640 (54.2M params, 155.6 GFLOPs, 49.7 COCO AP)."""
from .common.data.coco import dataloader
from .common.models.yolox import model
from .common.optim import SGD as optimizer
from .common.train import lr_multiplier, train

# The inference canvas follows the one input size, dataloader.train.dataset.image_size
# (so does dataloader.test.mapper.image_size): override that key to move all three.
model.test_square_size = "${..dataloader.train.dataset.image_size[0]}"
train.output_dir = "./output/yolox_l"
