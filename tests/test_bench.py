"""
The benchmark harness in bench/ (not the figures: those live in bench/RESULTS.md): alternating
timers, the targets summary of run_all.py, the accuracy report's aggregation over seeds, and a
smoke run of one side-by-side script.
"""
import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

from .conftest import REPO_ROOT


def _load(name):
    path = REPO_ROOT / "bench" / f"{name}.py"
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))  # the scripts import benchlib as a sibling
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_alternate_interleaves_in_abba_order_and_counts_runs():
    benchlib = _load("benchlib")
    calls = []
    times = benchlib.alternate({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, runs=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
    stats = benchlib.Stats.of([0.001, 0.003, 0.002])
    assert (stats.median, stats.min, stats.max, stats.n) == pytest.approx((2.0, 1.0, 3.0, 3))


def test_run_all_summarises_targets_met_missed_and_missing():
    run_all = _load("run_all")
    def report(**figures):
        return {"title": "t", "command": "c", "columns": ["x"], "rows": [["1"]], "notes": [], "figures": figures}

    reports = {
        "forward": report(s_plain_b1_ratio=0.55, s_fused_b1_ratio=0.65),
        "simota": report(legacy_b8_g50_speedup=12.0),
    }
    rows = "\n".join(run_all.target_table(reports))
    assert "| S@640 forward, plain BN: ours / official time | <= 0.6 | 0.550 | yes |" in rows
    assert "| S@640 forward, fused BN: ours / official time | <= 0.6 | 0.650 | **no** |" in rows
    assert "| SimOTA 2021 rule, batch 8 x 50 gts: official / ours time | >= 10 | 12.000 | yes |" in rows
    assert "2023 rule, batch 8 x 50 gts: official / ours time | >= 3 | not run |" in rows
    text = run_all.compose(reports, {"data": "exit code 1"}, {"cpu": "x"}, "python bench/run_all.py", {})
    assert "## Benchmarks that failed" in text and "`data`: exit code 1" in text


def test_train_step_counts_forward_plus_backward_as_three_forwards():
    step = _load("bench_train_step")
    forward = _load("bench_forward").S_GFLOPS_AT_640
    assert step.training_step_gflops(2, 640) == pytest.approx(6 * forward)
    assert step.training_step_gflops(4, 320) == pytest.approx(3 * forward)  # a quarter of the pixels


def test_run_all_gives_the_demo_checkpoint_to_the_benchmarks_that_score_a_trained_model(tmp_path):
    run_all = _load("run_all")
    names = ["forward", "deploy", "slicing_tta"]
    logged = []
    kept = run_all.with_demo_checkpoint(list(names), {}, str(tmp_path / "missing.pth"), logged.append)
    assert kept == ["forward", "deploy"] and "leaving out slicing_tta" in logged[0]
    ckpt = tmp_path / "model_final.pth"
    ckpt.write_bytes(b"x")
    extra = {"deploy": ["--runs", "3"]}
    assert run_all.with_demo_checkpoint(list(names), extra, str(ckpt), logged.append) == names
    assert extra == {"deploy": ["--runs", "3", "--checkpoint", str(ckpt)], "slicing_tta": ["--checkpoint", str(ckpt)]}
    given = {"slicing_tta": ["--checkpoint", "other.pth"]}
    assert run_all.with_demo_checkpoint(list(names), given, str(tmp_path / "missing.pth"), logged.append) == names
    assert given["slicing_tta"] == ["--checkpoint", "other.pth"]


@pytest.mark.skipif(importlib.util.find_spec("yolox") is None, reason="needs the official yolox==0.3.0")
def test_forward_benchmark_runs_side_by_side_and_writes_json(tmp_path):
    out = tmp_path / "forward.json"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "bench_forward.py"), "--variants", "nano",
         "--runs", "1", "--warmup", "0", "--threads", "1", "--json", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert {"nano_plain_b1_ratio", "nano_fused_b1_ratio"} <= set(report["figures"])
    assert [row[:2] for row in report["rows"]] == [["nano@416", "plain"], ["nano@416", "fused"]]
    # the script checks both sides compute the same output before timing them
    assert all(float(row[-1]) < 1e-3 for row in report["rows"])
    assert "| nano@416 | plain |" in proc.stdout


def _per_seed():
    return {
        0: {"ours": {"AP": 30.0, "AP50": 60.0, "AP75": 25.0}, "official": {"AP": 28.0, "AP50": 61.0, "AP75": 24.0}},
        1: {"ours": {"AP": 32.0, "AP50": 62.0, "AP75": 27.0}, "official": {"AP": 29.0, "AP50": 59.0, "AP75": 26.0}},
        2: {"ours": {"AP": 34.0, "AP50": 64.0, "AP75": 29.0}, "official": {"AP": 33.0, "AP50": 63.0, "AP75": 25.0}},
    }


def test_accuracy_aggregates_seeds_mean_sample_std_and_difference():
    acc = _load("accuracy_trees")
    per_seed = _per_seed()
    agg = acc.aggregate_seeds(per_seed)
    assert agg["ours"]["AP"]["mean"] == pytest.approx(32.0)
    assert agg["ours"]["AP"]["std"] == pytest.approx(2.0)  # sample std (n - 1) of 30, 32, 34
    assert (agg["official"]["AP"]["min"], agg["official"]["AP"]["max"]) == (28.0, 33.0)
    assert agg["official"]["AP"]["mean"] == pytest.approx(30.0)
    # ours - official seed by seed: 2, 3, 1
    assert agg["diff"]["AP"]["mean"] == pytest.approx(2.0) and agg["diff"]["AP"]["std"] == pytest.approx(1.0)
    assert agg["diff"]["AP75"]["mean"] == pytest.approx((1 + 1 + 4) / 3)
    figures = acc.accuracy_figures(per_seed, agg)
    # the keys run_all.py's accuracy table reads are the means
    assert figures["ours_ap"] == pytest.approx(32.0) and figures["official_ap50"] == pytest.approx(61.0)
    assert figures["ours_ap_std"] == pytest.approx(2.0) and figures["diff_ap_mean"] == pytest.approx(2.0)
    assert figures["seed1_official_ap75"] == 26.0 and figures["n_seeds"] == 3.0
    rows = acc.accuracy_rows(per_seed, agg)
    assert rows[0] == ["seed 0: AP / AP50 / AP75", "30.0 / 60.0 / 25.0", "28.0 / 61.0 / 24.0", "+2.0 / -1.0 / +1.0"]
    assert ["AP, mean ± sample std (3 seeds)", "32.0 ± 2.0", "30.0 ± 2.6", "+2.0 ± 1.0"] in rows
    # one seed: no spread
    one = acc.aggregate_seeds({5: per_seed[0]})
    assert math.isnan(one["ours"]["AP"]["std"])
    assert acc.accuracy_rows({5: per_seed[0]}, one)[1] == ["AP, mean ± sample std (1 seed)", "30.0", "28.0", "+2.0"]
    with pytest.raises(ValueError):
        acc.aggregate_seeds({})


def test_accuracy_seed_options():
    acc = _load("accuracy_trees")
    assert acc.parse_args([]).seeds == [0, 1, 2]
    assert acc.parse_args(["--seed", "3"]).seeds == [3]
    assert acc.parse_args(["--seeds", "4", "5"]).seeds == [4, 5]
    for bad in (["--seed", "1", "--seeds", "2"], ["--seeds", "1", "1"]):
        with pytest.raises(SystemExit):
            acc.parse_args(bad)


def test_run_all_accuracy_table_shows_mean_and_spread():
    acc, run_all = _load("accuracy_trees"), _load("run_all")
    per_seed = _per_seed()
    figures = acc.accuracy_figures(per_seed, acc.aggregate_seeds(per_seed))
    lines = run_all.accuracy_table({"figures": json.loads(json.dumps(figures))})
    assert lines[0] == "| trees (deepforest), same schedule, 3 seeds (mean ± sample std) | AP | AP50 | AP75 |"
    assert "| official YOLOX 0.3.0 | 30.0 ± 2.6 | 61.0 ± 2.0 | 25.0 ± 1.0 |" in lines
    assert "| yolox_d2 | 32.0 ± 2.0 | 62.0 ± 2.0 | 27.0 ± 2.0 |" in lines
    assert "| yolox_d2 − official | +2.0 ± 1.0 | +1.0 ± 2.0 | +2.0 ± 1.7 |" in lines
    # a single-seed report (NaN spread, through JSON) and an older report without spread keys
    one = acc.accuracy_figures({0: per_seed[0]}, acc.aggregate_seeds({0: per_seed[0]}))
    lines = run_all.accuracy_table({"figures": json.loads(json.dumps(one))})
    assert "| yolox_d2 | 30.0 | 60.0 | 25.0 |" in lines and "1 seed (one seed)" in lines[0]
    old = {"official_ap": 20.0, "official_ap50": 50.0, "ours_ap": 21.0, "ours_ap50": 51.0}
    assert run_all.accuracy_table({"figures": old})[2:] == ["| official YOLOX 0.3.0 | 20.0 | 50.0 |", "| yolox_d2 | 21.0 | 51.0 |"]
    assert run_all.accuracy_table({"figures": {"ours_ap": 1.0}}) == []


def test_machine_info_records_the_vector_isa_and_its_caps(monkeypatch):
    benchlib = _load("benchlib")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    isa = benchlib.machine_info()["vector ISA"]
    assert isa.split(";")[0].split()[0] in {"AVX-512", "AVX2", "below", "unknown"}
    assert "ONEDNN_MAX_CPU_ISA" not in isa
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert benchlib.vector_isa().endswith("ONEDNN_MAX_CPU_ISA=AVX2")
    # ATen's kernel level is fixed when torch loads: a lowered one shows in a fresh process.
    code = f"import sys; sys.path.insert(0, {str(REPO_ROOT / 'bench')!r}); import benchlib; print(benchlib.vector_isa())"
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "torch kernels: DEFAULT" in out
