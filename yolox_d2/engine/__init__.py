"""Training-loop components of the YOLOX recipe for Detectron2 trainers.

:mod:`yolox_d2.engine.defaults` puts them together (``tools/lazyconfig_train_net.py`` runs its
:func:`~yolox_d2.engine.defaults.main`); :func:`~yolox_d2.engine.defaults.build_hooks` is the
hook list of the recipe, with the rules of its order.
"""

from ..utils.comm import broadcast_ints_from_main
from ..utils.model import unwrap_model
from .bn_stats import SyncBNStatsHook, all_reduce_bn_stats, bn_stat_keys
from .ddp import create_ddp_model
from .defaults import (
    build_ema,
    build_hooks,
    build_model,
    build_multiscale_hook,
    build_optimizer,
    build_train_loader,
    build_trainer,
    do_eval_only,
    do_test,
    do_train,
)
from .ema import EMAHook, ModelEMA, apply_ema, ema_eval_function, save_ema_weights
from .mode_switch import YOLOXModeSwitchHook
from .multiscale import MultiScaleHook, multiscale_sizes
from .predictor import YOLOXPredictor
from .sliced_inference import SlicedDetector

__all__ = [
    "EMAHook",
    "ModelEMA",
    "MultiScaleHook",
    "SlicedDetector",
    "SyncBNStatsHook",
    "YOLOXModeSwitchHook",
    "YOLOXPredictor",
    "all_reduce_bn_stats",
    "apply_ema",
    "bn_stat_keys",
    "broadcast_ints_from_main",
    "build_ema",
    "build_hooks",
    "build_model",
    "build_multiscale_hook",
    "build_optimizer",
    "build_train_loader",
    "build_trainer",
    "create_ddp_model",
    "do_eval_only",
    "do_test",
    "do_train",
    "ema_eval_function",
    "multiscale_sizes",
    "save_ema_weights",
    "unwrap_model",
]
