#!/usr/bin/env python
"""
Run every side-by-side benchmark (yolox_d2 vs the official YOLOX 0.3.0) and write
``bench/RESULTS.md``: the figures, the targets they are held to, the machine, the versions and
the command behind each figure::

    python bench/run_all.py                      # everything, CPU, 2 threads (~80 minutes on 2 cores)
    python bench/run_all.py --skip accuracy      # timings only (~22 minutes)
    python bench/run_all.py --device cuda        # GPU timings (fp16 forward, batch 1 and 32)

Each benchmark runs in its own process, one after the other (never two at once: they would
slow each other down); run it on an otherwise idle machine (``uptime`` well under the core
count). The accuracy comparison (``bench/accuracy_trees.py``: both implementations trained on
the deepforest tree tiles, scored by the same pycocotools code) runs last; for each of its seeds
(0 1 2) it trains the two sides concurrently, one thread each, about 18 minutes per seed
(``--extra 'accuracy=--seeds 0'`` for one seed).
"""
import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

import benchlib
from benchlib import REPO_ROOT

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))

# name -> (script, takes run_all's --threads, extra args on CUDA (None: CPU only)). The accuracy
# run keeps its own default: two trainings at once, one thread each.
BENCHMARKS: Dict[str, Tuple[str, bool, Optional[List[str]]]] = {
    "forward": ("bench_forward.py", True, ["--device", "cuda"]),
    "predictor": ("bench_predictor.py", True, None),
    "train_step": ("bench_train_step.py", True, ["--device", "cuda"]),
    "simota": ("bench_simota.py", True, None),
    "data": ("bench_data.py", True, None),
    "coco_eval": ("bench_coco_eval.py", True, None),
    "deploy": ("bench_deploy.py", True, None),
    "slicing_tta": ("bench_slicing_tta.py", True, None),
    "train_loop": ("bench_train_loop.py", True, None),
    "accuracy": ("accuracy_trees.py", False, None),
}

#: ``make demo``'s trained checkpoint. The benchmarks that score a trained model get it as
#: ``--checkpoint`` when it exists; those marked True need it and are left out (said so) without.
DEMO_CHECKPOINT = os.path.join(REPO_ROOT, "output", "yolox_nano_trees", "model_final.pth")
CHECKPOINT_BENCHMARKS: Dict[str, bool] = {"deploy": False, "slicing_tta": True}

# (benchmark, figure, description, comparison, threshold): the targets of issues #4 and #14, on
# the CPU (#14 tightened the S forward and the batch 2 / 10 gts step from 0.7 / 0.8 to 0.6).
TARGETS: List[Tuple[str, str, str, str, float]] = [
    ("forward", "s_plain_b1_ratio", "S@640 forward, plain BN: ours / official time", "<=", 0.6),
    ("forward", "s_fused_b1_ratio", "S@640 forward, fused BN: ours / official time", "<=", 0.6),
    ("simota", "legacy_b8_g50_speedup", "SimOTA 2021 rule, batch 8 x 50 gts: official / ours time", ">=", 10.0),
    ("simota", "2023_b8_g50_speedup", "SimOTA 2023 rule, batch 8 x 50 gts: official / ours time", ">=", 3.0),
    ("train_step", "b2_g10_ratio", "S@640 training iteration, batch 2, 10 gts: ours / official time", "<=", 0.6),
    ("train_step", "b2_g50_ratio", "S@640 training iteration, batch 2, 50 gts: ours / official time", "<=", 0.8),
    ("train_step", "b4_g10_ratio", "S@640 training iteration, batch 4, 10 gts: ours / official time", "<=", 0.8),
    ("train_step", "b4_g50_ratio", "S@640 training iteration, batch 4, 50 gts: ours / official time", "<=", 0.8),
    ("data", "speedup_workers0", "Data pipeline, 0 workers: ours / official images/s", ">=", 1.5),
    ("data", "speedup_workers1", "Data pipeline, 1 worker: ours / official images/s", ">=", 1.5),
    ("data", "speedup_workers2", "Data pipeline, 2 workers: ours / official images/s", ">=", 1.5),
    ("data", "speedup_cached_workers0", "Data pipeline, RAM cache, 0 workers: ours / official (cached) images/s", ">=", 2.5),
    ("data", "speedup_cached_workers1", "Data pipeline, RAM cache, 1 worker: ours / official (cached) images/s", ">=", 2.5),
    ("data", "speedup_cached_workers2", "Data pipeline, RAM cache, 2 workers: ours / official (cached) images/s", ">=", 2.5),
    ("coco_eval", "coco_eval_speedup", "COCO scoring, COCO-val size: pycocotools / faster-coco-eval time", ">=", 5.0),
    ("deploy", "s_ort_int8_speedup", "S@640 onnxruntime: fp32 / INT8 time", ">=", 1.8),
    ("deploy", "yolox_nano_trees_onnxruntime_int8_ap50_loss_vs_pytorch", "Trees model, onnxruntime INT8: AP50 lost against PyTorch", "<=", 1.0),
    ("deploy", "s_ov_int8_speedup", "S@640: onnxruntime fp32 / OpenVINO INT8 time", ">=", 1.8),
    ("deploy", "yolox_nano_trees_openvino_int8_ap50_loss_vs_pytorch", "Trees model, OpenVINO INT8: AP50 lost against PyTorch", "<=", 1.0),
    ("slicing_tta", "photo_sliced_minus_whole_ap", "Full validation photo: sliced AP minus whole-image AP", ">", 0.0),
    ("train_loop", "nano_loop_ratio", "Nano@416 training loop, batch 8, 2 workers: ours / official images/s", ">=", 1.5),
    ("train_loop", "nano_pss_ratio", "Nano@416 training loop: ours / official peak memory (PSS, process tree)", "<=", 1.0),
    ("train_loop", "s_loop_ratio", "S@640 training loop, batch 8, 2 workers: ours / official images/s", ">=", 1.5),
    ("train_loop", "s_pss_ratio", "S@640 training loop: ours / official peak memory (PSS, process tree)", "<=", 1.0),
]


