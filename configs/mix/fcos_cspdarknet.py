"""
Detectron2's FCOS over YOLOX-S's CSPDarknet + PAFPN (3 levels, p3-p5), trained from scratch with
the YOLOX data pipeline and recipe.
"""
from detectron2 import model_zoo
from detectron2.layers import ShapeSpec

from ..yolox_s import dataloader, lr_multiplier, optimizer, train
from ..yolox_s import model as yolox

model = model_zoo.get_config("common/models/fcos.py").model
model.backbone = yolox.backbone  # CSPDarknet-S + YOLOPAFPN: p3, p4, p5 (strides 8/16/32)
model.backbone.out_channels = [256, 256, 256]  # FCOSHead shares its convs across levels
model.head.input_shape = [ShapeSpec(channels=256)] * 3
# FCOS derives its anchor points and size ranges from the strides of these features.
model.head_in_features = ["p3", "p4", "p5"]
# CSPDarknet (like YOLOX) takes raw 0-255 BGR.
model.pixel_mean = [0.0, 0.0, 0.0]
model.pixel_std = [1.0, 1.0, 1.0]

# FCOS has no set_train_size(): train at the fixed mosaic size.
train.multiscale.enabled = False
train.output_dir = "./output/fcos_cspdarknet"
