"""Backbones, necks, head and the YOLOX meta-architecture as Detectron2 components."""
import pytest
import torch
import torchvision

from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY, build_model
from detectron2.modeling.backbone import BasicStem, ResNet
from detectron2.structures import ImageList, Instances

import yolox_d2  # noqa: F401
from yolox_d2.config import add_yolox_config
from yolox_d2.layers import ConvBNAct
from yolox_d2.modeling import YOLOX, CSPDarknet, Darknet53, YOLOFPN, YOLOPAFPN, YOLOXHead
from yolox_d2.modeling.postprocessing import (
    batched_nms_per_image,
    detection_scores,
    detections_table,
    detections_to_instances,
    select_detections,
)

from .official_reference import build_yolox_d2_model


def _check_output_shape(backbone, size=(96, 128)):
    out = backbone(torch.rand(1, 3, *size))
    shapes = backbone.output_shape()
    assert list(out) == list(shapes)
    for name, spec in shapes.items():
        assert out[name].shape[1] == spec.channels, name
        assert out[name].shape[-2:] == (size[0] // spec.stride, size[1] // spec.stride), name


@pytest.mark.parametrize(
    "backbone",
    [
        lambda: CSPDarknet(0.33, 0.25, depthwise=True),
        lambda: CSPDarknet(0.33, 0.5, out_features=["stem", "dark2", "dark5"], activation="relu"),
        lambda: Darknet53(21, stem_channels=8),
        lambda: YOLOPAFPN(CSPDarknet(0.33, 0.25), depth=0.33),
        lambda: YOLOPAFPN(CSPDarknet(0.33, 0.25), out_channels=[32, 48, 64], depth=0.33, depthwise=True),
        lambda: YOLOFPN(Darknet53(21, stem_channels=8)),
    ],
)
def test_output_shape_matches_outputs(backbone):
    _check_output_shape(backbone().eval())


def test_pafpn_wraps_a_detectron2_resnet():
    resnet = ResNet(
        BasicStem(3, 64, norm="BN"),
        ResNet.make_default_stages(18, norm="BN"),
        out_features=["res3", "res4", "res5"],
    )
    neck = YOLOPAFPN(resnet, in_features=["res3", "res4", "res5"], out_channels=[32, 64, 128], depth=0.33)
    assert {k: (v.channels, v.stride) for k, v in neck.output_shape().items()} == {
        "p3": (32, 8), "p4": (64, 16), "p5": (128, 32)
    }
    _check_output_shape(neck.eval())


def test_neck_rejects_missing_or_misordered_features():
    with pytest.raises(ValueError, match="res3"):
        YOLOPAFPN(CSPDarknet(0.33, 0.25), in_features=["res3", "dark4", "dark5"])
    with pytest.raises(ValueError, match="strides"):
        YOLOFPN(
            Darknet53(21, stem_channels=8, out_features=["dark2", "dark4", "dark5"]),
            in_features=["dark2", "dark4", "dark5"],
        )


def test_head_channels_must_match_backbone():
    backbone = YOLOPAFPN(CSPDarknet(0.33, 0.25), depth=0.33)
    with pytest.raises(ValueError, match="in_channels"):
        YOLOX(backbone=backbone, head=YOLOXHead(in_channels=[128, 256, 512], num_classes=3), num_classes=3)


def _tiny_model(**kw):
    backbone = YOLOPAFPN(CSPDarknet(0.33, 0.125), depth=0.33)
    channels = [s.channels for s in backbone.output_shape().values()]
    head = YOLOXHead(in_channels=channels, num_classes=3, feat_channels=16)
    return YOLOX(backbone=backbone, head=head, num_classes=3, **kw).eval()


def test_inference_returns_instances_in_original_coordinates():
    torch.manual_seed(0)
    model = _tiny_model(test_score_thresh=0.0, max_detections_per_image=7)
    with torch.no_grad():
        for conv in list(model.head.cls_preds) + list(model.head.obj_preds):
            conv.bias.fill_(2.0)
        out = model([
            {"image": torch.randint(0, 255, (3, 64, 96), dtype=torch.uint8), "height": 128, "width": 192},
            {"image": torch.randint(0, 255, (3, 96, 64), dtype=torch.uint8)},
        ])
    assert len(out) == 2
    first, second = out[0]["instances"], out[1]["instances"]
    assert isinstance(first, Instances)
    assert first.image_size == (128, 192) and second.image_size == (96, 64)
    assert len(first) == 7 and len(second) == 7
    for inst in (first, second):
        assert set(inst.get_fields()) == {"pred_boxes", "scores", "pred_classes"}
        b = inst.pred_boxes.tensor
        h, w = inst.image_size
        assert (b[:, 0::2] >= 0).all() and (b[:, 0::2] <= w).all()
        assert (b[:, 1::2] >= 0).all() and (b[:, 1::2] <= h).all()
        assert (inst.scores[:-1] >= inst.scores[1:]).all()
        assert inst.pred_classes.min() >= 0 and inst.pred_classes.max() < 3


def _two_overlapping_predictions(model, size=64):
    """Hand-made head outputs: two confident boxes with the same centre, classes 0 and 1."""
    levels = [(size // s, size // s) for s in model.strides]
    cls = [torch.full((1, 3, h, w), -20.0) for h, w in levels]
    reg = [torch.zeros((1, 4, h, w)) for h, w in levels]
    obj = [torch.full((1, 1, h, w), -20.0) for h, w in levels]
    cls[0][0, 0, 0, 0] = 5.0  # cell (x=0, y=0): class 0
    cls[0][0, 1, 0, 1] = 4.0  # cell (x=1, y=0): class 1, shifted one cell left onto (0, 0)
    reg[0][0, 0, 0, 1] = -1.0
    obj[0][0, 0, 0, 0] = obj[0][0, 0, 0, 1] = 5.0
    features = [torch.zeros((1, 1, h, w)) for h, w in levels]
    images = ImageList(torch.zeros((1, 3, size, size)), [(size, size)])
    return images, features, (cls, reg, obj)


def test_class_aware_and_class_agnostic_nms():
    model = _tiny_model(test_score_thresh=0.5, test_nms_thresh=0.65)
    images, features, predictions = _two_overlapping_predictions(model)
    per_class = model.forward_inference(images, features, predictions)[0]
    assert per_class.pred_classes.tolist() == [0, 1]
    torch.testing.assert_close(per_class.pred_boxes.tensor[0], torch.tensor([-4.0, -4.0, 4.0, 4.0]))  # centre = grid * stride
    torch.testing.assert_close(per_class.pred_boxes.tensor[1], torch.tensor([-4.0, -4.0, 4.0, 4.0]))  # centre = grid * stride
    model.test_class_agnostic_nms = True
    agnostic = model.forward_inference(images, features, predictions)[0]
    assert agnostic.pred_classes.tolist() == [0]


def test_score_threshold_and_max_detections():
    model = _tiny_model(test_score_thresh=0.5)
    images, features, predictions = _two_overlapping_predictions(model)
    expected = torch.sigmoid(torch.tensor(5.0)) * torch.sigmoid(torch.tensor([5.0, 4.0]))
    torch.testing.assert_close(model.forward_inference(images, features, predictions)[0].scores, expected)
    model.test_score_thresh = float(expected[1]) + 1e-4
    assert len(model.forward_inference(images, features, predictions)[0]) == 1
    model.test_score_thresh = 0.5
    model.max_detections_per_image = 1
    assert len(model.forward_inference(images, features, predictions)[0]) == 1
    model.max_detections_per_image = 0  # no cap, like the export's max_detections
    assert len(model.forward_inference(images, features, predictions)[0]) == 2


def test_select_detections_per_image_per_class_nms_best_first_capped():
    """The post-processing shared by forward_inference and the export, against its definition."""
    g = torch.Generator().manual_seed(0)
    centers = torch.rand(3, 80, 2, generator=g) * 40  # crowded: NMS has work to do
    sizes = torch.rand(3, 80, 2, generator=g) * 20 + 5
    boxes = torch.cat((centers - sizes / 2, centers + sizes / 2), dim=-1)
    scores, classes = detection_scores(torch.rand(3, 80, generator=g), torch.rand(3, 80, 4, generator=g))
    scores[1] = 0.0  # an image without candidates
    for cap, agnostic in ((4, False), (0, True), (1000, False)):
        batch, anchor = select_detections(
            boxes,
            scores,
            classes,
            num_classes=4,
            score_thresh=0.2,
            nms_thresh=0.5,
            max_detections=cap,
            class_agnostic=agnostic,
            nms=batched_nms_per_image,
        )
        rows = []
        for b in range(3):
            keep = torch.nonzero(scores[b] >= 0.2)[:, 0]
            groups = torch.zeros_like(classes[b][keep]) if agnostic else classes[b][keep]
            kept = keep[torchvision.ops.batched_nms(boxes[b][keep], scores[b][keep], groups, 0.5)]
            kept = kept[scores[b][kept].argsort(descending=True)][: cap if cap > 0 else None]
            rows += [[b, *boxes[b, k].tolist(), float(scores[b, k]), float(classes[b, k])] for k in kept]
        expected = torch.tensor(rows).reshape(-1, 7)
        assert len(expected) >= 8 and (expected[:, 0] == 1).sum() == 0
        table = detections_table(boxes, scores, classes, batch, anchor)
        torch.testing.assert_close(table, expected, atol=0, rtol=0)
        instances = detections_to_instances([(40, 50)] * 3, boxes, scores, classes, batch, anchor)
        for b, inst in enumerate(instances):
            rows_b = table[table[:, 0] == b]
            assert inst.image_size == (40, 50) and len(inst) == len(rows_b)
            assert torch.equal(inst.pred_boxes.tensor, rows_b[:, 1:5])
            assert torch.equal(inst.scores, rows_b[:, 5])
            assert inst.pred_classes.dtype == torch.int64 and torch.equal(inst.pred_classes.float(), rows_b[:, 6])


def test_normalize_images_and_flatten_predictions():
    model = _tiny_model(pixel_mean=[10.0, 20.0, 30.0], pixel_std=[2.0, 4.0, 5.0])
    x = torch.full((1, 3, 2, 2), 40.0)
    assert model.normalize_images(x)[0, :, 0, 0].tolist() == [15.0, 5.0, 2.0]
    identity = _tiny_model()
    assert identity.normalize_images(x) is x
    images, features, predictions = _two_overlapping_predictions(identity)
    cls, reg, obj = identity.flatten_predictions(predictions)
    grid, _ = identity.anchor_grid(features)
    assert cls.shape == (1, len(grid), 3) and reg.shape == (1, len(grid), 4) and obj.shape == (1, len(grid))
    assert cls[0, 0].tolist() == [5.0, -20.0, -20.0] and cls[0, 1, 1] == 4.0 and reg[0, 1, 0] == -1.0
    assert grid[1].tolist() == [1.0, 0.0]


def test_preprocess_pads_with_114_then_normalises():
    model = _tiny_model(pixel_mean=[10.0, 20.0, 30.0], pixel_std=[2.0, 2.0, 2.0], test_square_size=96)
    image = torch.zeros((3, 40, 70), dtype=torch.uint8)
    images = model.preprocess_image([{"image": image}])
    assert images.tensor.shape == (1, 3, 96, 96)
    assert images.image_sizes == [(40, 70)]
    expected_pad = (114.0 - torch.tensor([10.0, 20.0, 30.0])) / 2.0
    torch.testing.assert_close(images.tensor[0, :, 50, 80], expected_pad)
    torch.testing.assert_close(images.tensor[0, :, 0, 0], -torch.tensor([10.0, 20.0, 30.0]) / 2.0)
    model.test_square_size = 0
    assert model.preprocess_image([{"image": image}]).tensor.shape == (1, 3, 64, 96)  # /32


@pytest.mark.parametrize("variant", ["nano", "darknet53"])
def test_fuse_folds_batchnorm_and_keeps_outputs(repo_root, variant):
    torch.manual_seed(0)
    model = build_yolox_d2_model(repo_root, variant, test_score_thresh=0.0).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
        x = torch.rand(1, 3, 160, 192) * 255
        before = model.head(list(model.backbone(x).values()))
        assert model.fuse() is model
        after = model.head(list(model.backbone(x).values()))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert all(m.norm is None for m in model.modules() if isinstance(m, ConvBNAct))
    for a_list, b_list in zip(before, after):
        for a, b in zip(a_list, b_list):
            torch.testing.assert_close(b, a, atol=1e-3, rtol=1e-4)


def test_conv_bn_act_folds_fixed_norms_on_the_fly_and_uses_batch_stats_in_training():
    from detectron2.layers import FrozenBatchNorm2d

    torch.manual_seed(0)
    layer = ConvBNAct(4, 6, 3)
    with torch.no_grad():
        layer.norm.running_mean.uniform_(-1, 1)
        layer.norm.running_var.uniform_(0.5, 2)
        layer.norm.weight.uniform_(0.5, 1.5)
        layer.norm.bias.uniform_(-1, 1)
    x = torch.randn(2, 4, 9, 7)

    def reference(module, training):
        y = torch.nn.functional.conv2d(x, module.weight, None, 1, 1)
        n = module.norm
        y = torch.nn.functional.batch_norm(
            y, n.running_mean.clone(), n.running_var.clone(), n.weight, n.bias, training, 0.0, n.eps
        )
        return torch.nn.functional.silu(y)

    layer.eval()
    calls = []
    handle = layer.norm.register_forward_hook(lambda *a: calls.append(1))
    torch.testing.assert_close(layer(x), reference(layer, False), atol=1e-5, rtol=1e-5)
    assert calls == []  # folded into the convolution: the BatchNorm module did not run
    layer.train()
    before = layer.norm.running_mean.clone()
    torch.testing.assert_close(layer(x), reference(layer, True), atol=1e-5, rtol=1e-5)
    assert calls == [1] and not torch.equal(before, layer.norm.running_mean)  # batch statistics
    handle.remove()

    frozen = ConvBNAct(4, 6, 3, norm="FrozenBN").train()
    assert isinstance(frozen.norm, FrozenBatchNorm2d)
    with torch.no_grad():
        frozen.norm.running_mean.uniform_(-1, 1)
        frozen.norm.weight.uniform_(0.5, 1.5)
    out = frozen(x)
    torch.testing.assert_close(out, reference(frozen, False), atol=1e-5, rtol=1e-5)
    out.sum().backward()
    assert frozen.weight.grad is not None and frozen.weight.grad.abs().sum() > 0


def test_channels_last_weights_inputs_and_fuse_keep_the_memory_format():
    torch.manual_seed(0)
    nhwc = _tiny_model(channels_last=True)
    nchw = _tiny_model(channels_last=False)
    nchw.load_state_dict(nhwc.state_dict())
    convs = [m for m in nhwc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert all(
        m.weight.is_contiguous() for m in nchw.modules() if isinstance(m, torch.nn.Conv2d)
    )
    captured = []
    nhwc.backbone.register_forward_pre_hook(lambda m, args: captured.append(args[0]))
    x = torch.rand(2, 3, 64, 96) * 255
    with torch.no_grad():
        _, a = nhwc.run_network(x)
        _, b = nchw.run_network(x)
        assert captured[0].is_contiguous(memory_format=torch.channels_last)
        for a_list, b_list in zip(a, b):
            for p, q in zip(a_list, b_list):
                torch.testing.assert_close(p, q, atol=1e-4, rtol=1e-5)
        nhwc.fuse()
        assert all(
            m.weight.is_contiguous(memory_format=torch.channels_last)
            for m in nhwc.modules()
            if isinstance(m, ConvBNAct)
        )
        _, c = nhwc.run_network(x)
    for a_list, c_list in zip(a, c):
        for p, q in zip(a_list, c_list):
            torch.testing.assert_close(q, p, atol=1e-3, rtol=1e-4)
    # The yacs builder passes the option through.
    cfg = get_cfg()
    add_yolox_config(cfg)
    assert cfg.MODEL.YOLOX.CHANNELS_LAST is True


def test_fuse_refuses_training_mode():
    model = _tiny_model().train()
    with pytest.raises(RuntimeError, match="eval"):
        model.fuse()


def test_registered_in_detectron2_registries():
    assert META_ARCH_REGISTRY.get("YOLOX") is YOLOX
    for name in (
        "build_cspdarknet_backbone",
        "build_darknet53_backbone",
        "build_yolox_pafpn_backbone",
        "build_yolox_yolofpn_backbone",
    ):
        assert BACKBONE_REGISTRY.get(name) is not None


@pytest.mark.parametrize(
    "backbone_name, expected", [("build_yolox_pafpn_backbone", YOLOPAFPN), ("build_yolox_yolofpn_backbone", YOLOFPN)]
)
def test_build_model_from_yacs_config(backbone_name, expected):
    cfg = get_cfg()
    add_yolox_config(cfg)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = "YOLOX"
    cfg.MODEL.BACKBONE.NAME = backbone_name
    cfg.MODEL.PIXEL_MEAN = [0.0, 0.0, 0.0]
    cfg.MODEL.PIXEL_STD = [1.0, 1.0, 1.0]
    cfg.MODEL.CSPDARKNET.DEPTH = cfg.MODEL.YOLOX_FPN.DEPTH = 0.33
    cfg.MODEL.CSPDARKNET.WIDTH = 0.125
    cfg.MODEL.DARKNET.DEPTH = 21
    cfg.MODEL.DARKNET.STEM_CHANNELS = 8
    cfg.MODEL.YOLOX.HEAD_CHANNELS = 16
    cfg.MODEL.YOLOX.NUM_CLASSES = 5
    model = build_model(cfg).eval()
    assert isinstance(model, YOLOX) and isinstance(model.backbone, expected)
    assert model.head.cls_preds[0].out_channels == 5
    with torch.no_grad():
        out = model([{"image": torch.zeros((3, 64, 64), dtype=torch.uint8)}])
    assert isinstance(out[0]["instances"], Instances)
