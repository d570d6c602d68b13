"""Exponential moving average (EMA) of model weights, as used by YOLOX, for Detectron2.

* :class:`ModelEMA` keeps an EMA of every floating-point entry of the model's ``state_dict``
  (parameters **and** buffers such as BatchNorm statistics) with the YOLOX decay ramp
  ``decay * (1 - exp(-updates / tau))``. It has ``state_dict`` / ``load_state_dict`` and is
  meant to be a checkpointable of Detectron2's checkpointer::

      ema = ModelEMA(model)                     # after model.to(device), DDP wrapping is fine
      checkpointer = DetectionCheckpointer(model, output_dir, trainer=trainer, ema=ema)

  Checkpoints then hold ``"model"`` (the *training* weights, needed to resume exactly) and
  ``"ema"`` (the EMA state including the ``updates`` counter).
* :func:`apply_ema` temporarily swaps the EMA weights into the model (exception-safe);
  :func:`ema_eval_function` wraps an evaluation function with it, so that Detectron2's
  ``EvalHook`` evaluates the EMA model.
* :class:`EMAHook` updates the EMA after every optimizer step and can export the final EMA
  weights as a plain model checkpoint (:func:`save_ema_weights`, ``model_final_ema.pth`` whose
  ``"model"`` holds the EMA weights: the file to deploy / evaluate with ``--eval-only``).

Where :class:`EMAHook` goes among the other hooks: :func:`yolox_d2.engine.defaults.build_hooks`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, TypeVar

import torch
from torch import nn

from detectron2.engine.train_loop import HookBase

from ..checkpoint.atomic import atomic_torch_save
from ..utils.model import unwrap_model

__all__ = ["ModelEMA", "apply_ema", "ema_eval_function", "save_ema_weights", "EMAHook"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ModelEMA:
    """EMA of all floating-point parameters and buffers of a model (YOLOX / timm style).

    After each optimizer step, :meth:`update` does, for every floating-point entry ``v`` of the
    (DDP-unwrapped) model's ``state_dict``::

        updates += 1
        d = decay * (1 - exp(-updates / tau))
        ema = d * ema + (1 - d) * v

    Integer entries (e.g. BatchNorm ``num_batches_tracked``) are not averaged; the EMA
    tensors have the dtype and device of the model's tensors. Only tensors are stored (no copy
    of the module), so the EMA costs one extra copy of the weights.
    """

    def __init__(
        self, model: nn.Module, decay: float = 0.9998, tau: float = 2000.0, updates: int = 0
    ) -> None:
        """
        Args:
            model: the model to track (``DistributedDataParallel`` / ``DataParallel`` are
                unwrapped). Its current weights initialise the EMA.
            decay: the asymptotic EMA decay (official 0.9998).
            tau: time constant (in updates) of the decay ramp (official 2000).
            updates: initial value of the update counter.
        """
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1], got {decay!r}")
        if not tau > 0:
            raise ValueError(f"tau must be > 0, got {tau!r}")
        self.decay = float(decay)
        self.tau = float(tau)
        self.updates = 0
        self._state: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        self.reset(model, updates=updates)

    # -- state ------------------------------------------------------------------------------

    @property
    def ema_state(self) -> "OrderedDict[str, torch.Tensor]":
        """The EMA tensors, keyed like the unwrapped model's ``state_dict`` (live, not copies)."""
        return self._state

    def get_decay(self, updates: Optional[int] = None) -> float:
        """Decay used by the update number ``updates`` (default: the current counter)."""
        n = self.updates if updates is None else updates
        return self.decay * (1.0 - math.exp(-n / self.tau))

    @torch.no_grad()
    def reset(self, model: nn.Module, updates: int = 0) -> None:
        """Re-initialise the EMA with the current weights of ``model``.

        Args:
            model: the model (wrappers are removed with :func:`unwrap_model`).
            updates: the new value of the update counter (e.g. the number of iterations
                already trained when no EMA state could be restored).
        """
        if int(updates) < 0:
            raise ValueError(f"updates must be >= 0, got {updates!r}")
        self._state = OrderedDict(
            (k, v.detach().clone())
            for k, v in unwrap_model(model).state_dict().items()
            if v.dtype.is_floating_point
        )
        if not self._state:
            raise ValueError(f"{type(unwrap_model(model)).__name__} has no floating point state")
        self.updates = int(updates)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Increment the update counter and blend the model's current weights into the EMA.

        Args:
            model: the training model (DDP-wrapped or not) with the same state-dict keys as
                the model the EMA was created from.

        Raises:
            KeyError / RuntimeError: if the model does not match the EMA (keys / shapes).
        """
        model_state = unwrap_model(model).state_dict()
        ema_tensors: List[torch.Tensor] = []
        model_tensors: List[torch.Tensor] = []
        for key, ema_value in self._state.items():
            value = model_state.get(key)
            if value is None:
                raise KeyError(f"model has no state entry '{key}' tracked by the EMA")
            if value.shape != ema_value.shape:
                raise RuntimeError(
                    f"shape mismatch for '{key}': model {tuple(value.shape)} vs "
                    f"EMA {tuple(ema_value.shape)}"
                )
            if ema_value.device != value.device:
                # e.g. EMA loaded on CPU or created before model.to(device): follow the model.
                ema_value = ema_value.to(value.device)
                self._state[key] = ema_value
            ema_tensors.append(ema_value)
            model_tensors.append(value.detach().to(ema_value.dtype))
        self.updates += 1
        d = self.get_decay()
        torch._foreach_mul_(ema_tensors, d)
        torch._foreach_add_(ema_tensors, model_tensors, alpha=1.0 - d)

    def state_dict(self) -> Dict[str, Any]:
        """Checkpointable state: ``{"updates", "decay", "tau", "state"}``.

        ``state`` maps the unwrapped model's state-dict keys to the EMA tensors.
        """
        return {
            "updates": self.updates,
            "decay": self.decay,
            "tau": self.tau,
            "state": OrderedDict(self._state),
        }

    @torch.no_grad()
    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` (copies into the existing tensors).

        The keys must match exactly. ``decay`` / ``tau`` stored in the checkpoint are only
        compared with the configured values (a warning is logged when they differ); the
        configured values are kept.

        Raises:
            KeyError: if the state is malformed or its keys do not match the EMA's.
        """
        missing_fields = {"updates", "state"} - set(state_dict)
        if missing_fields:
            raise KeyError(f"EMA state_dict lacks {sorted(missing_fields)}")
        state = state_dict["state"]
        missing = [k for k in self._state if k not in state]
        unexpected = [k for k in state if k not in self._state]
        if missing or unexpected:
            raise KeyError(
                "EMA state_dict does not match the model: "
                f"missing keys {missing[:10]}{'...' if len(missing) > 10 else ''}, "
                f"unexpected keys {unexpected[:10]}{'...' if len(unexpected) > 10 else ''}"
            )
        for key, value in self._state.items():
            if value.shape != state[key].shape:
                raise RuntimeError(
                    f"shape mismatch for '{key}': checkpoint {tuple(state[key].shape)} vs "
                    f"EMA {tuple(value.shape)}"
                )
        for key, value in self._state.items():
            value.copy_(state[key])
        self.updates = int(state_dict["updates"])
        for name in ("decay", "tau"):
            saved = state_dict.get(name)
            if saved is not None and not math.isclose(float(saved), getattr(self, name)):
                logger.warning(
                    "EMA %s in the checkpoint (%s) differs from the configured value (%s); "
                    "using the configured value.",
                    name,
                    saved,
                    getattr(self, name),
                )
        logger.info("Loaded EMA state (updates=%d).", self.updates)

    def model_state_dict(self, model: nn.Module) -> "OrderedDict[str, torch.Tensor]":
        """A complete ``state_dict`` for ``model`` with the EMA values (detached copies).

        Entries the EMA does not track (integer buffers) are taken from ``model``.

        Args:
            model: the model (wrappers are removed with :func:`unwrap_model`).
        """
        out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        for key, value in unwrap_model(model).state_dict().items():
            src = self._state.get(key, value)
            out[key] = src.detach().clone()
        return out


