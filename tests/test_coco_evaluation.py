"""
FasterCOCOEvaluator (yolox_d2.evaluation): faster-coco-eval gives the same COCO metrics as
Detectron2's pycocotools scoring, on the real tree validation tiles with realistic detections
(jittered ground-truth boxes with random scores, duplicates, false positives, missed trees),
through the interface ``inference_on_dataset`` uses (reset / process / evaluate).
"""
import copy
import json
import logging
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import yolox_d2  # noqa: F401  (registers deepforest_trees_val)
from detectron2.config import LazyConfig
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, Instances
from yolox_d2.evaluation import FasterCOCOEvaluator, coco_evaluation

from .conftest import REPO_ROOT

TREES = "deepforest_trees_val"
TWO_CLASS = "test_coco_evaluation_trees_2cls"  # same tiles; small / large trees; masks, keypoints
KPT_SIGMAS = (0.05, 0.08, 0.08)


def _ellipse_polygon(x0, y0, x1, y1, n=12):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    return np.stack((cx + rx * np.cos(t), cy + ry * np.sin(t)), 1).ravel().tolist()


def _box_keypoints(x0, y0, x1, y1):
    """Three keypoints per tree: centre, top-left and bottom-right quarter points (visible)."""
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    return [cx, cy, 2, cx - w / 4, cy - h / 4, 2, cx + w / 4, cy + h / 4, 2]


def _two_class_dicts():
    """The val tiles, trees split by box area into two classes, with ellipse masks and keypoints."""
    dicts = copy.deepcopy(DatasetCatalog.get(TREES))
    areas = [(a["bbox"][2] - a["bbox"][0]) * (a["bbox"][3] - a["bbox"][1]) for d in dicts for a in d["annotations"]]
    median = float(np.median(areas))
    for d in dicts:
        for a in d["annotations"]:
            x0, y0, x1, y1 = a["bbox"]
            a["category_id"] = int((x1 - x0) * (y1 - y0) >= median)
            a["segmentation"] = [_ellipse_polygon(x0, y0, x1, y1)]
            a["keypoints"] = _box_keypoints(x0, y0, x1, y1)
    return dicts


@pytest.fixture(scope="module")
def datasets():
    if TWO_CLASS in DatasetCatalog.list():
        DatasetCatalog.remove(TWO_CLASS)
        MetadataCatalog.remove(TWO_CLASS)
    DatasetCatalog.register(TWO_CLASS, _two_class_dicts)  # fresh dicts per call
    MetadataCatalog.get(TWO_CLASS).set(
        thing_classes=["small_tree", "large_tree"],
        keypoint_names=["centre", "top_left", "bottom_right"],
        keypoint_flip_map=[("top_left", "bottom_right")],
        thing_dataset_id_to_contiguous_id={3: 0, 7: 1},  # COCO-style sparse category ids
    )
    yield
    DatasetCatalog.remove(TWO_CLASS)
    MetadataCatalog.remove(TWO_CLASS)


