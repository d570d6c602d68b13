#!/usr/bin/env python
"""
GPU acceptance in one run: on a machine with one CUDA GPU, torch and the project's dependencies
installed and no network, finishes in a few minutes (under 8) and writes ``bench/RESULTS_GPU.md``::

    python bench/gpu_acceptance.py                          # one CUDA GPU
    python bench/gpu_acceptance.py --dry-run --output /tmp/RESULTS_GPU.md   # CPU, tiny sizes (CI)

Sections (each runs even when an earlier one failed; a missing piece skips only what needs it,
with the reason, and is listed at the top of the file):

1. ``amp``: mixed-precision training of YOLOX-S on the deepforest tree tiles (the training tool's
   :func:`~yolox_d2.engine.defaults.do_train`, ``train.amp.precision`` float16 then bfloat16,
   ``--iters`` iterations of batch 16 at 640 with multi-scale): finite and decreasing loss,
   images/s, peak CUDA memory, steps the gradient scaler skipped.
2. ``forward``: inference latency in float16 at batch 1 and 32 for S and L beside the official
   model on the same GPU (``bench/bench_forward.py --device cuda``).
3. ``simota``: SimOTA on CUDA against the official per-image loop (``bench/bench_simota.py``'s
   cases; the assignments are checked identical before timing).
4. ``tool``: ``tools/lazyconfig_train_net.py --num-gpus 1`` on the tree config with
   ``train.device=cuda`` (training, then COCO evaluation).
5. ``ddp``: the DDP wrapping of :func:`~yolox_d2.engine.create_ddp_model` on the GPU: two
   processes (gloo, as two machines of one GPU each) on the one device, wrapped with
   ``device_ids=[0]``, gradients identical on the two ranks after the backward pass.
6. ``export``: ``tools/export_model.py`` to ONNX with ``--verify`` (onnxruntime against PyTorch).
   Traced on the CPU: the graph does not depend on the device and onnxruntime runs on the CPU
   (a CUDA trace would compare TF32 convolutions with CPU ones).

``--dry-run`` runs the same code on the CPU at tiny sizes and iteration counts (nothing it
measures means anything; it keeps the script from rotting). Exit status 0 when every section
passed, 1 otherwise.
"""
import argparse
import contextlib
import importlib.util
import io
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch

import benchlib
from benchlib import REPO_ROOT, Stats, machine_info

SECTIONS = ("amp", "forward", "simota", "tool", "ddp", "export")
TREES_CFG = os.path.join("configs", "deepforest", "yolox_nano_trees.py")


class Skipped(Exception):
    """A section cannot run here (the message says what is missing)."""


