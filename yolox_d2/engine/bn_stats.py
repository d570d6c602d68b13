"""BatchNorm running statistics averaged across workers before each evaluation.

With ``DistributedDataParallel(broadcast_buffers=False)`` (the YOLOX recipe) every worker keeps
its own BatchNorm statistics; :class:`SyncBNStatsHook` averages them (and the EMA's) right
before the evaluation, so that every worker evaluates the same model.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, List, Optional

from torch import nn

from detectron2.engine.train_loop import HookBase

from ..utils.comm import all_reduce_mean_, get_world_size
from ..utils.model import unwrap_model

if TYPE_CHECKING:  # pragma: no cover - import only for type annotations
    from .ema import ModelEMA

__all__ = ["bn_stat_keys", "all_reduce_bn_stats", "SyncBNStatsHook"]

logger = logging.getLogger(__name__)


def bn_stat_keys(model: nn.Module) -> List[str]:
    """Names (state-dict keys of the unwrapped model) of the BatchNorm running statistics.

    Covers every normalisation layer derived from ``torch.nn.modules.batchnorm._NormBase``
    that tracks running statistics (``BatchNorm1d/2d/3d``, ``SyncBatchNorm``, Detectron2's
    ``NaiveSyncBatchNorm``, ``InstanceNorm*`` with ``track_running_stats=True``): their
    ``running_mean`` and ``running_var``. ``num_batches_tracked`` (an integer counter) is left
    out. Detectron2's ``FrozenBatchNorm2d`` is not included (its statistics never change).

    Args:
        model: the model (wrappers are removed with :func:`unwrap_model`).
    """
    keys: List[str] = []
    for name, module in unwrap_model(model).named_modules():
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
            prefix = f"{name}." if name else ""
            for buffer_name in ("running_mean", "running_var"):
                if getattr(module, buffer_name, None) is not None:
                    keys.append(prefix + buffer_name)
    return keys


def all_reduce_bn_stats(
    model: nn.Module, ema: Optional["ModelEMA"] = None, group: Optional[Any] = None
) -> int:
    """Average BatchNorm running statistics across all workers (in place).

    The YOLOX recipe does this before every evaluation (official ``all_reduce_norm``): with
    ``DistributedDataParallel(broadcast_buffers=False)`` every worker keeps its own BN
    statistics. If ``ema`` is given, the BN statistics held by the EMA are averaged too (the
    official code only averages the training model; averaging the EMA as well makes the
    evaluated model identical on all workers).

    Must be called by every rank of ``group``. A no-op (returns 0) in a single process.

    Args:
        model: the training model (DDP-wrapped or not).
        ema: optional :class:`~yolox_d2.engine.ema.ModelEMA` whose BN statistics to average.
        group: process group; ``None`` is the default (global) group.

    Returns:
        The number of tensors that were averaged (0 when not distributed).
    """
    if get_world_size(group) == 1:
        return 0
    keys = bn_stat_keys(model)
    module = unwrap_model(model)
    buffers = dict(module.named_buffers())
    tensors = [buffers[k] for k in keys]
    if ema is not None:
        ema_state = ema.ema_state
        tensors.extend(ema_state[k] for k in keys if k in ema_state)
    all_reduce_mean_(tensors, group)
    return len(tensors)


class SyncBNStatsHook(HookBase):
    """Average BatchNorm statistics across workers right before each evaluation.

    Runs :func:`all_reduce_bn_stats` on the trainer's model (and on ``ema`` if given) on the
    same schedule as Detectron2's ``EvalHook(eval_period, ...)``: after iteration ``i`` when
    ``(i + 1) % eval_period == 0`` (except the last iteration) and in :meth:`after_train` after
    a finished training. Register it on every rank **immediately before** the ``EvalHook``,
    with the same period. No-op in a single process.
    """

    def __init__(
        self,
        eval_period: int,
        ema: Optional["ModelEMA"] = None,
        sync_after_train: bool = True,
        model: Optional[nn.Module] = None,
    ) -> None:
        """
        Args:
            eval_period: the period of the ``EvalHook`` (0: only after training).
            ema: optional EMA whose BN statistics are averaged too (the model evaluated when
                the evaluation uses EMA weights).
            sync_after_train: whether to synchronise after the last iteration (match
                ``EvalHook(eval_after_train=...)``).
            model: the model to synchronise; ``None`` uses ``trainer.model``.
        """
        if int(eval_period) < 0:
            raise ValueError(f"eval_period must be >= 0, got {eval_period!r}")
        self._period = int(eval_period)
        self._ema = ema
        self._sync_after_train = sync_after_train
        self._model = model

    def _sync(self) -> None:
        model = self._model if self._model is not None else self.trainer.model
        n = all_reduce_bn_stats(model, ema=self._ema)
        if n:
            logger.info("Averaged %d BatchNorm statistics tensors across workers.", n)

    def after_step(self) -> None:
        next_iter = self.trainer.iter + 1
        if (
            self._period > 0
            and next_iter % self._period == 0
            and next_iter != self.trainer.max_iter
        ):
            self._sync()

    def after_train(self) -> None:
        if self._sync_after_train and self.trainer.iter + 1 >= self.trainer.max_iter:
            self._sync()
