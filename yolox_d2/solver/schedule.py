"""
The training schedule written in epochs (``train.schedule``), resolved at start-up into the
iteration counts and learning rate of a run, from the training set's length and the actual
total batch:

====================================  ==============================================================
``train.max_iter``                    ``epochs x iters_per_epoch``, ``iters_per_epoch =
                                      dataset_length // total_batch_size`` (at least 1)
``lr_multiplier.warmup_fraction``     ``warmup_epochs / epochs`` (the quadratic warm-up)
``lr_multiplier.no_aug_fraction``     ``no_aug_epochs / epochs`` (the constant LR tail)
``train.no_aug_iters``                ``no_aug_epochs x iters_per_epoch`` (no Mosaic/MixUp, L1 on)
``train.eval_period``                 ``eval_every_epochs x iters_per_epoch``
``train.checkpointer.period``         ``checkpoint_every_epochs x iters_per_epoch``
``optimizer.lr``                      ``base_lr x total_batch_size / base_batch_size`` (the official
                                      linear scaling, 0.01 per 64 images)
====================================  ==============================================================

The *dataset length* is the number of records the training set registers (what the official
YOLOX counts: COCO's 118,287 images, those without a box included), not the number left after
Detectron2's ``filter_empty``. The *total batch* is the batch per worker times the world size
(``dataloader.train.total_batch_size``, which must be divisible by it). The multi-scale period
(``train.multiscale.period``, 10) stays in iterations whatever the batch, as the official
``random_resize`` every 10 iterations does.

A value the user gives wins: ``train.max_iter``, ``train.no_aug_iters``, ``train.eval_period``,
``train.checkpointer.period``, ``optimizer.lr`` and the two fractions are resolved only where
they are ``None`` (``max_iter`` also when 0), and the log says which were kept. An explicit
``train.max_iter`` (a quick try such as ``train.max_iter=4``) compresses the whole epoch schedule
into that many iterations: warm-up, no-augmentation tail, evaluation and checkpoint periods keep
their share of the run (a period under one iteration: only at the end). Numbers that cannot
work together (a no-augmentation tail as long as the run) stop the start-up with an error naming
the keys to set.

Usage (what :func:`yolox_d2.engine.defaults.do_train` does once the training set is built)::

    schedule = resolve_schedule(cfg, training_set_length(dataset), comm.get_world_size())
    schedule.apply(cfg)          # logs the resolved numbers once
"""

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from .lr_scheduler import epochs_to_fractions

__all__ = ["ResolvedSchedule", "resolve_schedule", "training_set_length"]

logger = logging.getLogger(__name__)

#: The keys of ``train.schedule`` (configs/common/train.py holds the official values).
SCHEDULE_KEYS = (
    "epochs",
    "warmup_epochs",
    "no_aug_epochs",
    "eval_every_epochs",
    "checkpoint_every_epochs",
    "base_lr",
    "base_batch_size",
)


def training_set_length(dataset: Any) -> int:
    """
    The number of records the training set registers: the ``num_images`` of its validation
    report (:class:`~yolox_d2.data.MosaicMixupDataset`'s ``data_report``: every record checked,
    those dropped by ``filter_empty`` included), else ``len(dataset)``.

    Args:
        dataset: the training dataset.
    """
    report = getattr(dataset, "data_report", None)
    if report is not None and getattr(report, "num_images", 0) > 0:
        return int(report.num_images)
    return len(dataset)


def _round(x: float) -> int:
    """``x`` rounded half up (0.5 -> 1)."""
    return int(math.floor(float(x) + 0.5))


def _pick(notes: List[str], name: str, given: Any, compute: Callable[[], Any]) -> Any:
    """``given`` (noted in the log) when not None, else ``compute()``."""
    if given is not None:
        notes.append(f"{name}={given:g} given: kept")
        return given
    return compute()


