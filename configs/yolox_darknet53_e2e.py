"""
End-to-end (NMS-free) YOLOX-Darknet53: YOLOX-Darknet53 plus the positive sample selector
(YOLOX paper Sec. 2.1 and Table 2 "+NMS free", after PSS, arXiv 2101.11782): two 3x3 convs
and a 1x1 output per level on the detached regression features, one-to-one targets, stop
gradient, inference without NMS (67.27M params, 205.1 GFLOPs, 46.5 COCO AP).
"""
from detectron2.config import LazyCall as L

from yolox_d2.modeling import OneToOneMatcher

from .yolox_darknet53 import dataloader, lr_multiplier, model, optimizer, train

model.end_to_end = True
model.head.end_to_end = True
model.one_to_one_matcher = L(OneToOneMatcher)(rule="${..matcher.rule}")
model.pss_loss_weight = 1.0
train.output_dir = "./output/yolox_darknet53_e2e"
