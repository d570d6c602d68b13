"""
Mixed-precision training on any device: ``torch.autocast`` on the model's device, float16 with a
gradient scaler or bfloat16 without one.

Detectron2's :class:`~detectron2.engine.AMPTrainer` asserts CUDA and float16-with-scaler. This
trainer keeps its loop (forward under autocast, ``after_backward``, metrics, step) and adds:

* ``precision="bfloat16"`` on CUDA and CPU (no scaler: bfloat16 has float32's range);
  ``precision="float16"`` with a :class:`torch.amp.GradScaler` for the model's device (on CPU it
  works but is slow: float16 kernels there are emulated);
* the non-finite loss guard of :mod:`yolox_d2.engine.guards` (a NaN/inf *loss* still stops the
  run, naming iteration, terms and last checkpoint);
* a step that the scaler skips because of inf/NaN *gradients* (the scale backs off) is counted
  (``skipped_steps``, the ``amp/skipped_steps`` metric) and logged, not fatal;
* the scaler's state (and the skip count) in the trainer's checkpoint, restored on ``--resume``.

The YOLOX losses and SimOTA run in float32 under autocast (``YOLOX.forward_training``).
:func:`create_guarded_trainer` gives this trainer or the full-precision
:class:`~yolox_d2.engine.guards.GuardedSimpleTrainer` (``train.amp.enabled`` /
``train.amp.precision`` in :func:`yolox_d2.engine.defaults.build_trainer`).
"""

import logging
import time
from typing import Any, Dict, Optional

import torch
from detectron2.engine import SimpleTrainer
from detectron2.utils.events import get_event_storage

from .guards import FiniteLossGuardMixin, GuardedSimpleTrainer

__all__ = ["AMP_PRECISIONS", "GuardedAMPTrainer", "create_guarded_trainer", "model_device_type"]

logger = logging.getLogger(__name__)

#: ``train.amp.precision`` values and their dtypes.
AMP_PRECISIONS = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def model_device_type(model: torch.nn.Module) -> str:
    """``"cuda"`` / ``"cpu"`` / ...: the device type of the model's first parameter (or buffer)."""
    for tensor in model.parameters():
        return tensor.device.type
    for tensor in model.buffers():
        return tensor.device.type
    return "cpu"


