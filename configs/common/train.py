"""
Training settings for tools/lazyconfig_train_net.py (:mod:`yolox_d2.engine.defaults`):
Detectron2's ``train`` dict plus the YOLOX recipe (300 epochs, yoloxwarmcos, EMA, multi-scale,
no-augmentation last 15 epochs).

The schedule is written in epochs; derived configs change it with :func:`yolox_schedule`.
"""
from detectron2.config import LazyCall as L

from yolox_d2.solver import YOLOXWarmCosineParamScheduler, epochs_to_fractions

train = dict(
    output_dir="./output/yolox",
    init_checkpoint="",
    max_iter=0,  # set by yolox_schedule()
    no_aug_iters=0,  # last iterations without Mosaic/MixUp and with the L1 loss
    amp=dict(enabled=False),
    ddp=dict(broadcast_buffers=False, find_unused_parameters=False, fp16_compression=False),
    checkpointer=dict(period=0, max_to_keep=3),
    eval_period=0,
    log_period=20,
    device="cuda",
    seed=-1,  # -1: random (Detectron2's default_setup); >= 0 makes multi-scale reproducible
    ema=dict(enabled=True, decay=0.9998, tau=2000),
    # One size per `period` iterations, chosen on rank 0: base +- `range` x `step` px, or
    # `random_size` = (min, max) x step when set (Tiny/Nano: (10, 20), i.e. 320-640).
    multiscale=dict(enabled=True, range=5, step=32, period=10, random_size=None),
)

# warmup_fraction / no_aug_fraction: set by yolox_schedule()
lr_multiplier = L(YOLOXWarmCosineParamScheduler)(min_lr_ratio=0.05)


def yolox_schedule(
    train,
    lr_multiplier,
    *,
    epochs: int,
    iters_per_epoch: int,
    warmup_epochs: float = 5,
    no_aug_epochs: float = 15,
    eval_every_epochs: float = 10,
):
    """Fill the iteration counts of ``train`` and the fractions of ``lr_multiplier`` from epochs."""
    # item access: `train` is a dict here and a DictConfig in derived configs
    train["max_iter"] = int(epochs * iters_per_epoch)
    train["no_aug_iters"] = int(no_aug_epochs * iters_per_epoch)
    train["eval_period"] = max(int(eval_every_epochs * iters_per_epoch), 1)
    train["checkpointer"]["period"] = train["eval_period"]
    lr_multiplier.update(epochs_to_fractions(epochs, warmup_epochs, no_aug_epochs))


# COCO train2017 (118,287 images) at 64 images per iteration, 300 epochs.
yolox_schedule(train, lr_multiplier, epochs=300, iters_per_epoch=118287 // 64)
