"""
yolox_d2_runtime: run YOLOX graphs exported by ``yolox_d2`` (ONNX, OpenVINO IR) with only
numpy, OpenCV and onnxruntime or OpenVINO: no PyTorch, no Detectron2 (importing ``yolox_d2``
imports both, so this is a separate package)::

    from yolox_d2_runtime import YOLOXDetector
    detector = YOLOXDetector("yolox_s.onnx", input_size=640, num_threads=2)
    detections = detector(cv2.imread("photo.jpg"))

Command line: ``python -m yolox_d2_runtime MODEL IMAGE [IMAGE ...] --input-size 640`` prints
the detections as JSON lines.
"""

from .detector import YOLOXDetector
from .engines import OnnxRuntimeEngine, OpenVINOEngine, open_engine
from .postprocess import Detections, decoded_to_detections, nms, nms_rows_to_detections
from .preprocess import PAD_VALUE, SIZE_DIVISIBILITY, Letterbox, letterbox_images

__all__ = [
    "Detections",
    "Letterbox",
    "OnnxRuntimeEngine",
    "OpenVINOEngine",
    "PAD_VALUE",
    "SIZE_DIVISIBILITY",
    "YOLOXDetector",
    "decoded_to_detections",
    "letterbox_images",
    "nms",
    "nms_rows_to_detections",
    "open_engine",
]
