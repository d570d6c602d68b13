#!/usr/bin/env python
"""
Accuracy side by side: YOLOX-Nano trained from scratch by yolox_d2 and by the official YOLOX
(PyPI ``yolox==0.3.0``) on the embedded tree dataset, same schedule, same input size, scored
by one pycocotools function on the same validation split::

    python bench/accuracy_trees.py                   # the config's 1600 iterations, seeds 0 1 2 (~15-20 min a seed)
    python bench/accuracy_trees.py --iters 200 --seeds 0 --json out.json

* yolox_d2: ``tools/lazyconfig_train_net.py --config-file configs/deepforest/yolox_nano_trees.py``
  exactly as ``make demo`` runs it (plus ``train.output_dir`` / ``train.seed`` and, for
  ``--iters``, the iteration counts below).
* official: ``bench/official_train.py``, a CPU port of the official Trainer's loop built from
  the official components (Exp ``yolox-nano``, ``COCODataset`` + ``MosaicDetection`` +
  ``TrainTransform``, ``get_optimizer``, ``LRScheduler("yoloxwarmcos")``, ``ModelEMA``,
  ``random_resize`` rule, ``close_mosaic`` + ``use_l1``), fed a COCO json of the *same*
  training tiles (``deepforest_trees_train`` as our training reads it, i.e. validated: the 3
  tiles without a box are dropped by Detectron2's ``filter_empty`` rule, on both sides).

Same settings on both sides, all read from the trees config: batch 8, base lr
``optimizer.lr`` (official ``basic_lr_per_img = lr / batch``), the input size
``dataloader.train.dataset.image_size`` (320) with multi-scale ``train.multiscale.random_size``
x 32 (288-352) every 10 iterations, quadratic warm-up and
constant no-aug tail as fractions of the run (``lr_multiplier``), the no-augmentation phase
(mosaic off, L1 on) for the last ``train.no_aug_iters``, mosaic prob / scale, no MixUp, EMA
``decay * (1 - exp(-updates / tau))`` with ``train.ema`` (0.99, 50; the official ModelEMA's
ramp lambda is replaced by this one). ``--iters N`` scales ``max_iter`` and ``no_aug_iters``
by ``N / max_iter`` and keeps the fractions (warm-up, LR tail), so the schedule keeps its shape.

Seeds (``--seeds``, default 0 1 2; ``--seed N`` is ``--seeds N``): one pair of trainings per
seed, one pair at a time, both sides with that seed (``train.seed`` / the official script's
``--seed``), under ``--output-dir``/``seed<N>``. The report gives AP / AP50 / AP75 per seed and
side, the mean and the sample standard deviation (n - 1) over the seeds, and the difference
ours - official (per seed, its mean and sample std).

For each seed the two trainings run concurrently (two subprocesses, ``OMP_NUM_THREADS=1``
each), each with its own log; their wall time and s / iteration are informative only (they
share the machine with each other). Evaluation (in this process, after both finished): the EMA
weights of both (ours through ``build_inference_model``, as our evaluation does; official:
the saved ``ModelEMA.ema``), test size = the training size (320), score threshold 0.001, NMS 0.65, at most 100
detections per image, each side's own preprocessing / decoding (ours: ``YOLOXTestMapper`` +
the model's inference; official: ``ValTransform(legacy=False)`` + ``yolox.utils.postprocess``),
detections mapped back to the original image, then one ``COCOeval`` on the same ground-truth
json (Detectron2's conversion of ``deepforest_trees_val``, as our ``COCOEvaluator`` uses).
"""

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Sequence, Tuple

from benchlib import REPO_ROOT, Report, command_line, finish, machine_info