@dataclass
class Section:
    name: str
    title: str
    status: str = "not run"  # "passed" / "FAILED" / "skipped"
    lines: List[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Settings:
    """What the sections run at: the real sizes on CUDA, tiny ones on the CPU with --dry-run."""

    device: str
    dry_run: bool
    iters: int
    workdir: str

    @property
    def train_size(self) -> int:
        return 64 if self.dry_run else 640

    @property
    def train_batch(self) -> int:
        return 2 if self.dry_run else 16


def _table(columns: List[str], rows: List[List[str]]) -> List[str]:
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + [
        "| " + " | ".join(str(c) for c in row) + " |" for row in rows
    ]


def _run(cmd: List[str], timeout: float) -> subprocess.CompletedProcess:
    path = os.pathsep.join([REPO_ROOT, os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=path)
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def _tail(proc: subprocess.CompletedProcess, n: int = 1500) -> str:
    return (proc.stdout + proc.stderr)[-n:].replace("|", "\\|")


def _read_metrics(output_dir: str) -> List[dict]:
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return [json.loads(line) for line in f if line.strip()]


def _require_trees() -> None:
    from detectron2.data import DatasetCatalog

    import yolox_d2  # noqa: F401  (registers the tree datasets)

    try:
        DatasetCatalog.get("deepforest_trees_train")
    except Exception as e:  # noqa: BLE001 - any failure means: no tree tiles here
        raise Skipped(f"the deepforest tree tiles are not available ({type(e).__name__}: {e})") from e


def _require_official() -> None:
    if importlib.util.find_spec("yolox") is None:
        raise Skipped("the official YOLOX is not installed (pip install --no-deps yolox==0.3.0)")


# ---------------------------------------------------------------------- 1. AMP training
def _amp_config(s: Settings, precision: str, output_dir: str):
    from detectron2.config import LazyConfig

    cfg = LazyConfig.load(os.path.join(REPO_ROOT, "configs", "yolox_s.py"))
    size = s.train_size
    cfg = LazyConfig.apply_overrides(
        cfg,
        [
            "model.num_classes=1",
            "dataloader.train.dataset.dataset_dicts.names=deepforest_trees_train",
            f"dataloader.train.dataset.image_size=[{size},{size}]",
            f"dataloader.test.mapper.image_size=[{size},{size}]",
            f"dataloader.train.total_batch_size={s.train_batch}",
            f"dataloader.train.num_workers={0 if s.dry_run else 4}",
            f"train.device={s.device}",
            "train.seed=0",
            f"train.max_iter={s.iters}",
            "train.no_aug_iters=0",  # the L1 term would change the loss being compared
            f"train.checkpointer.period={s.iters}",
            "train.eval_period=0",
            "train.log_period=1",
            f"train.multiscale.enabled={not s.dry_run}",
            "train.amp.enabled=True",
            f"train.amp.precision={precision}",
            f"train.output_dir={output_dir}",
        ],
    )
    del cfg.dataloader.evaluator  # training only
    return cfg


def section_amp(s: Settings) -> List[str]:
    from yolox_d2.engine.defaults import do_train

    _require_trees()
    rows, failures = [], []
    for precision in ("float16", "bfloat16"):
        if s.device == "cuda" and precision == "bfloat16" and not torch.cuda.is_bf16_supported():
            rows.append([precision, "skipped: this GPU has no bfloat16 (torch.cuda.is_bf16_supported())"] + [""] * 7)
            continue
        out = os.path.join(s.workdir, f"amp_{precision}")
        if s.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        torch.manual_seed(0)
        start = time.perf_counter()
        do_train(_amp_config(s, precision, out), resume=False)
        wall = time.perf_counter() - start
        peak = f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if s.device == "cuda" else "n/a (CPU)"
        if s.device == "cuda":
            torch.cuda.empty_cache()
        metrics = _read_metrics(out)
        steps = [m for m in metrics if "total_loss" in m]
        losses = [m["total_loss"] for m in steps]
        tenth = max(len(losses) // 10, 1)
        first, last = statistics.mean(losses[:tenth]), statistics.mean(losses[-tenth:])
        finite = all(math.isfinite(v) for v in losses)
        decreasing = last < first
        times = [m["time"] for m in steps[len(steps) // 2 :] if "time" in m]
        step_time = statistics.median(times) if times else float("nan")
        skipped = int(steps[-1].get("amp/skipped_steps", 0))
        rows.append([
            precision, str(len(losses)), f"{first:.3f} → {last:.3f}", "yes" if finite else "**no**",
            "yes" if decreasing else ("n/a (dry run)" if s.dry_run else "**no**"),
            f"{s.train_batch / step_time:.1f}" if step_time > 0 else "n/a", peak, str(skipped), f"{wall:.0f} s",
        ])
        if not finite or (not decreasing and not s.dry_run):
            failures.append(f"{precision}: loss finite={finite}, decreasing={decreasing}")
    lines = _table(
        ["precision", "iterations", "loss (first → last tenth)", "finite", "decreasing", "images/s",
         "peak CUDA memory", "steps skipped by the scaler", "wall"],
        rows,
    )
    lines.append("")
    lines.append(
        f"YOLOX-S from scratch, {s.train_batch} images of {s.train_size} px per iteration"
        + (" with multi-scale (480-800)" if not s.dry_run else "")
        + "; images/s from the median iteration time of the second half; loss values are"
        " Detectron2's 20-iteration medians."
    )
    if failures:
        raise AssertionError("; ".join(failures) + "\n\n" + "\n".join(lines))
    return lines


# ---------------------------------------------------------------------- 2. forward latency
def section_forward(s: Settings) -> List[str]:
    import bench_forward

    _require_official()
    json_path = os.path.join(s.workdir, "forward.json")
    argv = ["--device", s.device]
    if s.dry_run:
        argv += ["--variants", "nano", "--runs", "1", "--warmup", "0", "--threads", "1"]
    else:
        argv += ["--variants", "s", "l"]
    threads = torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            bench_forward.main(argv + ["--json", json_path])
    finally:
        torch.set_num_threads(threads)  # bench_forward sets its own
    with open(json_path) as f:
        report = json.load(f)
    return [f"`python bench/bench_forward.py {' '.join(argv)}`", ""] + _table(report["columns"], report["rows"]) + [
        "", *[f"- {n}" for n in report["notes"]]
    ]


# ---------------------------------------------------------------------- 3. SimOTA
def section_simota(s: Settings) -> List[str]:
    import bench_simota

    from yolox_d2.modeling.simota import SimOTAMatcher

    _require_official()
    device = torch.device(s.device)
    sync = torch.cuda.synchronize if s.device == "cuda" else (lambda: None)
    keys = [(1, 5)] if s.dry_run else [(8, 50), (16, 100)]
    runs, warmup = (1, 0) if s.dry_run else (10, 2)
    rows = []
    matcher = SimOTAMatcher(rule="legacy")
    for b, g in keys:
        case = bench_simota.make_case(1000 * b + g, b, g)
        case = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in case.items()}
        inputs = bench_simota.ours_inputs(case)
        official_once = bench_simota.official_legacy_runner(case)
        ref = [None if r is None else (r[1], r[3]) for r in official_once()]
        bench_simota.check_same(matcher(*inputs), ref, "legacy", b, g)

        def ours():
            matcher(*inputs)
            sync()

        def official():
            official_once()
            sync()

        runners = {"ours": bench_simota.timed(ours), "official": bench_simota.timed(official)}
        t = bench_simota.alternate_timed(runners, runs, warmup)
        so, sr = Stats.of(t["ours"]), Stats.of(t["official"])
        rows.append([f"{b} x {g}", str(so.n), so.fmt(), sr.fmt(), f"{sr.median / so.median:.1f}x"])
    return _table(["batch x gts", "runs", "yolox_d2 (batched)", "official (per-image loop)", "speed-up"], rows) + [
        "",
        f"2021 rule (yolox 0.3.0 `get_assignments`), 640x640 (8400 anchors), 80 classes, on {s.device}; "
        "the assignments (fg mask, matched gt) were checked identical first.",
    ]


# ---------------------------------------------------------------------- 4. training tool
def section_tool(s: Settings) -> List[str]:
    _require_trees()
    out = os.path.join(s.workdir, "tool")
    size = 96 if s.dry_run else 416
    cmd = [
        sys.executable, os.path.join(REPO_ROOT, "tools", "lazyconfig_train_net.py"),
        "--config-file", os.path.join(REPO_ROOT, TREES_CFG), "--num-gpus", "1",
        "train.device=cuda",  # on the CPU (dry run): the fall-back with its warning
        f"train.max_iter={2 if s.dry_run else 50}", "train.seed=0", "train.log_period=1",
        f"dataloader.train.dataset.image_size=[{size},{size}]", f"dataloader.test.mapper.image_size=[{size},{size}]",
        f"model.test_square_size={size}", "model.test_score_thresh=0.0",
        f"train.multiscale.enabled={not s.dry_run}", f"train.output_dir={out}",
    ]
    if s.dry_run:
        cmd += ["dataloader.train.total_batch_size=2", "dataloader.train.num_workers=0"]
    start = time.perf_counter()
    proc = _run(cmd, timeout=300)
    wall = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise AssertionError(f"exit status {proc.returncode}:\n\n```\n{_tail(proc)}\n```")
    metrics = _read_metrics(out)
    losses = [m["total_loss"] for m in metrics if "total_loss" in m]
    ap50 = [m["bbox/AP50"] for m in metrics if "bbox/AP50" in m]
    if not losses or not all(math.isfinite(v) for v in losses) or "Evaluation results for bbox" not in log:
        raise AssertionError(f"no finite losses or no evaluation:\n\n```\n{_tail(proc)}\n```")
    fallback = "CUDA is not available: running on the CPU" in log
    return [
        f"`{' '.join(['python', 'tools/lazyconfig_train_net.py'] + cmd[2:]).replace(REPO_ROOT + os.sep, '')}`",
        "",
        f"- exit status 0 in {wall:.0f} s; {len(losses)} iterations, last loss {losses[-1]:.3f}, AP50 after "
        f"training {ap50[-1] if ap50 else float('nan'):.1f} (a few iterations from scratch: only the path is checked)",
        f"- device: {'CPU (fell back: no CUDA, one warning)' if fallback else 'cuda'}",
    ]


# ---------------------------------------------------------------------- 5. DDP wrapping
def _ddp_batch(rank: int, device: str) -> List[dict]:
    from detectron2.structures import Boxes, Instances

    g = torch.Generator().manual_seed(rank)
    batch = []
    for _ in range(2):
        inst = Instances((128, 128))
        inst.gt_boxes = Boxes(torch.tensor([[16.0, 20.0, 70.0, 90.0], [60.0, 8.0, 120.0, 50.0]]))
        inst.gt_classes = torch.tensor([0, 1])
        batch.append({"image": (torch.rand(3, 128, 128, generator=g) * 255).to(device), "instances": inst})
    return batch


def _ddp_worker(rank: int, init_file: str, out_dir: str, device: str) -> None:
    import torch.distributed as dist
    from detectron2.config import LazyConfig, instantiate
    from detectron2.utils import comm

    from yolox_d2.engine import create_ddp_model

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        # two "machines" of one GPU each (launch() makes this group): local rank 0 on both, so
        # both wrap the model for cuda:0, the one device
        comm.create_local_process_group(1)
        cfg = LazyConfig.load(os.path.join(REPO_ROOT, "configs", "yolox_nano.py"))
        cfg.model.num_classes = 2
        torch.manual_seed(0)
        model = instantiate(cfg.model).to(device).train()
        ddp = create_ddp_model(model, broadcast_buffers=False)
        losses = ddp(_ddp_batch(rank, device))
        sum(losses.values()).backward()
        torch.save(
            {
                "type": type(ddp).__name__,
                "device_ids": getattr(ddp, "device_ids", None),
                "device": str(next(model.parameters()).device),
                "grads": [p.grad.detach().cpu() for p in model.parameters()],
            },
            os.path.join(out_dir, f"ddp_rank{rank}.pth"),
        )
    finally:
        dist.destroy_process_group()


def section_ddp(s: Settings) -> List[str]:
    import torch.multiprocessing as mp

    out = os.path.join(s.workdir, "ddp")
    os.makedirs(out)
    mp.spawn(_ddp_worker, args=(os.path.join(out, "init"), out, s.device), nprocs=2, join=True)
    r0, r1 = (torch.load(os.path.join(out, f"ddp_rank{r}.pth"), weights_only=False) for r in (0, 1))
    worst = max(float((a - b).abs().max()) for a, b in zip(r0["grads"], r1["grads"]))
    expected_ids = [0] if s.device == "cuda" else None
    ok = r0["type"] == r1["type"] == "DistributedDataParallel" and r0["device_ids"] == expected_ids and worst <= 1e-6
    lines = [
        f"- 2 processes (gloo, two machines of one device each) on {r0['device']}: "
        f"`create_ddp_model` gave `{r0['type']}` with device_ids "
        f"{r0['device_ids']} (expected {expected_ids})",
        f"- after one backward pass on different images, max |grad(rank 0) - grad(rank 1)| = {worst:.2g} "
        "(DDP averages them: must be ~0)",
    ]
    if not ok:
        raise AssertionError("\n".join(lines))
    return lines


# ---------------------------------------------------------------------- 6. ONNX export
def section_export(s: Settings) -> List[str]:
    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise Skipped(f"{' and '.join(missing)} not installed (pip install onnx onnxruntime)")
    size = 96 if s.dry_run else 640
    output = os.path.join(s.workdir, "yolox_s.onnx")
    cmd = [
        sys.executable, os.path.join(REPO_ROOT, "tools", "export_model.py"),
        "--config-file", os.path.join(REPO_ROOT, "configs", "yolox_s.py"), "--output", output,
        "--mode", "nms", "--size", str(size), "--device", "cpu", "--verify",
    ]
    proc = _run(cmd, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"exit status {proc.returncode}:\n\n```\n{_tail(proc)}\n```")
    verified = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if "erif" in ln][-3:]
    return [
        f"`python tools/export_model.py --config-file configs/yolox_s.py --output yolox_s.onnx --mode nms --size {size} "
        "--device cpu --verify` (random weights; traced on the CPU, see the script's docstring)",
        "",
        f"- exit status 0; {os.path.getsize(output) / 2**20:.1f} MiB",
        *[f"- `{ln}`" for ln in verified],
    ]


RUNNERS: Dict[str, Callable[[Settings], List[str]]] = {
    "amp": section_amp,
    "forward": section_forward,
    "simota": section_simota,
    "tool": section_tool,
    "ddp": section_ddp,
    "export": section_export,
}
TITLES = {
    "amp": "1. Mixed-precision training (float16, bfloat16) of YOLOX-S on the tree tiles",
    "forward": "2. Forward latency beside the official model (float16, batch 1 and 32, S and L)",
    "simota": "3. SimOTA on the device against the official loop",
    "tool": "4. The training tool with --num-gpus 1",
    "ddp": "5. DDP wrapping on the device",
    "export": "6. ONNX export with --verify",
}


def run_section(name: str, s: Settings, log: Callable[[str], None]) -> Section:
    section = Section(name, TITLES[name])
    log(f"[gpu_acceptance] {section.title} ...")
    start = time.perf_counter()
    try:
        section.lines = RUNNERS[name](s)
        section.status = "passed"
    except Skipped as e:
        section.status, section.lines = "skipped", [f"Skipped: {e}"]
    except Exception as e:  # noqa: BLE001 - one failing section must not stop the others
        section.status = "FAILED"
        section.lines = [f"{type(e).__name__}: {e}", "", "```", traceback.format_exc()[-3000:], "```"]
    section.seconds = time.perf_counter() - start
    log(f"[gpu_acceptance] {section.title}: {section.status} ({section.seconds:.0f} s)")
    return section


def compose(
    sections: List[Section], s: Settings, missing: List[str], machine: Dict[str, str], command: str, total: float
) -> str:
    """The text of the results file."""
    out = [
        "# yolox_d2 GPU acceptance" + (" (DRY RUN on the CPU: nothing here is a measurement)" if s.dry_run else ""),
        "",
        f"Written by `{command}` on {time.strftime('%Y-%m-%d %H:%M')} in {total:.0f} s.",
        "",
        "| section | result | time |",
        "|---|---|---|",
    ]
    out += [f"| {x.title} | {x.status} | {x.seconds:.0f} s |" for x in sections]
    out += ["", "## Missing pieces", ""] + ([f"- {m}" for m in missing] or ["- none"])
    out += ["", "## Machine", ""] + [f"- {k}: {v}" for k, v in machine.items()]
    for x in sections:
        out += ["", f"## {x.title}", "", f"**{x.status}** ({x.seconds:.0f} s)", ""] + x.lines
    return "\n".join(out) + "\n"


def missing_pieces(device: str) -> List[str]:
    """What this machine lacks for a full run, in words."""
    missing = []
    if device == "cuda" and not torch.cuda.is_available():
        missing.append("no CUDA device: torch.cuda.is_available() is False (every section needs the GPU)")
    if importlib.util.find_spec("yolox") is None:
        missing.append("official YOLOX (pip install --no-deps yolox==0.3.0): forward and SimOTA comparisons")
    for module in ("onnx", "onnxruntime"):
        if importlib.util.find_spec(module) is None:
            missing.append(f"{module}: ONNX export check")
    try:
        _require_trees()
    except Skipped as e:
        missing.append(f"{e}: training sections")
    return missing


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: checks the script, measures nothing")
    p.add_argument("--output", default=os.path.join(REPO_ROOT, "bench", "RESULTS_GPU.md"))
    p.add_argument("--iters", type=int, help="AMP training iterations (default 100; 3 with --dry-run)")
    p.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    device = "cpu" if args.dry_run else "cuda"
    missing = missing_pieces(device)
    machine = machine_info()
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_acceptance_") as workdir:
        iters = args.iters or (3 if args.dry_run else 100)
        s = Settings(device=device, dry_run=args.dry_run, iters=iters, workdir=workdir)
        sections = []
        for name in args.only or SECTIONS:
            if device == "cuda" and not torch.cuda.is_available():
                sections.append(Section(name, TITLES[name], "skipped", ["Skipped: no CUDA device"]))
                continue
            sections.append(run_section(name, s, log))
    text = compose(sections, s, missing, machine, benchlib.command_line(), time.perf_counter() - start)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        f.write(text)
    log(f"[gpu_acceptance] wrote {args.output}")
    return 0 if all(x.status == "passed" for x in sections) else 1


if __name__ == "__main__":
    sys.exit(main())
