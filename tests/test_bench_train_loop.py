"""
bench/bench_train_loop.py and the pieces of bench/official_train.py it relies on: the JSON
figures -> markdown / run_all.py targets mapping, the two sides' settings (same recipe, same
multi-scale sizes, no evaluation / checkpoint in the timed run), the official script's --exp
option and its per-iteration timestamps (a few iterations at a small size), the process-tree
memory sampler.
"""
import importlib.util
import json
import math
import os
import subprocess
import sys
import time

import pytest

from .conftest import REPO_ROOT
from .test_bench import _load

needs_official = pytest.mark.skipif(importlib.util.find_spec("yolox") is None, reason="needs the official yolox==0.3.0")


def _run(images_per_s, s_per_iter, pss, rss):
    return {"images_per_s": images_per_s, "s_per_iter": s_per_iter, "timed_seconds": 1.0,
            "peak_pss_mb": pss, "peak_rss_mb": rss, "peak_pss_anon_mb": pss / 2}


def _results():
    return {
        "nano": {
            "runs": {"yolox_d2": [_run(20.0, 0.40, 900.0, 1500.0), _run(18.0, 0.44, 950.0, 1600.0)],
                     "official": [_run(10.0, 0.80, 1000.0, 1700.0), _run(12.0, 0.67, 1100.0, 1800.0)]},
            "recipe": "mosaic prob 0.5", "sizes": {"yolox_d2": [416, 352], "official": [416, 352]},
            "warmup": 10, "iters": 30, "batch": 8, "lr": 0.00125, "ema": (0.9998, 2000.0),
        },
        "s": {
            "runs": {"yolox_d2": [_run(3.0, 2.7, 2500.0, 4000.0)], "official": [_run(2.5, 3.2, 2000.0, 3500.0)]},
            "recipe": "mosaic prob 1", "sizes": {"yolox_d2": [640, 704], "official": [640, 736]},
            "warmup": 10, "iters": 20, "batch": 8, "lr": 0.00125, "ema": (0.9998, 2000.0),
        },
    }


def test_train_loop_figures_markdown_and_run_all_targets():
    btl, run_all = _load("bench_train_loop"), _load("run_all")
    args = btl.get_parser().parse_args([])
    report = btl.build_report(_results(), args, {"cpu": "x"}, "python bench/bench_train_loop.py")
    f = report.figures
    # images/s: median over runs; peaks: max over runs; ratios ours / official
    assert f["nano_ours_images_per_s"] == pytest.approx(19.0)
    assert f["nano_official_images_per_s"] == pytest.approx(11.0)
    assert f["nano_loop_ratio"] == pytest.approx(19.0 / 11.0)
    assert f["nano_ours_peak_pss_mb"] == 950.0 and f["nano_official_peak_pss_mb"] == 1100.0
    assert f["nano_pss_ratio"] == pytest.approx(950 / 1100) and f["nano_rss_ratio"] == pytest.approx(1600 / 1800)
    assert f["s_loop_ratio"] == pytest.approx(1.2) and f["s_pss_ratio"] == pytest.approx(1.25)
    assert f["nano_same_sizes"] == 1.0 and f["s_same_sizes"] == 0.0
    md = report.markdown()
    assert "| YOLOX-Nano@416 | images / s | 19.00 (18.00–20.00) | 11.00 (10.00–12.00) | 1.73 |" in md
    assert "| YOLOX-S@640 | peak PSS, process tree (MB) | 2500 | 2000 | 1.25 |" in md
    assert "recorded sizes differ" in md  # S's sizes above differ between the sides
    # every train_loop target of run_all.py reads a figure the script writes
    names = [t[1] for t in run_all.TARGETS if t[0] == "train_loop"]
    assert sorted(names) == ["nano_loop_ratio", "nano_pss_ratio", "s_loop_ratio", "s_pss_ratio"]
    assert set(names) <= set(f)
    rows = "\n".join(run_all.target_table({"train_loop": {"figures": f}}))
    assert "| Nano@416 training loop, batch 8, 2 workers: ours / official images/s | >= 1.5 | 1.727 | yes |" in rows
    assert "| S@640 training loop, batch 8, 2 workers: ours / official images/s | >= 1.5 | 1.200 | **no** |" in rows
    assert "| Nano@416 training loop: ours / official peak memory (PSS, process tree) | <= 1 | 0.864 | yes |" in rows
    assert "| S@640 training loop: ours / official peak memory (PSS, process tree) | <= 1 | 1.250 | **no** |" in rows