CONFIG = os.path.join("configs", "deepforest", "yolox_nano_trees.py")
TRAIN_DATASET = "deepforest_trees_train"
VAL_DATASET = "deepforest_trees_val"
CONF_THRESH = 0.001
NMS_THRESH = 0.65
MAX_DETS = 100


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, default=None, help="training iterations (default: the config's train.max_iter)")
    p.add_argument("--output-dir", default=os.path.join(REPO_ROOT, "output", "accuracy_trees"))
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="one training pair per seed (default: 0 1 2)")
    p.add_argument("--seed", type=int, default=None, help="a single seed: the same as --seeds SEED")
    p.add_argument("--threads", type=int, default=1, help="torch threads of each training and of the evaluation")
    p.add_argument("--nice", type=int, default=0, help="niceness of the two training processes")
    p.add_argument(
        "--eval-only", action="store_true", help="skip the trainings, evaluate the checkpoints already in --output-dir"
    )
    p.add_argument("--json", help="also write the report as JSON here (for run_all.py)")
    return p


DEFAULT_SEEDS = (0, 1, 2)


def parse_args(argv=None) -> argparse.Namespace:
    """The arguments, with ``--seed`` folded into ``args.seeds`` (a list of distinct seeds)."""
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.seed is not None and args.seeds is not None:
        parser.error("give --seeds or --seed, not both")
    seeds = [args.seed] if args.seed is not None else list(args.seeds or DEFAULT_SEEDS)
    if len(set(seeds)) != len(seeds):
        parser.error(f"--seeds has repeated seeds: {seeds}")
    args.seeds = seeds
    return args


# ------------------------------------------------------------------------------------------
# Schedule
# ------------------------------------------------------------------------------------------


def load_config():
    """The trees config with its schedule resolved as the training tool resolves it (from the
    training set's registered records)."""
    from detectron2.config import LazyConfig
    from detectron2.data import DatasetCatalog

    import yolox_d2  # noqa: F401  (registers the tree datasets)
    from yolox_d2.solver import resolve_schedule

    cfg = LazyConfig.load(os.path.join(REPO_ROOT, CONFIG))
    resolve_schedule(cfg, len(DatasetCatalog.get(TRAIN_DATASET))).apply(cfg)
    return cfg


def schedule(cfg, iters: int = None) -> Dict[str, float]:
    """The trees config's schedule, scaled to ``iters`` iterations (fractions kept)."""
    base_iters = int(cfg.train.max_iter)
    iters = base_iters if iters is None else int(iters)
    if iters <= 0:
        raise SystemExit(f"--iters must be > 0, got {iters}")
    no_aug_iters = int(round(cfg.train.no_aug_iters * iters / base_iters))
    warmup_fraction = float(cfg.lr_multiplier.warmup_fraction)
    no_aug_fraction = float(cfg.lr_multiplier.no_aug_fraction)
    ms = cfg.train.multiscale
    if not ms.enabled or ms.random_size is None or int(ms.period) != 10:
        raise SystemExit("expected multi-scale training with random_size and period 10 in the trees config")
    ds = cfg.dataloader.train.dataset
    return {
        "iters": iters,
        "base_iters": base_iters,
        "no_aug_iters": no_aug_iters,
        "warmup_fraction": warmup_fraction,
        "no_aug_fraction": no_aug_fraction,
        "min_lr_ratio": float(cfg.lr_multiplier.min_lr_ratio),
        "lr": float(cfg.optimizer.lr),
        "batch": int(cfg.dataloader.train.total_batch_size),
        "workers": int(cfg.dataloader.train.num_workers),
        "input_size": int(ds.image_size[0]),
        "random_size": [int(v) for v in ms.random_size],
        "mosaic_prob": float(ds.mosaic_prob),
        "mosaic_scale": [float(v) for v in ds.mosaic_scale],
        "enable_mixup": bool(ds.enable_mixup),
        "degrees": float(ds.degrees),
        "translate": float(ds.translate),
        "shear": float(ds.shear),
        "hsv_prob": float(ds.hsv_prob),
        "flip_prob": float(ds.flip_prob),
        "ema_decay": float(cfg.train.ema.decay),
        "ema_tau": float(cfg.train.ema.tau),
    }


# ------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------


