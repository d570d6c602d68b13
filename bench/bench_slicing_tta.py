#!/usr/bin/env python
"""
Sliced inference and test-time augmentation on the tree data, with a trained checkpoint::

    python bench/bench_slicing_tta.py --checkpoint output/yolox_nano_trees/model_final.pth

(a) The full validation photo of the tree dataset (``2019_YELL_2_541000_4977000_image_crop``,
1249 x 1035 px, 279 boxes: the untiled source of ``deepforest_trees_val``), scored with
pycocotools against all its VOC boxes: one whole-image pass at the network size of the config
(``YOLOXPredictor``), sliced inference (``--slice`` px tiles, ``--overlap``; every tile at
that same network size), and sliced plus the whole-image pass. AP uses up to
``--max-dets`` detections (COCO's usual 100 would cap the recall of a photo with 279 trees),
and every pass keeps as many (``model.max_detections_per_image``). Times are per photo
(median of ``--runs``, passes alternating).

(b) Test-time augmentation (``YOLOXWithTTA``, what ``--eval-only ...
test_time_augmentation.enabled=True`` evaluates) on the ``deepforest_trees_val`` tiles with the
config's evaluator: plain, flip only, flip at ``--tta-scales`` merged by NMS, and the same
merged by weighted box fusion; time is the evaluation's wall time per tile.

Without ``--checkpoint`` it says how to make one and exits 2. ``--json PATH`` writes the report.
"""
import argparse
import copy
import logging
import os
import sys
import tempfile
import time

import cv2
import numpy as np
from pycocotools.coco import COCO

import benchlib
from benchlib import REPO_ROOT, Report, alternate, command_line, finish, set_threads

CONFIG = os.path.join(REPO_ROOT, "configs", "deepforest", "yolox_nano_trees.py")
NO_CHECKPOINT = (
    "bench_slicing_tta.py needs a trained trees checkpoint: `make demo` writes "
    "output/yolox_nano_trees/model_final.pth (or run tools/lazyconfig_train_net.py --config-file "
    "configs/deepforest/yolox_nano_trees.py); then pass --checkpoint PATH"
)


def get_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.add_common_args(p, runs=3, warmup=1)
    p.add_argument("--checkpoint", help="trained weights of --config")
    p.add_argument("--config", default=CONFIG)
    p.add_argument("--slice", type=int, default=416, help="tile size of the sliced passes")
    p.add_argument("--overlap", type=float, default=0.2)
    p.add_argument("--max-dets", type=int, default=1000, help="detections per image scored on the full photo")
    p.add_argument("--tta-scales", type=int, nargs="+", default=[320, 416, 512])
    return p


def _coco_ap(gt_boxes: np.ndarray, size, instances, max_dets: int):
    """(AP, AP50) in % of one image's detections against its boxes (pycocotools, maxDets)."""
    from detectron2.evaluation.coco_evaluation import COCOevalMaxDets

    height, width = size
    gt = COCO()
    gt.dataset = {
        "images": [{"id": 1, "height": height, "width": width}],
        "categories": [{"id": 1, "name": "tree"}],
        "annotations": [
            {"id": i + 1, "image_id": 1, "category_id": 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
             "area": (x1 - x0) * (y1 - y0), "iscrowd": 0}
            for i, (x0, y0, x1, y1) in enumerate(gt_boxes.tolist())
        ],
    }  # fmt: skip
    gt.createIndex()
    boxes = instances.pred_boxes.tensor.cpu().numpy()
    scores = instances.scores.cpu().numpy()
    results = [
        {"image_id": 1, "category_id": 1, "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
         "score": float(s)}
        for b, s in zip(boxes, scores)
    ]  # fmt: skip
    if not results:
        return 0.0, 0.0
    evaluator = COCOevalMaxDets(gt, gt.loadRes(results), "bbox")
    evaluator.params.maxDets = [1, 10, max_dets]
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return 100 * float(evaluator.stats[0]), 100 * float(evaluator.stats[1])


