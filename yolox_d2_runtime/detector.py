"""End-to-end detection with an exported YOLOX graph: BGR images in, :class:`Detections` out."""

import os
from typing import List, Optional, Sequence, Union

import numpy as np

from .engines import open_engine
from .postprocess import BOX_FORMATS, Detections, decoded_to_detections, nms_rows_to_detections
from .preprocess import SizeLike, letterbox_images, to_hw

__all__ = ["YOLOXDetector"]


class YOLOXDetector:
    """
    Run a YOLOX graph exported by ``yolox_d2`` (``tools/export_model.py``, output mode
    ``decoded`` or ``nms``) with onnxruntime or OpenVINO, without PyTorch::

        detector = YOLOXDetector("yolox_s.onnx", input_size=640)
        detections = detector(cv2.imread("photo.jpg"))       # Detections
        detections.boxes, detections.scores, detections.classes

    The detections are those of ``yolox_d2``'s PyTorch inference (``YOLOXPredictor``) for the
    same weights and settings, up to float rounding: same letterbox, same score / NMS rule
    (:mod:`yolox_d2_runtime.postprocess`), boxes mapped back to the image and clipped to it.
    """

    def __init__(
        self,
        model: Union[str, os.PathLike, object],
        *,
        input_size: Optional[SizeLike] = None,
        score_thresh: float = 0.01,
        nms_thresh: float = 0.65,
        max_detections: int = 100,
        class_agnostic: bool = False,
        box_format: str = "xyxy",
        num_threads: Optional[int] = None,
    ):
        """
        Args:
            model: an ``.onnx`` / OpenVINO ``.xml`` file, or an engine (a callable mapping a
                float32 (N, 3, H, W) batch to the graph's outputs, with ``output_names`` and,
                when ``input_size`` is not given, ``input_shape``, such as
                :class:`~yolox_d2_runtime.OnnxRuntimeEngine`).
            input_size: the letterbox size ``(h, w)`` or int the model was exported for (its
                ``test_square_size`` / test image size). Needed when the graph's height and
                width are dynamic; else read from the graph.
            score_thresh, nms_thresh, max_detections, class_agnostic: the post-processing of
                a ``decoded`` graph (YOLOX's ``test_score_thresh``, ``test_nms_thresh``,
                ``max_detections_per_image``, ``test_class_agnostic_nms``). An ``nms`` graph
                has its own, fixed at export; its detections are only further filtered at
                ``score_thresh`` and capped at ``max_detections``.
            box_format: the box format a ``decoded`` graph was exported with.
            num_threads: engine threads when ``model`` is a path (None: the engine's default).
        """
        if box_format not in BOX_FORMATS:
            raise ValueError(f"box_format must be one of {list(BOX_FORMATS)}, got {box_format!r}")
        size = to_hw(input_size) if input_size is not None else None
        self.engine = open_engine(model, num_threads, size) if isinstance(model, (str, os.PathLike)) else model
        if list(self.engine.output_names) == ["detections"]:
            self.output = "nms"
        elif list(self.engine.output_names) == ["predictions"]:
            self.output = "decoded"
        else:
            raise ValueError(
                f"{model}: outputs {list(self.engine.output_names)} are not those of a YOLOX graph "
                "exported with output 'decoded' ('predictions') or 'nms' ('detections')"
            )
        if size is None:
            size = tuple(self.engine.input_shape[2:4])
            if None in size:
                raise ValueError(f"{model}: the graph's input size is dynamic: pass input_size")
        self.input_size = size
        self.score_thresh = float(score_thresh)
        self.nms_thresh = float(nms_thresh)
        self.max_detections = int(max_detections)
        self.class_agnostic = bool(class_agnostic)
        self.box_format = box_format

    def detect(self, images_bgr: Sequence[np.ndarray]) -> List[Detections]:
        """
        Args:
            images_bgr: (H, W, 3) uint8 BGR images, any sizes (run as one batch).

        Returns:
            One :class:`Detections` per image, in its pixels.
        """
        batch, letterboxes = letterbox_images(images_bgr, self.input_size)
        outputs = self.engine(batch)
        if self.output == "nms":
            return nms_rows_to_detections(
                outputs[0], letterboxes, score_thresh=self.score_thresh, max_detections=self.max_detections
            )
        probabilities = outputs[0][..., 4:]
        if probabilities.size and (probabilities.min() < 0 or probabilities.max() > 1):
            raise ValueError(
                "The graph's objectness / class outputs are not probabilities: it looks like a "
                "'raw' export; export with output 'decoded' or 'nms'"
            )
        return decoded_to_detections(
            outputs[0],
            letterboxes,
            score_thresh=self.score_thresh,
            nms_thresh=self.nms_thresh,
            max_detections=self.max_detections,
            class_agnostic=self.class_agnostic,
            box_format=self.box_format,
        )

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        """Detections of one (H, W, 3) uint8 BGR image."""
        return self.detect([image_bgr])[0]
