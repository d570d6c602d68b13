"""
The YOLOX roadmap configs (configs/roadmap/, the paper's Table 2): each one trains with the
training tool, the coupled head is the YOLOv3 head the paper counts, and the centre assigners
give the positives they claim.
"""
import math

import pytest
import torch

from detectron2.config import LazyConfig, instantiate
from yolox_d2.solver import resolve_schedule

from yolox_d2.modeling import YOLOFPN, YOLOX, CenterMatcher, CoupledHead, Darknet53, SimOTAMatcher, YOLOXHead

from .train_net_runner import SMALL_TREES, read_metrics, run_train_net

RUNGS = [
    "r1_coupled_head",
    "r2_decoupled_head",
    "r3_strong_augmentation",
    "r4_multi_positives",
    "r5_simota",
    "r6_nms_free",
]


def _load(repo_root, rung):
    return LazyConfig.load(str(repo_root / "configs" / "roadmap" / f"{rung}.py"))


def test_rungs_change_one_step_at_a_time_in_table_order(repo_root):
    """Each rung differs from YOLOX-Darknet53 only by the steps the paper adds after it."""
    steps = {}
    for rung in RUNGS:
        cfg = _load(repo_root, rung)
        model = cfg.model
        steps[rung] = (
            model.head._target_.__name__,
            cfg.dataloader.train.dataset.mosaic_prob > 0 and cfg.dataloader.train.dataset.enable_mixup,
            (model.matcher._target_.__name__, model.matcher.get("window")),
            bool(model.get("end_to_end", False)),
        )
        assert model.backbone.bottom_up._target_ is Darknet53 and model.backbone._target_ is YOLOFPN
    center = ("CenterMatcher", 1)
    assert steps == {
        "r1_coupled_head": ("CoupledHead", False, center, False),
        "r2_decoupled_head": ("YOLOXHead", False, center, False),
        "r3_strong_augmentation": ("YOLOXHead", True, center, False),
        "r4_multi_positives": ("YOLOXHead", True, ("CenterMatcher", 3), False),
        "r5_simota": ("YOLOXHead", True, ("SimOTAMatcher", None), False),
        "r6_nms_free": ("YOLOXHead", True, ("SimOTAMatcher", None), True),
    }


def _narrow_overrides(cfg):
    """Darknet-21 at 1/4 width, 1 class, the tree tiles at 160 px, batch 2."""
    overrides = [
        "model.backbone.bottom_up.depth=21",
        "model.backbone.bottom_up.stem_channels=8",
        "model.head.in_channels=[32,64,128]",
        "model.num_classes=1",
        "model.test_square_size=160",
        "dataloader.train.dataset.dataset_dicts.names=deepforest_trees_train",
        "dataloader.train.dataset.image_size=[160,160]",
        "dataloader.train.total_batch_size=2",
        "dataloader.train.num_workers=0",
        "dataloader.train.seed=0",
        "dataloader.test.dataset=deepforest_trees_val",
        "dataloader.test.mapper.image_size=[160,160]",
        "dataloader.test.num_workers=0",
    ]
    if cfg.model.head._target_ is YOLOXHead:
        overrides.append("model.head.feat_channels=32")
    return overrides


@pytest.mark.parametrize("rung", RUNGS)
def test_rung_builds_and_trains_two_iterations(repo_root, rung):
    """The rung's own model, training data pipeline and optimizer, two SGD steps."""
    cfg = _load(repo_root, rung)
    cfg = LazyConfig.apply_overrides(cfg, _narrow_overrides(cfg))
    # optimizer.lr and the LR phases are resolved at start-up from the data and the batch (as
    # do_train does; the length only sets iteration counts, which two steps do not use)
    resolve_schedule(cfg, dataset_length=10000).apply(cfg)
    torch.manual_seed(0)
    model = instantiate(cfg.model).train()
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    loader = iter(instantiate(cfg.dataloader.train))
    for _ in range(2):
        losses = model(next(loader))
        assert all(torch.isfinite(v) for v in losses.values()), losses
        assert ("loss_pss" in losses) == (rung == "r6_nms_free")
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()


