"""YOLOX losses and box IoUs: hand-computed values, options, gradients, and parity with official yolox 0.3.0."""

import math
from typing import Dict, List

import pytest
import torch
import torchvision

from yolox_d2.modeling.box_ops import (
    aligned_box_giou,
    aligned_box_iou,
    box_areas,
    cxcywh_to_xyxy,
    pairwise_box_iou,
    xyxy_to_cxcywh,
)
from yolox_d2.modeling.losses import iou_loss, yolox_losses
from yolox_d2.modeling.simota import SimOTAAssignment, SimOTAMatcher


def _bce(x: float, t: float) -> float:
    """BCE with logits from first principles: -(t log s(x) + (1 - t) log(1 - s(x)))."""
    s = 1.0 / (1.0 + math.exp(-x))
    return -(t * math.log(s) + (1 - t) * math.log(1 - s))


# ---------------------------------------------------------------------- box_ops
def _random_boxes(generator, *shape):
    """XYXY boxes on a 1/8-pixel grid (exact sums and halves), some overlapping."""
    xy = torch.round(torch.rand(*shape, 2, generator=generator) * 400) / 8
    wh = torch.round(torch.rand(*shape, 2, generator=generator) * 200 + 8) / 8
    return torch.cat((xy, xy + wh), dim=-1)


def test_pairwise_iou_is_the_aligned_iou_of_every_pair():
    g = torch.Generator().manual_seed(0)
    a, b = _random_boxes(g, 2, 6), _random_boxes(g, 2, 9)
    pairwise = pairwise_box_iou(a, b)
    assert pairwise.shape == (2, 6, 9)
    aligned, union = aligned_box_iou(a.unsqueeze(2).expand(2, 6, 9, 4), b.unsqueeze(1).expand(2, 6, 9, 4))
    assert torch.equal(pairwise, aligned)  # one IoU, bit for bit
    assert bool((pairwise > 0).any())
    for i in range(2):
        torch.testing.assert_close(pairwise[i], torchvision.ops.box_iou(a[i], b[i]))
    torch.testing.assert_close(union, box_areas(a).unsqueeze(2) + box_areas(b).unsqueeze(1) - aligned * union)


def test_box_ops_degenerate_boxes_and_giou():
    empty = torch.tensor([[5.0, 5.0, 5.0, 9.0], [7.0, 7.0, 3.0, 3.0]])  # zero width, inverted
    huge = torch.tensor([[-1e30, -1e30, 1e30, 1e30]])
    assert torch.equal(box_areas(empty), torch.zeros(2))
    assert torch.equal(pairwise_box_iou(empty, empty), torch.zeros(2, 2))  # no 0 / 0
    assert bool(torch.isfinite(pairwise_box_iou(huge, huge)).all())
    g = torch.Generator().manual_seed(1)
    a, b = _random_boxes(g, 20), _random_boxes(g, 20)
    torch.testing.assert_close(aligned_box_giou(a, b), torch.diag(torchvision.ops.generalized_box_iou(a, b)))
    torch.testing.assert_close(aligned_box_giou(a, a), torch.ones(20))


def test_box_format_conversions_round_trip():
    boxes = _random_boxes(torch.Generator().manual_seed(2), 3, 5)
    cxcywh = xyxy_to_cxcywh(boxes)
    torch.testing.assert_close(cxcywh[..., 2:], boxes[..., 2:] - boxes[..., :2], atol=0, rtol=0)
    torch.testing.assert_close(cxcywh_to_xyxy(cxcywh), boxes, atol=0, rtol=0)


# ---------------------------------------------------------------------- iou_loss
def test_iou_loss_hand_computed():
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 9.0, 7.0]])
    target = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 3.0, 1.0], [5.0, 5.0, 9.0, 7.0]])
    # IoUs: 1/7 (inter 1, union 4 + 4 - 1), 0 (disjoint), 1 (identical)
    expected_iou = torch.tensor([1 - (1 / 7) ** 2, 1.0, 0.0])
    torch.testing.assert_close(iou_loss(pred, target), expected_iou)
    # GIoU = IoU - (enclosing - union) / enclosing: 1/7 - 2/9, 0 - 1/3, 1
    expected_giou = torch.tensor([1 - (1 / 7 - 2 / 9), 1 + 1 / 3, 0.0])
    torch.testing.assert_close(iou_loss(pred, target, loss_type="giou"), expected_giou)
    torch.testing.assert_close(iou_loss(pred, target, reduction="sum"), expected_iou.sum())
    assert iou_loss(pred[:0], target[:0], reduction="sum").item() == 0.0


