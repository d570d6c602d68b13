"""
configs/: one source of truth. Each variant takes its augmentation from
``yolox_d2.data.yolox_augmentation_defaults`` and states its input size once,
``dataloader.train.dataset.image_size``: the test letterbox and the model's inference canvas
follow it, also when it is overridden on the command line.
"""
import re
from pathlib import Path

import pytest

from detectron2.config import LazyConfig

from yolox_d2.data import yolox_augmentation_defaults

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
VARIANTS = {"nano": 416, "tiny": 416, "s": 640, "m": 640, "l": 640, "x": 640, "darknet53": 640}
# every full config: the variants, the tree demo and the Detectron2 compositions
FULL_CONFIGS = sorted(
    [f"yolox_{v}.py" for v in VARIANTS]
    + [str(p.relative_to(CONFIGS)) for d in ("deepforest", "mix") for p in (CONFIGS / d).glob("*.py")]
)


def _load(name, overrides=()):
    return LazyConfig.apply_overrides(LazyConfig.load(str(CONFIGS / name)), list(overrides))


def _sizes(cfg):
    """(train size, test letterbox size, model test_square_size or None)."""
    square = cfg.model.test_square_size if "test_square_size" in cfg.model else None
    return tuple(cfg.dataloader.train.dataset.image_size), tuple(cfg.dataloader.test.mapper.image_size), square


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_takes_the_library_augmentation_and_states_its_size_once(variant):
    cfg = _load(f"yolox_{variant}.py")
    dataset = cfg.dataloader.train.dataset
    for key, value in yolox_augmentation_defaults(variant).items():
        got = tuple(dataset[key]) if isinstance(value, tuple) else dataset[key]
        assert got == value, key
    size = VARIANTS[variant]
    assert _sizes(cfg) == ((size, size), (size, size), size)
    # the test sizes are not set to numbers anywhere in the variant file
    assert not re.search(
        r"^(dataloader\.test\.mapper\.image_size|model\.test_square_size) = [(\d]",
        (CONFIGS / f"yolox_{variant}.py").read_text(),
        flags=re.M,
    )


@pytest.mark.parametrize("name", FULL_CONFIGS)
def test_overriding_the_train_size_moves_the_test_sizes(name):
    train, test, square = _sizes(_load(name, ["dataloader.train.dataset.image_size=[320,320]"]))
    assert train == test == (320, 320)
    assert square in (None, 320)  # None: Detectron2's RetinaNet / FCOS have no square canvas
    # an explicit test size still wins
    overrides = ["dataloader.train.dataset.image_size=[320,320]", "dataloader.test.mapper.image_size=[256,256]"]
    assert _sizes(_load(name, overrides))[1] == (256, 256)


def test_the_tree_demo_states_its_size_once():
    assert _sizes(_load("deepforest/yolox_nano_trees.py")) == ((320, 320), (320, 320), 320)
