"""
Fine-tuning with another number of classes: ``train.init_checkpoint`` from a converted official
checkpoint (80 COCO classes) into a model with ``model.num_classes=1`` loads every tensor but
the class predictions, and says so in one line.
"""
import logging

import pytest
import torch

from detectron2.config import LazyConfig, instantiate

from yolox_d2.checkpoint import (
    AtomicDetectionCheckpointer,
    class_prediction_keys,
    convert_official_state_dict,
)

from .official_reference import build_official_model

pytest.importorskip("yolox", reason="the official yolox==0.3.0 reference is installed by `make test`")

CLS_KEYS = [f"head.cls_preds.{level}.{t}" for level in range(3) for t in ("weight", "bias")]


def _nano(repo_root, num_classes: int):
    cfg = LazyConfig.load(str(repo_root / "configs" / "yolox_nano.py"))
    cfg.model.num_classes = num_classes
    torch.manual_seed(1)
    return instantiate(cfg.model)


@pytest.fixture(scope="module")
def official_checkpoint(repo_root, tmp_path_factory):
    """An official YOLOX-Nano (80 classes) converted as tools/convert_yolox_weights.py writes it."""
    official = build_official_model("yolox-nano", seed=5)
    converted = convert_official_state_dict(official.state_dict(), _nano(repo_root, 80))
    path = tmp_path_factory.mktemp("ckpt") / "yolox_nano_d2.pth"
    torch.save(
        {"model": converted, "__author__": "yolox_d2 convert_yolox_weights", "matching_heuristics": False},
        path,
    )
    return str(path), converted


def _load(model, path, caplog):
    caplog.clear()
    with caplog.at_level(logging.INFO):
        AtomicDetectionCheckpointer(model).resume_or_load(path, resume=False)
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_class_prediction_keys(repo_root):
    assert class_prediction_keys(_nano(repo_root, 3)) == {k: 3 for k in CLS_KEYS}


def test_other_class_count_loads_all_but_class_predictions(repo_root, official_checkpoint, caplog):
    path, converted = official_checkpoint
    model = _nano(repo_root, 1)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    warnings = _load(model, path, caplog)

    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    line = warnings[0].getMessage()
    assert "\n" not in line
    assert "Re-initialised 6 class-prediction tensors" in line
    for key in CLS_KEYS:
        assert key in line
    assert "the checkpoint has 80 classes, the model has 1" in line
    assert not any("incompatible shapes" in r.getMessage() for r in caplog.records)

    for key, value in model.state_dict().items():
        if key in CLS_KEYS:
            assert torch.equal(value, initial[key]), key
        else:
            assert torch.equal(value, converted[key]), key


def test_same_class_count_loads_without_the_line(repo_root, official_checkpoint, caplog):
    path, converted = official_checkpoint
    model = _nano(repo_root, 80)
    warnings = _load(model, path, caplog)
    assert warnings == []
    assert not any("Re-initialised" in r.getMessage() for r in caplog.records)
    for key, value in model.state_dict().items():
        assert torch.equal(value, converted[key]), key


def test_other_shape_mismatch_is_still_reported(repo_root, official_checkpoint, caplog, tmp_path):
    """A tensor that is not a class prediction keeps fvcore's loud shape-mismatch warning."""
    _, converted = official_checkpoint
    state = dict(converted)
    stem_key = "backbone.bottom_up.stem.conv.weight"
    assert stem_key in state
    state[stem_key] = torch.zeros((7,) + tuple(state[stem_key].shape[1:]))
    # a head whose class convolutions also differ in their input width is not a class change
    state["head.cls_preds.0.weight"] = torch.zeros(80, 5, 1, 1)
    path = tmp_path / "bad.pth"
    torch.save({"model": state}, path)
    model = _nano(repo_root, 1)
    messages = [r.getMessage() for r in _load(model, str(path), caplog)]
    assert any(stem_key in m and "incompatible shapes" in m for m in messages), messages
    assert any("head.cls_preds.0.weight" in m and "incompatible shapes" in m for m in messages), messages
    reinit = [m for m in messages if "Re-initialised" in m]
    assert len(reinit) == 1 and "head.cls_preds.0.weight" not in reinit[0]
    assert "Re-initialised 5 class-prediction tensors" in reinit[0]
