"""End-to-end training with the recipe of yolox_d2.engine.defaults (the training tool's): overfitting,
resume, 2 processes."""
import shutil

import pytest
import torch

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import LazyConfig, instantiate
from detectron2.engine import hooks
from yolox_d2.checkpoint import AtomicDetectionCheckpointer
from yolox_d2.engine import EMAHook, MultiScaleHook, SyncBNStatsHook, YOLOXModeSwitchHook
from yolox_d2.engine.defaults import (
    build_ema,
    build_hooks,
    build_model,
    build_optimizer,
    build_trainer,
    do_test,
    do_train,
)
from yolox_d2.engine.guards import GuardedSimpleTrainer
from yolox_d2.solver import YOLOXWarmCosineParamScheduler

from .synthetic_shapes import make_shapes_dataset, register_shapes_dataset
from .train_net_runner import SMALL_TREES, read_metrics, resolved_config, run_train_net

TREES_CFG = "configs/deepforest/yolox_nano_trees.py"


class _MosaicSwitch:
    def __init__(self):
        self.calls = []

    def set_mosaic_enabled(self, enabled):
        self.calls.append(enabled)


def test_build_hooks_gives_the_recipe_hooks_in_order(tmp_path):
    """The one hook list: EMA first after the LR, multi-scale before the checkpointer, BN sync
    right before the evaluation, writers last; EMA and multi-scale only when enabled."""
    cfg = resolved_config(TREES_CFG, ["train.no_aug_iters=7", f"train.output_dir={tmp_path}"])
    model = build_model(cfg)
    ema = build_ema(cfg, model)
    trainer = build_trainer(cfg, model, [], build_optimizer(cfg, model), ema=ema)
    assert isinstance(trainer, GuardedSimpleTrainer) and trainer.model is model  # one process
    assert isinstance(trainer.checkpointer, AtomicDetectionCheckpointer)
    assert trainer.checkpointer.checkpointables == {"trainer": trainer, "ema": ema}
    dataset = _MosaicSwitch()
    recipe = build_hooks(cfg, trainer, dataset, ema=ema)
    assert [type(h) for h in recipe] == [
        hooks.IterationTimer,
        hooks.LRScheduler,
        EMAHook,
        YOLOXModeSwitchHook,
        MultiScaleHook,
        hooks.PeriodicCheckpointer,
        SyncBNStatsHook,
        hooks.EvalHook,
        hooks.PeriodicWriter,
    ]
    assert recipe[2].ema is ema
    assert recipe[3].switch_iter == cfg.train.max_iter - 7
    assert recipe[4].initial_size == (320, 320) and recipe[4].sizes[0] == (288, 288)

    cfg.train.ema.enabled = False
    cfg.train.multiscale.enabled = False
    assert build_ema(cfg, model) is None
    plain = build_hooks(cfg, build_trainer(cfg, model, [], build_optimizer(cfg, model)), dataset)
    assert EMAHook not in map(type, plain) and MultiScaleHook not in map(type, plain)
    assert len(plain) == 7 and dataset.calls == []  # nothing switched before training


def _overfit_ap50(tmp_path, repo_root, size=256, extra=()):
    """Train YOLOX-Nano through the training tool's do_train on 4 images of ``size`` px for 200
    iterations (flat LR after warm-up), then return its COCO AP50 on those images."""
    dicts = make_shapes_dataset(str(tmp_path / "images"), num_images=4, size=size)
    register_shapes_dataset("yolox_d2_test_shapes", dicts)
    cfg = LazyConfig.load(str(repo_root / "configs" / "yolox_nano.py"))
    cfg = LazyConfig.apply_overrides(
        cfg,
        [
            "model.num_classes=2",
            f"model.test_square_size={size}",
            "model.test_score_thresh=0.001",
            "dataloader.train.dataset.dataset_dicts.names=yolox_d2_test_shapes",
            f"dataloader.train.dataset.image_size=[{size},{size}]",
            "dataloader.train.dataset.enable_mosaic=False",
            "dataloader.train.dataset.hsv_prob=0.0",
            "dataloader.train.total_batch_size=4",
            "dataloader.train.num_workers=0",
            "dataloader.train.seed=0",
            "dataloader.test.dataset=yolox_d2_test_shapes",
            f"dataloader.test.mapper.image_size=[{size},{size}]",
            "dataloader.test.num_workers=0",
            "optimizer.lr=0.02",
            "train.device=cpu",
            "train.seed=0",
            "train.max_iter=200",
            "train.no_aug_iters=30",
            "train.eval_period=1000",
            "train.checkpointer.period=1000",
            "train.ema.enabled=False",
            "train.multiscale.enabled=False",
            "lr_multiplier.warmup_fraction=0.1",
            "lr_multiplier.no_aug_fraction=0.15",
            "lr_multiplier.min_lr_ratio=1.0",  # flat after warm-up: overfit, don't anneal
            f"train.output_dir={tmp_path / 'out'}",
            *extra,
        ],
    )
    torch.manual_seed(0)
    do_train(cfg, resume=False)
    model = instantiate(cfg.model)
    DetectionCheckpointer(model).load(str(tmp_path / "out" / "model_final.pth"))
    results = do_test(cfg, model.eval())
    print(f"overfit AP50 {results['bbox']['AP50']:.1f} ({size} px, {list(extra)})")
    return results


