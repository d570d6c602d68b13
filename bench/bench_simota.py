#!/usr/bin/env python
"""
SimOTA label assignment alone: yolox_d2's :class:`SimOTAMatcher` (one call for the whole batch)
vs the official per-image ``get_assignments``, for both rules:

* ``legacy`` (2021 rule): official ``yolox==0.3.0`` ``YOLOXHead.get_assignments``, called image
  by image exactly as its ``get_losses`` loop does (same slicing of the packed ``outputs``);
* ``2023`` rule: ``pixeltable-yolox==0.4.3`` (the post-January-2023 official code). Its package
  is also named ``yolox``, so it runs in a long-lived worker subprocess
  (``PYTHONPATH=.venv/reference/pixeltable_yolox``) driven over a pipe; the worker times its own
  calls, so rounds still alternate ours / official (ABBA) and pipe latency is not counted.

    python bench/bench_simota.py                       # 10/50/100 gts, batch 1 and 8, 2 threads
    python bench/bench_simota.py --gts 50 --batches 8 --runs 20

Inputs (same for both sides, generated once per case): 640x640 input (8400 anchors at strides
8/16/32), 80 classes; ground truths of varied sizes (16 .. 400 px, log-uniform) inside the
image; predictions of anchors inside a ground truth are that box jittered (so there are
high-IoU candidates and dynamic k up to 10), other predictions are random boxes around their
anchor; class / objectness logits favour the matching class near objects. All boxes lie on a
1/8-pixel grid so the official (cxcywh) and our (xyxy) geometry are bit-identical, and the
assignments of both sides are checked to be identical before timing.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Callable, Dict, List

import torch

from benchlib import REPO_ROOT, Report, Stats, add_common_args, command_line, finish, machine_info, set_threads

from yolox_d2.modeling.simota import SimOTAMatcher

PIXELTABLE_YOLOX = os.path.join(REPO_ROOT, ".venv", "reference", "pixeltable_yolox")
IMG = 640
STRIDES = (8, 16, 32)
NUM_CLASSES = 80


# ---------------------------------------------------------------------- inputs
def _q(x: torch.Tensor, step: float = 0.125) -> torch.Tensor:
    return torch.round(x / step) * step


def make_case(seed: int, batch: int, num_gts: int, num_classes: int = NUM_CLASSES) -> Dict:
    """One batch of realistic random inputs, in the official layout (cxcywh ``outputs``)."""
    g = torch.Generator().manual_seed(seed)
    grids, strs = [], []
    for s in STRIDES:
        n = IMG // s
        ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        grids.append(torch.stack((xs, ys), -1).reshape(-1, 2).float())
        strs.append(torch.full((n * n,), float(s)))
    grid, strides = torch.cat(grids), torch.cat(strs)
    A, B, G, C = grid.shape[0], batch, num_gts, num_classes
    centers = (grid + 0.5) * strides[:, None]  # (A, 2)

    # Ground truths: log-uniform sizes 16..400 px, fully inside the image.
    wh = _q(torch.exp(torch.empty(B, G, 2).uniform_(2.77, 5.99, generator=g))).clamp(min=1.0)
    c = wh / 2 + torch.rand(B, G, 2, generator=g) * (IMG - wh)
    gt = _q(torch.cat((c, wh), -1))  # (B, G, 4) cxcywh
    gt_classes = torch.randint(0, C, (B, G), generator=g)

    # Background predictions: random boxes around the anchor.
    pred_c = centers + 0.5 * strides[:, None] * torch.randn(B, A, 2, generator=g)
    pred_wh = strides[:, None] * torch.exp(0.5 + 0.7 * torch.randn(B, A, 2, generator=g))
    cls_logits = -5.0 + 1.5 * torch.randn(B, A, C, generator=g)
    obj_logits = -4.0 + 2.0 * torch.randn(B, A, generator=g)
    # Anchors inside a gt predict that gt (the smallest one containing them), jittered.
    x1y1, x2y2 = gt[..., :2] - gt[..., 2:] / 2, gt[..., :2] + gt[..., 2:] / 2
    inside = ((centers[None, None] > x1y1[:, :, None]) & (centers[None, None] < x2y2[:, :, None])).all(-1)
    area = (gt[..., 2] * gt[..., 3])[:, :, None].expand(B, G, A)
    owner_area, owner = torch.where(inside, area, torch.full_like(area, float("inf"))).min(dim=1)
    has_owner = torch.isfinite(owner_area)  # (B, A)
    og = gt.gather(1, owner[..., None].expand(B, A, 4))
    jit_c = og[..., :2] + 0.15 * og[..., 2:] * torch.randn(B, A, 2, generator=g)
    jit_wh = og[..., 2:] * torch.exp(0.25 * torch.randn(B, A, 2, generator=g))
    pred_c = torch.where(has_owner[..., None], jit_c, pred_c)
    pred_wh = torch.where(has_owner[..., None], jit_wh, pred_wh)
    pred = torch.cat((_q(pred_c), _q(pred_wh).clamp(min=0.125)), -1)
    owner_cls = gt_classes.gather(1, owner)
    boost = torch.zeros(B, A, C).scatter_(2, owner_cls[..., None], 1.0) * (4.0 + torch.randn(B, A, 1, generator=g))
    cls_logits = cls_logits + boost * has_owner[..., None]
    obj_logits = torch.where(has_owner, 1.0 + 2.0 * torch.randn(B, A, generator=g), obj_logits)

    outputs = torch.cat((pred, obj_logits[..., None], cls_logits), -1)  # (B, A, 5 + C)
    labels = torch.cat((gt_classes[..., None].float(), gt), -1)  # (B, G, 5)
    return dict(
        outputs=outputs,
        labels=labels,
        x_shifts=grid[None, :, 0].contiguous(),
        y_shifts=grid[None, :, 1].contiguous(),
        expanded_strides=strides[None],
        num_classes=C,
    )


def ours_inputs(case: Dict):
    """The same case in yolox_d2's layout (xyxy boxes, padded gts with a validity mask)."""

    def xyxy(b):
        return torch.cat((b[..., :2] - 0.5 * b[..., 2:], b[..., :2] + 0.5 * b[..., 2:]), -1)

    out, labels = case["outputs"], case["labels"]
    strides = case["expanded_strides"][0]
    grid = torch.stack((case["x_shifts"][0], case["y_shifts"][0]), -1)
    gt_valid = labels.sum(dim=2) > 0
    return (
        xyxy(out[..., :4]).contiguous(),
        out[..., 5:].contiguous(),
        out[..., 4].contiguous(),
        (grid + 0.5) * strides[:, None],
        strides.clone(),
        xyxy(labels[..., 1:5]) * gt_valid[..., None],
        labels[..., 0].long(),
        gt_valid,
    )


