"""Detectron2 training hooks implementing the YOLOX training recipe.

* :class:`YOLOXModeSwitchHook` -- the "no augmentation" phase of the last epochs: turns
  Mosaic/MixUp off in the data pipeline and the L1 loss on in the model, also after a resume.
* :class:`MultiScaleHook` -- multi-scale training: every ``period`` iterations rank 0 draws one
  input size and broadcasts it, so that every worker trains at the same size.
* :class:`SyncBNStatsHook` / :func:`all_reduce_bn_stats` -- average BatchNorm running statistics
  across workers before evaluation.

The EMA hook lives in :mod:`yolox_d2.engine.ema`. Hook registration order (the hooks run in
the order they are registered; see :mod:`yolox_d2.engine` for the full recipe)::

    trainer.register_hooks([
        hooks.IterationTimer(),
        hooks.LRScheduler(scheduler=YOLOXWarmCosineParamScheduler.from_epochs(300)),
        EMAHook(ema),                                  # before checkpointing and evaluation
        YOLOXModeSwitchHook.from_dataset(switch_iter, dataset),
        MultiScaleHook(multiscale_sizes((640, 640)), period=10, initial_size=(640, 640)),
        hooks.PeriodicCheckpointer(checkpointer, period) if comm.is_main_process() else None,
        SyncBNStatsHook(eval_period, ema=ema),         # immediately before EvalHook
        hooks.EvalHook(eval_period, ema_eval_function(eval_fn, model, ema)),
        hooks.PeriodicWriter(...) if comm.is_main_process() else None,
    ])
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from torch import nn

from detectron2.engine.train_loop import HookBase
from detectron2.utils import comm

if TYPE_CHECKING:  # pragma: no cover - import only for type annotations (avoids a cycle)
    from .ema import ModelEMA

__all__ = [
    "unwrap_model",
    "bn_stat_keys",
    "all_reduce_bn_stats",
    "broadcast_ints_from_main",
    "multiscale_sizes",
    "YOLOXModeSwitchHook",
    "MultiScaleHook",
    "SyncBNStatsHook",
]

logger = logging.getLogger(__name__)

Size = Tuple[int, int]

_WRAPPER_TYPES = (nn.parallel.DistributedDataParallel, nn.parallel.DataParallel)


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the user model inside data-parallel / compile wrappers.

    Unwraps (repeatedly) :class:`~torch.nn.parallel.DistributedDataParallel`,
    :class:`~torch.nn.DataParallel` (``.module``) and ``torch.compile`` wrappers
    (``._orig_mod``). Any other module is returned unchanged.

    Args:
        model: a model, possibly wrapped.

    Returns:
        The innermost wrapped module.
    """
    while True:
        if isinstance(model, _WRAPPER_TYPES):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


# ---------------------------------------------------------------------------------------------
# Distributed helpers
# ---------------------------------------------------------------------------------------------


def _world_size(group: Optional[Any]) -> int:
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group) if group is not None else comm.get_world_size()


def _collective_device(group: Optional[Any]) -> torch.device:
    """Device on which tensors must live for collectives of ``group`` (CUDA for NCCL)."""
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_ints_from_main(values: Sequence[int], group: Optional[Any] = None) -> List[int]:
    """Broadcast a short list of integers from global rank 0 to all ranks of ``group``.

    Must be called by every rank of ``group`` with a list of the same length (the values of
    ranks other than 0 are ignored). A no-op when not running distributed.

    Args:
        values: the integers to send (rank 0) or placeholders of the same length (others).
        group: process group; ``None`` is the default (global) group.

    Returns:
        Rank 0's values, on every rank.
    """
    values = [int(v) for v in values]
    if _world_size(group) == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.int64, device=_collective_device(group))
    dist.broadcast(tensor, src=0, group=group)
    return [int(v) for v in tensor.tolist()]


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


@torch.no_grad()
def _all_reduce_mean_(tensors: Sequence[torch.Tensor], group: Optional[Any]) -> None:
    """Replace every tensor by its average over the ranks of ``group`` (in place)."""
    world_size = _world_size(group)
    if world_size == 1 or not tensors:
        return
    device = _collective_device(group)
    buckets: Dict[torch.dtype, List[torch.Tensor]] = {}
    for t in tensors:
        if not t.dtype.is_floating_point:
            raise TypeError(f"only floating point tensors can be averaged, got {t.dtype}")
        buckets.setdefault(t.dtype, []).append(t)
    for dtype, bucket in buckets.items():
        flat = torch.cat([t.detach().reshape(-1).to(device) for t in bucket])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
        flat /= world_size
        offset = 0
        for t in bucket:
            n = t.numel()
            t.copy_(flat[offset : offset + n].view_as(t))
            offset += n


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
    if _world_size(group) == 1:
        return 0
    keys = bn_stat_keys(model)
    module = unwrap_model(model)
    buffers = dict(module.named_buffers())
    tensors = [buffers[k] for k in keys]
    if ema is not None:
        ema_state = ema.ema_state
        tensors.extend(ema_state[k] for k in keys if k in ema_state)
    _all_reduce_mean_(tensors, group)
    return len(tensors)


