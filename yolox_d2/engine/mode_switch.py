"""The YOLOX "no augmentation" phase of the last epochs: Mosaic/MixUp off, the L1 loss on."""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from detectron2.engine.train_loop import HookBase

from ..utils.model import unwrap_model

__all__ = ["YOLOXModeSwitchHook"]

logger = logging.getLogger(__name__)


class YOLOXModeSwitchHook(HookBase):
    """Switch to the YOLOX "no augmentation" phase at iteration ``switch_iter``.

    From ``switch_iter`` on (the last ``no_aug_epochs`` epochs of the recipe) it calls
    ``set_augmentation(False)`` (Mosaic/MixUp off) and ``set_l1_loss(True)`` (extra L1 loss on),
    exactly once, and logs the switch once. The phase is a pure function of the iteration, so
    the hook is stateless and correct after a resume: it is evaluated in :meth:`before_train`
    (with ``trainer.iter == start_iter``) as well as in :meth:`before_step`. Before
    ``switch_iter`` nothing is touched (the dataset and model keep their own settings).

    Note:
        ``set_augmentation`` must reach the data-loader worker processes, which are forked
        before the switch happens: the YOLOX dataset's ``set_mosaic_enabled`` stores the flag
        in a shared-memory tensor for that reason. Batches that workers had already prefetched
        (at most ``num_workers * prefetch_factor``) were still produced with augmentation.

    The official trainer switches at the start of 0-based epoch
    ``max_epoch - no_aug_epochs - 1`` (one epoch before the LR reaches its constant tail);
    choose ``switch_iter`` accordingly (e.g. ``(max_epoch - no_aug_epochs - 1) *
    iters_per_epoch`` to match it, or ``(max_epoch - no_aug_epochs) * iters_per_epoch`` to
    align with the LR schedule).
    """

    def __init__(
        self,
        switch_iter: int,
        set_augmentation: Optional[Callable[[bool], None]],
        set_l1_loss: Optional[Callable[[bool], None]] = None,
        l1_attribute: str = "use_l1_loss",
    ) -> None:
        """
        Args:
            switch_iter: first iteration of the no-augmentation phase (0-based).
            set_augmentation: called with ``False`` at the switch to turn Mosaic/MixUp off,
                e.g. ``dataset.set_mosaic_enabled``. ``None`` to leave the data pipeline alone.
            set_l1_loss: called with ``True`` at the switch to turn the L1 loss on. ``None``
                (default) sets the attribute ``l1_attribute`` of the trainer's model (DDP
                unwrapped) to ``True``.
            l1_attribute: the model attribute used when ``set_l1_loss`` is ``None``.
        """
        if int(switch_iter) < 0:
            raise ValueError(f"switch_iter must be >= 0, got {switch_iter!r}")
        if set_augmentation is not None and not callable(set_augmentation):
            raise TypeError("set_augmentation must be callable or None")
        if set_l1_loss is not None and not callable(set_l1_loss):
            raise TypeError("set_l1_loss must be callable or None")
        self.switch_iter = int(switch_iter)
        self._set_augmentation = set_augmentation
        self._set_l1_loss = set_l1_loss
        self._l1_attribute = l1_attribute
        self._switched = False

    @classmethod
    def from_dataset(
        cls,
        switch_iter: int,
        dataset: Any,
        set_l1_loss: Optional[Callable[[bool], None]] = None,
    ) -> "YOLOXModeSwitchHook":
        """Build the hook for a dataset exposing ``set_mosaic_enabled(enabled: bool)``.

        Args:
            switch_iter: see :meth:`__init__`.
            dataset: the training dataset (the YOLOX mosaic dataset).
            set_l1_loss: see :meth:`__init__`.
        """
        setter = getattr(dataset, "set_mosaic_enabled", None)
        if not callable(setter):
            raise TypeError(
                f"{type(dataset).__name__} has no callable 'set_mosaic_enabled(enabled)' method"
            )
        return cls(switch_iter, setter, set_l1_loss)

    @property
    def switched(self) -> bool:
        """Whether the switch to the no-augmentation phase has been applied."""
        return self._switched

    def in_no_aug_phase(self, iteration: int) -> bool:
        """Whether ``iteration`` (0-based) belongs to the no-augmentation phase."""
        return iteration >= self.switch_iter

    def _set_l1(self, enabled: bool) -> None:
        if self._set_l1_loss is not None:
            self._set_l1_loss(enabled)
        else:
            setattr(unwrap_model(self.trainer.model), self._l1_attribute, enabled)

    def _maybe_switch(self, iteration: int) -> None:
        if self._switched or not self.in_no_aug_phase(iteration):
            return
        if self._set_augmentation is not None:
            self._set_augmentation(False)
        self._set_l1(True)
        self._switched = True
        logger.info(
            "Iteration %d: entering the no-augmentation phase (switch_iter=%d): "
            "mosaic/mixup disabled, L1 loss enabled.",
            iteration,
            self.switch_iter,
        )

    def before_train(self) -> None:
        if self._set_l1_loss is None:
            model = unwrap_model(self.trainer.model)
            if not hasattr(model, self._l1_attribute):
                raise AttributeError(
                    f"{type(model).__name__} has no attribute '{self._l1_attribute}'; pass "
                    "set_l1_loss= to YOLOXModeSwitchHook to switch the L1 loss on"
                )
        self._maybe_switch(self.trainer.iter)

    def before_step(self) -> None:
        self._maybe_switch(self.trainer.iter)
