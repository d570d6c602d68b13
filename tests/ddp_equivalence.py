"""
What tests/test_distributed_equivalence.py (2 processes, one machine) and tests/test_multi_machine.py
(2 machines of one process) share: the model, the global batch, one rank's results and their
comparison with one process over the whole batch. The reasoning and the tolerances are in the
docstring of tests/test_distributed_equivalence.py.
"""

import os

import pytest
import torch
import torch.distributed as dist
from detectron2.config import LazyConfig, instantiate
from detectron2.utils import comm

from yolox_d2.data import MosaicMixupDataset
from yolox_d2.engine import MultiScaleHook, YOLOXModeSwitchHook, create_ddp_model, unwrap_model

from .synthetic_shapes import make_shapes_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORLD = 2
VARIANTS = ("frozen_bn", "sync_bn")
TOLERANCE = {"frozen_bn": 1e-5, "sync_bn": 5e-4}  # relative; see test_distributed_equivalence
SIZES = [(96, 96), (160, 160)]  # multi-scale candidates (the base size 128 is not one of them)
ITERATION = 10  # where the hooks are evaluated: multi-scale window 10, after the switch at 5
SWITCH_ITER = 5
# Seeds of the size draw on rank 0 / rank 1: chosen so that their own draws for ITERATION
# differ, i.e. the ranks agree only because rank 0's size is broadcast.
RANK_SEEDS = (0, 2)


def equivalence_model(variant: str) -> torch.nn.Module:
    """YOLOX-Nano (2 classes) in training mode with BatchNorm as ``variant`` says."""
    cfg = LazyConfig.load(os.path.join(REPO, "configs", "yolox_nano.py"))
    cfg.model.num_classes = 2
    if variant == "sync_bn":
        for node in (cfg.model.backbone.bottom_up, cfg.model.backbone, cfg.model.head):
            node.norm = "naiveSyncBN"
    torch.manual_seed(0)
    model = instantiate(cfg.model).train()
    # Move away from the initialisation, whose nearly position-independent outputs make many
    # SimOTA costs equal up to rounding: float noise of a different batch size or thread count
    # then flips tie-breaks (another, equally good assignment). Stand-in for trained weights.
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.5 * (float(p.std()) if p.numel() > 1 else 1.0))
    if variant == "frozen_bn":
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()
    return model


class FakeTrainer:
    """What the hooks read from a trainer."""

    def __init__(self, model, iteration, max_iter=100):
        self.model, self.iter, self.max_iter, self.storage = model, iteration, max_iter, None


