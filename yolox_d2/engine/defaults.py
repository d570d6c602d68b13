"""
The YOLOX recipe on Detectron2's trainer, from a LazyConfig, in the spirit of
:mod:`detectron2.engine.defaults`: what ``tools/lazyconfig_train_net.py`` runs, as functions a
custom training script can call one by one::

    cfg = LazyConfig.load("configs/yolox_s.py")
    do_train(cfg, resume=False)            # or, piece by piece:

    model = build_model(cfg)
    train_dataset, train_loader = build_train_loader(cfg)
    resolve_schedule(cfg, training_set_length(train_dataset), comm.get_world_size()).apply(cfg)
    optimizer = build_optimizer(cfg, model)  # optimizer.lr is resolved
    ema = build_ema(cfg, model)            # before the DDP wrapping
    trainer = build_trainer(cfg, model, train_loader, optimizer, ema=ema)
    trainer.register_hooks(build_hooks(cfg, trainer, train_dataset, ema=ema))
    trainer.checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=False)
    trainer.train(0, cfg.train.max_iter)

:func:`do_train` also falls back to the CPU when ``train.device`` is CUDA and no GPU is
present (one warning), resolves the schedule written in epochs (``train.schedule``,
:mod:`yolox_d2.solver.schedule`) once the training set is built, and runs the start-up data
checks (:mod:`yolox_d2.engine.startup_checks`) before iteration 0.

Checkpoints contain ``"model"`` (training weights), ``"optimizer"``, ``"trainer"`` (iteration,
LR scheduler state, multi-scale seed; with AMP the gradient scaler) and ``"ema"`` (EMA tensors
and ``updates``). The EMA weights as a plain weights file are written to
``model_final_ema.pth`` at the end.
"""

import logging
from typing import Any, Dict, List, Optional, Tuple

from torch import nn

from detectron2.config import LazyConfig, instantiate
from detectron2.engine import default_setup, default_writers, hooks
from detectron2.engine.train_loop import HookBase, TrainerBase
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..checkpoint import AtomicDetectionCheckpointer
from ..solver import resolve_schedule, training_set_length
from ..utils.model import unwrap_model
from .amp import create_guarded_trainer
from .bn_stats import SyncBNStatsHook
from .ddp import create_ddp_model
from .ema import EMAHook, ModelEMA, ema_eval_function
from .mode_switch import YOLOXModeSwitchHook
from .multiscale import MultiScaleHook, multiscale_sizes
from .predictor import build_inference_model, resolve_device
from .startup_checks import check_evaluation_datasets, check_training_start

__all__ = [
    "build_model",
    "build_optimizer",
    "build_train_loader",
    "build_ema",
    "build_trainer",
    "build_multiscale_hook",
    "build_hooks",
    "do_test",
    "do_train",
    "do_eval_only",
    "main",
]

logger = logging.getLogger(__name__)


def build_model(cfg) -> nn.Module:
    """Instantiate ``cfg.model``, log it and move it to ``cfg.train.device``.

    Args:
        cfg: a LazyConfig with ``model`` and ``train.device``.
    """
    model = instantiate(cfg.model)
    logger.info("Model:\n%s", model)
    model.to(cfg.train.device)
    return model


def build_optimizer(cfg, model: nn.Module):
    """Instantiate ``cfg.optimizer`` for the parameters of ``model``.

    Args:
        cfg: a LazyConfig whose ``optimizer.params`` takes a ``model`` (Detectron2's
            ``get_default_optimizer_params``); it is set to ``model``. ``optimizer.lr`` must be
            resolved (:func:`~yolox_d2.solver.resolve_schedule`) when the config leaves it None.
        model: the model to train (not yet DDP-wrapped).
    """
    cfg.optimizer.params.model = model
    return instantiate(cfg.optimizer)


def build_train_loader(cfg, dataset_dicts: Optional[List[Dict[str, Any]]] = None) -> Tuple[Any, Any]:
    """Instantiate the training dataset first, so that the hooks can reach it, then its loader.

    ``cfg`` is left unchanged (its other entries may interpolate the dataset's settings, e.g.
    the test size follows ``dataloader.train.dataset.image_size``).

    Args:
        cfg: a LazyConfig with ``dataloader.train`` taking a ``dataset``.
        dataset_dicts: the training records, already built from
            ``dataloader.train.dataset.dataset_dicts`` (:func:`do_train` checks them first);
            None: instantiated here.

    Returns:
        ``(dataset, loader)``.
    """
    if dataset_dicts is None:
        dataset = instantiate(cfg.dataloader.train.dataset)
    else:
        dataset_args = dict(cfg.dataloader.train.dataset.items())
        # a call returning the records: instantiate() would copy a plain list (and its type)
        dataset_args["dataset_dicts"] = {"_target_": lambda: dataset_dicts}
        dataset = instantiate(dataset_args)
    loader_args = dict(cfg.dataloader.train.items())
    loader_args["dataset"] = dataset
    return dataset, instantiate(loader_args)


