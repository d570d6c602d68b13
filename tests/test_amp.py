"""Mixed precision on any device (yolox_d2.engine.amp): autocast dtypes, the gradient scaler's
skipped steps (counted, not fatal), the non-finite loss guard, and the scaler's checkpoint state."""
import math

import pytest
import torch
from torch import nn

from yolox_d2.engine.amp import GuardedAMPTrainer, model_device_type
from yolox_d2.engine.guards import NonFiniteLossError


class _ToyDetector(nn.Module):
    """Returns a loss dict; records the autocast dtype of its conv output; can poison grads."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.seen_dtypes = []
        self.poison_grad = False
        self.loss_value = None
        self.conv.weight.register_hook(lambda g: g * math.inf if self.poison_grad else g)

    def forward(self, batch):
        y = self.conv(batch[0])
        self.seen_dtypes.append(y.dtype)
        loss = y.float().pow(2).mean()
        if self.loss_value is not None:
            loss = loss * 0 + self.loss_value
        return {"loss_toy": loss}


def _loader():
    g = torch.Generator().manual_seed(0)
    while True:
        yield [torch.randn(2, 3, 8, 8, generator=g)]


def _trainer(precision, **kwargs):
    model = _ToyDetector()
    optim = torch.optim.SGD(model.parameters(), lr=0.01)
    return GuardedAMPTrainer(model, _loader(), optim, precision=precision, **kwargs)


def _run(trainer, start, end):
    from detectron2.utils.events import EventStorage

    with EventStorage(start) as trainer.storage:
        for trainer.iter in range(start, end):
            trainer.run_step()
            trainer.storage.step()


@pytest.mark.parametrize("precision, dtype, scaled", [("bfloat16", torch.bfloat16, False), ("float16", torch.float16, True)])
def test_autocast_dtype_and_scaler(precision, dtype, scaled):
    trainer = _trainer(precision)
    before = trainer.model.conv.weight.detach().clone()
    _run(trainer, 0, 2)
    assert trainer.model.seen_dtypes == [dtype, dtype]
    assert (trainer.grad_scaler is not None) == scaled
    assert not torch.equal(before, trainer.model.conv.weight)  # the optimizer stepped
    assert model_device_type(trainer.model) == "cpu"


def test_skipped_step_is_counted_not_fatal():
    trainer = _trainer("float16")
    _run(trainer, 0, 1)
    scale = trainer.grad_scaler.get_scale()
    weights = trainer.model.conv.weight.detach().clone()
    trainer.model.poison_grad = True
    _run(trainer, 1, 2)  # inf gradients: the scaler skips the step and backs off
    assert trainer.skipped_steps == 1
    assert trainer.grad_scaler.get_scale() < scale
    assert torch.equal(weights, trainer.model.conv.weight)  # nothing was applied
    trainer.model.poison_grad = False
    _run(trainer, 2, 3)
    assert trainer.skipped_steps == 1
    assert not torch.equal(weights, trainer.model.conv.weight)


def test_non_finite_loss_still_stops():
    trainer = _trainer("bfloat16")
    trainer.model.loss_value = float("nan")
    with pytest.raises(NonFiniteLossError, match="iteration 0"):
        _run(trainer, 0, 1)


def test_scaler_state_is_checkpointed_and_restored():
    trainer = _trainer("float16")
    _run(trainer, 0, 1)
    trainer.model.poison_grad = True
    _run(trainer, 1, 2)
    state = trainer.state_dict()
    assert state["grad_scaler"]["scale"] == trainer.grad_scaler.get_scale()
    assert state["amp"] == {"precision": "float16", "skipped_steps": 1}

    fresh = _trainer("float16")
    assert fresh.grad_scaler.get_scale() != trainer.grad_scaler.get_scale()
    fresh.load_state_dict(state)
    assert fresh.grad_scaler.get_scale() == trainer.grad_scaler.get_scale()
    assert fresh.grad_scaler.state_dict() == trainer.grad_scaler.state_dict()
    assert fresh.skipped_steps == 1


def test_bad_precision_is_named():
    with pytest.raises(ValueError, match="train.amp.precision"):
        _trainer("float8")
