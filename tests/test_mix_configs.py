"""
configs/mix/: YOLOX parts composed with Detectron2 models (ResNet / RegNet under the YOLOX head,
CSPDarknet under RetinaNet / FCOS, Detectron2's FPN under the YOLOX head).

Each config is checked as written (meta-architecture, backbone, feature names / channels /
strides, pixel statistics, normalisation layers), then trained for one iteration and evaluated
once through the training tool's ``do_train`` (:mod:`yolox_d2.engine.defaults`) on two real tree tiles, with
only sizes, batch, iterations and data shrunk.
"""
import importlib.util
import json
import math
from collections import namedtuple

import pytest
import torch
from torch import nn

from detectron2.config import LazyConfig, instantiate
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import DatasetEvaluator, DatasetEvaluators
from detectron2.layers import FrozenBatchNorm2d
from detectron2.modeling import FCOS, FPN, ResNet, RetinaNet
from detectron2.modeling.backbone import RegNet
from detectron2.structures import Boxes, Instances

import yolox_d2  # noqa: F401  (registers the datasets)
import yolox_d2.engine.defaults as train_defaults
from yolox_d2.modeling import YOLOX, CSPDarknet, YOLOPAFPN, YOLOXHead
from yolox_d2.solver import resolve_schedule

needs_deepforest = pytest.mark.skipif(
    importlib.util.find_spec("deepforest") is None, reason="the tree tiles need deepforest==2.1.0"
)

IMAGENET_BGR = [103.530, 116.280, 123.675]
RAW = ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])  # CSPDarknet / YOLOX: raw 0-255 BGR
Expected = namedtuple("Expected", "meta_arch neck bottom_up channels pixel_stats bottom_up_norm")
EXPECTED = {
    "yolox_head_resnet50": Expected(
        YOLOX, YOLOPAFPN, ResNet, (256, 512, 1024), (IMAGENET_BGR, [1.0] * 3), FrozenBatchNorm2d
    ),
    "yolox_head_regnet": Expected(
        YOLOX, YOLOPAFPN, RegNet, (128, 256, 512), (IMAGENET_BGR, [57.375, 57.120, 58.395]), FrozenBatchNorm2d
    ),
    "retinanet_cspdarknet": Expected(RetinaNet, YOLOPAFPN, CSPDarknet, (256,) * 3, RAW, nn.BatchNorm2d),
    "fcos_cspdarknet": Expected(FCOS, YOLOPAFPN, CSPDarknet, (256,) * 3, RAW, nn.BatchNorm2d),
    "yolox_cspdarknet_fpn": Expected(YOLOX, FPN, CSPDarknet, (128,) * 3, RAW, nn.BatchNorm2d),
}
LOSSES = {
    YOLOX: {"loss_cls", "loss_box_reg", "loss_obj", "loss_l1"},
    RetinaNet: {"loss_cls", "loss_box_reg"},
    FCOS: {"loss_fcos_cls", "loss_fcos_loc", "loss_fcos_ctr"},
}
SIZE = 128
TRAIN, VAL = "yolox_d2_mix_trees_train", "yolox_d2_mix_trees_val"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a busy shared CPU, OpenMP threads waiting for each other make
    these small convolutions tens of times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _load_cfg(repo_root, name):
    return LazyConfig.load(str(repo_root / "configs" / "mix" / f"{name}.py"))


def _norm_types(module):
    return {type(m) for m in module.modules() if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d))}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_config_composes_the_intended_model(repo_root, name):
    meta, neck, bottom_up, channels, (mean, std), norm = EXPECTED[name]
    assert sorted(p.stem for p in (repo_root / "configs" / "mix").glob("*.py")) == sorted(EXPECTED)
    cfg = _load_cfg(repo_root, name)
    for key in ("dataloader", "optimizer", "lr_multiplier", "train"):
        assert key in cfg, key
    model = instantiate(cfg.model)

    assert type(model) is meta and type(model.backbone) is neck
    assert type(model.backbone.bottom_up) is bottom_up
    shapes = model.backbone.output_shape()
    assert list(model.head_in_features) == ["p3", "p4", "p5"]
    assert [(shapes[f].channels, shapes[f].stride) for f in model.head_in_features] == list(
        zip(channels, (8, 16, 32))
    )
    assert model.backbone.size_divisibility == 32
    assert model.pixel_mean.flatten().tolist() == pytest.approx(mean)
    assert model.pixel_std.flatten().tolist() == pytest.approx(std)
    # the data pipeline (Mosaic / letterbox) is BGR: so must be the model
    assert getattr(model, "input_format", "BGR") == "BGR"
    assert _norm_types(model.backbone.bottom_up) == {norm}
    if norm is FrozenBatchNorm2d:  # pretrained: stem and first stage frozen
        assert not any(p.requires_grad for p in model.backbone.bottom_up.stem.parameters())
    if meta is YOLOX:
        assert isinstance(model.head, YOLOXHead) and model.head.in_channels == list(channels)
    if meta is RetinaNet:
        assert model.anchor_generator.strides == [8, 16, 32]
        assert model.anchor_generator.num_cell_anchors == [9, 9, 9]
    # the YOLOX recipe's schedule and data come along (the schedule resolved for COCO's length)
    resolve_schedule(cfg, dataset_length=118287).apply(cfg)
    assert cfg.train.max_iter > 0 and cfg.dataloader.train.dataset.image_size[0] % 32 == 0


