"""Tests of yolox_d2.engine.ema (ModelEMA, apply_ema, EMAHook, checkpointing)."""

import copy
import logging
import math
import os

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import HookBase, SimpleTrainer
from torch import nn

from yolox_d2.engine.ema import EMAHook, ModelEMA, apply_ema, ema_eval_function, save_ema_weights


class ToyNet(nn.Module):
    """Conv-BN-SiLU-pool-linear; forward(images) -> {"loss": ...} in training mode."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4, momentum=0.3)
        self.fc = nn.Linear(4, 2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(nn.functional.silu(self.bn(self.conv(x))).mean((2, 3)))

    def forward(self, x: torch.Tensor):
        out = self.features(x)
        if self.training:
            return {"loss": (out - 1.0).pow(2).mean()}
        return out


def _train_steps(model: nn.Module, n: int, ema=None, official=None, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    for _ in range(n):
        x = torch.randn(4, 3, 8, 8, generator=gen) * 2 + 0.5
        loss = model(x)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if ema is not None:
            ema.update(model)
        if official is not None:
            official.update(model)


def _float_state(model: nn.Module):
    return {
        k: v.detach().clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point
    }


def test_matches_official_model_ema():
    official_ema = pytest.importorskip("yolox.utils.ema")
    torch.manual_seed(0)
    model = ToyNet()
    ours = ModelEMA(model, decay=0.9998, tau=2000, updates=3000)
    ref = official_ema.ModelEMA(model, 0.9998, updates=3000)
    _train_steps(model, 25, ema=ours, official=ref)
    assert ours.updates == ref.updates == 3025
    ref_state = ref.ema.state_dict()
    assert set(ours.ema_state) == {k for k, v in ref_state.items() if v.dtype.is_floating_point}
    assert any("running_mean" in k for k in ours.ema_state)  # buffers are averaged too
    for k, v in ours.ema_state.items():
        torch.testing.assert_close(v, ref_state[k], rtol=1e-6, atol=1e-7, msg=k)
    # and the EMA really lags behind the model
    assert not torch.allclose(ours.ema_state["conv.weight"], model.conv.weight)


def test_decay_ramp_and_argument_checks():
    ema = ModelEMA(ToyNet(), decay=0.9998, tau=2000)
    assert ema.get_decay(0) == 0.0
    assert ema.get_decay(2000) == pytest.approx(0.9998 * (1 - math.exp(-1)))
    assert ema.get_decay(10**7) == pytest.approx(0.9998)
    with pytest.raises(ValueError):
        ModelEMA(ToyNet(), decay=1.5)
    with pytest.raises(ValueError):
        ModelEMA(ToyNet(), tau=0)


def test_update_formula_and_int_buffers_are_ignored():
    model = ToyNet()
    ema = ModelEMA(model, tau=10)
    assert "bn.num_batches_tracked" not in ema.ema_state
    before = _float_state(model)
    _train_steps(model, 1)
    after = _float_state(model)
    ema.update(model)
    d = 0.9998 * (1 - math.exp(-1 / 10))
    for k, v in ema.ema_state.items():
        torch.testing.assert_close(v, d * before[k] + (1 - d) * after[k], msg=k)
    assert not torch.equal(after["bn.running_mean"], before["bn.running_mean"])


def test_unwraps_data_parallel():
    model = ToyNet()
    wrapped = nn.DataParallel(model)
    ema = ModelEMA(wrapped)
    assert not any(k.startswith("module.") for k in ema.ema_state)
    _train_steps(model, 2)
    ema.update(wrapped)
    assert ema.updates == 1


def test_apply_ema_swaps_and_restores():
    torch.manual_seed(1)
    model = ToyNet()
    ema = ModelEMA(model, tau=2.0)
    _train_steps(model, 10, ema=ema)
    train_state = _float_state(model)
    weight = model.conv.weight
    x = torch.randn(2, 3, 8, 8)
    model.eval()
    out_train = model(x)
    with apply_ema(nn.DataParallel(model), ema) as inner:
        assert inner is model
        assert model.conv.weight is weight  # parameters keep their identity
        for k, v in ema.ema_state.items():
            assert torch.equal(model.state_dict()[k], v), k
        out_ema = model(x)
    assert not torch.allclose(out_train, out_ema)
    for k, v in _float_state(model).items():
        assert torch.equal(v, train_state[k]), k

    # exception-safe
    with pytest.raises(RuntimeError, match="boom"):
        with apply_ema(model, ema):
            raise RuntimeError("boom")
    for k, v in _float_state(model).items():
        assert torch.equal(v, train_state[k]), k

    # the wrapper used for EvalHook
    seen = {}

    def eval_fn():
        seen["w"] = model.conv.weight.detach().clone()
        return {"metric": 1.0}

    assert ema_eval_function(eval_fn, model, ema)() == {"metric": 1.0}
    assert torch.equal(seen["w"], ema.ema_state["conv.weight"])
    assert torch.equal(model.conv.weight, train_state["conv.weight"])
    assert ema_eval_function(eval_fn, model, ema).__name__ == "eval_fn"


def test_state_dict_roundtrip_and_errors(caplog):
    model = ToyNet()
    ema = ModelEMA(model, tau=3.0)
    _train_steps(model, 4, ema=ema)
    sd = copy.deepcopy(ema.state_dict())
    assert sd["updates"] == 4 and sd["tau"] == 3.0

    other = ModelEMA(ToyNet(), tau=3.0)
    other.load_state_dict(sd)
    assert other.updates == 4
    for k, v in ema.ema_state.items():
        assert torch.equal(other.ema_state[k], v)

    bad = dict(sd, state={k: v for k, v in sd["state"].items() if k != "fc.bias"})
    with pytest.raises(KeyError, match="fc.bias"):
        other.load_state_dict(bad)
    with pytest.raises(KeyError, match="updates"):
        other.load_state_dict({"state": sd["state"]})
    with caplog.at_level(logging.WARNING, logger="yolox_d2.engine.ema"):
        ModelEMA(ToyNet(), tau=5.0).load_state_dict(sd)
    assert "tau" in caplog.text


def test_detection_checkpointer_roundtrip_continues(tmp_path):
    torch.manual_seed(2)
    model = ToyNet()
    ema = ModelEMA(model, tau=5.0)
    _train_steps(model, 6, ema=ema, seed=3)
    ckpt = DetectionCheckpointer(model, str(tmp_path), ema=ema)
    ckpt.save("model_0000005", iteration=5)
    data = torch.load(tmp_path / "model_0000005.pth", weights_only=True)
    assert set(data) >= {"model", "ema", "iteration"}
    # "model" holds the training weights, "ema" the EMA state
    assert torch.equal(data["model"]["conv.weight"], model.conv.weight.detach())
    assert torch.equal(data["ema"]["state"]["conv.weight"], ema.ema_state["conv.weight"])

    model2 = ToyNet()
    ema2 = ModelEMA(model2, tau=5.0)
    ckpt2 = DetectionCheckpointer(model2, str(tmp_path), ema=ema2)
    extra = ckpt2.resume_or_load("", resume=True)
    assert extra["iteration"] == 5
    assert ema2.updates == 6

    # continuing both gives identical EMAs
    _train_steps(model, 3, ema=ema, seed=9)
    _train_steps(model2, 3, ema=ema2, seed=9)
    assert ema2.updates == ema.updates == 9
    for k, v in ema.ema_state.items():
        torch.testing.assert_close(ema2.ema_state[k], v, rtol=1e-6, atol=1e-7)


class _LoopData:
    def __init__(self, seed: int = 0) -> None:
        self.gen = torch.Generator().manual_seed(seed)

    def __iter__(self):
        while True:
            yield torch.randn(4, 3, 8, 8, generator=self.gen)


def test_ema_hook_in_simple_trainer_and_final_export(tmp_path):
    torch.manual_seed(3)
    model = ToyNet()
    ema = ModelEMA(model, tau=4.0)  # created from the random initialisation ...
    pretrained = ToyNet()
    ckpt = DetectionCheckpointer(model, str(tmp_path), ema=ema)
    torch.save({"model": pretrained.state_dict()}, tmp_path / "pretrained.pth")
    ckpt.resume_or_load(str(tmp_path / "pretrained.pth"), resume=False)  # ... weights loaded later

    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    trainer = SimpleTrainer(model, _LoopData(), opt)
    hook = EMAHook(ema, final_checkpointer=ckpt)
    trainer.register_hooks([hook])
    snapshot = {}

    class Spy(HookBase):
        def before_step(self):
            if self.trainer.iter == 0:
                snapshot.update({k: v.clone() for k, v in ema.ema_state.items()})

    trainer.register_hooks([Spy()])
    trainer.train(0, 7)
    # before_train re-initialised the EMA from the loaded (pretrained) weights
    assert torch.equal(snapshot["conv.weight"], pretrained.conv.weight.detach())
    assert ema.updates == 7

    path = tmp_path / "model_final_ema.pth"
    assert path.is_file()
    fresh = ToyNet()
    DetectionCheckpointer(fresh).load(str(path))
    for k, v in ema.model_state_dict(model).items():
        assert torch.equal(fresh.state_dict()[k], v), k
    assert not torch.equal(fresh.conv.weight, model.conv.weight)  # EMA, not training weights
    # the export is not tagged as the checkpoint to resume from
    assert not (tmp_path / "last_checkpoint").exists()


def test_ema_hook_keeps_restored_state_and_reinitialises_without_one():
    model = ToyNet()
    ema = ModelEMA(model, tau=4.0)
    _train_steps(model, 3, ema=ema)
    kept = {k: v.clone() for k, v in ema.ema_state.items()}

    class FakeTrainer:
        iter = 3

    hook = EMAHook(ema, model=model)
    hook.trainer = FakeTrainer()
    hook.before_train()  # updates > 0: restored state is kept
    assert ema.updates == 3
    assert all(torch.equal(kept[k], v) for k, v in ema.ema_state.items())

    ema2 = ModelEMA(ToyNet())
    hook2 = EMAHook(ema2, model=model)
    hook2.trainer = FakeTrainer()
    hook2.before_train()  # no EMA state at iteration 3: start from the model, updates = iter
    assert ema2.updates == 3
    assert torch.equal(ema2.ema_state["conv.weight"], model.conv.weight.detach())
    with pytest.raises(TypeError):
        EMAHook(object())


def test_save_ema_weights_only_on_saving_process(tmp_path):
    model = ToyNet()
    ema = ModelEMA(model)
    ckpt = DetectionCheckpointer(model, str(tmp_path), save_to_disk=False)
    assert save_ema_weights(ckpt, ema) is None
    ckpt = DetectionCheckpointer(model, str(tmp_path))
    path = save_ema_weights(ckpt, ema, name="ema_only")
    assert path == os.path.join(str(tmp_path), "ema_only.pth")
    data = torch.load(path, weights_only=True)
    assert data["ema_updates"] == 0 and "bn.num_batches_tracked" in data["model"]


def test_update_checks_model_compatibility():
    ema = ModelEMA(ToyNet())
    with pytest.raises(KeyError):
        ema.update(nn.Sequential(nn.Linear(2, 2)))
    other = ToyNet()
    other.fc = nn.Linear(4, 3)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        ema.update(other)
