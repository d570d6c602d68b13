"""
One call from a LazyConfig to an exported file (what ``tools/export_model.py`` runs)::

    cfg = LazyConfig.load("configs/yolox_s.py")
    cfg.train.init_checkpoint = "yolox_s_d2.pth"
    export_model(cfg, "yolox_s.onnx", mode="nms", verify=True)
    export_model(cfg, "yolox_s.onnx", int8=True, calib_dataset="coco_2017_val", calib_images=100)
    export_model(cfg, "yolox_s_openvino", format="openvino", verify=True)   # a folder
"""

import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ..engine.predictor import build_inference_model, inference_image_size
from .onnx import DEFAULT_OPSET, export_onnx
from .openvino_ir import export_openvino
from .openvino_int8 import quantize_openvino_int8_from_dataset
from .quantize import quantize_onnx_int8_from_dataset
from .torchscript import export_torchscript
from .verify import verify_export
from .wrapper import YOLOXExportWrapper

__all__ = [
    "EXPORT_FORMATS",
    "FORMAT_BY_EXTENSION",
    "check_export_options",
    "export_model",
    "resolve_format",
    "resolve_size",
    "verification_shapes",
]

logger = logging.getLogger(__name__)

EXPORT_FORMATS = ("onnx", "torchscript", "openvino")
#: Export format of an output file, by its extension.
FORMAT_BY_EXTENSION: Dict[str, str] = {
    ".onnx": "onnx",
    ".pt": "torchscript",
    ".ts": "torchscript",
    ".torchscript": "torchscript",
}


def resolve_format(output: Union[str, os.PathLike], format: Optional[str] = None) -> str:
    """The export format: ``format`` if given, else from the extension of ``output``."""
    if format:
        if format not in EXPORT_FORMATS:
            raise ValueError(f"format must be one of {list(EXPORT_FORMATS)}, got {format!r}")
        return format
    ext = os.path.splitext(os.fspath(output))[1].lower()
    if ext not in FORMAT_BY_EXTENSION:
        raise ValueError(
            f"Cannot tell the format from {os.fspath(output)!r}: use a {sorted(FORMAT_BY_EXTENSION)} "
            f"extension or give the format ({', '.join(EXPORT_FORMATS)})"
        )
    return FORMAT_BY_EXTENSION[ext]


def check_export_options(
    format: str, *, static: bool, batch_size: int, opset: int, int8: bool = False, calib_dataset: Optional[str] = None
) -> None:
    """Raise a ValueError naming the option when the combination cannot be exported."""
    if static and format == "torchscript":
        raise ValueError(
            "static applies to ONNX only (and to OpenVINO, made from the ONNX graph): a traced "
            "TorchScript module is always dynamic"
        )
    if int8 and format not in ("onnx", "openvino"):
        raise ValueError(f"int8 quantizes an ONNX graph (onnxruntime) or an OpenVINO IR (NNCF), not {format}")
    if int8 and not calib_dataset:
        raise ValueError("int8 needs calib_dataset: a registered dataset whose images calibrate the INT8 ranges")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if opset < 11:
        raise ValueError(f"opset must be >= 11 (dynamic NonMaxSuppression / Resize), got {opset}")


