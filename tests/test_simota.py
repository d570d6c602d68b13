"""SimOTAMatcher: parity with the official YOLOX assignment (2021 and 2023 rules) and edge cases.

The 2021 ("legacy") reference is the installed official ``yolox==0.3.0``. The post-2023 reference
is ``pixeltable-yolox==0.4.3``, whose top-level package is also named ``yolox``; it is installed
to ``.venv/reference/pixeltable_yolox`` (``pip install --no-deps --target ...``) and run in a
subprocess so that the two ``yolox`` packages never share an interpreter.
"""

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import pytest
import torch
from torch.nn import functional as F

from yolox_d2.modeling.simota import OneToOneMatcher, SimOTAAssignment, SimOTAMatcher

REPO = Path(__file__).resolve().parents[1]
PIXELTABLE_YOLOX = REPO / ".venv" / "reference" / "pixeltable_yolox"

IMG_HW = (128, 160)
STRIDES = (8, 16, 32)


# ---------------------------------------------------------------------- input generation
def make_anchors(img_hw: Tuple[int, int] = IMG_HW, strides: Sequence[int] = STRIDES):
    """Integer grid (A, 2) as (x, y), stride (A,), in the official flattening order."""
    grids, strs = [], []
    for s in strides:
        h, w = img_hw[0] // s, img_hw[1] // s
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        grids.append(torch.stack((xs, ys), -1).reshape(-1, 2).float())
        strs.append(torch.full((h * w,), float(s)))
    return torch.cat(grids), torch.cat(strs)


def _q(x: torch.Tensor, step: float = 0.125) -> torch.Tensor:
    """Quantise to a dyadic step so that cxcywh <-> xyxy conversions are exact in float32."""
    return torch.round(x / step) * step


def cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    return torch.cat((b[..., :2] - 0.5 * b[..., 2:], b[..., :2] + 0.5 * b[..., 2:]), -1)


def make_case(seed: int, num_gts: Sequence[int], num_classes: int, img_hw=IMG_HW) -> Dict:
    """
    Random predictions and ground truths. Boxes are generated in cxcywh on a 1/8-pixel grid,
    so the official (cxcywh) and our (xyxy) geometry and IoUs are bit-identical.
    """
    g = torch.Generator().manual_seed(seed)
    grid, strides = make_anchors(img_hw)
    A, B, C = grid.shape[0], len(num_gts), num_classes
    H, W = img_hw
    pred_c = _q((grid + 0.5 + 0.6 * torch.randn(B, A, 2, generator=g)) * strides[:, None])
    pred_wh = _q(strides[:, None] * torch.exp(1.0 + 0.8 * torch.randn(B, A, 2, generator=g))).clamp(min=0.125)
    pred_cxcywh = torch.cat((pred_c, pred_wh), -1)
    cls_logits = 2.0 * torch.randn(B, A, C, generator=g) - 2.0
    obj_logits = 2.0 * torch.randn(B, A, generator=g)

    G = max(max(num_gts), 1) if len(num_gts) else 1
    gt_cxcywh = torch.zeros(B, G, 4)
    gt_classes = torch.zeros(B, G, dtype=torch.int64)
    gt_valid = torch.zeros(B, G, dtype=torch.bool)
    for b, n in enumerate(num_gts):
        wh = torch.exp(torch.empty(n, 2).uniform_(1.0, 4.6, generator=g))  # ~3 .. 100 px
        c = torch.rand(n, 2, generator=g) * torch.tensor([W, H])
        gt_cxcywh[b, :n] = _q(torch.cat((c, wh), -1)).clamp(min=0.25)
        gt_classes[b, :n] = torch.randint(0, C, (n,), generator=g)
        gt_valid[b, :n] = True
    return dict(
        grid=grid,
        strides=strides,
        pred_cxcywh=pred_cxcywh,
        cls_logits=cls_logits,
        obj_logits=obj_logits,
        gt_cxcywh=gt_cxcywh,
        gt_classes=gt_classes,
        gt_valid=gt_valid,
        num_gts=list(num_gts),
        num_classes=C,
    )