def get_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="intra-op threads for both sides")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    p.add_argument("--skip", nargs="+", choices=sorted(BENCHMARKS), default=[], help="skip these")
    p.add_argument("--output", default=os.path.join(BENCH_DIR, "RESULTS.md"))
    p.add_argument(
        "--extra", action="append", default=[], metavar="NAME=ARGS",
        help="extra arguments for one benchmark, e.g. --extra 'accuracy=--iters 500'",
    )
    return p


def _check(value: float, comparison: str, threshold: float) -> bool:
    checks = {"<=": value <= threshold, ">=": value >= threshold, ">": value > threshold}
    return checks[comparison]


def target_table(reports: Dict[str, dict]) -> List[str]:
    """The markdown rows of the targets summary (missing benchmarks are marked as such)."""
    lines = ["| target | required | measured | met |", "|---|---|---|---|"]
    for bench, figure, text, comparison, threshold in TARGETS:
        report = reports.get(bench)
        value = None if report is None else report.get("figures", {}).get(figure)
        if value is None:
            lines.append(f"| {text} | {comparison} {threshold:g} | not run | — |")
            continue
        met = "yes" if _check(value, comparison, threshold) else "**no**"
        lines.append(f"| {text} | {comparison} {threshold:g} | {value:.3f} | {met} |")
    return lines


def accuracy_table(report: Optional[dict]) -> List[str]:
    """The accuracy summary of RESULTS.md: mean ± sample std over the seeds (a single-seed
    report: the values alone), and the difference ours - official."""
    if not report:
        return []
    f = report.get("figures", {})
    keys = ("official_ap", "official_ap50", "ours_ap", "ours_ap50")
    if not all(k in f for k in keys):
        return []

    def cell(key: str, signed: bool = False) -> str:
        text = f"{f[key]:{'+' if signed else ''}.1f}"
        std = f.get(key[: -len("_mean")] + "_std" if key.endswith("_mean") else key + "_std")
        if std is not None and not math.isnan(std):
            text += f" ± {std:.1f}"
        return text

    n = int(f.get("n_seeds", 1))
    metrics = ["ap", "ap50"] + (["ap75"] if "ours_ap75" in f and "official_ap75" in f else [])
    header = "mean ± sample std" if n > 1 else "one seed"
    lines = [
        f"| trees (deepforest), same schedule, {n} seed{'s' if n > 1 else ''} ({header}) | "
        + " | ".join(m.upper() for m in metrics) + " |",
        "|---|" + "---|" * len(metrics),
        "| official YOLOX 0.3.0 | " + " | ".join(cell(f"official_{m}") for m in metrics) + " |",
        "| yolox_d2 | " + " | ".join(cell(f"ours_{m}") for m in metrics) + " |",
    ]
    if all(f"diff_{m}_mean" in f for m in metrics):
        lines.append("| yolox_d2 − official | " + " | ".join(cell(f"diff_{m}_mean", signed=True) for m in metrics) + " |")
    return lines


