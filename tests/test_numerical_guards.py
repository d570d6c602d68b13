"""
Numerical guards: SimOTA and the YOLOX losses stay finite (values and gradients) for
degenerate predictions and ground truths (property-based, hypothesis), and a non-finite loss
stops training before the optimizer step with an error naming the iteration, the loss terms
and the last checkpoint.
"""

import math
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from detectron2.engine import hooks
from yolox_d2.checkpoint import AtomicDetectionCheckpointer
from yolox_d2.engine.defaults import do_train
from yolox_d2.engine.amp import create_guarded_trainer
from yolox_d2.engine.guards import GuardedSimpleTrainer, NonFiniteLossError, check_losses_finite
from yolox_d2.modeling.losses import yolox_losses
from yolox_d2.modeling.meta_arch.yolox import YOLOX
from yolox_d2.modeling.simota import SimOTAMatcher

from .train_net_runner import REPO_ROOT, SMALL_TREES

# A 64 x 64 input with strides 8 / 16 / 32: 64 + 16 + 4 = 84 predictions per image.
_STRIDES = (8, 16, 32)
_IMAGE = 64


def _anchors():
    grids, strides = [], []
    for s in _STRIDES:
        n = _IMAGE // s
        ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        grids.append(torch.stack((xs, ys), -1).reshape(-1, 2).float())
        strides.append(torch.full((n * n,), float(s)))
    return torch.cat(grids), torch.cat(strides)


def _values(g: torch.Generator, shape, scale: float, extreme_frac: float) -> torch.Tensor:
    """Normal values times ``scale``, a fraction replaced by +-scale*1e3 or exact 0."""
    x = torch.randn(shape, generator=g) * scale
    pick = torch.rand(shape, generator=g)
    x = torch.where(pick < extreme_frac / 2, torch.sign(x) * scale * 1e3, x)
    x = torch.where((pick >= extreme_frac / 2) & (pick < extreme_frac), torch.zeros_like(x), x)
    return x


