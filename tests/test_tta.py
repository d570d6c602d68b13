"""
Test-time augmentation (yolox_d2.modeling.test_time_augmentation.YOLOXWithTTA, the merges of
yolox_d2.modeling.detection_merging, the ``test_time_augmentation`` config node that
build_inference_model and --eval-only read).
"""

import copy

import cv2
import pytest
import torch

from detectron2.config import LazyConfig
from detectron2.structures import Boxes, Instances

from yolox_d2.data.transforms import letterbox_chw
from yolox_d2.engine import do_eval_only
from yolox_d2.engine.predictor import build_inference_model
from yolox_d2.modeling import YOLOX, YOLOXWithTTA
from yolox_d2.modeling.detection_merging import merge_detections, weighted_box_fusion

from .conftest import photo_paths
from .exact_box_detector import BrightBlobDetector, draw_squares, sorted_rows
from .random_weights import random_yolox
from .train_net_runner import SMALL_TREES

SIZE = 256
# mirror-symmetric about x = 128, and a left-right asymmetric set
SYMMETRIC = [[20, 40, 60, 100], [196, 40, 236, 100], [108, 150, 148, 200], [30, 210, 70, 240], [186, 210, 226, 240]]
ASYMMETRIC = [[10, 20, 50, 60], [100, 30, 160, 90], [170, 140, 250, 230], [40, 180, 80, 220]]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _input(boxes):
    image = draw_squares(SIZE, SIZE, boxes)
    return {"image": torch.from_numpy(image.transpose(2, 0, 1).copy()), "height": SIZE, "width": SIZE}


@pytest.mark.parametrize("merge", ["nms", "wbf"])
def test_flip_of_a_symmetric_image_gives_the_same_boxes(merge):
    detector = BrightBlobDetector()
    inputs = [_input(SYMMETRIC)]
    plain = detector(inputs)[0]["instances"]
    tta = YOLOXWithTTA(detector, flip=True, merge=merge).eval()
    assert tta.num_passes == 2
    result = tta(inputs)[0]["instances"]
    assert torch.equal(sorted_rows(result.pred_boxes.tensor), sorted_rows(plain.pred_boxes.tensor))
    assert torch.allclose(result.scores, torch.full((len(SYMMETRIC),), 0.9))


def test_flipped_boxes_come_back_to_the_objects():
    """On an asymmetric image too: a wrong un-flip would leave mirrored boxes (WBF: half scores)."""
    detector = BrightBlobDetector()
    inputs = [_input(ASYMMETRIC), _input(SYMMETRIC)]
    result = YOLOXWithTTA(detector, flip=True, merge="wbf").eval()(inputs)
    for boxes, out in zip((ASYMMETRIC, SYMMETRIC), result):
        assert torch.equal(sorted_rows(out["instances"].pred_boxes.tensor), sorted_rows(torch.tensor(boxes)))
        assert torch.allclose(out["instances"].scores, torch.full((len(boxes),), 0.9))
    assert detector.calls == [4]  # one batch: both images and their flips


def test_scales_map_boxes_back():
    """Half and double size: with even coordinates the bilinear resize keeps the edges exact."""
    detector = BrightBlobDetector()
    tta = YOLOXWithTTA(detector, scales=(128, 256, 512), flip=True, merge="wbf").eval()
    assert tta.num_passes == 6
    seen = [x["image"].shape[-1] for batch in tta.augmented_inputs([_input(ASYMMETRIC)]) for x in batch]
    assert seen == [128, 128, 256, 256, 512, 512]
    out = tta([_input(ASYMMETRIC)])[0]["instances"]
    assert torch.equal(sorted_rows(out.pred_boxes.tensor), sorted_rows(torch.tensor(ASYMMETRIC)))
    assert torch.allclose(out.scores, torch.full((len(ASYMMETRIC),), 0.9))
    assert detector.calls == [2, 2, 2]  # one batch per scale


def test_weighted_box_fusion_averages_by_score():
    instances = Instances(
        (100, 100),
        pred_boxes=Boxes(torch.tensor([[10.0, 10, 50, 50], [12, 10, 52, 50], [60, 60, 90, 90], [10, 10, 50, 50]])),
        scores=torch.tensor([0.6, 0.2, 0.8, 0.5]),
        pred_classes=torch.tensor([0, 0, 0, 1]),
    )
    fused = weighted_box_fusion(instances, iou_thresh=0.55, num_passes=2)
    rows = {tuple(round(v, 4) for v in b): (s, c) for b, s, c in zip(
        fused.pred_boxes.tensor.tolist(), fused.scores.tolist(), fused.pred_classes.tolist())}  # fmt: skip
    assert rows[(10.5, 10.0, 50.5, 50.0)] == (pytest.approx(0.4), 0)  # (0.6 * x + 0.2 * x') / 0.8, mean score
    assert rows[(60.0, 60.0, 90.0, 90.0)] == (pytest.approx(0.4), 0)  # one pass of two: half its score
    assert rows[(10.0, 10.0, 50.0, 50.0)] == (pytest.approx(0.25), 1)  # other class: not fused
    assert fused.scores.tolist() == sorted(fused.scores.tolist(), reverse=True)
    nms = merge_detections([instances], (100, 100), method="nms", iou_thresh=0.5)
    assert len(nms) == 3
    with pytest.raises(ValueError, match="merge method"):
        merge_detections([instances], (100, 100), method="mean")


