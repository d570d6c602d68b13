"""
Users' own data in the three formats (YOLO txt, Pascal VOC folders, COCO json), built on disk
from real photos and boxes (deepforest's aerial tree photos with their VOC boxes, a
scikit-image photo as a background image): each registers lazily and loads with the right
classes, boxes (within 1 px of the source boxes) and sizes; bad lines / objects / files are
dropped and named (file and line) in one summary per dataset; the configs of configs/custom/
take the paths from the command line, make the model's classes follow the class list, evaluate
on the val split, and train and evaluate through tools/lazyconfig_train_net.py.
"""

import importlib.util
import json
import logging
import math
import os
import uuid

import numpy as np
import pytest
from detectron2.config import LazyConfig, instantiate
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from omegaconf.errors import InterpolationToMissingValueError
from PIL import Image

from .own_data_builders import (
    CLASSES,
    background_photo,
    real_samples,
    voc_object,
    voc_xml,
    write_coco_json,
    write_voc_folders,
    write_yolo_txt,
)
from .train_net_runner import REPO_ROOT, read_metrics, run_train_net
from yolox_d2.data import DatasetValidationError, decode_image_bgr
from yolox_d2.data.datasets import (
    DatasetRegistrationError,
    check_same_thing_classes,
    load_yolo_txt,
    register_coco_json,
    register_voc_folders,
    register_yolo_txt,
)

pytestmark = pytest.mark.skipif(importlib.util.find_spec("deepforest") is None, reason="needs deepforest's photos")

# COCO json with category ids that are neither contiguous nor in class order.
COCO_IDS = {"Tree": 7, "Alive": 3, "Dead": 12}
COCO_CLASSES = ["Alive", "Tree", "Dead"]  # sorted by id, as Detectron2 orders them


@pytest.fixture(scope="module")
def samples():
    return real_samples()


@pytest.fixture
def prefix():
    """A unique dataset name prefix; every dataset registered under it is removed afterwards."""
    p = f"own_{uuid.uuid4().hex[:8]}"
    yield p
    for name in [n for n in DatasetCatalog.list() if n.startswith(p)]:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _summary(caplog, dataset_name):
    lines = [r.getMessage() for r in caplog.records if f"[dataset {dataset_name!r}]" in r.getMessage()]
    lines = [m for m in lines if m.startswith("Annotation files summary")]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]
    return lines[0]


def _xyxy(ann):
    return np.array(BoxMode.convert(ann["bbox"], ann["bbox_mode"], BoxMode.XYXY_ABS))


def _assert_matches(record, sample, classes, tol=1.0):
    assert (record["height"], record["width"]) == sample.image.shape[:2]
    got = np.array([_xyxy(a) for a in record["annotations"]]).reshape(-1, 4)
    assert got.shape == sample.boxes.shape
    np.testing.assert_allclose(got, sample.boxes, atol=tol)
    assert [classes[a["category_id"]] for a in record["annotations"]] == sample.labels


# --- YOLO txt ------------------------------------------------------------------------------------
@pytest.mark.parametrize("names_as_dict, val_as_list", [(False, False), (True, True)])
def test_yolo_txt_loads_real_photos(tmp_path, samples, prefix, caplog, names_as_dict, val_as_list):
    caplog.set_level(logging.INFO)
    data_yaml = write_yolo_txt(str(tmp_path), samples, names_as_dict=names_as_dict, val_as_list=val_as_list)
    train, val = register_yolo_txt(prefix, data_yaml)
    assert (train, val) == (f"{prefix}_train", f"{prefix}_val")
    for name in (train, val):
        assert MetadataCatalog.get(name).thing_classes == list(CLASSES)
    records = {os.path.basename(r["file_name"]): r for r in DatasetCatalog.get(train)}
    for s in samples["train"]:
        _assert_matches(records[s.name + ".jpg"], s, CLASSES, tol=1e-3)
    # the photo without a label file is a background image, counted once in the summary
    assert records["cat.jpg"]["annotations"] == []
    assert (records["cat.jpg"]["height"], records["cat.jpg"]["width"]) == background_photo().shape[:2]
    summary = _summary(caplog, train)
    assert "missing_label_file=1" in summary and os.path.join("labels", "train", "cat.txt") in summary
    assert not _warnings(caplog)  # background images are not a problem
    (val_record,) = DatasetCatalog.get(val)
    _assert_matches(val_record, samples["val"][0], CLASSES, tol=1e-3)


