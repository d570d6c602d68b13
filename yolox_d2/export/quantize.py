"""
INT8 post-training quantization of an exported YOLOX ONNX graph (``"decoded"`` or ``"nms"``
mode), calibrated on images of a registered Detectron2 dataset letterboxed exactly as at
inference (:func:`yolox_d2.export.letterbox_batch`)::

    calibration = calibration_images_from_dataset("deepforest_trees_train", 32, 416)
    quantize_onnx_int8("yolox_nano.onnx", "yolox_nano_int8.onnx", calibration)
    # or both, plus the fp32 / INT8 agreement on the calibration images, in one call:
    result = quantize_onnx_int8_from_dataset("yolox_nano.onnx", "yolox_nano_int8.onnx",
                                             "deepforest_trees_train", 32, 416)
    print(result.agreement)

The quantization is onnxruntime's static QDQ quantization (``quantize_static``): uint8
activations, int8 per-channel weights reduced to 7 bits (``reduce_range``: CPUs without VNNI,
such as the AVX2 development machine, multiply u8 x s8 pairs into saturating int16; 7-bit
weights cannot saturate), MinMax calibration. Only the network is quantized: the convolutions
and the operators between them (SiLU's Sigmoid and Mul, residual Add, Concat, the SPP MaxPool,
the PAFPN Resize), so that tensors flow between convolutions in int8; the box decoding,
sigmoids and NMS after the head's last convolutions stay float32 (:func:`network_node_names`),
so boxes keep sub-pixel steps and scores stay continuous.

OpenVINO + NNCF INT8 (:mod:`yolox_d2.export.openvino_int8`, ``--format openvino --int8``) is the
other INT8 path; which one is faster and which keeps more AP depends on the CPU (that module's
docstring gives the measurements). On a loaded 2-core AMD EPYC with AVX2 (no VNNI), 2 threads,
both calibrated on the same 8 tree tiles, onnxruntime INT8 was the faster: YOLOX-S at 640
655 ms vs 861 ms for OpenVINO INT8 (1424 ms onnxruntime fp32), and its calibration took about a
third of NNCF's (S at 640: ~50 s vs ~130 s). On an idle AVX-512 machine NNCF was faster and kept
more AP.
"""

import logging
import os
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from detectron2.structures import Boxes, pairwise_iou

from ..data.mappers import read_image_bgr
from ..data.transforms import SizeLike
from .onnx import onnxruntime_session, run_onnx
from .preprocess import letterbox_batch
from .wrapper import detections_from_predictions

__all__ = [
    "Int8Agreement",
    "Int8Result",
    "LetterboxCalibrationReader",
    "calibration_images_from_dataset",
    "int8_agreement",
    "network_node_names",
    "onnx_detections",
    "quantize_onnx_int8",
    "quantize_onnx_int8_from_dataset",
]

logger = logging.getLogger(__name__)

# YOLOX's inference defaults (YOLOX.test_score_thresh / test_nms_thresh / max_detections).
DEFAULT_SCORE_THRESH = 0.01
DEFAULT_NMS_THRESH = 0.65
DEFAULT_MAX_DETECTIONS = 100


def calibration_images_from_dataset(
    dataset_name: str, num_images: int, size: SizeLike, *, seed: int = 0
) -> np.ndarray:
    """
    ``num_images`` images of a registered Detectron2 dataset, letterboxed like the inference
    input (:func:`letterbox_batch`).

    The choice is deterministic: ``num_images`` distinct dicts drawn with
    ``numpy.random.default_rng(seed)`` from the dataset's list (all of them, in order, when the
    dataset has no more than ``num_images``), read in dataset order.

    Args:
        dataset_name: a name in ``DatasetCatalog`` (e.g. ``"deepforest_trees_train"``).
        num_images: how many images (>= 1).
        size: the letterbox canvas ``(h, w)`` or int: the exported model's input size.
        seed: seed of the choice.

    Returns:
        float32 ``(num_images, 3, H, W)`` batch in the graph's input format.

    Raises:
        KeyError: ``dataset_name`` is not registered (Detectron2's message lists the names).
        ImageReadError: an image cannot be read (the message names the file and image id).
    """
    from detectron2.data import DatasetCatalog

    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    dicts = DatasetCatalog.get(dataset_name)
    if len(dicts) == 0:
        raise ValueError(f"Dataset {dataset_name!r} has no images to calibrate on")
    if len(dicts) <= num_images:
        chosen = list(range(len(dicts)))
    else:
        chosen = sorted(np.random.default_rng(seed).choice(len(dicts), num_images, replace=False).tolist())
    if len(chosen) < num_images:
        logger.warning("Dataset %r has only %d images: calibrating on all of them", dataset_name, len(dicts))
    images = [read_image_bgr(dicts[i]) for i in chosen]
    return letterbox_batch(images, size)[0]