def run_ours(case: Dict, **matcher_kwargs) -> SimOTAAssignment:
    matcher = SimOTAMatcher(**matcher_kwargs)
    gt_boxes = cxcywh_to_xyxy(case["gt_cxcywh"]) * case["gt_valid"][..., None]
    return matcher(
        cxcywh_to_xyxy(case["pred_cxcywh"]),
        case["cls_logits"],
        case["obj_logits"],
        (case["grid"] + 0.5) * case["strides"][:, None],
        case["strides"],
        gt_boxes,
        case["gt_classes"],
        case["gt_valid"],
    )


# ---------------------------------------------------------------------- official references
def run_official_legacy(case: Dict) -> List[Dict]:
    """Official yolox 0.3.0 ``get_assignments``, image by image (None for images without gt)."""
    from yolox.models import YOLOXHead

    head = YOLOXHead(num_classes=case["num_classes"], width=0.125, in_channels=[256, 512, 1024])
    A = case["grid"].shape[0]
    x_shifts = case["grid"][None, :, 0]
    y_shifts = case["grid"][None, :, 1]
    expanded_strides = case["strides"][None]
    bbox_preds = case["pred_cxcywh"]
    cls_preds = case["cls_logits"]
    obj_preds = case["obj_logits"][..., None]
    labels = torch.cat((case["gt_classes"][..., None].float(), case["gt_cxcywh"]), -1)
    results = []
    for b, n in enumerate(case["num_gts"]):
        if n == 0:
            results.append(None)
            continue
        cls_m, fg, ious, inds, num_fg = head.get_assignments(
            b,
            n,
            A,
            case["gt_cxcywh"][b, :n],
            labels[b, :n, 0],
            bbox_preds[b],
            expanded_strides,
            x_shifts,
            y_shifts,
            cls_preds,
            bbox_preds,
            obj_preds,
            labels,
            None,
        )
        results.append(dict(fg_mask=fg, matched_gt=inds, matched_iou=ious, num_fg=num_fg))
    return results


_OFFICIAL_2023_SCRIPT = textwrap.dedent("""
    import sys, torch
    import yolox
    from yolox.models.yolo_head import YoloxHead
    assert "pixeltable_yolox" in yolox.__file__, yolox.__file__
    cases = torch.load(sys.argv[1])
    out = []
    for case in cases:
        head = YoloxHead(num_classes=case["num_classes"], width=0.125)
        x_shifts = case["grid"][None, :, 0]
        y_shifts = case["grid"][None, :, 1]
        strides = case["strides"][None]
        obj = case["obj_logits"][..., None]
        res = []
        for b, n in enumerate(case["num_gts"]):
            if n == 0:
                res.append(None)
                continue
            _, fg, ious, inds, num_fg = head.get_assignments(
                b, n, case["gt_cxcywh"][b, :n], case["gt_classes"][b, :n].float(),
                case["pred_cxcywh"][b], strides, x_shifts, y_shifts, case["cls_logits"], obj,
            )
            res.append(dict(fg_mask=fg, matched_gt=inds, matched_iou=ious, num_fg=num_fg))
        out.append(res)
    torch.save(out, sys.argv[2])
    """)