@contextlib.contextmanager
def apply_ema(model: nn.Module, ema: ModelEMA) -> Iterator[nn.Module]:
    """Temporarily load the EMA weights into ``model`` (in place), e.g. for evaluation.

    The floating-point parameters and buffers of the (unwrapped) model are overwritten with
    the EMA values and restored when the block exits, also on exceptions. Parameters keep
    their identity (values are copied), so optimizers and DDP are unaffected. Anything the
    block does to those tensors (e.g. BatchNorm statistics updated in training mode) is
    discarded on exit.

    Args:
        model: the training model (DDP-wrapped or not).
        ema: the EMA to apply.

    Yields:
        The unwrapped model, holding the EMA weights.
    """
    module = unwrap_model(model)
    model_state = module.state_dict(keep_vars=True)
    backup: Dict[str, torch.Tensor] = {}

    def _restore() -> None:
        with torch.no_grad():
            for key, saved in backup.items():
                model_state[key].copy_(saved)

    try:
        with torch.no_grad():
            for key, value in ema.ema_state.items():
                if key not in model_state:
                    raise KeyError(f"model has no state entry '{key}' tracked by the EMA")
                target = model_state[key]
                backup[key] = target.detach().clone()
                target.copy_(value)
    except BaseException:
        _restore()
        raise
    try:
        yield module
    finally:
        _restore()


