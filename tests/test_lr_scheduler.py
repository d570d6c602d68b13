"""Tests of yolox_d2.solver.lr_scheduler against the official YOLOX "yoloxwarmcos" schedule."""

import math

import pytest
import torch
from detectron2.solver import LRMultiplier
from detectron2.config import LazyConfig
from fvcore.common.param_scheduler import ParamScheduler

from yolox_d2.solver import resolve_schedule
from yolox_d2.solver.lr_scheduler import YOLOXWarmCosineParamScheduler, epochs_to_fractions

yolox_lr = pytest.importorskip("yolox.utils.lr_scheduler")


def _official(lr, iters_per_epoch, total_epochs, warmup_epochs, no_aug_epochs, **kwargs):
    return yolox_lr.LRScheduler(
        "yoloxwarmcos",
        lr,
        iters_per_epoch,
        total_epochs,
        warmup_epochs=warmup_epochs,
        no_aug_epochs=no_aug_epochs,
        **kwargs,
    )


@pytest.mark.parametrize(
    "ipe,epochs,warmup,no_aug,min_ratio,start_lr",
    [
        (100, 300, 5, 15, 0.05, 0.0),  # the COCO recipe
        (37, 50, 3, 5, 0.05, 0.0),  # awkward iteration counts
        (11, 20, 1, 2, 0.2, 1e-4),  # official defaults for min_lr_ratio, non-zero warm-up start
    ],
)
def test_matches_official_every_iteration(ipe, epochs, warmup, no_aug, min_ratio, start_lr):
    base_lr = 0.01 * 64 / 64
    official = _official(
        base_lr, ipe, epochs, warmup, no_aug, min_lr_ratio=min_ratio, warmup_lr_start=start_lr
    )
    ours = YOLOXWarmCosineParamScheduler.from_epochs(
        epochs,
        warmup_epochs=warmup,
        no_aug_epochs=no_aug,
        min_lr_ratio=min_ratio,
        warmup_start_ratio=start_lr / base_lr,
    )
    max_iter = ipe * epochs
    worst = 0.0
    for it in range(max_iter + 1):
        expected = official.update_lr(it) / base_lr
        worst = max(worst, abs(ours(it / max_iter) - expected))
    assert worst < 1e-9


def test_shape_of_the_curve():
    s = YOLOXWarmCosineParamScheduler(warmup_fraction=0.1, no_aug_fraction=0.2, min_lr_ratio=0.05)
    assert isinstance(s, ParamScheduler)
    assert s(0.0) == 0.0
    assert s(0.05) == pytest.approx(0.25)  # quadratic warm-up
    assert s(0.1) == pytest.approx(1.0)
    assert s(0.45) == pytest.approx(0.05 + 0.5 * 0.95)  # middle of the cosine
    assert s(0.8) == pytest.approx(0.05)
    assert s(0.9) == 0.05 and s(1.0) == 0.05  # where == 1 (after the last step) must not raise
    # continuity at the phase boundaries
    eps = 1e-12
    assert abs(s(0.1 - eps) - s(0.1 + eps)) < 1e-9
    assert abs(s(0.8 - eps) - s(0.8 + eps)) < 1e-9


def test_no_warmup_and_no_tail():
    s = YOLOXWarmCosineParamScheduler(warmup_fraction=0.0, no_aug_fraction=0.0, min_lr_ratio=0.0)
    assert s(0.0) == pytest.approx(1.0)
    assert s(0.5) == pytest.approx(0.5)
    assert s(1.0) == 0.0


def test_invalid_arguments():
    with pytest.raises(ValueError):
        YOLOXWarmCosineParamScheduler(warmup_fraction=0.5, no_aug_fraction=0.5)
    with pytest.raises(ValueError):
        YOLOXWarmCosineParamScheduler(warmup_fraction=-0.1)
    with pytest.raises(ValueError):
        YOLOXWarmCosineParamScheduler(min_lr_ratio=float("nan"))
    with pytest.raises(ValueError):
        YOLOXWarmCosineParamScheduler.from_epochs(0)
    with pytest.raises(ValueError):
        YOLOXWarmCosineParamScheduler()(-0.5)
    assert "warmup_fraction" in repr(YOLOXWarmCosineParamScheduler())


def test_configs_and_from_epochs_share_one_epoch_conversion(repo_root):
    assert epochs_to_fractions(300, 5, 15) == {"warmup_fraction": 5 / 300, "no_aug_fraction": 15 / 300}
    with pytest.raises(ValueError, match="total_epochs"):
        epochs_to_fractions(0)
    # configs/deepforest/yolox_nano_trees.py: train.schedule of 200 epochs, warm-up 5, no-aug 15,
    # resolved for its 66 training tiles at 8 per batch (8 iterations per epoch)
    cfg = LazyConfig.load(str(repo_root / "configs" / "deepforest" / "yolox_nano_trees.py"))
    resolve_schedule(cfg, dataset_length=66).apply(cfg)
    scheduler = YOLOXWarmCosineParamScheduler.from_epochs(200, warmup_epochs=5, no_aug_epochs=15)
    assert cfg.lr_multiplier.warmup_fraction == scheduler.warmup_fraction == 5 / 200
    assert cfg.lr_multiplier.no_aug_fraction == scheduler.no_aug_fraction == 15 / 200
    assert (cfg.train.max_iter, cfg.train.no_aug_iters, cfg.train.eval_period) == (1600, 120, 1600)


def test_lr_multiplier_reproduces_official_trainer_lrs():
    """Through Detectron2's LRMultiplier, iteration i trains with the official update_lr(i)."""
    ipe, epochs, base_lr = 7, 20, 0.02
    max_iter = ipe * epochs
    official = _official(base_lr, ipe, epochs, 2, 3, min_lr_ratio=0.05)
    param = torch.nn.Parameter(torch.zeros(1))
    # two param groups with different base LRs: the multiplier applies to both
    opt = torch.optim.SGD(
        [{"params": [param]}, {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": base_lr * 2}],
        lr=base_lr,
        momentum=0.9,
    )
    sched = LRMultiplier(
        opt, YOLOXWarmCosineParamScheduler.from_epochs(epochs, 2, 3, 0.05), max_iter=max_iter
    )
    for it in range(max_iter):
        lrs = [g["lr"] for g in opt.param_groups]
        expected = official.update_lr(it)
        assert math.isclose(lrs[0], expected, rel_tol=1e-9, abs_tol=1e-15)
        assert math.isclose(lrs[1], 2 * expected, rel_tol=1e-9, abs_tol=1e-15)
        opt.step()
        sched.step()
