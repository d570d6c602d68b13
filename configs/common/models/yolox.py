"""YOLOX with CSPDarknet + PAFPN + decoupled head, at YOLOX-L size (depth 1.0, width 1.0).

Smaller and larger variants edit this tree (see configs/yolox_s.py):
``bottom_up.depth/width``, the neck ``depth``, and the head ``in_channels/feat_channels``.
"""
from detectron2.config import LazyCall as L

from yolox_d2.modeling import YOLOX, CSPDarknet, SimOTAMatcher, YOLOPAFPN, YOLOXHead

model = L(YOLOX)(
    backbone=L(YOLOPAFPN)(
        bottom_up=L(CSPDarknet)(
            depth=1.0,
            width=1.0,
            out_features=["dark3", "dark4", "dark5"],
            depthwise=False,
            activation="silu",
        ),
        in_features=["dark3", "dark4", "dark5"],
        depth=1.0,
        depthwise=False,
        activation="silu",
    ),
    head=L(YOLOXHead)(
        in_channels=[256, 512, 1024],
        num_classes="${..num_classes}",
        feat_channels=256,
        depthwise=False,
        activation="silu",
    ),
    head_in_features=["p3", "p4", "p5"],
    num_classes=80,
    matcher=L(SimOTAMatcher)(rule="legacy"),
    # raw 0-255 BGR, as the official weights expect
    pixel_mean=[0.0, 0.0, 0.0],
    pixel_std=[1.0, 1.0, 1.0],
    input_format="BGR",
    pad_value=114.0,
    test_square_size=640,
    test_score_thresh=0.01,
    test_nms_thresh=0.65,
    max_detections_per_image=100,
    channels_last=True,  # NHWC weights and inputs: faster convolutions, same arithmetic
)