def test_run_all_runs_train_loop_before_accuracy_with_its_threads():
    run_all = _load("run_all")
    names = list(run_all.BENCHMARKS)
    assert names.index("train_loop") == names.index("accuracy") - 1
    script, takes_threads, cuda = run_all.BENCHMARKS["train_loop"]
    assert (script, takes_threads, cuda) == ("bench_train_loop.py", True, None)
    assert (REPO_ROOT / "bench" / script).exists()


def test_summarise_run_times_only_the_timed_iterations_and_peaks():
    btl = _load("bench_train_loop")
    stamps = {"start": 0.0, "iter_end": [5.0, 6.0, 7.0, 8.5, 10.0], "batch": 8}
    samples = [(1.0, {"pss": 100.0, "rss": 200.0, "pss_anon": 50.0, "processes": 1}),
               (7.5, {"pss": 300.0, "rss": 500.0, "pss_anon": 250.0, "processes": 3}),
               (11.0, {"pss": 400.0, "rss": 600.0, "pss_anon": 260.0, "processes": 1})]
    s = btl.summarise_run(stamps, samples, warmup=2, iters=3)
    assert s["timed_seconds"] == pytest.approx(4.0)  # from the end of iteration 2 to the end of 5
    assert s["images_per_s"] == pytest.approx(3 * 8 / 4.0) and s["s_per_iter"] == pytest.approx(4 / 3)
    assert (s["peak_pss_mb"], s["peak_rss_mb"], s["max_processes"]) == (400.0, 600.0, 3)
    assert s["timed_peak_pss_mb"] == 300.0  # only the sample inside the timed window
    assert btl.summarise_run(stamps, samples, warmup=0, iters=2)["timed_seconds"] == pytest.approx(6.0)
    with pytest.raises(SystemExit):
        btl.summarise_run(stamps, samples, warmup=3, iters=3)


def test_tree_memory_counts_forked_children():
    btl = _load("bench_train_loop")
    code = "import os, time\nbuf = b\"\\x01\" * (64 << 20)\nif os.fork() == 0:\n    time.sleep(30)\n    os._exit(0)\ntime.sleep(30)\n"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        mem = None
        for _ in range(100):
            time.sleep(0.1)
            mem = btl.tree_memory(proc.pid)
            if mem and mem["processes"] == 2 and mem["rss"] > 100:
                break
        assert mem["processes"] == 2
        # the 64 MB buffer is resident in both processes (RSS twice), shared (PSS once)
        assert mem["rss"] > 120 and 60 < mem["pss"] < mem["rss"] - 40
    finally:
        import psutil

        for c in psutil.Process(proc.pid).children(recursive=True):
            c.kill()
        proc.kill()
        proc.wait()
    assert btl.tree_memory(proc.pid) is None


