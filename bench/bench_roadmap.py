#!/usr/bin/env python
"""
The YOLOX roadmap (YOLOX paper, arXiv 2107.08430, Table 2) as a CPU-scale ladder: every rung of
``configs/roadmap/`` trained on the bundled tree tiles with one short schedule, evaluated on the
held-out photo, printed beside the paper's COCO numbers::

    python bench/bench_roadmap.py                          # 300 iterations per rung, seed 0
    python bench/bench_roadmap.py --iters 60 --seeds 0 1 --json roadmap.json

**A sanity check, not a reproduction.** The paper trains Darknet-53 for 300 COCO epochs on 8
GPUs; here each rung trains a few hundred iterations from scratch on 63 aerial tiles of one
class, on a CPU, with the network narrowed (Darknet-21, ``--stem-channels`` 8 instead of
Darknet-53 with 32, i.e. 1/4 of every width, and the decoupled head 1/4 wide too). The ladder
checks that every rung trains, evaluates and runs inference through the same tools as a user
(``tools/lazyconfig_train_net.py``), and how each step moves AP at this scale; the paper's
gaps (a few COCO AP) are within the run-to-run variation of such short runs, so the order of
the rungs need not follow the paper's. What does carry over exactly is the size of the
networks: the full-size parameter counts printed beside the paper's.

Every rung, with ``key=value`` overrides of its own config: 1 class, ``deepforest_trees_train``
(batch 8, input ``--size`` 416, multi-scale +-96 px: 320-512), ``optimizer.lr`` 0.02 with the
rung's own warm-up / cosine schedule scaled to ``--iters`` (warm-up 4 %, no-augmentation + L1
tail 12 %), EMA decay 0.99 (tau 50), and the rung's own augmentation (rungs 1-2: flip + colour jitter; 3-6: Mosaic +
MixUp) and label assignment. Evaluation: the training tool's COCO evaluation of the EMA weights on
``deepforest_trees_val`` (16 tiles), test size ``--size``, the best 100 detections per image
(score threshold 0); NMS for rungs 1-5, none for the NMS-free rung 6. Latency: milliseconds per
validation tile for the fused model's forward pass plus its post-processing (score threshold
0.01, then NMS or not), batch 1, ``--threads`` threads, median over the 16 tiles (the paper's
latencies are V100 fp16 without post-processing); informative only on a shared machine.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Sequence

from benchlib import REPO_ROOT, Report, command_line, finish, machine_info

TRAIN_DATASET = "deepforest_trees_train"
VAL_DATASET = "deepforest_trees_val"
BATCH = 8

# rung -> (Table 2 row, COCO AP, params (M), GFLOPs, V100 latency (ms)); the paper's YOLOv3
# baseline and "+decoupled head" have 3 anchors per cell, every rung here one.
PAPER = {
    "r1_coupled_head": ("YOLOv3 baseline (anchor-based)", "38.5", 63.00, 157.3, 10.5),
    "r2_decoupled_head": ("+decoupled head (anchor-based)", "39.6", 63.86, 186.0, 11.6),
    "r3_strong_augmentation": ("+strong augmentation / +anchor-free", "42.0 / 42.9", 63.72, 185.3, 11.1),
    "r4_multi_positives": ("+multi positives", "45.0", 63.72, 185.3, 11.1),
    "r5_simota": ("+SimOTA", "47.3", 63.72, 185.3, 11.1),
    "r6_nms_free": ("+NMS free (optional)", "46.5", 67.27, 205.1, 13.5),
}
RUNGS = list(PAPER)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, default=300, help="training iterations per rung")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one training per rung and seed")
    p.add_argument("--rungs", nargs="+", default=RUNGS, choices=RUNGS, help="rungs to train (default: all)")
    p.add_argument("--stem-channels", type=int, default=8, help="Darknet-21 stem width (Darknet-53: 32)")
    p.add_argument("--size", type=int, default=416, help="input size (multi-scale: +-96 px in training)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of each training and of the timing")
    p.add_argument("--output-dir", default=os.path.join(REPO_ROOT, "output", "bench_roadmap"))
    p.add_argument("--json", help="also write the report as JSON here (for run_all.py)")
    return p


def config_path(rung: str) -> str:
    return os.path.join(REPO_ROOT, "configs", "roadmap", f"{rung}.py")


def narrow_overrides(cfg, stem_channels: int) -> List[str]:
    """Darknet-21 at ``stem_channels / 32`` of Darknet-53's widths, the head alike."""
    from yolox_d2.modeling import YOLOXHead

    c3 = 4 * stem_channels  # YOLOFPN outputs: dark3 / 2, dark4 / 2, dark5 = 4, 8, 16 x the stem
    overrides = [
        "model.backbone.bottom_up.depth=21",
        f"model.backbone.bottom_up.stem_channels={stem_channels}",
        f"model.head.in_channels=[{c3},{2 * c3},{4 * c3}]",
    ]
    if cfg.model.head._target_ is YOLOXHead:
        overrides.append(f"model.head.feat_channels={8 * stem_channels}")
    return overrides