# ---------------------------------------------------------------------- official 2021 (in process)
def official_legacy_runner(case: Dict) -> Callable[[], List]:
    """The per-image loop of yolox 0.3.0 ``YOLOXHead.get_losses``, assignment only."""
    from yolox.models import YOLOXHead

    head = YOLOXHead(num_classes=case["num_classes"], width=0.125, in_channels=[256, 512, 1024])
    outputs, labels = case["outputs"], case["labels"]
    x_shifts, y_shifts, expanded_strides = case["x_shifts"], case["y_shifts"], case["expanded_strides"]

    def run():
        bbox_preds = outputs[:, :, :4]
        obj_preds = outputs[:, :, 4].unsqueeze(-1)
        cls_preds = outputs[:, :, 5:]
        nlabel = (labels.sum(dim=2) > 0).sum(dim=1)
        total_num_anchors = outputs.shape[1]
        results = []
        for batch_idx in range(outputs.shape[0]):
            num_gt = int(nlabel[batch_idx])
            if num_gt == 0:
                results.append(None)
                continue
            results.append(
                head.get_assignments(
                    batch_idx,
                    num_gt,
                    total_num_anchors,
                    labels[batch_idx, :num_gt, 1:5],
                    labels[batch_idx, :num_gt, 0],
                    bbox_preds[batch_idx],
                    expanded_strides,
                    x_shifts,
                    y_shifts,
                    cls_preds,
                    bbox_preds,
                    obj_preds,
                    labels,
                    None,
                )
            )
        return results

    return run


