#!/usr/bin/env python
"""
COCO box AP scoring alone: pycocotools ``COCOeval`` (what Detectron2's ``COCOEvaluator`` runs
when its compiled ``COCOeval_opt`` does not load, as with the pip wheels) vs faster-coco-eval
(``yolox_d2.evaluation.evaluate_predictions_with_faster_coco_eval``, what
``FasterCOCOEvaluator`` runs), on the same ground truth and results, alternating (ABBA)::

    python bench/bench_coco_eval.py                 # COCO-val size: ~9 min on 2 idle cores
    python bench/bench_coco_eval.py --runs 1        # ~6 min
    python bench/bench_coco_eval.py --images 500    # ~1 min

Each timed call is what the evaluator does once the predictions are gathered: ``loadRes`` of
the results, then ``evaluate`` / ``accumulate`` / ``summarize`` at maxDets (1, 10, 100); the
ground truth is loaded once per side, untimed. Before timing, every summary metric and every
per-class AP of the two sides are checked to agree (to 1e-4 AP points).

The synthetic set is COCO-val-shaped (default 5,000 images, 80 classes, ~35,000 ground truths,
100 detections per image; fixed seed): 640 x 360..640 images, ~7 boxes per image (geometric),
box sides log-uniform 4..500 px (so small / medium / large are all populated), skewed class
frequencies, 1% crowd boxes; detections are jittered ground truths (1-3 each, now and then of
another class) with high scores plus false positives with low scores.
"""
import argparse
import contextlib
import copy
import io
import sys
import time
from typing import Callable, Dict, List

import numpy as np

from benchlib import Report, Stats, add_common_args, alternate, command_line, finish, machine_info, set_threads

METRICS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


# ---------------------------------------------------------------------- data
def make_coco_set(num_images: int, dets_per_image: int, num_classes: int = 80, seed: int = 0):
    """A COCO-format ground-truth dict and a result list (XYWH boxes), reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    class_p = 1.0 / np.arange(1, num_classes + 1) ** 0.8
    class_p /= class_p.sum()
    images, annotations, results = [], [], []
    for img_id in range(1, num_images + 1):
        w, h = 640, int(rng.integers(360, 641))
        images.append({"id": img_id, "width": w, "height": h, "file_name": f"{img_id:012d}.jpg"})
        n = min(int(rng.geometric(1 / 8.3)) - 1, dets_per_image // 3)
        side = np.exp(rng.uniform(np.log(4), np.log(500), n))
        aspect = np.exp(rng.normal(0, 0.5, n))
        bw, bh = np.minimum(side * np.sqrt(aspect), w), np.minimum(side / np.sqrt(aspect), h)
        x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        cls = rng.choice(num_classes, n, p=class_p) + 1
        crowd = rng.random(n) < 0.01
        for i in range(n):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": img_id,
                    "category_id": int(cls[i]),
                    "bbox": [float(x0[i]), float(y0[i]), float(bw[i]), float(bh[i])],
                    "area": float(bw[i] * bh[i]),
                    "iscrowd": int(crowd[i]),
                }
            )
        # true-ish detections: 1-3 jittered copies per ground truth
        copies = rng.integers(1, 4, n)
        src = np.repeat(np.arange(n), copies)[:dets_per_image]
        k = len(src)
        jit = rng.normal(0, 0.1, (k, 4)) * np.stack([bw[src], bh[src], bw[src], bh[src]], 1)
        tx0, ty0 = x0[src] + jit[:, 0], y0[src] + jit[:, 1]
        tx1, ty1 = x0[src] + bw[src] + jit[:, 2], y0[src] + bh[src] + jit[:, 3]
        tcls = np.where(rng.random(k) < 0.1, rng.choice(num_classes, k, p=class_p) + 1, cls[src])
        tscore = rng.beta(4, 2, k)
        # false positives fill the image up to dets_per_image
        m = dets_per_image - k
        fs = np.exp(rng.uniform(np.log(4), np.log(300), m))
        fx0, fy0 = rng.uniform(-fs / 2, w - fs / 2), rng.uniform(-fs / 2, h - fs / 2)
        box = np.concatenate(
            [np.stack([tx0, ty0, tx1, ty1], 1), np.stack([fx0, fy0, fx0 + fs, fy0 + fs * np.exp(rng.normal(0, 0.4, m))], 1)]
        )
        box = np.clip(box, 0, [w, h, w, h])
        box[:, 2:] = np.maximum(box[:, 2:] - box[:, :2], 0.5)  # XYWH, never empty
        det_cls = np.concatenate([tcls, rng.choice(num_classes, m, p=class_p) + 1])
        score = np.concatenate([tscore, rng.beta(1, 4, m)])
        results += [
            {"image_id": img_id, "category_id": int(c), "bbox": [float(v) for v in b], "score": float(s)}
            for b, c, s in zip(box, det_cls, score)
        ]
    categories = [{"id": c, "name": f"class_{c}", "supercategory": "thing"} for c in range(1, num_classes + 1)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


# ---------------------------------------------------------------------- the two scorers
def pycocotools_scorer(gt_dict: Dict, results: List[Dict]) -> Callable:
    """Detectron2's ``_evaluate_predictions_on_coco`` with pycocotools' ``COCOeval`` (boxes)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt_dict)
        coco_gt.createIndex()
    results = copy.deepcopy(results)  # loadRes adds fields in place: each side its own copy

    def run():
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            coco_eval = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
            coco_eval.params.maxDets = [1, 10, 100]
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        return coco_eval

    return run