@pytest.mark.parametrize("rung", ["r1_coupled_head", "r6_nms_free"])
def test_rung_trains_and_evaluates_with_the_training_tool(repo_root, tmp_path, rung):
    """The two rungs furthest from YOLOX-Darknet53 (coupled head + weak augmentation + centre
    positives; NMS-free), through tools/lazyconfig_train_net.py."""
    cfg = _load(repo_root, rung)
    proc = run_train_net(
        [
            "--config-file", str(repo_root / "configs" / "roadmap" / f"{rung}.py"),
            *SMALL_TREES, *_narrow_overrides(cfg),
            # after 2 iterations no score reaches the default threshold: keep every prediction
            "model.test_score_thresh=0.0",
            "train.max_iter=2", "train.no_aug_iters=0", "train.eval_period=1000",
            "train.checkpointer.period=1000",
            f"train.output_dir={tmp_path}",
        ]
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    losses = [m for m in read_metrics(tmp_path) if "total_loss" in m]
    assert [m["iteration"] for m in losses] == [0, 1]
    assert all(math.isfinite(m["total_loss"]) for m in losses)
    assert ("loss_pss" in losses[-1]) == (rung == "r6_nms_free")
    assert "Evaluation results for bbox" in log


# ------------------------------------------------------------------------------ coupled head
def test_coupled_head_is_one_prediction_conv_per_level_with_4_1_c_outputs():
    torch.manual_seed(0)
    channels, C = [16, 32, 64], 3
    head = CoupledHead(in_channels=channels, num_classes=C, expansion=2.0)
    assert [p.out_channels for p in head.preds] == [4 + 1 + C] * 3
    assert [p.kernel_size for p in head.preds] == [(1, 1)] * 3
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in head.convs] == [
        (c, 2 * c, (3, 3)) for c in channels
    ]
    # 3x3 conv without bias + BN (weight, bias), then the 1x1 prediction conv with bias
    expected = sum(9 * c * 2 * c + 2 * (2 * c) + 2 * c * (5 + C) + (5 + C) for c in channels)
    assert sum(p.numel() for p in head.parameters()) == expected
    features = [torch.rand(2, c, s, s) for c, s in zip(channels, (16, 8, 4))]
    cls, box, obj = head(features)
    assert [x.shape for x in cls] == [(2, C, s, s) for s in (16, 8, 4)]
    assert [x.shape for x in box] == [(2, 4, s, s) for s in (16, 8, 4)]
    assert [x.shape for x in obj] == [(2, 1, s, s) for s in (16, 8, 4)]
    # the three outputs are channel slices of the one prediction: [box, obj, classes]
    with torch.no_grad():
        out = head.preds[0](head.convs[0](features[0]))
    torch.testing.assert_close(torch.cat((box[0], obj[0], cls[0]), dim=1), out)
    bias = head.preds[0].bias
    assert torch.allclose(bias[4:], torch.tensor(-math.log(99.0)))  # prior 0.01


def test_coupled_darknet53_is_the_papers_yolov3_baseline_without_two_anchors(repo_root):
    """Table 2: YOLOv3 baseline 63.00 M with 3 anchors per cell; one prediction per cell drops
    the weights of two anchors' 85 outputs from the 256 / 512 / 1024-channel prediction convs."""
    model = instantiate(_load(repo_root, "r1_coupled_head").model)
    two_anchors = sum(2 * (85 * c + 85) for c in (256, 512, 1024))
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params / 1e6 == pytest.approx(63.00 - two_anchors / 1e6, abs=0.01)
    decoupled = instantiate(_load(repo_root, "r2_decoupled_head").model)
    assert sum(p.numel() for p in decoupled.parameters()) / 1e6 == pytest.approx(63.72, abs=0.01)


# ------------------------------------------------------------------------------ assigners
def _objects():
    """Boxes on a 128x128 input, each in one scale range (strides 8 / 16 / 32 with
    ranges [0, 32), [32, 64), [64, inf) on the longer side)."""
    boxes = torch.tensor(
        [
            [[10.0, 12.0, 30.0, 28.0], [40.0, 40.0, 90.0, 80.0], [60.0, 4.0, 75.0, 20.0]],
            [[8.0, 8.0, 120.0, 110.0], [50.0, 60.0, 60.0, 70.0], [0.0, 0.0, 0.0, 0.0]],
        ]
    )
    valid = torch.tensor([[True, True, True], [True, True, False]])
    return boxes, torch.tensor([[0, 1, 0], [1, 0, 0]]), valid


