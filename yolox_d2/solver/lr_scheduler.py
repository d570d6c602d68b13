"""YOLOX learning-rate schedule as an fvcore :class:`ParamScheduler`.

The official YOLOX "yoloxwarmcos" schedule (``yolox/utils/lr_scheduler.py``) is expressed in
absolute iterations. Detectron2 drives learning rates through
:class:`detectron2.solver.LRMultiplier`, which multiplies every base LR of the optimizer with
``scheduler(iter / max_iter)``. :class:`YOLOXWarmCosineParamScheduler` is the same curve
expressed as a multiplier of the base LR over the training progress ``where`` in ``[0, 1]``:

* ``where <= warmup_fraction``: quadratic warm-up from ``warmup_start_ratio`` to 1;
* ``where >= 1 - no_aug_fraction``: constant ``min_lr_ratio`` (the "no augmentation" epochs);
* otherwise: half-cosine from 1 down to ``min_lr_ratio``.

Usage (LazyConfig)::

    lr_multiplier = L(YOLOXWarmCosineParamScheduler.from_epochs)(
        total_epochs=300, warmup_epochs=5, no_aug_epochs=15, min_lr_ratio=0.05
    )
    # then: hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)) builds
    # LRMultiplier(optimizer, multiplier=..., max_iter=trainer.max_iter)

With Detectron2's loop the LR used by iteration ``i`` is ``base_lr * scheduler(i / max_iter)``,
which is exactly the official ``LRScheduler.update_lr(i)`` (the official trainer sets the LR for
iteration ``i`` to ``update_lr(i)`` after finishing iteration ``i - 1``).
"""

from __future__ import annotations

import math
from typing import Dict

from fvcore.common.param_scheduler import ParamScheduler

__all__ = ["YOLOXWarmCosineParamScheduler", "epochs_to_fractions"]


def epochs_to_fractions(
    total_epochs: float, warmup_epochs: float = 5, no_aug_epochs: float = 15
) -> Dict[str, float]:
    """The phases of a schedule written in epochs as fractions of the whole training.

    The one conversion of the official epoch counts to :class:`YOLOXWarmCosineParamScheduler`'s
    arguments (used by :meth:`YOLOXWarmCosineParamScheduler.from_epochs` and by
    :func:`~yolox_d2.solver.resolve_schedule`).

    Args:
        total_epochs: total number of training epochs (official ``max_epoch``, 300).
        warmup_epochs: warm-up epochs (official ``warmup_epochs``, 5).
        no_aug_epochs: epochs at the constant minimum LR (official ``no_aug_epochs``, 15).

    Returns:
        ``{"warmup_fraction": warmup_epochs / total_epochs,
        "no_aug_fraction": no_aug_epochs / total_epochs}``.

    Raises:
        ValueError: if ``total_epochs`` is not positive.
    """
    if total_epochs <= 0:
        raise ValueError(f"total_epochs must be > 0, got {total_epochs!r}")
    return {
        "warmup_fraction": warmup_epochs / total_epochs,
        "no_aug_fraction": no_aug_epochs / total_epochs,
    }


