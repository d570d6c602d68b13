"""
INT8 post-training quantization (yolox_d2.export.quantize): calibration images from a registered
dataset through the inference letterbox, onnxruntime QDQ quantization of the network part only
(the decoding stays float32), decoded and NMS graphs, and the INT8 / fp32 agreement report.

The random-weight models here amplify any perturbation (tests/random_weights.py), 8-bit noise
included, so the INT8 detections are not compared to fp32 ones for accuracy: that needs a
trained model (bench/bench_deploy.py --checkpoint).
"""

import numpy as np
import pytest
import torch

from detectron2.data import DatasetCatalog

from yolox_d2.export import YOLOXExportWrapper, export_onnx, letterbox_batch, onnxruntime_session, run_onnx
from yolox_d2.export.quantize import (
    Int8Agreement,
    LetterboxCalibrationReader,
    calibration_images_from_dataset,
    int8_agreement,
    network_node_names,
    onnx_detections,
    quantize_onnx_int8,
    quantize_onnx_int8_from_dataset,
)

from .conftest import photo_paths
from .official_reference import read_bgr
from .random_weights import random_yolox

onnx = pytest.importorskip("onnx", reason="quantization needs `pip install onnx onnxruntime` (the dev extras)")
pytest.importorskip("onnxruntime.quantization", reason="quantization needs onnxruntime (the dev extras)")

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:Exporting aten:UserWarning"),
]

SIZE = 320
DATASET = "yolox_d2_test_quantize_photos"


@pytest.fixture(scope="module", autouse=True)
def photo_dataset():
    """The scikit-image photos as a registered Detectron2 dataset."""
    paths = photo_paths(("astronaut.png", "coffee.png", "rocket.jpg", "chelsea.png"))

    def dicts():
        out = []
        for i, path in enumerate(paths):
            h, w = read_bgr(path).shape[:2]
            out.append({"file_name": path, "image_id": i, "height": h, "width": w})
        return out

    DatasetCatalog.register(DATASET, dicts)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield paths
    torch.set_num_threads(previous)
    DatasetCatalog.remove(DATASET)


