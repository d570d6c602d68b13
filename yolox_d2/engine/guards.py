"""
Numerical guards for the training loop.

A non-finite loss must stop a run at once, before the optimizer step writes NaN into the
weights (and before the EMA or a checkpoint picks them up), with an error that says what to
do. Detectron2's :class:`~detectron2.engine.SimpleTrainer` only checks the *averaged* losses
on the main process every ``gather_metric_period`` iterations and its message does not say
where to resume from. The trainers here check every iteration, on every rank, and raise
:class:`NonFiniteLossError` naming:

* the iteration,
* every loss term with its value (the non-finite ones marked),
* the primary images of the batch (``file_name`` / ``image_id``, when the inputs carry them),
* the last checkpoint (``last_checkpoint`` of the checkpointer's directory) to ``--resume``
  from, or that none has been written yet.

The mixed-precision trainer with the same guard is :class:`yolox_d2.engine.amp.GuardedAMPTrainer`;
:func:`yolox_d2.engine.amp.create_guarded_trainer` picks one of the two. Usage (what
``tools/lazyconfig_train_net.py`` does)::

    trainer = create_guarded_trainer(model, train_loader, optimizer, amp=False)
    checkpointer = AtomicDetectionCheckpointer(model, output_dir, trainer=trainer, ema=ema)
    trainer.checkpointer = checkpointer   # named in the error message

The check runs inside ``_write_metrics``, which Detectron2 calls after ``backward`` and before
``optimizer.step()``; asynchronous metric writing (``async_write_metrics=True``) would move it
to a thread where it cannot stop the step, so it is refused.
"""

import logging
import math
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
from detectron2.engine import SimpleTrainer
from detectron2.engine import hooks as d2_hooks

__all__ = [
    "NonFiniteLossError",
    "losses_are_finite",
    "check_losses_finite",
    "FiniteLossGuardMixin",
    "GuardedSimpleTrainer",
]

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """A loss term is NaN or infinite (the message names iteration, terms and checkpoint).

    Attributes:
        iteration: the iteration whose losses were not finite.
        losses: every loss term's value (floats, NaN / inf included).
        checkpoint: the last checkpoint's path, or None when none was written.
    """

    def __init__(
        self,
        message: str,
        iteration: int,
        losses: Dict[str, float],
        checkpoint: Optional[str],
    ) -> None:
        super().__init__(message)
        self.iteration = iteration
        self.losses = losses
        self.checkpoint = checkpoint


def _scalar(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().sum().cpu())
    return float(value)


def losses_are_finite(loss_dict: Mapping[str, Any]) -> bool:
    """Whether every loss term is finite (one device synchronisation for tensors)."""
    if not loss_dict:
        return True
    tensors = [v for v in loss_dict.values() if isinstance(v, torch.Tensor)]
    if len(tensors) == len(loss_dict):
        return bool(torch.stack([t.detach().float().sum() for t in tensors]).isfinite().all())
    return all(math.isfinite(_scalar(v)) for v in loss_dict.values())


def check_losses_finite(
    loss_dict: Mapping[str, Any],
    iteration: int,
    checkpoint: Optional[str] = None,
    batch_description: Optional[str] = None,
) -> None:
    """
    Raise :class:`NonFiniteLossError` if a loss term is NaN or infinite.

    Args:
        loss_dict: the model's loss terms (scalar tensors or numbers).
        iteration: the current iteration (named in the message).
        checkpoint: the last checkpoint's path, named in the message as the one to resume
            from; None means none has been written yet.
        batch_description: optional description of the batch (e.g. its image files).
    """
    if losses_are_finite(loss_dict):
        return
    values = {k: _scalar(v) for k, v in loss_dict.items()}
    terms = ", ".join(
        f"{k}={v:.6g}" + ("" if math.isfinite(v) else " <-- non-finite") for k, v in values.items()
    )
    if checkpoint:
        where = (
            f"The last checkpoint is {checkpoint}: resume from it with --resume (after lowering "
            "the learning rate or fixing the data); nothing of this iteration was saved."
        )
    else:
        where = "No checkpoint has been written yet (the run must restart from the beginning)."
    batch = f"\nBatch: {batch_description}" if batch_description else ""
    raise NonFiniteLossError(
        f"Loss became infinite or NaN at iteration {iteration}; training stopped before the "
        f"optimizer step.\nLoss terms: {terms}.{batch}\n{where}",
        iteration,
        values,
        checkpoint or None,
    )