# ---------------------------------------------------------------------- official 2023 (worker)
_WORKER = textwrap.dedent("""
    import os, sys, time, torch
    proto = os.fdopen(os.dup(1), "w")  # protocol channel; library output goes to stderr
    os.dup2(2, 1)
    import yolox
    from yolox.models.yolo_head import YoloxHead
    assert "pixeltable_yolox" in yolox.__file__, yolox.__file__
    torch.set_num_threads(int(sys.argv[2]))
    cases = torch.load(sys.argv[1])
    heads = [YoloxHead(num_classes=c["num_classes"], width=0.125) for c in cases]

    def run(i):
        # The per-image loop of YoloxHead.get_losses, assignment only.
        c, head = cases[i], heads[i]
        outputs, labels = c["outputs"], c["labels"]
        bbox_preds = outputs[:, :, :4]
        obj_preds = outputs[:, :, 4:5]
        cls_preds = outputs[:, :, 5:]
        nlabel = (labels.sum(dim=2) > 0).sum(dim=1)
        results = []
        for batch_idx in range(outputs.shape[0]):
            num_gt = int(nlabel[batch_idx])
            if num_gt == 0:
                results.append(None)
                continue
            results.append(head.get_assignments(
                batch_idx, num_gt, labels[batch_idx, :num_gt, 1:5], labels[batch_idx, :num_gt, 0],
                bbox_preds[batch_idx], c["expanded_strides"], c["x_shifts"], c["y_shifts"],
                cls_preds, obj_preds,
            ))
        return results

    proto.write("ready\\n"); proto.flush()
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == "time":
            start = time.perf_counter()
            run(int(cmd[1]))
            proto.write(f"{time.perf_counter() - start!r}\\n")
        elif cmd[0] == "check":
            res = run(int(cmd[1]))
            torch.save([None if r is None else (r[1], r[3]) for r in res], cmd[2])
            proto.write("ok\\n")
        else:
            break
        proto.flush()
    """)