def write_train_json(path: str) -> int:
    """The training tiles our training reads (validated dicts), as a COCO json for COCODataset."""
    from detectron2.data import MetadataCatalog
    from detectron2.structures import BoxMode

    from yolox_d2.data import get_validated_dataset_dicts

    dicts = get_validated_dataset_dicts(TRAIN_DATASET)
    classes = MetadataCatalog.get(TRAIN_DATASET).thing_classes
    images, annotations = [], []
    for d in dicts:
        images.append({"id": int(d["image_id"]), "file_name": d["file_name"], "height": int(d["height"]), "width": int(d["width"])})
        for a in d["annotations"]:
            x0, y0, x1, y1 = BoxMode.convert(list(a["bbox"]), BoxMode(a["bbox_mode"]), BoxMode.XYXY_ABS)
            w, h = x1 - x0, y1 - y0
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": int(d["image_id"]),
                    "category_id": int(a["category_id"]) + 1,
                    "bbox": [x0, y0, w, h],
                    "area": w * h,
                    "iscrowd": int(a.get("iscrowd", 0)),
                }
            )
    coco = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(classes)],
    }
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(coco, f)
    return len(images)


def write_val_gt_json(path: str) -> None:
    """Detectron2's COCO conversion of the validation split (what our COCOEvaluator scores)."""
    from detectron2.data.datasets.coco import convert_to_coco_dict

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(convert_to_coco_dict(VAL_DATASET), f)


# ------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------


def ours_command(sched, out_dir: str, seed: int) -> List[str]:
    n = sched["iters"]
    cmd = [
        sys.executable,
        os.path.join(REPO_ROOT, "tools", "lazyconfig_train_net.py"),
        "--config-file",
        os.path.join(REPO_ROOT, CONFIG),
        f"train.output_dir={out_dir}",
        f"train.seed={seed}",
    ]
    if n != sched["base_iters"]:
        cmd += [
            f"train.max_iter={n}",
            f"train.no_aug_iters={sched['no_aug_iters']}",
            f"train.eval_period={n}",
            f"train.checkpointer.period={n}",
        ]
    return cmd


def official_command(sched, out_dir: str, train_json: str, seed: int, threads: int) -> List[str]:
    n = sched["iters"]
    s = sched
    return [
        sys.executable,
        os.path.join(REPO_ROOT, "bench", "official_train.py"),
        "--train-json", train_json,
        "--output-dir", out_dir,
        "--num-classes", "1",
        "--iters", str(n),
        "--warmup-iters", repr(s["warmup_fraction"] * n),
        "--no-aug-iters", str(s["no_aug_iters"]),
        "--lr-no-aug-iters", repr(s["no_aug_fraction"] * n),
        "--batch-size", str(s["batch"]),
        "--lr", repr(s["lr"]),
        "--min-lr-ratio", repr(s["min_lr_ratio"]),
        "--input-size", str(s["input_size"]),
        "--random-size", *[str(v) for v in s["random_size"]],
        "--mosaic-prob", repr(s["mosaic_prob"]),
        "--mosaic-scale", *[repr(v) for v in s["mosaic_scale"]],
        "--enable-mixup", str(int(s["enable_mixup"])),
        "--degrees", repr(s["degrees"]),
        "--translate", repr(s["translate"]),
        "--shear", repr(s["shear"]),
        "--hsv-prob", repr(s["hsv_prob"]),
        "--flip-prob", repr(s["flip_prob"]),
        "--ema-decay", repr(s["ema_decay"]),
        "--ema-tau", repr(s["ema_tau"]),
        "--workers", str(s["workers"]),
        "--threads", str(threads),
        "--seed", str(seed),
    ]  # fmt: skip


