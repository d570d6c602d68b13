"""
One "machine" of tests/test_multi_machine.py, started as a process of its own::

    python -m tests.multi_machine_worker MACHINE_RANK DIST_URL OUT_DIR

runs Detectron2's ``launch()`` with one process on this machine and two machines in all (gloo on
the CPU), then saves that rank's loss, gradients, multi-scale size and augmentation switch to
``OUT_DIR/rank<rank>.pth`` (:func:`tests.ddp_equivalence.save_rank_results`).
"""
import sys

import pytest
import torch
from detectron2.engine import launch
from detectron2.utils import comm


def machine_main(out_dir: str) -> None:
    from tests.ddp_equivalence import record_num_fg, save_rank_results

    torch.set_num_threads(1)
    record_num_fg(pytest.MonkeyPatch())
    save_rank_results(comm.get_rank(), out_dir)


if __name__ == "__main__":
    # by its module name, so that launch()'s spawned process finds it
    from tests.multi_machine_worker import machine_main as main_func

    machine_rank, dist_url, out_dir = sys.argv[1:]
    launch(main_func, 1, num_machines=2, machine_rank=int(machine_rank), dist_url=dist_url, args=(out_dir,))