class GuardedAMPTrainer(FiniteLossGuardMixin, SimpleTrainer):
    """
    :class:`~detectron2.engine.SimpleTrainer` running the forward pass under ``torch.autocast``
    on the model's device, with the non-finite loss guard.

    Attributes:
        precision: ``"float16"`` or ``"bfloat16"``.
        device_type: the autocast device type (the model's).
        grad_scaler: the :class:`torch.amp.GradScaler` (float16), or None (bfloat16).
        skipped_steps: optimizer steps the scaler skipped for non-finite gradients.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        data_loader: Any,
        optimizer: torch.optim.Optimizer,
        *,
        precision: str = "float16",
        grad_scaler: Optional[torch.amp.GradScaler] = None,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            model, data_loader, optimizer: as for :class:`~detectron2.engine.SimpleTrainer`.
            precision: ``"float16"`` (with a gradient scaler) or ``"bfloat16"`` (none).
            grad_scaler: the scaler to use with float16 (default: a new
                ``torch.amp.GradScaler`` for the model's device).
            kwargs: other :class:`~detectron2.engine.SimpleTrainer` arguments.
        """
        if precision not in AMP_PRECISIONS:
            raise ValueError(
                f"train.amp.precision must be one of {sorted(AMP_PRECISIONS)}, got {precision!r}"
            )
        super().__init__(model, data_loader, optimizer, **kwargs)
        self.precision = precision
        self.device_type = model_device_type(model)
        if precision == "float16":
            self.grad_scaler = grad_scaler or torch.amp.GradScaler(self.device_type)
            if self.device_type == "cpu":
                logger.warning("float16 autocast on the CPU is slow; bfloat16 is the CPU's fast type")
        elif grad_scaler is not None:
            raise ValueError("a gradient scaler is only used with precision='float16'")
        else:
            self.grad_scaler = None
        self.skipped_steps = 0

    def run_step(self) -> None:
        """One iteration: forward under autocast, (scaled) backward, guarded metrics, step."""
        assert self.model.training, f"[{type(self).__name__}] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start

        if self.zero_grad_before_forward:
            self.optimizer.zero_grad()
        with torch.autocast(self.device_type, dtype=AMP_PRECISIONS[self.precision]):
            loss_dict = self.model(data)
            if isinstance(loss_dict, torch.Tensor):
                losses = loss_dict
                loss_dict = {"total_loss": loss_dict}
            else:
                losses = sum(loss_dict.values())
        if not self.zero_grad_before_forward:
            self.optimizer.zero_grad()

        if self.grad_scaler is None:
            losses.backward()
        else:
            self.grad_scaler.scale(losses).backward()
        self.after_backward()
        self._write_metrics(loss_dict, data_time)  # raises on a non-finite loss, before the step
        self._optimizer_step()

    def _optimizer_step(self) -> None:
        if self.grad_scaler is None:
            self.optimizer.step()
            return
        scale = self.grad_scaler.get_scale()
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()
        new_scale = self.grad_scaler.get_scale()
        if new_scale < scale:  # the scaler found inf/NaN gradients and skipped the step
            self.skipped_steps += 1
            logger.warning(
                "Iteration %d: non-finite gradients, optimizer step skipped by the gradient scaler "
                "(scale %g -> %g; %d step(s) skipped so far)",
                self.iter, scale, new_scale, self.skipped_steps,
            )
        storage = get_event_storage()
        storage.put_scalar("amp/skipped_steps", self.skipped_steps, smoothing_hint=False)
        storage.put_scalar("amp/grad_scale", new_scale, smoothing_hint=False)

    def state_dict(self) -> Dict[str, Any]:
        """The trainer's state plus the scaler's and the skip count."""
        ret = super().state_dict()
        ret["amp"] = {"precision": self.precision, "skipped_steps": self.skipped_steps}
        if self.grad_scaler is not None:
            ret["grad_scaler"] = self.grad_scaler.state_dict()
        return ret

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; a checkpoint without scaler state keeps a fresh scaler."""
        super().load_state_dict(state_dict)
        self.skipped_steps = int(state_dict.get("amp", {}).get("skipped_steps", 0))
        if self.grad_scaler is not None and "grad_scaler" in state_dict:
            self.grad_scaler.load_state_dict(state_dict["grad_scaler"])


def create_guarded_trainer(
    model: torch.nn.Module,
    data_loader: Any,
    optimizer: torch.optim.Optimizer,
    *,
    amp: bool = False,
    precision: str = "float16",
    checkpointer: Optional[Any] = None,
    **kwargs: Any,
) -> SimpleTrainer:
    """
    A :class:`~yolox_d2.engine.guards.GuardedSimpleTrainer`, or a :class:`GuardedAMPTrainer`
    when ``amp``: both stop on a non-finite loss before the optimizer step.

    Args:
        model, data_loader, optimizer: as for Detectron2's trainers.
        amp: mixed precision (autocast on the model's device).
        precision: with ``amp``: ``"float16"`` (with a gradient scaler) or ``"bfloat16"``.
        checkpointer: the checkpointer named in a non-finite loss error (can also be set later
            as ``trainer.checkpointer``, since it usually needs the trainer itself).
        kwargs: other arguments of the Detectron2 trainer.
    """
    if amp:
        trainer = GuardedAMPTrainer(model, data_loader, optimizer, precision=precision, **kwargs)
    else:
        trainer = GuardedSimpleTrainer(model, data_loader, optimizer, **kwargs)
    trainer.checkpointer = checkpointer
    return trainer
