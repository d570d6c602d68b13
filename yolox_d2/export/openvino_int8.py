"""
INT8 post-training quantization of an OpenVINO IR of YOLOX (``"decoded"`` or ``"nms"`` mode)
with NNCF (``nncf.quantize``, OpenVINO's own quantizer), calibrated on images of a registered
Detectron2 dataset through the inference letterbox, as the onnxruntime path
(:mod:`yolox_d2.export.quantize`) is::

    result = quantize_openvino_int8_from_dataset("out/yolox_s.xml", "out/yolox_s_int8.xml",
                                                 "deepforest_trees_train", 32, 640)
    print(result.agreement)

or ``tools/export_model.py ... --format openvino --int8 --calib-dataset NAME``.

Why both: which INT8 runtime wins depends on the CPU. ``bench/bench_deploy.py`` with the
``make demo`` tree model, batch 1, 2 threads, both calibrated on the same 8 tiles: on an idle
2-core AMD EPYC with AVX-512 (no VNNI), YOLOX-S at 640 ran in 30.4 ms with NNCF INT8 against
35.4 ms with onnxruntime INT8 (75.7 ms onnxruntime fp32), and the tree model lost 0.5 AP50 with
NNCF against 2.0 with onnxruntime (fp32 AP50 21.2); on a loaded AVX2 machine onnxruntime's INT8
was the faster one. NNCF's default preset (symmetric int8 weights per channel, activations
calibrated on the given images) keeps the ops it cannot run in int8 in float32, the box
decoding included.
"""

import logging
import os
from typing import Optional, Union

import numpy as np

from .quantize import (
    DEFAULT_MAX_DETECTIONS,
    DEFAULT_NMS_THRESH,
    DEFAULT_SCORE_THRESH,
    Int8Result,
    calibration_images_from_dataset,
    detections_from_graph_outputs,
    int8_agreement,
)

__all__ = ["quantize_openvino_int8", "openvino_detections", "quantize_openvino_int8_from_dataset"]

logger = logging.getLogger(__name__)


def _openvino():
    try:
        import openvino
    except ImportError as e:
        raise ImportError('OpenVINO INT8 needs openvino and nncf: pip install -e ".[deploy]"') from e
    return openvino


def quantize_openvino_int8(
    xml_path: Union[str, os.PathLike], int8_xml_path: Union[str, os.PathLike], calibration_images: np.ndarray
) -> str:
    """
    NNCF post-training INT8 quantization of an IR, calibrated on ``calibration_images``.

    Args:
        xml_path: the float32 IR (:func:`yolox_d2.export.openvino_ir.export_openvino`).
        int8_xml_path: the INT8 IR to write (``.xml``; its ``.bin`` beside it).
        calibration_images: float32 ``(N, 3, H, W)`` letterboxed batch
            (:func:`~yolox_d2.export.quantize.calibration_images_from_dataset`); each image
            is one calibration sample.

    Returns:
        ``int8_xml_path`` as a string.

    Raises:
        FileNotFoundError: ``xml_path`` does not exist.
        ImportError: openvino or nncf is not installed.
    """
    ov = _openvino()
    try:
        import nncf
    except ImportError as e:
        raise ImportError('OpenVINO INT8 needs nncf: pip install -e ".[deploy]"') from e
    xml_path, int8_xml_path = os.fspath(xml_path), os.fspath(int8_xml_path)
    if not os.path.isfile(xml_path):
        raise FileNotFoundError(f"OpenVINO IR {xml_path!r} does not exist")
    if len(calibration_images) < 1:
        raise ValueError("quantize_openvino_int8 needs at least one calibration image")
    os.makedirs(os.path.dirname(os.path.abspath(int8_xml_path)), exist_ok=True)
    dataset = nncf.Dataset([np.ascontiguousarray(image[None], dtype=np.float32) for image in calibration_images])
    quantized = nncf.quantize(ov.Core().read_model(xml_path), dataset, subset_size=len(calibration_images))
    ov.save_model(quantized, int8_xml_path, compress_to_fp16=False)
    logger.info("Quantized %s to INT8 with NNCF (%d calibration images): %s", xml_path, len(calibration_images), int8_xml_path)
    return int8_xml_path


def openvino_detections(
    xml_path: Union[str, os.PathLike],
    images: np.ndarray,
    *,
    box_format: str = "xyxy",
    score_thresh: float = DEFAULT_SCORE_THRESH,
    nms_thresh: float = DEFAULT_NMS_THRESH,
    max_detections: int = DEFAULT_MAX_DETECTIONS,
    num_threads: Optional[int] = None,
) -> np.ndarray:
    """
    Detections of an IR on a letterboxed batch, as the ``"nms"`` mode's (K, 7) rows
    ``[batch_index, x1, y1, x2, y2, score, class]`` in network-input pixels (the OpenVINO
    twin of :func:`~yolox_d2.export.quantize.onnx_detections`).

    Args:
        xml_path: an IR of a ``"decoded"`` or ``"nms"`` graph (told apart by its output name).
        images: float32 ``(N, 3, H, W)`` batch.
        box_format, score_thresh, nms_thresh, max_detections: post-processing of a
            ``"decoded"`` graph; an ``"nms"`` graph's rows are only filtered at ``score_thresh``.
        num_threads: OpenVINO inference threads (None: its default).
    """
    ov = _openvino()
    config = {} if num_threads is None else {"INFERENCE_NUM_THREADS": int(num_threads)}
    compiled = ov.Core().compile_model(os.fspath(xml_path), "CPU", config)
    names = [next(iter(o.get_names()), "") for o in compiled.outputs]
    outputs = list(compiled(np.ascontiguousarray(images, dtype=np.float32)).values())
    return detections_from_graph_outputs(
        names, outputs, box_format=box_format, score_thresh=score_thresh, nms_thresh=nms_thresh, max_detections=max_detections
    )


def quantize_openvino_int8_from_dataset(
    xml_path: Union[str, os.PathLike],
    int8_xml_path: Union[str, os.PathLike],
    dataset_name: str,
    num_images: int,
    size,
    *,
    seed: int = 0,
    box_format: str = "xyxy",
    agreement_score_thresh: float = 0.3,
    num_threads: Optional[int] = None,
) -> Int8Result:
    """
    :func:`quantize_openvino_int8` calibrated on ``num_images`` images of ``dataset_name``, then
    :func:`~yolox_d2.export.quantize.int8_agreement` of the two IRs' detections on those images
    (score >= ``agreement_score_thresh``, YOLOX's NMS settings). Arguments as
    :func:`~yolox_d2.export.quantize.quantize_onnx_int8_from_dataset`; the result's
    ``int8_path`` is the INT8 ``.xml``.
    """
    images = calibration_images_from_dataset(dataset_name, num_images, size, seed=seed)
    int8_xml_path = quantize_openvino_int8(xml_path, int8_xml_path, images)
    detections = [
        openvino_detections(path, images, box_format=box_format, score_thresh=agreement_score_thresh, num_threads=num_threads)
        for path in (xml_path, int8_xml_path)
    ]
    agreement = int8_agreement(*detections)
    logger.info("%s", agreement)
    return Int8Result(int8_path=int8_xml_path, calibration_images=len(images), agreement=agreement)
