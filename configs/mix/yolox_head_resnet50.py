"""
YOLOX (PAFPN neck, decoupled head, SimOTA, the YOLOX data pipeline and recipe) on Detectron2's
ImageNet-pretrained ResNet-50, the very ResNet of Detectron2's RetinaNet config.
"""
from detectron2 import model_zoo

from ..yolox_l import dataloader, lr_multiplier, model, optimizer, train

d2_model = model_zoo.get_config("common/models/retinanet.py").model

# R-50 with FrozenBN (MSRA weights, small per-GPU batches), res3-res5: strides 8/16/32,
# 512/1024/2048 channels; stem and res2 frozen as in Detectron2's R-50 detectors.
model.backbone.bottom_up = d2_model.backbone.bottom_up
model.backbone.bottom_up.freeze_at = 2
model.backbone.in_features = ["res3", "res4", "res5"]
# The PAFPN brings them to the YOLOX-L widths, which the YOLOX-L head of yolox_l.py expects.
model.backbone.out_channels = [256, 512, 1024]
# The MSRA weights take BGR 0-255 minus the ImageNet mean, std 1 (Detectron2's constants).
model.pixel_mean = d2_model.pixel_mean
model.pixel_std = d2_model.pixel_std

train.init_checkpoint = "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
train.output_dir = "./output/yolox_head_resnet50"
