"""
yolox_d2_runtime, the torch-free runtime: graphs exported here (Nano at 320, random weights
with measured BatchNorm statistics) run in a subprocess where importing torch, torchvision,
Detectron2 or yolox_d2 fails, on the scikit-image photos, and give the detections of the
PyTorch model's own inference (``model([{"image", "height", "width"}])``, what
``YOLOXPredictor`` runs): same letterbox pixels, score / NMS rule, back-mapping and clipping.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from yolox_d2.data.transforms import letterbox_resize
from yolox_d2.export import YOLOXExportWrapper, export_onnx, letterbox_batch
from yolox_d2_runtime import Letterbox, decoded_to_detections, letterbox_images, nms, nms_rows_to_detections

from .conftest import REPO_ROOT, photo_paths
from .official_reference import read_bgr
from .random_weights import random_yolox
from .test_export import assert_close_detections

pytest.importorskip("onnxruntime", reason="the runtime tests need onnxruntime (the dev extras)")

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:Exporting aten:UserWarning"),
]

SIZE = 320
SCORE_THRESH, NMS_THRESH, MAX_DETECTIONS = 0.3, 0.65, 10000

# Runs in the subprocess: torch & co cannot be imported there.
TORCH_FREE_RUN = textwrap.dedent(
    """
    import json, sys
    for name in ("torch", "torchvision", "detectron2", "yolox_d2"):
        sys.modules[name] = None  # "import torch" now raises ImportError
    import cv2
    import numpy as np
    from yolox_d2_runtime import YOLOXDetector

    models, photos, out = json.loads(sys.argv[1]), sys.argv[2].split(","), sys.argv[3]
    images = [cv2.imread(p, cv2.IMREAD_COLOR) for p in photos]
    arrays = {}
    for key, path in models.items():
        detector = YOLOXDetector(path, input_size=%(size)d, score_thresh=%(score)r,
                                 nms_thresh=%(nms)r, max_detections=%(max_det)d, num_threads=1)
        for i, d in enumerate(detector.detect(images)):
            arrays[f"{key}_{i}"] = np.concatenate(
                [np.full((len(d), 1), i), d.boxes, d.scores[:, None], d.classes[:, None]], axis=1)
        arrays[f"{key}_mode"] = np.array(detector.output)
    assert sys.modules["torch"] is None and sys.modules["yolox_d2"] is None
    np.savez(out, **arrays)
    """
    % {"size": SIZE, "score": SCORE_THRESH, "nms": NMS_THRESH, "max_det": MAX_DETECTIONS}
)


def run_torch_free(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter that finds yolox_d2_runtime but gets no torch."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def photos():
    return photo_paths()


@pytest.fixture(scope="module")
def model(repo_root):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield random_yolox(
        repo_root,
        "yolox_nano.py",
        seed=0,
        flavour="calibrated",
        test_square_size=SIZE,
        test_score_thresh=SCORE_THRESH,
        test_nms_thresh=NMS_THRESH,
        max_detections_per_image=MAX_DETECTIONS,
    ).fuse()
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def exported(model, photos, tmp_path_factory):
    """The runtime's detections (subprocess) for each exported graph."""
    out = tmp_path_factory.mktemp("torch_free")
    models = {
        "decoded": export_onnx(YOLOXExportWrapper(model, "decoded"), out / "decoded.onnx", sample_size=SIZE),
        "nms": export_onnx(YOLOXExportWrapper(model, "nms"), out / "nms.onnx", sample_size=SIZE),
    }
    try:
        import openvino as ov
    except ImportError:
        pass
    else:
        xml = str(out / "openvino" / "decoded.xml")
        ov.save_model(ov.convert_model(models["decoded"]), xml, compress_to_fp16=False)
        models["openvino"] = xml
    run_torch_free(TORCH_FREE_RUN, json.dumps(models), ",".join(photos), str(out / "detections.npz"))
    return dict(np.load(out / "detections.npz"))


@torch.no_grad()
def pytorch_detections(model, photo_files):
    """(K, 7) rows of the PyTorch model's inference on each photo, in the photo's pixels."""
    rows = []
    for i, path in enumerate(photo_files):
        image = read_bgr(path)
        resized, _ = letterbox_resize(image, SIZE)
        tensor = torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1)))
        r = model([{"image": tensor, "height": image.shape[0], "width": image.shape[1]}])[0]["instances"]
        rows.append(
            torch.cat(
                (torch.full((len(r), 1), float(i)), r.pred_boxes.tensor, r.scores[:, None], r.pred_classes[:, None].float()),
                dim=1,
            )
        )
    return torch.cat(rows)