class LetterboxCalibrationReader:
    """
    onnxruntime's ``CalibrationDataReader`` protocol (``get_next`` / ``rewind``) over a
    letterboxed batch: one image per calibration run, in order.
    """

    def __init__(self, images: np.ndarray, input_name: str = "images"):
        """
        Args:
            images: float32 ``(N, 3, H, W)`` batch (e.g. :func:`calibration_images_from_dataset`).
            input_name: the graph's input name.
        """
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1] != 3 or len(images) == 0:
            raise ValueError(f"Calibration images must be a non-empty (N, 3, H, W) batch, got {images.shape}")
        self.images = images
        self.input_name = input_name
        self._next = 0

    def get_next(self) -> Optional[dict]:
        """The next ``{input_name: (1, 3, H, W)}`` feed, or None after the last image."""
        if self._next >= len(self.images):
            return None
        feed = {self.input_name: self.images[self._next : self._next + 1]}
        self._next += 1
        return feed

    def rewind(self) -> None:
        """Start again from the first image."""
        self._next = 0

    def __len__(self) -> int:
        return len(self.images)


def network_node_names(model, op_types: Sequence[str]) -> List[str]:
    """
    Names of the nodes of ``op_types`` in the network part of an ONNX graph: the convolutions
    and every node that feeds one. What comes after the head's last convolutions (box
    decoding, sigmoids, NMS) is left out.

    Args:
        model: an ``onnx.ModelProto``.
        op_types: operator types to keep (e.g. ``("Conv", "Mul")``).
    """
    producer = {out: node for node in model.graph.node for out in node.output}
    upstream, stack = set(), [node for node in model.graph.node if node.op_type == "Conv"]
    while stack:
        node = stack.pop()
        if id(node) in upstream:
            continue
        upstream.add(id(node))
        stack.extend(producer[name] for name in node.input if name in producer)
    names = [node.name for node in model.graph.node if id(node) in upstream and node.op_type in op_types]
    if any(not name for name in names):
        raise ValueError("The ONNX graph has unnamed nodes: export it with yolox_d2.export.export_onnx")
    return names


