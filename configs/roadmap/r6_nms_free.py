"""
Roadmap rung 6, the YOLOX paper's Table 2 "+NMS free (optional)" (46.5 AP): end-to-end
YOLOX-Darknet53 (configs/yolox_darknet53_e2e.py): the PSS branch, one-to-one targets, stop
gradient, inference without NMS.
"""
from ..yolox_darknet53_e2e import dataloader, lr_multiplier, model, optimizer, train

train.output_dir = "./output/roadmap/r6_nms_free"
