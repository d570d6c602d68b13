"""The start-up data checks in do_train / do_eval_only (yolox_d2.engine.startup_checks): a broken
evaluation image or a class count that differs stops the run before iteration 0, naming the
file / the counts; a broken training image is reported and training goes on."""
import logging
import shutil

import pytest
from detectron2.config import LazyConfig
from detectron2.data import DatasetCatalog, MetadataCatalog

from yolox_d2.data.validation import DatasetValidationError
from yolox_d2.engine.defaults import do_eval_only, do_train

from .train_net_runner import REPO_ROOT, SMALL_TREES, read_metrics

TREES_CFG = "configs/deepforest/yolox_nano_trees.py"
VAL, TRAIN = "wiring_trees_val", "wiring_trees_train"


def _copy_tiles(source: str, name: str, out_dir, count: int, truncate: int):
    """Register ``count`` tiles of ``source`` copied to ``out_dir`` as ``name``; the tile
    ``truncate`` is cut to 20 bytes (its header is not readable). Returns (records, bad file)."""
    out_dir.mkdir()
    records = []
    for i, record in enumerate(DatasetCatalog.get(source)[:count]):
        path = out_dir / f"tile_{i}.png"
        shutil.copyfile(record["file_name"], path)
        records.append(dict(record, file_name=str(path)))
    bad = records[truncate]
    with open(bad["file_name"], "r+b") as f:
        f.truncate(20)
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, lambda: records)
    MetadataCatalog.get(name).set(thing_classes=list(MetadataCatalog.get(source).thing_classes))
    return records, bad


def _cfg(output_dir, extra=()):
    cfg = LazyConfig.load(str(REPO_ROOT / TREES_CFG))
    overrides = [o for o in SMALL_TREES if not o.startswith("dataloader.train.num_workers")]
    return LazyConfig.apply_overrides(
        cfg,
        overrides
        + [
            "dataloader.train.num_workers=0",
            "dataloader.train.dataset.image_size=[96,96]",
            "dataloader.test.mapper.image_size=[96,96]",
            "model.test_square_size=96",
            "train.max_iter=2",
            f"train.output_dir={output_dir}",
            *extra,
        ],
    )


def test_broken_evaluation_image_stops_before_iteration_0(tmp_path):
    _, bad = _copy_tiles("deepforest_trees_val", VAL, tmp_path / "val", count=3, truncate=1)
    out = tmp_path / "out"
    with pytest.raises(DatasetValidationError) as e:
        do_train(_cfg(out, [f"dataloader.test.dataset={VAL}"]))
    message = str(e.value)
    assert f"[dataset '{VAL}'] 1 of 3 image files cannot be used as declared" in message
    assert f"{bad['file_name']} (image_id={bad['image_id']!r}): image header not readable" in message
    assert not (out / "metrics.json").exists() and not list(out.glob("model_*.pth"))  # no iteration ran

    with pytest.raises(DatasetValidationError, match="tile_1.png"):
        do_eval_only(_cfg(tmp_path / "eval", [f"dataloader.test.dataset={VAL}"]))


def test_class_count_that_differs_stops_before_iteration_0(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(DatasetValidationError) as e:
        do_train(_cfg(out, ["model.num_classes=3"]))
    assert "model.num_classes=3 but dataset 'deepforest_trees_train' declares 1 thing_classes (tree); set model.num_classes=1" in str(e.value)
    assert not (out / "metrics.json").exists()


def test_broken_training_image_is_reported_and_training_goes_on(tmp_path, caplog):
    records, bad = _copy_tiles("deepforest_trees_train", TRAIN, tmp_path / "train", count=6, truncate=2)
    assert bad["annotations"]  # a tile filter_empty keeps
    out = tmp_path / "out"
    cfg = _cfg(out, [f"dataloader.train.dataset.dataset_dicts.names={TRAIN}"])
    del cfg.dataloader.evaluator  # training only
    with caplog.at_level(logging.WARNING, logger="yolox_d2"):
        do_train(cfg)
    assert f"[dataset '{TRAIN}'] 1 of" in caplog.text and "(they are skipped in training)" in caplog.text
    assert bad["file_name"] in caplog.text
    assert sorted(m["iteration"] for m in read_metrics(out) if "total_loss" in m) == [0, 1]
