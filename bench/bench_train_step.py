#!/usr/bin/env python
"""
One training iteration of YOLOX-S at 640x640 (forward, SimOTA assignment, losses, backward,
SGD step), yolox_d2 vs the official YOLOX 0.3.0, side by side, for batch 2 and 4 with 10 and
50 ground truths per image::

    python bench/bench_train_step.py                  # CPU, 2 threads
    python bench/bench_train_step.py --device cuda    # GPU (fp32)

Both models start from the same random weights (converted from the official model) and train
on the same batch of random images and boxes, each with its recipe's optimizer (SGD, nesterov,
momentum 0.9, weight decay 5e-4 on weights only, the same learning rate). The official step is
``model(imgs, targets)["total_loss"]`` + backward + step, as in its ``Trainer.train_one_iter``
(without its CUDA-only AMP scaler); ours is ``sum(model(batched_inputs).values())`` + backward
+ step, as in Detectron2's ``SimpleTrainer.run_step``. The total losses of the first step are
printed side by side as a check that both compute the same thing.
"""
import argparse
import pathlib
import sys

import numpy as np
import torch

import benchlib
from bench_forward import S_GFLOPS_AT_640, measure_peak_gflops
from benchlib import REPO_ROOT, Report, Stats, alternate, command_line, finish, set_threads


def get_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.add_common_args(p, runs=5, warmup=1)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[2, 4])
    p.add_argument("--num-gts", type=int, nargs="+", default=[10, 50])
    p.add_argument("--size", type=int, default=640)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    return p


def random_batch(batch: int, num_gts: int, size: int, seed: int):
    """Images (B, 3, S, S) 0-255, boxes (B, G, 4) XYXY, classes (B, G)."""
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.uniform(0, 255, (batch, 3, size, size)).astype(np.float32))
    wh = rng.uniform(12, size / 3, (batch, num_gts, 2))
    xy = rng.uniform(0, 1, (batch, num_gts, 2)) * (size - wh)
    boxes = torch.from_numpy(np.concatenate([xy, xy + wh], axis=-1).astype(np.float32))
    classes = torch.from_numpy(rng.integers(0, 80, (batch, num_gts)))
    return images, boxes, classes


def official_targets(boxes, classes, max_labels=120):
    """The official (B, max_labels, 5) [class, cx, cy, w, h] layout, zero-padded."""
    b, g = classes.shape
    t = torch.zeros(b, max_labels, 5)
    t[:, :g, 0] = classes.float()
    t[:, :g, 1:3] = (boxes[..., :2] + boxes[..., 2:]) / 2
    t[:, :g, 3:5] = boxes[..., 2:] - boxes[..., :2]
    return t


def training_step_gflops(batch: int, size: int) -> float:
    """GFLOPs of one YOLOX-S training step: forward + backward, counted as 3 x the forward."""
    return 3 * S_GFLOPS_AT_640 * (size / 640) ** 2 * batch


def ours_inputs(images, boxes, classes):
    from detectron2.structures import Boxes, Instances

    out = []
    for im, bx, cl in zip(images, boxes, classes):
        inst = Instances(tuple(im.shape[-2:]), gt_boxes=Boxes(bx), gt_classes=cl)
        out.append({"image": im, "instances": inst})
    return out


def main(argv=None):
    args = get_parser().parse_args(argv)
    set_threads(args.threads)
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device")
    from detectron2.config import LazyConfig, instantiate
    from yolox.exp import get_exp

    from tests.official_reference import converted_pair

    rows, figures = [], {}
    notes = []
    lr = 0.01 / 64
    cfg = LazyConfig.load(f"{REPO_ROOT}/configs/yolox_s.py")
    for batch in args.batch_sizes:
        for num_gts in args.num_gts:
            official, ours = converted_pair(pathlib.Path(REPO_ROOT), "s")
            official, ours = official.to(device).train(), ours.to(device).train()
            exp = get_exp(None, "yolox-s")
            exp.model, exp.warmup_epochs, exp.basic_lr_per_img = official, 0, lr
            official_opt = exp.get_optimizer(batch)
            cfg.optimizer.params.model = ours
            cfg.optimizer.lr = lr * batch
            ours_opt = instantiate(cfg.optimizer)

            images, boxes, classes = random_batch(batch, num_gts, args.size, seed=batch * 1000 + num_gts)
            imgs, targets = images.to(device), official_targets(boxes, classes).to(device)
            inputs = ours_inputs(images.to(device), boxes.to(device), classes.to(device))
            sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
            losses = {}

            def step_official():
                loss = official(imgs, targets)["total_loss"]
                official_opt.zero_grad()
                loss.backward()
                official_opt.step()
                sync()
                losses.setdefault("official", float(loss))

            def step_ours():
                loss = sum(ours(inputs).values())
                ours_opt.zero_grad()
                loss.backward()
                ours_opt.step()
                sync()
                losses.setdefault("ours", float(loss))

            times = alternate({"official": step_official, "ours": step_ours}, args.runs, args.warmup)
            so, su = Stats.of(times["official"]), Stats.of(times["ours"])
            r = su.median / so.median
            figures[f"b{batch}_g{num_gts}_ratio"] = r
            step_gflops = training_step_gflops(batch, args.size)
            figures[f"b{batch}_g{num_gts}_gflops_per_s_ours"] = step_gflops / (su.median / 1e3)
            figures[f"b{batch}_g{num_gts}_gflops_per_s_official"] = step_gflops / (so.median / 1e3)
            rows.append([
                str(batch), str(num_gts), so.fmt(), su.fmt(), f"**{r:.2f}x**",
                f"{losses['official']:.4f} / {losses['ours']:.4f}",
            ])
    if device == "cpu":
        peak = max(measure_peak_gflops(args.threads).values())
        figures["matmul_peak_gflops"] = peak
        shares = []
        for batch in args.batch_sizes:
            for num_gts in args.num_gts:
                case = f"b{batch}_g{num_gts}"
                for side in ("ours", "official"):
                    figures[f"{case}_peak_fraction_{side}"] = figures[f"{case}_gflops_per_s_{side}"] / peak
                shares.append(
                    f"batch {batch} / {num_gts} gts: yolox_d2 {100 * figures[f'{case}_peak_fraction_ours']:.0f}%, "
                    f"official {100 * figures[f'{case}_peak_fraction_official']:.0f}%"
                )
        notes.append(
            f"Share of the measured fp32 GEMM peak ({peak:.0f} GFLOP/s, `bench_forward.measure_peak_gflops`) "
            f"reached by forward + backward, counted as 3 x the forward's {S_GFLOPS_AT_640:.1f} GFLOPs per 640 image "
            "(backward = input and weight gradients, each as large as the forward): " + "; ".join(shares) + "."
        )
    notes.append(
        "The official total loss is iou*5 + obj + cls (+ l1) over num_fg; ours returns the same "
        "terms as a dict (see `yolox_d2.modeling.losses`); first-step totals should agree to "
        "a few 1e-4 (float summation order, and ours runs channels-last)."
    )
    report = Report(
        title=f"One training iteration, YOLOX-S @{args.size}, {device}, {args.threads} threads",
        command=command_line(),
        columns=["batch", "gts / image", "official ms: median (min–max)", "yolox_d2 ms", "ours / official", "first-step loss (official / ours)"],
        rows=rows,
        notes=notes,
        figures=figures,
    )
    finish(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
