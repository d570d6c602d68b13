"""Cross-stage-partial (CSP) blocks of YOLOv5/YOLOX: the bottleneck and the CSP layer."""
import torch
from torch import nn

from .conv_bn_act import ConvBNAct, conv_block

__all__ = ["Bottleneck", "CSPLayer"]


class Bottleneck(nn.Module):
    """``1x1 conv -> 3x3 conv`` with an optional residual connection."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        shortcut: bool = True,
        expansion: float = 0.5,
        depthwise: bool = False,
        norm="BN",
        activation="silu",
    ):
        """
        Args:
            shortcut: add the input to the output (only when in/out channels agree).
            expansion: hidden channels = ``int(out_channels * expansion)``.
            depthwise: use a depthwise-separable 3x3 convolution.
            norm, activation: see :class:`ConvBNAct`.
        """
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = ConvBNAct(in_channels, hidden, 1, norm=norm, activation=activation)
        self.conv2 = conv_block(depthwise)(hidden, out_channels, 3, norm=norm, activation=activation)
        self.use_shortcut = shortcut and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.use_shortcut else y


class CSPLayer(nn.Module):
    """
    CSP layer ("C3"): the input is split into a main branch (1x1 conv then ``num_blocks``
    bottlenecks) and a short branch (1x1 conv); both are concatenated and fused by a 1x1 conv.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_blocks: int = 1,
        *,
        shortcut: bool = True,
        expansion: float = 0.5,
        depthwise: bool = False,
        norm="BN",
        activation="silu",
    ):
        """
        Args:
            num_blocks: number of :class:`Bottleneck` in the main branch.
            shortcut: residual connections inside the bottlenecks (False in the necks).
            expansion: each branch has ``int(out_channels * expansion)`` channels.
            depthwise, norm, activation: see :class:`Bottleneck`.
        """
        super().__init__()
        hidden = int(out_channels * expansion)
        self.main_conv = ConvBNAct(in_channels, hidden, 1, norm=norm, activation=activation)
        self.short_conv = ConvBNAct(in_channels, hidden, 1, norm=norm, activation=activation)
        self.final_conv = ConvBNAct(2 * hidden, out_channels, 1, norm=norm, activation=activation)
        self.blocks = nn.Sequential(
            *[
                Bottleneck(
                    hidden,
                    hidden,
                    shortcut=shortcut,
                    expansion=1.0,
                    depthwise=depthwise,
                    norm=norm,
                    activation=activation,
                )
                for _ in range(num_blocks)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = self.blocks(self.main_conv(x))
        short = self.short_conv(x)
        return self.final_conv(torch.cat((main, short), dim=1))