@pytest.mark.parametrize("key", ["decoded", "nms", "openvino"])
def test_torch_free_detections_match_pytorch(model, exported, photos, key):
    if f"{key}_mode" not in exported:
        pytest.skip("openvino is not installed (the deploy extras)")
    assert str(exported[f"{key}_mode"]) == ("nms" if key == "nms" else "decoded")
    got = np.concatenate([exported[f"{key}_{i}"] for i in range(len(photos))])
    expected = pytorch_detections(model, photos)
    assert_close_detections(torch.from_numpy(got).float(), expected)
    # Boxes are clipped to each photo, and some needed it (random boxes reach past the border).
    clipped = 0
    for i, path in enumerate(photos):
        h, w = read_bgr(path).shape[:2]
        rows = got[got[:, 0] == i]
        assert (rows[:, 1:5] >= 0).all() and (rows[:, [1, 3]] <= w).all() and (rows[:, [2, 4]] <= h).all()
        assert (rows[:, 3] > rows[:, 1]).all() and (rows[:, 4] > rows[:, 2]).all()
        clipped += int(((rows[:, 1:3] == 0) | (rows[:, 3:4] == w) | (rows[:, 4:5] == h)).any(axis=1).sum())
    assert clipped > 0


def test_command_line_prints_the_detections(exported, tmp_path, photos, model):
    path = export_onnx(YOLOXExportWrapper(model, "nms"), tmp_path / "nms.onnx", sample_size=SIZE)
    script = textwrap.dedent(
        """
        import runpy, sys
        sys.modules["torch"] = None
        sys.argv = ["yolox_d2_runtime", *sys.argv[1:]]
        runpy.run_module("yolox_d2_runtime", run_name="__main__")
        """
    )
    out = run_torch_free(script, path, photos[0], "--input-size", str(SIZE), "--score-thresh", "0.5", "--threads", "1")
    line = json.loads(out.stdout.strip().splitlines()[0])
    assert line["file"] == photos[0]
    expected = exported["nms_0"][exported["nms_0"][:, 5] >= 0.5]
    assert len(line["detections"]) == len(expected) > 0
    np.testing.assert_allclose([d["box"] for d in line["detections"]], expected[:, 1:5], atol=1e-3)
    assert [d["class"] for d in line["detections"]] == expected[:, 6].astype(int).tolist()


@pytest.mark.parametrize("size", [320, (288, 416), (300, 200)])
def test_letterbox_gives_the_yolox_d2_pixels(photos, size):
    images = [read_bgr(p) for p in photos]
    got, letterboxes = letterbox_images(images, size)
    expected, ratios = letterbox_batch(images, size)
    np.testing.assert_array_equal(got, expected)
    assert [b.ratio for b in letterboxes] == ratios
    for image, box in zip(images, letterboxes):
        assert box.resized_hw == letterbox_resize(image, size)[0].shape[:2]
    with pytest.raises(ValueError, match="Image 0"):
        letterbox_images([images[0][..., 0]], size)


def test_boxes_are_mapped_back_and_clipped():
    box = Letterbox((100, 200), 320)  # ratio 1.6, resized to 160 x 320
    assert box.resized_hw == (160, 320)
    mapped = box.to_image(np.array([[-10, 100, 400, 170], [32, 16, 64, 48]], np.float32))
    np.testing.assert_allclose(mapped, [[0, 62.5, 200, 100], [20, 10, 40, 30]])
    # a decoded graph's output: one box partly outside, one in the padding (empty once clipped)
    predictions = np.zeros((1, 3, 7), np.float32)
    predictions[0, 0] = [-10, 100, 400, 170, 0.9, 0.1, 0.8]
    predictions[0, 1] = [100, 200, 150, 250, 0.9, 0.9, 0.1]  # below the image: dropped
    predictions[0, 2] = [32, 16, 64, 48, 0.5, 0.1, 0.1]  # score 0.05 < 0.3
    (d,) = decoded_to_detections(predictions, [box], score_thresh=0.3, nms_thresh=0.65, max_detections=100)
    np.testing.assert_allclose(d.boxes, [[0, 62.5, 200, 100]])
    np.testing.assert_allclose(d.scores, [0.72])
    assert d.classes.tolist() == [1]
    rows = np.array([[0, -10, 100, 400, 170, 0.9, 1], [0, 0, 0, 32, 32, 0.6, 0], [0, 0, 0, 9, 9, 0.4, 0], [1, 0, 0, 9, 9, 0.5, 0]])
    (n,) = nms_rows_to_detections(rows, [box])
    np.testing.assert_allclose(n.boxes, [[0, 62.5, 200, 100], [0, 0, 20, 20], [0, 0, 5.625, 5.625]])
    (n,) = nms_rows_to_detections(rows, [box], score_thresh=0.5)
    assert n.scores.tolist() == pytest.approx([0.9, 0.6])
    (n,) = nms_rows_to_detections(rows, [box], max_detections=1)
    assert n.scores.tolist() == pytest.approx([0.9])


