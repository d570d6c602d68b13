"""
Roadmap rung 2, the YOLOX paper's Table 2 "+decoupled head" (39.6 AP): rung 1 with the
decoupled YOLOX head of YOLOX-Darknet53; still weak augmentation and one centre positive.
"""
from detectron2.config import LazyCall as L

from yolox_d2.modeling import CenterMatcher

from ..yolox_darknet53 import dataloader, lr_multiplier, model, optimizer, train

model.matcher = L(CenterMatcher)(window=1)
dataloader.train.dataset.update(mosaic_prob=0.0, enable_mixup=False)  # weak augmentation
train.output_dir = "./output/roadmap/r2_decoupled_head"
