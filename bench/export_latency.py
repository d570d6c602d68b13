#!/usr/bin/env python
"""
Latency of an exported YOLOX in onnxruntime vs the same model in PyTorch (eager, fused,
``torch.no_grad``), on the CPU:

    python bench/export_latency.py                       # YOLOX-S, 640x640, batch 1, 2 threads
    python bench/export_latency.py --config-file configs/yolox_nano.py --size 416 --mode nms \\
        --opts train.init_checkpoint=output/yolox_nano_trees/model_final.pth

Both run the same graph (``YOLOXExportWrapper``, ``--mode``) on the same letterboxed photo,
with the same number of intra-op threads; runs alternate between the two so that a change of
machine load hits both alike. Reports the median (and min / p90) of ``--runs`` timed runs after
``--warmup`` untimed ones, and the load average before and after (a busy machine distorts
the numbers: run it when ``uptime`` shows a load well under the number of cores).
"""

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List

import cv2
import numpy as np
import torch

from detectron2.config import LazyConfig

import yolox_d2  # noqa: F401
from yolox_d2.engine.predictor import build_inference_model
from yolox_d2.export import (
    OUTPUT_MODES,
    YOLOXExportWrapper,
    export_onnx,
    letterbox_batch,
    onnxruntime_session,
    run_onnx,
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", default=os.path.join(REPO_ROOT, "configs", "yolox_s.py"))
    p.add_argument("--size", type=int, default=640, help="square input size (multiple of 32)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--threads", type=int, default=2, help="intra-op threads for both runtimes")
    p.add_argument("--runs", type=int, default=20, help="timed runs per runtime (>= 10)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--mode", choices=OUTPUT_MODES, default="decoded")
    p.add_argument("--image", help="photo to run on (default: scikit-image's astronaut, else random)")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides key=value")
    return p


def load_image(path: str) -> np.ndarray:
    if not path:
        try:
            import skimage

            path = os.path.join(skimage.data_dir, "astronaut.png")
        except ImportError:
            return np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot read image {path!r}")
    return image


def summary(times: List[float]) -> Dict[str, float]:
    ordered = sorted(times)
    return {
        "median": statistics.median(ordered) * 1e3,
        "min": ordered[0] * 1e3,
        "p90": ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))] * 1e3,
    }


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    if args.runs < 10:
        raise SystemExit("--runs must be >= 10")
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), ["train.device=cpu", *args.opts])
    model = build_inference_model(cfg, "cpu", fuse=True)
    wrapper = YOLOXExportWrapper(model, args.mode)
    batch, _ = letterbox_batch([load_image(args.image)] * args.batch_size, args.size)
    x = torch.from_numpy(batch)

    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(wrapper, os.path.join(tmp, "model.onnx"), sample_size=args.size)
        # No spinning: idle onnxruntime threads would otherwise busy-wait through the PyTorch
        # runs that alternate with them (measured: PyTorch 139 ms instead of 89 ms).
        session = onnxruntime_session(path, num_threads=args.threads, allow_spinning=False)

        def run_torch() -> None:
            with torch.no_grad():
                wrapper(x)

        def run_ort() -> None:
            run_onnx(session, batch)

        runners: Dict[str, Callable[[], None]] = {"pytorch": run_torch, "onnxruntime": run_ort}
        load_before = os.getloadavg()[0]
        for _ in range(args.warmup):
            for run in runners.values():
                run()
        times: Dict[str, List[float]] = {name: [] for name in runners}
        for _ in range(args.runs):
            for name, run in runners.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
        load_after = os.getloadavg()[0]

    import onnxruntime

    print(
        f"{os.path.basename(args.config_file)} {args.size}x{args.size} batch {args.batch_size}, "
        f"--mode {args.mode}, {args.threads} threads, {args.runs} runs after {args.warmup} warm-up "
        f"(torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"load average {load_before:.2f} -> {load_after:.2f})"
    )
    stats = {name: summary(t) for name, t in times.items()}
    for name, s in stats.items():
        print(f"  {name:12s} median {s['median']:8.1f} ms   min {s['min']:8.1f} ms   p90 {s['p90']:8.1f} ms")
    print(f"  speed-up (median): {stats['pytorch']['median'] / stats['onnxruntime']['median']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
