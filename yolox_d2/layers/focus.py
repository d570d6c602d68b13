"""Focus stem: space-to-depth (2x2 pixels into channels) then a convolution."""
import torch
from torch import nn

from .conv_bn_act import ConvBNAct

__all__ = ["Focus", "space_to_depth"]


def space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """
    (N, C, H, W) -> (N, 4C, H/2, W/2). Channel blocks are ordered top-left, bottom-left,
    top-right, bottom-right, the order the released YOLOX weights expect.
    """
    return torch.cat(
        (x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), dim=1
    )


class Focus(nn.Module):
    """The YOLOX/YOLOv5 stem: :func:`space_to_depth` then a stride-1 :class:`ConvBNAct`."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, *, norm="BN", activation="silu"
    ):
        super().__init__()
        self.conv = ConvBNAct(in_channels * 4, out_channels, kernel_size, norm=norm, activation=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(space_to_depth(x))