def build_ema(cfg, model: nn.Module) -> Optional[ModelEMA]:
    """The :class:`ModelEMA` of ``model`` when ``cfg.train.ema.enabled``, else ``None``.

    Args:
        cfg: a LazyConfig with ``train.ema`` (``enabled``, ``decay``, ``tau``).
        model: the model to track (build it before the DDP wrapping).
    """
    if not cfg.train.ema.enabled:
        return None
    return ModelEMA(model, decay=cfg.train.ema.decay, tau=cfg.train.ema.tau)


def build_trainer(
    cfg, model: nn.Module, train_loader, optimizer, ema: Optional[ModelEMA] = None
) -> TrainerBase:
    """The trainer of the recipe, with its checkpointer as ``trainer.checkpointer``.

    The model is wrapped for distributed training (:func:`~yolox_d2.engine.create_ddp_model`
    with ``cfg.train.ddp``; CPU/gloo too); the trainer is Detectron2's ``SimpleTrainer``, or
    with ``cfg.train.amp.enabled`` the :class:`~yolox_d2.engine.amp.GuardedAMPTrainer`
    (autocast on the model's device in ``cfg.train.amp.precision``: ``float16`` with a gradient
    scaler whose skipped steps are counted and whose state is checkpointed, or ``bfloat16``);
    both stop on a NaN/inf loss before the optimizer step, naming the loss terms and the last
    checkpoint; the checkpointer writes atomically (a run killed at any moment leaves a
    complete last checkpoint) and saves ``ema`` too.

    Args:
        cfg: a LazyConfig with ``train.ddp``, ``train.amp`` (``enabled``, ``precision``) and
            ``train.output_dir``.
        model: the model to train (not yet DDP-wrapped).
        train_loader: the training data loader.
        optimizer: the optimizer of ``model``'s parameters.
        ema: the EMA to checkpoint with the model (key ``"ema"``), or ``None``.

    Returns:
        The trainer; ``trainer.model`` is the (DDP-wrapped) model.
    """
    model = create_ddp_model(model, **cfg.train.ddp)
    amp = cfg.train.amp
    trainer = create_guarded_trainer(
        model, train_loader, optimizer, amp=amp.enabled, precision=amp.get("precision", "float16")
    )
    checkpointables = {"trainer": trainer}
    if ema is not None:
        checkpointables["ema"] = ema
    # named in the error of a non-finite loss
    trainer.checkpointer = AtomicDetectionCheckpointer(model, cfg.train.output_dir, **checkpointables)
    return trainer


def build_multiscale_hook(cfg) -> Optional[MultiScaleHook]:
    """The recipe's multi-scale hook from ``cfg.train.multiscale`` (``None`` when disabled),
    around the training size ``dataloader.train.dataset.image_size``, seeded by
    ``train.seed`` (random when negative)."""
    multiscale = cfg.train.multiscale
    if not multiscale.enabled:
        return None
    base_size = tuple(cfg.dataloader.train.dataset.image_size)
    return MultiScaleHook(
        multiscale_sizes(base_size, multiscale.range, multiscale.step, random_size=multiscale.random_size),
        period=multiscale.period,
        initial_size=base_size,
        seed=cfg.train.seed if cfg.train.seed >= 0 else None,
    )


def build_hooks(
    cfg, trainer: TrainerBase, train_dataset, ema: Optional[ModelEMA] = None
) -> List[HookBase]:
    """The hooks of the YOLOX recipe, in the order they must be registered.

    Hooks run in the order they are registered; the comments in the list give the rules.

    Args:
        cfg: the LazyConfig, its schedule resolved (``train``: ``max_iter``, ``no_aug_iters``,
            ``multiscale``, ``seed``, ``checkpointer``, ``eval_period``, ``log_period``, ``output_dir``;
            ``lr_multiplier``; ``dataloader.train.dataset.image_size``, and
            ``dataloader.test`` / ``dataloader.evaluator`` for the evaluations).
        trainer: the trainer of :func:`build_trainer` (its ``model`` and ``checkpointer``).
        train_dataset: the training dataset, with ``set_mosaic_enabled(enabled)``.
        ema: the EMA of the model (updated, evaluated, exported), or ``None``.

    Returns:
        The hooks for ``trainer.register_hooks``.
    """
    model, checkpointer = trainer.model, trainer.checkpointer
    # The no-augmentation phase turns Mosaic/MixUp off for any detector; its extra L1 loss is
    # YOLOX's own (Detectron2's RetinaNet, FCOS, ... have none to switch on).
    set_l1_loss = None if hasattr(unwrap_model(model), "use_l1_loss") else (lambda enabled: None)
    max_iter = cfg.train.max_iter
    eval_function = lambda: do_test(cfg, model)  # noqa: E731
    if ema is not None:
        eval_function = ema_eval_function(eval_function, model, ema)
    hook_list = [
        hooks.IterationTimer(),
        hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
        # 1. EMA right after the optimizer step, before anything that saves or evaluates: the
        #    checkpoint and evaluation of iteration i include the EMA update of iteration i.
        EMAHook(ema, final_checkpointer=checkpointer) if ema is not None else None,
        # 2. before_train / before_step only: any position works.
        YOLOXModeSwitchHook.from_dataset(max_iter - cfg.train.no_aug_iters, train_dataset, set_l1_loss),
        # 3. before PeriodicCheckpointer (its state, the seed, is saved with the trainer);
        #    on every rank (rank 0's size is broadcast).
        build_multiscale_hook(cfg),
        hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer)
        if comm.is_main_process()
        else None,
        # 4. immediately before EvalHook, with the same period, on every rank.
        SyncBNStatsHook(cfg.train.eval_period, ema=ema),
        hooks.EvalHook(cfg.train.eval_period, eval_function),
        # 5. writers last, so that they write what the hooks above put into the storage (the
        #    learning rate, the multi-scale size, the evaluation results).
        hooks.PeriodicWriter(default_writers(cfg.train.output_dir, max_iter), period=cfg.train.log_period)
        if comm.is_main_process()
        else None,
    ]
    return [h for h in hook_list if h is not None]


