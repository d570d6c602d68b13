"""
End-to-end (NMS-free) YOLOX: the PSS branch of the head, its one-to-one targets and
stop-gradient, inference and export without NMS, and a small model that overfits a handful of
images with NMS off while its plain (PSS-less) scores keep the duplicates NMS would remove.
"""
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from torchvision.ops import box_iou

from detectron2.evaluation import inference_on_dataset
from detectron2.structures import ImageList

from yolox_d2.data import MosaicMixupDataset, YOLOXTestMapper, build_yolox_test_loader
from yolox_d2.evaluation import FasterCOCOEvaluator
from yolox_d2.modeling import YOLOX, CSPDarknet, OneToOneMatcher, SimOTAMatcher, YOLOPAFPN, YOLOXHead
from yolox_d2.modeling.pss import end_to_end_objectness_logits, pss_loss
from yolox_d2.modeling.simota import SimOTAAssignment
from yolox_d2.modeling.simota.one_to_one import greedy_one_to_one

from .synthetic_shapes import make_shapes_dataset, register_shapes_dataset

SIZE = 192  # synthetic images and network input
NUM_CLASSES = 2  # synthetic_shapes.CLASSES
SCORE_THRESH = 0.3  # detections kept for the duplicate count
DUPLICATE_IOU = 0.6


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a busy 2-core machine more threads are much slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _model(end_to_end=True, width=0.125, num_classes=NUM_CLASSES, seed=0, **kwargs) -> YOLOX:
    torch.manual_seed(seed)
    backbone = YOLOPAFPN(CSPDarknet(0.33, width), depth=0.33)
    channels = [s.channels for s in backbone.output_shape().values()]
    head = YOLOXHead(
        in_channels=channels, num_classes=num_classes, feat_channels=int(256 * width), end_to_end=end_to_end
    )
    return YOLOX(backbone=backbone, head=head, num_classes=num_classes, end_to_end=end_to_end, **kwargs)


def _plain_copy(model: YOLOX, **kwargs) -> YOLOX:
    """The same detector without the PSS branch (the end-to-end model's weights, PSS dropped)."""
    plain = _model(end_to_end=False, **kwargs)
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert not missing and unexpected and all(k.startswith("head.pss_") for k in unexpected)
    return plain


