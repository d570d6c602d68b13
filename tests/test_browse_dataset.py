"""tools/browse_dataset.py: training samples as the model receives them, next to their source image."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from detectron2.config import LazyConfig

from yolox_d2.data.mappers import read_image_bgr
from yolox_d2.data.transforms import letterbox
from yolox_d2.data.visualize_samples import SEPARATOR, TrainingSampleBrowser

from .test_deepforest_trees import needs_deepforest

TREES_CFG = os.path.join("configs", "deepforest", "yolox_nano_trees.py")
TILE = 400  # the deepforest_trees tiles are 400 x 400


def _browse(repo_root, out_dir, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(repo_root / "tools" / "browse_dataset.py"), "--config-file", TREES_CFG,
           "--num", "2", "--output", str(out_dir), *extra]
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = sorted(os.listdir(out_dir))
    assert len(names) == 2 and all(n.endswith(".jpg") for n in names), names
    return [cv2.imread(str(out_dir / n)) for n in names]


@needs_deepforest
def test_writes_augmented_samples_side_by_side(repo_root, tmp_path):
    pictures = _browse(repo_root, tmp_path, "--opts", "dataloader.train.dataset.image_size=[160,160]")
    for picture in pictures:
        assert picture.shape == (160, 160 + SEPARATOR + TILE * 160 // TILE, 3)
        assert picture[:, 160:160 + SEPARATOR].mean() > 240  # the white line between the halves (JPEG)


@needs_deepforest
def test_no_aug_shows_the_letterbox(repo_root, tmp_path):
    """A 400 x 400 tile letterboxed into 160 x 224: 160 x 160 of image, then the 114 padding."""
    pictures = _browse(
        repo_root, tmp_path, "--no-aug", "--opts", "dataloader.train.dataset.image_size=[160,224]"
    )
    for picture in pictures:
        assert picture.shape == (160, 224 + SEPARATOR + 160, 3)
        padding = picture[30:, 165:224].astype(int)  # below the title, right of the image
        assert (np.abs(padding - 114) <= 6).mean() > 0.8  # box labels may reach into it


@needs_deepforest
def test_no_aug_samples_are_the_letterboxed_source(repo_root):
    cfg = LazyConfig.load(str(repo_root / TREES_CFG))
    cfg = LazyConfig.apply_overrides(
        cfg,
        ["dataloader.train.dataset.image_size=[160,224]", "dataloader.train.dataset.hsv_prob=0",
         "dataloader.train.dataset.flip_prob=0"],
    )
    browser = TrainingSampleBrowser(cfg.dataloader.train.dataset, no_aug=True)
    assert not browser.dataset.mosaic_enabled
    assert browser.class_names == ["tree"]
    picture, sample = browser.draw(browser.sample_indices(1, seed=3)[0])
    record = browser.source_record(sample)
    expected, _, _ = letterbox(read_image_bgr(record), np.zeros((0, 4)), (160, 224))
    assert np.array_equal(sample["image"].numpy().transpose(1, 2, 0), expected)
    assert len(sample["instances"]) == len(record["annotations"])
    assert picture.shape == (160, 224 + SEPARATOR + 160, 3)


def test_config_without_dataset_dicts_is_refused(repo_root):
    cfg = LazyConfig.load(str(repo_root / "configs" / "yolox_nano.py"))
    del cfg.dataloader.train.dataset.dataset_dicts
    with pytest.raises(ValueError, match="'dataset_dicts' argument"):
        TrainingSampleBrowser(cfg.dataloader.train.dataset)