def overrides(cfg, args, seed: int, out_dir: str) -> List[str]:
    iters, size = args.iters, args.size
    if size % 32:
        raise SystemExit(f"--size must be a multiple of 32, got {size}")
    no_aug = max(1, round(0.12 * iters))
    return narrow_overrides(cfg, args.stem_channels) + [
        "model.num_classes=1",
        "model.test_score_thresh=0.0",
        f"model.test_square_size={size}",
        f"dataloader.train.dataset.dataset_dicts.names={TRAIN_DATASET}",
        f"dataloader.train.dataset.image_size=[{size},{size}]",
        f"dataloader.train.total_batch_size={BATCH}",
        "dataloader.train.num_workers=1",
        f"dataloader.test.dataset={VAL_DATASET}",
        f"dataloader.test.mapper.image_size=[{size},{size}]",
        "dataloader.test.num_workers=0",
        "optimizer.lr=0.02",
        "lr_multiplier.warmup_fraction=0.04",
        "lr_multiplier.no_aug_fraction=0.12",
        "train.device=cpu",
        f"train.seed={seed}",
        f"train.max_iter={iters}",
        f"train.no_aug_iters={no_aug}",
        f"train.eval_period={iters}",
        f"train.checkpointer.period={iters}",
        "train.log_period=20",
        "train.ema.decay=0.99",
        "train.ema.tau=50",
        f"train.multiscale.random_size=[{size // 32 - 3},{size // 32 + 3}]",
        f"train.output_dir={out_dir}",
    ]


def train(rung: str, args, seed: int) -> Dict[str, float]:
    """Train and evaluate one rung with the training tool; AP / AP50 from its log."""
    from detectron2.config import LazyConfig

    out_dir = os.path.join(os.path.abspath(args.output_dir), f"{rung}_seed{seed}")
    cfg = LazyConfig.load(config_path(rung))
    cmd = [
        sys.executable,
        os.path.join(REPO_ROOT, "tools", "lazyconfig_train_net.py"),
        "--config-file",
        config_path(rung),
        *overrides(cfg, args, seed, out_dir),
    ]
    os.makedirs(out_dir, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONUNBUFFERED="1")
    print(f"[{rung} seed {seed}] training {args.iters} iterations, log: {out_dir}/log.txt", flush=True)
    start = time.perf_counter()
    with open(os.path.join(out_dir, "stdout.txt"), "w") as log:
        rc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise SystemExit(f"{rung} (seed {seed}) failed with exit code {rc}: see {out_dir}/stdout.txt")
    with open(os.path.join(out_dir, "log.txt")) as f:
        text = f.read()
    found = re.findall(r"copypaste: ([\d.na]+),([\d.na]+),([\d.na]+),", text)
    if not found:
        raise SystemExit(f"{rung} (seed {seed}): no COCO result in {out_dir}/log.txt")
    ap, ap50 = (float(v) for v in found[-1][:2])
    return {
        "ap": ap,
        "ap50": ap50,
        "train_s": time.perf_counter() - start,
        "ms_per_image": latency(cfg, args, seed, out_dir),
    }