def run_concurrently(jobs: Dict[str, Tuple[List[str], str]], threads: int, niceness: int) -> Dict[str, float]:
    """Start every ``name: (command, log file)`` at once; wait for all; return wall seconds."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")

    def lower_priority():
        os.nice(max(0, niceness - os.nice(0)))

    procs, files, start = {}, {}, {}
    for name, (cmd, log_path) in jobs.items():
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        files[name] = open(log_path, "w")
        files[name].write(" ".join(cmd) + "\n\n")
        files[name].flush()
        print(f"[{name}] {' '.join(cmd)}\n  log: {log_path}", flush=True)
        start[name] = time.perf_counter()
        procs[name] = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=files[name], stderr=subprocess.STDOUT, preexec_fn=lower_priority
        )
    wall, failed = {}, []
    pending = dict(procs)
    try:
        while pending:
            for name, proc in list(pending.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                wall[name] = time.perf_counter() - start[name]
                files[name].close()
                del pending[name]
                print(f"[{name}] finished with exit code {rc} after {wall[name]:.0f} s", flush=True)
                if rc != 0:
                    failed.append(name)
            if failed:
                break
            time.sleep(2)
    finally:
        for name, proc in pending.items():  # only after a failure (or an interrupt)
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            files[name].close()
    if failed:
        logs = ", ".join(jobs[n][1] for n in failed)
        raise SystemExit(f"training failed: {', '.join(failed)} (see {logs})")
    return wall


def ours_train_stats(out_dir: str) -> Dict[str, float]:
    """Training speed and the tool's own COCOEvaluator result, from Detectron2's log."""
    stats: Dict[str, float] = {}
    try:
        with open(os.path.join(out_dir, "log.txt")) as f:
            text = f.read()
    except OSError:
        return stats
    m = re.findall(r"Overall training speed: (\d+) iterations in \S+ \(([\d.]+) s / it\)", text)
    if m:
        stats["s_per_iter"] = float(m[-1][1])
    m = re.findall(r"Total training time: (\d+):(\d+):(\d+)", text)
    if m:
        h, mi, s = (int(v) for v in m[-1])
        stats["train_seconds"] = h * 3600 + mi * 60 + s
    m = re.findall(r"copypaste: ([\d.na]+),([\d.na]+),([\d.na]+),", text)
    if m:
        stats["tool_ap"], stats["tool_ap50"] = float(m[-1][0]), float(m[-1][1])
    return stats


# ------------------------------------------------------------------------------------------
# Evaluation: one pycocotools scorer for both
# ------------------------------------------------------------------------------------------


def _top(dets: List[dict]) -> List[dict]:
    return sorted(dets, key=lambda d: -d["score"])[:MAX_DETS]


def predict_ours(checkpoint: str, dicts: Sequence[dict], json_ids: Sequence[int], size: int) -> List[dict]:
    """COCO detections of our model (EMA weights via build_inference_model), original coords."""
    import torch

    from yolox_d2.data import YOLOXTestMapper
    from yolox_d2.engine.predictor import build_inference_model

    cfg = load_config()
    cfg.train.init_checkpoint = checkpoint
    cfg.train.device = "cpu"
    cfg.model.test_score_thresh = CONF_THRESH
    cfg.model.test_nms_thresh = NMS_THRESH
    cfg.model.max_detections_per_image = MAX_DETS
    cfg.model.test_square_size = size
    model = build_inference_model(cfg, device="cpu", fuse=False)
    mapper = YOLOXTestMapper(image_size=(size, size))
    out = []
    with torch.no_grad():
        for d in dicts:
            inst = model([mapper(d)])[0]["instances"].to("cpu")
            dets = []
            for box, score, cls in zip(
                inst.pred_boxes.tensor.tolist(), inst.scores.tolist(), inst.pred_classes.tolist()
            ):
                x0, y0, x1, y1 = box
                dets.append(
                    {"image_id": d["image_id"], "category_id": json_ids[cls], "bbox": [x0, y0, x1 - x0, y1 - y0], "score": score}
                )
            out += _top(dets)
    return out


def predict_official(checkpoint: str, dicts: Sequence[dict], json_ids: Sequence[int], size: int) -> List[dict]:
    """COCO detections of the official model (ValTransform + postprocess), original coords."""
    import cv2
    import torch
    from yolox.data.data_augment import ValTransform
    from yolox.utils import postprocess

    from official_train import build_official_model

    model = build_official_model(len(json_ids), checkpoint)
    transform = ValTransform(legacy=False)
    out = []
    with torch.no_grad():
        for d in dicts:
            img = cv2.imread(d["file_name"])
            if img is None:
                raise OSError(f"cannot read {d['file_name']}")
            tensor, _ = transform(img, None, (size, size))
            ratio = min(size / img.shape[0], size / img.shape[1])
            outputs = model(torch.from_numpy(tensor).unsqueeze(0))
            det = postprocess(outputs, len(json_ids), CONF_THRESH, NMS_THRESH, class_agnostic=False)[0]
            dets = []
            if det is not None:
                for row in det.tolist():  # x1, y1, x2, y2, obj, cls_conf, cls (input coords)
                    x0, y0, x1, y1 = (v / ratio for v in row[:4])
                    dets.append(
                        {
                            "image_id": d["image_id"],
                            "category_id": json_ids[int(row[6])],
                            "bbox": [x0, y0, x1 - x0, y1 - y0],
                            "score": row[4] * row[5],
                        }
                    )
            out += _top(dets)
    return out


def coco_ap(gt_json: str, detections: List[dict]) -> Dict[str, float]:
    """AP, AP50, AP75 (in %) of ``detections`` against ``gt_json`` (pycocotools, bbox)."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_json)
    if not detections:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "detections": 0}
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(detections)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.maxDets = [1, 10, MAX_DETS]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {
        "AP": 100 * float(ev.stats[0]),
        "AP50": 100 * float(ev.stats[1]),
        "AP75": 100 * float(ev.stats[2]),
        "detections": len(detections),
    }