@dataclass(frozen=True)
class ResolvedSchedule:
    """
    The numbers of one run, as :func:`resolve_schedule` found them.

    Attributes:
        dataset_length: training records counted as one epoch.
        total_batch_size: images per iteration over all workers.
        world_size: training processes.
        iters_per_epoch: ``dataset_length // total_batch_size`` (at least 1).
        epochs: the schedule's length in epochs.
        max_iter, no_aug_iters, eval_period, checkpoint_period: iterations (``eval_period`` 0:
            only after training).
        warmup_fraction, no_aug_fraction: the LR schedule's phases as fractions of the run
            (None when ``lr_multiplier`` has no such argument).
        lr: the base learning rate.
        multiscale_period: iterations per multi-scale size, None when multi-scale is off.
        notes: what the log adds (explicit values kept, compression of the schedule).
    """

    dataset_length: int
    total_batch_size: int
    world_size: int
    iters_per_epoch: int
    epochs: float
    max_iter: int
    warmup_fraction: Optional[float]
    no_aug_fraction: Optional[float]
    no_aug_iters: int
    eval_period: int
    checkpoint_period: int
    lr: float
    multiscale_period: Optional[int]
    notes: Tuple[str, ...] = ()

    def summary(self) -> str:
        """One log message with every resolved number."""
        warmup = "n/a" if self.warmup_fraction is None else f"{self.warmup_fraction * self.max_iter:g}"
        ms = "off" if self.multiscale_period is None else f"every {self.multiscale_period} iterations"
        lines = [
            f"Schedule: {self.dataset_length} training images / total batch {self.total_batch_size} "
            f"({self.total_batch_size // self.world_size} per worker x {self.world_size} worker(s)) = "
            f"{self.iters_per_epoch} iterations per epoch; {self.epochs:g} epochs; "
            f"max_iter={self.max_iter}, warm-up {warmup} iterations, no_aug_iters={self.no_aug_iters}, "
            f"eval_period={self.eval_period}, checkpointer.period={self.checkpoint_period}, "
            f"lr={self.lr:g}, multi-scale {ms}"
        ]
        lines += [f"  {n}" for n in self.notes]
        return "\n".join(lines)

    def apply(self, cfg) -> None:
        """
        Write the numbers into ``cfg`` (``train.max_iter``, ``train.no_aug_iters``,
        ``train.eval_period``, ``train.checkpointer.period``, ``optimizer.lr``, and the
        fractions of ``lr_multiplier`` when it has them) and log :meth:`summary` once.

        Args:
            cfg: the LazyConfig :func:`resolve_schedule` read.
        """
        cfg.train.max_iter = self.max_iter
        cfg.train.no_aug_iters = self.no_aug_iters
        cfg.train.eval_period = self.eval_period
        cfg.train.checkpointer.period = self.checkpoint_period
        cfg.optimizer.lr = self.lr
        for key in ("warmup_fraction", "no_aug_fraction"):
            if key in cfg.lr_multiplier:
                cfg.lr_multiplier[key] = getattr(self, key)
        logger.info(self.summary())


def _schedule_settings(train) -> Dict[str, Any]:
    schedule = train.get("schedule", None)
    if schedule is None:
        return {}
    unknown = sorted(set(schedule) - set(SCHEDULE_KEYS))
    if unknown:
        raise ValueError(f"train.schedule has unknown keys {unknown}; known: {list(SCHEDULE_KEYS)}")
    return {k: v for k, v in schedule.items() if v is not None}


def _setting(settings: Dict[str, Any], key: str, needed_by: str) -> float:
    if key not in settings:
        raise ValueError(f"{needed_by} is not set and train.schedule.{key} is missing: set one of them")
    return float(settings[key])


