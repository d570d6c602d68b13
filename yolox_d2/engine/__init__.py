"""Training-loop components of the YOLOX recipe for Detectron2 trainers.

``tools/lazyconfig_train_net.py`` wires all of this; the recipe, for custom training scripts
(hooks run in the order they are registered; the order below is required)::

    from detectron2.engine import hooks
    from yolox_d2.engine import (EMAHook, ModelEMA, MultiScaleHook, SyncBNStatsHook,
                                 YOLOXModeSwitchHook, ema_eval_function, multiscale_sizes)
    from yolox_d2.solver import YOLOXWarmCosineParamScheduler

    model = create_ddp_model(model, broadcast_buffers=False)    # yolox_d2's: CPU (gloo) too
    ema = ModelEMA(model, decay=0.9998, tau=2000)
    # SimpleTrainer / AMPTrainer that stop with a named error on a non-finite loss:
    trainer = create_guarded_trainer(model, train_loader, optimizer, amp=False)
    checkpointer = AtomicDetectionCheckpointer(model, output_dir, trainer=trainer, ema=ema)
    trainer.checkpointer = checkpointer                           # named in the error
    trainer.register_hooks([
        hooks.IterationTimer(),
        hooks.LRScheduler(scheduler=YOLOXWarmCosineParamScheduler.from_epochs(300)),
        # 1. after the optimizer step, before anything that saves or evaluates:
        EMAHook(ema, final_checkpointer=checkpointer),
        # 2. before_step/before_train only -- any position works:
        YOLOXModeSwitchHook.from_dataset(switch_iter, train_dataset),
        # 3. before PeriodicCheckpointer (its state, the seed, is saved with the trainer):
        MultiScaleHook(multiscale_sizes((640, 640)), period=10, initial_size=(640, 640)),
        hooks.PeriodicCheckpointer(checkpointer, period) if comm.is_main_process() else None,
        # 4. immediately before EvalHook, same period, on every rank:
        SyncBNStatsHook(eval_period, ema=ema),
        hooks.EvalHook(eval_period, ema_eval_function(lambda: do_test(cfg, model), model, ema)),
        hooks.PeriodicWriter(...) if comm.is_main_process() else None,
    ])
    checkpointer.resume_or_load(init_checkpoint, resume=resume)   # restores "ema" too
    start_iter = trainer.iter + 1 if resume and checkpointer.has_checkpoint() else 0
    trainer.train(start_iter, max_iter)

Checkpoints contain ``"model"`` (training weights), ``"optimizer"``, ``"trainer"`` (iteration,
LR scheduler state, multi-scale seed) and ``"ema"`` (EMA tensors and ``updates``). The EMA
weights as a plain weights file are written to ``model_final_ema.pth`` at the end.
"""

from .ema import EMAHook, ModelEMA, apply_ema, ema_eval_function, save_ema_weights
from .hooks import (
    MultiScaleHook,
    SyncBNStatsHook,
    YOLOXModeSwitchHook,
    all_reduce_bn_stats,
    bn_stat_keys,
    broadcast_ints_from_main,
    multiscale_sizes,
    unwrap_model,
)

__all__ = [
    "EMAHook",
    "ModelEMA",
    "MultiScaleHook",
    "SyncBNStatsHook",
    "YOLOXModeSwitchHook",
    "all_reduce_bn_stats",
    "apply_ema",
    "bn_stat_keys",
    "broadcast_ints_from_main",
    "ema_eval_function",
    "multiscale_sizes",
    "save_ema_weights",
    "unwrap_model",
]

from .ddp import create_ddp_model  # noqa: E402
from .predictor import YOLOXPredictor  # noqa: E402

__all__ += ["create_ddp_model", "YOLOXPredictor"]
