"""
YOLOX-S neck and head on Detectron2's RegNetY-400MF (ImageNet-pretrained pycls weights),
the way Detectron2's ``mask_rcnn_regnety_4gf_dds_fpn_1x.py`` swaps a RegNet into its FPN.
"""
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone import RegNet
from detectron2.modeling.backbone.regnet import ResBottleneckBlock, SimpleStem

from ..yolox_s import dataloader, lr_multiplier, model, optimizer, train

# RegNetY-400MF of the DDS paper (pycls RegNetY-400MF_dds_8gpu.yaml): stages s1-s4 with
# 48/104/208/440 channels. FrozenBN and stem + s1 frozen, as Detectron2's RegNet configs
# (for training from scratch: norm="BN", freeze_at=0).
model.backbone.bottom_up = L(RegNet)(
    stem_class=SimpleStem,
    stem_width=32,
    block_class=ResBottleneckBlock,
    depth=16,
    w_a=27.89,
    w_0=48,
    w_m=2.09,
    group_width=8,
    se_ratio=0.25,
    freeze_at=2,
    norm="FrozenBN",
    out_features=["s2", "s3", "s4"],
)
model.backbone.in_features = ["s2", "s3", "s4"]  # strides 8/16/32
model.backbone.out_channels = [128, 256, 512]  # what the YOLOX-S head of yolox_s.py expects
# pycls weights take BGR 0-255 normalised by the ImageNet mean and std.
model.pixel_mean = [103.530, 116.280, 123.675]
model.pixel_std = [57.375, 57.120, 58.395]

train.init_checkpoint = (
    "https://dl.fbaipublicfiles.com/pycls/dds_baselines/160906449/RegNetY-400MF_dds_8gpu.pyth"
)
train.output_dir = "./output/yolox_head_regnet"