@pytest.fixture(scope="module")
def tiny_trees():
    """Two real tree tiles for training, two for evaluation."""
    for name, source in ((TRAIN, "deepforest_trees_train"), (VAL, "deepforest_trees_val")):
        if name not in DatasetCatalog:
            DatasetCatalog.register(
                name, lambda source=source: [d for d in DatasetCatalog.get(source) if d["annotations"]][:2]
            )
            MetadataCatalog.get(name).set(thing_classes=MetadataCatalog.get(source).thing_classes)
    return TRAIN, VAL


class _RecordOutputs(DatasetEvaluator):
    def reset(self):
        self.pairs = []

    def process(self, inputs, outputs):
        self.pairs.extend(zip(inputs, outputs))

    def evaluate(self):
        return {}


@needs_deepforest
@pytest.mark.parametrize("name", list(EXPECTED))
def test_one_training_iteration_and_one_evaluation(
    repo_root, tmp_path, monkeypatch, tiny_trees, name
):
    train_name, val_name = tiny_trees
    cfg = _load_cfg(repo_root, name)
    cfg = LazyConfig.apply_overrides(
        cfg,
        [
            "model.num_classes=1",
            "model.test_score_thresh=0.0",  # an untrained model: keep detections to check
            "train.device=cpu",
            "train.init_checkpoint=''",  # no ImageNet download
            "train.seed=0",
            "train.max_iter=1",
            "train.no_aug_iters=0",
            "train.multiscale.range=1",  # sizes 96-160 around 128
            f"train.output_dir={tmp_path}",
            f"dataloader.train.dataset.dataset_dicts.names={train_name}",
            f"dataloader.train.dataset.image_size=[{SIZE},{SIZE}]",
            "dataloader.train.total_batch_size=2",
            "dataloader.train.num_workers=0",
            f"dataloader.test.dataset={val_name}",
            f"dataloader.test.mapper.image_size=[{SIZE},{SIZE}]",
            "dataloader.test.num_workers=0",
        ],
    )
    if "test_square_size" in cfg.model:
        cfg.model.test_square_size = SIZE
    # Record what the model returns in the tool's own evaluation (after the last iteration).
    recorder, results = _RecordOutputs(), []
    evaluate = train_defaults.inference_on_dataset

    def recording_evaluation(model, loader, evaluator):
        results.append(evaluate(model, loader, DatasetEvaluators([evaluator, recorder])))
        return results[-1]

    monkeypatch.setattr(train_defaults, "inference_on_dataset", recording_evaluation)
    torch.manual_seed(0)

    train_defaults.do_train(cfg, resume=False)

    metrics = [json.loads(line) for line in (tmp_path / "metrics.json").read_text().splitlines()]
    train_row = next(m for m in metrics if "total_loss" in m)
    assert math.isfinite(train_row["total_loss"]) and train_row["total_loss"] > 0
    assert LOSSES[EXPECTED[name].meta_arch] <= set(train_row)
    assert len(results) == 1 and math.isfinite(results[0]["bbox"]["AP"])  # COCO AP of real detections

    assert len(recorder.pairs) == 2
    for inputs, outputs in recorder.pairs:
        inst = outputs["instances"]
        assert isinstance(inst, Instances)
        assert set(inst.get_fields()) == {"pred_boxes", "scores", "pred_classes"}
        assert isinstance(inst.pred_boxes, Boxes) and len(inst) > 0
        # in the coordinates of the original 400x400 tile, not of the 128x128 network input
        assert inst.image_size == (inputs["height"], inputs["width"]) == (400, 400)
        boxes = inst.pred_boxes.tensor
        assert torch.isfinite(boxes).all() and (boxes >= 0).all() and (boxes <= 400).all()
        assert (inst.pred_classes == 0).all()
        assert ((inst.scores >= 0) & (inst.scores <= 1)).all()


def _yolox_on(backbone, **kw):
    shapes = backbone.output_shape()
    head = YOLOXHead(in_channels=[s.channels for s in shapes.values()], num_classes=2, feat_channels=16)
    return YOLOX(backbone=backbone, head=head, num_classes=2, test_score_thresh=0.0, **kw).eval()


def test_bare_cspdarknet_declares_its_size_divisibility():
    """No neck: CSPDarknet itself tells the meta-arch to pad (its Focus stem needs even sizes)."""
    assert CSPDarknet(0.33, 0.125).size_divisibility == 32
    assert CSPDarknet(0.33, 0.125, out_features=["stem", "dark3"]).size_divisibility == 8
    model = _yolox_on(CSPDarknet(0.33, 0.125), test_square_size=0)
    assert model.preprocess_image([{"image": torch.zeros(3, 101, 67)}]).tensor.shape[-2:] == (128, 96)
    with torch.no_grad():
        inst = model([{"image": torch.randint(0, 255, (3, 101, 67), dtype=torch.uint8)}])[0]["instances"]
    assert inst.image_size == (101, 67) and len(inst) > 0


def test_yolox_pads_as_the_backbone_padding_constraints_say():
    """Detectron2's FPN(square_pad=...) asks for square inputs (ViTDet-style): YOLOX honours it."""
    fpn = FPN(CSPDarknet(0.33, 0.125), ["dark3", "dark4", "dark5"], out_channels=16, square_pad=192)
    assert fpn.padding_constraints == {"square_size": 192}
    model = _yolox_on(fpn, test_square_size=0)
    images = [{"image": torch.zeros(3, 100, 130)}, {"image": torch.zeros(3, 64, 64)}]
    for training in (False, True):
        model.train(training)
        padded = model.preprocess_image(images)
        assert padded.tensor.shape[-2:] == (192, 192)
        assert padded.image_sizes == [(100, 130), (64, 64)]
