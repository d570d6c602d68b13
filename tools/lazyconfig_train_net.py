#!/usr/bin/env python
"""
Train and evaluate YOLOX with Detectron2's trainer, from a LazyConfig file:

    python tools/lazyconfig_train_net.py --config-file configs/yolox_s.py --num-gpus 8
    python tools/lazyconfig_train_net.py --config-file configs/yolox_s.py --num-gpus 8 --resume
    python tools/lazyconfig_train_net.py --config-file configs/yolox_s.py --eval-only \
        train.init_checkpoint=output/yolox_s/model_final.pth

Detectron2's command line (``--num-machines``, ``--machine-rank``, ``--dist-url``,
``key=value`` overrides). On top of Detectron2's own tool it runs the YOLOX recipe of
:mod:`yolox_d2.engine.defaults`: EMA (evaluated and checkpointed), the yoloxwarmcos schedule,
the no-augmentation phase with the L1 loss, multi-scale training agreed by all ranks and BN
statistics averaged before each evaluation. The schedule is written in epochs
(``train.schedule``) and resolved at start-up from the training set and the total batch
(``train.max_iter=N`` / ``optimizer.lr=X`` win); ``train.amp.enabled=True`` trains in mixed
precision (``train.amp.precision``: ``float16`` on CUDA, ``bfloat16`` on the CPU). ``--num-gpus
N`` also works on a CPU-only machine (gloo; ``train.device=cuda`` falls back to the CPU).
"""
from detectron2.engine import default_argument_parser, launch

import yolox_d2  # noqa: F401  (registers models and datasets)
from yolox_d2.engine.defaults import main


def invoke_main() -> None:
    args = default_argument_parser().parse_args()
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


if __name__ == "__main__":
    invoke_main()  # pragma: no cover