@pytest.mark.parametrize("loss_type", ["iou", "giou"])
def test_iou_loss_matches_official_iouloss(loss_type):
    from yolox.models.losses import IOUloss

    g = torch.Generator().manual_seed(0)
    ctr = torch.rand(500, 2, generator=g) * 100
    wh = torch.rand(500, 2, generator=g) * 60 + 0.5
    pred_cxcywh = torch.cat((ctr, wh), 1)
    target_cxcywh = torch.cat(
        (ctr + torch.randn(500, 2, generator=g) * 15, wh * torch.rand(500, 2, generator=g) * 2 + 0.5), 1
    )
    to_xyxy = lambda b: torch.cat((b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2), 1)  # noqa: E731
    ref = IOUloss(reduction="none", loss_type=loss_type)(pred_cxcywh, target_cxcywh)
    ours = iou_loss(to_xyxy(pred_cxcywh), to_xyxy(target_cxcywh), loss_type=loss_type)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_iou_loss_bad_args():
    with pytest.raises(ValueError, match="target_xyxy"):
        iou_loss(torch.zeros(3, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="loss_type"):
        iou_loss(torch.zeros(3, 4), torch.zeros(3, 4), loss_type="diou")
    with pytest.raises(ValueError, match="reduction"):
        iou_loss(torch.zeros(3, 4), torch.zeros(3, 4), reduction="avg")


# ---------------------------------------------------------------------- yolox_losses, hand computed
def _tiny_problem(requires_grad: bool = True) -> Dict:
    """One image, two anchors, two classes, one gt matched to anchor 0 with IoU 0.25."""
    cls = torch.tensor([[[0.5, -1.0], [2.0, 0.0]]], requires_grad=requires_grad)
    obj = torch.tensor([[0.0, 1.0]], requires_grad=requires_grad)
    boxes = torch.tensor([[[0.0, 0.0, 2.0, 2.0], [4.0, 4.0, 6.0, 6.0]]], requires_grad=requires_grad)
    reg = torch.tensor([[[0.5, 0.5, 0.1, -0.2], [0.0, 0.0, 0.0, 0.0]]], requires_grad=requires_grad)
    assignment = SimOTAAssignment(
        fg_mask=torch.tensor([[True, False]]),
        matched_gt=torch.tensor([[0, 0]]),
        matched_iou=torch.tensor([[0.25, 0.0]]),
        num_fg=1,
    )
    return dict(
        cls_logits=cls,
        obj_logits=obj,
        box_preds_xyxy=boxes,
        reg_raw=reg,
        anchor_grid=torch.tensor([[0.0, 0.0], [1.0, 1.0]]),
        anchor_strides=torch.tensor([2.0, 4.0]),
        assignment=assignment,
        gt_boxes=torch.tensor([[[1.0, 1.0, 3.0, 3.0]]]),
        gt_classes=torch.tensor([[1]]),
    )


@pytest.mark.parametrize("norm", [1.0, 2.0, 0.3])
def test_yolox_losses_hand_computed(norm):
    p = _tiny_problem()
    out = yolox_losses(**p, num_fg_normalizer=norm, use_l1=True)
    n = max(norm, 1.0)  # normalisers below 1 are raised to 1
    exp_cls = (_bce(0.5, 0.0) + _bce(-1.0, 0.25)) / n
    exp_obj = (_bce(0.0, 1.0) + _bce(1.0, 0.0)) / n
    exp_box = 5.0 * (1 - (1 / 7) ** 2) / n
    # gt centre (2, 2), size (2, 2), anchor 0 at grid (0, 0) with stride 2
    t = [2 / 2 - 0, 2 / 2 - 0, math.log(2 / 2 + 1e-8), math.log(2 / 2 + 1e-8)]
    exp_l1 = sum(abs(r - tt) for r, tt in zip([0.5, 0.5, 0.1, -0.2], t)) / n
    for key, value in (
        ("loss_cls", exp_cls),
        ("loss_obj", exp_obj),
        ("loss_box_reg", exp_box),
        ("loss_l1", exp_l1),
    ):
        assert out[key].item() == pytest.approx(value, rel=1e-6), key


def test_yolox_losses_giou_and_box_weight():
    p = _tiny_problem()
    out = yolox_losses(**p, num_fg_normalizer=1.0, iou_loss_type="giou", box_weight=2.0)
    assert out["loss_box_reg"].item() == pytest.approx(2.0 * (1 - (1 / 7 - 2 / 9)), rel=1e-6)
    with pytest.raises(ValueError, match="iou_loss_type"):
        yolox_losses(**p, num_fg_normalizer=1.0, iou_loss_type="ciou")


def test_yolox_losses_l1_off_is_attached_zero():
    p = _tiny_problem()
    out = yolox_losses(**p, num_fg_normalizer=1.0, use_l1=False)
    assert out["loss_l1"].item() == 0.0
    assert out["loss_l1"].requires_grad and out["loss_l1"].grad_fn is not None
    sum(out.values()).backward()
    assert torch.all(p["reg_raw"].grad == 0)
    # reg_raw may be omitted without L1 ...
    p2 = _tiny_problem()
    p2["reg_raw"] = None
    out2 = yolox_losses(**p2, num_fg_normalizer=1.0)
    assert out2["loss_l1"].requires_grad and out2["loss_l1"].item() == 0.0
    # ... but not with it.
    with pytest.raises(ValueError, match="reg_raw"):
        yolox_losses(**p2, num_fg_normalizer=1.0, use_l1=True)


def test_yolox_losses_l1_on_has_gradient():
    p = _tiny_problem()
    out = yolox_losses(**p, num_fg_normalizer=1.0, use_l1=True)
    out["loss_l1"].backward()
    # d|r - t|/dr = sign(r - t) for the positive anchor, 0 for the negative one.
    expected = torch.tensor([[[-1.0, -1.0, 1.0, -1.0], [0.0, 0.0, 0.0, 0.0]]])
    torch.testing.assert_close(p["reg_raw"].grad, expected)


@pytest.mark.parametrize("use_l1", [False, True])
def test_zero_foreground_gradients_finite(use_l1):
    p = _tiny_problem()
    p["assignment"] = SimOTAAssignment(
        fg_mask=torch.zeros(1, 2, dtype=torch.bool),
        matched_gt=torch.zeros(1, 2, dtype=torch.int64),
        matched_iou=torch.zeros(1, 2),
        num_fg=0,
    )
    out = yolox_losses(**p, num_fg_normalizer=0.0, use_l1=use_l1)
    assert out["loss_cls"].item() == 0 and out["loss_box_reg"].item() == 0 and out["loss_l1"].item() == 0
    assert out["loss_obj"].item() == pytest.approx(_bce(0.0, 0.0) + _bce(1.0, 0.0), rel=1e-6)
    sum(out.values()).backward()
    for name in ("cls_logits", "obj_logits", "box_preds_xyxy", "reg_raw"):
        assert torch.isfinite(p[name].grad).all(), name
    # Also with no ground truth slot at all (G = 0).
    p = _tiny_problem()
    p["assignment"] = SimOTAAssignment(
        torch.zeros(1, 2, dtype=torch.bool), torch.zeros(1, 2, dtype=torch.int64), torch.zeros(1, 2), 0
    )
    p["gt_boxes"] = torch.zeros(1, 0, 4)
    p["gt_classes"] = torch.zeros(1, 0, dtype=torch.int64)
    out = yolox_losses(**p, num_fg_normalizer=1.0, use_l1=use_l1)
    sum(out.values()).backward()
    assert all(torch.isfinite(p[n].grad).all() for n in ("cls_logits", "obj_logits", "box_preds_xyxy"))


def test_yolox_losses_shape_errors():
    p = _tiny_problem()
    p["obj_logits"] = p["obj_logits"][..., None]
    with pytest.raises(ValueError, match="obj_logits"):
        yolox_losses(**p, num_fg_normalizer=1.0)
    p = _tiny_problem()
    p["anchor_grid"] = p["anchor_grid"][:1]
    with pytest.raises(ValueError, match="anchor_grid"):
        yolox_losses(**p, num_fg_normalizer=1.0)


# ---------------------------------------------------------------------- parity with official get_losses
def _q(x: torch.Tensor, step: float = 0.125) -> torch.Tensor:
    return torch.round(x / step) * step


def _official_run(seed: int, use_l1: bool, num_gts: List[int], num_classes: int = 6):
    """Runs the official yolox 0.3.0 head in training mode and captures its get_losses inputs."""
    from yolox.models import YOLOXHead

    torch.manual_seed(seed)
    width, hw = 0.125, (96, 128)
    head = YOLOXHead(num_classes=num_classes, width=width, in_channels=[256, 512, 1024])
    head.initialize_biases(1e-2)
    head.train()
    head.use_l1 = use_l1
    B = len(num_gts)
    xin = [
        torch.randn(B, int(c * width), hw[0] // s, hw[1] // s) for c, s in zip([256, 512, 1024], [8, 16, 32])
    ]
    G = max(num_gts)
    labels = torch.zeros(B, G + 2, 5)  # extra all-zero rows are padding
    g = torch.Generator().manual_seed(seed)
    for b, n in enumerate(num_gts):
        ctr = torch.rand(n, 2, generator=g) * torch.tensor([hw[1], hw[0]])
        wh = torch.exp(torch.empty(n, 2).uniform_(1.5, 4.0, generator=g))
        labels[b, :n, 0] = torch.randint(0, num_classes, (n,), generator=g).float()
        labels[b, :n, 1:] = _q(torch.cat((ctr, wh), 1)).clamp(min=1.0)

    captured = {}
    original = head.get_losses

    def capture(imgs, x_shifts, y_shifts, expanded_strides, labels, outputs, origin_preds, dtype):
        outputs.retain_grad()
        captured.update(
            x_shifts=x_shifts,
            y_shifts=y_shifts,
            strides=expanded_strides,
            outputs=outputs,
            origin_preds=origin_preds,
        )
        return original(imgs, x_shifts, y_shifts, expanded_strides, labels, outputs, origin_preds, dtype)

    head.get_losses = capture
    official = head(xin, labels=labels, imgs=None)
    return official, captured, labels


@pytest.mark.parametrize("seed,use_l1,num_gts", [(0, False, [3, 5]), (1, True, [4, 0]), (2, True, [7, 2])])
def test_total_loss_matches_official_get_losses(seed, use_l1, num_gts):
    (loss, loss_iou, loss_obj, loss_cls, loss_l1, _), cap, labels = _official_run(seed, use_l1, num_gts)
    outputs = cap["outputs"]
    num_classes = outputs.shape[-1] - 5
    grid = torch.cat(
        (torch.cat(cap["x_shifts"], 1)[0][:, None], torch.cat(cap["y_shifts"], 1)[0][:, None]), 1
    )
    strides = torch.cat(cap["strides"], 1)[0]
    boxes_cxcywh = outputs[..., :4]
    boxes_xyxy = torch.cat(
        (
            boxes_cxcywh[..., :2] - boxes_cxcywh[..., 2:] / 2,
            boxes_cxcywh[..., :2] + boxes_cxcywh[..., 2:] / 2,
        ),
        -1,
    )
    cls_logits, obj_logits = outputs[..., 5:], outputs[..., 4]
    reg_raw = torch.cat(cap["origin_preds"], 1) if use_l1 else None

    gt_valid = labels.sum(-1) > 0
    gt_cxcywh = labels[..., 1:]
    gt_boxes = torch.cat(
        (gt_cxcywh[..., :2] - 0.5 * gt_cxcywh[..., 2:], gt_cxcywh[..., :2] + 0.5 * gt_cxcywh[..., 2:]), -1
    )
    gt_classes = labels[..., 0].long()
    assignment = SimOTAMatcher()(
        boxes_xyxy.detach(),
        cls_logits.detach(),
        obj_logits.detach(),
        (grid + 0.5) * strides[:, None],
        strides,
        gt_boxes,
        gt_classes,
        gt_valid,
    )
    assert assignment.num_fg > 0
    ours = yolox_losses(
        cls_logits,
        obj_logits,
        boxes_xyxy,
        reg_raw,
        grid,
        strides,
        assignment,
        gt_boxes,
        gt_classes,
        num_fg_normalizer=max(assignment.num_fg, 1),
        use_l1=use_l1,
    )
    assert ours["loss_cls"].item() == pytest.approx(loss_cls.item(), rel=1e-5)
    assert ours["loss_obj"].item() == pytest.approx(loss_obj.item(), rel=1e-5)
    assert ours["loss_box_reg"].item() == pytest.approx(loss_iou.item(), rel=1e-5)
    assert ours["loss_l1"].item() == pytest.approx(
        float(torch.as_tensor(loss_l1).detach()), rel=1e-5, abs=1e-7
    )
    assert (ours["loss_l1"].item() > 0) == use_l1
    total = sum(ours.values())
    assert total.item() == pytest.approx(loss.item(), rel=1e-5)

    # Same gradients with respect to the head outputs (and raw regression).
    leaves = [outputs] + (list(cap["origin_preds"]) if use_l1 else [])
    ref_grads = torch.autograd.grad(loss, leaves, retain_graph=True)
    our_grads = torch.autograd.grad(total, leaves)
    for ref_g, our_g in zip(ref_grads, our_grads):
        torch.testing.assert_close(our_g, ref_g, atol=1e-5, rtol=1e-4)