# ---------------------------------------------------------------------------------------------
# Multi-scale sizes
# ---------------------------------------------------------------------------------------------


def multiscale_sizes(
    input_size: Sequence[int] = (640, 640),
    multiscale_range: int = 5,
    stride: int = 32,
    random_size: Optional[Sequence[int]] = None,
) -> List[Size]:
    """Candidate ``(h, w)`` training sizes of the official YOLOX multi-scale training.

    Follows ``yolox/exp/yolox_base.py::random_resize``: the height is ``stride * k`` for every
    integer ``k`` in ``[input_h // stride - multiscale_range, input_h // stride +
    multiscale_range]`` (or in ``random_size`` if given), the width keeps the aspect ratio of
    ``input_size``: ``stride * int(k * input_w / input_h)``. For 640x640 this is 480 ... 800 in
    steps of 32; Tiny/Nano use ``random_size=(10, 20)``, i.e. 320 ... 640.

    Args:
        input_size: the base ``(h, w)`` training size.
        multiscale_range: number of ``stride`` steps below and above the base size.
        stride: the size granularity (the largest output stride of the model).
        random_size: optional inclusive ``(k_min, k_max)`` range of multiples of ``stride``,
            overriding ``multiscale_range`` (official ``exp.random_size``).

    Returns:
        The list of candidate sizes, smallest first.
    """
    h, w = (int(v) for v in input_size)
    if h <= 0 or w <= 0 or stride <= 0:
        raise ValueError(f"invalid input_size {input_size!r} / stride {stride!r}")
    if random_size is None:
        k_min, k_max = h // stride - multiscale_range, h // stride + multiscale_range
    else:
        k_min, k_max = (int(v) for v in random_size)
    if k_min < 1 or k_max < k_min:
        raise ValueError(f"empty or non-positive size range: k in [{k_min}, {k_max}]")
    factor = w / h
    sizes = [(stride * k, stride * int(k * factor)) for k in range(k_min, k_max + 1)]
    if any(s[1] <= 0 for s in sizes):
        raise ValueError(f"input_size {input_size!r} yields a zero width")
    return sizes


def _as_size(value: Sequence[int], what: str) -> Size:
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} must be a pair (h, w) of ints, got {value!r}") from e
    if h <= 0 or w <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return h, w


# ---------------------------------------------------------------------------------------------
# Hooks
# ---------------------------------------------------------------------------------------------


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