def apply_hooks(model, rank):
    """The recipe's hooks at ITERATION: multi-scale size (rank 0's draw) and the no-aug switch."""
    trainer = FakeTrainer(model, ITERATION)
    multiscale = MultiScaleHook(SIZES, period=1, initial_size=(128, 128), seed=RANK_SEEDS[rank])
    switch_calls = []
    switch = YOLOXModeSwitchHook(SWITCH_ITER, switch_calls.append)
    for hook in (multiscale, switch):
        hook.trainer = trainer
        hook.before_train()
    own_draw = multiscale._draw(ITERATION // multiscale.period)
    return multiscale.current_size, own_draw, switch_calls, unwrap_model(model).use_l1_loss


def write_global_batch(out_dir) -> list:
    """The global batch of 4 images (unequal positive counts on the two halves), saved to
    ``out_dir/batch.pth`` for the ranks."""
    dicts = make_shapes_dataset(os.path.join(str(out_dir), "images"), num_images=4, size=128, seed=1)
    # rank 0 gets the two images with 3 shapes, rank 1 the two with 2: unequal positive counts
    dicts = [dicts[1], dicts[3], dicts[0], dicts[2]]
    dataset = MosaicMixupDataset(dicts, image_size=(128, 128), enable_mosaic=False, hsv_prob=0.0, flip_prob=0.0)
    batch = [dataset[i] for i in range(len(dataset))]
    assert [len(b["instances"]) for b in batch] == [3, 3, 2, 2]
    torch.save(batch, os.path.join(str(out_dir), "batch.pth"))
    return batch


def save_rank_results(rank: int, out_dir: str) -> None:
    """In an initialised process group of WORLD ranks: this rank's half of the batch through the
    DDP-wrapped model and the hooks, saved to ``out_dir/rank<rank>.pth``."""
    assert dist.is_initialized() and comm.get_world_size() == WORLD
    batch = torch.load(os.path.join(out_dir, "batch.pth"), weights_only=False)
    per_rank = len(batch) // WORLD
    local = batch[rank * per_rank : (rank + 1) * per_rank]
    results = {}
    for variant in VARIANTS:
        model = create_ddp_model(equivalence_model(variant), broadcast_buffers=False)
        size, own_draw, switch_calls, l1 = apply_hooks(model, rank)
        losses = model(local)
        sum(losses.values()).backward()
        results[variant] = {
            "losses": {k: v.item() for k, v in losses.items()},
            "grads": [p.grad.detach().clone() for p in model.parameters()],
            "size": size,
            "own_draw": own_draw,
            "switch_calls": switch_calls,
            "use_l1": l1,
            "num_fg": unwrap_model(model)._last_num_fg,
            "fg_mask": unwrap_model(model)._last_fg_mask,
        }
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pth"))


def record_num_fg(monkeypatch):
    """Remember each forward's local positive count on the model (for the test's checks)."""
    import yolox_d2.modeling.meta_arch.yolox as yolox_module

    real = yolox_module.YOLOX.forward_training

    def forward_training(self, images, features, predictions, gt_instances):
        real_matcher = self.matcher

        def matcher(*args, **kwargs):
            out = real_matcher(*args, **kwargs)
            self._last_num_fg = out.num_fg
            self._last_fg_mask = out.fg_mask.clone()
            return out

        self.matcher = matcher
        try:
            return real(self, images, features, predictions, gt_instances)
        finally:
            self.matcher = real_matcher

    monkeypatch.setattr(yolox_module.YOLOX, "forward_training", forward_training)


def check_ranks_match_one_process(out_dir, batch, monkeypatch) -> None:
    """The saved results of the WORLD ranks against one process over ``batch`` (in this process)."""
    ranks = [torch.load(os.path.join(str(out_dir), f"rank{r}.pth"), weights_only=False) for r in range(WORLD)]
    record_num_fg(monkeypatch)
    assert not dist.is_initialized() and comm.get_world_size() == 1
    for variant in VARIANTS:
        r0, r1 = ranks[0][variant], ranks[1][variant]
        # the hooks' decisions are the same on both ranks
        assert r0["size"] == r1["size"] == r0["own_draw"] != r1["own_draw"], (r0["size"], r1["own_draw"])
        assert r0["switch_calls"] == r1["switch_calls"] == [False] and r0["use_l1"] and r1["use_l1"]
        # one process over the whole batch, at the agreed size and mode
        model = equivalence_model(variant)
        model.set_train_size(r0["size"])
        model.use_l1_loss = True
        losses = model(batch)
        sum(losses.values()).backward()
        ref_grads = [p.grad for p in model.parameters()]
        n_ref, n0, n1 = model._last_num_fg, r0["num_fg"], r1["num_fg"]
        assert n0 + n1 == n_ref and n0 != n1
        # the same SimOTA assignment, image by image
        assert torch.equal(torch.cat([r0["fg_mask"], r1["fg_mask"]]), model._last_fg_mask), variant

        for name, value in losses.items():
            mean = (r0["losses"][name] + r1["losses"][name]) / 2
            assert mean == pytest.approx(value.item(), rel=TOLERANCE[variant], abs=1e-6), (variant, name)
        # sensitivity: per-rank normalisers would give another loss
        total = sum(losses.values()).item()
        local = sum(r["losses"][k] * ((n0 + n1) / 2) / r["num_fg"] for r in (r0, r1) for k in r["losses"]) / 2
        assert abs(local - total) > 1e-3 * total

        scale = max(float(g.abs().max()) for g in ref_grads)
        worst = 0.0
        for g0, g1, g in zip(r0["grads"], r1["grads"], ref_grads):
            torch.testing.assert_close(g0, g1, rtol=0, atol=1e-7)  # DDP: identical on all ranks
            worst = max(worst, float((g0 - g).abs().max()))
        print(f"{variant}: max |grad(2 processes) - grad(1 process)| = {worst:.3g} (max |grad| {scale:.3g})")
        assert worst <= TOLERANCE[variant] * max(scale, 1.0), (variant, worst, scale)