@pytest.fixture(scope="module")
def exports(repo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("quantize")
    model = random_yolox(repo_root, "yolox_nano.py", seed=0, flavour="calibrated").fuse()
    decoded = export_onnx(YOLOXExportWrapper(model, "decoded"), out / "nano.onnx", sample_size=SIZE)
    nms = export_onnx(
        YOLOXExportWrapper(model, "nms", score_thresh=0.3, nms_thresh=0.65, max_detections=50),
        out / "nano_nms.onnx",
        sample_size=SIZE,
    )
    return out, decoded, nms


@pytest.fixture(scope="module")
def int8_result(exports):
    out, decoded, _ = exports
    return quantize_onnx_int8_from_dataset(decoded, out / "int8" / "nano_int8.onnx", DATASET, 2, SIZE, num_threads=1)


def test_calibration_images_are_a_deterministic_choice_through_the_inference_letterbox(photo_dataset):
    chosen = calibration_images_from_dataset(DATASET, 2, SIZE, seed=0)
    assert chosen.shape == (2, 3, SIZE, SIZE) and chosen.dtype == np.float32
    np.testing.assert_array_equal(chosen, calibration_images_from_dataset(DATASET, 2, SIZE, seed=0))
    singles = [letterbox_batch([read_bgr(p)], SIZE)[0][0] for p in photo_dataset]
    picked = [i for c in chosen for i, s in enumerate(singles) if np.array_equal(c, s)]
    assert len(picked) == 2 and picked == sorted(set(picked)), "two distinct images, in dataset order"
    everything = calibration_images_from_dataset(DATASET, 10, (288, 352))
    np.testing.assert_array_equal(everything, letterbox_batch([read_bgr(p) for p in photo_dataset], (288, 352))[0])
    with pytest.raises(KeyError):
        calibration_images_from_dataset("no_such_dataset_registered", 2, SIZE)
    with pytest.raises(ValueError, match="num_images"):
        calibration_images_from_dataset(DATASET, 0, SIZE)


def test_calibration_reader_feeds_one_image_at_a_time():
    images = np.arange(2 * 3 * 32 * 32, dtype=np.float32).reshape(2, 3, 32, 32)
    reader = LetterboxCalibrationReader(images, "images")
    feeds = [reader.get_next(), reader.get_next(), reader.get_next()]
    assert feeds[2] is None and len(reader) == 2
    for feed, image in zip(feeds, images):
        assert list(feed) == ["images"]
        np.testing.assert_array_equal(feed["images"], image[None])
    reader.rewind()
    np.testing.assert_array_equal(reader.get_next()["images"], images[:1])
    with pytest.raises(ValueError, match="N, 3, H, W"):
        LetterboxCalibrationReader(np.zeros((3, 32, 32), np.float32))


def test_a_missing_graph_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        quantize_onnx_int8(tmp_path / "missing.onnx", tmp_path / "out.onnx", np.zeros((1, 3, 32, 32), np.float32))


def test_only_the_network_is_quantized(exports, int8_result):
    _, decoded, _ = exports
    fp32_model = onnx.load(decoded)
    int8_model = onnx.load(int8_result.int8_path)
    ops = [n.op_type for n in int8_model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    # every convolution weight is an int8 per-channel tensor
    int8_weights = {
        i.name: i for i in int8_model.graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 4
    }
    assert len(int8_weights) == sum(op == "Conv" for op in ops) > 50
    # the decoding after the head (Exp of the box sizes, Sigmoid of the last logits) takes float
    # inputs: no DequantizeLinear feeds the Exp nodes, none follows the graph output
    producer = {o: n for n in int8_model.graph.node for o in n.output}
    exps = [n for n in int8_model.graph.node if n.op_type == "Exp"]
    assert exps and all(producer[n.input[0]].op_type != "DequantizeLinear" for n in exps)
    assert producer[int8_model.graph.output[0].name].op_type != "DequantizeLinear"
    names = network_node_names(fp32_model, ("Conv", "Sigmoid", "Mul"))
    fp32_producer = {o: n for n in fp32_model.graph.node for o in n.output}
    assert all(fp32_producer[e.input[0]].name not in names for e in fp32_model.graph.node if e.op_type == "Exp")
    assert {n.name for n in fp32_model.graph.node if n.op_type == "Conv"} <= set(names)


def test_int8_graph_runs_with_the_fp32_outputs(exports, int8_result, photo_dataset):
    _, decoded, _ = exports
    batch, _ = letterbox_batch([read_bgr(p) for p in photo_dataset[:2]], SIZE)
    fp32 = run_onnx(onnxruntime_session(decoded, num_threads=1), batch)[0]
    int8 = run_onnx(onnxruntime_session(int8_result.int8_path, num_threads=1), batch)[0]
    assert int8.shape == fp32.shape and int8.dtype == np.float32
    probabilities = int8[..., 4:]
    assert probabilities.min() >= 0 and probabilities.max() <= 1
    # The boxes stay in the same place (the random model amplifies 8-bit noise: loose bound;
    # a wrong calibration input range or a quantized decoding moves them by tens of pixels).
    assert float(np.median(np.abs(int8[..., :4] - fp32[..., :4]))) < 3.0


def test_quantize_from_dataset_reports_agreement(int8_result):
    assert int8_result.calibration_images == 2
    agreement = int8_result.agreement
    assert isinstance(agreement, Int8Agreement)
    assert agreement.fp32_detections > 0 and agreement.int8_detections > 0
    assert 0.0 <= agreement.fraction_matched <= 1.0
    assert "fp32 detections matched" in str(int8_result)
    assert set(agreement.as_dict()) >= {"matched", "fraction_matched", "mean_score_difference", "max_score_difference"}


def test_nms_graph_quantizes(exports, photo_dataset):
    out, _, nms = exports
    images = calibration_images_from_dataset(DATASET, 1, SIZE)
    path = quantize_onnx_int8(nms, out / "nano_nms_int8.onnx", images, op_types=("Conv",))
    assert "NonMaxSuppression" in [n.op_type for n in onnx.load(path).graph.node]
    rows = onnx_detections(onnxruntime_session(path, num_threads=1), images, score_thresh=0.3)
    assert rows.ndim == 2 and rows.shape[1] == 7 and len(rows) > 0
    assert (rows[:, 5] >= 0.3).all() and (np.diff(rows[:, 5]) <= 0).all()


def test_int8_agreement_matches_by_iou_and_class():
    fp32 = np.array(
        [
            [0, 10, 10, 50, 50, 0.9, 1],
            [0, 100, 100, 140, 140, 0.8, 2],
            [0, 200, 200, 240, 240, 0.7, 3],
            [1, 10, 10, 50, 50, 0.6, 1],
        ],
        dtype=np.float32,
    )
    int8 = np.array(
        [
            [0, 12, 10, 52, 50, 0.85, 1],  # IoU 0.9, score -0.05: a match
            [0, 100, 100, 140, 140, 0.8, 3],  # same box, other class: no match
            [0, 225, 225, 265, 265, 0.7, 3],  # IoU < 0.5: no match
            [1, 10, 10, 50, 50, 0.62, 1],  # image 1: a match
            [2, 10, 10, 50, 50, 0.9, 1],  # an image without fp32 detections
        ],
        dtype=np.float32,
    )
    a = int8_agreement(fp32, int8)
    assert (a.fp32_detections, a.int8_detections, a.matched) == (4, 5, 2)
    assert a.fraction_matched == pytest.approx(0.5)
    assert a.max_score_difference == pytest.approx(0.05, abs=1e-6)
    assert a.mean_score_difference == pytest.approx(0.035, abs=1e-6)
    assert a.mean_iou == pytest.approx((40 * 38 / (40 * 42) + 1) / 2, abs=1e-6)
    same = int8_agreement(fp32, fp32)
    assert (same.fraction_matched, same.max_score_difference, same.mean_iou) == (1.0, 0.0, 1.0)
    # one int8 detection matches at most one fp32 detection
    twice = int8_agreement(np.concatenate([fp32[:1], fp32[:1]]), int8[:1])
    assert twice.matched == 1
    empty = int8_agreement(np.zeros((0, 7)), int8)
    assert (empty.fraction_matched, empty.matched) == (1.0, 0)