def _detections(dataset_dicts, seed, num_classes, masks=False, keypoints=False):
    """(inputs, outputs) as a model gives them: most trees found (jittered boxes, random scores,
    some twice), some missed, some false positives, now and then the wrong class."""
    rng = np.random.default_rng(seed)
    inputs, outputs = [], []
    for d in dataset_dicts:
        h, w = d["height"], d["width"]
        boxes, scores, classes = [], [], []
        for a in d["annotations"]:
            if rng.random() < 0.15:  # missed
                continue
            x0, y0, x1, y1 = a["bbox"]
            for copy_idx in range(1 + int(rng.random() < 0.2)):  # a duplicate now and then
                bw, bh = x1 - x0, y1 - y0
                jitter = rng.normal(0, 0.12 + 0.1 * copy_idx, 4) * [bw, bh, bw, bh]
                box = np.clip([x0, y0, x1, y1] + jitter, 0, [w, h, w, h])
                if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                    continue
                boxes.append(box)
                scores.append(rng.beta(5, 2) * (0.6 if copy_idx else 1.0))
                wrong = rng.random() < 0.05 and num_classes > 1
                classes.append((a["category_id"] + 1) % num_classes if wrong else a["category_id"])
        for _ in range(rng.integers(3, 15)):  # false positives
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            bw, bh = rng.uniform(8, 80, 2)
            boxes.append(np.clip([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 0, [w, h, w, h]))
            scores.append(rng.beta(2, 5))
            classes.append(int(rng.integers(0, num_classes)))
        inst = Instances((h, w))
        inst.pred_boxes = Boxes(torch.tensor(np.array(boxes), dtype=torch.float32).reshape(-1, 4))
        inst.scores = torch.tensor(scores, dtype=torch.float32)
        inst.pred_classes = torch.tensor(classes, dtype=torch.int64)
        if masks:
            ys, xs = np.mgrid[0:h, 0:w] + 0.5
            m = []
            for x0, y0, x1, y1 in np.array(boxes).reshape(-1, 4):
                cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, max((x1 - x0) / 2, 0.5), max((y1 - y0) / 2, 0.5)
                m.append(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1)
            inst.pred_masks = torch.from_numpy(np.array(m, dtype=bool).reshape(-1, h, w))
        if keypoints:
            kps = [_box_keypoints(*b) for b in np.array(boxes).reshape(-1, 4)]
            kps = torch.tensor(kps, dtype=torch.float32).reshape(-1, 3, 3)
            kps[:, :, :2] += torch.from_numpy(rng.normal(0, 2.0, (len(kps), 3, 2))).float()
            inst.pred_keypoints = kps
        inputs.append({"image_id": d["image_id"], "height": h, "width": w, "file_name": d["file_name"]})
        outputs.append({"instances": inst})
    return inputs, outputs


def _evaluate(evaluator, inputs, outputs, batch_size=4, **evaluate_kwargs):
    """As ``inference_on_dataset`` drives an evaluator (the inputs are copied: d2 mutates them)."""
    evaluator.reset()
    for i in range(0, len(inputs), batch_size):
        evaluator.process(inputs[i : i + batch_size], copy.deepcopy(outputs[i : i + batch_size]))
    return evaluator.evaluate(**evaluate_kwargs)


def _both_backends(dataset_name, tmp_path, inputs, outputs, evaluate_kwargs=None, **kwargs):
    results = {}
    for backend in ("faster_coco_eval", "pycocotools"):
        evaluator = FasterCOCOEvaluator(
            dataset_name, output_dir=str(tmp_path / backend), allow_cached_coco=False, backend=backend, **kwargs
        )
        assert evaluator.backend == backend
        results[backend] = _evaluate(evaluator, inputs, outputs, **(evaluate_kwargs or {}))
    return results["faster_coco_eval"], results["pycocotools"]


def _assert_same_metrics(ours, reference, tasks):
    assert sorted(ours) == sorted(reference) == sorted(tasks)
    for task in tasks:
        assert list(ours[task]) == list(reference[task]), task
        for name, value in reference[task].items():
            if math.isnan(value):
                assert math.isnan(ours[task][name]), (task, name)
            else:
                assert ours[task][name] == pytest.approx(value, abs=1e-4), (task, name)


def test_same_box_ap_as_pycocotools_on_the_tree_validation_tiles(tmp_path):
    dicts = DatasetCatalog.get(TREES)
    inputs, outputs = _detections(dicts, seed=0, num_classes=1)
    assert sum(len(o["instances"]) for o in outputs) > 500  # hundreds of real boxes, detections
    ours, reference = _both_backends(TREES, tmp_path, inputs, outputs)
    _assert_same_metrics(ours, reference, ["bbox"])
    assert set(ours["bbox"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    assert 20 < ours["bbox"]["AP"] < 90  # a realistic, non-trivial result


def test_same_box_mask_keypoint_and_per_class_ap_as_pycocotools(datasets, tmp_path):
    dicts = DatasetCatalog.get(TWO_CLASS)
    inputs, outputs = _detections(dicts, seed=1, num_classes=2, masks=True, keypoints=True)
    ours, reference = _both_backends(TWO_CLASS, tmp_path, inputs, outputs, kpt_oks_sigmas=KPT_SIGMAS)
    _assert_same_metrics(ours, reference, ["bbox", "keypoints", "segm"])
    for task in ("bbox", "segm", "keypoints"):
        assert {"AP-small_tree", "AP-large_tree"} <= set(ours[task])
    assert all(0 < ours[t]["AP"] < 100 for t in ours)


@pytest.mark.parametrize("max_dets", [10, 300])
def test_same_ap_as_pycocotools_with_another_detection_limit(tmp_path, max_dets):
    inputs, outputs = _detections(DatasetCatalog.get(TREES), seed=2, num_classes=1)
    ours, reference = _both_backends(TREES, tmp_path, inputs, outputs, max_dets_per_image=max_dets)
    _assert_same_metrics(ours, reference, ["bbox"])
    default, _ = _both_backends(TREES, tmp_path / "default", inputs, outputs)
    if max_dets == 10:  # ~35 trees a tile: a limit of 10 detections lowers AP
        assert ours["bbox"]["AP"] < default["bbox"]["AP"] - 1


STRING_IDS = "test_coco_evaluation_trees_string_ids"


def test_same_ap_as_pycocotools_with_string_image_ids(tmp_path):
    """Pascal VOC datasets (Detectron2's and ours) use file ids as image ids: faster-coco-eval
    needs integers, so the evaluator renumbers them for scoring only."""
    dicts = copy.deepcopy(DatasetCatalog.get(TREES))
    for d in dicts:
        d["image_id"] = os.path.splitext(os.path.basename(d["file_name"]))[0]
    assert not any(isinstance(d["image_id"], int) for d in dicts)
    DatasetCatalog.register(STRING_IDS, lambda: copy.deepcopy(dicts))
    MetadataCatalog.get(STRING_IDS).set(thing_classes=MetadataCatalog.get(TREES).thing_classes)
    try:
        inputs, outputs = _detections(dicts, seed=5, num_classes=1)
        ours, reference = _both_backends(STRING_IDS, tmp_path, inputs, outputs)
        _assert_same_metrics(ours, reference, ["bbox"])
        assert reference["bbox"]["AP"] > 5
        # the saved results keep the dataset's own ids
        saved = json.loads((tmp_path / "faster_coco_eval" / "coco_instances_results.json").read_text())
        assert {r["image_id"] for r in saved} <= {d["image_id"] for d in dicts}
    finally:
        DatasetCatalog.remove(STRING_IDS)
        MetadataCatalog.remove(STRING_IDS)


def test_same_ap_as_pycocotools_on_a_subset_of_images(tmp_path):
    dicts = DatasetCatalog.get(TREES)
    inputs, outputs = _detections(dicts, seed=3, num_classes=1)
    img_ids = [d["image_id"] for d in dicts[::3]]
    ours, reference = _both_backends(TREES, tmp_path, inputs, outputs, evaluate_kwargs={"img_ids": img_ids})
    _assert_same_metrics(ours, reference, ["bbox"])
    everything, _ = _both_backends(TREES, tmp_path / "all", inputs, outputs)
    assert ours["bbox"]["AP"] != everything["bbox"]["AP"]


def test_no_detections_give_nan_metrics_as_pycocotools(tmp_path):
    dicts = DatasetCatalog.get(TREES)
    inputs, outputs = _detections(dicts[:2], seed=4, num_classes=1)
    outputs = [{"instances": o["instances"][:0]} for o in outputs]
    ours, reference = _both_backends(TREES, tmp_path, inputs, outputs)
    _assert_same_metrics(ours, reference, ["bbox"])
    assert all(math.isnan(v) for v in ours["bbox"].values())


def test_falls_back_to_pycocotools_with_one_warning_when_faster_coco_eval_is_missing(
    tmp_path, monkeypatch, caplog
):
    inputs, outputs = _detections(DatasetCatalog.get(TREES), seed=5, num_classes=1)
    _, reference = _both_backends(TREES, tmp_path, inputs, outputs)
    monkeypatch.setattr(coco_evaluation, "FASTER_COCO_EVAL_AVAILABLE", False)
    with caplog.at_level(logging.WARNING, logger=coco_evaluation.__name__):
        evaluator = FasterCOCOEvaluator(TREES, output_dir=str(tmp_path / "fallback"), allow_cached_coco=False)
        results = _evaluate(evaluator, inputs, outputs)
    warnings = [r for r in caplog.records if r.name == coco_evaluation.__name__ and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "faster-coco-eval" in warnings[0].getMessage()
    assert evaluator.backend == "pycocotools"
    _assert_same_metrics(results, reference, ["bbox"])


def test_unknown_backend_task_or_class_is_a_clear_error(datasets, tmp_path):
    with pytest.raises(ValueError, match="unknown backend 'cocoapi'"):
        FasterCOCOEvaluator(TREES, output_dir=str(tmp_path), backend="cocoapi")
    inputs, outputs = _detections(DatasetCatalog.get(TWO_CLASS)[:2], seed=6, num_classes=2)
    evaluator = FasterCOCOEvaluator(TWO_CLASS, tasks=("bbox", "boxes"), output_dir=str(tmp_path / "task"))
    with pytest.raises(ValueError, match="unknown task 'boxes'"):
        _evaluate(evaluator, inputs, outputs)
    outputs[1]["instances"].pred_classes[3] = 2
    evaluator = FasterCOCOEvaluator(TWO_CLASS, output_dir=str(tmp_path / "class"))
    with pytest.raises(ValueError, match=f"on image {inputs[1]['image_id']} has class=2, but {TWO_CLASS} has 2 classes"):
        _evaluate(evaluator, inputs, outputs)


def test_coco_configs_evaluate_with_faster_coco_eval():
    cfg = LazyConfig.load(str(REPO_ROOT / "configs" / "yolox_s.py"))
    assert cfg.dataloader.evaluator._target_ is FasterCOCOEvaluator
    assert cfg.dataloader.evaluator.get("backend", "faster_coco_eval") == "faster_coco_eval"


def test_scoring_benchmark_checks_parity_and_writes_json(tmp_path):
    out = tmp_path / "coco_eval.json"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "bench_coco_eval.py"), "--images", "30",
         "--dets-per-image", "20", "--runs", "1", "--json", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["figures"]["coco_eval_max_ap_difference"] <= 1e-4
    assert report["figures"]["coco_eval_speedup"] > 0
    assert [row[0] for row in report["rows"]] == ["pycocotools", "faster-coco-eval"]
    assert "| faster-coco-eval | 30 x 20 |" in proc.stdout
