#!/usr/bin/env python
"""
Train an official YOLOX (PyPI ``yolox==0.3.0``; ``--exp``, default ``yolox-nano``) on a
COCO-format json, on the CPU, with the official components: a CPU port of
``yolox.core.Trainer``'s loop for ``bench/accuracy_trees.py`` and ``bench/bench_train_loop.py``.

The official ``Trainer`` is CUDA-only (``torch.cuda.set_device``, ``DataPrefetcher`` on a CUDA
stream, ``Exp.random_resize`` allocating a CUDA tensor), so this script reproduces its loop
(``before_train`` / ``train_one_iter`` / ``before_epoch`` / ``after_iter``) with the official
pieces, unchanged:

* model, BN settings (eps 1e-3, momentum 0.03) and bias prior: ``get_exp(None, EXP)`` (``--exp``:
  ``yolox-nano``, ``yolox-tiny``, ``yolox-s``, ...) with ``num_classes`` set, ``exp.get_model()``;
  the augmentation, input size and multi-scale range are the exp's own unless given
  (``--mosaic-prob``, ``--input-size``, ``--random-size``, ...);
* data: ``exp.get_data_loader()`` (``COCODataset`` + ``MosaicDetection`` + ``TrainTransform``,
  ``InfiniteSampler`` + ``YoloBatchSampler``, the official ``DataLoader`` and its
  ``worker_init_reset_seed``); the no-augmentation phase calls ``train_loader.close_mosaic()``
  and sets ``model.head.use_l1 = True``;
* multi-scale: the official ``random_resize`` rule (a new size every 10 iterations, drawn with
  Python's ``random`` from ``exp.random_size``), with a CPU tensor instead of a CUDA one, and
  ``exp.preprocess`` (bilinear resize of the batch and its targets);
* optimizer ``exp.get_optimizer(batch)`` (3 parameter groups, SGD nesterov momentum 0.9,
  weight decay 5e-4 on conv / linear weights only, initial lr ``warmup_lr`` = 0);
  ``LRScheduler("yoloxwarmcos", ...)`` from ``exp.get_lr_scheduler``; the lr of iteration
  ``i`` is ``update_lr(i)`` (set after the step of iteration ``i - 1``, as the Trainer does);
* EMA: the official ``ModelEMA``, updated after every step; its decay ramp lambda is replaced
  by ``decay * (1 - exp(-updates / tau))`` with the caller's ``decay`` / ``tau`` (the official
  hard-codes 0.9998 / 2000).

Differences from the official Trainer (all deliberate, see ``--help`` of accuracy_trees.py):
the schedule is given in iterations (``--iters``, ``--warmup-iters``, ``--no-aug-iters``;
the official "epoch" is ``len(train_loader)`` iterations), the no-augmentation phase starts at
iteration ``iters - no_aug_iters`` (the official Trainer starts it one epoch before its LR
tail), no evaluation / checkpoint during training (only the final EMA weights are saved,
as ``save_ckpt`` would: ``{"model": ema.state_dict()}``), fp32 only, one process. With
``--sizes`` the multi-scale sizes are replayed from a given list instead of drawn (the rule, a
new size every 10 iterations, is unchanged): ``bench_train_loop.py`` gives both sides the same
sizes.

Run as a script (``python bench/official_train.py --train-json ... --output-dir ...``); writes
``<output-dir>/log.txt``, ``<output-dir>/final_ema.pth``, ``<output-dir>/summary.json`` and
``<output-dir>/iter_times.json`` (``time.perf_counter()`` at the end of every iteration, with
the training start and each iteration's input size).
"""

import argparse
import json
import math
import os
import random
import sys
import time
from typing import Dict, Tuple

import torch
from torch import nn

EXP_NAME = "yolox-nano"  # the default --exp
EXP_NAMES = ("yolox-nano", "yolox-tiny", "yolox-s", "yolox-m", "yolox-l", "yolox-x")
# the augmentation keys of --mosaic-prob ... (argparse dest -> Exp attribute); None: the exp's own
AUG_KEYS = ("mosaic_prob", "mosaic_scale", "enable_mixup", "degrees", "translate", "shear", "hsv_prob", "flip_prob")


def build_exp(num_classes: int, input_size, random_size, seed=None, exp_name: str = EXP_NAME):
    """The official Exp ``exp_name``, with this dataset's classes / sizes (``input_size`` /
    ``random_size`` None: the exp's own)."""
    from yolox.exp import get_exp

    exp = get_exp(None, exp_name)
    exp.num_classes = int(num_classes)
    if input_size is not None:
        exp.input_size = tuple(int(v) for v in input_size)
        exp.test_size = tuple(int(v) for v in input_size)
    if random_size is not None:
        exp.random_size = tuple(int(v) for v in random_size)
    exp.seed = seed
    return exp


def build_official_model(num_classes: int, checkpoint: str = "", exp_name: str = EXP_NAME) -> nn.Module:
    """The official model of ``exp_name`` (eval mode), with the weights of ``checkpoint`` (``{"model": ...}``)."""
    exp = build_exp(num_classes, (416, 416), None, exp_name=exp_name)
    model = exp.get_model()
    if checkpoint:
        state = torch.load(checkpoint, map_location="cpu")
        model.load_state_dict(state["model"] if "model" in state else state)
    return model.eval()


