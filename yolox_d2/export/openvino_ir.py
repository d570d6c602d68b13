"""
OpenVINO IR (``.xml`` + ``.bin``) from an exported YOLOX ONNX graph, and its check against the
PyTorch model::

    wrapper = YOLOXExportWrapper(model, "decoded")
    onnx_path = export_onnx(wrapper, "out/yolox_s.onnx", sample_size=640)
    result = export_openvino(onnx_path, "out/openvino", reference=wrapper, verify_shapes=[(1, 640)])
    result.xml_path, result.max_abs_difference

The IR keeps float32 weights (``compress_to_fp16=False``) and the ONNX graph's dynamic batch
and input size; the ONNX graph is the source (``openvino.convert_model``), so the IR has the
same inputs and outputs in every mode, NonMaxSuppression included. ``yolox_d2_runtime`` runs the
IR without PyTorch (``YOLOXDetector("out/openvino/yolox_s.xml", input_size=640)``).
"""

import logging
import os
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

from yolox_d2_runtime import OpenVINOEngine

from ..data.transforms import SizeLike, to_hw
from .verify import ExportVerificationError
from .wrapper import YOLOXExportWrapper

__all__ = ["OpenVINOExport", "export_openvino", "verify_openvino"]

logger = logging.getLogger(__name__)


@dataclass
class OpenVINOExport:
    """
    What :func:`export_openvino` wrote.

    Attributes:
        xml_path: the IR's ``.xml`` (the weights are in the ``.bin`` beside it).
        max_abs_difference: largest |OpenVINO - PyTorch| output difference of the check, or
            None when no reference model was given.
    """

    xml_path: str
    max_abs_difference: Optional[float] = None


def export_openvino(
    onnx_path: Union[str, os.PathLike],
    out_dir: Union[str, os.PathLike],
    *,
    reference: Optional[YOLOXExportWrapper] = None,
    verify_shapes: Sequence[Tuple[int, SizeLike]] = ((1, 640),),
    atol: float = 1e-3,
    rtol: float = 1e-3,
) -> OpenVINOExport:
    """
    Convert an exported ONNX graph to OpenVINO IR ``<out_dir>/<onnx file stem>.xml``, then,
    when ``reference`` is given, check it against that model (:func:`verify_openvino`).

    Args:
        onnx_path: the ``.onnx`` written by :func:`yolox_d2.export.export_onnx`.
        out_dir: folder of the IR (created).
        reference: the wrapper the graph was exported from, to check the IR against.
        verify_shapes: ``(batch, size)`` inputs of the check.
        atol, rtol: tolerances of the check.

    Raises:
        ImportError: OpenVINO is not installed (``pip install -e ".[deploy]"``).
        ExportVerificationError: the IR's outputs differ from ``reference``'s.
    """
    try:
        import openvino as ov
    except ImportError as e:
        raise ImportError('OpenVINO export needs openvino: pip install -e ".[deploy]"') from e
    onnx_path = os.fspath(onnx_path)
    if not os.path.isfile(onnx_path):
        raise FileNotFoundError(f"ONNX file {onnx_path!r} does not exist")
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(onnx_path))[0]
    xml_path = os.path.join(os.fspath(out_dir), stem + ".xml")
    ov.save_model(ov.convert_model(onnx_path), xml_path, compress_to_fp16=False)
    logger.info("Converted %s to OpenVINO IR %s", onnx_path, xml_path)
    result = OpenVINOExport(xml_path)
    if reference is not None:
        result.max_abs_difference = verify_openvino(reference, xml_path, shapes=verify_shapes, atol=atol, rtol=rtol)
    return result


def _check_close(name: str, output: str, got: np.ndarray, expected: np.ndarray, atol: float, rtol: float) -> float:
    if got.shape != expected.shape:
        raise ExportVerificationError(f"{name}: output {output} has shape {got.shape}, PyTorch gives {expected.shape}")
    if not np.allclose(got, expected, atol=atol, rtol=rtol):
        diff = np.abs(got.astype(np.float64) - expected)
        raise ExportVerificationError(
            f"{name}: output {output} differs from PyTorch by up to {float(diff.max()):.3g} "
            f"(atol {atol}, rtol {rtol})"
        )
    return float(np.abs(got.astype(np.float64) - expected).max()) if got.size else 0.0


@torch.no_grad()
def verify_openvino(
    wrapper: YOLOXExportWrapper,
    xml_path: Union[str, os.PathLike],
    *,
    shapes: Sequence[Tuple[int, SizeLike]] = ((1, 640),),
    atol: float = 1e-3,
    rtol: float = 1e-3,
) -> float:
    """
    Run the IR (OpenVINO CPU, float32) and ``wrapper`` on random 0-255 inputs of the given
    ``(batch, size)`` shapes and compare every output (``|got - expected| <= atol + rtol *
    |expected|``). For ``"nms"`` graphs, whose rows of near-tied scores may come in another
    order, the number of detections of each image and their sorted scores are compared.

    Returns:
        The largest absolute difference seen.

    Raises:
        ExportVerificationError: an output differs (the message names it and by how much).
    """
    engine = OpenVINOEngine(xml_path)
    generator = torch.Generator().manual_seed(1)
    device = next(wrapper.parameters()).device
    worst = 0.0
    for batch_size, size in shapes:
        h, w = to_hw(size)
        x = torch.rand((batch_size, 3, h, w), generator=generator) * 255
        expected = wrapper(x.to(device))
        expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
        expected = [e.double().cpu().numpy() for e in expected]
        got = engine(x.numpy())
        name = f"OpenVINO {os.fspath(xml_path)} on a {batch_size}x3x{h}x{w} input"
        if len(got) != len(expected):
            raise ExportVerificationError(f"{name}: {len(got)} outputs, PyTorch gives {len(expected)}")
        for output, g, e in zip(wrapper.output_names, got, expected):
            if wrapper.output == "nms":
                g, e = _scores_by_image(name, g, e), _scores_by_image(name, e, e)
            worst = max(worst, _check_close(name, output, g, e, atol, rtol))
        logger.info("Verified %s: max |difference| to PyTorch %.3g", name, worst)
    return worst


def _scores_by_image(name: str, rows: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """
    The scores of (K, 7) detection rows, sorted within each image of ``expected``: rows of
    (near-)tied scores may come in another order, so NMS outputs are compared by image counts
    and scores (as :func:`yolox_d2.export.verify_export` does).
    """
    parts = []
    for image in np.unique(expected[:, 0]):
        got, want = rows[rows[:, 0] == image], expected[expected[:, 0] == image]
        if len(got) != len(want):
            raise ExportVerificationError(f"{name}: image {int(image)} has {len(got)} detections, PyTorch gives {len(want)}")
        parts.append(np.sort(got[:, 5]))
    if sum(map(len, parts)) != len(rows):
        raise ExportVerificationError(f"{name}: {len(rows)} detections, PyTorch gives {len(expected)}")
    return np.concatenate(parts) if parts else rows[:, 5]