# ------------------------------------------------------------------------------ structure
def test_pss_branch_is_two_3x3_convs_and_a_1x1_logit_per_level():
    kw = dict(in_channels=[32, 64, 128], num_classes=3, feat_channels=24)
    plain, e2e = YOLOXHead(**kw), YOLOXHead(**kw, end_to_end=True)
    for convs, pred in zip(e2e.pss_convs, e2e.pss_preds):
        assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(24, 24, (3, 3))] * 2
        assert all(isinstance(c.norm, torch.nn.BatchNorm2d) for c in convs)
        assert (pred.in_channels, pred.out_channels, pred.kernel_size) == (24, 1, (1, 1))
        assert torch.allclose(pred.bias, torch.tensor(-math.log(99.0)))
    extra = sum(p.numel() for p in e2e.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra == 3 * (2 * (9 * 24 * 24 + 2 * 24) + 24 + 1)
    outputs = e2e([torch.rand(1, c, s, s) for c, s in zip((32, 64, 128), (8, 4, 2))])
    assert len(outputs) == 4 and [x.shape for x in outputs[3]] == [(1, 1, s, s) for s in (8, 4, 2)]
    assert len(plain([torch.rand(1, c, s, s) for c, s in zip((32, 64, 128), (8, 4, 2))])) == 3


def test_end_to_end_model_needs_a_pss_head():
    backbone = YOLOPAFPN(CSPDarknet(0.33, 0.125), depth=0.33)
    channels = [s.channels for s in backbone.output_shape().values()]
    with pytest.raises(ValueError, match="end_to_end=True but its head has end_to_end=False"):
        YOLOX(backbone=backbone, head=YOLOXHead(in_channels=channels, num_classes=2), num_classes=2, end_to_end=True)
    model = _model()
    assert model.test_nms is False and _model(end_to_end=False).test_nms is True
    assert _model(test_nms=True).test_nms is True


# ------------------------------------------------------------------------------ stop-gradient
def _training_batch(num_images=2, size=128):
    from detectron2.structures import Boxes, Instances

    generator = torch.Generator().manual_seed(0)
    inputs = []
    for i in range(num_images):
        boxes = torch.tensor([[10.0, 12.0, 60.0, 50.0], [70.0, 64.0, 120.0, 118.0], [20.0, 80.0, 50.0, 120.0]])
        boxes = boxes[: 2 + i % 2]
        inst = Instances((size, size), gt_boxes=Boxes(boxes), gt_classes=torch.tensor([0, 1, 1])[: len(boxes)])
        image = torch.randint(0, 255, (3, size, size), dtype=torch.uint8, generator=generator)
        inputs.append({"image": image, "instances": inst})
    return inputs


def test_pss_loss_trains_the_pss_branch_only():
    model = _model().train()
    losses = model(_training_batch())
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_obj", "loss_l1", "loss_pss"}
    assert all(torch.isfinite(v) for v in losses.values())
    named = dict(model.named_parameters())
    is_pss = {n: n.startswith("head.pss_") for n in named}
    assert sum(is_pss.values()) == 3 * (2 * 3 + 2)  # per level: 2 x (conv, BN weight, bias), 1x1 (w, b)

    def grads(loss):
        model.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)
        return {n: (p.grad is not None and bool(p.grad.abs().sum() > 0)) for n, p in named.items()}

    pss = grads(losses["loss_pss"])
    assert not any(g for n, g in pss.items() if not is_pss[n])  # backbone, neck, stem, cls, reg, obj
    assert all(g for n, g in pss.items() if is_pss[n])
    detector = grads(sum(v for k, v in losses.items() if k != "loss_pss"))
    assert not any(g for n, g in detector.items() if is_pss[n])
    assert any(g for n, g in detector.items() if n.startswith("backbone."))


