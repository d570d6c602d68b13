"""TorchScript export (tracing) of a :class:`YOLOXExportWrapper`."""

import logging
import os
import warnings
from typing import Union

import torch

from ..data.transforms import SizeLike
from .onnx import sample_input
from .wrapper import YOLOXExportWrapper

__all__ = ["export_torchscript"]

logger = logging.getLogger(__name__)


def export_torchscript(
    wrapper: YOLOXExportWrapper,
    path: Union[str, os.PathLike],
    *,
    sample_size: SizeLike = 640,
    batch_size: int = 1,
) -> str:
    """
    Trace ``wrapper`` on a random input with ``torch.jit.trace`` and save it. The traced module
    takes any batch size and any input size (multiples of 32): shapes are traced, not baked in.
    Load it with ``torch.jit.load(path)``; the ``"nms"`` output also needs ``import
    torchvision`` in the loading process (it registers the ``torchvision::nms`` operator).

    Args:
        wrapper: the model to export.
        path: the ``.pt`` / ``.ts`` file to write (parent folders are created).
        sample_size: ``(h, w)`` or int of the tracing input; multiples of 32.
        batch_size: batch of the tracing input.

    Returns:
        ``path`` as a string.
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sample = sample_input(wrapper, sample_size, batch_size)
    wrapper.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # Shape arithmetic is traced (dynamic); the tracer's generic warnings about it are noise.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        traced = torch.jit.trace(wrapper, (sample,), check_trace=False)
    traced.save(path)
    logger.info(
        "Exported TorchScript (traced on %s) to %s: %s", tuple(sample.shape), path, wrapper.describe()
    )
    return path
