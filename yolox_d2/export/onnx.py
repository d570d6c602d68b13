"""ONNX export of a :class:`YOLOXExportWrapper`, and onnxruntime helpers to run / verify it."""

import logging
import os
import warnings
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from ..data.transforms import SizeLike, to_hw
from .wrapper import YOLOXExportWrapper

__all__ = ["DEFAULT_OPSET", "export_onnx", "onnx_dynamic_axes", "onnxruntime_session", "run_onnx"]

logger = logging.getLogger(__name__)

#: Opset of the exported graphs (NonMaxSuppression needs >= 10; onnxruntime >= 1.12 runs 17).
DEFAULT_OPSET = 17
INPUT_NAME = "images"


def onnx_dynamic_axes(wrapper: YOLOXExportWrapper) -> Dict[str, Dict[int, str]]:
    """Dynamic axes of the graph: batch, height and width of the input and what follows."""
    axes: Dict[str, Dict[int, str]] = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
    for name in wrapper.output_names:
        if name == "detections":
            axes[name] = {0: "num_detections"}
        elif name == "predictions":
            axes[name] = {0: "batch", 1: "anchors"}
        else:  # per-level raw maps
            axes[name] = {0: "batch", 2: f"{name}_height", 3: f"{name}_width"}
    return axes


def sample_input(wrapper: YOLOXExportWrapper, sample_size: SizeLike, batch_size: int) -> torch.Tensor:
    """A random 0-255 input of ``batch_size`` x 3 x ``sample_size`` on the model's device."""
    h, w = to_hw(sample_size)
    div = wrapper.size_divisibility
    if h % div or w % div:
        raise ValueError(f"The sample size must be a multiple of {div}, got {h}x{w}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(wrapper.parameters()).device
    generator = torch.Generator().manual_seed(0)
    return (torch.rand((batch_size, 3, h, w), generator=generator) * 255).to(device)


def export_onnx(
    wrapper: YOLOXExportWrapper,
    path: Union[str, os.PathLike],
    *,
    sample_size: SizeLike = 640,
    batch_size: int = 1,
    opset: int = DEFAULT_OPSET,
    dynamic: bool = True,
    check: bool = True,
) -> str:
    """
    Trace ``wrapper`` on a random input and write an ONNX graph (input ``images``, outputs
    :attr:`YOLOXExportWrapper.output_names`).

    Args:
        wrapper: the model to export (its outputs decide the graph's, see
            :mod:`yolox_d2.export.wrapper`).
        path: the ``.onnx`` file to write (parent folders are created).
        sample_size: ``(h, w)`` or int of the tracing input; multiples of 32.
        batch_size: batch of the tracing input.
        opset: ONNX opset (>= 11).
        dynamic: dynamic batch, height and width (else fixed to the sample's shape).
        check: validate the file with ``onnx.checker`` (skipped, with a warning, when the
            ``onnx`` package is not installed).

    Returns:
        ``path`` as a string.
    """
    if opset < 11:
        raise ValueError(f"opset must be >= 11 (dynamic NonMaxSuppression / Resize), got {opset}")
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sample = sample_input(wrapper, sample_size, batch_size)
    wrapper.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript-based exporter is the one that maps torchvision / autograd Function
        # operators to ONNX NonMaxSuppression without extra dependencies; its deprecation
        # notice is not actionable for users of this function.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # Indices are never negative here, the case this warning is about.
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        torch.onnx.export(
            wrapper,
            (sample,),
            path,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=wrapper.output_names,
            dynamic_axes=onnx_dynamic_axes(wrapper) if dynamic else None,
            opset_version=opset,
            do_constant_folding=True,
        )
    if check:
        try:
            import onnx
        except ImportError:
            logger.warning("The onnx package is not installed: %s was not checked", path)
        else:
            onnx.checker.check_model(path)
    logger.info(
        "Exported ONNX (opset %d, %s input %s) to %s: %s",
        opset,
        "dynamic" if dynamic else "fixed",
        f"{INPUT_NAME} (N, 3, H, W)" if dynamic else f"{INPUT_NAME} {tuple(sample.shape)}",
        path,
        wrapper.describe(),
    )
    return path


def onnxruntime_session(
    path: Union[str, os.PathLike], num_threads: Optional[int] = None, allow_spinning: bool = True
):
    """
    An ``onnxruntime.InferenceSession`` on the CPU.

    Args:
        path: the ``.onnx`` file.
        num_threads: intra-op threads (None: onnxruntime's default, all cores).
        allow_spinning: let idle onnxruntime threads busy-wait for the next run (its default,
            lowest latency for back-to-back runs). Turn off when other work (e.g. PyTorch)
            runs between calls on the same cores: spinning threads slow it down.

    Raises:
        ImportError: onnxruntime is not installed (``pip install onnxruntime``).
    """
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ImportError("Running ONNX models needs onnxruntime: pip install onnxruntime") from e
    options = ort.SessionOptions()
    if num_threads is not None:
        options.intra_op_num_threads = int(num_threads)
        options.inter_op_num_threads = 1
    if not allow_spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session, images: Union[np.ndarray, torch.Tensor]) -> List[np.ndarray]:
    """Run an exported YOLOX graph on a float32 (N, 3, H, W) batch; returns its outputs."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    images = np.ascontiguousarray(images, dtype=np.float32)
    return session.run(None, {INPUT_NAME: images})


def max_abs_difference(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """Largest absolute difference between two lists of same-shaped arrays."""
    if len(a) != len(b):
        raise ValueError(f"Different numbers of outputs: {len(a)} vs {len(b)}")
    diff = 0.0
    for i, (x, y) in enumerate(zip(a, b)):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape:
            raise ValueError(f"Output {i}: shapes differ, {x.shape} vs {y.shape}")
        if x.size:
            diff = max(diff, float(np.abs(x.astype(np.float64) - y.astype(np.float64)).max()))
    return diff
