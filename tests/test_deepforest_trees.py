"""
The ``deepforest_trees`` datasets: lazy registration, the real tiled data (split by source
photo, boxes inside tiles, every VOC box represented), and the tile cache (reused when nothing
changed, never reused when a parameter or a source file changed, rebuilt when damaged).
"""

import importlib.util
import os
import uuid

import cv2
import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

import yolox_d2.data  # noqa: F401  (registers the datasets)
from yolox_d2.data.datasets import deepforest_trees as dft
from yolox_d2.data.datasets.tiling import boxes_in_tile, tile_starts
from yolox_d2.data.datasets.voc_xml import find_annotated_sources

HAS_DEEPFOREST = importlib.util.find_spec("deepforest") is not None
needs_deepforest = pytest.mark.skipif(not HAS_DEEPFOREST, reason=dft.DEEPFOREST_INSTALL_COMMAND)

VOC_TEMPLATE = """<annotation><folder>data</folder><filename>{filename}</filename>
<size><width>{w}</width><height>{h}</height><depth>3</depth></size>{objects}</annotation>"""
OBJ = "<object><name>Tree</name><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object>"


def write_voc(data_dir, stem, h, w, boxes, seed=0):
    img = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    cv2.imwrite(os.path.join(data_dir, stem + ".png"), img)
    objects = "".join(OBJ.format(*b) for b in boxes)
    with open(os.path.join(data_dir, stem + ".xml"), "w") as f:
        f.write(VOC_TEMPLATE.format(filename=stem + ".png", w=w, h=h, objects=objects))


@pytest.fixture
def fake_data(tmp_path):
    data_dir = tmp_path / "voc"
    data_dir.mkdir()
    write_voc(
        str(data_dir), "photo_a", 300, 500, [(10, 10, 60, 50), (180, 100, 240, 170), (440, 250, 499, 299)]
    )
    write_voc(str(data_dir), "photo_b", 200, 200, [(20, 30, 80, 90)], seed=1)
    return str(data_dir)


def test_voc_folder_sources_skip_what_cannot_be_used(tmp_path, caplog):
    """The VOC reader works on any folder of xml + photos, not only deepforest's."""
    data_dir = str(tmp_path)
    write_voc(data_dir, "b_photo", 40, 60, [(1, 2, 30, 20), (5, 5, 9, 9)])
    write_voc(data_dir, "a_renamed", 40, 60, [(0, 0, 10, 10)])
    with open(os.path.join(data_dir, "a_renamed.xml")) as f:  # <filename> names a missing file
        xml = f.read().replace("a_renamed.png", "moved_away.png")
    with open(os.path.join(data_dir, "a_renamed.xml"), "w") as f:
        f.write(xml)
    write_voc(data_dir, "c_no_boxes", 40, 60, [])
    write_voc(data_dir, "d_no_image", 40, 60, [(0, 0, 10, 10)])
    os.remove(os.path.join(data_dir, "d_no_image.png"))
    with open(os.path.join(data_dir, "e_broken.xml"), "w") as f:
        f.write("<annotation><object>")
    sources = find_annotated_sources(data_dir)
    assert [s.name for s in sources] == ["a_renamed", "b_photo"]
    a, b = sources
    assert a.image_path == os.path.join(data_dir, "a_renamed.png")  # found by the xml's stem
    assert (b.width, b.height, b.labels) == (60, 40, ("Tree", "Tree"))
    np.testing.assert_allclose(b.boxes, [[1, 2, 30, 20], [5, 5, 9, 9]])
    warnings = " ".join(r.getMessage() for r in caplog.records)
    assert "d_no_image.xml" in warnings and "e_broken.xml" in warnings


