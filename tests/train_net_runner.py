"""Run tools/lazyconfig_train_net.py in a subprocess, the way a user does."""
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN_NET = REPO_ROOT / "tools" / "lazyconfig_train_net.py"

# YOLOX-Nano on the bundled tree tiles, shrunk to run a few iterations in seconds on a CPU.
SMALL_TREES = [
    "train.device=cpu",
    "train.seed=0",
    "train.log_period=1",
    "train.multiscale.enabled=False",
    "dataloader.train.total_batch_size=2",
    "dataloader.train.num_workers=1",
    "dataloader.train.dataset.image_size=[160,160]",
    "dataloader.test.mapper.image_size=[160,160]",
    "model.test_square_size=160",
]


# Records registered by deepforest_trees_train (what the schedule counts as one epoch).
TREES_TRAIN_LENGTH = 66


def resolved_config(config_file: str, overrides: List[str], dataset_length: int = TREES_TRAIN_LENGTH, world_size: int = 1):
    """``config_file`` with ``overrides`` and its schedule resolved as the training tool does
    (``dataset_length`` training records, ``world_size`` processes)."""
    from detectron2.config import LazyConfig

    from yolox_d2.solver import resolve_schedule

    cfg = LazyConfig.apply_overrides(LazyConfig.load(str(REPO_ROOT / config_file)), overrides)
    resolve_schedule(cfg, dataset_length, world_size).apply(cfg)
    return cfg


def run_train_net(args: List[str], timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    return subprocess.run(
        [sys.executable, str(TRAIN_NET), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def read_metrics(output_dir) -> List[dict]:
    """Detectron2's metrics.json: one JSON object per line."""
    path = Path(output_dir) / "metrics.json"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
