"""
Sliced inference (yolox_d2.engine.sliced_inference, YOLOXPredictor(slice_size=...), tools/demo.py
--slice): tiles cover the image, boxes come back exactly, objects cut by tile borders are
merged (no duplicates, none lost).
"""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from detectron2.config import LazyConfig
from detectron2.structures import Boxes, Instances, pairwise_iou

from yolox_d2.engine import SlicedDetector, YOLOXPredictor
from yolox_d2.engine import sliced_inference
from yolox_d2.engine.sliced_inference import covered_pieces, merge_tile_detections, tile_windows, truncated_boxes

from .conftest import photo_paths
from .exact_box_detector import BrightBlobDetector, draw_squares, sorted_rows
from .random_weights import random_yolox

# 600 x 500 image, 256 px tiles, overlap 0.25 (stride 192): tiles at x 0 / 192 / 344, y 0 / 192 / 244
HEIGHT, WIDTH, TILE, OVERLAP = 500, 600, 256, 0.25
SQUARES = [
    [236, 20, 276, 60],  # across x=256, the right edge of the first column
    [180, 100, 220, 140],  # across x=192, the left edge of the second column
    [420, 230, 460, 270],  # across a tile corner (x=448, y=256 and x=344, y=244 nearby)
    [200, 300, 240, 340],  # whole in four tiles (inside both overlaps)
    [560, 460, 600, 500],  # at the image corner: image edges are not tile cuts
    [60, 380, 100, 420],  # inside one tile only
    [300, 236, 340, 276],  # across y=244 and y=256
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_tile_windows_cover_the_image_with_equal_tiles():
    windows = tile_windows((HEIGHT, WIDTH), TILE, OVERLAP)
    assert sorted(set(windows[:, 0].tolist())) == [0, 192, 344]
    assert sorted(set(windows[:, 1].tolist())) == [0, 192, 244]
    assert len(windows) == 9
    assert (windows[:, 2] - windows[:, 0] == TILE).all() and (windows[:, 3] - windows[:, 1] == TILE).all()
    covered = np.zeros((HEIGHT, WIDTH), dtype=bool)
    for x0, y0, x1, y1 in windows:
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    # a side shorter than the tile is covered whole; no overlap: tiles abut
    assert tile_windows((100, 1000), 400, 0.0).tolist() == [[0, 0, 400, 100], [400, 0, 800, 100], [600, 0, 1000, 100]]
    assert tile_windows((50, 60), 416, 0.2).tolist() == [[0, 0, 60, 50]]
    with pytest.raises(ValueError, match="overlap"):
        tile_windows((100, 100), 50, 1.0)
    with pytest.raises(ValueError, match="tile_size"):
        tile_windows((100, 100), 0, 0.2)


def test_truncated_boxes_only_at_inner_tile_edges():
    boxes = torch.tensor([[192.0, 10, 220, 40], [300, 10, 340, 40], [410, 0, 448, 30], [344, 200, 380, 256]])
    # the tile [192, 0, 448, 256] of a 600 x 500 image: top edge is the image's
    cut = truncated_boxes(boxes, [192, 0, 448, 256], (HEIGHT, WIDTH), margin=2.0)
    assert cut.tolist() == [True, False, True, True]


def test_sliced_detector_maps_boxes_back_and_merges_pieces_exactly():
    image = draw_squares(HEIGHT, WIDTH, SQUARES)
    model = BrightBlobDetector()
    detector = SlicedDetector(model, input_size=TILE, tile_size=TILE, overlap=OVERLAP, batch_size=4)
    instances = detector(image)["instances"]
    # no duplicates, none lost, every box exactly the object's
    expected = sorted_rows(torch.tensor(SQUARES, dtype=torch.float32))
    assert torch.equal(sorted_rows(instances.pred_boxes.tensor), expected)
    assert model.calls == [4, 4, 1]  # 9 tiles in batches of 4
    # without the merge rule the pieces of cut objects would survive a plain NMS
    pieces = model(
        [{"image": torch.from_numpy(np.ascontiguousarray(image[0:256, 0:256].transpose(2, 0, 1)))}]
    )[0]["instances"]
    assert [236.0, 20.0, 256.0, 60.0] in pieces.pred_boxes.tensor.tolist()


def test_sliced_detector_at_another_input_size_and_with_the_whole_image():
    image = draw_squares(HEIGHT, WIDTH, SQUARES)
    expected = sorted_rows(torch.tensor(SQUARES, dtype=torch.float32))
    # tiles letterboxed to half size (even coordinates: the 2x bilinear downscale is exact)
    half = SlicedDetector(BrightBlobDetector(), input_size=128, tile_size=TILE, overlap=OVERLAP)(image)["instances"]
    assert torch.allclose(sorted_rows(half.pred_boxes.tensor), expected, atol=1e-4)
    # plus the whole image at 256 px (blurred edges): still one box per object
    both = SlicedDetector(BrightBlobDetector(), input_size=TILE, tile_size=TILE, overlap=OVERLAP, whole_image=True)
    instances = both(image)["instances"]
    assert len(instances) == len(SQUARES)
    truth = Boxes(torch.tensor(SQUARES, dtype=torch.float32))
    assert (pairwise_iou(truth, instances.pred_boxes).max(dim=1).values > 0.85).all()


def test_merge_keeps_pieces_nothing_covers_and_respects_classes():
    size = (200, 400)
    windows = [[0, 0, 200, 200], [150, 0, 350, 200]]

    def inst(boxes, classes, score=0.9):
        return Instances(
            size,
            pred_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32)),
            scores=torch.full((len(boxes),), score),
            pred_classes=torch.tensor(classes, dtype=torch.int64),
        )

    left = inst([[170, 10, 200, 40], [180, 100, 200, 130], [185, 150, 200, 170]], [0, 0, 1])
    right = inst([[170, 10, 195, 40], [160, 140, 205, 175]], [0, 0], score=0.5)
    merged = merge_tile_detections([left, right], windows, size, nms_thresh=0.65)
    boxes = merged.pred_boxes.tensor.tolist()
    assert [170, 10, 200, 40] not in boxes  # a piece inside a whole box of the other tile
    assert [170, 10, 195, 40] in boxes
    assert [180, 100, 200, 130] in boxes  # a piece that nothing covers is kept
    assert [185, 150, 200, 170] in boxes  # class 1 piece inside a class 0 box: kept
    assert merged.scores.tolist() == sorted(merged.scores.tolist(), reverse=True)
    with pytest.raises(ValueError, match="tile windows"):
        merge_tile_detections([left], windows, size, nms_thresh=0.65)