def compose(reports: Dict[str, dict], failures: Dict[str, str], machine: Dict[str, str], command: str,
            durations: Dict[str, float]) -> str:
    """The text of RESULTS.md."""
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    out = [
        "# yolox_d2 vs the official YOLOX: side-by-side benchmarks",
        "",
        f"Written by `{command}` on {now}; every figure below comes from this one run. The",
        "benchmarks run one after another, each in its own process; within a benchmark the two",
        "implementations alternate call by call on the same inputs with the same thread count.",
        "Ratios are of medians.",
        "",
        "## Machine",
        "",
    ]
    out += [f"- {k}: {v}" for k, v in machine.items()]
    out += ["", "## Targets (issues #4 and #14)", ""] + target_table(reports)
    acc = accuracy_table(reports.get("accuracy"))
    if acc:
        out += ["", "## Accuracy side by side", ""] + acc
    if failures:
        out += ["", "## Benchmarks that failed", ""]
        out += [f"- `{name}`: {msg}" for name, msg in failures.items()]
    out += ["", "## Figures", ""]
    for name in BENCHMARKS:
        if name in reports:
            r = reports[name]
            text = benchlib.Report(**{k: r[k] for k in ("title", "command", "columns", "rows", "notes")}).markdown()
            out += [text, f"_(ran in {durations.get(name, 0):.0f} s; load average {r.get('machine', {}).get('load average (1 min) at start', '?')} → {r.get('machine', {}).get('load average (1 min) at end', '?')})_", ""]
    return "\n".join(out) + "\n"


def run_one(name: str, args, workdir: str, extra: List[str], log: Callable[[str], None]) -> Tuple[Optional[dict], str, float]:
    script, takes_threads, cuda_args = BENCHMARKS[name]
    json_path = os.path.join(workdir, f"{name}.json")
    cmd = [sys.executable, os.path.join(BENCH_DIR, script), "--json", json_path]
    if takes_threads:
        cmd += ["--threads", str(args.threads)]
    if args.device == "cuda":
        cmd += cuda_args
    cmd += extra
    log(f"[run_all] {name}: {' '.join(os.path.relpath(c, REPO_ROOT) if c.startswith(REPO_ROOT) else c for c in cmd)}")
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    log_path = os.path.join(os.path.dirname(args.output), "logs", f"{name}.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "w") as f:
        f.write(proc.stdout + "\n---- stderr ----\n" + proc.stderr)
    if proc.returncode != 0 or not os.path.exists(json_path):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"exit code {proc.returncode} after {elapsed:.0f} s ({tail[0]}); log: {os.path.relpath(log_path, REPO_ROOT)}", elapsed
    with open(json_path) as f:
        return json.load(f), "", elapsed


def with_demo_checkpoint(names: List[str], extra: Dict[str, List[str]], checkpoint: str, log) -> List[str]:
    """Give the benchmarks of :data:`CHECKPOINT_BENCHMARKS` ``--checkpoint checkpoint`` (unless
    ``extra`` already does); without the file, drop those that need it. Returns the names kept."""
    if os.path.isfile(checkpoint):
        for name in CHECKPOINT_BENCHMARKS:
            if name in names and "--checkpoint" not in extra.get(name, []):
                extra.setdefault(name, []).extend(["--checkpoint", checkpoint])
        return names
    dropped = [n for n in names if CHECKPOINT_BENCHMARKS.get(n) and "--checkpoint" not in extra.get(n, [])]
    if dropped:
        log(f"[run_all] no trained checkpoint at {os.path.relpath(checkpoint, REPO_ROOT)} (run `make demo` first): leaving out {', '.join(dropped)}")
    return [n for n in names if n not in dropped]


def main(argv=None):
    args = get_parser().parse_args(argv)
    extra: Dict[str, List[str]] = {}
    for item in args.extra:
        name, _, rest = item.partition("=")
        if name not in BENCHMARKS:
            raise SystemExit(f"--extra {item!r}: unknown benchmark {name!r} (one of {sorted(BENCHMARKS)})")
        extra.setdefault(name, []).extend(rest.split())
    names = [n for n in (args.only or BENCHMARKS) if n not in args.skip]
    if args.device == "cuda":
        names = [n for n in names if BENCHMARKS[n][2] is not None]
    names = with_demo_checkpoint(names, extra, DEMO_CHECKPOINT, print)
    benchlib.set_threads(args.threads)
    machine = benchlib.machine_info()
    reports, failures, durations = {}, {}, {}
    with tempfile.TemporaryDirectory() as workdir:
        for name in names:
            report, error, durations[name] = run_one(name, args, workdir, extra.get(name, []), print)
            if report is None:
                failures[name] = error
                print(f"[run_all] {name} FAILED: {error}", flush=True)
            else:
                reports[name] = report
                print(benchlib.Report(**{k: report[k] for k in ("title", "command", "columns", "rows", "notes")}).markdown(), flush=True)
    machine["load average (1 min) at end"] = f"{os.getloadavg()[0]:.2f}"
    command = " ".join(["python", os.path.relpath(os.path.abspath(sys.argv[0]), REPO_ROOT), *sys.argv[1:]])
    text = compose(reports, failures, machine, command, durations)
    with open(args.output, "w") as f:
        f.write(text)
    print("\n".join(target_table(reports)))
    print(f"[run_all] wrote {os.path.relpath(args.output, REPO_ROOT)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