def do_test(cfg, model: nn.Module) -> Dict[str, Any]:
    """Evaluate ``model`` on ``cfg.dataloader.test`` with ``cfg.dataloader.evaluator``.

    Args:
        cfg: a LazyConfig; without ``dataloader.evaluator`` nothing is evaluated.
        model: the model to evaluate (DDP-wrapped or not).

    Returns:
        The evaluator's results (also printed in CSV form), ``{}`` without an evaluator.
    """
    if "evaluator" in cfg.dataloader:
        ret = inference_on_dataset(
            model, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator)
        )
        print_csv_format(ret)
        return ret
    return {}


def do_train(cfg, resume: bool = False) -> None:
    """Train ``cfg`` with the YOLOX recipe (see the module docstring), evaluating on the way.

    Start-up, in this order: ``train.device`` (CUDA falls back to the CPU with a warning when
    no GPU is present), the model, the training records, the data checks
    (:func:`~yolox_d2.engine.startup_checks.check_training_start`: a broken evaluation image
    or a class count that differs stops here), the training set and its loader, the schedule
    (:func:`~yolox_d2.solver.resolve_schedule` applied to ``cfg``, logged once), then the
    optimizer, EMA, trainer and hooks.

    Args:
        cfg: the LazyConfig (changed in place: ``train.device`` and the resolved schedule).
        resume: continue from the last checkpoint of ``cfg.train.output_dir`` when there is
            one (iteration, optimizer, LR schedule, EMA, multi-scale seed, gradient scaler);
            otherwise start at iteration 0 from ``cfg.train.init_checkpoint``.
    """
    cfg.train.device = resolve_device(cfg.train.device)
    model = build_model(cfg)
    dicts_cfg = cfg.dataloader.train.dataset.get("dataset_dicts", None)
    train_dicts = instantiate(dicts_cfg) if dicts_cfg is not None else None
    check_training_start(cfg, model, train_dicts)
    train_dataset, train_loader = build_train_loader(cfg, dataset_dicts=train_dicts)
    resolve_schedule(cfg, training_set_length(train_dataset), comm.get_world_size()).apply(cfg)
    optimizer = build_optimizer(cfg, model)
    ema = build_ema(cfg, model)
    trainer = build_trainer(cfg, model, train_loader, optimizer, ema=ema)
    trainer.register_hooks(build_hooks(cfg, trainer, train_dataset, ema=ema))

    checkpointer = trainer.checkpointer
    checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=resume)
    start_iter = trainer.iter + 1 if resume and checkpointer.has_checkpoint() else 0
    trainer.train(start_iter, cfg.train.max_iter)


def do_eval_only(cfg) -> Dict[str, Any]:
    """Evaluate ``cfg.train.init_checkpoint``: its EMA weights when it has them, as the demo and
    the export use, after checking the evaluation datasets
    (:func:`~yolox_d2.engine.startup_checks.check_evaluation_datasets`).

    Args:
        cfg: the LazyConfig.

    Returns:
        The results of :func:`do_test`.
    """
    model = build_inference_model(cfg, device=cfg.train.device, fuse=False)
    check_evaluation_datasets(cfg, model)
    return do_test(cfg, create_ddp_model(model))


def main(args) -> Optional[Dict[str, Any]]:
    """Load ``args.config_file`` with the ``args.opts`` overrides, set up logging and the output
    folder, then train (``args.resume``) or evaluate (``args.eval_only``).

    Args:
        args: the parsed arguments of Detectron2's ``default_argument_parser()``.

    Returns:
        The results of :func:`do_eval_only` with ``--eval-only``, else ``None``.
    """
    cfg = LazyConfig.load(args.config_file)
    cfg = LazyConfig.apply_overrides(cfg, args.opts)
    default_setup(cfg, args)
    # yolox_d2's own messages (data validation summary, skipped images, phase switches)
    setup_logger(cfg.train.output_dir, distributed_rank=comm.get_rank(), name="yolox_d2").setLevel(logging.INFO)
    if args.eval_only:
        return do_eval_only(cfg)
    do_train(cfg, resume=args.resume)
    return None
