"""Spatial pyramid pooling block (SPP) used on the last backbone stage."""
from typing import Sequence

import torch
from torch import nn

from .conv_bn_act import ConvBNAct

__all__ = ["SPPBottleneck"]


class SPPBottleneck(nn.Module):
    """
    ``1x1 conv (halve channels) -> [identity, maxpool k for k in kernel_sizes] -> concat ->
    1x1 conv``. Max pools use stride 1 and "same" padding.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: Sequence[int] = (5, 9, 13),
        *,
        norm="BN",
        activation="silu",
    ):
        """
        Args:
            kernel_sizes: max-pool window sizes (odd).
            norm, activation: see :class:`ConvBNAct`.
        """
        super().__init__()
        hidden = in_channels // 2
        self.conv1 = ConvBNAct(in_channels, hidden, 1, norm=norm, activation=activation)
        self.pools = nn.ModuleList(
            [nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2) for k in kernel_sizes]
        )
        self.conv2 = ConvBNAct(
            hidden * (len(kernel_sizes) + 1), out_channels, 1, norm=norm, activation=activation
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = torch.cat([x] + [pool(x) for pool in self.pools], dim=1)
        return self.conv2(x)