def resolve_schedule(cfg, dataset_length: int, world_size: int = 1) -> ResolvedSchedule:
    """
    Resolve ``cfg``'s schedule (see the module docstring) without changing ``cfg``.

    Args:
        cfg: a LazyConfig with ``train`` (``schedule``, ``max_iter``, ``no_aug_iters``,
            ``eval_period``, ``checkpointer.period``, ``multiscale``), ``optimizer.lr``,
            ``lr_multiplier`` and ``dataloader.train.total_batch_size``.
        dataset_length: records of the training set (:func:`training_set_length`).
        world_size: the number of training processes.

    Raises:
        ValueError: naming the keys to set, when the numbers cannot work together (total batch
            not divisible by the world size, warm-up + no-augmentation epochs not shorter than
            the run, a no-augmentation tail not shorter than ``train.max_iter``, a value
            needed but neither given nor in ``train.schedule``).
    """
    train, settings = cfg.train, _schedule_settings(cfg.train)
    total, world_size = int(cfg.dataloader.train.total_batch_size), max(int(world_size), 1)
    if total <= 0 or total % world_size:
        raise ValueError(
            f"dataloader.train.total_batch_size={total} must be a positive multiple of the world "
            f"size {world_size} (the batch per worker times the number of workers)"
        )
    if dataset_length <= 0:
        raise ValueError(f"the training set is empty (dataset length {dataset_length})")
    iters_per_epoch = max(int(dataset_length) // total, 1)
    notes: List[str] = []

    epochs = settings.get("epochs")
    if epochs is not None and epochs <= 0:
        raise ValueError(f"train.schedule.epochs must be > 0, got {epochs:g}")
    if train.get("max_iter", None):  # None / 0: resolve
        max_iter = int(train.max_iter)
        if max_iter < 0:
            raise ValueError(
                f"train.max_iter must be > 0 (or None / 0 to follow train.schedule), got {max_iter}"
            )
        note = f"train.max_iter={max_iter} given: kept"
        if epochs is not None:
            nominal = int(epochs * iters_per_epoch)
            note += f" (train.schedule: {epochs:g} epochs x {iters_per_epoch} = {nominal} iterations)"
            if max_iter != nominal:
                note += (
                    "; warm-up, no-augmentation tail, evaluation and checkpoint periods keep their "
                    f"share of the run (x{max_iter / nominal:.4g})"
                )
        notes.append(note)
    else:
        max_iter = int(_setting(settings, "epochs", "train.max_iter") * iters_per_epoch)
    epochs = float(epochs) if epochs is not None else max_iter / iters_per_epoch
    per_epoch = max_iter / epochs  # iterations of one epoch in this run

    def fraction(key: str) -> float:
        warmup = _setting(settings, "warmup_epochs", "lr_multiplier.warmup_fraction")
        no_aug = _setting(settings, "no_aug_epochs", "lr_multiplier.no_aug_fraction")
        if warmup + no_aug >= epochs:
            raise ValueError(
                f"train.schedule: warmup_epochs ({warmup:g}) + no_aug_epochs ({no_aug:g}) must be "
                f"< epochs ({epochs:g}); lower them or raise train.schedule.epochs"
            )
        return epochs_to_fractions(epochs, warmup, no_aug)[key]

    lr_multiplier = cfg.get("lr_multiplier", None)
    fractions: Dict[str, Optional[float]] = {}
    for key in ("warmup_fraction", "no_aug_fraction"):
        has_key = lr_multiplier is not None and key in lr_multiplier
        given = lr_multiplier[key] if has_key else None
        if has_key:
            fractions[key] = _pick(notes, f"lr_multiplier.{key}", given, lambda k=key: fraction(k))
        else:
            fractions[key] = None

    def in_epochs(key: str) -> int:
        return _round(_setting(settings, key, f"the iterations of train.schedule.{key}") * per_epoch)

    no_aug_iters = int(
        _pick(notes, "train.no_aug_iters", train.get("no_aug_iters", None), lambda: in_epochs("no_aug_epochs"))
    )
    if not 0 <= no_aug_iters < max_iter:
        raise ValueError(
            f"train.no_aug_iters={no_aug_iters} must be >= 0 and < train.max_iter={max_iter} (the "
            "no-augmentation tail ends the run); set train.no_aug_iters, or leave it None to follow "
            "train.schedule.no_aug_epochs"
        )
    # a period under one iteration: 0, i.e. only after training
    eval_period = int(
        _pick(notes, "train.eval_period", train.get("eval_period", None), lambda: in_epochs("eval_every_epochs"))
    )
    checkpoint_period = int(
        _pick(
            notes,
            "train.checkpointer.period",
            train.checkpointer.get("period", None),
            # fvcore's PeriodicCheckpointer needs a period >= 1; max_iter: only model_final
            lambda: in_epochs("checkpoint_every_epochs") or max_iter,
        )
    )

    def scaled_lr() -> float:
        base_lr = _setting(settings, "base_lr", "optimizer.lr")
        return base_lr * total / _setting(settings, "base_batch_size", "optimizer.lr")

    lr = float(_pick(notes, "optimizer.lr", cfg.optimizer.get("lr", None), scaled_lr))
    if cfg.optimizer.get("lr", None) is not None and {"base_lr", "base_batch_size"} <= set(settings):
        notes[-1] += f" (train.schedule would give {scaled_lr():g} for a total batch of {total})"

    multiscale = train.get("multiscale", None)
    ms_enabled = multiscale is not None and multiscale.get("enabled", False)
    return ResolvedSchedule(
        dataset_length=int(dataset_length),
        total_batch_size=total,
        world_size=world_size,
        iters_per_epoch=iters_per_epoch,
        epochs=epochs,
        max_iter=max_iter,
        warmup_fraction=fractions["warmup_fraction"],
        no_aug_fraction=fractions["no_aug_fraction"],
        no_aug_iters=no_aug_iters,
        eval_period=eval_period,
        checkpoint_period=checkpoint_period,
        lr=lr,
        multiscale_period=int(multiscale.period) if ms_enabled else None,
        notes=tuple(notes),
    )