@pytest.fixture(scope="module")
def nano_checkpoint(repo_root, tmp_path_factory):
    path = tmp_path_factory.mktemp("sliced") / "nano.pth"
    torch.save({"model": random_yolox(repo_root, "yolox_nano.py", seed=0, flavour="calibrated").state_dict()}, path)
    return path


def _nano_cfg(repo_root, checkpoint):
    cfg = LazyConfig.load(str(repo_root / "configs" / "yolox_nano.py"))
    return LazyConfig.apply_overrides(
        cfg, ["train.device=cpu", f"train.init_checkpoint={checkpoint}", "model.test_score_thresh=0.3"]
    )


def test_covered_pieces_in_blocks_match_one_comparison(monkeypatch):
    # Many random boxes from 6 passes, 2 classes: the blocked comparison (blocks of 7 rows)
    # drops exactly the pieces one (pieces x whole) comparison drops, and drops some.
    g = torch.Generator().manual_seed(0)
    n = 3000
    xy = torch.rand(n, 2, generator=g) * 500
    wh = torch.rand(n, 2, generator=g) * 60 + 4
    inst = Instances((600, 600))
    inst.pred_boxes = Boxes(torch.cat([xy, xy + wh], dim=1))
    inst.pred_classes = torch.randint(0, 2, (n,), generator=g)
    cut = torch.rand(n, generator=g) < 0.4
    source = torch.randint(0, 6, (n,), generator=g)
    once = covered_pieces(inst, cut, source, 0.8, class_agnostic=False)
    monkeypatch.setattr(sliced_inference, "_PIECE_BLOCK", 7)
    blocked = covered_pieces(inst, cut, source, 0.8, class_agnostic=False)
    assert len(once) > 0 and bool(cut[once].all())
    assert torch.equal(once, blocked)
    assert len(covered_pieces(inst, cut, source, 0.8, class_agnostic=True)) >= len(once)


def test_predictor_with_one_tile_gives_the_whole_image_result(repo_root, nano_checkpoint):
    cfg = _nano_cfg(repo_root, nano_checkpoint)
    image = cv2.resize(cv2.imread(photo_paths(("astronaut.png",))[0]), (400, 300))
    plain = YOLOXPredictor(cfg)(image)["instances"]
    sliced = YOLOXPredictor(cfg, slice_size=416, slice_overlap=0.2)(image)["instances"]  # 400 x 300: one tile
    assert len(plain) > 0
    assert torch.equal(sliced.pred_boxes.tensor, plain.pred_boxes.tensor)
    assert torch.equal(sliced.scores, plain.scores)


def test_demo_cli_slice(repo_root, nano_checkpoint, tmp_path):
    image = cv2.imread(photo_paths(("coffee.png",))[0])
    big = np.concatenate([image, image], axis=1)  # 400 x 1200
    cv2.imwrite(str(tmp_path / "big.png"), big)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "tools/demo.py", "--config-file", "configs/yolox_nano.py",
         "--input", str(tmp_path / "big.png"), "--output", str(tmp_path / "out"), "--slice", "416", "--overlap", "0.2", "--slice-whole-image",
         "--opts", "train.device=cpu", f"train.init_checkpoint={nano_checkpoint}", "model.test_score_thresh=0.3"],
        cwd=repo_root, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert cv2.imread(str(tmp_path / "out" / "big.jpg")).shape == big.shape
    bad = subprocess.run(
        [sys.executable, "tools/demo.py", "--config-file", "configs/yolox_nano.py", "--input", "x.png",
         "--output", str(tmp_path / "bad"), "--slice", "416", "--overlap", "1.5"],
        cwd=repo_root, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert bad.returncode == 2 and "--overlap in [0, 1)" in bad.stderr
