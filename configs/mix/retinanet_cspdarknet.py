"""
Detectron2's RetinaNet over YOLOX-S's CSPDarknet + PAFPN (3 levels, p3-p5), trained from scratch
with the YOLOX data pipeline and recipe.
"""
from detectron2 import model_zoo
from detectron2.layers import ShapeSpec

from ..yolox_s import dataloader, lr_multiplier, optimizer, train
from ..yolox_s import model as yolox

model = model_zoo.get_config("common/models/retinanet.py").model
model.backbone = yolox.backbone  # CSPDarknet-S + YOLOPAFPN: p3, p4, p5 (strides 8/16/32)
model.backbone.out_channels = [256, 256, 256]  # RetinaNetHead shares its convs across levels
model.head.input_shape = [ShapeSpec(channels=256)] * 3
model.head_in_features = ["p3", "p4", "p5"]
# 3 levels instead of Detectron2's 5: anchor scales 2^(0, 2/3, 4/3) instead of 2^(0, 1/3, 2/3)
# per level, so that the largest anchors (p5: 128-323 px) still reach large objects.
model.anchor_generator.strides = [8, 16, 32]
model.anchor_generator.sizes = [[x, x * 2 ** (2 / 3), x * 2 ** (4 / 3)] for x in [32, 64, 128]]
# CSPDarknet (like YOLOX) takes raw 0-255 BGR.
model.pixel_mean = [0.0, 0.0, 0.0]
model.pixel_std = [1.0, 1.0, 1.0]

# RetinaNet has no set_train_size(): train at the fixed mosaic size.
train.multiscale.enabled = False
train.output_dir = "./output/retinanet_cspdarknet"
