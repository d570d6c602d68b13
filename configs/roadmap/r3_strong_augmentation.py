"""
Roadmap rung 3, the YOLOX paper's Table 2 "+strong augmentation" (42.0 AP) and "+anchor-free"
(42.9 AP; every rung here is anchor-free): the decoupled head with Mosaic + MixUp (the
YOLOX-Darknet53 recipe), still one centre positive per object.
"""
from detectron2.config import LazyCall as L

from yolox_d2.modeling import CenterMatcher

from ..yolox_darknet53 import dataloader, lr_multiplier, model, optimizer, train

model.matcher = L(CenterMatcher)(window=1)
train.output_dir = "./output/roadmap/r3_strong_augmentation"