def random_resize_cpu(exp) -> Tuple[int, int]:
    """``Exp.random_resize`` (single process) without its CUDA tensor: same draw, same sizes."""
    size_factor = exp.input_size[1] * 1.0 / exp.input_size[0]
    if not hasattr(exp, "random_size"):
        min_size = int(exp.input_size[0] / 32) - exp.multiscale_range
        max_size = int(exp.input_size[0] / 32) + exp.multiscale_range
        exp.random_size = (min_size, max_size)
    size = random.randint(*exp.random_size)
    return (int(32 * size), 32 * int(size * size_factor))


def set_ema_decay(ema, decay: float, tau: float) -> None:
    """Replace the official ramp ``0.9998 * (1 - exp(-x / 2000))`` by ``decay``, ``tau``."""
    ema.decay = lambda x: decay * (1 - math.exp(-x / tau))


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-json", required=True, help="COCO json of the training images (absolute file_name)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--exp", default=EXP_NAME, choices=EXP_NAMES, help="the official Exp (default %(default)s)")
    p.add_argument("--num-classes", type=int, default=1)
    p.add_argument("--iters", type=int, required=True, help="total training iterations")
    p.add_argument("--warmup-iters", type=float, required=True, help="quadratic lr warm-up length")
    p.add_argument("--no-aug-iters", type=int, required=True, help="last iterations without mosaic, with L1")
    p.add_argument(
        "--lr-no-aug-iters", type=float, default=None, help="length of the constant lr tail (default --no-aug-iters)"
    )
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, required=True, help="base lr of the whole batch")
    p.add_argument("--min-lr-ratio", type=float, default=0.05)
    # None (not given): the exp's own value
    p.add_argument("--input-size", type=int, default=None, help="training size (default: the exp's)")
    p.add_argument(
        "--random-size", type=int, nargs=2, default=None,
        help="multiscale range / 32 (default: the exp's random_size, else input / 32 +- multiscale_range)",
    )
    p.add_argument(
        "--sizes", type=int, nargs="+", default=None,
        help="replay these multi-scale sizes (square, px), one per 10-iteration window from window 1 on, "
        "instead of drawing them (the last one repeats)",
    )
    p.add_argument("--mosaic-prob", type=float, default=None)
    p.add_argument("--mosaic-scale", type=float, nargs=2, default=None)
    p.add_argument("--enable-mixup", type=int, default=None)
    p.add_argument("--degrees", type=float, default=None)
    p.add_argument("--translate", type=float, default=None)
    p.add_argument("--shear", type=float, default=None)
    p.add_argument("--hsv-prob", type=float, default=None)
    p.add_argument("--flip-prob", type=float, default=None)
    p.add_argument("--ema-decay", type=float, default=0.9998)
    p.add_argument("--ema-tau", type=float, default=2000.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--print-interval", type=int, default=10)
    return p


class _Log:
    def __init__(self, path: str):
        self.f = open(path, "a", buffering=1)

    def __call__(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        self.f.write(line + "\n")


def train(args) -> Dict[str, float]:
    from yolox.utils import ModelEMA, configure_module

    configure_module()  # as tools/train.py: cv2.setNumThreads(0), no OpenCL
    torch.set_num_threads(args.threads)
    os.makedirs(args.output_dir, exist_ok=True)
    log = _Log(os.path.join(args.output_dir, "log.txt"))
    # tools/train.py with exp.seed set
    random.seed(args.seed)
    torch.manual_seed(args.seed)

    input_size = None if args.input_size is None else (args.input_size, args.input_size)
    exp = build_exp(args.num_classes, input_size, args.random_size, seed=args.seed, exp_name=args.exp)
    data_dir, json_name = os.path.split(os.path.abspath(args.train_json))
    if os.path.basename(data_dir) != "annotations":
        raise SystemExit("--train-json must lie in a directory named 'annotations' (COCODataset layout)")
    exp.data_dir = os.path.dirname(data_dir)  # COCODataset reads <data_dir>/annotations/<json>
    exp.train_ann = json_name
    exp.data_num_workers = args.workers
    for key in AUG_KEYS:  # given: set; not given: the exp's own
        value = getattr(args, key)
        if value is not None:
            setattr(exp, key, bool(value) if key == "enable_mixup" else tuple(value) if key == "mosaic_scale" else value)
    exp.basic_lr_per_img = args.lr / args.batch_size
    exp.min_lr_ratio = args.min_lr_ratio
    # Schedule in iterations: one "epoch" of the LR scheduler = 1 iteration.
    exp.max_epoch = args.iters
    exp.warmup_epochs = args.warmup_iters
    exp.no_aug_epochs = args.no_aug_iters if args.lr_no_aug_iters is None else args.lr_no_aug_iters
    exp.warmup_lr = 0

    # ---- Trainer.before_train (device: CPU)
    model = exp.get_model()
    model.train()
    optimizer = exp.get_optimizer(args.batch_size)
    train_loader = exp.get_data_loader(batch_size=args.batch_size, is_distributed=False, no_aug=False)
    lr_scheduler = exp.get_lr_scheduler(exp.basic_lr_per_img * args.batch_size, 1)
    ema = ModelEMA(model, 0.9998)
    ema.updates = 0
    set_ema_decay(ema, args.ema_decay, args.ema_tau)
    log(f"official {args.exp}: {sum(p.numel() for p in model.parameters())} params, "
        f"{len(train_loader.dataset)} training images, batch {args.batch_size}, lr {args.lr}, "
        f"{args.iters} iters (warm-up {args.warmup_iters}, no-aug {args.no_aug_iters}), "
        f"EMA decay {args.ema_decay} tau {args.ema_tau}, input_size {exp.input_size}, "
        f"random_size {getattr(exp, 'random_size', None)} (multiscale_range {exp.multiscale_range})"
        + (f", replayed sizes {args.sizes}" if args.sizes else "")
        + ", augmentation " + ", ".join(f"{k}={getattr(exp, k)}" for k in AUG_KEYS))
    log(f"exp:\n{exp}")

    switch_iter = args.iters - args.no_aug_iters
    input_size = exp.input_size
    data_iter = iter(train_loader)
    loss_history = []
    meter: Dict[str, list] = {}
    timed_start, timed_from = None, min(3, args.iters - 1)
    iter_end_times, iter_sizes = [], []
    train_start = time.perf_counter()
    for it in range(args.iters):
        if it == timed_from:
            timed_start = time.perf_counter()
        # ---- Trainer.before_epoch: the no-augmentation phase
        if it == switch_iter:
            log("--->No mosaic aug now!")
            train_loader.close_mosaic()
            log("--->Add additional L1 loss now!")
            model.head.use_l1 = True
        # ---- Trainer.train_one_iter
        iter_start = time.perf_counter()
        inps, targets, _, _ = next(data_iter)
        inps = inps.to(torch.float32)
        targets = targets.to(torch.float32)
        targets.requires_grad = False
        inps, targets = exp.preprocess(inps, targets, input_size)
        data_end = time.perf_counter()

        outputs = model(inps, targets)
        loss = outputs["total_loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at iteration {it}: {outputs}")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ema.update(model)
        lr = lr_scheduler.update_lr(it + 1)
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr

        iter_end = time.perf_counter()
        values = {k: float(v) for k, v in outputs.items()}
        values.update(iter_time=iter_end - iter_start, data_time=data_end - iter_start)
        for k, v in values.items():
            meter.setdefault(k, []).append(v)
        loss_history.append(values["total_loss"])
        # ---- Trainer.after_iter
        if (it + 1) % args.print_interval == 0 or it + 1 == args.iters:
            avg = {k: sum(v) / len(v) for k, v in meter.items()}
            log(
                f"iter: {it + 1}/{args.iters}, iter_time: {avg['iter_time']:.3f}s, "
                f"data_time: {avg['data_time']:.3f}s, "
                + ", ".join(f"{k}: {avg[k]:.3f}" for k in ("total_loss", "iou_loss", "l1_loss", "conf_loss", "cls_loss", "num_fg"))
                + f", lr: {lr:.3e}, size: {input_size[0]}"
            )
            meter.clear()
        iter_sizes.append(list(input_size))
        if (it + 1) % 10 == 0:
            if args.sizes:  # replayed: window k (from 1) trains at sizes[k - 1]
                size = args.sizes[min((it + 1) // 10 - 1, len(args.sizes) - 1)]
                input_size = (int(size), int(size))
            else:
                input_size = random_resize_cpu(exp)
        iter_end_times.append(time.perf_counter())

    end = time.perf_counter()
    train_s = end - train_start
    s_per_iter = (end - timed_start) / max(args.iters - timed_from, 1)
    ckpt = os.path.join(args.output_dir, "final_ema.pth")
    torch.save({"model": ema.ema.state_dict(), "iters": args.iters, "ema_updates": ema.updates}, ckpt)
    first = loss_history[: min(10, len(loss_history))]
    last = loss_history[-min(10, len(loss_history)):]
    summary = {
        "iters": args.iters,
        "train_seconds": train_s,
        "s_per_iter": s_per_iter,
        "loss_first10": sum(first) / len(first),
        "loss_last10": sum(last) / len(last),
        "checkpoint": ckpt,
    }
    with open(os.path.join(args.output_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(args.output_dir, "iter_times.json"), "w") as f:
        # time.perf_counter() (CLOCK_MONOTONIC: comparable across processes on Linux) at the start
        # of the loop and at the end of every iteration; the (h, w) each iteration trained at
        json.dump({"exp": args.exp, "batch": args.batch_size, "start": train_start,
                   "iter_end": iter_end_times, "sizes": iter_sizes}, f)
    log(f"Total training time: {train_s:.1f} s ({s_per_iter:.3f} s / it); saved the EMA weights to {ckpt}")
    return summary


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    train(args)


if __name__ == "__main__":
    sys.exit(main())
