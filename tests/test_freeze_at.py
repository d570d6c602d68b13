"""``freeze_at`` of CSPDarknet / Darknet53: frozen stages keep their weights and BN statistics."""
import cv2
import pytest
import torch

from detectron2.config import LazyConfig, get_cfg, instantiate
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.structures import Boxes, BoxMode, Instances

from yolox_d2.config import add_yolox_config
from yolox_d2.modeling import Darknet53, build_cspdarknet_backbone, build_darknet53_backbone

from .synthetic_shapes import make_shapes_dataset


def _nano(repo_root, overrides=()):
    cfg = LazyConfig.load(str(repo_root / "configs" / "yolox_nano.py"))
    cfg = LazyConfig.apply_overrides(cfg, ["model.num_classes=2", *overrides])
    torch.manual_seed(0)
    return cfg, instantiate(cfg.model)


def _batch(tmp_path, size=128):
    inputs = []
    for d in make_shapes_dataset(str(tmp_path), num_images=2, size=size):
        image = cv2.imread(d["file_name"], cv2.IMREAD_COLOR)
        instances = Instances((size, size))
        boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in d["annotations"]]
        instances.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
        instances.gt_classes = torch.tensor([a["category_id"] for a in d["annotations"]])
        inputs.append({"image": torch.from_numpy(image.transpose(2, 0, 1).copy()), "instances": instances})
    return inputs


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_frozen_stages_are_bit_identical_after_training(repo_root, tmp_path):
    cfg, model = _nano(repo_root, ["model.backbone.bottom_up.freeze_at=2"])
    bottom_up = model.backbone.bottom_up
    frozen, trained = ("stem", "dark2"), ("dark3", "dark4", "dark5")
    for name in frozen:
        stage = getattr(bottom_up, name)
        assert all(not p.requires_grad for p in stage.parameters())
        assert any(isinstance(m, FrozenBatchNorm2d) for m in stage.modules())
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in stage.modules())
    for name in trained:
        assert all(p.requires_grad for p in getattr(bottom_up, name).parameters())
        assert not any(isinstance(m, FrozenBatchNorm2d) for m in getattr(bottom_up, name).modules())

    cfg.optimizer.params.model = model
    cfg.optimizer.lr = 0.05
    optimizer = instantiate(cfg.optimizer)
    before = _snapshot(model)
    batch = _batch(tmp_path)
    model.train()
    for _ in range(3):
        losses = model(batch)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    after = _snapshot(model)

    for key in before:
        if key.startswith(("backbone.bottom_up.stem.", "backbone.bottom_up.dark2.")):
            assert torch.equal(before[key], after[key]), key
    frozen_keys = [k for k in before if k.startswith("backbone.bottom_up.stem.")]
    assert any(k.endswith("norm.running_mean") for k in frozen_keys)
    for prefix in ("backbone.bottom_up.dark3.", "head.", "backbone.bottom_up.dark5."):
        weights = [k for k in before if k.startswith(prefix) and k.endswith(".weight")]
        assert weights and any(not torch.equal(before[k], after[k]) for k in weights), prefix
        stats = [k for k in before if k.startswith(prefix) and k.endswith("running_mean")]
        assert stats and any(not torch.equal(before[k], after[k]) for k in stats), prefix


def test_default_freezes_nothing(repo_root):
    _, model = _nano(repo_root)
    assert all(p.requires_grad for p in model.parameters())
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())


def test_freeze_at_range_is_checked():
    with pytest.raises(ValueError, match=r"freeze_at must be in 0\.\.5"):
        Darknet53(21, freeze_at=6)


def test_darknet53_freeze_at():
    model = Darknet53(21, stem_channels=8, freeze_at=3)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.split(".")[0] in ("stem", "dark2", "dark3") for n in frozen)
    assert all(p.requires_grad for n, p in model.named_parameters() if n.split(".")[0] in ("dark4", "dark5"))
    before = _snapshot(model.dark3)
    model.train()
    sum(v.sum() for v in model(torch.rand(2, 3, 64, 64)).values()).backward()
    after = _snapshot(model.dark3)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(k.endswith("num_batches_tracked") for k in before)  # same buffers as BatchNorm2d


@pytest.mark.parametrize("node,builder", [("CSPDARKNET", build_cspdarknet_backbone), ("DARKNET", build_darknet53_backbone)])
def test_yacs_builders_read_freeze_at(node, builder):
    cfg = add_yolox_config(get_cfg())
    assert getattr(cfg.MODEL, node).FREEZE_AT == 0
    getattr(cfg.MODEL, node).FREEZE_AT = 1
    if node == "CSPDARKNET":
        cfg.MODEL.CSPDARKNET.update(DEPTH=0.33, WIDTH=0.125)
    else:
        cfg.MODEL.DARKNET.update(DEPTH=21, STEM_CHANNELS=8)
    backbone = builder(cfg, ShapeSpec(channels=3))
    assert all(not p.requires_grad for p in backbone.stem.parameters())
    assert all(p.requires_grad for p in backbone.dark2.parameters())


def test_official_converter_maps_a_frozen_model(repo_root):
    pytest.importorskip("yolox", reason="the official yolox==0.3.0 reference is installed by `make test`")
    from yolox_d2.checkpoint import convert_official_state_dict, official_key_map

    from .official_reference import build_official_model

    _, plain = _nano(repo_root, ["model.num_classes=80"])
    _, frozen = _nano(repo_root, ["model.num_classes=80", "model.backbone.bottom_up.freeze_at=5"])
    assert official_key_map(frozen) == official_key_map(plain)
    official = build_official_model("yolox-nano", seed=2)
    frozen.load_state_dict(convert_official_state_dict(official.state_dict(), frozen), strict=True)
    theirs = official.state_dict()
    for ours, key in official_key_map(frozen).items():
        assert torch.equal(frozen.state_dict()[ours], theirs[key]), ours