def quantize_onnx_int8(
    fp32_path: Union[str, os.PathLike],
    int8_path: Union[str, os.PathLike],
    calibration_images: np.ndarray,
    *,
    reduce_range: bool = True,
    per_channel: bool = True,
    op_types: Sequence[str] = ("Conv", "Sigmoid", "Mul", "Add", "Concat", "MaxPool", "Resize"),
) -> str:
    """
    Static INT8 quantization (onnxruntime ``quantize_static``, QDQ format) of an exported
    YOLOX graph, calibrated on ``calibration_images`` (MinMax ranges).

    Args:
        fp32_path: the float32 ``.onnx`` (from :func:`yolox_d2.export.export_onnx`).
        int8_path: the quantized ``.onnx`` to write (parent folders are created).
        calibration_images: float32 ``(N, 3, H, W)`` letterboxed batch
            (:func:`calibration_images_from_dataset`); each image is one calibration run.
        reduce_range: 7-bit weights (for CPUs without VNNI; see the module docstring).
        per_channel: one weight scale per output channel.
        op_types: the operator types to quantize, inside the network only (the head's
            decoding and NMS stay float32).

    Returns:
        ``int8_path`` as a string.

    Raises:
        FileNotFoundError: ``fp32_path`` does not exist.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32_path, int8_path = os.fspath(fp32_path), os.fspath(int8_path)
    if not os.path.isfile(fp32_path):
        raise FileNotFoundError(f"ONNX file {fp32_path!r} does not exist")
    os.makedirs(os.path.dirname(os.path.abspath(int8_path)), exist_ok=True)
    prepared = int8_path + ".prepared.onnx"
    quant_pre_process(fp32_path, prepared, skip_symbolic_shape=True)
    try:
        model = onnx.load(prepared)
        reader = LetterboxCalibrationReader(calibration_images, model.graph.input[0].name)
        quantize_static(
            model,
            int8_path,
            reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(op_types),
            nodes_to_quantize=network_node_names(model, op_types),
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    finally:
        os.remove(prepared)
    logger.info("Quantized %s to INT8 (%d calibration images): %s", fp32_path, len(reader), int8_path)
    return int8_path


def onnx_detections(
    session,
    images: np.ndarray,
    *,
    box_format: str = "xyxy",
    score_thresh: float = DEFAULT_SCORE_THRESH,
    nms_thresh: float = DEFAULT_NMS_THRESH,
    max_detections: int = DEFAULT_MAX_DETECTIONS,
) -> np.ndarray:
    """
    Detections of an exported graph on a letterboxed batch, as the ``"nms"`` mode's (K, 7)
    rows ``[batch_index, x1, y1, x2, y2, score, class]`` in network-input pixels.

    Args:
        session: an ``onnxruntime.InferenceSession`` of a ``"decoded"`` or ``"nms"`` graph
            (told apart by its output: ``predictions`` or ``detections``).
        images: float32 ``(N, 3, H, W)`` batch.
        box_format: box format of a ``"decoded"`` graph.
        score_thresh, nms_thresh, max_detections: post-processing of a ``"decoded"`` graph.
            An ``"nms"`` graph has its own, fixed at export: its rows are only filtered at
            ``score_thresh``.
    """
    outputs = run_onnx(session, images)
    names = [o.name for o in session.get_outputs()]
    return detections_from_graph_outputs(
        names, outputs, box_format=box_format, score_thresh=score_thresh, nms_thresh=nms_thresh, max_detections=max_detections
    )


def detections_from_graph_outputs(
    names: Sequence[str],
    outputs: Sequence[np.ndarray],
    *,
    box_format: str = "xyxy",
    score_thresh: float = DEFAULT_SCORE_THRESH,
    nms_thresh: float = DEFAULT_NMS_THRESH,
    max_detections: int = DEFAULT_MAX_DETECTIONS,
) -> np.ndarray:
    """
    The (K, 7) detection rows of an exported graph's outputs, whatever ran it: a ``"nms"``
    graph's ``detections`` filtered at ``score_thresh``, or a ``"decoded"`` graph's
    ``predictions`` through YOLOX's post-processing (arguments as :func:`onnx_detections`).
    """
    names = list(names)
    if names == ["detections"]:
        return outputs[0][outputs[0][:, 5] >= score_thresh]
    if names != ["predictions"] or outputs[0].ndim != 3:
        raise ValueError(f"Expected a 'decoded' or 'nms' YOLOX graph, got outputs {names}")
    return detections_from_predictions(
        torch.from_numpy(np.ascontiguousarray(outputs[0])),
        box_format=box_format,
        score_thresh=score_thresh,
        nms_thresh=nms_thresh,
        max_detections=max_detections,
    ).numpy()


@dataclass
class Int8Agreement:
    """
    How well INT8 detections reproduce the float32 ones (see :func:`int8_agreement`).

    Attributes:
        fp32_detections: float32 detections compared.
        int8_detections: INT8 detections compared.
        matched: float32 detections with an INT8 match (IoU >= ``iou_thresh``, same class).
        fraction_matched: ``matched / fp32_detections`` (1.0 when there are none).
        mean_score_difference, max_score_difference: ``|score_int8 - score_fp32|`` over the
            matches (0.0 without matches).
        mean_iou: IoU of the matched pairs, averaged (1.0 without matches).
        iou_thresh: the matching IoU.
    """

    fp32_detections: int
    int8_detections: int
    matched: int
    fraction_matched: float
    mean_score_difference: float
    max_score_difference: float
    mean_iou: float
    iou_thresh: float

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"INT8 vs fp32: {self.matched}/{self.fp32_detections} fp32 detections matched "
            f"({100 * self.fraction_matched:.1f}%, IoU >= {self.iou_thresh:g}, same class; "
            f"{self.int8_detections} INT8 detections), mean IoU {self.mean_iou:.3f}, "
            f"score difference mean {self.mean_score_difference:.4f} / max {self.max_score_difference:.4f}"
        )


def int8_agreement(fp32_detections: np.ndarray, int8_detections: np.ndarray, iou_thresh: float = 0.5) -> Int8Agreement:
    """
    Match INT8 detections to float32 ones, one to one: per image, float32 detections in
    decreasing score order each take the unmatched INT8 detection of the same class with the
    highest IoU, if that IoU is >= ``iou_thresh``.

    Args:
        fp32_detections, int8_detections: (K, 7) rows ``[batch_index, x1, y1, x2, y2, score,
            class]`` (:func:`onnx_detections`) of the same images.
        iou_thresh: the IoU a match needs.
    """
    fp32 = np.asarray(fp32_detections, dtype=np.float64).reshape(-1, 7)
    int8 = np.asarray(int8_detections, dtype=np.float64).reshape(-1, 7)
    score_diffs, ious = [], []
    for b in np.unique(fp32[:, 0]):
        f, q = fp32[fp32[:, 0] == b], int8[int8[:, 0] == b]
        f = f[np.argsort(-f[:, 5], kind="stable")]
        iou = pairwise_iou(Boxes(torch.from_numpy(f[:, 1:5])), Boxes(torch.from_numpy(q[:, 1:5]))).numpy()
        iou[f[:, 6][:, None] != q[:, 6][None, :]] = -1.0
        free = np.ones(len(q), dtype=bool)
        for i in range(len(f)):
            candidates = np.where(free, iou[i], -1.0)
            j = int(np.argmax(candidates)) if len(q) else -1
            if j >= 0 and candidates[j] >= iou_thresh:
                free[j] = False
                score_diffs.append(abs(q[j, 5] - f[i, 5]))
                ious.append(candidates[j])
    matched = len(score_diffs)
    return Int8Agreement(
        fp32_detections=len(fp32),
        int8_detections=len(int8),
        matched=matched,
        fraction_matched=matched / len(fp32) if len(fp32) else 1.0,
        mean_score_difference=float(np.mean(score_diffs)) if matched else 0.0,
        max_score_difference=float(np.max(score_diffs)) if matched else 0.0,
        mean_iou=float(np.mean(ious)) if matched else 1.0,
        iou_thresh=float(iou_thresh),
    )


@dataclass
class Int8Result:
    """
    What :func:`quantize_onnx_int8_from_dataset` did.

    Attributes:
        int8_path: the quantized ``.onnx``.
        calibration_images: how many images calibrated it.
        agreement: INT8 vs float32 detections on those images.
    """

    int8_path: str
    calibration_images: int
    agreement: Int8Agreement

    def __str__(self) -> str:
        return f"{self.int8_path} ({self.calibration_images} calibration images): {self.agreement}"


def quantize_onnx_int8_from_dataset(
    fp32_path: Union[str, os.PathLike],
    int8_path: Union[str, os.PathLike],
    dataset_name: str,
    num_images: int,
    size: SizeLike,
    *,
    seed: int = 0,
    box_format: str = "xyxy",
    agreement_score_thresh: float = 0.3,
    num_threads: Optional[int] = None,
) -> Int8Result:
    """
    :func:`quantize_onnx_int8` calibrated on ``num_images`` images of ``dataset_name``
    (:func:`calibration_images_from_dataset`), then :func:`int8_agreement` of the two graphs'
    detections on those images (score >= ``agreement_score_thresh``, YOLOX's NMS settings).

    Args:
        fp32_path, int8_path: the float32 graph and the INT8 one to write.
        dataset_name: a registered Detectron2 dataset.
        num_images: calibration images.
        size: the graph's input (letterbox) size.
        seed: seed of the image choice.
        box_format: box format of a ``"decoded"`` graph.
        agreement_score_thresh: score threshold of the detections compared.
        num_threads: onnxruntime threads of the comparison (None: all cores).
    """
    images = calibration_images_from_dataset(dataset_name, num_images, size, seed=seed)
    int8_path = quantize_onnx_int8(fp32_path, int8_path, images)
    detections = [
        onnx_detections(
            onnxruntime_session(path, num_threads=num_threads),
            images,
            box_format=box_format,
            score_thresh=agreement_score_thresh,
        )
        for path in (fp32_path, int8_path)
    ]
    agreement = int8_agreement(*detections)
    logger.info("%s", agreement)
    return Int8Result(int8_path=int8_path, calibration_images=len(images), agreement=agreement)
