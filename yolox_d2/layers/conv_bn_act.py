"""Convolution + normalisation + activation, the unit every YOLOX block is made of."""
from typing import Callable, Optional, Union

import torch
from torch import nn
from torch.nn import functional as F

from detectron2.layers import FrozenBatchNorm2d, get_norm

__all__ = [
    "ConvBNAct",
    "DepthwiseSeparableConv",
    "get_activation",
    "get_yolox_norm",
    "fuse_conv_bn",
    "YOLOX_BN_EPS",
    "YOLOX_BN_MOMENTUM",
]

# YOLOX initialises every BatchNorm with these (docs/yolox_facts.md, "Network").
YOLOX_BN_EPS = 1e-3
YOLOX_BN_MOMENTUM = 0.03

_ACTIVATIONS = {
    "silu": lambda: nn.SiLU(inplace=True),
    "relu": lambda: nn.ReLU(inplace=True),
    "lrelu": lambda: nn.LeakyReLU(0.1, inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.1, inplace=True),
}


def get_activation(activation: Union[str, nn.Module, None]) -> Optional[nn.Module]:
    """
    Args:
        activation: ``"silu"``, ``"relu"``, ``"lrelu"`` (LeakyReLU with slope 0.1, as in
            YOLOX-Darknet53), an ``nn.Module`` (used as is) or None / "" for no activation.
    """
    if activation is None or isinstance(activation, nn.Module):
        return activation
    if activation == "":
        return None
    try:
        factory = _ACTIVATIONS[activation]
    except KeyError:
        raise ValueError(
            f"Unknown activation {activation!r}; expected one of {sorted(_ACTIVATIONS)} "
            "or an nn.Module"
        ) from None
    return factory()


def get_yolox_norm(norm: Union[str, Callable, None], channels: int) -> Optional[nn.Module]:
    """
    Detectron2's :func:`get_norm` (``"BN"``, ``"SyncBN"``, ``"FrozenBN"``, ``"GN"``, ... or a
    callable), with batch-norm layers set to the YOLOX eps (1e-3) and momentum (0.03).
    """
    layer = get_norm(norm, channels)
    if isinstance(layer, nn.modules.batchnorm._BatchNorm):
        layer.eps = YOLOX_BN_EPS
        layer.momentum = YOLOX_BN_MOMENTUM
    elif isinstance(layer, FrozenBatchNorm2d):
        layer.eps = YOLOX_BN_EPS
    return layer


class ConvBNAct(nn.Conv2d):
    """
    ``Conv2d(k, stride, padding=(k-1)//2) -> norm -> activation``.

    Like :class:`detectron2.layers.Conv2d`, the convolution's parameters live on the module
    itself and the normalisation under ``.norm``, so checkpoints read ``name.weight`` and
    ``name.norm.{weight,bias,running_mean,running_var}``. :meth:`fuse` folds the norm into
    the convolution for inference.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        *,
        groups: int = 1,
        norm: Union[str, Callable, None] = "BN",
        activation: Union[str, nn.Module, None] = "silu",
    ):
        """
        Args:
            in_channels, out_channels, kernel_size, stride, groups: as in ``nn.Conv2d``;
                padding is ``(kernel_size - 1) // 2`` ("same" for odd kernels).
            norm: a Detectron2 norm name or callable (see :func:`get_yolox_norm`); with a
                norm the convolution has no bias.
            activation: see :func:`get_activation`.
        """
        use_norm = norm not in (None, "")
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=(kernel_size - 1) // 2,
            groups=groups,
            bias=not use_norm,
        )
        self.norm = get_yolox_norm(norm, out_channels) if use_norm else None
        self.activation = get_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = self.norm
        if norm is not None and _has_fixed_statistics(norm):
            # A norm with fixed statistics (eval-mode BatchNorm, FrozenBatchNorm) is folded into
            # the weights on the fly: a multiply the size of the weights instead of a second
            # pass over the activations. Differentiable, so frozen-BN training gets it too.
            weight, bias = fuse_conv_bn(self.weight, self.bias, norm)
            x = F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
        else:
            x = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
            if norm is not None:
                x = norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x

    @torch.no_grad()
    def fuse(self) -> "ConvBNAct":
        """Fold a BatchNorm / FrozenBatchNorm ``norm`` into the convolution (inference only)."""
        if self.norm is None:
            return self
        weight, bias = fuse_conv_bn(self.weight, self.bias, self.norm)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)
        self.norm = None
        return self


def _has_fixed_statistics(norm: nn.Module) -> bool:
    """True if ``norm`` in its current mode is a fixed per-channel affine map (foldable)."""
    if isinstance(norm, FrozenBatchNorm2d):
        return True
    return (
        isinstance(norm, nn.modules.batchnorm._BatchNorm)
        and not norm.training
        and norm.running_var is not None
        and norm.weight is not None
    )


def fuse_conv_bn(weight: torch.Tensor, bias: Optional[torch.Tensor], norm: nn.Module):
    """
    Returns ``(weight, bias)`` of a convolution equivalent to ``conv`` followed by ``norm``
    in eval mode. ``norm`` must be a BatchNorm or Detectron2 FrozenBatchNorm2d.
    """
    if isinstance(norm, (nn.modules.batchnorm._BatchNorm, FrozenBatchNorm2d)):
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        shift = norm.bias - norm.running_mean * scale
    else:
        raise TypeError(
            f"Cannot fold {type(norm).__name__} into a convolution; only BatchNorm and "
            "FrozenBatchNorm2d have fixed inference statistics"
        )
    fused_weight = weight * scale.reshape(-1, 1, 1, 1)
    if weight.is_contiguous(memory_format=torch.channels_last):
        fused_weight = fused_weight.contiguous(memory_format=torch.channels_last)
    fused_bias = shift if bias is None else bias * scale + shift
    return fused_weight, fused_bias


class DepthwiseSeparableConv(nn.Module):
    """A depthwise ``k x k`` ConvBNAct followed by a pointwise ``1 x 1`` ConvBNAct."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        *,
        norm="BN",
        activation="silu",
    ):
        """Arguments as in :class:`ConvBNAct` (the depthwise conv has ``groups=in_channels``)."""
        super().__init__()
        self.depthwise = ConvBNAct(
            in_channels,
            in_channels,
            kernel_size,
            stride,
            groups=in_channels,
            norm=norm,
            activation=activation,
        )
        self.pointwise = ConvBNAct(in_channels, out_channels, 1, norm=norm, activation=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def conv_block(depthwise: bool):
    """The 3x3 convolution type a YOLOX block uses: depthwise-separable or plain."""
    return DepthwiseSeparableConv if depthwise else ConvBNAct