def resolve_size(size: Optional[Sequence[int]], cfg, divisibility: int) -> Tuple[int, int]:
    """``size`` (H or H W) as (h, w), default the config's test size rounded up to ``divisibility``."""
    if size:
        if len(size) > 2:
            raise ValueError(f"size takes H or H W, got {list(size)}")
        h, w = (size[0], size[0]) if len(size) == 1 else (size[0], size[1])
        if h <= 0 or w <= 0 or h % divisibility or w % divisibility:
            raise ValueError(f"size must be positive multiples of {divisibility}, got {h}x{w}")
        return h, w
    h, w = inference_image_size(cfg)
    return -(-h // divisibility) * divisibility, -(-w // divisibility) * divisibility


def verification_shapes(
    batch_size: int, size: Tuple[int, int], dynamic: bool
) -> List[Tuple[int, Tuple[int, int]]]:
    """The tracing shape and, for dynamic graphs, another batch size and input size."""
    shapes = [(batch_size, size)]
    if dynamic:
        shapes.append((batch_size + 1, (size[0] + 32, size[1] + 64)))
    return shapes


def export_model(
    cfg,
    output: Union[str, os.PathLike],
    *,
    format: Optional[str] = None,
    mode: str = "decoded",
    raw_layout: str = "concat",
    box_format: str = "xyxy",
    score_thresh: Optional[float] = None,
    nms_thresh: Optional[float] = None,
    max_detections: Optional[int] = None,
    class_agnostic: Optional[bool] = None,
    size: Optional[Sequence[int]] = None,
    batch_size: int = 1,
    static: bool = False,
    opset: int = DEFAULT_OPSET,
    fuse: bool = True,
    device: Optional[str] = "cpu",
    verify: bool = False,
    int8: bool = False,
    calib_dataset: Optional[str] = None,
    calib_images: int = 100,
) -> str:
    """
    Build the inference model of ``cfg`` (:func:`~yolox_d2.engine.build_inference_model`: the
    ``train.init_checkpoint`` weights, EMA ones when it has them), wrap it in a
    :class:`YOLOXExportWrapper` and export it to ONNX, TorchScript or OpenVINO IR (through the
    ONNX graph), optionally with an INT8 copy of the ONNX graph.

    Args:
        cfg: a yolox_d2 LazyConfig (``model``, optionally ``train.init_checkpoint``).
        output: the file to write.
        format: ``"onnx"``, ``"torchscript"`` or ``"openvino"`` (``output`` is then a folder:
            ``<name>.onnx``, ``<name>.xml`` and ``<name>.bin`` go there); None: from the
            extension of ``output`` (:data:`FORMAT_BY_EXTENSION`).
        mode, raw_layout, box_format, score_thresh, nms_thresh, max_detections,
            class_agnostic: the graph outputs (see :class:`YOLOXExportWrapper`).
        size: tracing input size, ``[H]`` or ``[H, W]``, multiples of 32; None: the config's
            test size rounded up to 32.
        batch_size: tracing batch size.
        static: ONNX only: fix the batch and input size to the tracing input's.
        opset: ONNX opset (>= 11).
        fuse: fold BatchNorm into the convolutions.
        device: where to trace (None: ``cfg.train.device``, see
            :func:`~yolox_d2.engine.predictor.resolve_device`).
        verify: run the exported file on inputs of two shapes (one when ``static``) and
            compare it with PyTorch.
        int8: also write ``<output stem>_int8.onnx``, quantized by onnxruntime
            (:func:`~yolox_d2.export.quantize.quantize_onnx_int8_from_dataset`), or with
            ``format="openvino"`` the IR ``<name>_int8.xml`` quantized by NNCF
            (:func:`~yolox_d2.export.openvino_int8.quantize_openvino_int8_from_dataset`), and
            log its agreement with the float32 model on the calibration images.
        calib_dataset: with ``int8``: the registered dataset of the calibration images.
        calib_images: with ``int8``: how many of its images.

    Returns:
        The written file (the IR's ``.xml`` for OpenVINO, the INT8 graph with ``int8``).

    Raises:
        ValueError: bad options (the message names the option), or a bad config.
        FileNotFoundError: ``train.init_checkpoint`` does not exist.
        ExportVerificationError: ``verify`` and the exported file differs from PyTorch.
    """
    fmt = resolve_format(output, format)
    check_export_options(fmt, static=static, batch_size=batch_size, opset=opset, int8=int8, calib_dataset=calib_dataset)
    model = build_inference_model(cfg, device, fuse=fuse)
    wrapper = YOLOXExportWrapper(
        model,
        mode,
        raw_layout=raw_layout,
        box_format=box_format,
        score_thresh=score_thresh,
        nms_thresh=nms_thresh,
        max_detections=max_detections,
        class_agnostic=class_agnostic,
    )
    hw = resolve_size(size, cfg, wrapper.size_divisibility)
    shapes = verification_shapes(batch_size, hw, not static)
    if fmt == "torchscript":
        path = export_torchscript(wrapper, output, sample_size=hw, batch_size=batch_size)
    else:
        onnx_path = output
        if fmt == "openvino":
            os.makedirs(output, exist_ok=True)
            onnx_path = os.path.join(output, os.path.basename(os.path.normpath(output)) + ".onnx")
        path = export_onnx(wrapper, onnx_path, sample_size=hw, batch_size=batch_size, opset=opset, dynamic=not static)
    if verify and fmt != "openvino":
        verify_export(wrapper, path, fmt, shapes=shapes)
    if fmt == "openvino":
        xml_path = export_openvino(path, output, reference=wrapper if verify else None, verify_shapes=shapes).xml_path
        if not int8:
            return xml_path
        result = quantize_openvino_int8_from_dataset(
            xml_path, os.path.splitext(xml_path)[0] + "_int8.xml", calib_dataset, calib_images, hw, box_format=box_format
        )
        logger.info("Wrote %s", result)
        return result.int8_path
    if int8:
        int8_path = os.path.splitext(path)[0] + "_int8.onnx"
        result = quantize_onnx_int8_from_dataset(path, int8_path, calib_dataset, calib_images, hw, box_format=box_format)
        logger.info("Wrote %s", result)
        return result.int8_path
    return path
