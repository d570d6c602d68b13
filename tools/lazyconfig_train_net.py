#!/usr/bin/env python
"""
Train and evaluate YOLOX with Detectron2's trainer, from a LazyConfig file:

    python tools/lazyconfig_train_net.py --config-file configs/yolox_s.py --num-gpus 8
    python tools/lazyconfig_train_net.py --config-file configs/yolox_s.py --num-gpus 8 --resume
    python tools/lazyconfig_train_net.py --config-file configs/yolox_s.py --eval-only \
        train.init_checkpoint=output/yolox_s/model_final.pth

Detectron2's command line (``--num-machines``, ``--machine-rank``, ``--dist-url``,
``key=value`` overrides). On top of Detectron2's own tool it wires the YOLOX recipe: EMA
(evaluated and checkpointed), the yoloxwarmcos schedule, the no-augmentation phase with the
L1 loss, multi-scale training agreed by all ranks and BN statistics averaged before each
evaluation. ``--num-gpus N`` also works on a CPU-only machine (gloo).
"""
import logging

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import LazyConfig, instantiate
from detectron2.engine import (
    default_argument_parser,
    default_setup,
    default_writers,
    hooks,
    launch,
)
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

import yolox_d2  # noqa: F401  (registers models and datasets)
from yolox_d2.engine import (
    EMAHook,
    ModelEMA,
    MultiScaleHook,
    SyncBNStatsHook,
    YOLOXModeSwitchHook,
    ema_eval_function,
    multiscale_sizes,
)
from yolox_d2.checkpoint import AtomicDetectionCheckpointer
from yolox_d2.engine.ddp import create_ddp_model
from yolox_d2.engine.guards import create_guarded_trainer
from yolox_d2.engine.predictor import build_inference_model

logger = logging.getLogger("detectron2")


def do_test(cfg, model):
    if "evaluator" in cfg.dataloader:
        ret = inference_on_dataset(
            model, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator)
        )
        print_csv_format(ret)
        return ret
    return {}


def build_train_loader(cfg):
    """Instantiate the training dataset first, so the hooks can reach it, then its loader."""
    dataset = instantiate(cfg.dataloader.train.dataset)
    loader_cfg = cfg.dataloader.train
    loader_cfg.dataset = dataset
    return dataset, instantiate(loader_cfg)


def do_train(args, cfg):
    model = instantiate(cfg.model)
    logger.info("Model:\n%s", model)
    model.to(cfg.train.device)
    # The no-augmentation phase turns Mosaic/MixUp off for any detector; its extra L1 loss is
    # YOLOX's own (Detectron2's RetinaNet, FCOS, ... have none to switch on).
    set_l1_loss = None if hasattr(model, "use_l1_loss") else (lambda enabled: None)

    cfg.optimizer.params.model = model
    optim = instantiate(cfg.optimizer)
    train_dataset, train_loader = build_train_loader(cfg)

    ema = ModelEMA(model, decay=cfg.train.ema.decay, tau=cfg.train.ema.tau) if cfg.train.ema.enabled else None
    model = create_ddp_model(model, **cfg.train.ddp)
    # stops on a NaN/inf loss before the optimizer step, naming the terms and last checkpoint
    trainer = create_guarded_trainer(model, train_loader, optim, amp=cfg.train.amp.enabled)
    checkpointables = {"trainer": trainer}
    if ema is not None:
        checkpointables["ema"] = ema
    # atomic writes: a run killed at any moment leaves a complete last checkpoint
    checkpointer = AtomicDetectionCheckpointer(model, cfg.train.output_dir, **checkpointables)
    trainer.checkpointer = checkpointer

    max_iter = cfg.train.max_iter
    switch_iter = max_iter - cfg.train.no_aug_iters
    multiscale = cfg.train.multiscale
    base_size = tuple(cfg.dataloader.train.dataset.image_size)
    eval_fn = lambda: do_test(cfg, model)  # noqa: E731
    if ema is not None:
        eval_fn = ema_eval_function(eval_fn, model, ema)
    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
            # EMA right after the optimizer step, before anything that saves or evaluates.
            EMAHook(ema, final_checkpointer=checkpointer) if ema is not None else None,
            YOLOXModeSwitchHook.from_dataset(switch_iter, train_dataset, set_l1_loss),
            MultiScaleHook(
                multiscale_sizes(
                    base_size, multiscale.range, multiscale.step, random_size=multiscale.random_size
                ),
                period=multiscale.period,
                initial_size=base_size,
                seed=cfg.train.seed if cfg.train.seed >= 0 else None,
            )
            if multiscale.enabled
            else None,
            hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer)
            if comm.is_main_process()
            else None,
            SyncBNStatsHook(cfg.train.eval_period, ema=ema),
            hooks.EvalHook(cfg.train.eval_period, eval_fn),
            hooks.PeriodicWriter(
                default_writers(cfg.train.output_dir, max_iter), period=cfg.train.log_period
            )
            if comm.is_main_process()
            else None,
        ]
    )

    checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=args.resume)
    start_iter = trainer.iter + 1 if args.resume and checkpointer.has_checkpoint() else 0
    trainer.train(start_iter, max_iter)


def do_eval_only(cfg):
    # The checkpoint's EMA weights when it has them, as the demo and the export use.
    model = build_inference_model(cfg, device=cfg.train.device, fuse=False)
    return do_test(cfg, create_ddp_model(model))


def main(args):
    cfg = LazyConfig.load(args.config_file)
    cfg = LazyConfig.apply_overrides(cfg, args.opts)
    default_setup(cfg, args)
    # yolox_d2's own messages (data validation summary, skipped images, phase switches)
    setup_logger(cfg.train.output_dir, distributed_rank=comm.get_rank(), name="yolox_d2").setLevel(logging.INFO)
    if args.eval_only:
        return do_eval_only(cfg)
    do_train(args, cfg)


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