@pytest.fixture(scope="module")
def nano(repo_root):
    return random_yolox(repo_root, "yolox_nano.py", seed=0, flavour="calibrated", test_score_thresh=0.3).eval()


def test_one_scale_without_flip_is_the_model(nano):
    images = [cv2.imread(p) for p in photo_paths(("astronaut.png", "coffee.png"))]
    inputs = []
    for image in images:
        chw, _ = letterbox_chw(image, 416)
        inputs.append({"image": torch.from_numpy(chw), "height": image.shape[0], "width": image.shape[1]})
    with torch.no_grad():
        plain = nano(inputs)
    same = YOLOXWithTTA(nano, scales=(416,), flip=False).eval()(inputs)
    for a, b in zip(plain, same):
        assert len(a["instances"]) > 0
        assert torch.equal(a["instances"].pred_boxes.tensor, b["instances"].pred_boxes.tensor)
        assert torch.equal(a["instances"].scores, b["instances"].scores)
    augmented = YOLOXWithTTA(nano, scales=(320, 416), flip=True, max_detections=20).eval()(inputs)
    for image, out in zip(images, augmented):
        instances = out["instances"]
        assert 0 < len(instances) <= 20 and instances.image_size == image.shape[:2]
        assert instances.scores.tolist() == sorted(instances.scores.tolist(), reverse=True)


def _with(cfg, *overrides):
    return LazyConfig.apply_overrides(copy.deepcopy(cfg), list(overrides))


def test_config_node_switches_tta_on(repo_root, tmp_path, nano):
    checkpoint = tmp_path / "nano.pth"
    torch.save({"model": nano.state_dict()}, checkpoint)
    cfg = LazyConfig.load(str(repo_root / "configs" / "yolox_nano.py"))
    cfg = _with(cfg, "train.device=cpu", f"train.init_checkpoint={checkpoint}")
    assert isinstance(build_inference_model(cfg), YOLOX)
    # what a user types after --eval-only
    tta = _with(cfg, "test_time_augmentation.enabled=True", "test_time_augmentation.scales=[320,416]",
                "test_time_augmentation.merge=wbf")  # fmt: skip
    model = build_inference_model(tta)
    assert isinstance(model, YOLOXWithTTA) and isinstance(model.model, YOLOX) and not model.training
    assert (model.scales, model.flip, model.merge, model.iou_thresh) == ((320, 416), True, "wbf", 0.55)
    assert model.max_detections == model.model.max_detections_per_image
    assert isinstance(build_inference_model(_with(tta, "test_time_augmentation.enabled=False")), YOLOX)
    with pytest.raises(ValueError, match="Unknown test_time_augmentation option.*flips"):
        build_inference_model(_with(tta, "test_time_augmentation.flips=True"))
    with pytest.raises(ValueError, match="merge='mean'"):
        build_inference_model(_with(tta, "test_time_augmentation.merge=mean"))
    with pytest.raises(ValueError, match="positive sizes"):
        build_inference_model(_with(tta, "test_time_augmentation.scales=[0]"))


def test_eval_only_with_tta(repo_root, tmp_path):
    """What ``--eval-only ... test_time_augmentation.enabled=True`` runs (defaults.do_eval_only)."""
    checkpoint = tmp_path / "trees.pth"
    model = random_yolox(repo_root, "deepforest/yolox_nano_trees.py", seed=0, flavour="calibrated")
    torch.save({"model": model.state_dict()}, checkpoint)
    cfg = LazyConfig.load(str(repo_root / "configs" / "deepforest" / "yolox_nano_trees.py"))
    cfg = LazyConfig.apply_overrides(
        cfg, [*SMALL_TREES, f"train.init_checkpoint={checkpoint}", f"train.output_dir={tmp_path}",
              "model.test_score_thresh=0.0", "test_time_augmentation.enabled=True",
              "test_time_augmentation.scales=[128,160]"],
    )  # fmt: skip
    results = do_eval_only(cfg)
    assert "AP" in results["bbox"]
