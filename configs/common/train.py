"""
Training settings for tools/lazyconfig_train_net.py (:mod:`yolox_d2.engine.defaults`):
Detectron2's ``train`` dict plus the YOLOX recipe (300 epochs, yoloxwarmcos, EMA, multi-scale,
no-augmentation last 15 epochs).

The schedule is written in epochs (``train.schedule``) and resolved at start-up from the training
set's length and the total batch (:mod:`yolox_d2.solver.schedule`): ``train.max_iter``,
``train.no_aug_iters``, ``train.eval_period``, ``train.checkpointer.period``, ``optimizer.lr``
and the fractions of ``lr_multiplier`` are left ``None`` here and filled then; a value set by
the user wins (an explicit ``train.max_iter`` compresses the whole schedule into it). COCO
train2017 at 64 images per iteration: 118,287 // 64 = 1848 iterations per epoch, 554,400 in all.
"""
from detectron2.config import LazyCall as L

from yolox_d2.solver import YOLOXWarmCosineParamScheduler

train = dict(
    output_dir="./output/yolox",
    init_checkpoint="",
    # the official recipe; lr = base_lr x total batch / base_batch_size
    schedule=dict(
        epochs=300,
        warmup_epochs=5,
        no_aug_epochs=15,
        eval_every_epochs=10,
        checkpoint_every_epochs=10,
        base_lr=0.01,
        base_batch_size=64,
    ),
    max_iter=None,  # None: train.schedule.epochs
    no_aug_iters=None,  # last iterations without Mosaic/MixUp and with the L1 loss
    # float16 (+ GradScaler) is the official CUDA recipe; bfloat16 (no scaler) on the CPU
    # (float16 works there too, slowly) and on CUDA. SimOTA and the losses run in float32.
    amp=dict(enabled=False, precision="float16"),
    ddp=dict(broadcast_buffers=False, find_unused_parameters=False, fp16_compression=False),
    checkpointer=dict(period=None, max_to_keep=3),
    eval_period=None,
    log_period=20,
    device="cuda",  # falls back to the CPU (one warning) when CUDA is not available
    seed=-1,  # -1: random (Detectron2's default_setup); >= 0 makes multi-scale reproducible
    ema=dict(enabled=True, decay=0.9998, tau=2000),
    # One size per `period` iterations (whatever the batch, as the official), chosen on rank 0:
    # base +- `range` x `step` px, or `random_size` = (min, max) x step when set (Tiny/Nano:
    # (10, 20), i.e. 320-640).
    multiscale=dict(enabled=True, range=5, step=32, period=10, random_size=None),
)

# warmup_fraction / no_aug_fraction: None, resolved from train.schedule at start-up
lr_multiplier = L(YOLOXWarmCosineParamScheduler)(warmup_fraction=None, no_aug_fraction=None, min_lr_ratio=0.05)