def full_photo(cfg, args, rows, figures, notes):
    from yolox_d2.data.datasets.deepforest_trees import DEFAULT_VAL_SOURCES, deepforest_data_dir
    from yolox_d2.data.datasets.voc_xml import find_annotated_sources
    from yolox_d2.engine import YOLOXPredictor

    source = {s.name: s for s in find_annotated_sources(deepforest_data_dir())}[DEFAULT_VAL_SOURCES[0]]
    image = cv2.imread(source.image_path, cv2.IMREAD_COLOR)
    size = image.shape[:2]
    cfg = copy.deepcopy(cfg)
    cfg.model.max_detections_per_image = args.max_dets
    predictors = {
        "whole image": YOLOXPredictor(cfg),
        f"sliced {args.slice} / {args.overlap}": YOLOXPredictor(cfg, slice_size=args.slice, slice_overlap=args.overlap),
        f"sliced {args.slice} / {args.overlap} + whole": YOLOXPredictor(
            cfg, slice_size=args.slice, slice_overlap=args.overlap, slice_whole_image=True
        ),
    }
    network = predictors["whole image"].image_size
    times = alternate({name: (lambda p=p: p(image)) for name, p in predictors.items()}, args.runs, args.warmup)
    for key, (name, predictor) in zip(("whole", "sliced", "sliced_whole"), predictors.items()):
        instances = predictor(image)["instances"]
        ap, ap50 = _coco_ap(source.boxes, size, instances, args.max_dets)
        ms = benchlib.Stats.of(times[name])
        rows.append([f"full photo {size[1]}x{size[0]}, {len(source.boxes)} boxes", name, f"{network[1]}",
                     f"{ap:.1f}", f"{ap50:.1f}", str(len(instances)), ms.fmt()])  # fmt: skip
        figures.update({f"photo_{key}_ap": ap, f"photo_{key}_ap50": ap50, f"photo_{key}_ms": ms.median})
    figures["photo_sliced_minus_whole_ap"] = figures["photo_sliced_ap"] - figures["photo_whole_ap"]
    notes.append(
        f"Full photo: AP / AP50 over up to {args.max_dets} detections (pycocotools, COCOevalMaxDets); "
        f"every pass at the {network[1]} px network input; time per photo, median of {args.runs}."
    )


def tta(cfg, args, rows, figures, notes):
    from detectron2.config import instantiate
    from detectron2.evaluation import inference_on_dataset

    from yolox_d2.engine.predictor import build_inference_model

    scales = "[" + ",".join(str(s) for s in args.tta_scales) + "]"
    variants = {
        "plain": [],
        "flip": ["test_time_augmentation.enabled=True"],
        f"flip x {scales}, NMS": ["test_time_augmentation.enabled=True", f"test_time_augmentation.scales={scales}"],
        f"flip x {scales}, WBF": ["test_time_augmentation.enabled=True", f"test_time_augmentation.scales={scales}",
                                  "test_time_augmentation.merge=wbf"],
    }  # fmt: skip
    batches = list(instantiate(cfg.dataloader.test))  # the mapped inputs, read once
    num_images = sum(len(b) for b in batches)
    models, results = {}, {}
    for name, overrides in variants.items():
        variant = _with_overrides(cfg, overrides)
        models[name] = build_inference_model(variant)
        results[name] = inference_on_dataset(models[name], batches, instantiate(variant.dataloader.evaluator))["bbox"]
    times = alternate({name: (lambda m=m: _run_all(m, batches)) for name, m in models.items()}, args.runs, args.warmup)
    for key, name in zip(("plain", "flip", "flip_scales_nms", "flip_scales_wbf"), variants):
        ap, ap50 = results[name]["AP"], results[name]["AP50"]
        ms = benchlib.Stats.of(times[name], scale=1e3 / num_images)
        network = str(cfg.dataloader.test.mapper.image_size[1])
        data = f"{cfg.dataloader.test.dataset} ({num_images} tiles)"
        rows.append([data, f"TTA: {name}", network, f"{ap:.1f}", f"{ap50:.1f}", "", ms.fmt()])
        figures.update({f"tta_{key}_ap": ap, f"tta_{key}_ap50": ap50, f"tta_{key}_ms": ms.median})
    notes.append(
        "TTA: the config's evaluator on the validation tiles (inference_on_dataset, as --eval-only); time "
        f"per tile of the model (all passes and the merge, inputs already mapped), median of {args.runs}."
    )


def _run_all(model, batches):
    import torch

    with torch.no_grad():
        return [model(b) for b in batches]


def _with_overrides(cfg, overrides):
    from detectron2.config import LazyConfig

    return LazyConfig.apply_overrides(copy.deepcopy(cfg), overrides)


def main() -> int:
    args = get_parser().parse_args()
    if not args.checkpoint or not os.path.isfile(args.checkpoint):
        print(NO_CHECKPOINT + (f" ({args.checkpoint!r} does not exist)" if args.checkpoint else ""), file=sys.stderr)
        return 2
    set_threads(args.threads)
    from detectron2.config import LazyConfig
    from detectron2.utils.logger import setup_logger

    import yolox_d2  # noqa: F401  (registers the datasets)

    setup_logger(name="yolox_d2", abbrev_name="yolox_d2").setLevel(logging.WARNING)
    cfg = LazyConfig.load(args.config)
    output_dir = tempfile.mkdtemp(prefix="bench_slicing_tta_")
    cfg = LazyConfig.apply_overrides(
        cfg, [f"train.init_checkpoint={args.checkpoint}", "train.device=cpu", f"train.output_dir={output_dir}"]
    )
    rows, figures, notes = [], {}, []
    full_photo(cfg, args, rows, figures, notes)
    tta(cfg, args, rows, figures, notes)
    report = Report(
        title="Sliced inference and test-time augmentation (trees, YOLOX-Nano)",
        command=command_line(),
        columns=["data", "inference", "network px", "AP", "AP50", "detections", "time"],
        rows=rows,
        notes=notes + [f"checkpoint: {args.checkpoint}", f"{args.threads} threads, CPU"],
        machine=benchlib.machine_info(),
        figures=figures,
    )
    finish(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