class MultiScaleHook(HookBase):
    """YOLOX multi-scale training: a new random input size every ``period`` iterations.

    Iterations are grouped in windows of ``period``; window ``k`` covers iterations
    ``[k * period, (k + 1) * period)``. Window 0 trains at ``initial_size`` (the official
    trainer starts at ``exp.input_size``); every later window trains at a size drawn uniformly
    from ``sizes`` **on rank 0** and broadcast to all ranks (so every worker trains at the same
    size, whatever its RNG). The size is pushed into the model with
    ``model.set_train_size((h, w))`` (DDP unwrapped) or with the ``set_size`` callable.

    Like the official trainer, the random resizing continues during the no-augmentation phase.

    The draw for window ``k`` is a pure function of ``(seed, k)``, so a run resumed at any
    iteration trains at the same sizes as an uninterrupted run. The seed is part of
    :meth:`state_dict` (saved with the trainer by Detectron2's checkpointer), so this holds
    for ``seed=None`` (a random seed) too.

    Collectives: :meth:`before_train` and :meth:`after_step` broadcast from rank 0 when a new
    random size is needed; the hook must be registered on every rank.
    """

    def __init__(
        self,
        sizes: Sequence[Sequence[int]],
        period: int = 10,
        initial_size: Optional[Sequence[int]] = None,
        seed: Optional[int] = None,
        set_size: Optional[Callable[[Size], None]] = None,
    ) -> None:
        """
        Args:
            sizes: candidate ``(h, w)`` sizes, e.g. from :func:`multiscale_sizes`.
            period: number of iterations trained at one size (official: 10).
            initial_size: size of the first window (iterations ``0 .. period - 1``), the
                configured input size; ``None`` leaves the model at its own size there.
            seed: seed of the size draws (only rank 0's matters); ``None`` draws one from the
                operating system.
            set_size: called with the ``(h, w)`` size to train at; ``None`` (default) calls
                ``set_train_size`` of the trainer's model (DDP unwrapped).
        """
        if not sizes:
            raise ValueError("sizes must contain at least one (h, w) size")
        if int(period) <= 0:
            raise ValueError(f"period must be > 0, got {period!r}")
        if set_size is not None and not callable(set_size):
            raise TypeError("set_size must be callable or None")
        self.sizes: List[Size] = [_as_size(s, "each entry of sizes") for s in sizes]
        self.period = int(period)
        self.initial_size: Optional[Size] = (
            None if initial_size is None else _as_size(initial_size, "initial_size")
        )
        self.seed = int(seed) if seed is not None else random.SystemRandom().randrange(2**31)
        self._set_size = set_size
        self._window: Optional[int] = None
        self._current_size: Optional[Size] = None

    @classmethod
    def from_range(
        cls, min_size: int, max_size: int, step: int = 32, **kwargs: Any
    ) -> "MultiScaleHook":
        """Build the hook for square sizes ``min_size, min_size + step, ..., max_size``.

        Args:
            min_size: smallest side length (inclusive).
            max_size: largest side length (inclusive; must be ``min_size + n * step``).
            step: increment between candidate sizes.
            kwargs: the other arguments of :meth:`__init__` (``period``, ``initial_size``,
                ``seed``, ``set_size``).
        """
        if step <= 0 or min_size <= 0 or max_size < min_size or (max_size - min_size) % step:
            raise ValueError(
                f"invalid size range: min_size={min_size}, max_size={max_size}, step={step}"
            )
        sizes = [(s, s) for s in range(min_size, max_size + 1, step)]
        return cls(sizes, **kwargs)

    @property
    def current_size(self) -> Optional[Size]:
        """The size most recently set on the model (``None`` before any was set)."""
        return self._current_size

    def _draw(self, window: int) -> Size:
        """Rank 0's draw for ``window`` (deterministic in ``(seed, window)``)."""
        rng = random.Random(self.seed * 1_000_003 + window)
        return self.sizes[rng.randrange(len(self.sizes))]

    def size_for_window(self, window: int) -> Optional[Size]:
        """The size used for ``window`` (collective when distributed and random).

        Args:
            window: the window index ``iteration // period``.

        Returns:
            ``initial_size`` for window 0, else rank 0's random draw (``None`` for window 0
            without ``initial_size``).
        """
        if window == 0:
            return self.initial_size
        size = self._draw(window) if comm.get_rank() == 0 else (0, 0)
        h, w = broadcast_ints_from_main(size)
        return h, w

    def _apply_window(self, window: int) -> None:
        if window == self._window:
            return
        size = self.size_for_window(window)
        self._window = window
        if size is None:
            return
        if self._set_size is not None:
            self._set_size(size)
        else:
            unwrap_model(self.trainer.model).set_train_size(size)
        self._current_size = size
        logger.debug("Multi-scale training: window %d trains at size %s", window, size)
        storage = getattr(self.trainer, "storage", None)
        if storage is not None:
            storage.put_scalar("train_size", float(size[0]), smoothing_hint=False)

    def before_train(self) -> None:
        if self._set_size is None:
            model = unwrap_model(self.trainer.model)
            if not callable(getattr(model, "set_train_size", None)):
                raise AttributeError(
                    f"{type(model).__name__} has no 'set_train_size((h, w))' method; pass "
                    "set_size= to MultiScaleHook"
                )
        self._window = None
        self._apply_window(self.trainer.iter // self.period)

    def after_step(self) -> None:
        next_iter = self.trainer.iter + 1
        if next_iter % self.period == 0 and next_iter < self.trainer.max_iter:
            self._apply_window(next_iter // self.period)

    def state_dict(self) -> Dict[str, Any]:
        """The seed of the size draws (rank 0's), so a resume trains at the same sizes."""
        return {"seed": self.seed}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore the seed saved by :meth:`state_dict`."""
        if "seed" not in state_dict:
            raise KeyError(f"MultiScaleHook state has no 'seed': {sorted(state_dict)}")
        self.seed = int(state_dict["seed"])
        self._window = None


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
