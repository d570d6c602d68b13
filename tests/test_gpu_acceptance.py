"""bench/gpu_acceptance.py --dry-run: every section of the GPU acceptance runs on the CPU at tiny
sizes and the results file says what ran (so that the script cannot rot between GPU runs)."""
import os
import subprocess
import sys

from .conftest import REPO_ROOT

SECTIONS = (
    "1. Mixed-precision training (float16, bfloat16) of YOLOX-S on the tree tiles",
    "2. Forward latency beside the official model (float16, batch 1 and 32, S and L)",
    "3. SimOTA on the device against the official loop",
    "4. The training tool with --num-gpus 1",
    "5. DDP wrapping on the device",
    "6. ONNX export with --verify",
)


def test_dry_run_writes_every_section(tmp_path):
    output = tmp_path / "RESULTS_GPU.md"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "gpu_acceptance.py"), "--dry-run", "--output", str(output)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env=env,
    )
    text = output.read_text()
    assert proc.returncode == 0, text[-4000:] + proc.stderr[-3000:]
    assert text.startswith("# yolox_d2 GPU acceptance (DRY RUN on the CPU")
    for title in SECTIONS:
        assert f"| {title} | passed |" in text, title
        assert f"## {title}\n\n**passed**" in text, title
    assert "## Missing pieces\n\n- none" in text
    # the figures each section reports
    assert "| float16 | 3 |" in text and "| bfloat16 | 3 |" in text  # AMP training rows
    assert "| nano@416 | plain | 1 | float32 |" in text  # bench_forward's table
    assert "| 1 x 5 | 1 |" in text  # SimOTA, checked identical to the official first
    assert "device: CPU (fell back: no CUDA, one warning)" in text
    assert "`create_ddp_model` gave `DistributedDataParallel`" in text and "max |grad(rank 0) - grad(rank 1)| = 0" in text
    assert "Verified onnx" in text