def faster_scorer(gt_dict: Dict, results: List[Dict]) -> Callable:
    """What ``FasterCOCOEvaluator`` runs."""
    from faster_coco_eval import COCO

    from yolox_d2.evaluation import evaluate_predictions_with_faster_coco_eval

    coco_gt = COCO(copy.deepcopy(gt_dict))
    results = copy.deepcopy(results)

    def run():
        return evaluate_predictions_with_faster_coco_eval(coco_gt, results, "bbox", max_dets_per_image=[1, 10, 100])

    return run


def metrics(coco_eval) -> Dict[str, float]:
    """The 12 summary metrics and the per-class APs, in AP points (as Detectron2 reports them)."""
    out = {name: float(coco_eval.stats[i]) * 100 for i, name in enumerate(METRICS)}
    precision = coco_eval.eval["precision"][:, :, :, 0, -1]  # (iou, recall, class), area all, 100 dets
    for k in range(precision.shape[2]):
        p = precision[:, :, k]
        out[f"AP-{k}"] = float(p[p > -1].mean()) * 100 if (p > -1).any() else float("nan")
    return out


def max_difference(a: Dict[str, float], b: Dict[str, float]) -> float:
    if a.keys() != b.keys():
        raise SystemExit(f"the two sides report different metrics: {sorted(a.keys() ^ b.keys())}")
    diffs = []
    for name in a:
        if np.isnan(a[name]) != np.isnan(b[name]):
            raise SystemExit(f"{name}: {a[name]} (faster-coco-eval) vs {b[name]} (pycocotools)")
        if not np.isnan(a[name]):
            diffs.append(abs(a[name] - b[name]))
    return max(diffs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=5000, help="images in the synthetic set")
    p.add_argument("--dets-per-image", type=int, default=100, help="detections per image")
    p.add_argument("--classes", type=int, default=80)
    p.add_argument("--seed", type=int, default=0)
    # the parity check is an untimed first round of both sides: no extra warm-up by default
    args = add_common_args(p, runs=2, warmup=0).parse_args()
    set_threads(args.threads)
    machine = machine_info()  # load average at the start
    from importlib.metadata import version

    machine["faster-coco-eval"] = version("faster-coco-eval")
    machine["pycocotools"] = version("pycocotools")

    start = time.perf_counter()
    gt_dict, results = make_coco_set(args.images, args.dets_per_image, args.classes, args.seed)
    print(
        f"[bench_coco_eval] {len(gt_dict['images'])} images, {len(gt_dict['annotations'])} ground truths, "
        f"{len(results)} detections ({time.perf_counter() - start:.1f} s to generate)",
        file=sys.stderr,
        flush=True,
    )
    runners = {"pycocotools": pycocotools_scorer(gt_dict, results), "faster-coco-eval": faster_scorer(gt_dict, results)}

    # Parity check (also the warm-up round): same metrics before anything is timed.
    check_times = {}
    scored = {}
    for name, run in runners.items():
        t0 = time.perf_counter()
        scored[name] = metrics(run())
        check_times[name] = time.perf_counter() - t0
        print(f"[bench_coco_eval] check round, {name}: {check_times[name]:.1f} s", file=sys.stderr, flush=True)
    diff = max_difference(scored["faster-coco-eval"], scored["pycocotools"])
    if diff > 1e-4:
        raise SystemExit(f"faster-coco-eval and pycocotools disagree by {diff:.2e} AP points")

    # CPU seconds too: on a shared machine they say what wall times under load may not
    cpu_times: Dict[str, List[float]] = {name: [] for name in runners}

    def cpu_timed(name: str, run: Callable) -> Callable:
        def timed_run():
            t0 = time.process_time()
            run()
            cpu_times[name].append(time.process_time() - t0)

        return timed_run

    times = alternate({name: cpu_timed(name, run) for name, run in runners.items()}, args.runs, args.warmup)
    st = {name: Stats.of(t, scale=1.0) for name, t in times.items()}
    cpu = {name: Stats.of(t[len(t) - args.runs :], scale=1.0) for name, t in cpu_times.items()}
    speedup = st["pycocotools"].median / st["faster-coco-eval"].median
    ref = scored["pycocotools"]
    rows = [
        [
            name,
            f"{args.images} x {args.dets_per_image}",
            str(st[name].n),
            st[name].fmt("", 2).strip(),
            f"{cpu[name].median:.2f}",
            f"{st['pycocotools'].median / st[name].median:.1f}x",
        ]
        for name in runners
    ]
    report = Report(
        title="COCO box AP scoring: pycocotools vs faster-coco-eval",
        command=command_line(),
        columns=["scorer", "images x dets/image", "runs", "time (s)", "CPU time (s)", "speed-up"],
        rows=rows,
        notes=[
            f"Synthetic COCO-shaped set: {len(gt_dict['images'])} images, {args.classes} classes, "
            f"{len(gt_dict['annotations'])} ground truths, {len(results)} detections (seed {args.seed}).",
            "Times: median (min–max) of `runs` alternating (ABBA) calls per side after an untimed parity "
            f"round ({check_times['pycocotools']:.1f} s / {check_times['faster-coco-eval']:.1f} s) and "
            f"{args.warmup} warm-up round(s); each call is loadRes + evaluate + accumulate + summarize. "
            "CPU time: median process CPU seconds of the same calls (both scorers run on one thread).",
            f"Same AP: the 12 summary metrics and {args.classes} per-class APs agree to {diff:.1e} AP points "
            f"(AP {ref['AP']:.3f}, AP50 {ref['AP50']:.3f}, APs {ref['APs']:.3f}, APl {ref['APl']:.3f}).",
        ],
        machine=machine,
        figures={
            "coco_eval_speedup": round(speedup, 3),
            "coco_eval_pycocotools_s": round(st["pycocotools"].median, 3),
            "coco_eval_faster_s": round(st["faster-coco-eval"].median, 3),
            "coco_eval_cpu_speedup": round(cpu["pycocotools"].median / cpu["faster-coco-eval"].median, 3),
            "coco_eval_max_ap_difference": diff,
        },
    )
    finish(report, args.json)


if __name__ == "__main__":
    main()
