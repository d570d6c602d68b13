#!/usr/bin/env python
"""
End to end on real photos (read the file, letterbox, forward, decode, score threshold, NMS,
boxes back to image coordinates): ``yolox_d2.engine.YOLOXPredictor`` vs the official demo path
(``yolox.tools.demo.Predictor.inference`` of yolox 0.3.0, what ``python tools/demo.py image``
runs), side by side::

    python bench/bench_predictor.py                          # YOLOX-S @640, CPU, 2 threads
    python bench/bench_predictor.py --variant nano

Same weights on both sides (random, converted from the official model), same test size,
score threshold 0.25 and NMS 0.45 (the official demo's defaults), class-agnostic NMS as the
official demo does, BatchNorm fused on both sides (the official demo's ``--fuse``; our
predictor fuses by default). Each timed call processes every photo once, reading it from
disk; the photos are scikit-image's sample photos.
"""
import argparse
import os
import pathlib
import sys
import tempfile

import cv2
import torch

import benchlib
from benchlib import REPO_ROOT, Report, Stats, alternate, command_line, finish, photo_paths, set_threads

SIZES = {"nano": 416, "tiny": 416, "s": 640, "darknet53": 640}


def get_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.add_common_args(p, runs=8, warmup=2)
    p.add_argument("--variant", default="s", choices=sorted(SIZES))
    p.add_argument("--conf", type=float, default=0.25)
    p.add_argument("--nms", type=float, default=0.45)
    return p


def main(argv=None):
    args = get_parser().parse_args(argv)
    set_threads(args.threads)
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.config import LazyConfig
    from yolox.exp import get_exp
    from yolox.tools.demo import Predictor as OfficialPredictor
    from yolox.utils import fuse_model

    from tests.official_reference import VARIANTS, converted_pair
    from yolox_d2.engine import YOLOXPredictor

    size = SIZES[args.variant]
    official, ours = converted_pair(pathlib.Path(REPO_ROOT), args.variant)
    exp = get_exp(None, VARIANTS[args.variant][0])
    exp.test_size = (size, size)
    exp.test_conf, exp.nmsthre = args.conf, args.nms
    official_predictor = OfficialPredictor(fuse_model(official.eval()), exp, device="cpu", legacy=False)

    photos = photo_paths()
    if not photos:
        raise SystemExit("no photos found: install scikit-image (make setup does)")
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "model.pth")
        DetectionCheckpointer(ours, save_dir=tmp).save("model")
        cfg = LazyConfig.load(os.path.join(REPO_ROOT, "configs", f"yolox_{args.variant}.py"))
        cfg.train.init_checkpoint = weights
        cfg.train.device = "cpu"
        cfg.model.test_score_thresh = args.conf
        cfg.model.test_nms_thresh = args.nms
        cfg.model.test_class_agnostic_nms = True
        cfg.model.max_detections_per_image = 100000  # the official demo keeps every detection
        cfg.dataloader.test.mapper.image_size = size
        predictor = YOLOXPredictor(cfg)

        def run_official():
            return [official_predictor.inference(p)[0][0] for p in photos]

        def run_ours():
            return [predictor(cv2.imread(p))["instances"] for p in photos]

        # The official demo logs every inference through loguru; silence it on both sides.
        from loguru import logger as loguru_logger

        loguru_logger.remove()
        counts_official = [0 if d is None else len(d) for d in run_official()]
        counts_ours = [len(d) for d in run_ours()]
        times = alternate({"official": run_official, "ours": run_ours}, args.runs, args.warmup)

    per_image = 1.0 / len(photos)
    so = Stats.of(times["official"], scale=1e3 * per_image)
    su = Stats.of(times["ours"], scale=1e3 * per_image)
    r = su.median / so.median
    report = Report(
        title=f"End-to-end predictor, YOLOX-{args.variant} @{size}, CPU, {args.threads} threads",
        command=command_line(),
        columns=["path", "ms per photo: median (min–max)", "photos/s", "detections per photo"],
        rows=[
            ["official demo (`Predictor.inference`, fused)", so.fmt(), f"{1e3 / so.median:.2f}", str(counts_official)],
            ["yolox_d2 `YOLOXPredictor`", su.fmt(), f"{1e3 / su.median:.2f}", str(counts_ours)],
            ["ours / official", f"**{r:.2f}x**", "", ""],
        ],
        notes=[
            f"{len(photos)} photos ({', '.join(os.path.basename(p) for p in photos)}), each read "
            "from disk in every call; random weights shared by both sides.",
            "Detection counts differ only by boxes lying wholly in the letterbox padding: ours "
            "returns boxes in image coordinates, clipped, and drops the empty ones (Detectron2's "
            "`detector_postprocess`); the official demo returns network-input coordinates.",
        ],
        figures={"predictor_ratio": r},
    )
    finish(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
