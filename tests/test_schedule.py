"""The schedule in epochs (``train.schedule``) resolved at start-up: iterations and LR from the
training set's length and the total batch, explicit values winning, a short ``train.max_iter``
compressing the schedule, the resolved numbers logged once."""
import logging

import pytest
from detectron2.config import LazyConfig

from yolox_d2.solver import YOLOXWarmCosineParamScheduler, resolve_schedule, training_set_length

from .train_net_runner import REPO_ROOT, SMALL_TREES, TREES_TRAIN_LENGTH, read_metrics, run_train_net

TREES_CFG = "configs/deepforest/yolox_nano_trees.py"
COCO_TRAIN_LENGTH = 118287


def _cfg(config_file, overrides=()):
    return LazyConfig.apply_overrides(LazyConfig.load(str(REPO_ROOT / config_file)), list(overrides))


def test_trees_and_coco_resolve_to_the_numbers_of_the_epoch_schedules():
    trees = resolve_schedule(_cfg(TREES_CFG), TREES_TRAIN_LENGTH)
    # 66 tiles // 8 = 8 iterations per epoch, 200 epochs; lr 0.16 per 64 images at batch 8
    assert (trees.iters_per_epoch, trees.max_iter, trees.no_aug_iters) == (8, 1600, 120)
    assert (trees.eval_period, trees.checkpoint_period) == (1600, 1600)
    assert trees.lr == pytest.approx(0.01 * 8 / 64 * 16)
    assert (trees.warmup_fraction, trees.no_aug_fraction) == (5 / 200, 15 / 200)
    assert trees.multiscale_period == 10

    coco = resolve_schedule(_cfg("configs/yolox_s.py"), COCO_TRAIN_LENGTH, world_size=8)
    assert (coco.iters_per_epoch, coco.max_iter, coco.no_aug_iters) == (1848, 1848 * 300, 1848 * 15)
    assert (coco.eval_period, coco.checkpoint_period) == (18480, 18480)
    assert coco.lr == pytest.approx(0.01)
    assert (coco.warmup_fraction, coco.no_aug_fraction) == (5 / 300, 15 / 300)
    assert coco.total_batch_size == 64 and coco.world_size == 8

    cfg = _cfg(TREES_CFG)
    trees.apply(cfg)
    assert (cfg.train.max_iter, cfg.train.no_aug_iters, cfg.train.eval_period) == (1600, 120, 1600)
    assert cfg.train.checkpointer.period == 1600 and cfg.optimizer.lr == pytest.approx(0.02)
    assert cfg.lr_multiplier.warmup_fraction == 5 / 200


def test_twice_the_total_batch_gives_half_the_iterations_and_twice_the_lr():
    base = resolve_schedule(_cfg("configs/yolox_s.py"), COCO_TRAIN_LENGTH, world_size=8)
    double = resolve_schedule(
        _cfg("configs/yolox_s.py", ["dataloader.train.total_batch_size=128"]), COCO_TRAIN_LENGTH, world_size=8
    )
    assert double.iters_per_epoch * 2 == base.iters_per_epoch
    assert double.max_iter * 2 == base.max_iter
    assert double.no_aug_iters * 2 == base.no_aug_iters
    assert double.eval_period * 2 == base.eval_period
    assert double.lr == pytest.approx(2 * base.lr)
    # the LR curve keeps its shape in epochs
    assert (double.warmup_fraction, double.no_aug_fraction) == (base.warmup_fraction, base.no_aug_fraction)
    assert double.multiscale_period == base.multiscale_period == 10  # iterations, whatever the batch


