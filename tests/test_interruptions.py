"""
Interruptions never cost a run: checkpoints and the ``last_checkpoint`` tag are written
atomically (a failure or kill at any point leaves the previous complete checkpoint as the
latest), and a training run killed with SIGKILL resumes with ``--resume`` from its last
checkpoint with the same iteration, learning rate, EMA and augmentation mode, and finishes.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from torch import nn

from yolox_d2.checkpoint import AtomicDetectionCheckpointer
from yolox_d2.checkpoint import atomic as atomic_module
from yolox_d2.solver import YOLOXWarmCosineParamScheduler

from .train_net_runner import REPO_ROOT, SMALL_TREES, TRAIN_NET, resolved_config, run_train_net

TREES_CFG = "configs/deepforest/yolox_nano_trees.py"


class _Counter:
    """A checkpointable with a state (like the trainer / EMA)."""

    def __init__(self) -> None:
        self.value = 0

    def state_dict(self):
        return {"value": self.value}

    def load_state_dict(self, state):
        self.value = state["value"]


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 4))


def _crash_in_torch_save(monkeypatch, after_bytes=100):
    """Make torch.save write ``after_bytes`` bytes and then fail, like a kill mid-write."""
    real_save = torch.save

    def partial_save(obj, f, *args, **kwargs):
        import io

        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        f.write(buf.getvalue()[:after_bytes])
        raise OSError("simulated crash while writing the checkpoint")

    monkeypatch.setattr(torch, "save", partial_save)


def test_interrupted_save_keeps_the_previous_checkpoint_as_latest(tmp_path, monkeypatch):
    model, counter = _model(), _Counter()
    ckpt = AtomicDetectionCheckpointer(model, str(tmp_path), counter=counter)
    counter.value = 1
    ckpt.save("model_0000001", iteration=1)
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"

    counter.value = 2
    with monkeypatch.context() as m:
        _crash_in_torch_save(m)
        with pytest.raises(OSError, match="simulated crash"):
            ckpt.save("model_0000002", iteration=2)
    # nothing half-written under a checkpoint name, the tag unchanged, no temporary left
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000001.pth"]
    assert ckpt.get_checkpoint_file() == str(tmp_path / "model_0000001.pth")
    counter.value = 0
    assert ckpt.resume_or_load("", resume=True)["iteration"] == 1 and counter.value == 1

    # Detectron2's own checkpointer in the same situation leaves a truncated file in place
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    plain = DetectionCheckpointer(model, str(plain_dir), counter=counter)
    plain.save("model_0000001", iteration=1)
    with monkeypatch.context() as m:
        _crash_in_torch_save(m)
        with pytest.raises(OSError):
            plain.save("model_0000002", iteration=2)
    assert (plain_dir / "model_0000002.pth").stat().st_size == 100


def test_interrupted_tag_update_keeps_the_previous_tag(tmp_path, monkeypatch):
    model = _model()
    ckpt = AtomicDetectionCheckpointer(model, str(tmp_path))
    ckpt.save("model_0000001")
    real_replace = os.replace

    def failing_replace(src, dst):
        if os.path.basename(dst) == "last_checkpoint":
            raise OSError("simulated crash before the tag rename")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="before the tag rename"):
        ckpt.save("model_0000002")
    # the new checkpoint is complete, the tag still names the old one (never empty / partial)
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
    assert torch.load(tmp_path / "model_0000002.pth", weights_only=False)["model"].keys()
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp-ckpt")]


def test_temporaries_of_killed_writers_are_removed(tmp_path):
    stale = tmp_path / ".model_0000005.pth.999999.0badc0de.tmp-ckpt"
    stale.write_bytes(b"partial")
    unrelated = tmp_path / ".hidden_user_file"
    unrelated.write_bytes(b"x")
    AtomicDetectionCheckpointer(_model(), str(tmp_path)).save("model_0000006")
    assert not stale.exists() and unrelated.exists()
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000006.pth"


def test_ema_export_is_atomic(tmp_path, monkeypatch):
    from yolox_d2.engine import ModelEMA, save_ema_weights

    model = _model()
    ckpt = AtomicDetectionCheckpointer(model, str(tmp_path))
    ema = ModelEMA(model)
    with monkeypatch.context() as m:
        _crash_in_torch_save(m)
        with pytest.raises(OSError):
            save_ema_weights(ckpt, ema)
    assert not (tmp_path / "model_final_ema.pth").exists() and os.listdir(tmp_path) == []
    assert save_ema_weights(ckpt, ema) == str(tmp_path / "model_final_ema.pth")


# A process that saves checkpoints of a ~40 MB model in a loop, as fast as it can.
_WRITER = """
import sys, torch
from torch import nn
from yolox_d2.checkpoint import AtomicDetectionCheckpointer
model = nn.Sequential(*[nn.Linear(1024, 1024) for _ in range(10)])
ckpt = AtomicDetectionCheckpointer(model, sys.argv[1])
for i in range(10**6):
    with torch.no_grad():
        model[0].bias.fill_(i)
    ckpt.save(f"model_{i:07d}", iteration=i)
    print(i, flush=True)
