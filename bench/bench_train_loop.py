#!/usr/bin/env python
"""
The training loop as users run it, side by side: yolox_d2's trainer (Detectron2's
``SimpleTrainer`` with the recipe's hooks, EMA, multi-scale and data loader) vs the official
YOLOX (PyPI ``yolox==0.3.0``) Trainer loop (``bench/official_train.py``, its CPU port), on the
same training tiles (``deepforest_trees_train``, 1 class), batch 8, 2 loader workers, CPU,
``--threads`` torch threads on each side::

    python bench/bench_train_loop.py                           # Nano@416 and S@640, 2 runs (~10 min on 2 cores)
    python bench/bench_train_loop.py --models nano --runs 1 --warmup 2 --iters 3 --json out.json

* yolox_d2: ``configs/yolox_nano.py`` / ``configs/yolox_s.py`` with the trees dataset
  (``model.num_classes=1``, ``dataloader.train.dataset.dataset_dicts.names``, batch, workers,
  ``train.device=cpu``, ``train.seed``), built through :mod:`yolox_d2.engine.defaults`
  (``build_model``, ``build_train_loader``, ``resolve_schedule(...).apply``, ``build_optimizer``,
  ``build_ema``, ``build_trainer``, ``build_hooks``) and run by ``trainer.train``, in a child
  process (this script with ``--side ours``). ``train.max_iter`` = warm-up + timed iterations,
  ``train.no_aug_iters=0`` (the whole run in the Mosaic phase), evaluation and checkpoint periods
  beyond ``max_iter`` and no ``dataloader.evaluator`` (no evaluation at all; the final checkpoint
  is written after the last timestamp). One extra hook, registered first, records
  ``time.perf_counter()`` after every iteration's step (so the interval of iteration ``i``
  holds the other hooks' ``after_step`` of ``i - 1`` and the step of ``i``).
* official: ``bench/official_train.py --exp yolox-nano|yolox-s`` with the same schedule (lr,
  warm-up, EMA decay / tau read from our resolved config), the same augmentation recipe (our
  config's ``dataloader.train.dataset``, passed explicitly: for S this overrides the official
  ``yolox_s`` exp's MixUp + mosaic scale (0.1, 2) by the paper's small-model recipe that our
  ``configs/yolox_s.py`` uses), a COCO json of the same (validated) tiles, timestamps at the end
  of every iteration (``iter_times.json``).
* multi-scale: both sides train at the same sizes: the sizes our ``MultiScaleHook`` draws with
  ``train.seed`` (window 0 at the base size, a new size every 10 iterations) are replayed on the
  official side (``--sizes``); the report checks the sizes each side recorded.

Timing: ``--warmup`` iterations untimed, then ``--iters`` timed ones (default 30 for Nano, 20 for
S); images/s = timed iterations x batch / (time from the end of the last warm-up iteration to the
end of the last timed one). Runs alternate ours, official, then official, ours (ABBA); the
figure is the median over runs. Each side runs alone (one child process at a time), with
``OMP_NUM_THREADS`` / ``torch.set_num_threads`` = ``--threads`` in the main process (the loader
workers use 1 torch thread on both sides, as PyTorch sets it); OpenCV's thread count is each
side's own (official: its ``configure_module()``, ``cv2.setNumThreads(0)``, as its
``tools/train.py``; ours: untouched, as ``tools/lazyconfig_train_net.py``).

Memory: every ``--sample-interval`` s (0.15) the parent sums, over the child's process tree
(the main process and the loader workers), the PSS (``/proc/<pid>/smaps_rollup``: a page shared
by the forked workers counts once in total) and the RSS (a shared page counts once per process);
the peaks over the whole run (start-up included) are reported, the max over runs. PSS splits
the file pages of shared libraries with every process that maps them (the parent included), so
the anonymous part (``Pss_Anon``) is also recorded in the JSON.
"""

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

