"""Tests of the recipe hooks of yolox_d2.engine (mode switch, multi-scale, BN sync) and of a full resume."""

import logging
import os
import time
from typing import Dict, List, Optional, Tuple

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import HookBase, SimpleTrainer, hooks
from torch import nn

from yolox_d2.engine import (
    EMAHook,
    ModelEMA,
    MultiScaleHook,
    SyncBNStatsHook,
    YOLOXModeSwitchHook,
    all_reduce_bn_stats,
    bn_stat_keys,
    broadcast_ints_from_main,
    ema_eval_function,
    multiscale_sizes,
    unwrap_model,
)
from yolox_d2.solver.lr_scheduler import YOLOXWarmCosineParamScheduler

SIZES = [(8, 8), (12, 12), (16, 16), (20, 20), (24, 24)]


# ---------------------------------------------------------------------------------------------
# Toy model / data / trainer
# ---------------------------------------------------------------------------------------------


class ToyDetector(nn.Module):
    """Implements what the hooks need: ``use_l1_loss`` and ``set_train_size``.

    Every training forward appends ``(train_size, use_l1_loss, augmented)`` to ``self.trace``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4, momentum=0.3)
        self.fc = nn.Linear(4, 2)
        self.use_l1_loss = False
        self.train_size: Optional[Tuple[int, int]] = None
        self.trace: List[tuple] = []

    def set_train_size(self, size: Tuple[int, int]) -> None:
        self.train_size = tuple(size)

    def forward(self, batch):
        x = batch["images"]
        if self.training and self.train_size is not None:
            x = nn.functional.interpolate(
                x, size=self.train_size, mode="bilinear", align_corners=False
            )
        out = self.fc(nn.functional.silu(self.bn(self.conv(x))).mean((2, 3)))
        if not self.training:
            return out
        self.trace.append((self.train_size, self.use_l1_loss, batch["augmented"]))
        losses = {"loss_mse": (out - 1.0).pow(2).mean()}
        if self.use_l1_loss:
            losses["loss_l1"] = (out - 1.0).abs().mean()
        return losses


class ToyDataset:
    """Holds the mosaic flag like the YOLOX dataset (here a plain attribute)."""

    def __init__(self) -> None:
        self.mosaic = True
        self.calls: List[bool] = []
        gen = torch.Generator().manual_seed(0)
        self.images = torch.randn(4, 3, 16, 16, generator=gen) * 2 + 0.5

    def set_mosaic_enabled(self, enabled: bool) -> None:
        self.calls.append(enabled)
        self.mosaic = enabled

    def __iter__(self):
        while True:  # "augmentation" = horizontal flip, so that it changes the loss
            images = self.images.flip(-1) if self.mosaic else self.images
            yield {"images": images, "augmented": self.mosaic}


class FakeTrainer:
    """The minimum a hook uses: ``model``, ``iter``, ``max_iter`` (no ``storage``)."""

    def __init__(self, model: nn.Module, max_iter: int, start_iter: int = 0) -> None:
        self.model = model
        self.max_iter = max_iter
        self.iter = start_iter


def _run_hook(hook: HookBase, trainer: FakeTrainer, model: ToyDetector) -> Dict[int, tuple]:
    """Drive ``hook`` like TrainerBase.train; returns the train size seen by each iteration."""
    hook.trainer = trainer
    seen = {}
    hook.before_train()
    for it in range(trainer.iter, trainer.max_iter):
        trainer.iter = it
        hook.before_step()
        seen[it] = model.train_size
        hook.after_step()
    trainer.iter += 1
    hook.after_train()
    return seen


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def test_unwrap_model():
    model = ToyDetector()
    assert unwrap_model(model) is model
    assert unwrap_model(nn.DataParallel(model)) is model
    assert unwrap_model(nn.DataParallel(nn.DataParallel(model))) is model
    assert unwrap_model(torch.compile(model)) is model  # compile wrapper, nothing compiled


def test_multiscale_sizes_follow_official_random_resize():
    assert multiscale_sizes((640, 640)) == [(32 * k, 32 * k) for k in range(15, 26)]
    assert multiscale_sizes((640, 640))[0] == (480, 480)
    assert multiscale_sizes((640, 640))[-1] == (800, 800)
    # Tiny / Nano: exp.random_size = (10, 20) -> 320 ... 640
    assert multiscale_sizes((416, 416), random_size=(10, 20)) == [
        (32 * k, 32 * k) for k in range(10, 21)
    ]
    # non-square: official size = (32 * k, 32 * int(k * w / h))
    assert multiscale_sizes((640, 960), multiscale_range=1) == [(608, 896), (640, 960), (672, 992)]
    with pytest.raises(ValueError):
        multiscale_sizes((64, 64), multiscale_range=5)  # k_min < 1
    with pytest.raises(ValueError):
        multiscale_sizes((0, 64))


def test_single_process_collectives_are_no_ops():
    model = ToyDetector()
    assert broadcast_ints_from_main([3, 4]) == [3, 4]
    assert all_reduce_bn_stats(model) == 0
    assert bn_stat_keys(nn.DataParallel(model)) == ["bn.running_mean", "bn.running_var"]


# ---------------------------------------------------------------------------------------------
# YOLOXModeSwitchHook
# ---------------------------------------------------------------------------------------------


def test_mode_switch_in_simple_trainer_logs_once(caplog):
    model, data = ToyDetector(), ToyDataset()
    trainer = SimpleTrainer(model, data, torch.optim.SGD(model.parameters(), lr=0.01))
    hook = YOLOXModeSwitchHook.from_dataset(5, data)
    trainer.register_hooks([hook])
    with caplog.at_level(logging.INFO, logger="yolox_d2.engine.mode_switch"):
        trainer.train(0, 9)
    assert [t[1] for t in model.trace] == [False] * 5 + [True] * 4  # L1 loss
    # data produced for iteration 5 was already un-augmented (single-process loader)
    assert [t[2] for t in model.trace] == [True] * 5 + [False] * 4
    assert data.calls == [False]
    assert hook.switched
    assert sum("no-augmentation phase" in r.getMessage() for r in caplog.records) == 1


def test_mode_switch_applies_before_the_first_step_after_resume():
    model, data = ToyDetector(), ToyDataset()
    trainer = SimpleTrainer(model, data, torch.optim.SGD(model.parameters(), lr=0.01))
    l1_calls = []
    trainer.register_hooks([YOLOXModeSwitchHook(5, data.set_mosaic_enabled, l1_calls.append)])
    trainer.train(7, 10)  # resumed past the switch
    assert l1_calls == [True] and data.calls == [False]
    assert [t[2] for t in model.trace] == [False] * 3
    assert model.use_l1_loss is False  # a custom setter was used instead of the attribute


def test_mode_switch_before_switch_iter_touches_nothing_and_unwraps():
    model = ToyDetector()
    hook = YOLOXModeSwitchHook(50, None)
    _run_hook(hook, FakeTrainer(nn.DataParallel(model), max_iter=20), model)
    assert not hook.switched and model.use_l1_loss is False
    hook = YOLOXModeSwitchHook(10, None)
    _run_hook(hook, FakeTrainer(nn.DataParallel(model), max_iter=20), model)
    assert hook.switched and model.use_l1_loss is True


def test_mode_switch_errors():
    hook = YOLOXModeSwitchHook(3, None)
    hook.trainer = FakeTrainer(nn.Linear(2, 2), max_iter=5)
    with pytest.raises(AttributeError, match="use_l1_loss"):
        hook.before_train()
    with pytest.raises(TypeError, match="set_mosaic_enabled"):
        YOLOXModeSwitchHook.from_dataset(3, object())
    with pytest.raises(ValueError):
        YOLOXModeSwitchHook(-1, None)


# ---------------------------------------------------------------------------------------------
# MultiScaleHook
# ---------------------------------------------------------------------------------------------


def test_multiscale_schedule_and_determinism():
    model = ToyDetector()
    hook = MultiScaleHook(SIZES, period=4, initial_size=(16, 16), seed=7)
    seen = _run_hook(hook, FakeTrainer(nn.DataParallel(model), max_iter=200), model)
    assert all(seen[i] == (16, 16) for i in range(4))  # first window: the configured size
    for i in range(1, 200):
        if i % 4:
            assert seen[i] == seen[i - 1]  # the size only changes at window starts
    assert set(seen.values()) == set(SIZES)  # all sizes get drawn
    # same seed -> same sizes; another seed -> other sizes
    model2 = ToyDetector()
    same = _run_hook(MultiScaleHook(SIZES, 4, (16, 16), seed=7), FakeTrainer(model2, 200), model2)
    assert same == seen
    other = _run_hook(MultiScaleHook(SIZES, 4, (16, 16), seed=8), FakeTrainer(model2, 200), model2)
    assert other != seen


def test_multiscale_resume_matches_uninterrupted_run():
    model = ToyDetector()
    full = _run_hook(MultiScaleHook(SIZES, 3, (16, 16), seed=11), FakeTrainer(model, 40), model)
    saved = MultiScaleHook(SIZES, 3, (16, 16), seed=11).state_dict()
    resumed_hook = MultiScaleHook(SIZES, 3, (16, 16), seed=None)  # random seed, then restored
    resumed_hook.load_state_dict(saved)
    model2 = ToyDetector()
    resumed = _run_hook(resumed_hook, FakeTrainer(model2, 40, start_iter=13), model2)
    assert resumed == {i: full[i] for i in range(13, 40)}


def test_multiscale_without_initial_size_and_custom_setter():
    model = ToyDetector()
    calls = []
    hook = MultiScaleHook(SIZES, period=5, seed=0, set_size=calls.append)
    seen = _run_hook(hook, FakeTrainer(model, 12), model)
    assert model.train_size is None and set(seen.values()) == {None}
    assert len(calls) == 2 and hook.current_size == calls[-1]  # windows 1 and 2


def test_multiscale_from_range():
    hook = MultiScaleHook.from_range(480, 800, 32, period=10, initial_size=(640, 640), seed=0)
    assert hook.sizes == multiscale_sizes((640, 640)) and hook.period == 10
    with pytest.raises(ValueError):
        MultiScaleHook.from_range(480, 810, 32)


def test_multiscale_errors():
    with pytest.raises(ValueError):
        MultiScaleHook([])
    with pytest.raises(ValueError):
        MultiScaleHook(SIZES, period=0)
    with pytest.raises(ValueError):
        MultiScaleHook([(8, -8)])
    with pytest.raises(ValueError):
        MultiScaleHook([(8,)])
    hook = MultiScaleHook(SIZES)
    hook.trainer = FakeTrainer(nn.Linear(2, 2), 5)
    with pytest.raises(AttributeError, match="set_train_size"):
        hook.before_train()
    with pytest.raises(KeyError):
        hook.load_state_dict({})


# ---------------------------------------------------------------------------------------------
# SyncBNStatsHook
# ---------------------------------------------------------------------------------------------


def test_sync_bn_hook_runs_right_before_each_evaluation(monkeypatch):
    import yolox_d2.engine.bn_stats as bn_stats_mod

    events = []
    monkeypatch.setattr(
        bn_stats_mod, "all_reduce_bn_stats", lambda model, ema=None: events.append("sync") or 0
    )
    model, data = ToyDetector(), ToyDataset()
    trainer = SimpleTrainer(model, data, torch.optim.SGD(model.parameters(), lr=0.01))
    trainer.register_hooks(
        [
            SyncBNStatsHook(4),
            hooks.EvalHook(4, lambda: events.append(f"eval@{trainer.iter}") or {}),
        ]
    )
    trainer.train(0, 10)
    assert events == ["sync", "eval@3", "sync", "eval@7", "sync", "eval@10"]


# ---------------------------------------------------------------------------------------------
# Two processes (gloo, CPU)
# ---------------------------------------------------------------------------------------------


def _dist_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    try:
        torch.manual_seed(0)
        model = ToyDetector()
        ddp = nn.parallel.DistributedDataParallel(model)
        out = {"broadcast": broadcast_ints_from_main([10 + rank, 20 + rank])}

        # each rank gets a different seed: the broadcast makes the sizes agree anyway
        hook = MultiScaleHook(SIZES, period=2, initial_size=(16, 16), seed=100 + rank)
        out["sizes"] = _run_hook(hook, FakeTrainer(ddp, max_iter=30), model)
        out["seed"] = hook.seed

        ema = ModelEMA(ddp)
        with torch.no_grad():
            model.bn.running_mean.fill_(rank + 1.0)
            model.bn.running_var.fill_(2.0 * (rank + 1))
            ema.ema_state["bn.running_mean"].fill_(10.0 * (rank + 1))
            ema.ema_state["bn.running_var"].fill_(-1.0 * rank)
            model.fc.weight.fill_(float(rank))  # parameters are not touched
        out["n"] = all_reduce_bn_stats(ddp, ema=ema)
        out["running_mean"] = model.bn.running_mean.clone()
        out["running_var"] = model.bn.running_var.clone()
        out["ema_mean"] = ema.ema_state["bn.running_mean"].clone()
        out["ema_var"] = ema.ema_state["bn.running_var"].clone()
        out["fc"] = model.fc.weight.detach().clone()
        torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_process_broadcast_and_bn_sync(tmp_path):
    # "fork" avoids re-importing torch/detectron2 in the children (seconds on 2 CPU cores)
    ctx = mp.start_processes(
        _dist_worker,
        args=(2, str(tmp_path / "init"), str(tmp_path)),
        nprocs=2,
        join=False,
        start_method="fork",
    )
    deadline = time.monotonic() + 120
    while not ctx.join(timeout=1):  # re-raises a worker's exception
        if time.monotonic() > deadline:
            for proc in ctx.processes:
                proc.kill()
            pytest.fail("the 2-process gloo workers did not finish within 120 s")
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    assert r0["broadcast"] == r1["broadcast"] == [10, 20]

    assert r0["sizes"] == r1["sizes"]
    assert len(set(r0["sizes"].values())) > 1
    # rank 0's draws are used: a single-process run with rank 0's seed gives the same sizes
    model = ToyDetector()
    local = _run_hook(
        MultiScaleHook(SIZES, 2, (16, 16), seed=r0["seed"]), FakeTrainer(model, 30), model
    )
    assert local == r0["sizes"]

    assert r0["n"] == r1["n"] == 4
    for r in (r0, r1):
        assert torch.allclose(r["running_mean"], torch.full((4,), 1.5))
        assert torch.allclose(r["running_var"], torch.full((4,), 3.0))
        assert torch.allclose(r["ema_mean"], torch.full((4,), 15.0))
        assert torch.allclose(r["ema_var"], torch.full((4,), -0.5))
    assert torch.equal(r0["fc"], torch.zeros(2, 4)) and torch.equal(r1["fc"], torch.ones(2, 4))


# ---------------------------------------------------------------------------------------------
# Full recipe with SimpleTrainer: interrupt, resume, compare with an uninterrupted run
# ---------------------------------------------------------------------------------------------

MAX_ITER = 20
SWITCH_ITER = 8


class _Crash(Exception):
    pass


class _Recorder(HookBase):
    """Records the LR each iteration trains with and what evaluation sees."""

    def __init__(self, crash_after: Optional[int] = None) -> None:
        self.lrs: Dict[int, float] = {}
        self.crash_after = crash_after

    def before_step(self):
        self.lrs[self.trainer.iter] = self.trainer.optimizer.param_groups[0]["lr"]

    def after_step(self):
        if self.crash_after is not None and self.trainer.iter == self.crash_after:
            raise _Crash()


def _build(output_dir: str, seed: Optional[int], crash_after: Optional[int] = None):
    os.makedirs(output_dir, exist_ok=True)
    torch.manual_seed(123)
    model = ToyDetector()
    data = ToyDataset()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    trainer = SimpleTrainer(model, data, opt)
    ema = ModelEMA(model, tau=3.0)
    checkpointer = DetectionCheckpointer(model, output_dir, trainer=trainer, optimizer=opt, ema=ema)
    evals = []

    def eval_fn():
        evals.append((trainer.iter, torch.equal(model.conv.weight, ema.ema_state["conv.weight"])))
        return {"metric": float(len(evals))}

    recorder = _Recorder(crash_after)
    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            hooks.LRScheduler(scheduler=YOLOXWarmCosineParamScheduler(0.2, 0.25, 0.05)),
            EMAHook(ema, final_checkpointer=checkpointer),
            YOLOXModeSwitchHook.from_dataset(SWITCH_ITER, data),
            MultiScaleHook(SIZES, period=3, initial_size=(16, 16), seed=seed),
            hooks.PeriodicCheckpointer(checkpointer, period=5),
            SyncBNStatsHook(4, ema=ema),
            hooks.EvalHook(4, ema_eval_function(eval_fn, model, ema)),
            recorder,
        ]
    )
    return dict(
        model=model,
        data=data,
        trainer=trainer,
        ema=ema,
        checkpointer=checkpointer,
        evals=evals,
        recorder=recorder,
    )


def test_resume_continues_iteration_lr_ema_mode_and_sizes(tmp_path):
    ref = _build(str(tmp_path / "ref"), seed=1234)
    ref["trainer"].train(0, MAX_ITER)

    # interrupted run: checkpoints after iterations 4 and 9, crashes after iteration 11
    out = str(tmp_path / "run")
    first = _build(out, seed=1234, crash_after=11)
    with pytest.raises(_Crash):
        first["trainer"].train(0, MAX_ITER)
    assert open(os.path.join(out, "last_checkpoint")).read() == "model_0000009.pth"
    saved = torch.load(os.path.join(out, "model_0000009.pth"), weights_only=True)
    assert saved["ema"]["updates"] == 10 and saved["iteration"] == 9
    assert saved["trainer"]["hooks"]["LRScheduler"]["last_epoch"] == 10
    assert saved["trainer"]["hooks"]["MultiScaleHook"] == {"seed": 1234}

    # fresh process state: new model, data, optimizer, EMA, hooks (random multi-scale seed)
    second = _build(out, seed=None)
    second["checkpointer"].resume_or_load("", resume=True)
    start_iter = second["trainer"].iter + 1
    assert start_iter == 10
    second["trainer"].train(start_iter, MAX_ITER)

    model_ref, model_res = ref["model"], second["model"]
    # iterations 10..19 trained identically: sizes, L1 switch, augmentation, LR
    assert second["model"].trace == model_ref.trace[10:]
    assert [t[1] for t in model_ref.trace] == [False] * SWITCH_ITER + [True] * 12
    assert [t[2] for t in second["model"].trace] == [False] * 10
    assert second["data"].calls == [False]
    lrs_ref = ref["recorder"].lrs
    assert second["recorder"].lrs == pytest.approx({i: lrs_ref[i] for i in range(10, MAX_ITER)})
    assert lrs_ref[0] == 0.0 and lrs_ref[19] == pytest.approx(0.05 * 0.05)

    # weights, optimizer state and EMA continue exactly
    for k, v in model_ref.state_dict().items():
        torch.testing.assert_close(model_res.state_dict()[k], v, msg=k)
    assert second["ema"].updates == ref["ema"].updates == MAX_ITER
    for k, v in ref["ema"].ema_state.items():
        torch.testing.assert_close(second["ema"].ema_state[k], v, msg=k)

    # evaluation saw the EMA weights; the training weights were restored afterwards
    assert ref["evals"] == [(3, True), (7, True), (11, True), (15, True), (20, True)]
    assert second["evals"] == [(11, True), (15, True), (20, True)]
    assert not torch.equal(model_ref.conv.weight, ref["ema"].ema_state["conv.weight"])

    # the final EMA export holds the EMA weights under "model"
    final = torch.load(os.path.join(out, "model_final_ema.pth"), weights_only=True)
    torch.testing.assert_close(final["model"]["conv.weight"], ref["ema"].ema_state["conv.weight"])
    final_ckpt = torch.load(os.path.join(out, "model_final.pth"), weights_only=True)
    assert final_ckpt["ema"]["updates"] == MAX_ITER