def test_registration_is_lazy_and_has_metadata(tmp_path):
    for name in ("deepforest_trees_train", "deepforest_trees_val"):
        assert name in DatasetCatalog.list()
        meta = MetadataCatalog.get(name)
        assert meta.thing_classes == ["tree"] and meta.evaluator_type == "coco"
    prefix = f"_df_test_{uuid.uuid4().hex[:6]}"
    root = tmp_path / "never_created"
    train, val = dft.register_deepforest_trees(
        name_prefix=prefix, root=str(root), data_dir=str(tmp_path / "no_such_dir")
    )
    try:
        assert (train, val) == (f"{prefix}_train", f"{prefix}_val")
        assert not root.exists()  # nothing read or written at registration
        # registering again is a no-op
        dft.register_deepforest_trees(name_prefix=prefix, root=str(root))
    finally:
        for n in (train, val):
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)


def test_missing_deepforest_gives_install_command(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "deepforest" else real(name, *a)
    )
    with pytest.raises(ImportError, match="pip install --no-deps deepforest==2.1.0"):
        dft.load_deepforest_trees("train", root=str(tmp_path))


def test_tile_starts():
    assert tile_starts(400, 400, 300) == [0]
    assert tile_starts(250, 400, 300) == [0]
    assert tile_starts(1249, 400, 300) == [0, 300, 600, 849]
    assert tile_starts(1000, 400, 300) == [0, 300, 600]
    with pytest.raises(ValueError):
        tile_starts(1000, 400, 0)


def test_boxes_in_tile_visibility_rule():
    boxes = np.array([[10, 10, 50, 50], [90, 10, 130, 50], [70, 10, 110, 50], [200, 200, 220, 220]], float)
    kept, idx = boxes_in_tile(boxes, (0, 0, 100, 100), 0.5)
    assert idx.tolist() == [0, 2]  # 25% visible dropped, 75% kept, outside dropped
    np.testing.assert_allclose(kept, [[10, 10, 50, 50], [70, 10, 100, 50]])
    kept, idx = boxes_in_tile(boxes, (50, 0, 150, 100), 0.5)
    np.testing.assert_allclose(kept, [[40, 10, 80, 50], [20, 10, 60, 50]])


