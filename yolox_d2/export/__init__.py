"""
Deployment of YOLOX models: ONNX (onnxruntime) and TorchScript exports with a dynamic batch
size and input size, with raw, decoded or NMS-ed outputs (:mod:`yolox_d2.export.wrapper`
documents the formats). :func:`export_model` does it all from a LazyConfig
(``tools/export_model.py`` is its command line); step by step::

    model = build_inference_model(cfg)                 # weights (EMA if any), eval, fused
    wrapper = YOLOXExportWrapper(model, output="nms")
    export_onnx(wrapper, "yolox_s.onnx", sample_size=640)
    batch, ratios = letterbox_batch([cv2.imread("photo.jpg")], 640)
    detections = run_onnx(onnxruntime_session("yolox_s.onnx"), batch)[0]
"""

from ..engine.predictor import build_inference_model
from .api import (
    EXPORT_FORMATS,
    FORMAT_BY_EXTENSION,
    check_export_options,
    export_model,
    resolve_format,
    resolve_size,
    verification_shapes,
)
from .nms import batched_detections
from .onnx import (
    DEFAULT_OPSET,
    export_onnx,
    max_abs_difference,
    onnx_dynamic_axes,
    onnxruntime_session,
    run_onnx,
)
from .openvino_int8 import openvino_detections, quantize_openvino_int8, quantize_openvino_int8_from_dataset
from .openvino_ir import OpenVINOExport, export_openvino, verify_openvino
from .preprocess import letterbox_batch
from .quantize import (
    Int8Agreement,
    Int8Result,
    calibration_images_from_dataset,
    int8_agreement,
    quantize_onnx_int8,
    quantize_onnx_int8_from_dataset,
)
from .torchscript import export_torchscript
from .verify import ExportVerificationError, verify_export
from .wrapper import (
    BOX_FORMATS,
    DETECTION_COLUMNS,
    OUTPUT_MODES,
    RAW_LAYOUTS,
    YOLOXExportWrapper,
    decode_raw_predictions,
    detections_from_predictions,
)

__all__ = [
    "BOX_FORMATS",
    "DEFAULT_OPSET",
    "DETECTION_COLUMNS",
    "EXPORT_FORMATS",
    "ExportVerificationError",
    "FORMAT_BY_EXTENSION",
    "Int8Agreement",
    "Int8Result",
    "OpenVINOExport",
    "OUTPUT_MODES",
    "RAW_LAYOUTS",
    "YOLOXExportWrapper",
    "batched_detections",
    "build_inference_model",
    "calibration_images_from_dataset",
    "check_export_options",
    "decode_raw_predictions",
    "detections_from_predictions",
    "export_model",
    "export_onnx",
    "export_openvino",
    "int8_agreement",
    "export_torchscript",
    "letterbox_batch",
    "max_abs_difference",
    "onnx_dynamic_axes",
    "onnxruntime_session",
    "quantize_onnx_int8",
    "quantize_onnx_int8_from_dataset",
    "quantize_openvino_int8",
    "quantize_openvino_int8_from_dataset",
    "openvino_detections",
    "resolve_format",
    "resolve_size",
    "run_onnx",
    "verification_shapes",
    "verify_export",
    "verify_openvino",
]