from benchlib import REPO_ROOT, Report, command_line, finish, machine_info

TRAIN_DATASET = "deepforest_trees_train"
VAL_DATASET = "deepforest_trees_val"
SIDES = ("yolox_d2", "official")
# model key -> (our config, the official exp, label, default timed iterations)
MODELS: Dict[str, tuple] = {
    "nano": (os.path.join("configs", "yolox_nano.py"), "yolox-nano", "YOLOX-Nano@416", 30),
    "s": (os.path.join("configs", "yolox_s.py"), "yolox-s", "YOLOX-S@640", 20),
}
# the augmentation keys passed to the official side (official_train.py option names)
AUG_KEYS = ("mosaic_prob", "mosaic_scale", "enable_mixup", "degrees", "translate", "shear", "hsv_prob", "flip_prob")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads of each side's main process")
    p.add_argument("--runs", type=int, default=2, help="runs per side, alternating ours / official (ABBA)")
    p.add_argument("--warmup", type=int, default=10, help="untimed warm-up iterations per run")
    p.add_argument("--iters", type=int, default=None, help="timed iterations per run (default: Nano 30, S 20)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=2, help="data loader workers of each side")
    p.add_argument("--seed", type=int, default=0, help="seed of both sides (and of the multi-scale sizes)")
    p.add_argument("--sample-interval", type=float, default=0.15, help="seconds between memory samples")
    p.add_argument("--timeout", type=float, default=1200, help="seconds before a child run is killed")
    p.add_argument("--output-dir", default=os.path.join(REPO_ROOT, "output", "bench_train_loop"))
    p.add_argument("--keep", action="store_true", help="keep the children's checkpoints (deleted by default)")
    p.add_argument("--json", help="also write the report as JSON here (for run_all.py)")
    # internal: one side's run in this (child) process
    p.add_argument("--side", choices=["ours"], help=argparse.SUPPRESS)
    p.add_argument("--model", choices=list(MODELS), help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p


# ------------------------------------------------------------------------------------------
# Our side: the config and the child run
# ------------------------------------------------------------------------------------------


def ours_config(model: str, batch: int, workers: int, seed: int, max_iter: int, output_dir: str):
    """Our config of ``model`` on the trees (schedule not yet resolved): the benchmark's overrides."""
    from detectron2.config import LazyConfig

    import yolox_d2  # noqa: F401  (registers the tree datasets)

    cfg = LazyConfig.load(os.path.join(REPO_ROOT, MODELS[model][0]))
    cfg.model.num_classes = 1
    cfg.dataloader.train.dataset.dataset_dicts.names = TRAIN_DATASET
    cfg.dataloader.train.total_batch_size = int(batch)
    cfg.dataloader.train.num_workers = int(workers)
    cfg.dataloader.test.dataset = VAL_DATASET
    cfg.dataloader.pop("evaluator", None)  # no evaluation (the EvalHook's final one evaluates nothing)
    cfg.train.device = "cpu"
    cfg.train.seed = int(seed)
    cfg.train.output_dir = output_dir
    cfg.train.log_period = 10  # as the official print_interval
    cfg.train.max_iter = int(max_iter)
    cfg.train.no_aug_iters = 0  # the whole run in the Mosaic phase, as on the official side
    cfg.train.eval_period = int(max_iter) + 1
    cfg.train.checkpointer.period = int(max_iter) + 1
    return cfg


def resolved_config(model: str, batch: int, workers: int, seed: int, max_iter: int, output_dir: str):
    """:func:`ours_config` with its schedule resolved from the registered training records (as
    the training resolves it)."""
    from detectron2.data import DatasetCatalog

    from yolox_d2.solver import resolve_schedule

    cfg = ours_config(model, batch, workers, seed, max_iter, output_dir)
    resolve_schedule(cfg, len(DatasetCatalog.get(TRAIN_DATASET))).apply(cfg)
    return cfg


def multiscale_plan(cfg, max_iter: int) -> List[int]:
    """Our ``MultiScaleHook``'s sizes (square, px) for windows 1, 2, ... of a ``max_iter`` run."""
    from yolox_d2.engine.defaults import build_multiscale_hook

    ms = cfg.train.multiscale
    if not ms.enabled or int(ms.period) != 10 or cfg.train.seed < 0:
        raise SystemExit("expected seeded multi-scale training with period 10 (the official rule) in the config")
    hook = build_multiscale_hook(cfg)  # the hook our training builds
    sizes = []
    for window in range(1, max(1, math.ceil(max_iter / 10))):
        h, w = hook.size_for_window(window)
        if h != w:
            raise SystemExit(f"non-square multi-scale size {(h, w)}: official_train.py --sizes replays squares")
        sizes.append(int(h))
    return sizes


def run_ours_child(args) -> None:
    """One timed run of our training loop (``--side ours``): writes ``--out`` (timestamps)."""
    import logging

    import torch
    from detectron2.engine.train_loop import HookBase
    from detectron2.utils.env import seed_all_rng
    from detectron2.utils.logger import setup_logger

    from yolox_d2.engine.defaults import (
        build_ema, build_hooks, build_model, build_optimizer, build_train_loader, build_trainer,
    )  # fmt: skip
    from yolox_d2.engine.multiscale import MultiScaleHook
    from yolox_d2.solver import resolve_schedule, training_set_length

    torch.set_num_threads(args.threads)
    warmup, iters = args.warmup, timed_iters(args, args.model)
    cfg = ours_config(args.model, args.batch, args.workers, args.seed, warmup + iters, args.output_dir)
    os.makedirs(args.output_dir, exist_ok=True)
    setup_logger(args.output_dir, name="detectron2")
    setup_logger(args.output_dir, name="yolox_d2").setLevel(logging.INFO)
    seed_all_rng(cfg.train.seed)  # as default_setup

    model = build_model(cfg)
    train_dataset, train_loader = build_train_loader(cfg)
    resolve_schedule(cfg, training_set_length(train_dataset)).apply(cfg)
    optimizer = build_optimizer(cfg, model)
    ema = build_ema(cfg, model)
    trainer = build_trainer(cfg, model, train_loader, optimizer, ema=ema)

    class IterationTimestamps(HookBase):
        """``time.perf_counter()`` after every iteration's step, and the size it trained at."""

        def __init__(self):
            self.times: List[float] = []
            self.sizes: List[Optional[List[int]]] = []
            self._multiscale = None

        def before_train(self):
            self._multiscale = next((h for h in self.trainer._hooks if isinstance(h, MultiScaleHook)), None)

        def after_step(self):
            self.times.append(time.perf_counter())
            size = None if self._multiscale is None else self._multiscale.current_size
            self.sizes.append(None if size is None else list(size))

    stamps = IterationTimestamps()
    trainer.register_hooks([stamps] + build_hooks(cfg, trainer, train_dataset, ema=ema))
    trainer.checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=False)
    start = time.perf_counter()
    trainer.train(0, cfg.train.max_iter)
    with open(args.out, "w") as f:
        json.dump({"start": start, "iter_end": stamps.times, "sizes": stamps.sizes, "batch": args.batch}, f)


# ------------------------------------------------------------------------------------------
# The official side's command
# ------------------------------------------------------------------------------------------


def official_command(cfg, model: str, out_dir: str, train_json: str, args, sizes: Sequence[int]) -> List[str]:
    """``official_train.py`` with our resolved config's schedule, recipe and sizes."""
    n = int(cfg.train.max_iter)
    ds = cfg.dataloader.train.dataset
    if bool(ds.enable_mixup):
        raise SystemExit("MixUp on: official_train.py has no --mixup-prob / --mixup-scale to match ours")
    recipe = {k: ds[k] for k in AUG_KEYS}
    cmd = [
        sys.executable, os.path.join(REPO_ROOT, "bench", "official_train.py"),
        "--exp", MODELS[model][1],
        "--train-json", train_json,
        "--output-dir", out_dir,
        "--num-classes", "1",
        "--iters", str(n),
        "--warmup-iters", repr(float(cfg.lr_multiplier.warmup_fraction) * n),
        "--no-aug-iters", str(int(cfg.train.no_aug_iters)),
        "--lr-no-aug-iters", repr(float(cfg.lr_multiplier.no_aug_fraction) * n),
        "--batch-size", str(args.batch),
        "--lr", repr(float(cfg.optimizer.lr)),
        "--min-lr-ratio", repr(float(cfg.lr_multiplier.min_lr_ratio)),
        "--input-size", str(int(ds.image_size[0])),
        "--ema-decay", repr(float(cfg.train.ema.decay)),
        "--ema-tau", repr(float(cfg.train.ema.tau)),
        "--workers", str(args.workers),
        "--threads", str(args.threads),
        "--seed", str(args.seed),
        "--print-interval", "10",
    ]  # fmt: skip
    if cfg.train.multiscale.random_size is not None:
        cmd += ["--random-size", *[str(int(v)) for v in cfg.train.multiscale.random_size]]
    if sizes:
        cmd += ["--sizes", *[str(s) for s in sizes]]
    for key in AUG_KEYS:
        value = recipe[key]
        option = "--" + key.replace("_", "-")
        if key == "mosaic_scale":
            cmd += [option, *[repr(float(v)) for v in value]]
        elif key == "enable_mixup":
            cmd += [option, str(int(bool(value)))]
        else:
            cmd += [option, repr(float(value))]
    return cmd


def recipe_text(cfg) -> str:
    ds = cfg.dataloader.train.dataset
    ms = cfg.train.multiscale
    if ms.random_size is not None:
        lo, hi = (32 * int(v) for v in ms.random_size)
    else:
        base = int(ds.image_size[0])
        lo, hi = base - ms.range * ms.step, base + ms.range * ms.step
    return (
        f"mosaic prob {float(ds.mosaic_prob):g} scale {tuple(float(v) for v in ds.mosaic_scale)}, "
        f"MixUp {'on' if ds.enable_mixup else 'off'}, degrees {float(ds.degrees):g}, translate "
        f"{float(ds.translate):g}, shear {float(ds.shear):g}, hsv {float(ds.hsv_prob):g}, flip "
        f"{float(ds.flip_prob):g}, multi-scale {lo}-{hi} every 10 it"
    )


# ------------------------------------------------------------------------------------------
# Process-tree memory and the child runs
# ------------------------------------------------------------------------------------------


def _smaps_rollup_kb(pid: int) -> Dict[str, int]:
    """``Rss`` / ``Pss`` / ``Pss_Anon`` (kB) of one process from ``/proc/<pid>/smaps_rollup``."""
    out: Dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss", "Pss_Anon"):
                out[key] = int(rest.split()[0])
    return out


def tree_memory(pid: int) -> Optional[Dict[str, float]]:
    """Sum of PSS / RSS / anonymous PSS (MB) over ``pid`` and its descendants; None if gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    total = {"pss": 0.0, "rss": 0.0, "pss_anon": 0.0, "processes": 0}
    for p in procs:
        try:
            try:
                m = _smaps_rollup_kb(p.pid)
                pss, rss, anon = m["Pss"] * 1024, m["Rss"] * 1024, m.get("Pss_Anon", 0) * 1024
            except (OSError, KeyError):
                info = p.memory_full_info()
                pss, rss, anon = info.pss, info.rss, 0
        except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError, FileNotFoundError):
            continue
        total["pss"] += pss / 2**20
        total["rss"] += rss / 2**20
        total["pss_anon"] += anon / 2**20
        total["processes"] += 1
    return total


def run_measured(cmd: List[str], log_path: str, threads: int, interval: float, timeout: float) -> List[tuple]:
    """Run ``cmd`` alone, sampling its process tree's memory; returns ``(t, memory)`` samples."""
    import psutil

    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    samples = []
    with open(log_path, "w") as log:
        log.write(" ".join(cmd) + "\n\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.perf_counter() + timeout
        try:
            while proc.poll() is None:
                t = time.perf_counter()
                mem = tree_memory(proc.pid)
                if mem is not None and mem["processes"]:
                    samples.append((t, mem))
                if t > deadline:
                    raise TimeoutError(f"{' '.join(cmd[:3])}... ran past {timeout:.0f} s (log: {log_path})")
                time.sleep(interval)
        finally:
            if proc.poll() is None:  # a timeout or an interrupt: end the child and its workers
                try:
                    children = psutil.Process(proc.pid).children(recursive=True)
                except psutil.NoSuchProcess:
                    children = []
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                for c in children:
                    try:
                        c.kill()
                    except psutil.NoSuchProcess:
                        pass
    if proc.returncode != 0:
        tail = open(log_path).read().strip().splitlines()[-5:]
        raise SystemExit(f"{' '.join(cmd[:4])}... failed with exit code {proc.returncode}:\n" + "\n".join(tail))
    return samples


def timed_iters(args, model: str) -> int:
    return int(args.iters) if args.iters is not None else MODELS[model][3]


def summarise_run(stamps: dict, samples: List[tuple], warmup: int, iters: int) -> Dict[str, float]:
    """images/s of the timed iterations, s / it, and the memory peaks of one run."""
    times = stamps["iter_end"]
    if len(times) < warmup + iters:
        raise SystemExit(f"expected {warmup + iters} iteration timestamps, got {len(times)}")
    begin = times[warmup - 1] if warmup > 0 else stamps["start"]
    end = times[warmup + iters - 1]
    seconds = end - begin
    out = {
        "images_per_s": iters * int(stamps["batch"]) / seconds,
        "s_per_iter": seconds / iters,
        "timed_seconds": seconds,
    }
    if samples:
        for key in ("pss", "rss", "pss_anon"):
            out[f"peak_{key}_mb"] = max(m[key] for _, m in samples)
        window = [m for t, m in samples if begin <= t <= end]
        if window:
            out["timed_peak_pss_mb"] = max(m["pss"] for m in window)
        out["max_processes"] = max(m["processes"] for _, m in samples)
    return out


# ------------------------------------------------------------------------------------------
# The report
# ------------------------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def model_figures(model: str, runs: Dict[str, List[Dict[str, float]]]) -> Dict[str, float]:
    """The JSON figures of one model: images/s (median over runs), peaks (max over runs), ratios
    ours / official. Keys: ``<model>_{ours,official}_images_per_s``, ``<model>_loop_ratio``,
    ``<model>_{ours,official}_peak_{pss,rss}_mb``, ``<model>_{pss,rss}_ratio`` (and the anonymous
    PSS, s / it)."""
    f: Dict[str, float] = {}
    for side, tag in (("yolox_d2", "ours"), ("official", "official")):
        rs = runs[side]
        f[f"{model}_{tag}_images_per_s"] = _median([r["images_per_s"] for r in rs])
        f[f"{model}_{tag}_s_per_iter"] = _median([r["s_per_iter"] for r in rs])
        for key in ("pss", "rss", "pss_anon"):
            vals = [r[f"peak_{key}_mb"] for r in rs if f"peak_{key}_mb" in r]
            if vals:
                f[f"{model}_{tag}_peak_{key}_mb"] = max(vals)
    f[f"{model}_loop_ratio"] = f[f"{model}_ours_images_per_s"] / f[f"{model}_official_images_per_s"]
    for key in ("pss", "rss", "pss_anon"):
        a, b = f.get(f"{model}_ours_peak_{key}_mb"), f.get(f"{model}_official_peak_{key}_mb")
        if a is not None and b:
            f[f"{model}_{key}_ratio"] = a / b
    return f


def model_rows(model: str, runs: Dict[str, List[Dict[str, float]]], figures: Dict[str, float]) -> List[List[str]]:
    label = MODELS[model][2]

    def spread(side: str, key: str, digits: int) -> str:
        vals = [r[key] for r in runs[side]]
        text = f"{_median(vals):.{digits}f}"
        return text + (f" ({min(vals):.{digits}f}–{max(vals):.{digits}f})" if len(vals) > 1 else "")

    def peak(tag: str, key: str) -> str:
        v = figures.get(f"{model}_{tag}_peak_{key}_mb")
        return "n/a" if v is None else f"{v:.0f}"

    def ratio(key: str, digits: int = 2) -> str:
        v = figures.get(key)
        return "n/a" if v is None else f"{v:.{digits}f}"

    return [
        [label, "images / s", spread("yolox_d2", "images_per_s", 2), spread("official", "images_per_s", 2),
         ratio(f"{model}_loop_ratio")],
        [label, "s / iteration", spread("yolox_d2", "s_per_iter", 3), spread("official", "s_per_iter", 3),
         f"{figures[f'{model}_ours_s_per_iter'] / figures[f'{model}_official_s_per_iter']:.2f}"],
        [label, "peak PSS, process tree (MB)", peak("ours", "pss"), peak("official", "pss"), ratio(f"{model}_pss_ratio")],
        [label, "peak RSS, process tree (MB)", peak("ours", "rss"), peak("official", "rss"), ratio(f"{model}_rss_ratio")],
    ]  # fmt: skip


def build_report(results: Dict[str, dict], args, machine: Dict[str, str], command: str) -> Report:
    """The report of ``results``: model -> {"runs": {side: [run summaries]}, "recipe": text,
    "sizes": {side: [timed sizes]}, "warmup", "iters", "batch", "lr"}."""
    rows, figures, notes = [], {}, []
    for model, res in results.items():
        f = model_figures(model, res["runs"])
        figures.update(f)
        rows += model_rows(model, res["runs"], f)
        sizes = res.get("sizes", {})
        same = sizes.get("yolox_d2") == sizes.get("official")
        timed = sorted(set(sizes.get("yolox_d2") or []))
        notes.append(
            f"{MODELS[model][2]}: {res['warmup']} warm-up + {res['iters']} timed iterations of batch {res['batch']} "
            f"per run, {len(res['runs']['yolox_d2'])} run(s) per side; both sides: {res['recipe']}; timed "
            f"iterations trained at {', '.join(str(s) for s in timed) or '?'} px"
            + ("" if same else " (**the two sides' recorded sizes differ**)")
            + f"; lr {res['lr']:g} (ours resolved), EMA decay {res['ema'][0]:g} tau {res['ema'][1]:g}."
        )
        figures[f"{model}_same_sizes"] = float(same)
    notes += [
        f"Dataset `{TRAIN_DATASET}` (validated tiles, 1 class); {args.workers} loader workers, "
        f"{args.threads} torch threads in each side's main process; the two sides run one at a time "
        "(ours, official, then official, ours, ...); images/s: median over runs; ratios ours / official.",
        "ours: the real trainer built by `yolox_d2.engine.defaults` from `configs/yolox_{nano,s}.py` + the trees "
        "dataset, no evaluation or checkpoint in the timed window; official: `bench/official_train.py` "
        "(CPU port of the official Trainer loop, `--exp yolox-nano|yolox-s`), the same recipe passed "
        "explicitly (the official `yolox-s` exp alone would add MixUp and mosaic scale (0.1, 2)), "
        "the multi-scale sizes of our seeded hook replayed.",
        "Peak memory: sum over the process tree (main process + loader workers) sampled every "
        f"{args.sample_interval:g} s over the whole run (start-up included), the max over runs; PSS counts a "
        "page shared by the forked workers once (shared-library pages are split with every process "
        "mapping them), RSS once per process.",
    ]
    return Report(
        title=f"Training loop: yolox_d2 trainer vs the official Trainer loop (batch {args.batch}, {args.workers} workers, CPU)",
        command=command,
        columns=["model", "figure", "yolox_d2", "official", "ours / official"],
        rows=rows,
        notes=notes,
        machine=machine,
        figures=figures,
    )


# ------------------------------------------------------------------------------------------


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    if args.side == "ours":
        return run_ours_child(args)
    if args.runs < 1 or args.warmup < 0 or (args.iters is not None and args.iters < 1):
        raise SystemExit("--runs and --iters must be >= 1, --warmup >= 0")
    import torch

    torch.set_num_threads(args.threads)
    from accuracy_trees import write_train_json

    machine = machine_info()  # load average before the runs
    out = os.path.abspath(args.output_dir)
    os.makedirs(out, exist_ok=True)
    train_json = os.path.join(out, "official_data", "annotations", "trees_train.json")
    n_train = write_train_json(train_json)  # also builds the tile cache once, before the children
    print(f"{n_train} training tiles", flush=True)

    results = {}
    for model in args.models:
        warmup, iters = args.warmup, timed_iters(args, model)
        cfg = resolved_config(model, args.batch, args.workers, args.seed, warmup + iters, os.path.join(out, "cfg"))
        sizes = multiscale_plan(cfg, warmup + iters)
        runs: Dict[str, List[Dict[str, float]]] = {s: [] for s in SIDES}
        recorded: Dict[str, list] = {}
        for r in range(args.runs):
            order = SIDES if r % 2 == 0 else SIDES[::-1]
            for side in order:
                run_dir = os.path.join(out, f"{model}_{side}_run{r}")
                shutil.rmtree(run_dir, ignore_errors=True)
                os.makedirs(run_dir)
                if side == "yolox_d2":
                    stamps_path = os.path.join(run_dir, "iter_times.json")
                    cmd = [
                        sys.executable, os.path.abspath(__file__), "--side", "ours", "--model", model,
                        "--out", stamps_path, "--output-dir", run_dir, "--warmup", str(warmup),
                        "--iters", str(iters), "--batch", str(args.batch), "--workers", str(args.workers),
                        "--threads", str(args.threads), "--seed", str(args.seed),
                    ]  # fmt: skip
                else:
                    stamps_path = os.path.join(run_dir, "iter_times.json")
                    cmd = official_command(cfg, model, run_dir, train_json, args, sizes)
                print(f"[{model} run {r}] {side}: {' '.join(cmd)}", flush=True)
                samples = run_measured(
                    cmd, os.path.join(out, f"{model}_{side}_run{r}.log"), args.threads, args.sample_interval, args.timeout
                )
                with open(stamps_path) as f:
                    stamps = json.load(f)
                summary = summarise_run(stamps, samples, warmup, iters)
                runs[side].append(summary)
                recorded[side] = [s[0] if s else None for s in stamps["sizes"][warmup : warmup + iters]]
                print(f"[{model} run {r}] {side}: {json.dumps(summary)}", flush=True)
                if not args.keep:
                    for name in os.listdir(run_dir):
                        if name.endswith(".pth"):
                            os.remove(os.path.join(run_dir, name))
        results[model] = {
            "runs": runs,
            "recipe": recipe_text(cfg),
            "sizes": recorded,
            "warmup": warmup,
            "iters": iters,
            "batch": args.batch,
            "lr": float(cfg.optimizer.lr),
            "ema": (float(cfg.train.ema.decay), float(cfg.train.ema.tau)),
        }
    report = build_report(results, args, machine, command_line())
    finish(report, args.json)


if __name__ == "__main__":
    sys.exit(main())