def test_yolo_txt_bad_lines_are_dropped_and_named(tmp_path, samples, prefix, caplog):
    caplog.set_level(logging.INFO)
    data_yaml = write_yolo_txt(str(tmp_path), samples, val_as_list=True)
    sample = samples["train"][1]
    label = tmp_path / "labels" / "train" / f"{sample.name}.txt"
    good = label.read_text().splitlines()
    bad = [
        "3 0.5 0.5 0.1 0.1",  # class id outside names (0..2)
        "0 0.5 0.5 0.1",  # 4 fields
        "0 0.5 abc 0.1 0.1",  # not a number
        "1 1.5 0.5 0.1 0.1",  # cx outside [0, 1]
        "2 0.5 0.5 0.0 0.1",  # zero width
        "0 0.5 nan 0.1 0.1",  # NaN
    ]
    edge = "0 1.0000005 0.5 0.1 0.1"  # within the 1e-6 tolerance: kept
    label.write_text("\n".join(good[:2] + bad + [edge, ""] + good[2:]) + "\n")
    bad_lines = {text: 3 + i for i, text in enumerate(bad)}  # 1-based line numbers
    # a val list naming a missing image, and an image that is not one
    (tmp_path / "val.txt").write_text(f"./images/val/{samples['val'][0].name}.jpg\n\n./images/val/gone.jpg\n")
    (tmp_path / "images" / "train" / "broken.jpg").write_bytes(b"not a jpeg")

    train, val = register_yolo_txt(prefix, data_yaml)
    records = {os.path.basename(r["file_name"]): r for r in DatasetCatalog.get(train)}
    assert "broken.jpg" not in records
    record = records[sample.name + ".jpg"]
    assert len(record["annotations"]) == len(good) + 1  # every good line and the edge line
    summary = _summary(caplog, train)
    for reason, text in [
        ("class_out_of_range", bad[0]),
        ("wrong_field_count", bad[1]),
        ("not_a_number", bad[2]),
        ("coordinate_out_of_range", bad[3]),
        ("non_positive_size", bad[4]),
    ]:
        assert f"{reason}=" in summary and f"{label}:{bad_lines[text]}" in summary, (reason, summary)
    assert "not_a_number=2" in summary and f"{label}:{bad_lines[bad[5]]}" in summary
    assert "unreadable_image=1" in summary and "broken.jpg" in summary
    assert any(summary == w for w in _warnings(caplog)), "problems are logged as a warning"

    (val_record,) = DatasetCatalog.get(val)
    assert val_record["file_name"].endswith(samples["val"][0].name + ".jpg")
    val_summary = _summary(caplog, val)
    assert "missing_image_file=1" in val_summary and f"{tmp_path / 'val.txt'}:3" in val_summary


def test_yolo_txt_summary_shows_few_examples(tmp_path, samples, prefix, caplog):
    """Thousands of bad lines give one summary line with a few examples, not thousands of lines."""
    caplog.set_level(logging.INFO)
    data_yaml = write_yolo_txt(str(tmp_path), samples)
    label = tmp_path / "labels" / "train" / f"{samples['train'][0].name}.txt"
    label.write_text("9 0.5 0.5 0.1 0.1\n" * 2000)
    train, _ = register_yolo_txt(prefix, data_yaml)
    DatasetCatalog.get(train)
    summary = _summary(caplog, train)
    assert "class_out_of_range=2000" in summary and summary.count(str(label)) == 3
    assert len([r for r in caplog.records if str(label) in r.getMessage()]) == 1