def evaluate_both(ours_ckpt: str, official_ckpt: str, gt_json: str, size: int) -> Dict[str, Dict[str, float]]:
    """AP of both EMA models, each letterboxed to ``size`` (the trees config's training size, as
    our evaluation uses)."""
    from detectron2.data import DatasetCatalog

    with open(gt_json) as f:
        categories = sorted(c["id"] for c in json.load(f)["categories"])
    dicts = DatasetCatalog.get(VAL_DATASET)
    return {
        "ours": coco_ap(gt_json, predict_ours(ours_ckpt, dicts, categories, size)),
        "official": coco_ap(gt_json, predict_official(official_ckpt, dicts, categories, size)),
    }


# ------------------------------------------------------------------------------------------


def _fmt(v, digits=1) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


METRICS = ("AP", "AP50", "AP75")


def _sample_std(values: Sequence[float]) -> float:
    """The sample standard deviation (n - 1); nan for fewer than 2 values."""
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def aggregate_seeds(per_seed: Dict[int, Dict[str, Dict[str, float]]]) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Mean, sample std (n - 1), min and max over the seeds, per side and metric.

    Args:
        per_seed: ``seed -> {"ours": {"AP": ..., "AP50": ..., "AP75": ...}, "official": {...}}``.

    Returns:
        ``{"ours" | "official" | "diff": {metric: {"mean", "std", "min", "max", "n"}}}``, where
        ``diff`` is ours - official, seed by seed.
    """
    if not per_seed:
        raise ValueError("no seeds to aggregate")
    seeds = sorted(per_seed)
    series: Dict[str, Dict[str, List[float]]] = {"ours": {}, "official": {}, "diff": {}}
    for m in METRICS:
        series["ours"][m] = [float(per_seed[s]["ours"][m]) for s in seeds]
        series["official"][m] = [float(per_seed[s]["official"][m]) for s in seeds]
        series["diff"][m] = [o - f for o, f in zip(series["ours"][m], series["official"][m])]
    return {
        side: {
            m: {
                "mean": sum(v) / len(v),
                "std": _sample_std(v),
                "min": min(v),
                "max": max(v),
                "n": float(len(v)),
            }
            for m, v in metrics.items()
        }
        for side, metrics in series.items()
    }


def _mean_std(stat: Dict[str, float], digits: int = 1, signed: bool = False) -> str:
    sign = "+" if signed else ""
    text = f"{stat['mean']:{sign}.{digits}f}"
    if not math.isnan(stat["std"]):
        text += f" ± {stat['std']:.{digits}f}"
    return text


def accuracy_rows(per_seed: Dict[int, Dict[str, Dict[str, float]]], agg) -> List[List[str]]:
    """The report's rows: AP / AP50 / AP75 per seed, then mean ± sample std per metric."""
    rows = []
    for s in sorted(per_seed):
        o, f = per_seed[s]["ours"], per_seed[s]["official"]
        rows.append(
            [f"seed {s}: AP / AP50 / AP75"]
            + [" / ".join(_fmt(r[m]) for m in METRICS) for r in (o, f)]
            + [" / ".join(f"{o[m] - f[m]:+.1f}" for m in METRICS)]
        )
    n = len(per_seed)
    for m in METRICS:
        rows.append(
            [f"{m}, mean ± sample std ({n} seed{'s' if n > 1 else ''})"]
            + [_mean_std(agg[side][m]) for side in ("ours", "official")]
            + [_mean_std(agg["diff"][m], signed=True)]
        )
    return rows