def ema_eval_function(
    eval_function: Callable[[], T], model: nn.Module, ema: ModelEMA
) -> Callable[[], T]:
    """Wrap an evaluation function so that it runs with the EMA weights in ``model``.

    Use it for Detectron2's ``EvalHook``::

        hooks.EvalHook(eval_period, ema_eval_function(lambda: do_test(cfg, model), model, ema))

    Args:
        eval_function: the zero-argument evaluation function (it evaluates ``model``).
        model: the model the function evaluates (DDP-wrapped or not).
        ema: the EMA whose weights to evaluate.

    Returns:
        A zero-argument function returning what ``eval_function`` returns.
    """

    @functools.wraps(eval_function)
    def _wrapped() -> T:
        with apply_ema(model, ema):
            return eval_function()

    return _wrapped


def save_ema_weights(
    checkpointer: Any,
    ema: ModelEMA,
    name: str = "model_final_ema",
    model: Optional[nn.Module] = None,
) -> Optional[str]:
    """Write ``<save_dir>/<name>.pth`` with the EMA weights as ``"model"``.

    The file can be loaded like any weights file (``DetectionCheckpointer(model).load(path)``,
    ``train.init_checkpoint``, ``--eval-only``). It is not tagged as the last checkpoint, so
    ``resume`` keeps using the regular training checkpoints. Only the process whose
    checkpointer saves to disk (the main process) writes.

    Args:
        checkpointer: a fvcore/Detectron2 ``Checkpointer`` (its ``save_dir``,
            ``save_to_disk``, ``path_manager`` and ``model`` are used).
        ema: the EMA to export.
        name: file name without ``.pth``.
        model: the model providing the non-EMA entries; defaults to ``checkpointer.model``.

    Returns:
        The path written, or ``None`` when this process does not save.
    """
    if not checkpointer.save_dir or not checkpointer.save_to_disk:
        return None
    model = model if model is not None else checkpointer.model
    data = {"model": ema.model_state_dict(model), "ema_updates": ema.updates}
    path = os.path.join(checkpointer.save_dir, f"{name}.pth")
    # written atomically: an interrupted export never leaves a truncated weights file
    atomic_torch_save(data, path, checkpointer.path_manager)
    logger.info("Saved EMA weights (updates=%d) to %s", ema.updates, path)
    return path


class EMAHook(HookBase):
    """Update a :class:`ModelEMA` after every optimizer step.

    * :meth:`before_train`: if the EMA holds no updates (``updates == 0``: fresh training, or
      the checkpoint had no ``"ema"``), it is re-initialised from the model's current weights,
      i.e. *after* ``checkpointer.resume_or_load`` loaded initial weights, with
      ``updates = trainer.iter`` (the official trainer's convention on resume). An EMA restored
      from a checkpoint (``updates > 0``) is kept and continues.
    * :meth:`after_step`: ``ema.update(model)``.
    * :meth:`after_train`: optionally exports the EMA weights with :func:`save_ema_weights`
      after a completed training.

    The EMA state is checkpointed by registering ``ema`` with the checkpointer (key
    ``"ema"``), not through the trainer's hook states. Register this hook before
    ``PeriodicCheckpointer``, ``SyncBNStatsHook`` and ``EvalHook``.
    """

    def __init__(
        self,
        ema: ModelEMA,
        model: Optional[nn.Module] = None,
        final_checkpointer: Optional[Any] = None,
        final_name: str = "model_final_ema",
    ) -> None:
        """
        Args:
            ema: the EMA to update.
            model: the training model; ``None`` uses ``trainer.model``.
            final_checkpointer: if given, the EMA weights are written with
                :func:`save_ema_weights` to ``<save_dir>/<final_name>.pth`` when the training
                completes.
            final_name: file name (without ``.pth``) of that export.
        """
        if not isinstance(ema, ModelEMA):
            raise TypeError(f"ema must be a ModelEMA, got {type(ema).__name__}")
        self.ema = ema
        self._model = model
        self._final_checkpointer = final_checkpointer
        self._final_name = final_name

    @property
    def model(self) -> nn.Module:
        """The training model the EMA follows."""
        return self._model if self._model is not None else self.trainer.model

    def before_train(self) -> None:
        if self.ema.updates == 0:
            start_iter = int(self.trainer.iter)
            if start_iter > 0:
                logger.warning(
                    "Starting at iteration %d without a saved EMA state: re-initialising the "
                    "EMA from the current weights with updates=%d.",
                    start_iter,
                    start_iter,
                )
            self.ema.reset(self.model, updates=start_iter)
        else:
            logger.info("Continuing the EMA from updates=%d.", self.ema.updates)

    def after_step(self) -> None:
        self.ema.update(self.model)

    def after_train(self) -> None:
        if self._final_checkpointer is not None and self.trainer.iter >= self.trainer.max_iter:
            save_ema_weights(self._final_checkpointer, self.ema, self._final_name)
