"""
Roadmap rung 4, the YOLOX paper's Table 2 "+multi positives" (45.0 AP): the 3x3 cells around
each object's centre cell are positives (FCOS's centre sampling), instead of the centre only.
"""
from detectron2.config import LazyCall as L

from yolox_d2.modeling import CenterMatcher

from ..yolox_darknet53 import dataloader, lr_multiplier, model, optimizer, train

model.matcher = L(CenterMatcher)(window=3)
train.output_dir = "./output/roadmap/r4_multi_positives"