@needs_deepforest
def test_real_dataset_splits_and_boxes(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLOX_D2_DATASETS", str(tmp_path))
    train = DatasetCatalog.get("deepforest_trees_train")
    val = DatasetCatalog.get("deepforest_trees_val")
    assert os.path.isdir(tmp_path / "deepforest_trees")  # the env var picked the cache root
    train_src = {d["source_image"] for d in train}
    val_src = {d["source_image"] for d in val}
    assert val_src == set(dft.DEFAULT_VAL_SOURCES)
    assert not train_src & val_src and len(train_src) == 3
    n_train = sum(len(d["annotations"]) for d in train)
    n_val = sum(len(d["annotations"]) for d in val)
    assert n_val >= 200 and n_train >= 600
    ids = [d["image_id"] for d in train + val]
    assert len(set(ids)) == len(ids)
    for d in train + val:
        assert os.path.isfile(d["file_name"])
        assert d["height"] <= 400 and d["width"] <= 400
        for a in d["annotations"]:
            x1, y1, x2, y2 = a["bbox"]
            assert 0 <= x1 < x2 <= d["width"] and 0 <= y1 < y2 <= d["height"]
            assert a["category_id"] == 0 and int(a["bbox_mode"]) == 0
    for d in (train[0], val[-1]):
        assert cv2.imread(d["file_name"]).shape[:2] == (d["height"], d["width"])
    # every VOC box of every photo is represented in its split: whole in some tile, or at least
    # half visible in one (tile 400, overlap 100, boxes <= 108 px)
    sources = {s.name: s for s in find_annotated_sources(dft.deepforest_data_dir())}
    assert sum(len(s.boxes) for s in sources.values()) > 900
    for split in (train, val):
        by_src = {}
        for d in split:
            x0, y0 = d["tile_box"][:2]
            for a in d["annotations"]:
                by_src.setdefault(d["source_image"], []).append(np.add(a["bbox"], [x0, y0, x0, y0]))
        for name, boxes in by_src.items():
            boxes = np.array(boxes)
            for b in sources[name].boxes:
                inter_w = np.minimum(boxes[:, 2], b[2]) - np.maximum(boxes[:, 0], b[0])
                inter_h = np.minimum(boxes[:, 3], b[3]) - np.maximum(boxes[:, 1], b[1])
                inter = inter_w.clip(0) * inter_h.clip(0)
                assert (inter >= 0.5 * (b[2] - b[0]) * (b[3] - b[1]) - 1e-6).any()


def test_cache_reuse_and_invalidation(tmp_path, fake_data):
    root = str(tmp_path / "cache")
    kw = dict(root=root, tile_size=200, overlap=50, val_sources=("photo_b",), data_dir=fake_data)
    first = dft.prepare_deepforest_trees(**kw)
    cache_dir = os.path.dirname(first["train"][0]["file_name"])
    assert os.path.dirname(cache_dir) == os.path.join(root, "deepforest_trees")
    assert {d["source_image"] for d in first["train"]} == {"photo_a"}
    assert {d["source_image"] for d in first["val"]} == {"photo_b"}
    # photo_a 300x500, tile 200 stride 150 -> x: 0,150,300 ; y: 0,100 -> 6 tiles
    assert len(first["train"]) == 6 and len(first["val"]) == 1
    mtimes = {d["file_name"]: os.stat(d["file_name"]).st_mtime_ns for d in first["train"]}

    again = dft.prepare_deepforest_trees(**kw)  # reused, not rewritten
    assert again == first
    assert all(os.stat(f).st_mtime_ns == t for f, t in mtimes.items())

    other = dft.prepare_deepforest_trees(**dict(kw, overlap=100))  # parameter change -> new cache
    assert os.path.dirname(other["train"][0]["file_name"]) != cache_dir
    assert len(other["train"]) != len(first["train"])
    other = dft.prepare_deepforest_trees(**dict(kw, min_visible=0.9))
    assert os.path.dirname(other["train"][0]["file_name"]) != cache_dir

    # a changed source file (one more box) -> new key, new boxes
    write_voc(fake_data, "photo_b", 200, 200, [(20, 30, 80, 90), (120, 120, 180, 190)], seed=1)
    changed = dft.prepare_deepforest_trees(**kw)
    assert os.path.dirname(changed["val"][0]["file_name"]) != cache_dir
    assert len(changed["val"][0]["annotations"]) == 2
    # same for a changed image with identical annotations
    write_voc(fake_data, "photo_b", 200, 200, [(20, 30, 80, 90), (120, 120, 180, 190)], seed=2)
    changed2 = dft.prepare_deepforest_trees(**kw)
    assert os.path.dirname(changed2["val"][0]["file_name"]) != os.path.dirname(changed["val"][0]["file_name"])

    # a damaged cache (tile deleted) is rebuilt, not trusted
    victim = changed2["train"][0]["file_name"]
    os.remove(victim)
    rebuilt = dft.prepare_deepforest_trees(**kw)
    assert os.path.isfile(victim) and rebuilt == changed2
    # no temporary directories left behind
    assert not [n for n in os.listdir(os.path.join(root, "deepforest_trees")) if "tmp" in n]


def test_split_arguments_are_checked(tmp_path, fake_data):
    with pytest.raises(ValueError, match="photo_a"):
        dft.prepare_deepforest_trees(root=str(tmp_path), val_sources=("nope",), data_dir=fake_data)
    with pytest.raises(ValueError, match="no photo for the training split"):
        dft.prepare_deepforest_trees(
            root=str(tmp_path), val_sources=("photo_a", "photo_b"), data_dir=fake_data
        )
    with pytest.raises(ValueError):
        dft.prepare_deepforest_trees(root=str(tmp_path), tile_size=100, overlap=100, data_dir=fake_data)
    with pytest.raises(ValueError):
        dft.load_deepforest_trees("test", root=str(tmp_path), data_dir=fake_data)