def test_detector_part_trains_exactly_as_plain_yolox():
    """With the stop-gradient, training the end-to-end model leaves the detector's weights where
    training plain YOLOX takes them: the PSS branch is only a reader."""
    e2e = _model().train()
    plain = _plain_copy(e2e).train()
    batch = _training_batch()
    for model in (e2e, plain):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, nesterov=True, weight_decay=5e-4)
        for _ in range(3):
            loss = sum(model(batch).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    e2e_state = e2e.state_dict()
    for name, value in plain.state_dict().items():
        assert torch.equal(value, e2e_state[name]), name


# ------------------------------------------------------------------------------ one-to-one targets
def _reference_costs(pred_boxes, cls_logits, obj_logits, points, strides, gt_boxes, gt_classes):
    """The SimOTA cost of every (gt, anchor) pair of one image, written out (2021 rule), and
    the candidate mask (in a box OR in a centre region of any gt)."""
    x, y = points[:, 0], points[:, 1]
    x1, y1, x2, y2 = (gt_boxes[:, i : i + 1] for i in range(4))
    in_box = (x > x1) & (y > y1) & (x < x2) & (y < y2)
    cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, 2.5 * strides
    in_ctr = (x > cx - r) & (y > cy - r) & (x < cx + r) & (y < cy + r)
    candidates = (in_box | in_ctr).any(dim=0)
    p = (cls_logits.sigmoid() * obj_logits.sigmoid()[:, None]).sqrt()[None].expand(len(gt_boxes), -1, -1)
    onehot = F.one_hot(gt_classes, p.shape[2]).float()[:, None].expand_as(p)
    cls_cost = F.binary_cross_entropy(p, onehot, reduction="none").sum(-1)  # (G, A)
    cost = cls_cost + 3.0 * -torch.log(box_iou(gt_boxes, pred_boxes) + 1e-8) + 1e5 * (~(in_box & in_ctr)).float()
    return cost.masked_fill(~candidates[None], math.inf)


def _random_predictions(gt_boxes, gt_classes, size=96, seed=0):
    model = _model(num_classes=3)
    shapes = [torch.zeros(1, 1, size // s, size // s) for s in model.strides]
    grid, strides = model.anchor_grid(shapes)
    generator = torch.Generator().manual_seed(seed)
    A = grid.shape[0]
    reg = torch.randn(1, A, 4, generator=generator) * 0.5
    reg[..., 2:] += torch.log(torch.tensor(3.0))
    return (
        model.decode_boxes(reg, grid, strides),
        torch.randn(1, A, 3, generator=generator),
        torch.randn(1, A, generator=generator),
        (grid + 0.5) * strides.unsqueeze(-1),
        strides,
        gt_boxes[None],
        gt_classes[None],
        torch.ones(1, len(gt_boxes), dtype=torch.bool),
    )


def test_one_to_one_takes_each_objects_lowest_cost_candidate():
    gt_boxes = torch.tensor([[4.0, 6.0, 30.0, 28.0], [50.0, 40.0, 90.0, 92.0], [60.0, 2.0, 80.0, 20.0]])
    gt_classes = torch.tensor([0, 2, 1])
    inputs = _random_predictions(gt_boxes, gt_classes)
    result = OneToOneMatcher()(*inputs)
    cost = _reference_costs(inputs[0][0], inputs[1][0], inputs[2][0], inputs[3], inputs[4], gt_boxes, gt_classes)
    best = cost.argmin(dim=1)
    assert len(set(best.tolist())) == 3  # no conflict in this case
    assert result.num_fg == 3
    assert torch.nonzero(result.fg_mask[0]).squeeze(1).tolist() == sorted(best.tolist())
    assert result.matched_gt[0, best].tolist() == [0, 1, 2]
    iou = box_iou(gt_boxes, inputs[0][0])[torch.arange(3), best]
    torch.testing.assert_close(result.matched_iou[0, best], iou)
    # ... which is one of the positives SimOTA gives the same object
    simota = SimOTAMatcher()(*inputs)
    assert simota.fg_mask[0, best].all() and simota.matched_gt[0, best].tolist() == [0, 1, 2]


def test_one_to_one_conflict_goes_to_the_lower_cost_and_the_other_takes_its_next_best():
    gt_boxes = torch.tensor([[20.0, 20.0, 60.0, 60.0], [20.0, 20.0, 60.0, 60.0], [21.0, 20.0, 60.0, 61.0]])
    gt_classes = torch.tensor([1, 1, 1])  # gts 0 and 1 identical: equal costs everywhere
    inputs = _random_predictions(gt_boxes, gt_classes, seed=1)
    result = OneToOneMatcher()(*inputs)
    cost = _reference_costs(inputs[0][0], inputs[1][0], inputs[2][0], inputs[3], inputs[4], gt_boxes, gt_classes)
    assert result.num_fg == 3
    assigned = {int(result.matched_gt[0, a]): int(a) for a in torch.nonzero(result.fg_mask[0]).squeeze(1)}
    assert sorted(assigned) == [0, 1, 2]
    # the reference greedy rounds: best free candidate, lowest cost (then lowest gt) wins
    expected, free, todo = {}, torch.ones(cost.shape[1], dtype=torch.bool), [0, 1, 2]
    while todo:
        proposals = {g: int(cost[g].masked_fill(~free, math.inf).argmin()) for g in todo}
        for g in sorted(todo, key=lambda g: (float(cost[g, proposals[g]]), g)):
            if free[proposals[g]]:  # else: lost to a lower cost, proposes again next round
                expected[g] = proposals[g]
                free[proposals[g]] = False
                todo.remove(g)
    assert assigned == expected
    assert assigned[0] == int(cost[0].argmin())  # the tie goes to the lower gt index


def test_greedy_one_to_one_rounds_and_unmatched_rows():
    inf = math.inf
    cost = torch.tensor(
        [
            [[1.0, 2.0, 9.0], [0.5, 3.0, 9.0], [inf, inf, inf]],  # row 1 takes col 0, row 0 then col 1
            # ties: lowest column, then lowest row; row 2 loses col 0, then col 1, takes col 2
            [[1.0, 1.0, 5.0], [1.0, 1.0, 5.0], [1.0, 2.0, 7.0]],
        ]
    )
    assert greedy_one_to_one(cost).tolist() == [[1, 0, -1], [0, 1, 2]]
    assert greedy_one_to_one(torch.tensor([[[1.0], [2.0]]])).tolist() == [[0, -1]]  # more rows than columns


def test_pss_loss_is_the_bce_of_the_pss_weighted_by_the_detached_product():
    generator = torch.Generator().manual_seed(0)
    B, A, C = 2, 50, 3
    cls = torch.randn(B, A, C, generator=generator) * 3
    obj = torch.randn(B, A, generator=generator) * 3
    z = (torch.randn(B, A, generator=generator) * 3).requires_grad_()
    fg = torch.zeros(B, A, dtype=torch.bool)
    fg[0, 3], fg[1, 7], fg[1, 9] = True, True, True
    matched = torch.zeros(B, A, dtype=torch.int64)
    matched[1, 9] = 1
    gt_classes = torch.tensor([[2, 0], [1, 0]])
    assignment = SimOTAAssignment(fg, matched, torch.zeros(B, A), 3)
    loss = pss_loss(z, cls.requires_grad_(), obj.requires_grad_(), assignment, gt_classes, normalizer=3)
    # class factor: the object's class at a positive, the best class elsewhere
    k = cls.argmax(-1)
    k[0, 3], k[1, 7], k[1, 9] = 2, 1, 0
    q = (obj.sigmoid() * cls.sigmoid().gather(-1, k[..., None])[..., 0]).detach()
    weight = torch.where(fg, torch.ones_like(q), q)
    expected = F.binary_cross_entropy_with_logits(z, fg.float(), weight=weight, reduction="sum") / 3
    torch.testing.assert_close(loss, expected)
    grad_z, grad_cls, grad_obj = torch.autograd.grad(loss, (z, cls, obj), allow_unused=True)
    # the gradient reaches the PSS logits only: q * sigma(z) at a negative, sigma(z) - 1 at a positive
    torch.testing.assert_close(grad_z, torch.where(fg, z.sigmoid() - 1, q * z.sigmoid()).detach() / 3)
    assert grad_cls is None and grad_obj is None
    logits = end_to_end_objectness_logits(obj, z)
    assert not logits.requires_grad
    torch.testing.assert_close(logits.sigmoid(), (obj.sigmoid() * z.sigmoid()).detach())


# ------------------------------------------------------------------------------ inference
def test_inference_ranks_by_obj_cls_pss_without_nms():
    """Two confident same-class boxes on one object: the plain model's NMS keeps one; the
    end-to-end model keeps what the PSS selects and needs no NMS."""
    model = _model(test_score_thresh=0.2).eval()
    levels = [(64 // s, 64 // s) for s in model.strides]
    cls = [torch.full((1, 2, h, w), -20.0) for h, w in levels]
    reg = [torch.zeros((1, 4, h, w)) for h, w in levels]
    obj = [torch.full((1, 1, h, w), -20.0) for h, w in levels]
    pss = [torch.full((1, 1, h, w), -20.0) for h, w in levels]
    for x in (0, 1):  # cells (0, 0) and (1, 0) of stride 8, the second one shifted onto the first
        cls[0][0, 0, 0, x] = 4.0
        obj[0][0, 0, 0, x] = 4.0
    reg[0][0, 0, 0, 1] = -1.0
    pss[0][0, 0, 0, 1] = 3.0  # the PSS selects cell (1, 0)
    features = [torch.zeros(1, 1, h, w) for h, w in levels]
    images = ImageList(torch.zeros(1, 3, 64, 64), [(64, 64)])
    with torch.no_grad():
        e2e = model.forward_inference(images, features, (cls, reg, obj, pss))[0]
        both = model.forward_inference(images, features, (cls, reg, obj, [p.fill_(3.0) for p in pss]))[0]
        model.test_nms = True
        nms = model.forward_inference(images, features, (cls, reg, obj, pss))[0]
    s = torch.sigmoid(torch.tensor(4.0)) ** 2 * torch.sigmoid(torch.tensor(3.0))
    torch.testing.assert_close(e2e.scores, s[None])
    torch.testing.assert_close(e2e.pred_boxes.tensor, torch.tensor([[-4.0, -4.0, 4.0, 4.0]]))
    assert len(both) == 2  # identical boxes, both kept: no NMS
    assert len(nms) == 1


# ------------------------------------------------------------------------------ overfit
ITERS = 400  # 250 reached AP50 69 on an AVX-512 CPU (100 on AVX2): chaotic; 400 passes on both


def _duplicate_pairs(instances):
    """Same-class pairs with IoU > DUPLICATE_IOU among the detections with score >= SCORE_THRESH."""
    inst = instances[instances.scores >= SCORE_THRESH]
    iou = box_iou(inst.pred_boxes.tensor, inst.pred_boxes.tensor)
    same = inst.pred_classes[:, None] == inst.pred_classes[None, :]
    return len(inst), int(torch.triu((iou > DUPLICATE_IOU) & same, diagonal=1).sum())


def _evaluate(model, name, dicts, tmp_path):
    loader = build_yolox_test_loader(name, mapper=YOLOXTestMapper(image_size=(SIZE, SIZE)))
    evaluator = FasterCOCOEvaluator(name, output_dir=str(tmp_path), allow_cached_coco=False)
    ap50 = inference_on_dataset(model, loader, evaluator)["bbox"]["AP50"]
    mapper = YOLOXTestMapper(image_size=(SIZE, SIZE))
    kept = pairs = 0
    with torch.no_grad():
        for d in dicts:
            k, p = _duplicate_pairs(model([mapper(d)])[0]["instances"])
            kept, pairs = kept + k, pairs + p
    return ap50, kept, pairs


@pytest.fixture(scope="module")
def overfit(tmp_path_factory):
    """A small end-to-end YOLOX trained on 4 synthetic images (2-3 shapes each), no augmentation."""
    tmp = tmp_path_factory.mktemp("e2e_overfit")
    dicts = make_shapes_dataset(str(tmp / "images"), num_images=4, size=SIZE)
    register_shapes_dataset("yolox_d2_test_e2e_shapes", dicts)
    dataset = MosaicMixupDataset(
        dicts, image_size=(SIZE, SIZE), enable_mosaic=False, hsv_prob=0.0, flip_prob=0.0, seed=0
    )
    batch = [dataset[i] for i in range(len(dicts))]
    model = _model(test_square_size=SIZE, test_score_thresh=0.001).train()
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    lr = 0.04
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, momentum=0.9, nesterov=True,
    )  # fmt: skip
    warmup = ITERS // 10
    for it in range(ITERS):
        # the YOLOX schedule: quadratic warm-up, cosine down to 5 %
        progress = (it - warmup) / (ITERS - warmup)
        factor = ((it + 1) / warmup) ** 2 if it < warmup else 0.05 + 0.475 * (1 + math.cos(math.pi * progress))
        for group in optimizer.param_groups:
            group["lr"] = lr * factor
        loss = sum(model(batch).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return model, dicts, "yolox_d2_test_e2e_shapes", tmp


def test_end_to_end_overfits_without_nms_and_leaves_no_duplicates(overfit):
    model, dicts, name, tmp = overfit
    assert model.test_nms is False
    ap50, kept, pairs = _evaluate(model, name, dicts, tmp / "e2e")
    assert ap50 >= 90.0
    num_objects = sum(len(d["annotations"]) for d in dicts)
    assert kept >= num_objects * 0.8  # it does detect (no empty pass)
    assert pairs <= 0.05 * kept


def test_plain_scores_without_nms_keep_duplicates(overfit):
    """The same detector ranked by objectness x class (the PSS dropped) without NMS: many
    duplicates, i.e. the PSS branch is what removes them."""
    model, dicts, name, tmp = overfit
    plain = _plain_copy(model, test_square_size=SIZE, test_score_thresh=0.001, test_nms=False).eval()
    _, kept, pairs = _evaluate(plain, name, dicts, tmp / "plain")
    assert pairs > 0.05 * kept
    plain.test_nms = True
    _, kept, pairs = _evaluate(plain, name, dicts, tmp / "plain_nms")
    assert pairs <= 0.05 * kept  # which NMS removes


def _detection_rows(batch_index, instances):
    """Instances as the export's (K, 7) rows [batch_index, x1, y1, x2, y2, score, class]."""
    index = torch.full((len(instances), 1), float(batch_index))
    scores, classes = instances.scores[:, None], instances.pred_classes[:, None].float()
    return torch.cat((index, instances.pred_boxes.tensor, scores, classes), dim=1)


def test_end_to_end_onnx_export_matches_pytorch(overfit, tmp_path):
    pytest.importorskip("onnxruntime", reason="export tests need `pip install onnx onnxruntime` (the dev extras)")
    from yolox_d2.export import (
        YOLOXExportWrapper,
        decode_raw_predictions,
        detections_from_predictions,
        export_onnx,
        letterbox_batch,
        onnxruntime_session,
        run_onnx,
    )
    import cv2

    model, dicts, _, _ = overfit
    images = [cv2.imread(d["file_name"], cv2.IMREAD_COLOR) for d in dicts]
    x = torch.from_numpy(letterbox_batch(images, SIZE)[0])
    decoded = YOLOXExportWrapper(model, "decoded")
    detections = YOLOXExportWrapper(model, "nms", score_thresh=SCORE_THRESH)
    with torch.no_grad():
        expected = decoded(x)
        raw = YOLOXExportWrapper(model, "raw")(x)
        expected_detections = detections(x)
        # the model's own inference (forward_inference: no clipping) at the same threshold
        model.test_score_thresh = SCORE_THRESH
        try:
            features = model.backbone(x)
            features = [features[f] for f in model.head_in_features]
            own = model.forward_inference(ImageList(x, [(SIZE, SIZE)] * len(x)), features, model.head(features))
        finally:
            model.test_score_thresh = 0.001
    assert raw.shape[-1] == 6 + NUM_CLASSES  # [box, obj, classes, pss]
    levels = YOLOXExportWrapper(model, "raw", raw_layout="levels")
    with torch.no_grad():
        flat = torch.cat([lv.flatten(2) for lv in levels(x)], dim=2).transpose(1, 2)
    torch.testing.assert_close(flat, raw, atol=1e-6, rtol=0)
    assert "pss logit" in levels.describe() and "objectness x pss" in decoded.describe()
    assert "no NMS" in detections.describe()
    torch.testing.assert_close(decode_raw_predictions(model, raw, (SIZE, SIZE)), expected, atol=1e-4, rtol=1e-5)
    rows = torch.cat([_detection_rows(i, r) for i, r in enumerate(own)])
    torch.testing.assert_close(expected_detections, rows, atol=1e-4, rtol=1e-5)

    def run(wrapper, name):
        session = onnxruntime_session(export_onnx(wrapper, tmp_path / name, sample_size=SIZE), num_threads=1)
        return run_onnx(session, x)[0]

    got = run(decoded, "e2e_decoded.onnx")
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4, rtol=1e-4)
    from_decoded = detections_from_predictions(
        torch.from_numpy(got), score_thresh=SCORE_THRESH, nms_thresh=0.65, max_detections=100, apply_nms=False
    )
    torch.testing.assert_close(from_decoded, rows, atol=1e-3, rtol=1e-4)
    got = run(detections, "e2e_detections.onnx")
    np.testing.assert_allclose(got, rows.numpy(), atol=1e-3, rtol=1e-4)