def _assign(matcher, boxes, classes, valid, size=128):
    model = YOLOX(
        backbone=YOLOFPN(Darknet53(21, stem_channels=8)),
        head=YOLOXHead(in_channels=[32, 64, 128], num_classes=2, feat_channels=16),
        num_classes=2,
        matcher=matcher,
    )
    shapes = [torch.zeros(1, 1, size // s, size // s) for s in model.strides]
    grid, strides = model.anchor_grid(shapes)
    A = grid.shape[0]
    B = boxes.shape[0]
    pred_boxes = model.decode_boxes(torch.zeros(B, A, 4), grid, strides)
    return matcher(
        pred_boxes,
        torch.zeros(B, A, 2),
        torch.zeros(B, A),
        (grid + 0.5) * strides.unsqueeze(-1),
        strides,
        boxes,
        classes,
        valid,
    ), grid, strides


@pytest.mark.parametrize("window,max_positives", [(1, 1), (3, 9)])
def test_center_matcher_positives_per_object(window, max_positives):
    ranges = ((0, 32), (32, 64), (64, math.inf))
    boxes, classes, valid = _objects()
    result, grid, strides = _assign(CenterMatcher(window=window, level_size_ranges=ranges), boxes, classes, valid)
    expected_stride = {(0, 0): 8, (0, 1): 16, (0, 2): 8, (1, 0): 32, (1, 1): 8}
    for (b, g), stride in expected_stride.items():
        mine = result.fg_mask[b] & (result.matched_gt[b] == g)
        assert (strides[mine] == stride).all()
        cx, cy = (boxes[b, g, :2] + boxes[b, g, 2:]) / 2
        centre_cell = torch.tensor([math.floor(cx / stride), math.floor(cy / stride)])
        cells = grid[mine].long()
        # the centre cell, and for the 3x3 window its 8 neighbours on the grid
        assert (cells == centre_cell).all(dim=1).sum() == 1
        assert ((cells - centre_cell).abs().amax(dim=1) <= window // 2).all()
        n_cells = 128 // stride
        lo, hi = (centre_cell - window // 2).clamp(min=0), (centre_cell + window // 2).clamp(max=n_cells - 1)
        assert int(mine.sum()) == int(((hi - lo + 1)).prod()) <= max_positives
    assert result.num_fg == int(result.fg_mask.sum())
    assert (result.matched_iou[~result.fg_mask] == 0).all()
    if window == 1:
        assert result.num_fg == int(valid.sum())  # exactly one positive per object
        # IoU-aware class target: the centre cell's box (one stride, zero regression) overlaps
        assert (result.matched_iou[result.fg_mask] > 0).all()


def test_center_matcher_gives_a_shared_cell_to_the_smaller_object():
    boxes = torch.tensor([[[0.0, 0.0, 40.0, 40.0], [16.0, 16.0, 28.0, 28.0]]])  # both centres in cell (2, 2)
    result, grid, strides = _assign(
        CenterMatcher(window=1, level_size_ranges=((0, 1000), (1000, 2000), (2000, math.inf))),
        boxes,
        torch.tensor([[0, 1]]),
        torch.tensor([[True, True]]),
    )
    assert result.num_fg == 1
    assert result.matched_gt[result.fg_mask].tolist() == [1]
    assert grid[result.fg_mask[0]].tolist() == [[2.0, 2.0]] and strides[result.fg_mask[0]].tolist() == [8.0]


def test_center_matcher_rejects_bad_arguments():
    with pytest.raises(ValueError, match="odd"):
        CenterMatcher(window=2)
    with pytest.raises(ValueError, match="level_size_ranges"):
        CenterMatcher(level_size_ranges=((10, 5),))
    boxes, classes, valid = _objects()
    with pytest.raises(ValueError, match="2 level_size_ranges but the model has 3 levels"):
        _assign(CenterMatcher(level_size_ranges=((0, 64), (64, math.inf))), boxes, classes, valid)
    # input shapes are checked as for the SimOTA matchers (the shared check names the argument)
    with pytest.raises(ValueError, match="gt_valid must be a bool tensor"):
        _assign(CenterMatcher(), boxes, classes, valid.long())
    with pytest.raises(ValueError, match="gt_classes must be"):
        _assign(CenterMatcher(), boxes, classes[:, :2], valid)


def test_simota_is_still_the_default_assigner(repo_root):
    cfg = _load(repo_root, "r5_simota")
    assert isinstance(instantiate(cfg.model.matcher), SimOTAMatcher)
