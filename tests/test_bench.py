"""
The benchmark harness in bench/ (not the figures: those live in bench/RESULTS.md): alternating
timers, the targets summary of run_all.py, and a smoke run of one side-by-side script.
"""
import importlib.util
import json
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
        "forward": report(s_plain_b1_ratio=0.65, s_fused_b1_ratio=0.75),
        "simota": report(legacy_b8_g50_speedup=12.0),
    }
    rows = "\n".join(run_all.target_table(reports))
    assert "| S@640 forward, plain BN: ours / official time | <= 0.7 | 0.650 | yes |" in rows
    assert "| S@640 forward, fused BN: ours / official time | <= 0.7 | 0.750 | **no** |" in rows
    assert "| SimOTA 2021 rule, batch 8 x 50 gts: official / ours time | >= 10 | 12.000 | yes |" in rows
    assert "2023 rule, batch 8 x 50 gts: official / ours time | >= 3 | not run |" in rows
    text = run_all.compose(reports, {"data": "exit code 1"}, {"cpu": "x"}, "python bench/run_all.py", {})
    assert "## Benchmarks that failed" in text and "`data`: exit code 1" in text


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