def test_overfits_a_handful_of_images(tmp_path, repo_root):
    """Training through the training tool's do_train on 4 images reaches AP50 >= 0.9 on them."""
    results = _overfit_ap50(tmp_path, repo_root)
    assert results["bbox"]["AP50"] >= 90.0, results


@pytest.mark.slow
def test_overfits_a_handful_of_images_in_bfloat16(tmp_path, repo_root):
    """The same in bfloat16 autocast (``train.amp``), at 128 px: on a CPU without native bf16
    (AVX2 only) the bf16 convolutions of Nano (depthwise) are ~5x slower than fp32, so this
    run takes several minutes (slow)."""
    results = _overfit_ap50(
        tmp_path, repo_root, size=128, extra=["train.amp.enabled=True", "train.amp.precision=bfloat16"]
    )
    assert results["bbox"]["AP50"] >= 90.0, results


def test_resume_continues_iteration_lr_ema_and_augmentation_mode(tmp_path):
    """
    Run 12 iterations (no-aug phase from iteration 6), then "interrupt" after the checkpoint of
    iteration 7 (later checkpoints removed, as after a crash) and resume with --resume.
    """
    common = SMALL_TREES + [
        "train.max_iter=12",
        "train.no_aug_iters=6",
        "train.checkpointer.period=4",
        "train.checkpointer.max_to_keep=10",
        "train.eval_period=1000",
    ]
    full = tmp_path / "full"
    proc = run_train_net(["--config-file", TREES_CFG, *common, f"train.output_dir={full}"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    crashed = tmp_path / "crashed"
    crashed.mkdir()
    shutil.copy(full / "model_0000007.pth", crashed / "model_0000007.pth")
    (crashed / "last_checkpoint").write_text("model_0000007.pth")
    ckpt = torch.load(crashed / "model_0000007.pth", map_location="cpu", weights_only=False)
    assert ckpt["iteration"] == 7 and ckpt["ema"]["updates"] == 8

    proc = run_train_net(["--config-file", TREES_CFG, "--resume", *common, f"train.output_dir={crashed}"])
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    assert "Starting training from iteration 8" in log
    # augmentation mode: already in the no-aug phase when resuming, so switched at once
    assert "Iteration 8: entering the no-augmentation phase" in log

    resumed = {m["iteration"]: m for m in read_metrics(crashed) if "lr" in m}
    reference = {m["iteration"]: m for m in read_metrics(full) if "lr" in m}
    assert sorted(resumed) == list(range(8, 12))
    cfg = resolved_config(TREES_CFG, common)
    schedule = YOLOXWarmCosineParamScheduler(
        **{k: v for k, v in cfg.lr_multiplier.items() if k != "_target_"}
    )
    for it in range(8, 12):
        assert resumed[it]["lr"] == pytest.approx(reference[it]["lr"], rel=1e-9)
        # the recorded lr is the one used for that iteration's step
        assert resumed[it]["lr"] == pytest.approx(cfg.optimizer.lr * schedule(it / 12), rel=1e-6)
        assert resumed[it]["loss_l1"] > 0  # L1 on in the no-aug phase
    final = torch.load(crashed / "model_final.pth", map_location="cpu", weights_only=False)
    assert final["ema"]["updates"] == 12  # continued from 8, not restarted
    assert final["iteration"] == 11

    # --eval-only evaluates the EMA weights stored in the checkpoint
    proc = run_train_net(
        ["--config-file", TREES_CFG, "--eval-only", *common, "model.test_score_thresh=0.0",
         f"train.init_checkpoint={crashed / 'model_final.pth'}", f"train.output_dir={tmp_path / 'eval'}"]
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    assert "Using the EMA weights of" in log and "(updates=12)" in log
    assert "Evaluation results for bbox" in log


def test_two_processes_on_cpu(tmp_path):
    """--num-gpus 2 on a CPU machine: gloo, plugin DDP wrapping, training then COCO evaluation;
    ``train.device=cuda`` (the configs' default) falls back to the CPU with one warning."""
    proc = run_train_net(
        [
            "--config-file", TREES_CFG, "--num-gpus", "2", *SMALL_TREES, "train.device=cuda",
            "train.max_iter=4", "train.no_aug_iters=2", "train.eval_period=1000",
            "dataloader.train.num_workers=0", "dataloader.train.total_batch_size=4",
            "train.multiscale.enabled=True", "train.multiscale.period=2",
            # after 4 iterations no score reaches the default threshold: keep every prediction
            # so that COCO scoring really runs
            "model.test_score_thresh=0.0",
            f"train.output_dir={tmp_path}",
        ],
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    # Detectron2 logs rank 1 to its own file
    rank1_log = (tmp_path / "log.txt.rank1").read_text()
    assert "Rank of current process: 1. World size: 2" in rank1_log
    if not torch.cuda.is_available():
        assert log.count("CUDA is not available: running on the CPU") == 1  # rank 0's console
        assert rank1_log.count("CUDA is not available: running on the CPU") == 1
    assert "Evaluation results for bbox" in log
    metrics = read_metrics(tmp_path)
    assert max(m["iteration"] for m in metrics if "total_loss" in m) == 3  # iterations 0..3
    assert any("bbox/AP50" in m for m in metrics)  # the evaluation was recorded