def accuracy_figures(per_seed: Dict[int, Dict[str, Dict[str, float]]], agg) -> Dict[str, float]:
    """JSON figures: ``{ours,official}_{ap,ap50,ap75}`` (means over the seeds, the keys
    run_all.py's accuracy table reads), their ``_std`` / ``_min`` / ``_max``, ``diff_<metric>_mean``
    / ``_std`` (ours - official), per seed ``seed<N>_{ours,official}_<metric>`` and ``n_seeds``."""
    figures: Dict[str, float] = {"n_seeds": float(len(per_seed))}
    for side in ("ours", "official"):
        for m in METRICS:
            stat = agg[side][m]
            key = f"{side}_{m.lower()}"
            figures[key] = stat["mean"]
            for k in ("std", "min", "max"):
                figures[f"{key}_{k}"] = stat[k]
    for m in METRICS:
        figures[f"diff_{m.lower()}_mean"] = agg["diff"][m]["mean"]
        figures[f"diff_{m.lower()}_std"] = agg["diff"][m]["std"]
    for s in sorted(per_seed):
        for side in ("ours", "official"):
            for m in METRICS:
                figures[f"seed{s}_{side}_{m.lower()}"] = float(per_seed[s][side][m])
    return figures


def _mean(values: Sequence[float]):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    import yolox_d2  # noqa: F401  (registers the datasets)

    machine = machine_info()  # load average before the trainings
    cfg = load_config()
    sched = schedule(cfg, args.iters)
    out = os.path.abspath(args.output_dir)
    train_json = os.path.join(out, "official_data", "annotations", "trees_train.json")
    gt_json = os.path.join(out, "val_gt.json")
    os.makedirs(out, exist_ok=True)
    n_train = write_train_json(train_json)  # also builds the tile cache once, before the children
    write_val_gt_json(gt_json)
    print(f"schedule: {json.dumps(sched)}\n{n_train} training tiles, seeds {args.seeds}", flush=True)

    per_seed: Dict[int, Dict[str, Dict[str, float]]] = {}
    walls, ours_all, official_all = {}, {}, {}
    for seed in args.seeds:  # one pair of trainings at a time
        seed_dir = os.path.join(out, f"seed{seed}")
        ours_dir, official_dir = os.path.join(seed_dir, "yolox_d2"), os.path.join(seed_dir, "official")
        wall = {}
        if not args.eval_only:
            for d in (ours_dir, official_dir):  # a fresh start (logs are appended to otherwise)
                shutil.rmtree(d, ignore_errors=True)
            print(f"---- seed {seed}", flush=True)
            wall = run_concurrently(
                {
                    "yolox_d2": (ours_command(sched, ours_dir, seed), os.path.join(seed_dir, "yolox_d2_stdout.txt")),
                    "official": (
                        official_command(sched, official_dir, train_json, seed, args.threads),
                        os.path.join(seed_dir, "official_stdout.txt"),
                    ),
                },
                args.threads,
                args.nice,
            )
        walls[seed] = wall
        ours_all[seed] = ours_train_stats(ours_dir)
        official_all[seed] = {}
        try:
            with open(os.path.join(official_dir, "summary.json")) as f:
                official_all[seed] = json.load(f)
        except OSError:
            pass
        per_seed[seed] = evaluate_both(
            os.path.join(ours_dir, "model_final.pth"), os.path.join(official_dir, "final_ema.pth"), gt_json,
            sched["input_size"],
        )
        print(f"seed {seed}: {json.dumps(per_seed[seed])}", flush=True)

    agg = aggregate_seeds(per_seed)
    n = sched["iters"]
    seeds_text = ", ".join(str(s) for s in args.seeds)
    wall_ours = _mean([w.get("yolox_d2") for w in walls.values()])
    wall_official = _mean([w.get("official") for w in walls.values()])
    spi_ours = _mean([st.get("s_per_iter") for st in ours_all.values()])
    spi_official = _mean([st.get("s_per_iter") for st in official_all.values()])
    rows = accuracy_rows(per_seed, agg) + [
        ["training wall time (s, concurrent; mean over seeds)", _fmt(wall_ours, 0), _fmt(wall_official, 0), ""],
        ["s / iteration (concurrent; mean over seeds)", _fmt(spi_ours, 3), _fmt(spi_official, 3), ""],
    ]
    notes = [
        f"YOLOX-Nano from scratch on `{TRAIN_DATASET}` ({n_train} tiles of 400x400 after Detectron2's "
        f"empty-image filter, the same for both), {n} iterations of batch {sched['batch']}, lr "
        f"{sched['lr']:g} (quadratic warm-up {sched['warmup_fraction'] * n:g} it, cosine, constant tail "
        f"{sched['no_aug_fraction'] * n:g} it), multi-scale {32 * sched['random_size'][0]}-"
        f"{32 * sched['random_size'][1]} every 10 it, mosaic prob {sched['mosaic_prob']:g} / scale "
        f"{tuple(sched['mosaic_scale'])}, no MixUp, no-aug + L1 for the last {sched['no_aug_iters']} it, "
        f"EMA decay {sched['ema_decay']:g} (tau {sched['ema_tau']:g}); seeds {seeds_text}, one training pair "
        "per seed (both sides with that seed), one pair at a time.",
        "Spread: the sample standard deviation (n - 1) over the seeds; `ours − official` is the difference "
        "seed by seed, its mean ± sample std.",
        "ours: `tools/lazyconfig_train_net.py` with `configs/deepforest/yolox_nano_trees.py` (as `make demo`); "
        "official: `bench/official_train.py`, a CPU port of the official Trainer loop with the official "
        "Exp / data pipeline / optimizer / LR scheduler / ModelEMA (yolox 0.3.0).",
        f"Scored by one pycocotools COCOeval on `{VAL_DATASET}` (16 tiles, 546 boxes; split by source photo), "
        f"EMA weights, test size {sched['input_size']}, conf {CONF_THRESH}, NMS {NMS_THRESH}, <= {MAX_DETS} detections "
        "per image, each side's own preprocessing and decoding.",
        "Both trainings of a seed ran at the same time on the same machine, one torch thread each: the times "
        "are informative (contended), not a speed benchmark.",
        "From-scratch training of a few hundred iterations on 63 tiles is noisy: read a difference between the "
        "sides against the spread over the seeds.",
    ]
    tool = [(s, st) for s, st in ours_all.items() if "tool_ap" in st]
    if tool:
        notes.append(
            "Cross-check: our tool's own end-of-training COCOEvaluator gave AP / AP50 "
            + ", ".join(f"{st['tool_ap']:.1f} / {st['tool_ap50']:.1f} (seed {s})" for s, st in tool)
            + "."
        )
    losses = [(s, st) for s, st in official_all.items() if "loss_first10" in st]
    if losses:
        notes.append(
            "Official training loss (mean of the first / last 10 iterations): "
            + ", ".join(f"{st['loss_first10']:.2f} -> {st['loss_last10']:.2f} (seed {s})" for s, st in losses)
            + "."
        )
    figures = accuracy_figures(per_seed, agg)
    figures["iters"] = float(n)
    for key, value in (
        ("ours_s_per_iter", spi_ours),
        ("official_s_per_iter", spi_official),
        ("ours_train_wall_s", wall_ours),
        ("official_train_wall_s", wall_official),
    ):
        if value is not None:
            figures[key] = value
    report = Report(
        title=f"Accuracy: YOLOX-Nano trained on the deepforest trees, {len(args.seeds)} seed(s) (yolox_d2 vs official)",
        command=command_line(),
        columns=["", "yolox_d2", "official", "ours − official"],
        rows=rows,
        notes=notes,
        machine=machine,
        figures=figures,
    )
    finish(report, args.json)


if __name__ == "__main__":
    main()