def test_explicit_values_win_and_are_logged(caplog):
    cfg = _cfg(TREES_CFG, ["train.max_iter=2000", "optimizer.lr=0.05", "train.eval_period=300"])
    with caplog.at_level(logging.INFO, logger="yolox_d2"):
        schedule = resolve_schedule(cfg, TREES_TRAIN_LENGTH)
        schedule.apply(cfg)
    assert (schedule.max_iter, schedule.lr, schedule.eval_period) == (2000, 0.05, 300)
    # the other phases keep their share of the run: 15 of 200 epochs, 200 of 200
    assert (schedule.no_aug_iters, schedule.checkpoint_period) == (150, 2000)
    assert (cfg.train.max_iter, cfg.optimizer.lr) == (2000, 0.05)
    text = caplog.text
    assert "train.max_iter=2000 given: kept (train.schedule: 200 epochs x 8 = 1600 iterations)" in text
    assert "optimizer.lr=0.05 given: kept (train.schedule would give 0.02 for a total batch of 8)" in text
    assert "train.eval_period=300 given: kept" in text
    assert text.count("Schedule: 66 training images / total batch 8") == 1


def test_short_max_iter_shrinks_the_phases_or_names_the_keys():
    schedule = resolve_schedule(_cfg(TREES_CFG, ["train.max_iter=4"]), TREES_TRAIN_LENGTH)
    assert schedule.max_iter == 4
    assert schedule.no_aug_iters == 0  # 15 / 200 x 4 = 0.3
    assert (schedule.eval_period, schedule.checkpoint_period) == (4, 4)
    assert schedule.warmup_fraction * schedule.max_iter == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"train.no_aug_iters=120 must be >= 0 and < train.max_iter=4"):
        resolve_schedule(_cfg(TREES_CFG, ["train.max_iter=4", "train.no_aug_iters=120"]), TREES_TRAIN_LENGTH)


def test_inconsistent_settings_name_the_keys():
    with pytest.raises(ValueError, match="total_batch_size=8 must be a positive multiple of the world size 3"):
        resolve_schedule(_cfg(TREES_CFG), TREES_TRAIN_LENGTH, world_size=3)
    with pytest.raises(ValueError, match=r"warmup_epochs \(5\) \+ no_aug_epochs \(15\) must be < epochs \(20\)"):
        resolve_schedule(_cfg(TREES_CFG, ["train.schedule.epochs=20"]), TREES_TRAIN_LENGTH)
    cfg = _cfg(TREES_CFG)
    del cfg.train.schedule
    with pytest.raises(ValueError, match="train.max_iter is not set and train.schedule.epochs is missing"):
        resolve_schedule(cfg, TREES_TRAIN_LENGTH)
    with pytest.raises(ValueError, match="warmup_fraction is None: it is resolved from train.schedule"):
        YOLOXWarmCosineParamScheduler(warmup_fraction=None)


def test_training_set_length_counts_the_registered_records():
    class _Report:
        num_images = 66

    class _Dataset(list):
        data_report = _Report()

    assert training_set_length(_Dataset([0] * 63)) == 66  # 3 empty tiles dropped by filter_empty
    assert training_set_length([0] * 5) == 5


def test_train_tool_with_a_short_max_iter_trains(tmp_path):
    """``train.max_iter=4`` on the tree config: the phases shrink (it used to stop with
    ``ValueError: switch_iter must be >= 0, got -116``); the numbers are logged once."""
    proc = run_train_net(
        ["--config-file", TREES_CFG, *SMALL_TREES, "train.max_iter=4", "dataloader.train.num_workers=0",
         "model.test_score_thresh=0.0", f"train.output_dir={tmp_path}"]
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    assert log.count("Schedule: 66 training images / total batch 2 (2 per worker x 1 worker(s)) = 33 iterations per epoch") == 1
    assert "max_iter=4, warm-up 0.1 iterations, no_aug_iters=0, eval_period=4, checkpointer.period=4" in log
    assert "train.max_iter=4 given: kept (train.schedule: 200 epochs x 33 = 6600 iterations)" in log
    metrics = read_metrics(tmp_path)
    assert sorted(m["iteration"] for m in metrics if "total_loss" in m) == [0, 1, 2, 3]
    # lr 0.16 per 64 images at a total batch of 2
    assert max(m["lr"] for m in metrics if "lr" in m) <= 0.16 * 2 / 64 + 1e-12
    assert any("bbox/AP50" in m for m in metrics)  # evaluated at the end
