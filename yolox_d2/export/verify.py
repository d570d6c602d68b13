"""Check an exported file against the PyTorch model it came from."""

import logging
import os
from typing import List, Sequence, Tuple, Union

import numpy as np
import torch

from ..data.transforms import SizeLike, to_hw
from .onnx import max_abs_difference, onnxruntime_session, run_onnx
from .wrapper import YOLOXExportWrapper

__all__ = ["ExportVerificationError", "verify_export"]

logger = logging.getLogger(__name__)


class ExportVerificationError(RuntimeError):
    """The exported graph does not reproduce the PyTorch outputs."""


def _as_list(outputs) -> List[np.ndarray]:
    if isinstance(outputs, torch.Tensor):
        outputs = [outputs]
    return [o.detach().cpu().numpy() if isinstance(o, torch.Tensor) else np.asarray(o) for o in outputs]


def _compare(
    name: str,
    wrapper: YOLOXExportWrapper,
    got: List[np.ndarray],
    expected: List[np.ndarray],
    atol: float,
    rtol: float,
) -> float:
    if len(got) != len(expected):
        raise ExportVerificationError(f"{name}: {len(got)} outputs, PyTorch gives {len(expected)}")
    if wrapper.output == "nms":
        # Rows of (near-)tied scores may come in another order: compare counts per image and
        # the sorted scores.
        g, e = got[0], expected[0]
        if g.shape != e.shape:
            raise ExportVerificationError(f"{name}: {g.shape[0]} detections, PyTorch gives {e.shape[0]}")
        for batch_index in np.unique(e[:, 0]):
            gs = np.sort(g[g[:, 0] == batch_index, 5])
            es = np.sort(e[e[:, 0] == batch_index, 5])
            if gs.shape != es.shape or not np.allclose(gs, es, atol=atol, rtol=rtol):
                raise ExportVerificationError(f"{name}: detection scores of image {int(batch_index)} differ")
        return max_abs_difference([np.sort(g[:, 5])], [np.sort(e[:, 5])])
    for i, (g, e) in enumerate(zip(got, expected)):
        if g.shape != e.shape:
            raise ExportVerificationError(f"{name}: output {i} has shape {g.shape}, PyTorch gives {e.shape}")
        if not np.allclose(g, e, atol=atol, rtol=rtol):
            raise ExportVerificationError(
                f"{name}: output {wrapper.output_names[i]} differs from PyTorch by up to "
                f"{float(np.abs(g - e).max()):.3g} (atol {atol}, rtol {rtol})"
            )
    return max_abs_difference(got, expected)


@torch.no_grad()
def verify_export(
    wrapper: YOLOXExportWrapper,
    path: Union[str, os.PathLike],
    fmt: str,
    *,
    shapes: Sequence[Tuple[int, SizeLike]] = ((1, 640),),
    atol: float = 1e-3,
    rtol: float = 1e-4,
) -> float:
    """
    Run the exported file (onnxruntime for ``fmt="onnx"``, ``torch.jit.load`` for
    ``"torchscript"``) and ``wrapper`` on random 0-255 inputs of the given ``(batch, size)``
    shapes and compare the outputs.

    Returns:
        The largest absolute difference seen.

    Raises:
        ExportVerificationError: an output differs (the message names it and by how much).
    """
    if fmt == "onnx":
        session = onnxruntime_session(path)

        def run(x: torch.Tensor) -> List[np.ndarray]:
            return run_onnx(session, x)

    elif fmt == "torchscript":
        module = torch.jit.load(os.fspath(path), map_location=next(wrapper.parameters()).device)

        def run(x: torch.Tensor) -> List[np.ndarray]:
            return _as_list(module(x))

    else:
        raise ValueError(f"Unknown export format {fmt!r}; expected 'onnx' or 'torchscript'")
    device = next(wrapper.parameters()).device
    generator = torch.Generator().manual_seed(1)
    worst = 0.0
    for batch_size, size in shapes:
        h, w = to_hw(size)
        x = (torch.rand((batch_size, 3, h, w), generator=generator) * 255).to(device)
        name = f"{fmt} {os.fspath(path)} on a {batch_size}x3x{h}x{w} input"
        diff = _compare(name, wrapper, run(x), _as_list(wrapper(x)), atol, rtol)
        logger.info("Verified %s: max |difference| to PyTorch %.3g", name, diff)
        worst = max(worst, diff)
    return worst