def latency(cfg, args, seed: int, out_dir: str) -> float:
    """Median ms per validation tile: fused forward pass + post-processing, batch 1, after one
    warm-up pass."""
    import torch

    from detectron2.config import LazyConfig
    from detectron2.data import DatasetCatalog

    from yolox_d2.data import YOLOXTestMapper
    from yolox_d2.engine.predictor import build_inference_model

    cfg = LazyConfig.apply_overrides(cfg, overrides(cfg, args, seed, out_dir))
    cfg.train.init_checkpoint = os.path.join(out_dir, "model_final.pth")
    cfg.model.test_score_thresh = 0.01  # the YOLOX default: post-processing at its usual size
    model = build_inference_model(cfg, device="cpu")
    mapper = YOLOXTestMapper(image_size=(args.size, args.size))
    inputs = [mapper(d) for d in DatasetCatalog.get(VAL_DATASET)]
    torch.set_num_threads(args.threads)
    times = []
    with torch.no_grad():
        model([inputs[0]])  # warm-up
        for x in inputs:
            start = time.perf_counter()
            model([x])
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def full_size_params(rung: str) -> float:
    """Parameters (M) of the rung's full-size network (Darknet-53, 80 classes)."""
    from detectron2.config import LazyConfig, instantiate

    model = instantiate(LazyConfig.load(config_path(rung)).model)
    return sum(p.numel() for p in model.parameters()) / 1e6


def _mean(values: Sequence[float]) -> str:
    text = f"{statistics.mean(values):.1f}"
    return text if len(values) == 1 else f"{text} ({min(values):.1f}-{max(values):.1f})"


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    import yolox_d2  # noqa: F401  (registers the datasets)
    from detectron2.data import DatasetCatalog

    machine = machine_info()
    DatasetCatalog.get(TRAIN_DATASET)  # builds the tile cache once, before the trainings
    DatasetCatalog.get(VAL_DATASET)
    results = {rung: [train(rung, args, seed) for seed in args.seeds] for rung in args.rungs}

    rows, figures = [], {"iters": float(args.iters)}
    for rung in args.rungs:
        runs = results[rung]
        row, paper_ap, paper_params, paper_gflops, paper_ms = PAPER[rung]
        params = full_size_params(rung)
        ap, ap50, ms = ([r[k] for r in runs] for k in ("ap", "ap50", "ms_per_image"))
        rows.append(
            [
                f"`{rung}`",
                row,
                paper_ap,
                _mean(ap),
                _mean(ap50),
                f"{statistics.median(ms):.1f}",
                f"{paper_ms:.1f}",
                f"{paper_params:.2f} / {paper_gflops:.1f}",
                f"{params:.2f}",
            ]
        )
        figures.update(
            {
                f"{rung}_ap": statistics.mean(ap),
                f"{rung}_ap50": statistics.mean(ap50),
                f"{rung}_ms_per_image": statistics.median(ms),
                f"{rung}_full_size_params_m": params,
            }
        )
    train_s = sum(r["train_s"] for runs in results.values() for r in runs)
    notes = [
        "A CPU-scale sanity check, not a reproduction of Table 2 (see the script's docstring): "
        f"{args.iters} iterations of batch {BATCH} per rung from scratch on 63 tree tiles, "
        f"Darknet-21 narrowed to stem {args.stem_channels} (1/{32 // args.stem_channels} of the "
        "widths), seeds " + ", ".join(str(s) for s in args.seeds) + "; AP differences of a few "
        "points are noise at this scale.",
        "AP / AP50 (%): COCO evaluation on `deepforest_trees_val` (16 tiles of a photo not in "
        "training), EMA weights, the best 100 detections per image (no score threshold: short "
        "runs score below COCO's usual 0.001), mean over seeds (min-max); paper AP: COCO val, "
        "300 epochs.",
        "ms / image: fused forward + post-processing (score >= 0.01, then NMS, none for the NMS-free "
        f"rung), batch 1, "
        f"{args.threads} CPU threads, narrowed network at {args.size}; paper: V100 fp16 batch 1, "
        "Darknet-53 at 640, without post-processing.",
        "Full-size params: the rung's config as written (Darknet-53, 80 classes), beside the "
        "paper's; the paper's first two rows have 3 anchors per cell (every rung here is "
        "anchor-free: 62.69 M is the 63.00 M baseline less two anchors' prediction weights).",
        f"Total training + evaluation time: {train_s:.0f} s.",
    ]
    report = Report(
        title="YOLOX roadmap (Table 2) on the tree tiles, CPU scale",
        command=command_line(),
        columns=[
            "config",
            "paper step",
            "paper AP",
            "AP",
            "AP50",
            "ms / image (CPU)",
            "paper ms (V100)",
            "paper params (M) / GFLOPs",
            "full-size params (M)",
        ],
        rows=rows,
        notes=notes,
        machine=machine,
        figures=figures,
    )
    finish(report, args.json)
    with open(os.path.join(os.path.abspath(args.output_dir), "results.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