def run_official_2023(cases: List[Dict], tmp_path: Path) -> List[List[Dict]]:
    if not (PIXELTABLE_YOLOX / "yolox" / "models" / "yolo_head.py").is_file():
        pytest.skip(
            f"post-2023 reference missing: run `pip install --no-deps --target "
            f"{PIXELTABLE_YOLOX} pixeltable-yolox==0.4.3`"
        )
    src, dst, script = tmp_path / "in.pt", tmp_path / "out.pt", tmp_path / "ref2023.py"
    torch.save(cases, src)
    script.write_text(_OFFICIAL_2023_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(PIXELTABLE_YOLOX))
    proc = subprocess.run(
        [sys.executable, str(script), str(src), str(dst)],
        env=env,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return torch.load(dst)


def assert_same_as_official(ours: SimOTAAssignment, official: List[Dict], case: Dict) -> None:
    total = 0
    for b, ref in enumerate(official):
        if ref is None:
            assert not ours.fg_mask[b].any()
            continue
        total += ref["num_fg"]
        assert torch.equal(ours.fg_mask[b], ref["fg_mask"]), f"image {b}: fg_mask differs"
        fg = ours.fg_mask[b]
        assert torch.equal(ours.matched_gt[b][fg], ref["matched_gt"]), f"image {b}: matched gt differs"
        torch.testing.assert_close(ours.matched_iou[b][fg], ref["matched_iou"].float(), atol=1e-5, rtol=0)
        assert torch.all(ours.matched_iou[b][~fg] == 0)
    assert ours.num_fg == total
    assert ours.num_fg == int(ours.fg_mask.sum())


# ---------------------------------------------------------------------- parity tests
PARITY_CASES = [
    (0, [3, 0, 7, 1], 5),
    (1, [12, 5], 20),
    (2, [1, 25, 0], 3),
    (3, [40, 2, 9], 80),
]


@pytest.mark.parametrize("seed,num_gts,num_classes", PARITY_CASES)
def test_legacy_rule_matches_official_0_3_0(seed, num_gts, num_classes):
    case = make_case(seed, num_gts, num_classes)
    ours = run_ours(case, rule="legacy")
    assert ours.num_fg > 0
    assert_same_as_official(ours, run_official_legacy(case), case)


def test_2023_rule_matches_official_post_2023(tmp_path):
    cases = [make_case(seed + 100, num_gts, num_classes) for seed, num_gts, num_classes in PARITY_CASES]
    refs = run_official_2023(cases, tmp_path)
    for case, ref in zip(cases, refs):
        ours = run_ours(case, rule="2023")
        assert ours.num_fg > 0
        assert_same_as_official(ours, ref, case)


def _stress_case(seed: int, mode: str) -> Dict:
    """Random case whose costs are tie-heavy ("ties"), saturated ("extreme": probabilities of
    exactly 0 and 1) or equal for every prediction of an image ("flat")."""
    g = torch.Generator().manual_seed(seed)
    B = int(torch.randint(1, 4, (1,), generator=g))
    num_gts = [int(torch.randint(0, 40, (1,), generator=g)) for _ in range(B)]
    num_gts[0] = max(num_gts[0], 1)
    case = make_case(seed, num_gts, int(torch.randint(1, 30, (1,), generator=g)))
    if mode == "ties":
        case["cls_logits"] = torch.round(case["cls_logits"])
        case["obj_logits"] = torch.round(case["obj_logits"])
    elif mode == "extreme":
        case["cls_logits"] = case["cls_logits"] * 30
        case["obj_logits"] = case["obj_logits"] * 30
    elif mode == "flat":
        case["cls_logits"][:] = case["cls_logits"][:, :1].clone()
        case["obj_logits"][:] = case["obj_logits"][:, :1].clone()
    return case


STRESS = [(seed, mode) for mode in ("ties", "extreme", "flat") for seed in range(6)]


@pytest.mark.parametrize("seed,mode", STRESS)
def test_legacy_rule_matches_official_on_ties_and_saturation(seed, mode):
    """Only the pairs whose cost can matter get the exact official cost: near-equal and equal
    costs, and probabilities of exactly 0 / 1 (BCE log clamp), must not change the result."""
    case = _stress_case(1000 + seed, mode)
    if mode == "extreme":
        p = (torch.sigmoid(case["cls_logits"]) * torch.sigmoid(case["obj_logits"])[..., None]).sqrt()
        assert (p == 1).any() and (p == 0).any()
    assert_same_as_official(run_ours(case, rule="legacy"), run_official_legacy(case), case)


def test_2023_rule_matches_official_on_ties_and_saturation(tmp_path):
    cases = [_stress_case(2000 + seed, mode) for seed, mode in STRESS]
    refs = run_official_2023(cases, tmp_path)
    for case, ref in zip(cases, refs):
        assert_same_as_official(run_ours(case, rule="2023"), ref, case)


def dense_reference(case: Dict, rule: str, cls_weight=1.0, iou_weight=3.0, candidate_topk=10, center_radius=None):
    """
    Brute-force SimOTA, image by image, with the full (G, N, C) BCE cost matrix of the official
    code and this project's tie rule (lower anchor index first), for any matcher parameters.
    """
    radius = center_radius if center_radius is not None else {"legacy": 2.5, "2023": 1.5}[rule]
    penalty = {"legacy": 1e5, "2023": 1e6}[rule]
    pred, cls, obj, pts, strides, gt, classes, valid = _inputs(case)
    B, A, C = cls.shape
    fg = torch.zeros(B, A, dtype=torch.bool)
    matched = torch.zeros(B, A, dtype=torch.int64)
    for b in range(B):
        n = int(valid[b].sum())
        if n == 0:
            continue
        g = gt[b, :n]
        x, y = pts[:, 0], pts[:, 1]
        cx, cy = ((g[:, 0] + g[:, 2]) / 2)[:, None], ((g[:, 1] + g[:, 3]) / 2)[:, None]
        r = radius * strides
        in_ctr = (x > cx - r) & (x < cx + r) & (y > cy - r) & (y < cy + r)
        in_box = (x > g[:, :1]) & (x < g[:, 2:3]) & (y > g[:, 1:2]) & (y < g[:, 3:4])
        if rule == "legacy":
            cand, prior = (in_box | in_ctr).any(0), in_box & in_ctr
        else:
            cand, prior = in_ctr.any(0), in_ctr
        anchors = torch.nonzero(cand).squeeze(1)
        if anchors.numel() == 0:
            continue
        p = pred[b, anchors]
        tl = torch.max(g[:, None, :2], p[None, :, :2])
        br = torch.min(g[:, None, 2:], p[None, :, 2:])
        inter = (br - tl).clamp(min=0).prod(-1)
        area_g = (g[:, 2:] - g[:, :2]).prod(-1)
        area_p = (p[:, 2:] - p[:, :2]).prod(-1)
        ious = inter / (area_g[:, None] + area_p[None] - inter)
        prob = (cls[b, anchors].sigmoid() * obj[b, anchors, None].sigmoid()).sqrt()
        onehot = F.one_hot(classes[b, :n], C).float()
        bce = F.binary_cross_entropy(
            prob[None].expand(n, -1, -1), onehot[:, None].expand(-1, len(anchors), -1), reduction="none"
        ).sum(-1)
        if cls_weight != 1.0:
            bce = bce * cls_weight
        cost = bce + iou_weight * -torch.log(ious + 1e-8) + penalty * (~prior[:, anchors]).float()
        topk = min(candidate_topk, len(anchors))
        ks = ious.topk(topk, dim=1).values.sum(1).int().clamp(min=1).tolist()
        matching = torch.zeros_like(cost, dtype=torch.bool)
        for j, k in enumerate(ks):
            matching[j, torch.sort(cost[j], stable=True).indices[:k]] = True
        multi = matching.sum(0) > 1
        best = cost.min(0).indices
        matching[:, multi] = False
        matching[best[multi], torch.nonzero(multi).squeeze(1)] = True
        cols = matching.any(0)
        fg[b, anchors[cols]] = True
        matched[b, anchors[cols]] = matching[:, cols].to(torch.uint8).argmax(0)
    return fg, matched


@pytest.mark.parametrize(
    "rule,kwargs",
    [
        ("legacy", dict(cls_weight=2.0, iou_weight=1.0)),
        ("legacy", dict(cls_weight=0.0, candidate_topk=3)),
        ("legacy", dict(cls_weight=-1.0, iou_weight=5.5, center_radius=4.0)),
        ("2023", dict(cls_weight=0.5, candidate_topk=25)),
        ("2023", dict(iou_weight=0.0, center_radius=0.5)),
    ],
)
@pytest.mark.parametrize("mode", ["random", "ties"])
def test_matches_dense_reference_for_any_weights(rule, kwargs, mode):
    """The cost-interval pruning is exact for every cls / iou weight (also 0 and negative)."""
    for seed in range(3):
        case = _stress_case(3000 + seed, mode) if mode != "random" else make_case(3000 + seed, [15, 0, 40], 12)
        res = run_ours(case, rule=rule, **kwargs)
        fg, matched = dense_reference(case, rule, **kwargs)
        assert res.fg_mask.any()
        assert torch.equal(res.fg_mask, fg)
        assert torch.equal(res.matched_gt[fg], matched[fg])


@pytest.mark.parametrize("num_classes", [7, 80])
def test_near_equal_class_costs_ordered_like_the_official_sum(num_classes):
    """
    Every prediction has the same box and the same class probabilities up to a permutation of
    the non-target classes: the class costs differ only by the rounding of the official
    ``.sum(-1)``, so the k lowest are decided at the last bits, which the cost estimate alone
    cannot resolve (it must keep every pair within its error bound for the exact recount).
    """
    grid, strides = make_anchors((64, 64), (8,))
    A, C = grid.shape[0], num_classes
    g = torch.Generator().manual_seed(num_classes)
    pts = (grid + 0.5) * strides[:, None]
    base = torch.randn(C, generator=g) * 3 - 1
    base[0] = 2.0  # the gt class keeps its place
    perms = torch.stack(
        [torch.cat((torch.zeros(1, dtype=torch.int64), 1 + torch.randperm(C - 1, generator=g))) for _ in range(A)]
    )
    cls = base[perms].unsqueeze(0)
    obj = torch.full((1, A), 0.5)
    pred = torch.tensor([8.0, 8.0, 40.0, 40.0]).expand(1, A, 4)
    # gt (8, 8, 48, 48): IoU 0.64 for every prediction -> k = int(6.4) = 6 among 64 equal-IoU ones
    case_gt = torch.tensor([[[8.0, 8.0, 48.0, 48.0]]])
    args = (
        pred,
        cls,
        obj,
        pts,
        strides,
        case_gt,
        torch.zeros(1, 1, dtype=torch.int64),
        torch.ones(1, 1, dtype=torch.bool),
    )
    res = SimOTAMatcher(rule="2023", center_radius=100.0)(*args)
    # the official cost, row by row: BCE over the (1, A, C) tensor, summed over classes
    prob = (cls.sigmoid() * obj[..., None].sigmoid()).sqrt()
    onehot = F.one_hot(torch.zeros(1, A, dtype=torch.int64), C).float()
    cost = F.binary_cross_entropy(prob, onehot, reduction="none").sum(-1)[0]
    assert len(set(cost.tolist())) > 1  # the costs are not all equal ...
    assert float(cost.max() - cost.min()) < 1e-4 * float(cost.min())  # ... but nearly so
    expected = torch.zeros(A, dtype=torch.bool)
    expected[torch.sort(cost, stable=True).indices[:6]] = True
    assert res.num_fg == 6
    assert torch.equal(res.fg_mask[0], expected)


def test_rules_differ():
    case = make_case(7, [6, 4], 10)
    assert not torch.equal(run_ours(case, rule="legacy").fg_mask, run_ours(case, rule="2023").fg_mask)


# ---------------------------------------------------------------------- edge cases
def _inputs(case: Dict):
    gt_boxes = cxcywh_to_xyxy(case["gt_cxcywh"]) * case["gt_valid"][..., None]
    return (
        cxcywh_to_xyxy(case["pred_cxcywh"]),
        case["cls_logits"],
        case["obj_logits"],
        (case["grid"] + 0.5) * case["strides"][:, None],
        case["strides"],
        gt_boxes,
        case["gt_classes"],
        case["gt_valid"],
    )


def _assert_sane(res: SimOTAAssignment, B: int, A: int, gt_valid: torch.Tensor) -> None:
    assert res.fg_mask.shape == (B, A) and res.fg_mask.dtype == torch.bool
    assert res.matched_gt.shape == (B, A) and res.matched_gt.dtype == torch.int64
    assert res.matched_iou.shape == (B, A)
    assert torch.isfinite(res.matched_iou).all()
    assert (res.matched_iou >= 0).all() and (res.matched_iou <= 1 + 1e-6).all()
    assert res.num_fg == int(res.fg_mask.sum())
    if gt_valid.shape[1]:
        assert gt_valid.gather(1, res.matched_gt)[res.fg_mask].all()


@pytest.mark.parametrize("rule", ["legacy", "2023"])
def test_no_gt_at_all(rule):
    case = make_case(0, [2, 1], 4)
    args = list(_inputs(case))
    B, A = args[1].shape[:2]
    for G in (0, 3):  # G = 0, and padded entries that are all invalid
        args[5] = torch.zeros(B, G, 4)
        args[6] = torch.zeros(B, G, dtype=torch.int64)
        args[7] = torch.zeros(B, G, dtype=torch.bool)
        res = SimOTAMatcher(rule=rule)(*args)
        assert res.num_fg == 0 and not res.fg_mask.any()
        _assert_sane(res, B, A, args[7])


@pytest.mark.parametrize("rule", ["legacy", "2023"])
def test_empty_and_crowded_images(rule):
    case = make_case(11, [0, 300], 6)
    args = _inputs(case)
    res = SimOTAMatcher(rule=rule)(*args)
    _assert_sane(res, 2, args[1].shape[1], case["gt_valid"])
    assert not res.fg_mask[0].any()
    assert res.fg_mask[1].sum() > 50


def test_1200_gts_is_fast_and_sane():
    case = make_case(12, [1200, 3], 8)
    args = _inputs(case)
    res = SimOTAMatcher()(*args)
    _assert_sane(res, 2, args[1].shape[1], case["gt_valid"])
    # Every anchor can have at most one gt; with 1200 gts on 420 anchors most become positive.
    assert res.num_fg > 200


def test_degenerate_gt_boxes():
    """Zero-area, fully-outside and inverted ground truths: no NaN/inf, no crash."""
    case = make_case(13, [4, 3, 1], 5)
    pred, cls, obj, pts, strides, _, _, _ = _inputs(case)
    gt = torch.tensor(
        [
            [
                [40.0, 40.0, 40.0, 40.0],
                [10.0, 20.0, 10.0, 60.0],
                [500.0, 500.0, 600.0, 650.0],
                [20.0, 20.0, 60.0, 60.0],
            ],
            [
                [-300.0, -300.0, -200.0, -250.0],
                [90.0, 90.0, 70.0, 70.0],
                [0.0, 0.0, 0.0, 0.0],
                [0.0, 0.0, 0.0, 0.0],
            ],
            [[-300.0, 10.0, -200.0, 50.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]],
        ]
    )
    valid = torch.tensor([[True, True, True, True], [True, True, True, False], [True, False, False, False]])
    classes = torch.zeros(3, 4, dtype=torch.int64)
    for rule in ("legacy", "2023"):
        res = SimOTAMatcher(rule=rule)(pred, cls, obj, pts, strides, gt, classes, valid)
        _assert_sane(res, 3, pred.shape[1], valid)
        assert res.fg_mask[0].any() and res.fg_mask[1].any()
        # The only gt of image 2 is far outside: no candidate at all -> all background
        # (yolox 0.3.0 crashes here, the 2023 code returns an empty assignment).
        assert not res.fg_mask[2].any()


def test_zero_area_predictions_no_nan():
    case = make_case(14, [3, 2], 4)
    args = list(_inputs(case))
    args[0] = torch.zeros_like(args[0])  # all predicted boxes collapsed to the origin
    res = SimOTAMatcher()(*args)
    _assert_sane(res, 2, args[0].shape[1], case["gt_valid"])
    assert res.num_fg >= 5  # every gt still gets k >= 1


@pytest.mark.parametrize("rule", ["legacy", "2023"])
def test_chunked_equals_unchunked(rule, caplog):
    case = make_case(15, [5, 0, 60, 1, 17], 7)
    args = _inputs(case)
    G, A = case["gt_valid"].shape[1], args[1].shape[1]
    full = SimOTAMatcher(rule=rule)(*args)
    # 1: one image per chunk, one gt per block; 5000: one image, partial gt blocks;
    # 2*G*A: two images per chunk.
    for bound in (1, 5000, 2 * G * A):
        with caplog.at_level(logging.DEBUG, logger="yolox_d2.modeling.simota"):
            caplog.clear()
            chunked = SimOTAMatcher(rule=rule, max_chunk_elements=bound)(*args)
        assert "at a time" in caplog.text
        assert torch.equal(full.fg_mask, chunked.fg_mask)
        assert torch.equal(full.matched_gt, chunked.matched_gt)
        assert torch.equal(full.matched_iou, chunked.matched_iou)
        assert full.num_fg == chunked.num_fg


def test_non_prefix_padding_and_invalid_classes_ignored():
    """Validity comes from gt_valid only; padding content (boxes, class ids) is ignored."""
    case = make_case(16, [4, 6], 5)
    args = list(_inputs(case))
    ref = SimOTAMatcher()(*args)
    gt_boxes, gt_classes, gt_valid = args[5].clone(), args[6].clone(), args[7]
    gt_boxes[~gt_valid] = torch.tensor([10.0, 10.0, 90.0, 90.0])
    gt_classes[~gt_valid] = 12345
    res = SimOTAMatcher()(*args[:5], gt_boxes, gt_classes, gt_valid)
    assert torch.equal(ref.fg_mask, res.fg_mask) and torch.equal(ref.matched_gt, res.matched_gt)


def test_ties_go_to_lower_anchor_index():
    """Identical predictions -> identical costs; the lowest anchor indices win."""
    grid, strides = make_anchors((32, 32), (8,))
    A = grid.shape[0]
    pts = (grid + 0.5) * strides[:, None]
    pred = torch.tensor([0.0, 0.0, 4.0, 4.0]).expand(1, A, 4)  # same box for every anchor
    cls = torch.zeros(1, A, 2)
    obj = torch.zeros(1, A)
    gt = torch.tensor([[[0.0, 0.0, 32.0, 32.0]]])
    res = SimOTAMatcher(rule="2023", center_radius=100.0)(
        pred,
        cls,
        obj,
        pts,
        strides,
        gt,
        torch.zeros(1, 1, dtype=torch.int64),
        torch.ones(1, 1, dtype=torch.bool),
    )
    # IoU 1/64 everywhere -> sum of top 10 < 1 -> k = 1: the first anchor.
    assert res.num_fg == 1 and bool(res.fg_mask[0, 0])


@pytest.mark.parametrize("matcher_cls", [SimOTAMatcher, OneToOneMatcher])
def test_shape_errors_name_the_argument(matcher_cls):
    case = make_case(0, [2], 3)
    args = list(_inputs(case))
    bad = list(args)
    bad[2] = args[2][..., None]
    with pytest.raises(ValueError, match="obj_logits"):
        matcher_cls()(*bad)
    bad = list(args)
    bad[7] = args[7].long()
    with pytest.raises(ValueError, match="gt_valid"):
        matcher_cls()(*bad)
    bad = list(args)
    bad[3] = args[3][:-1]
    with pytest.raises(ValueError, match="anchor_points"):
        matcher_cls()(*bad)
    with pytest.raises(ValueError, match="rule"):
        matcher_cls(rule="2022")
    with pytest.raises(ValueError, match="cls_weight"):
        matcher_cls(cls_weight=float("nan"))
    with pytest.raises(ValueError, match="iou_weight"):
        matcher_cls(iou_weight=float("inf"))
    with pytest.raises(ValueError, match="center_radius"):
        matcher_cls(center_radius=0.0)
    with pytest.raises(ValueError, match="max_chunk_elements"):
        matcher_cls(max_chunk_elements=0)


def test_no_grad_and_dtype():
    case = make_case(17, [3], 4)
    args = list(_inputs(case))
    args[0] = args[0].double().requires_grad_()
    args[1] = args[1].half()
    res = SimOTAMatcher()(*args)
    assert not res.matched_iou.requires_grad
    assert res.matched_iou.dtype == torch.float32
    _assert_sane(res, 1, args[1].shape[1], case["gt_valid"])
    assert res.num_fg > 0