def test_yolo_txt_exif_rotated_photo_uses_the_displayed_size(tmp_path, prefix):
    """EXIF orientation 6 (rotate 90): labels are normalised by the displayed size, as read by the mapper."""
    rgb = background_photo(200)[:, :, ::-1]  # stored 200 x 133 (w x h)
    image = Image.fromarray(np.ascontiguousarray(rgb))
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "images" / "val").mkdir(parents=True)
    path = tmp_path / "images" / "train" / "rotated.jpg"
    image.save(path, exif=exif.tobytes())
    (tmp_path / "labels" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train" / "rotated.txt").write_text("0 0.5 0.25 0.5 0.1\n")
    (tmp_path / "data.yaml").write_text("train: images/train\nval: images/val\nnames: {0: cat}\n")
    train, _ = register_yolo_txt(prefix, str(tmp_path / "data.yaml"))
    (record,) = DatasetCatalog.get(train)
    displayed_h, displayed_w = decode_image_bgr(str(path)).image.shape[:2]
    assert (displayed_h, displayed_w) == (200, 133) == (record["height"], record["width"])
    np.testing.assert_allclose(_xyxy(record["annotations"][0]), [33.25, 40, 99.75, 60], atol=1e-6)


def test_yolo_txt_labels_not_found_at_all_is_a_warning(tmp_path, samples, prefix, caplog):
    """Every image a background image: the labels are surely elsewhere; say where they were looked for."""
    caplog.set_level(logging.INFO)
    data_yaml = write_yolo_txt(str(tmp_path), samples)
    (tmp_path / "labels").rename(tmp_path / "annotations")
    (tmp_path / "data.yaml").write_text("train: images/train\nval: images/val\nnc: 3\n")
    train, _ = register_yolo_txt(prefix, data_yaml)
    assert MetadataCatalog.get(train).thing_classes == ["class_0", "class_1", "class_2"]
    assert all(not r["annotations"] for r in DatasetCatalog.get(train))
    looked_in = os.path.join(str(tmp_path), "labels", "train", "")
    assert any("no image of 'train' has a label file" in w and looked_in in w for w in _warnings(caplog))


def test_yolo_txt_bad_yaml_is_a_clear_error(tmp_path):
    bad = tmp_path / "data.yaml"
    bad.write_text("train: images\nval: images\nnames: {0: a, 2: b}\n")
    with pytest.raises(ValueError, match=r"data\.yaml: the ids of 'names' must be 0\.\.1"):
        register_yolo_txt("never", str(bad))
    bad.write_text("train: images\nnames: [a]\n")
    with pytest.raises(ValueError, match="no val entry"):
        register_yolo_txt("never", str(bad))
    bad.write_text("train: nowhere\nval: nowhere\nnames: [a]\nnc: 1\n")
    with pytest.raises(FileNotFoundError, match="'train' entry .*nowhere"):
        load_yolo_txt(str(bad), "train")


# --- Pascal VOC folders --------------------------------------------------------------------------
def test_voc_folders_load_real_photos(tmp_path, samples, prefix):
    root = write_voc_folders(str(tmp_path / "voc"), samples)
    name = register_voc_folders(f"{prefix}_train", root, "train", CLASSES)
    assert MetadataCatalog.get(name).thing_classes == list(CLASSES)
    records = DatasetCatalog.get(name)
    assert [r["image_id"] for r in records] == [s.name for s in samples["train"]]
    for record, s in zip(records, samples["train"]):
        assert record["file_name"] == os.path.join(root, "JPEGImages", s.name + ".jpg")
        _assert_matches(record, s, CLASSES)  # difficult objects (every 5th) kept, as Detectron2


def test_voc_folders_bad_input_is_dropped_and_named(tmp_path, samples, prefix, caplog):
    caplog.set_level(logging.INFO)
    root = tmp_path / "voc"
    write_voc_folders(str(root), samples)
    s = samples["train"][0]
    objects = [voc_object(lab, b) for b, lab in zip(s.boxes, s.labels)]
    objects.insert(1, voc_object("Bush", s.boxes[0]))  # not a class of ours: object #2
    objects.insert(3, "<object><name>Tree</name><bndbox><xmin>x</xmin></bndbox></object>")  # object #4
    (root / "Annotations" / f"{s.name}.xml").write_text(voc_xml(s.name + ".jpg", 256, 256, objects))
    split = root / "ImageSets" / "Main" / "train.txt"
    split.write_text(split.read_text() + "no_such_photo\n")  # line 4: xml without image
    (root / "Annotations" / "no_such_photo.xml").write_text(voc_xml("no_such_photo.jpg", 10, 10, []))
    # no <size>: read from the image header
    s1 = samples["train"][1]
    objects = [voc_object(lab, b) for b, lab in zip(s1.boxes, s1.labels)]
    (root / "Annotations" / f"{s1.name}.xml").write_text(voc_xml(s1.name + ".jpg", 0, 0, objects).replace("<size>", "<sz>").replace("</size>", "</sz>"))
    name = register_voc_folders(f"{prefix}_train", str(root), "train", CLASSES)
    records = DatasetCatalog.get(name)
    assert len(records) == len(samples["train"])  # the missing image dropped, the rest loaded
    _assert_matches(records[0], s, CLASSES)  # the bad objects dropped, the good ones kept
    _assert_matches(records[1], s1, CLASSES)  # height / width from the image
    summary = _summary(caplog, name)
    xml = os.path.join(str(root), "Annotations", f"{s.name}.xml")
    assert f"unknown_class=1" in summary and f"{xml} object #2: 'Bush' not in class_names" in summary
    assert "malformed_bndbox=1" in summary and f"{xml} object #4" in summary
    assert "missing_image_file=1" in summary and f"{split}:4: id 'no_such_photo'" in summary
    assert "size_from_image=1" in summary and f"{s1.name}.xml" in summary
    assert summary in _warnings(caplog)


# --- COCO json -----------------------------------------------------------------------------------
def test_coco_json_any_category_ids(tmp_path, samples, prefix, caplog):
    caplog.set_level(logging.INFO)
    json_file = write_coco_json(str(tmp_path), "train", samples["train"], COCO_IDS)
    data = json.loads(open(json_file).read())
    data["annotations"][0]["category_id"] = 99  # not in categories: Detectron2 would raise
    dropped_id = data["annotations"][0]["id"]
    open(json_file, "w").write(json.dumps(data))
    name = register_coco_json(f"{prefix}_train", json_file, str(tmp_path / "train"))
    meta = MetadataCatalog.get(name)
    assert meta.json_file == json_file and meta.evaluator_type == "coco"
    assert meta.get("thing_classes") is None  # lazy: nothing read at registration
    records = DatasetCatalog.get(name)
    assert meta.thing_classes == COCO_CLASSES
    assert meta.thing_dataset_id_to_contiguous_id == {3: 0, 7: 1, 12: 2}
    first = samples["train"][0]
    _assert_matches(records[1], samples["train"][1], COCO_CLASSES, tol=0.01)
    kept = records[0]["annotations"]
    assert len(kept) == len(first.boxes) - 1
    np.testing.assert_allclose([_xyxy(a) for a in kept], first.boxes[1:], atol=0.01)
    summary = _summary(caplog, name)
    assert f"undeclared_category_id=1" in summary and f"annotation id {dropped_id}" in summary


def test_val_json_must_declare_the_train_classes(tmp_path, samples, prefix):
    train = register_coco_json(f"{prefix}_train", write_coco_json(str(tmp_path), "train", samples["train"], COCO_IDS), str(tmp_path / "train"))
    other = dict(COCO_IDS, Dead=1)  # other ids: another class order
    val = register_coco_json(f"{prefix}_val", write_coco_json(str(tmp_path), "val", samples["val"], other), str(tmp_path / "val"))
    with pytest.raises(DatasetRegistrationError, match=f"{val}.*{train}"):
        check_same_thing_classes(val, train)
    assert check_same_thing_classes(train, train) == train


# --- registration --------------------------------------------------------------------------------
def test_registration_is_lazy_idempotent_and_refuses_other_arguments(tmp_path, prefix):
    name = register_voc_folders(f"{prefix}_x", str(tmp_path / "not_yet"), "train", ["a", "b"])
    assert register_voc_folders(f"{prefix}_x", str(tmp_path / "not_yet"), "train", ("a", "b")) == name
    with pytest.raises(DatasetRegistrationError, match=r"already registered with .*'a', 'b'.*again with .*'a', 'c'"):
        register_voc_folders(name, str(tmp_path / "not_yet"), "train", ["a", "c"])
    with pytest.raises(FileNotFoundError, match="train.txt"):
        DatasetCatalog.get(name)  # the data is only read now
    json_file = str(tmp_path / "none.json")
    assert register_coco_json(f"{prefix}_c", json_file, str(tmp_path)) == f"{prefix}_c"
    with pytest.raises(DatasetRegistrationError, match="deepforest_trees_train"):
        register_coco_json("deepforest_trees_train", json_file, str(tmp_path))


# --- configs/custom ------------------------------------------------------------------------------
def _config(name, overrides):
    cfg = LazyConfig.load(str(REPO_ROOT / "configs" / "custom" / name))
    return LazyConfig.apply_overrides(cfg, overrides)


def _dataset_overrides(fmt, root, samples, name):
    """Write ``samples`` in format ``fmt`` under ``root``; the config overrides that point to it."""
    if fmt == "yolo_txt":
        return [f"dataset.data_yaml={write_yolo_txt(root, samples)}", f"dataset.name={name}"]
    if fmt == "voc":
        write_voc_folders(root, samples)
        return [f"dataset.root={root}", f"dataset.class_names=[{','.join(CLASSES)}]", f"dataset.name={name}"]
    return [
        f"dataset.train_json={write_coco_json(root, 'train', samples['train'], COCO_IDS)}",
        f"dataset.train_images={os.path.join(root, 'train')}",
        f"dataset.val_json={write_coco_json(root, 'val', samples['val'], COCO_IDS)}",
        f"dataset.val_images={os.path.join(root, 'val')}",
        f"dataset.name={name}",
    ]


CONFIGS = {"yolo_txt": "yolox_s_yolo_txt.py", "voc": "yolox_s_voc.py", "coco_json": "yolox_s_coco_json.py"}


@pytest.mark.parametrize("fmt", list(CONFIGS))
def test_config_takes_the_data_from_overrides(tmp_path, samples, prefix, fmt):
    cfg = _config(CONFIGS[fmt], _dataset_overrides(fmt, str(tmp_path), samples, prefix))
    cfg.train.output_dir = str(tmp_path / "out")
    model = instantiate(cfg.model)
    assert model.num_classes == len(CLASSES)  # follows the class list
    assert instantiate(cfg.dataloader.evaluator)._metadata.name == f"{prefix}_val"
    assert len(instantiate(cfg.dataloader.test).dataset) == len(samples["val"])
    dicts = instantiate(cfg.dataloader.train.dataset.dataset_dicts)
    assert len(dicts) == len(samples["train"]) + (fmt == "yolo_txt")  # + the background photo
    # a number of classes that disagrees with the class list stops at start-up, naming both
    cfg = LazyConfig.apply_overrides(cfg, ["model.num_classes=5"])
    with pytest.raises(DatasetValidationError, match="declares 3 thing_classes .* num_classes=5"):
        instantiate(cfg.dataloader.train.dataset.dataset_dicts)


def test_config_without_the_data_names_the_missing_key():
    cfg = _config("yolox_s_yolo_txt.py", [])
    with pytest.raises(InterpolationToMissingValueError, match="Missing mandatory value: dataset.data_yaml"):
        instantiate(cfg.model)  # the first thing the training tool builds


TINY = [
    "train.device=cpu",
    "train.seed=0",
    "train.log_period=1",
    "train.max_iter=2",
    "train.no_aug_iters=0",
    "train.multiscale.enabled=False",
    "dataloader.train.total_batch_size=2",
    "dataloader.train.num_workers=0",
    "dataloader.train.dataset.image_size=[128,128]",
    "dataloader.test.mapper.image_size=[128,128]",
    "dataloader.test.num_workers=0",
    "model.test_square_size=128",
    "model.test_score_thresh=0.0",  # an untrained model: keep its detections to score
]


@pytest.mark.parametrize("fmt", list(CONFIGS))
def test_trains_and_evaluates_with_the_tool(tmp_path, samples, fmt):
    name = f"tool_{fmt}"
    out = tmp_path / "out"
    args = ["--config-file", f"configs/custom/{CONFIGS[fmt]}"]
    args += _dataset_overrides(fmt, str(tmp_path / "data"), samples, name) + TINY + [f"train.output_dir={out}"]
    proc = run_train_net(args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert f"Annotation files summary: [dataset '{name}_train']" in log
    metrics = read_metrics(out)
    losses = [m["total_loss"] for m in metrics if "total_loss" in m]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    (ap,) = [m for m in metrics if "bbox/AP" in m]
    assert math.isfinite(ap["bbox/AP"])
    classes = COCO_CLASSES if fmt == "coco_json" else CLASSES
    assert [k for k in ap if k.startswith("bbox/AP-")] == sorted(f"bbox/AP-{c}" for c in classes)
    assert math.isfinite(ap["bbox/AP-Tree"])  # the val photo's trees were scored
