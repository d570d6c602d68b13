"""
Roadmap rung 1, the YOLOX paper's Table 2 "YOLOv3 baseline" (38.5 AP), anchor-free: Darknet53 +
SPP and YOLOFPN with the coupled YOLOv3 head (a 3x3 conv then one 1x1 conv to 4 + 1 + C
outputs per level), weak augmentation (flip, colour jitter, multi-scale; no Mosaic / MixUp),
one positive per object (its centre cell, scale ranges per FPN level). Anchor boxes are out
of scope here: every rung is anchor-free, so the paper's "+anchor-free" step is in all of them.
"""
from detectron2.config import LazyCall as L

from yolox_d2.modeling import CenterMatcher, CoupledHead

from ..yolox_darknet53 import dataloader, lr_multiplier, model, optimizer, train

model.head = L(CoupledHead)(
    in_channels=model.head.in_channels, num_classes="${..num_classes}", activation="lrelu"
)
model.matcher = L(CenterMatcher)(window=1)
dataloader.train.dataset.update(mosaic_prob=0.0, enable_mixup=False)  # weak augmentation
train.output_dir = "./output/roadmap/r1_coupled_head"