def test_cxcywh_boxes_and_the_score_rule():
    box = Letterbox((320, 320), 320)
    xyxy = np.array([[[10, 10, 50, 30, 0.5, 0.2, 0.9], [12, 10, 52, 30, 0.9, 0.8, 0.1]]], np.float32)
    cxcywh = xyxy.copy()
    cxcywh[..., :4] = np.concatenate([(xyxy[..., :2] + xyxy[..., 2:4]) / 2, xyxy[..., 2:4] - xyxy[..., :2]], -1)
    kwargs = dict(score_thresh=0.01, nms_thresh=0.65, max_detections=100)
    for predictions, fmt in ((xyxy, "xyxy"), (cxcywh, "cxcywh")):
        (d,) = decoded_to_detections(predictions, [box], box_format=fmt, **kwargs)
        # different classes: no suppression; best score (0.9 x 0.8) first
        np.testing.assert_allclose(d.scores, [0.72, 0.45])
        np.testing.assert_allclose(d.boxes, xyxy[0, ::-1, :4], atol=1e-5)
        assert d.classes.tolist() == [0, 1]
    (agnostic,) = decoded_to_detections(xyxy, [box], class_agnostic=True, **kwargs)
    assert agnostic.classes.tolist() == [0]
    (capped,) = decoded_to_detections(xyxy, [box], score_thresh=0.01, nms_thresh=0.65, max_detections=1)
    assert len(capped) == 1
    with pytest.raises(ValueError, match="box_format"):
        decoded_to_detections(xyxy, [box], box_format="xywh", **kwargs)


def test_nms_is_torchvision_nms_per_class():
    from torchvision.ops import batched_nms

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (300, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (300, 2)).astype(np.float32)], 1)
    scores = rng.uniform(0, 1, 300).astype(np.float32)
    groups = rng.integers(0, 3, 300)
    expected = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(groups), 0.5)
    assert nms(boxes, scores, groups, 0.5).tolist() == expected.tolist()


class FakeEngine:
    """An engine whose graph returns fixed outputs."""

    def __init__(self, output_names, outputs, input_shape=(None, 3, None, None)):
        self.output_names, self.outputs, self.input_shape = output_names, outputs, input_shape
        self.batches = []

    def __call__(self, batch):
        self.batches.append(batch)
        return self.outputs


def test_detector_reads_the_graph_and_rejects_what_it_cannot_run(tmp_path):
    from yolox_d2_runtime import YOLOXDetector, open_engine

    image = np.full((128, 192, 3), 7, np.uint8)  # half the size of the 64 x 96 canvas
    decoded = np.zeros((1, 2, 7), np.float32)
    decoded[0, 0] = [10, 10, 50, 50, 0.9, 0.9, 0.1]
    fixed = FakeEngine(["predictions"], [decoded], input_shape=(1, 3, 64, 96))
    detector = YOLOXDetector(fixed)
    assert detector.input_size == (64, 96) and detector.output == "decoded"
    d = detector(image)
    assert fixed.batches[0].shape == (1, 3, 64, 96)
    np.testing.assert_allclose(d.boxes, [[20, 20, 100, 100]])
    assert d.to_list() == [{"box": [20.0, 20.0, 100.0, 100.0], "score": pytest.approx(0.81), "class": 0}]
    with pytest.raises(ValueError, match="dynamic: pass input_size"):
        YOLOXDetector(FakeEngine(["predictions"], [decoded]))
    with pytest.raises(ValueError, match="not those of a YOLOX graph"):
        YOLOXDetector(FakeEngine(["raw_p3", "raw_p4", "raw_p5"], []), input_size=64)
    raw = decoded.copy()
    raw[0, 1, 4:] = [-3.0, 2.0, 0.5]  # logits, not probabilities
    with pytest.raises(ValueError, match="'raw' export"):
        YOLOXDetector(FakeEngine(["predictions"], [raw]), input_size=64)(image)
    with pytest.raises(ValueError, match="box_format"):
        YOLOXDetector(fixed, box_format="xywh")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_engine(tmp_path / "missing.onnx")