@needs_official
@pytest.mark.parametrize("model", ["nano", "s"])
def test_both_sides_get_the_same_recipe_schedule_and_sizes(model, tmp_path):
    btl = _load("bench_train_loop")
    cfg = btl.resolved_config(model, 8, 2, 0, 40, str(tmp_path))
    # no evaluation and no checkpoint inside the run; the whole run in the Mosaic phase
    assert "evaluator" not in cfg.dataloader
    assert cfg.train.max_iter == 40 and cfg.train.no_aug_iters == 0
    assert cfg.train.eval_period > 40 and cfg.train.checkpointer.period > 40
    assert cfg.dataloader.train.dataset.dataset_dicts.names == "deepforest_trees_train"
    assert cfg.model.num_classes == 1 and cfg.dataloader.train.num_workers == 2
    sizes = btl.multiscale_plan(cfg, 40)
    base = cfg.dataloader.train.dataset.image_size[0]
    lo, hi = (320, 640) if model == "nano" else (480, 800)
    assert base == (416 if model == "nano" else 640)
    assert len(sizes) == 3 and all(lo <= s <= hi and s % 32 == 0 for s in sizes)
    assert sizes == btl.multiscale_plan(cfg, 40)  # seeded: the same in every run
    args = btl.get_parser().parse_args([])
    cmd = btl.official_command(cfg, model, str(tmp_path / "o"), str(tmp_path / "a.json"), args, sizes)

    def opt(name, n=1):
        i = cmd.index(name)
        return cmd[i + 1 : i + 1 + n]

    ds = cfg.dataloader.train.dataset
    assert opt("--exp") == [btl.MODELS[model][1]]
    assert opt("--sizes", 3) == [str(s) for s in sizes]
    assert opt("--iters") == ["40"] and opt("--no-aug-iters") == ["0"] and opt("--batch-size") == ["8"]
    assert float(opt("--lr")[0]) == pytest.approx(cfg.optimizer.lr)
    assert opt("--input-size") == [str(base)]
    assert float(opt("--mosaic-prob")[0]) == ds.mosaic_prob == (0.5 if model == "nano" else 1.0)
    assert [float(v) for v in opt("--mosaic-scale", 2)] == [0.5, 1.5] == list(ds.mosaic_scale)
    assert opt("--enable-mixup") == ["0"]
    for key in ("degrees", "translate", "shear", "hsv_prob", "flip_prob"):
        assert float(opt("--" + key.replace("_", "-"))[0]) == pytest.approx(ds[key])


@needs_official
def test_official_exp_option_defaults_to_each_exps_own_recipe():
    official_train = _load("official_train")
    nano = official_train.build_exp(1, None, None, exp_name="yolox-nano")
    assert nano.input_size == (416, 416) and nano.random_size == (10, 20)
    assert (nano.mosaic_prob, nano.mosaic_scale, nano.enable_mixup) == (0.5, (0.5, 1.5), False)
    s = official_train.build_exp(1, None, None, exp_name="yolox-s")
    assert s.input_size == (640, 640) and not hasattr(s, "random_size") and s.multiscale_range == 5
    assert (s.mosaic_prob, tuple(s.mosaic_scale), s.enable_mixup) == (1.0, (0.1, 2), True)
    assert (s.depth, s.width) == (0.33, 0.50)
    # accuracy_trees.py's default (no --exp) stays YOLOX-Nano
    args = official_train.get_parser().parse_args(
        ["--train-json", "x", "--output-dir", "y", "--iters", "1", "--warmup-iters", "0", "--no-aug-iters", "0", "--lr", "0.01"]
    )
    assert args.exp == "yolox-nano" and args.mosaic_prob is None and args.input_size is None


@needs_official
def test_official_train_writes_per_iteration_timestamps_and_replays_sizes(tmp_path):
    import yolox_d2  # noqa: F401  (registers the tree datasets)

    accuracy_trees = _load("accuracy_trees")
    train_json = tmp_path / "data" / "annotations" / "train.json"
    accuracy_trees.write_train_json(str(train_json))
    out = tmp_path / "official"
    cmd = [
        "nice", "-n", "19", sys.executable, str(REPO_ROOT / "bench" / "official_train.py"),
        "--exp", "yolox-nano", "--train-json", str(train_json), "--output-dir", str(out),
        "--iters", "11", "--warmup-iters", "1", "--no-aug-iters", "0", "--lr", "0.001",
        "--batch-size", "2", "--input-size", "128", "--sizes", "160", "--workers", "0", "--threads", "1",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    stamps = json.loads((out / "iter_times.json").read_text())
    assert stamps["exp"] == "yolox-nano" and stamps["batch"] == 2
    t = stamps["iter_end"]
    assert len(t) == 11 and stamps["start"] < t[0] and all(a < b for a, b in zip(t, t[1:]))
    # window 0 at --input-size, window 1 at the replayed size
    assert stamps["sizes"] == [[128, 128]] * 10 + [[160, 160]]
    log = (out / "log.txt").read_text()
    assert "official yolox-nano:" in log and "replayed sizes [160]" in log
    assert "mosaic_prob=0.5" in log and "enable_mixup=False" in log  # the exp's own recipe
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iters"] == 11 and math.isfinite(summary["loss_last10"])
    assert os.path.exists(out / "final_ema.pth")
