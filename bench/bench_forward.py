#!/usr/bin/env python
"""
Inference forward, batch 1, fp32, eval mode: yolox_d2 vs the official YOLOX 0.3.0, side by
side, for Nano@416, Tiny@416 and S@640, each plain (BatchNorm as trained) and fused (BatchNorm
folded: ``YOLOX.fuse()`` vs the official ``yolox.utils.fuse_model``)::

    python bench/bench_forward.py                 # CPU, 2 threads
    python bench/bench_forward.py --device cuda   # GPU: fp16, batch 1 and 32

Both sides compute the same thing: the network plus box decoding, from a letterboxed 0-255
BGR tensor to the official ``(N, A, 5 + C)`` output (``YOLOXExportWrapper(model, "decoded",
box_format="cxcywh")`` for ours). The two models hold the same (random) weights, converted
from the official model; the script checks that the outputs agree before timing.

It also reports the achieved GFLOP/s of the S forward against this machine's measured fp32
GEMM peak (the faster of ``torch.mm`` (MKL) and a large 1x1 convolution (oneDNN), both with
the same thread count).
"""
import argparse
import copy
import pathlib
import sys

import torch

import benchlib
from benchlib import REPO_ROOT, Report, Stats, alternate, command_line, finish, set_threads

# (yolox_d2 variant, input size) in the order of the report
VARIANT_SIZES = [("nano", 416), ("tiny", 416), ("s", 640)]
# GFLOPs (2 x multiply-adds) of one YOLOX-S forward at 640, from fvcore on our model (the test
# tests/test_model_complexity.py checks the same count against docs/yolox_facts.md).
S_GFLOPS_AT_640 = 26.807


def get_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.add_common_args(p, runs=15, warmup=3)
    p.add_argument("--variants", nargs="+", default=[v for v, _ in VARIANT_SIZES])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    return p


def build_pair(variant: str, device: str):
    """(official model, our model) with the same random weights, eval mode."""
    from tests.official_reference import converted_pair

    official, ours = converted_pair(pathlib.Path(REPO_ROOT), variant)
    return official.to(device).eval(), ours.to(device).eval()


def decoded_runner(model):
    from yolox_d2.export import YOLOXExportWrapper

    return YOLOXExportWrapper(model, "decoded", box_format="cxcywh").eval()


def measure_peak_gflops(threads: int, runs: int = 10) -> dict:
    """Best fp32 GEMM throughput: MKL ``torch.mm`` and oneDNN 1x1 convolution (channels-last)."""
    set_threads(threads)
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = 512
    x = torch.randn(1, c, 80, 80).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, c, 1, 1).contiguous(memory_format=torch.channels_last)
    times = alternate(
        {"mm": lambda: torch.mm(a, b), "conv1x1": lambda: torch.nn.functional.conv2d(x, w)}, runs, 2
    )
    return {
        "torch.mm 2048^2 (MKL)": 2 * n**3 / min(times["mm"]) / 1e9,
        "1x1 conv 512->512 @80x80 (oneDNN)": 2 * c * c * 80 * 80 / min(times["conv1x1"]) / 1e9,
    }


def main(argv=None):
    args = get_parser().parse_args(argv)
    set_threads(args.threads)
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device")
    from yolox.utils import fuse_model

    rows, figures, notes = [], {}, []
    batches = [1] if device == "cpu" else [1, 32]
    dtype = torch.float32 if device == "cpu" else torch.float16
    for variant in args.variants:
        size = dict(VARIANT_SIZES).get(variant, 640)
        official, ours = build_pair(variant, device)
        pairs = {
            "plain": (official, ours),
            "fused": (fuse_model(copy.deepcopy(official)), copy.deepcopy(ours).fuse()),
        }
        for mode, (off_model, our_model) in pairs.items():
            if dtype != torch.float32:
                off_model, our_model = off_model.to(dtype), our_model.to(dtype)
            ours_run = decoded_runner(our_model)
            for batch in batches:
                x = (torch.rand(batch, 3, size, size, device=device) * 255).to(dtype)
                with torch.no_grad():
                    a, b = off_model(x), ours_run(x)
                    err = (a.float() - b.float()).abs().max().item()
                    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

                    def run_official():
                        off_model(x)
                        sync()

                    def run_ours():
                        ours_run(x)
                        sync()

                    times = alternate({"official": run_official, "ours": run_ours}, args.runs, args.warmup)
                so, su = Stats.of(times["official"]), Stats.of(times["ours"])
                r = su.median / so.median
                key = f"{variant}_{mode}_b{batch}_ratio"
                figures[key] = r
                rows.append([
                    f"{variant}@{size}", mode, str(batch), str(dtype).replace("torch.", ""),
                    so.fmt(), su.fmt(), f"**{r:.2f}x**", f"{err:.1e}",
                ])
                if variant == "s" and batch == 1:
                    gflops = S_GFLOPS_AT_640 * (size / 640) ** 2
                    figures[f"s_{mode}_gflops_per_s_ours"] = gflops / (su.median / 1e3)
                    figures[f"s_{mode}_gflops_per_s_official"] = gflops / (so.median / 1e3)

    columns = ["model", "BN", "batch", "dtype", "official ms: median (min–max)", "yolox_d2 ms", "ours / official", "max |Δ output|"]
    if device == "cpu" and "s" in args.variants:
        peaks = measure_peak_gflops(args.threads)
        peak = max(peaks.values())
        figures["matmul_peak_gflops"] = peak
        for name, value in peaks.items():
            notes.append(f"fp32 GEMM, {args.threads} threads, best of 10: {name} {value:.0f} GFLOP/s")
        for mode in ("plain", "fused"):
            ours_g = figures[f"s_{mode}_gflops_per_s_ours"]
            off_g = figures[f"s_{mode}_gflops_per_s_official"]
            figures[f"s_{mode}_peak_fraction_ours"] = ours_g / peak
            notes.append(
                f"S@640 {mode}, 26.8 GFLOPs per forward (median): yolox_d2 {ours_g:.0f} GFLOP/s = "
                f"{100 * ours_g / peak:.0f}% of the {peak:.0f} GFLOP/s GEMM peak; official "
                f"{off_g:.0f} GFLOP/s = {100 * off_g / peak:.0f}%"
            )
    notes.append(
        "Ours runs channels-last (NHWC) weights and input, the YOLOX default here "
        "(`YOLOX(channels_last=True)`); the official runs NCHW, as shipped."
    )
    report = Report(
        title=f"Inference forward, {device}, {args.threads} threads" if device == "cpu" else "Inference forward, CUDA",
        command=command_line(),
        columns=columns,
        rows=rows,
        notes=notes,
        figures=figures,
    )
    finish(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
