"""YOLOX multi-scale training: one input size per window of iterations, agreed by all ranks."""

from __future__ import annotations

import logging
import random
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from detectron2.engine.train_loop import HookBase
from detectron2.utils import comm

from ..utils.comm import broadcast_ints_from_main
from ..utils.model import unwrap_model

__all__ = ["multiscale_sizes", "MultiScaleHook"]

logger = logging.getLogger(__name__)

Size = Tuple[int, int]


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