class Official2023Worker:
    """pixeltable-yolox 0.4.3 in a subprocess; ``time(i)`` returns its own timing of case ``i``."""

    def __init__(self, cases: List[Dict], threads: int, tmpdir: str):
        if not os.path.isfile(os.path.join(PIXELTABLE_YOLOX, "yolox", "models", "yolo_head.py")):
            raise SystemExit(
                f"post-2023 reference missing: pip install --no-deps --target {PIXELTABLE_YOLOX} "
                "pixeltable-yolox==0.4.3"
            )
        self.tmpdir = tmpdir
        path = os.path.join(tmpdir, "cases2023.pt")
        torch.save(cases, path)
        script = os.path.join(tmpdir, "worker2023.py")
        with open(script, "w") as f:
            f.write(_WORKER)
        env = dict(os.environ, PYTHONPATH=PIXELTABLE_YOLOX, OMP_NUM_THREADS=str(threads))
        self.proc = subprocess.Popen(
            [sys.executable, script, path, str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=tmpdir,
            text=True,
        )
        self._expect("ready")

    def _send(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._read()

    def _read(self) -> str:
        reply = self.proc.stdout.readline()
        if not reply:
            raise RuntimeError(f"2023 reference worker died (exit code {self.proc.wait()})")
        return reply.strip()

    def _expect(self, what: str) -> None:
        reply = self._read()
        if reply != what:
            raise RuntimeError(f"2023 reference worker: expected {what!r}, got {reply!r}")

    def time(self, i: int) -> float:
        return float(self._send(f"time {i}"))

    def check(self, i: int):
        path = os.path.join(self.tmpdir, f"check{i}.pt")
        if self._send(f"check {i} {path}") != "ok":
            raise RuntimeError("2023 reference worker: check failed")
        return torch.load(path)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


# ---------------------------------------------------------------------- timing
def alternate_timed(runners: Dict[str, Callable[[], float]], runs: int, warmup: int) -> Dict[str, List[float]]:
    """Like :func:`benchlib.alternate` (ABBA rounds), for runners that return their own timing."""
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name]()
    times: Dict[str, List[float]] = {name: [] for name in names}
    for i in range(runs):
        for name in names if i % 2 == 0 else names[::-1]:
            times[name].append(runners[name]())
    return times


def timed(fn: Callable[[], object]) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return run


def check_same(ours, official: List, rule: str, batch: int, gts: int) -> None:
    """Both sides assign the same predictions to the same ground truths."""
    for b, ref in enumerate(official):
        if ref is None:  # no gt: the official code skips the image
            if ours.fg_mask[b].any():
                raise SystemExit(f"{rule} b={batch} g={gts}: foreground in an image without gt (image {b})")
            continue
        fg, inds = ref
        if not (torch.equal(ours.fg_mask[b], fg) and torch.equal(ours.matched_gt[b][fg], inds)):
            raise SystemExit(f"{rule} b={batch} g={gts}: assignments differ from the official ones (image {b})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gts", type=int, nargs="+", default=[10, 50, 100], help="ground truths per image")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes")
    p.add_argument("--rules", nargs="+", default=["legacy", "2023"], choices=["legacy", "2023"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--case-budget",
        type=float,
        default=8.0,
        help="seconds of timed rounds per case: fewer runs (at least 3) where the official side is slow",
    )
    args = add_common_args(p, runs=10, warmup=2).parse_args()
    set_threads(args.threads)
    machine = machine_info()  # load average at the start
    machine["pixeltable-yolox (2023 reference)"] = _reference_version()

    keys = [(b, g) for b in args.batches for g in args.gts]
    cases = [make_case(args.seed + 1000 * b + g, b, g) for b, g in keys]
    rows, figures = [], {}
    columns = [
        "rule",
        "batch x gts",
        "runs",
        "candidates / image",
        "yolox_d2 (ms)",
        "official (ms)",
        "ours / official",
        "speed-up",
    ]
    with tempfile.TemporaryDirectory() as tmpdir:
        worker = Official2023Worker(cases, args.threads, tmpdir) if "2023" in args.rules else None
        try:
            for rule in args.rules:
                matcher = SimOTAMatcher(rule=rule)
                for i, ((b, g), case) in enumerate(zip(keys, cases)):
                    inputs = ours_inputs(case)
                    ours_once = lambda: matcher(*inputs)  # noqa: E731
                    # The parity check is also the first warm-up round (and sizes the runs).
                    start = time.perf_counter()
                    if rule == "legacy":
                        official_once = official_legacy_runner(case)
                        ref = [None if r is None else (r[1], r[3]) for r in official_once()]
                        official = timed(official_once)
                    else:
                        ref = worker.check(i)
                        official = (lambda i: lambda: worker.time(i))(i)
                    res = ours_once()
                    per_round = time.perf_counter() - start
                    check_same(res, ref, rule, b, g)
                    cands = _mean_candidates(matcher, inputs)
                    runs = max(3, min(args.runs, int(args.case_budget / per_round)))
                    warmup = max(0, args.warmup - 1) if runs == args.runs else 0
                    t = alternate_timed({"ours": timed(ours_once), "official": official}, runs, warmup)
                    so, sr = Stats.of(t["ours"]), Stats.of(t["official"])
                    rows.append(
                        [
                            rule,
                            f"{b} x {g}",
                            str(so.n),
                            f"{cands:.0f}",
                            so.fmt("", 2).strip(),
                            sr.fmt("", 2).strip(),
                            f"{so.median / sr.median:.3f}",
                            f"{sr.median / so.median:.1f}x",
                        ]
                    )
                    figures[f"{rule}_b{b}_g{g}_speedup"] = round(sr.median / so.median, 3)
                    figures[f"{rule}_b{b}_g{g}_ours_ms"] = round(so.median, 3)
                    figures[f"{rule}_b{b}_g{g}_official_ms"] = round(sr.median, 3)
                    print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
        finally:
            if worker is not None:
                worker.close()

    report = Report(
        title="SimOTA label assignment: yolox_d2 (batched) vs official (per-image loop)",
        command=command_line(),
        columns=columns,
        rows=rows,
        notes=[
            f"Times: median (min–max) of `runs` alternating (ABBA) runs per side ({args.runs}, fewer where "
            f"a round takes more than {args.case_budget:g} s / {args.runs}, at least 3) after {args.warmup} "
            f"warm-up round(s) (the first is the parity check; none for the slowest cases), {args.threads} "
            f"intra-op threads each, CPU, float32, 640x640 (8400 anchors), {NUM_CLASSES} classes.",
            "Official legacy: yolox 0.3.0 `YOLOXHead.get_assignments`; official 2023: pixeltable-yolox 0.4.3 "
            "`YoloxHead.get_assignments` (separate worker process timing its own calls); both called image by "
            "image as their `get_losses` does. yolox_d2: one `SimOTAMatcher(rule=...)` call for the batch.",
            "Same inputs on both sides; the assignments (fg mask and matched gt) were checked identical.",
            "candidates / image: anchors passing the rule's geometry prefilter (mean over the batch).",
        ],
        machine=machine,
        figures=figures,
    )
    finish(report, args.json)


def _reference_version() -> str:
    from importlib.metadata import distributions

    for dist in distributions(path=[PIXELTABLE_YOLOX]):
        if dist.metadata["Name"].lower().replace("_", "-") == "pixeltable-yolox":
            return dist.version
    return "missing"


def _mean_candidates(matcher: SimOTAMatcher, inputs) -> float:
    pred, cls, obj, points, strides, gt, classes, valid = inputs
    cand = matcher._geometry(points, strides, gt, valid)[0]
    return float(cand.sum()) / cand.shape[0]


if __name__ == "__main__":
    main()