class YOLOXWarmCosineParamScheduler(ParamScheduler):
    """The official YOLOX "yoloxwarmcos" schedule as a multiplier of the base learning rate.

    The curve is continuous: the warm-up ends at exactly 1 where the cosine starts, and the
    cosine ends at exactly ``min_lr_ratio`` where the constant tail starts, so the result does
    not depend on how ``where = iter / max_iter`` rounds near the phase boundaries.
    """

    def __init__(
        self,
        warmup_fraction: float = 5 / 300,
        no_aug_fraction: float = 15 / 300,
        min_lr_ratio: float = 0.05,
        warmup_start_ratio: float = 0.0,
    ) -> None:
        """
        Args:
            warmup_fraction: length of the quadratic warm-up as a fraction of the whole training
                (``warmup_epochs / total_epochs``; official default 5 / 300). May be 0.
            no_aug_fraction: length of the constant tail at ``min_lr_ratio`` as a fraction of the
                whole training (``no_aug_epochs / total_epochs``; official default 15 / 300).
                May be 0.
            min_lr_ratio: multiplier reached at the end of the cosine and kept for the tail
                (official ``min_lr_ratio``; YOLOX experiments use 0.05).
            warmup_start_ratio: multiplier at the start of the warm-up (official
                ``warmup_lr / basic_lr``; 0 in the official recipe).

        Raises:
            ValueError: if a fraction is None (not resolved) or negative, if the warm-up and the tail leave no room for
                the cosine phase, or if a ratio is negative.
        """
        for name, value in (("warmup_fraction", warmup_fraction), ("no_aug_fraction", no_aug_fraction)):
            if value is None:
                raise ValueError(
                    f"{name} is None: it is resolved from train.schedule at start-up "
                    "(yolox_d2.solver.resolve_schedule); set it to build the scheduler alone"
                )
        for name, value in (
            ("warmup_fraction", warmup_fraction),
            ("no_aug_fraction", no_aug_fraction),
            ("min_lr_ratio", min_lr_ratio),
            ("warmup_start_ratio", warmup_start_ratio),
        ):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if warmup_fraction + no_aug_fraction >= 1.0:
            raise ValueError(
                "warmup_fraction + no_aug_fraction must be < 1 so that the cosine phase is not "
                f"empty, got {warmup_fraction} + {no_aug_fraction}"
            )
        self.warmup_fraction = float(warmup_fraction)
        self.no_aug_fraction = float(no_aug_fraction)
        self.min_lr_ratio = float(min_lr_ratio)
        self.warmup_start_ratio = float(warmup_start_ratio)

    @classmethod
    def from_epochs(
        cls,
        total_epochs: int,
        warmup_epochs: float = 5,
        no_aug_epochs: float = 15,
        min_lr_ratio: float = 0.05,
        warmup_start_ratio: float = 0.0,
    ) -> "YOLOXWarmCosineParamScheduler":
        """Build the scheduler from epoch counts, as in the official experiment files.

        Args:
            total_epochs: total number of training epochs (official ``max_epoch``, 300).
            warmup_epochs: warm-up epochs (official ``warmup_epochs``, 5).
            no_aug_epochs: epochs at the constant minimum LR (official ``no_aug_epochs``, 15).
            min_lr_ratio: see :meth:`__init__`.
            warmup_start_ratio: see :meth:`__init__`.

        Returns:
            The scheduler with the fractions of :func:`epochs_to_fractions`.
        """
        return cls(
            **epochs_to_fractions(total_epochs, warmup_epochs, no_aug_epochs),
            min_lr_ratio=min_lr_ratio,
            warmup_start_ratio=warmup_start_ratio,
        )

    def __call__(self, where: float) -> float:
        """Return the LR multiplier at training progress ``where``.

        Args:
            where: progress of the training, ``iter / max_iter``. Values ``>= 1`` (Detectron2's
                ``LRMultiplier`` evaluates ``max_iter / max_iter`` after the last step) return
                ``min_lr_ratio``.

        Raises:
            ValueError: if ``where`` is negative.
        """
        if where < 0:
            raise ValueError(f"where must be >= 0, got {where!r}")
        warmup = self.warmup_fraction
        if where <= warmup and warmup > 0:
            return (1.0 - self.warmup_start_ratio) * (where / warmup) ** 2 + self.warmup_start_ratio
        if where >= 1.0 - self.no_aug_fraction:
            return self.min_lr_ratio
        progress = (where - warmup) / (1.0 - warmup - self.no_aug_fraction)
        return self.min_lr_ratio + 0.5 * (1.0 - self.min_lr_ratio) * (
            1.0 + math.cos(math.pi * progress)
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(warmup_fraction={self.warmup_fraction}, "
            f"no_aug_fraction={self.no_aug_fraction}, min_lr_ratio={self.min_lr_ratio}, "
            f"warmup_start_ratio={self.warmup_start_ratio})"
        )
