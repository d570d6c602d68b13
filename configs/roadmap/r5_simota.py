"""
Roadmap rung 5, the YOLOX paper's Table 2 "+SimOTA" (47.3 AP): YOLOX-Darknet53 itself
(configs/yolox_darknet53.py), SimOTA label assignment.
"""
from ..yolox_darknet53 import dataloader, lr_multiplier, model, optimizer, train

train.output_dir = "./output/roadmap/r5_simota"
