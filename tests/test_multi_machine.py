"""
Multi-machine launch: two processes started as two machines (``--num-machines 2 --machine-rank
0|1 --dist-url tcp://127.0.0.1:PORT``, Detectron2's ``launch()``, gloo, one process each) give the
same loss and gradients as one process over the same global batch, and agree on the multi-scale
size and the augmentation switch (the checks of tests/test_distributed_equivalence.py).
"""
import os
import socket
import subprocess
import sys

from .ddp_equivalence import check_ranks_match_one_process, write_global_batch
from .train_net_runner import REPO_ROOT


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_machines_match_one_process(tmp_path, monkeypatch):
    batch = write_global_batch(tmp_path)
    url = f"tcp://127.0.0.1:{_free_port()}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    machines = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.multi_machine_worker", str(rank), url, str(tmp_path)],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for rank in (0, 1)
    ]
    try:
        logs = [m.communicate(timeout=600)[0] for m in machines]
    finally:
        for m in machines:
            if m.poll() is None:
                m.kill()
    for rank, (m, log) in enumerate(zip(machines, logs)):
        assert m.returncode == 0, f"machine {rank}:\n{log[-4000:]}"
    check_ranks_match_one_process(tmp_path, batch, monkeypatch)