class _BatchRecorder:
    """Iterator wrapper remembering which images the last batch held."""

    def __init__(self, inner: Iterator) -> None:
        self.inner = inner
        self.last: List[Tuple[Any, Any]] = []

    def __iter__(self) -> "_BatchRecorder":
        return self

    def __next__(self) -> Any:
        batch = next(self.inner)
        try:
            self.last = [(d.get("file_name"), d.get("image_id")) for d in batch if isinstance(d, Mapping)]
        except TypeError:  # not a list of dicts
            self.last = []
        return batch


class FiniteLossGuardMixin:
    """
    Trainer mixin (before a Detectron2 ``SimpleTrainer`` subclass in the bases) that checks
    the losses of every iteration with :func:`check_losses_finite` before the optimizer step.

    Attributes:
        checkpointer: optional checkpointer whose last checkpoint the error names; when None,
            the checkpointer of a registered ``PeriodicCheckpointer`` hook is used if any.
    """

    checkpointer: Optional[Any] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if getattr(self, "async_write_metrics", False):
            raise ValueError(
                f"{type(self).__name__} checks the losses in _write_metrics, before the optimizer "
                "step; async_write_metrics=True would run it in a thread that cannot stop the step"
            )
        self._batch_recorder: Optional[_BatchRecorder] = None

    @property
    def _data_loader_iter(self) -> _BatchRecorder:
        inner = super()._data_loader_iter  # type: ignore[misc]
        if self._batch_recorder is None or self._batch_recorder.inner is not inner:
            self._batch_recorder = _BatchRecorder(inner)
        return self._batch_recorder

    def last_checkpoint(self) -> Optional[str]:
        """Path of the last checkpoint written (per ``last_checkpoint``), or None."""
        checkpointer = self.checkpointer
        if checkpointer is None:
            for h in getattr(self, "_hooks", []):
                if isinstance(h, d2_hooks.PeriodicCheckpointer):
                    checkpointer = h.checkpointer
                    break
        if checkpointer is None or not getattr(checkpointer, "save_dir", None):
            return None
        try:
            if not checkpointer.has_checkpoint():
                return None
            return checkpointer.get_checkpoint_file() or None
        except Exception:  # never hide the loss error behind a file system error
            logger.exception("Could not read the last checkpoint of %s", checkpointer.save_dir)
            return None

    def _describe_batch(self) -> Optional[str]:
        recorder = self._batch_recorder
        if recorder is None or not recorder.last:
            return None
        shown = ", ".join(f"{f} (image_id={i!r})" for f, i in recorder.last[:8])
        more = f", ... ({len(recorder.last)} images)" if len(recorder.last) > 8 else ""
        return shown + more

    def _write_metrics(
        self,
        loss_dict: Mapping[str, torch.Tensor],
        data_time: float,
        prefix: str = "",
        iter: Optional[int] = None,  # noqa: A002  (Detectron2's signature)
    ) -> None:
        iteration = self.iter if iter is None else iter  # type: ignore[attr-defined]
        if not losses_are_finite(loss_dict):  # the details are only gathered on failure
            check_losses_finite(loss_dict, iteration, self.last_checkpoint(), self._describe_batch())
        super()._write_metrics(loss_dict, data_time, prefix=prefix, iter=iter)  # type: ignore[misc]


class GuardedSimpleTrainer(FiniteLossGuardMixin, SimpleTrainer):
    """:class:`~detectron2.engine.SimpleTrainer` with :class:`FiniteLossGuardMixin`."""
