"""
tools/demo.py (yolox_d2.engine.demo) and YOLOXPredictor: the demo run like a user (subprocess) on
a folder of real photos, a short video and an unreadable file; the predictor gives what the model
gives.
"""

import logging
import os
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from detectron2.config import LazyConfig, instantiate
from detectron2.data import DatasetCatalog, Metadata, MetadataCatalog
from detectron2.structures import BoxMode
from detectron2.utils.visualizer import Visualizer

from yolox_d2.data.mappers import YOLOXTestMapper
from yolox_d2.engine import ModelEMA, YOLOXPredictor
from yolox_d2.engine.demo import GROUND_TRUTH_COLOR, draw_ground_truth_beside, output_path, run_demo
from yolox_d2.engine.predictor import build_inference_model

from .conftest import photo_paths
from .random_weights import random_yolox

CONFIG = "yolox_nano.py"
# random Nano: keep the drawing quick with a few confident boxes
DEMO_OPTS = ["train.device=cpu", "model.test_score_thresh=0.3", "model.max_detections_per_image=30"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a busy 2-core machine more threads are much slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def checkpoints(repo_root, tmp_path_factory):
    """A plain checkpoint and one whose "ema" weights differ from its "model" weights."""
    out = tmp_path_factory.mktemp("checkpoints")
    plain = random_yolox(repo_root, CONFIG, seed=0, flavour="calibrated")
    torch.save({"model": plain.state_dict()}, out / "plain.pth")
    ema_model = random_yolox(repo_root, CONFIG, seed=1, flavour="calibrated")
    ema = ModelEMA(ema_model)
    ema.updates = 5
    torch.save({"model": plain.state_dict(), "ema": ema.state_dict()}, out / "with_ema.pth")
    return {"plain": out / "plain.pth", "ema": out / "with_ema.pth", "ema_state": ema_model.state_dict()}


def _write_video(path, frames):
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()


def _read_video(path):
    video = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = video.read()
        if not ok:
            break
        frames.append(frame)
    video.release()
    return frames


def test_demo_folder_video_and_unreadable_file(repo_root, tmp_path, checkpoints):
    inputs = tmp_path / "photos"
    inputs.mkdir()
    for src in photo_paths(("astronaut.png", "coffee.png")):
        shutil.copy(src, inputs)
    (inputs / "broken.jpg").write_bytes(b"")  # unreadable, sorted between the two photos
    photo = cv2.imread(photo_paths(("rocket.jpg",))[0])
    frames = [np.ascontiguousarray(np.roll(cv2.resize(photo, (320, 240)), 8 * i, axis=1)) for i in range(5)]
    video = tmp_path / "clip.mp4"
    _write_video(video, frames)
    out = tmp_path / "out"

    proc = subprocess.run(
        [
            sys.executable,
            str(repo_root / "tools" / "demo.py"),
            "--config-file",
            str(repo_root / "configs" / CONFIG),
            "--input",
            str(inputs),
            str(video),
            "--output",
            str(out),
            "--confidence-threshold",
            "0.3",
            "--opts",
            f"train.init_checkpoint={checkpoints['plain']}",
            *DEMO_OPTS,
        ],
        capture_output=True,
        text=True,
        cwd=repo_root,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log
    assert f"cannot read image '{inputs / 'broken.jpg'}'" in log
    assert "1 of 4 inputs failed" in log

    for name in ("astronaut", "coffee"):
        drawn_count = int(re.search(rf"{name}.png: (\d+) detections >= 0.30", log).group(1))
        assert drawn_count > 0, f"{name}: the random model should detect something"
        original = cv2.imread(str(inputs / f"{name}.png"))
        as_jpeg = cv2.imdecode(cv2.imencode(".jpg", original)[1], cv2.IMREAD_COLOR)
        drawn = cv2.imread(str(out / f"{name}.jpg"))
        assert drawn is not None and drawn.shape == original.shape, name
        assert np.abs(drawn.astype(int) - as_jpeg.astype(int)).mean() > 1.0, f"{name}: nothing drawn"
    assert not (out / "broken.jpg").exists()
    written = _read_video(out / "clip.mp4")
    assert len(written) == len(frames)
    assert all(f.shape == frames[0].shape for f in written)


def _demo(config_file, output, inputs, opts=(), **kwargs):
    """What tools/demo.py runs for ``--config-file ... --output ... --input ... --opts ...``."""
    cfg = LazyConfig.apply_overrides(LazyConfig.load(config_file), list(opts))
    return run_demo(cfg, output, inputs=inputs, **kwargs)


def test_demo_cli_errors(repo_root, tmp_path, checkpoints):
    """Quick cases in-process (the tool's run_demo), the argument check through the tool."""
    cfg = str(repo_root / "configs" / CONFIG)
    messages = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    logger, handler = logging.getLogger("yolox_d2"), Collect(logging.INFO)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        photo = photo_paths(("coffee.png",))[0]
        missing = tmp_path / "missing.png"
        opts = [f"train.init_checkpoint={checkpoints['plain']}", *DEMO_OPTS]
        assert _demo(cfg, str(tmp_path / "out"), [photo, str(missing)], opts) == 1
        assert any(f"no such file '{missing}'" in m for m in messages)
        assert cv2.imread(str(tmp_path / "out" / "coffee.jpg")) is not None

        assert _demo(cfg, str(tmp_path / "o2"), [str(tmp_path / "empty_dir_none")]) == 1
        (tmp_path / "empty").mkdir()
        assert _demo(cfg, str(tmp_path / "o3"), [str(tmp_path / "empty")]) == 2
        assert any("Nothing to do" in m for m in messages)
        nowhere = tmp_path / "nowhere.pth"
        opts = [f"train.init_checkpoint={nowhere}", "train.device=cpu"]
        assert _demo(cfg, str(tmp_path / "o4"), [photo], opts) == 2
        assert any(f"Checkpoint '{nowhere}' (train.init_checkpoint) does not exist" in m for m in messages)
        with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
            _demo(cfg, str(tmp_path), [photo], threshold=2)
        with pytest.raises(ValueError, match="not both"):
            _demo(cfg, str(tmp_path), [photo], dataset="coco_2017_val")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    proc = subprocess.run(
        [sys.executable, str(repo_root / "tools" / "demo.py"), "--config-file", cfg, "--output", str(tmp_path),
         "--input", photo, "--confidence-threshold", "2"],
        capture_output=True,
        text=True,
        cwd=repo_root,
    )
    assert proc.returncode == 2 and "--confidence-threshold must be in [0, 1]" in proc.stderr, proc.stderr


def test_demo_on_a_dataset_draws_ground_truth_beside_predictions(repo_root, tmp_path, checkpoints):
    photo = photo_paths(("coffee.png",))[0]
    height, width = cv2.imread(photo).shape[:2]
    name = "demo_side_by_side_test"
    box = [100.0, 80.0, 300.0, 260.0]
    record = {"file_name": photo, "image_id": 7, "height": height, "width": width,
              "annotations": [{"bbox": box, "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0}]}
    DatasetCatalog.register(name, lambda: [dict(record)])
    MetadataCatalog.get(name).set(thing_classes=[f"class{i}" for i in range(80)])  # the 80-class model
    try:
        cfg = LazyConfig.apply_overrides(
            LazyConfig.load(str(repo_root / "configs" / CONFIG)),
            [f"train.init_checkpoint={checkpoints['plain']}", *DEMO_OPTS],
        )
        assert run_demo(cfg, str(tmp_path), dataset=name) == 0
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    drawn = cv2.imread(str(tmp_path / "coffee.jpg"))
    # ground truth | 8 px gap | predictions, each under a 28 px caption band
    assert drawn.shape == (height + 28, 2 * width + 8, 3)
    original = cv2.imread(photo).astype(int)
    truth = drawn[28:, :width].astype(int)
    edge = np.abs(truth[80:260, 98:103] - original[80:260, 98:103]).mean()  # the box's left edge
    away = np.abs(truth[300:, 400:] - original[300:, 400:]).mean()  # far from the box
    assert edge > 15 and away < 6, (edge, away)  # 21.5 for the orange GROUND_TRUTH_COLOR
    assert (drawn[:28] > 200).mean() > 0.9  # the white caption band


def test_ground_truth_is_drawn_in_one_colour_whatever_the_random_state():
    image = np.full((120, 160, 3), 90, dtype=np.uint8)
    record = {"annotations": [{"bbox": [20, 30, 60, 50], "bbox_mode": BoxMode.XYWH_ABS, "category_id": c}
                              for c in (0, 1)]}
    metadata = MetadataCatalog.get("demo_one_colour_test").set(thing_classes=["tree", "bush"])
    try:
        drawings = []
        for seed in (0, 1):
            np.random.seed(seed)
            drawings.append(draw_ground_truth_beside(image, record, image, metadata, "predictions"))
    finally:
        MetadataCatalog.remove("demo_one_colour_test")
    np.testing.assert_array_equal(drawings[0], drawings[1])
    edge = drawings[0][28 + 40, 20].astype(int)  # the box's left edge (x=20), BGR
    assert np.abs(edge - 90).max() > 50, edge
    # the channels keep the order of GROUND_TRUTH_COLOR's (RGB) on the grey image
    assert list(np.argsort(edge[::-1])) == list(np.argsort(GROUND_TRUTH_COLOR)), edge


def test_ground_truth_labels_name_the_class_and_crowds_as_detectron2_does(monkeypatch):
    labels = []
    monkeypatch.setattr(Visualizer, "overlay_instances", lambda self, **kw: labels.extend(kw["labels"]))
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    record = {"annotations": [{"bbox": [1, 1, 9, 9], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 1, "iscrowd": crowd}
                              for crowd in (0, 1)]}
    metadata = Metadata(name="demo_labels_test", thing_classes=["tree", "bush"])
    draw_ground_truth_beside(image, record, image, metadata, "predictions")
    draw_ground_truth_beside(image, record, image, None, "predictions")  # no class names: the ids
    assert labels == ["bush", "bush|crowd", "1", "1|crowd"]


def test_output_names_do_not_collide():
    used = set()
    names = [output_path("out", p, ".jpg", used) for p in ("a/x.png", "b/x.jpg", "x.bmp")]
    assert names == ["out/x.jpg", "out/x_1.jpg", "out/x_2.jpg"]
    assert output_path("out", "x.mp4", ".mp4", used) == "out/x.mp4"


def test_predictor_gives_the_model_output_with_ema_weights(repo_root, checkpoints):
    cfg = LazyConfig.load(str(repo_root / "configs" / CONFIG))
    cfg = LazyConfig.apply_overrides(cfg, [f"train.init_checkpoint={checkpoints['ema']}", *DEMO_OPTS])
    predictor = YOLOXPredictor(cfg)
    assert predictor.device == "cpu" and predictor.image_size == (416, 416)
    assert predictor.metadata.thing_classes[0] == "person"  # coco_2017_val, the config's test set

    model = instantiate(cfg.model).eval()
    model.load_state_dict(checkpoints["ema_state"])  # the EMA weights, not the "model" ones
    model.fuse()
    for path in photo_paths():
        got = predictor(cv2.imread(path))["instances"]
        with torch.no_grad():
            expected = model([YOLOXTestMapper(image_size=416)({"file_name": path, "image_id": 0})])[0][
                "instances"
            ]
        assert len(expected) > 0
        assert got.image_size == expected.image_size
        assert torch.equal(got.pred_classes, expected.pred_classes)
        torch.testing.assert_close(got.scores, expected.scores, atol=0, rtol=0)
        torch.testing.assert_close(got.pred_boxes.tensor, expected.pred_boxes.tensor, atol=0, rtol=0)

    with pytest.raises(ValueError, match=r"expects an \(H, W, 3\) BGR numpy image"):
        predictor(np.zeros((10, 10), np.uint8))


def test_build_inference_model_without_ema_and_missing_checkpoint(repo_root, checkpoints, tmp_path):
    cfg = LazyConfig.load(str(repo_root / "configs" / CONFIG))
    cfg = LazyConfig.apply_overrides(
        cfg, [f"train.init_checkpoint={checkpoints['plain']}", "train.device=cpu"]
    )
    model = build_inference_model(cfg, fuse=False)
    assert not model.training
    expected = torch.load(checkpoints["plain"], weights_only=True)["model"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key
    cfg.train.init_checkpoint = str(tmp_path / "missing.pth")
    with pytest.raises(FileNotFoundError, match="missing.pth' \\(train.init_checkpoint\\) does not exist"):
        build_inference_model(cfg)