"""


@pytest.mark.parametrize("delay", [0.05, 0.2])
def test_sigkill_during_checkpoint_writes_leaves_a_complete_latest(tmp_path, delay):
    """SIGKILL a process in the middle of its checkpoint writes: the tag names a whole file."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        for _ in range(3):  # a few complete saves, then kill at some point of a later one
            assert proc.stdout.readline(), "the writer died"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    last = (tmp_path / "last_checkpoint").read_text()
    ckpt = AtomicDetectionCheckpointer(_model(), str(tmp_path))
    assert ckpt.get_checkpoint_file() == str(tmp_path / last)
    for path in tmp_path.glob("model_*.pth"):  # every file under a checkpoint name is whole
        data = torch.load(path, map_location="cpu", weights_only=False)
        assert data["model"]["0.bias"][0].item() == data["iteration"] == int(path.stem.split("_")[1])
    saved = max(int(p.stem.split("_")[1]) for p in tmp_path.glob("model_*.pth"))
    assert last in (f"model_{saved:07d}.pth", f"model_{saved - 1:07d}.pth")  # killed before the tag


# ----------------------------------------------------------------------------- SIGKILL + resume
def _metrics(output_dir):
    """metrics.json rows, last row per iteration wins; a line cut by the kill is skipped."""
    rows = {}
    path = output_dir / "metrics.json"
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if "lr" in row:
            rows[row["iteration"]] = row
    return rows


def test_sigkill_mid_training_then_resume(tmp_path):
    max_iter, no_aug, period = 18, 9, 3
    switch_iter = max_iter - no_aug
    common = SMALL_TREES + [
        f"train.max_iter={max_iter}",
        f"train.no_aug_iters={no_aug}",
        f"train.checkpointer.period={period}",
        "train.checkpointer.max_to_keep=100",
        "train.eval_period=1000",
        f"train.output_dir={tmp_path}",
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    log_path = tmp_path.parent / f"{tmp_path.name}_killed.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(TRAIN_NET), "--config-file", TREES_CFG, *common],
            cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 600
        while not (tmp_path / "last_checkpoint").exists():
            assert proc.poll() is None, "training ended before its first checkpoint:\n" + log_path.read_text()[-4000:]
            assert time.monotonic() < deadline, "no checkpoint after 600 s"
            time.sleep(0.02)
        assert proc.poll() is None, "training finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        try:  # data-loader workers of the killed run
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    # Whatever the kill interrupted, the tag names a complete checkpoint, and every file
    # under a checkpoint name is complete.
    last = (tmp_path / "last_checkpoint").read_text()
    saved = sorted(p.name for p in tmp_path.glob("model_*.pth"))
    assert last in saved and "model_final.pth" not in saved, (last, saved)
    checkpoints = {n: torch.load(tmp_path / n, map_location="cpu", weights_only=False) for n in saved}
    ckpt = checkpoints[last]
    k = ckpt["iteration"]
    assert last == f"model_{k:07d}.pth" and (k + 1) % period == 0 and k < max_iter - 1
    assert ckpt["ema"]["updates"] == k + 1  # EMA state saved with the checkpoint

    proc2 = run_train_net(["--config-file", TREES_CFG, "--resume", *common])
    log2 = proc2.stdout + proc2.stderr
    assert proc2.returncode == 0, log2[-5000:]
    assert f"Loading from {tmp_path / last}" in log2
    assert f"Starting training from iteration {k + 1}" in log2
    assert f"Continuing the EMA from updates={k + 1}" in log2  # restored, not re-initialised
    first_no_aug = max(k + 1, switch_iter)
    assert f"Iteration {first_no_aug}: entering the no-augmentation phase" in log2

    metrics = _metrics(tmp_path)
    assert set(range(k + 1, max_iter)) <= set(metrics)
    cfg = resolved_config(TREES_CFG, common)
    schedule = YOLOXWarmCosineParamScheduler(**{key: v for key, v in cfg.lr_multiplier.items() if key != "_target_"})
    for it in range(k + 1, max_iter):
        assert metrics[it]["lr"] == pytest.approx(cfg.optimizer.lr * schedule(it / max_iter), rel=1e-6)
        if it < switch_iter:  # mosaic phase: no L1 loss (metrics are medians over 20 its)
            assert metrics[it]["loss_l1"] == 0, it
    assert metrics[max_iter - 1]["loss_l1"] > 0  # no-aug phase: L1 on
    final = torch.load(tmp_path / "model_final.pth", map_location="cpu", weights_only=False)
    assert final["iteration"] == max_iter - 1 and final["ema"]["updates"] == max_iter
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    assert (tmp_path / "model_final_ema.pth").exists()