def _boxes(g: torch.Generator, shape, center_range: float, size_kind: str) -> torch.Tensor:
    ctr = (torch.rand(shape + (2,), generator=g) * 2 - 1) * center_range + _IMAGE / 2
    if size_kind == "negative":
        wh = -torch.rand(shape + (2,), generator=g) * 50
    elif size_kind == "zero":
        wh = torch.zeros(shape + (2,))
    elif size_kind == "tiny":
        wh = torch.rand(shape + (2,), generator=g) * 1e-4
    elif size_kind == "huge":
        wh = 1e5 + torch.rand(shape + (2,), generator=g) * 1e6
    elif size_kind == "overflowing":  # the area of such a box overflows float32
        wh = 1e20 * (1 + torch.rand(shape + (2,), generator=g) * 1e10)
    elif size_kind == "mixed":
        kinds = torch.randint(0, 5, shape + (1,), generator=g).expand(shape + (2,))
        base = torch.rand(shape + (2,), generator=g)
        wh = torch.stack([-base * 50, base * 0, base * 1e-4, 1 + base * 40, 1e5 + base * 1e6])
        wh = wh.gather(0, kinds.unsqueeze(0)).squeeze(0)
    else:
        wh = 1 + torch.rand(shape + (2,), generator=g) * 40
    return torch.cat((ctr - wh / 2, ctr + wh / 2), -1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 3),
    num_gts=st.integers(0, 8),
    num_classes=st.integers(1, 4),
    logit_scale=st.sampled_from([1.0, 30.0, 1e4, 1e8, 1e12]),
    extreme_frac=st.sampled_from([0.0, 0.1, 0.5]),
    pred_center_range=st.sampled_from([10.0, 1e3, 1e6, 1e30]),
    pred_size=st.sampled_from(["normal", "negative", "zero", "tiny", "huge", "overflowing", "mixed"]),
    gt_size=st.sampled_from(["normal", "tiny", "huge", "overflowing", "zero", "negative", "mixed"]),
    duplicate_gts=st.booleans(),
    padded=st.booleans(),
    rule=st.sampled_from(["legacy", "2023"]),
    use_l1=st.booleans(),
    iou_loss_type=st.sampled_from(["iou", "giou"]),
)
def test_simota_and_losses_stay_finite(
    seed, batch, num_gts, num_classes, logit_scale, extreme_frac, pred_center_range, pred_size,
    gt_size, duplicate_gts, padded, rule, use_l1, iou_loss_type,
):
    """
    Any logits (up to +-1e15, exact zeros), predicted boxes of negative / zero / tiny / huge /
    area-overflowing (sides >= 1e20) size anywhere (up to 1e30 px away), ground truths tiny /
    huge / overflowing / zero / negative / duplicated, 0 ground truths, padded ground-truth
    slots: the assignment is well formed and every loss and every gradient is finite.
    """
    g = torch.Generator().manual_seed(seed)
    grid, strides = _anchors()
    A = len(grid)
    cls_logits = _values(g, (batch, A, num_classes), logit_scale, extreme_frac).requires_grad_()
    obj_logits = _values(g, (batch, A), logit_scale, extreme_frac).requires_grad_()
    pred_boxes = _boxes(g, (batch, A), pred_center_range, pred_size).requires_grad_()
    reg_raw = _values(g, (batch, A, 4), logit_scale, extreme_frac).requires_grad_()

    gt_boxes = _boxes(g, (batch, num_gts), _IMAGE / 2, gt_size)
    if duplicate_gts and num_gts > 1:
        gt_boxes[:, 1::2] = gt_boxes[:, 0:1]  # every other gt duplicates the first
    gt_classes = torch.randint(0, num_classes, (batch, num_gts), generator=g)
    gt_valid = torch.ones((batch, num_gts), dtype=torch.bool)
    if padded and num_gts:
        gt_valid[0, num_gts // 2 :] = False  # image 0 has fewer gts (padding slots)
        gt_boxes[0, num_gts // 2 :] = 0
    assert torch.isfinite(gt_boxes).all()

    matcher = SimOTAMatcher(rule=rule)
    assignment = matcher(
        pred_boxes.detach(), cls_logits.detach(), obj_logits.detach(),
        (grid + 0.5) * strides.unsqueeze(-1), strides, gt_boxes, gt_classes, gt_valid,
    )
    fg = assignment.fg_mask
    assert torch.isfinite(assignment.matched_iou).all()
    assert (assignment.matched_iou >= 0).all() and (assignment.matched_iou <= 1 + 1e-6).all()
    assert assignment.num_fg == int(fg.sum())
    if num_gts:
        assert (assignment.matched_gt[fg] < num_gts).all() and gt_valid.gather(1, assignment.matched_gt)[fg].all()
    else:
        assert assignment.num_fg == 0

    losses = yolox_losses(
        cls_logits, obj_logits, pred_boxes, reg_raw, grid, strides, assignment, gt_boxes, gt_classes,
        num_fg_normalizer=assignment.num_fg, use_l1=use_l1, iou_loss_type=iou_loss_type,
    )
    for name, value in losses.items():
        assert torch.isfinite(value), (name, value)
    sum(losses.values()).backward()
    for name, t in [("cls", cls_logits), ("obj", obj_logits), ("box", pred_boxes), ("reg", reg_raw)]:
        assert t.grad is not None and torch.isfinite(t.grad).all(), name


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([1.0, 1e2, 1e6, 1e20, 1e35]))
def test_decoded_boxes_finite_for_diverging_regression(seed, scale):
    """Huge raw size outputs are clamped in decode_boxes: finite boxes and gradients."""
    g = torch.Generator().manual_seed(seed)
    grid, strides = _anchors()
    reg = (torch.randn((2, len(grid), 4), generator=g) * scale).requires_grad_()
    boxes = YOLOX.decode_boxes(reg, grid, strides)
    assert torch.isfinite(boxes).all()
    (boxes[..., 2:] - boxes[..., :2]).sum().backward()
    assert torch.isfinite(reg.grad).all()


# ------------------------------------------------------------------------------- loss guard
def test_check_losses_finite_names_iteration_terms_and_checkpoint():
    ok = {"loss_cls": torch.tensor(1.0), "loss_obj": torch.tensor(2.0)}
    check_losses_finite(ok, 5)
    bad = {"loss_cls": torch.tensor(0.5), "loss_box_reg": torch.tensor(float("nan")), "loss_obj": torch.tensor(float("inf"))}
    with pytest.raises(NonFiniteLossError) as e:
        check_losses_finite(bad, 1234, "/runs/a/model_0001000.pth", "x.jpg (image_id=3)")
    msg = str(e.value)
    assert "iteration 1234" in msg and "/runs/a/model_0001000.pth" in msg and "--resume" in msg
    assert "loss_cls=0.5" in msg and "loss_box_reg=nan <-- non-finite" in msg and "loss_obj=inf" in msg
    assert "x.jpg (image_id=3)" in msg
    assert e.value.iteration == 1234 and math.isnan(e.value.losses["loss_box_reg"])
    assert isinstance(e.value, FloatingPointError)  # what Detectron2 users already catch
    with pytest.raises(NonFiniteLossError, match="No checkpoint has been written yet"):
        check_losses_finite(bad, 0, None)


class _ToyDetector(nn.Module):
    """A linear model returning a loss dict; its loss_box_reg becomes NaN at ``nan_at``."""

    def __init__(self, nan_at: int) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.nan_at = nan_at
        self.calls = 0

    def forward(self, batch):
        x = torch.stack([d["x"] for d in batch])
        out = self.linear(x).mean()
        box = out**2
        if self.calls == self.nan_at:
            box = box * float("nan")
        self.calls += 1
        return {"loss_cls": out.abs(), "loss_box_reg": box}


def _toy_loader():
    g = torch.Generator().manual_seed(0)
    while True:
        yield [{"x": torch.randn(4, generator=g), "file_name": "tile_7.png", "image_id": 7}]


def test_guarded_trainer_stops_before_the_step_and_names_the_last_checkpoint(tmp_path):
    model = _ToyDetector(nan_at=5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = create_guarded_trainer(model, _toy_loader(), optimizer)
    assert isinstance(trainer, GuardedSimpleTrainer)
    checkpointer = AtomicDetectionCheckpointer(model, str(tmp_path), trainer=trainer)
    trainer.register_hooks([hooks.PeriodicCheckpointer(checkpointer, period=2)])
    weights = {}

    class _Snapshot(hooks.HookBase):
        def after_step(self):
            weights[self.trainer.iter] = model.linear.weight.detach().clone()

    trainer.register_hooks([_Snapshot()])
    with pytest.raises(NonFiniteLossError) as e:
        trainer.train(0, 20)
    msg = str(e.value)
    assert e.value.iteration == 5 and "iteration 5" in msg
    assert "loss_box_reg=nan" in msg and "loss_cls=" in msg
    assert e.value.checkpoint == os.path.join(str(tmp_path), "model_0000003.pth") and e.value.checkpoint in msg
    assert "tile_7.png (image_id=7)" in msg
    # the NaN step was not applied: the weights are still those after iteration 4
    assert torch.isfinite(model.linear.weight).all()
    torch.testing.assert_close(model.linear.weight, weights[4])
    assert sorted(p.name for p in tmp_path.glob("model_*.pth")) == ["model_0000001.pth", "model_0000003.pth"]
    # the checkpointer found through the PeriodicCheckpointer hook when not set explicitly
    trainer.checkpointer = None
    assert trainer.last_checkpoint() == e.value.checkpoint


def test_guarded_trainer_refuses_async_metrics():
    model = _ToyDetector(nan_at=-1)
    with pytest.raises(ValueError, match="async_write_metrics"):
        GuardedSimpleTrainer(model, _toy_loader(), torch.optim.SGD(model.parameters(), lr=0.1), async_write_metrics=True)


def test_train_tool_reports_nan_loss_with_iteration_terms_and_checkpoint(tmp_path, monkeypatch):
    """The training tool's own do_train: a NaN box loss at iteration 3 (checkpoints every 2)."""
    from detectron2.config import LazyConfig

    import yolox_d2.modeling.meta_arch.yolox as yolox_module

    calls = {"n": 0}
    real_losses = yolox_module.yolox_losses

    def losses_with_nan(*args, **kwargs):
        out = real_losses(*args, **kwargs)
        if calls["n"] == 3:
            out["loss_box_reg"] = out["loss_box_reg"] * float("nan")
        calls["n"] += 1
        return out

    monkeypatch.setattr(yolox_module, "yolox_losses", losses_with_nan)
    cfg = LazyConfig.load(str(REPO_ROOT / "configs" / "deepforest" / "yolox_nano_trees.py"))
    overrides = [o for o in SMALL_TREES if not o.startswith("dataloader.train.num_workers")]
    cfg = LazyConfig.apply_overrides(
        cfg,
        overrides + [
            "dataloader.train.num_workers=0", "train.max_iter=10", "train.no_aug_iters=2",
            "train.checkpointer.period=2", "train.eval_period=1000", f"train.output_dir={tmp_path}",
        ],
    )
    with pytest.raises(NonFiniteLossError) as e:
        do_train(cfg, resume=False)
    msg = str(e.value)
    assert "iteration 3" in msg and "loss_box_reg=nan" in msg and "loss_obj=" in msg
    assert str(tmp_path / "model_0000001.pth") in msg
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
    assert not (tmp_path / "model_0000003.pth").exists() and not (tmp_path / "model_final.pth").exists()
