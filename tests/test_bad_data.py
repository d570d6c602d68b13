"""
Bad data never costs a run: a corpus of real scikit-image photos made broken on purpose
(truncated / missing / empty files, unusual pixel formats, EXIF rotation, CMYK) and of broken
annotations (degenerate, NaN / inf, outside the image, undeclared or non-contiguous category
ids, no boxes, 2000 boxes). For each: the right result (converted, clipped, dropped) or a skip
with a warning naming the file, the image id and the reason; never a crash deep inside torch or
OpenCV, never a silently wrong box. Evaluation raises instead of skipping.
"""

import logging
import math
import os
import uuid

import cv2
import numpy as np
import pytest
import skimage
import torch
from detectron2.config import instantiate
from detectron2.data import DatasetCatalog, MetadataCatalog, get_detection_dataset_dicts
from detectron2.structures import BoxMode
from PIL import Image

from yolox_d2.data import (
    DatasetValidationError,
    ImageReadError,
    ImageSizeMismatchError,
    MosaicMixupDataset,
    YOLOXTestMapper,
    build_yolox_test_loader,
    build_yolox_train_loader,
    get_validated_dataset_dicts,
    read_image_bgr,
    validate_dataset_dicts,
)

PHOTO = os.path.join(skimage.data_dir, "astronaut.png")  # 512 x 512 RGB
GRAY = os.path.join(skimage.data_dir, "camera.png")  # 512 x 512 L
JPEG = os.path.join(skimage.data_dir, "rocket.jpg")  # 427 x 640 RGB JPEG

# Settings under which a training sample is the image itself: no mosaic, no colour jitter, no
# flip, and an image_size equal to the image's (scale 1, no padding), so boxes are unchanged.
PLAIN = dict(enable_mosaic=False, hsv_prob=0.0, flip_prob=0.0, seed=0)


def _rgb(path=PHOTO, size=None):
    rgb = np.asarray(Image.open(path).convert("RGB"))
    if size is not None:
        rgb = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


def _box(x1, y1, x2, y2, cls=0, mode=BoxMode.XYXY_ABS):
    return {"bbox": [x1, y1, x2, y2], "bbox_mode": mode, "category_id": cls}


def _record(path, image_id, anns, size=None):
    d = {"file_name": str(path), "image_id": image_id, "annotations": anns}
    if size is not None:
        d["height"], d["width"] = size
    return d


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _named(messages, *needles):
    return [m for m in messages if all(str(n) in m for n in needles)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The broken files, each built from a real photo. Returns {name: path}."""
    root = tmp_path_factory.mktemp("bad_data")
    rgb = _rgb(size=(160, 200))
    files = {}

    files["good"] = root / "good.png"
    Image.fromarray(rgb).save(files["good"])
    jpeg = open(JPEG, "rb").read()
    files["truncated"] = root / "truncated.jpg"
    files["truncated"].write_bytes(jpeg[: len(jpeg) // 2])
    files["empty"] = root / "empty.jpg"
    files["empty"].write_bytes(b"")
    files["missing"] = root / "missing.png"  # never written
    files["gray"] = root / "gray.png"
    Image.open(GRAY).resize((200, 160)).save(files["gray"])
    files["rgba"] = root / "rgba.png"
    rgba = np.concatenate([rgb, np.linspace(0, 255, 200, dtype=np.uint8)[None, :, None].repeat(160, 0)], 2)
    Image.fromarray(rgba, "RGBA").save(files["rgba"])
    files["gray16"] = root / "gray16.png"
    gray8 = np.asarray(Image.open(files["gray"]))
    Image.fromarray(gray8.astype(np.uint16) * 257).save(files["gray16"])  # full 16-bit range
    files["rgb16"] = root / "rgb16.png"
    cv2.imwrite(str(files["rgb16"]), rgb[:, :, ::-1].astype(np.uint16) * 257)
    files["cmyk"] = root / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(files["cmyk"], quality=95)

    # EXIF orientation 6: the *stored* pixels are the displayed image turned 90 degrees
    # counter-clockwise; viewers (and read_image) rotate them back. Displayed: 160 x 200 (h x w),
    # stored: 200 x 160, with a green block at x 140..190, y 20..80 of the displayed image
    # (beyond the stored width 160, so clipping to the stored size would cut it).
    displayed = rgb.copy()
    displayed[20:80, 140:190] = (0, 255, 0)
    stored = np.ascontiguousarray(np.rot90(displayed, k=1))
    exif = Image.Exif()
    exif[0x0112] = 6
    files["exif"] = root / "exif_rotated.jpg"
    Image.fromarray(stored).save(files["exif"], exif=exif.tobytes(), quality=95)
    files["_exif_displayed"] = displayed
    files["_rgb"] = rgb
    return files


# ------------------------------------------------------------------------------- image files
@pytest.mark.parametrize("name", ["truncated", "empty", "missing"])
def test_unreadable_file_raises_clear_error_for_evaluation(corpus, name):
    d = _record(corpus[name], f"id-{name}", [], (160, 200))
    with pytest.raises(ImageReadError) as e:
        YOLOXTestMapper(128)(d)
    assert str(corpus[name]) in str(e.value) and f"id-{name}" in str(e.value)
    assert e.value.__cause__ is not None  # the decoder's own error is chained


@pytest.mark.parametrize("name", ["empty", "missing"])
def test_missing_or_empty_file_dropped_from_training_and_rejected_for_evaluation(corpus, name, caplog):
    good = _record(corpus["good"], 1, [_box(10, 10, 60, 50)], (160, 200))
    bad = _record(corpus[name], 2, [_box(10, 10, 60, 50)], (160, 200))
    caplog.set_level(logging.INFO)
    ds = MosaicMixupDataset([good, bad], image_size=(160, 200), **PLAIN)
    assert len(ds) == 1 and ds.data_report.dropped_images == 1
    reason = "missing_file" if name == "missing" else "empty_file"
    assert ds.data_report.counts[reason] == 1
    assert _named(_warnings(caplog), corpus[name], "image_id=2")
    assert _named(_warnings(caplog), "summary", f"{reason}=1")
    assert ds[0]["file_name"] == str(corpus["good"])

    with pytest.raises(DatasetValidationError) as e:
        build_yolox_test_loader([good, bad], YOLOXTestMapper(128))
    assert str(corpus[name]) in str(e.value) and "image_id=2" in str(e.value)


def test_truncated_training_image_is_skipped_and_another_drawn(corpus, caplog):
    """Validation cannot see a truncated file (it exists): the sample is replaced at load."""
    good = _record(corpus["good"], 1, [_box(10, 10, 60, 50)], (160, 200))
    trunc = _record(corpus["truncated"], 2, [_box(10, 10, 60, 50)], (427, 640))
    ds = MosaicMixupDataset([trunc, good], image_size=(160, 200), **PLAIN)
    assert len(ds) == 2
    for _ in range(3):
        sample = ds[0]
        assert sample["file_name"] == str(corpus["good"]) and sample["image_id"] == 1
        assert len(sample["instances"]) == 1
    skipped = _named(_warnings(caplog), "Skipping training image", corpus["truncated"], "image_id=2")
    assert len(skipped) == 1, _warnings(caplog)  # once per file and process
    assert "truncated" in skipped[0]
    # mosaic partners are replaced as well: every sample of a mosaic run succeeds
    ds = MosaicMixupDataset([trunc, good, good], image_size=(96, 96), seed=0, hsv_prob=0.0)
    for i in range(8):
        assert ds[i % 3]["image"].shape == (3, 96, 96)


def test_truncated_image_is_skipped_inside_dataloader_workers(corpus, caplog):
    good = _record(corpus["good"], 1, [_box(10, 10, 60, 50)], (160, 200))
    trunc = _record(corpus["truncated"], 2, [_box(10, 10, 60, 50)], (427, 640))
    ds = MosaicMixupDataset([trunc, good, trunc, good], image_size=(96, 96), seed=0)
    loader = build_yolox_train_loader(ds, total_batch_size=4, num_workers=1, seed=0)
    it = iter(loader)
    for _ in range(3):
        batch = next(it)
        assert [tuple(s["image"].shape) for s in batch] == [(3, 96, 96)] * 4
        assert {s["file_name"] for s in batch} == {str(corpus["good"])}


def test_all_images_unreadable_gives_a_clear_error_not_a_hang(corpus):
    trunc = _record(corpus["truncated"], 2, [_box(10, 10, 60, 50)], (427, 640))
    ds = MosaicMixupDataset([trunc, dict(trunc, image_id=3)], image_size=(96, 96), **PLAIN)
    with pytest.raises(RuntimeError, match="every image is unreadable"):
        ds[0]


@pytest.mark.parametrize("name", ["gray", "gray16"])
def test_grayscale_8_and_16_bit_become_3_equal_channels(corpus, name):
    expected = np.asarray(Image.open(corpus["gray"]))  # the 8-bit values
    image = read_image_bgr(_record(corpus[name], 1, [], (160, 200)))
    assert image.shape == (160, 200, 3) and image.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(image[:, :, c], expected)  # 16-bit: v * 257 / 257 == v


@pytest.mark.parametrize("name", ["rgba", "rgb16"])
def test_rgba_and_16_bit_rgb_keep_their_colours(corpus, name):
    image = read_image_bgr(_record(corpus[name], 1, [], (160, 200)))
    assert image.shape == (160, 200, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[:, :, ::-1], corpus["_rgb"])  # alpha dropped


def test_cmyk_jpeg_is_converted(corpus):
    image = read_image_bgr(_record(corpus["cmyk"], 1, [], (160, 200)))
    assert image.shape == (160, 200, 3) and image.dtype == np.uint8
    diff = np.abs(image[:, :, ::-1].astype(int) - corpus["_rgb"].astype(int))
    assert diff.mean() < 6, diff.mean()  # JPEG-level error, not inverted / shifted channels


def test_unusual_pixel_formats_go_through_mosaic_mixup_and_the_test_mapper(corpus):
    names = ["gray", "gray16", "rgba", "rgb16", "cmyk", "exif"]
    dicts = [_record(corpus[n], n, [_box(20, 20, 120, 100)], (160, 200)) for n in names]
    ds = MosaicMixupDataset(dicts, image_size=(96, 96), enable_mixup=True, mixup_prob=1.0, seed=0)
    for i in range(len(dicts)):
        s = ds[i]
        assert s["image"].shape == (3, 96, 96) and s["image"].dtype == torch.uint8
        assert torch.isfinite(s["instances"].gt_boxes.tensor).all()
    ds.set_mosaic_enabled(False)
    for i in range(len(dicts)):
        assert ds[i]["image"].shape == (3, 96, 96)
    for d in dicts:
        out = YOLOXTestMapper(64)(d)
        assert out["image"].shape[0] == 3 and (out["height"], out["width"]) == (160, 200)


@pytest.mark.parametrize("declared", ["displayed", "stored"])
def test_exif_rotated_jpeg_boxes_refer_to_the_displayed_image(corpus, declared, caplog):
    """
    The annotation (the green block) is in the displayed frame. Whether the dict declares the
    displayed size (160 x 200) or the stored JPEG size (200 x 160), training sees the displayed
    image with the box on the block (not clipped to the stored width), and the test mapper
    reports the displayed size so predictions are rescaled in that frame.
    """
    size = (160, 200) if declared == "displayed" else (200, 160)
    d = _record(corpus["exif"], "exif-1", [_box(140, 20, 190, 80)], size)
    image = read_image_bgr(d)
    assert image.shape == (160, 200, 3)
    assert np.abs(image[:, :, ::-1].astype(int) - corpus["_exif_displayed"]).mean() < 6

    ds = MosaicMixupDataset([d], image_size=(160, 200), **PLAIN)
    sample = ds[0]
    np.testing.assert_allclose(sample["instances"].gt_boxes.tensor.numpy(), [[140, 20, 190, 80]])
    block = sample["image"].permute(1, 2, 0).numpy()[22:78, 142:188]  # BGR
    assert block[..., 1].mean() > 230 and block[..., 0].mean() < 30 and block[..., 2].mean() < 30

    out = YOLOXTestMapper((160, 200))(d)
    assert (out["height"], out["width"]) == (160, 200)
    msgs = _named(_warnings(caplog), corpus["exif"], "EXIF")
    assert bool(msgs) == (declared == "stored")


def test_wrong_declared_size_skipped_in_training_and_raised_in_evaluation(corpus, caplog):
    good = _record(corpus["good"], 1, [_box(10, 10, 60, 50)], (160, 200))
    wrong = _record(corpus["good"], 2, [_box(10, 10, 60, 50)], (300, 300))
    ds = MosaicMixupDataset([wrong, good], image_size=(160, 200), **PLAIN)
    assert ds[0]["image_id"] == 1
    assert _named(_warnings(caplog), "Skipping", corpus["good"], "image_id=2", "300x300")
    with pytest.raises(ImageSizeMismatchError, match="image_id=2"):
        YOLOXTestMapper(128)(wrong)


def test_invalid_declared_size_is_ignored_in_training(corpus, caplog):
    for h, w in [(0, 200), (float("nan"), 200), (-160, 200), ("abc", 200)]:
        d = _record(corpus["good"], 5, [_box(10, 10, 60, 50)])
        d["height"], d["width"] = h, w
        ds = MosaicMixupDataset([d], image_size=(160, 200), **PLAIN)
        assert ds.data_report.counts["invalid_image_size"] == 1
        np.testing.assert_allclose(ds[0]["instances"].gt_boxes.tensor.numpy(), [[10, 10, 60, 50]])
        with pytest.raises(DatasetValidationError, match="invalid height"):
            build_yolox_test_loader([d], YOLOXTestMapper(128))


# ------------------------------------------------------------------------------- annotations
def _boxes_of(ds, i=0):
    return ds[i]["instances"].gt_boxes.tensor.numpy(), ds[i]["instances"].gt_classes.numpy()


@pytest.mark.parametrize(
    "bad, reason",
    [
        (_box(10, 10, 10, 50), "degenerate_bbox"),  # zero width
        (_box(60, 10, 10, 50), "degenerate_bbox"),  # negative width
        (_box(10, 10, 0, -5, mode=BoxMode.XYWH_ABS), "degenerate_bbox"),  # zero w, negative h
        (_box(10, float("nan"), 60, 50), "non_finite_bbox"),
        (_box(10, 10, float("inf"), 50), "non_finite_bbox"),
        (_box(-float("inf"), 10, 60, 50), "non_finite_bbox"),
        ({"bbox": [1, 2, 3], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0}, "malformed_bbox"),
        ({"bbox": ["a", 2, 3, 4], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0}, "malformed_bbox"),
        ({"bbox_mode": BoxMode.XYXY_ABS, "category_id": 0}, "malformed_bbox"),
        ({"bbox": [50, 50, 20, 10, 30], "bbox_mode": BoxMode.XYWHA_ABS, "category_id": 0}, "unsupported_bbox_mode"),
        ({"bbox": [10, 10, 60, 50], "category_id": 0}, "unsupported_bbox_mode"),
        ({"bbox": [10, 10, 60, 50], "bbox_mode": BoxMode.XYXY_ABS}, "invalid_category_id"),
        (_box(10, 10, 60, 50, cls=float("nan")), "invalid_category_id"),
        (_box(10, 10, 60, 50, cls=0.5), "invalid_category_id"),
        (_box(10, 10, 60, 50, cls=-1), "undeclared_category_id"),
        ("not a dict", "malformed_annotation"),
    ],
)
def test_bad_box_is_dropped_with_a_warning(corpus, caplog, bad, reason):
    good = _box(100, 40, 180, 120, cls=0)
    d = _record(corpus["good"], "img-7", [good, bad], (160, 200))
    ds = MosaicMixupDataset([d], image_size=(160, 200), **PLAIN)
    assert ds.data_report.counts[reason] == 1 and ds.data_report.dropped_boxes == 1
    boxes, classes = _boxes_of(ds)
    np.testing.assert_allclose(boxes, [[100, 40, 180, 120]])
    np.testing.assert_array_equal(classes, [0])
    assert _named(_warnings(caplog), corpus["good"], "image_id='img-7'", "box dropped")
    assert _named(_warnings(caplog), "summary", f"{reason}=1")


def test_boxes_partly_outside_are_clipped_and_wholly_outside_dropped(corpus, caplog):
    anns = [
        _box(-20, -10, 50, 40),  # partly outside (top-left)
        _box(150, 100, 260, 200),  # partly outside (bottom-right)
        _box(210, 10, 260, 50),  # right of the image
        _box(10, -80, 50, -5),  # above the image
        _box(30, 30, 90, 90),  # inside
    ]
    d = _record(corpus["good"], 3, anns, (160, 200))
    ds = MosaicMixupDataset([d], image_size=(160, 200), **PLAIN)
    counts = ds.data_report.counts
    assert counts["bbox_partly_outside"] == 2 and counts["bbox_outside_image"] == 2
    boxes, _ = _boxes_of(ds)
    np.testing.assert_allclose(boxes, [[0, 0, 50, 40], [150, 100, 200, 160], [30, 30, 90, 90]])
    assert len(_named(_warnings(caplog), corpus["good"], "image_id=3", "outside")) == 4


def test_relative_boxes_are_converted(corpus):
    anns = [
        _box(0.05, 0.25, 0.3, 0.5, mode=BoxMode.XYXY_REL),
        _box(0.5, 0.5, 0.25, 0.25, mode=BoxMode.XYWH_REL),
    ]
    d = _record(corpus["good"], 3, anns, (160, 200))
    boxes, _ = _boxes_of(MosaicMixupDataset([d], image_size=(160, 200), **PLAIN))
    np.testing.assert_allclose(boxes, [[10, 40, 60, 80], [100, 80, 150, 120]], atol=1e-4)
    # without a size a relative box cannot be placed: dropped, not guessed
    nosize = _record(corpus["good"], 4, anns + [_box(10, 10, 60, 50)])
    ds = MosaicMixupDataset([nosize], image_size=(160, 200), **PLAIN)
    assert ds.data_report.counts["relative_bbox_without_size"] == 2
    np.testing.assert_allclose(_boxes_of(ds)[0], [[10, 10, 60, 50]])


def _register(name, dicts, **metadata):
    DatasetCatalog.register(name, lambda: dicts)
    MetadataCatalog.get(name).set(**metadata)


def test_category_ids_checked_against_the_registered_metadata(corpus, caplog):
    name = f"bad_data_cats_{uuid.uuid4().hex[:6]}"
    dicts = [
        _record(corpus["good"], 1, [_box(10, 10, 60, 50, cls=0), _box(70, 10, 120, 50, cls=2)], (160, 200)),
        _record(corpus["good"], 2, [_box(10, 60, 60, 100, cls=1), _box(70, 60, 120, 100, cls=7)], (160, 200)),
    ]
    _register(name, dicts, thing_classes=["a", "b", "c"])
    try:
        # Detectron2's own loader stops the run on the undeclared id
        with pytest.raises(AssertionError):
            get_detection_dataset_dicts(name)
        out = get_validated_dataset_dicts(name)
        assert out.report.counts["undeclared_category_id"] == 1
        assert [[a["category_id"] for a in d["annotations"]] for d in out] == [[0, 2], [1]]
        assert _named(_warnings(caplog), "image_id=2", "category_id=7", "0..2")
        ds = MosaicMixupDataset(out, image_size=(160, 200), **PLAIN)
        assert ds.data_report is out.report  # not validated twice
        np.testing.assert_array_equal(_boxes_of(ds, 1)[1], [1])
        # the same dicts given directly with the dataset name
        ds = MosaicMixupDataset(dicts, image_size=(160, 200), dataset_name=name, **PLAIN)
        assert ds.data_report.counts["undeclared_category_id"] == 1
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_dataset_category_ids_are_mapped_to_contiguous_ids(corpus, caplog):
    """Records holding the dataset's own ids (e.g. COCO's 1..90) and the metadata's id map."""
    name = f"bad_data_raw_ids_{uuid.uuid4().hex[:6]}"
    dicts = [
        _record(corpus["good"], 1, [_box(10, 10, 60, 50, cls=3), _box(70, 10, 120, 50, cls=17)], (160, 200)),
        _record(corpus["good"], 2, [_box(10, 60, 60, 100, cls=90)], (160, 200)),
    ]
    _register(name, dicts, thing_classes=["a", "b", "c"], thing_dataset_id_to_contiguous_id={3: 0, 17: 1, 90: 2})
    try:
        out = get_validated_dataset_dicts(name)
        assert [[a["category_id"] for a in d["annotations"]] for d in out] == [[0, 1], [2]]
        assert out.report.counts["category_id_remapped"] == 3 and out.report.dropped_boxes == 0
        assert _named(_warnings(caplog), "thing_dataset_id_to_contiguous_id")
        # records whose ids are already contiguous (as Detectron2's COCO loader makes them) are
        # left alone, even though 3 is also a dataset id of the map
        plain = [_record(corpus["good"], 3, [_box(10, 10, 60, 50, cls=c)], (160, 200)) for c in (2, 0, 1)]
        assert [d["annotations"][0]["category_id"] for d in validate_dataset_dicts(plain, name)] == [2, 0, 1]
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_images_without_annotations(corpus, caplog):
    empty = [_record(corpus["good"], 1, []), dict(_record(corpus["good"], 2, []), annotations=None)]
    nokey = {"file_name": str(corpus["good"]), "image_id": 3}
    ds = MosaicMixupDataset(empty + [nokey], image_size=(96, 96), seed=0)
    assert ds.data_report.counts["no_annotations"] == 3
    for i in range(3):
        s = ds[i]
        assert len(s["instances"]) == 0 and s["instances"].gt_boxes.tensor.shape == (0, 4)
    # the bundled loader's default drops them for training (Detectron2's filter_empty)
    name = f"bad_data_empty_{uuid.uuid4().hex[:6]}"
    _register(name, empty + [_record(corpus["good"], 4, [_box(10, 10, 60, 50)])], thing_classes=["a"])
    try:
        out = get_validated_dataset_dicts(name)
        assert [d["image_id"] for d in out] == [4] and out.report.counts["filtered_empty"] == 2
        assert len(get_validated_dataset_dicts(name, filter_empty=False)) == 3
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def _yolox_nano(num_classes=1):
    from detectron2.config import LazyConfig

    cfg = LazyConfig.load(os.path.join(os.path.dirname(__file__), "..", "configs", "yolox_nano.py"))
    cfg.model.num_classes = num_classes
    torch.manual_seed(0)
    return instantiate(cfg.model).train()


def test_image_with_2000_boxes(corpus):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 1, (2000, 2)) * [180, 140]
    wh = rng.uniform(4, 20, (2000, 2))
    anns = [_box(x, y, min(x + w, 200), min(y + h, 160)) for (x, y), (w, h) in zip(xy, wh)]
    d = _record(corpus["good"], 9, anns, (160, 200))
    capped = MosaicMixupDataset([d], image_size=(160, 200), **PLAIN)
    assert capped.data_report.counts["more_than_max_labels"] == 1
    assert len(capped[0]["instances"]) == 120  # the recipe's max_labels
    full = MosaicMixupDataset([d], image_size=(160, 200), max_labels=None, **PLAIN)
    sample = full[0]
    assert len(sample["instances"]) > 1900  # all but the ones <= 1 px after clipping
    # the model trains on it: SimOTA with ~2000 ground truths, finite loss and gradients
    model = _yolox_nano()
    losses = model([sample])
    total = sum(losses.values())
    assert all(torch.isfinite(v) for v in losses.values()), losses
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_model_rejects_class_ids_beyond_num_classes_by_name(corpus):
    d = _record(corpus["good"], "img-42", [_box(10, 10, 60, 50, cls=3)], (160, 200))
    sample = MosaicMixupDataset([d], image_size=(160, 200), **PLAIN)[0]  # no metadata: kept
    with pytest.raises(ValueError, match=r"image_id='img-42'.*\[3\].*num_classes=1"):
        _yolox_nano(num_classes=1)([sample])


def test_evaluation_reports_annotation_problems_without_changing_the_records(corpus, caplog):
    name = f"bad_data_eval_{uuid.uuid4().hex[:6]}"
    dicts = [
        _record(corpus["good"], 1, [_box(10, 10, float("nan"), 50), _box(10, 10, 60, 50, cls=5)], (160, 200)),
        _record(corpus["good"], 1, [], (160, 200)),  # duplicate image_id
    ]
    _register(name, dicts, thing_classes=["a"])
    try:
        loader = build_yolox_test_loader(name, YOLOXTestMapper(64))
        assert len(list(loader)) == 2  # every image evaluated
        warnings = _warnings(caplog)
        assert _named(warnings, "NaN or infinite", "reported only")
        assert _named(warnings, "category_id=5", "reported only")
        assert _named(warnings, "'image_id' used by several records")
        assert math.isnan(DatasetCatalog.get(name)[0]["annotations"][0]["bbox"][2])
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_summary_is_logged_once_with_counts_per_reason(corpus, caplog):
    caplog.set_level(logging.INFO)
    dicts = [
        _record(corpus["good"], 1, [_box(10, 10, 10, 50), _box(1, 1, float("nan"), 3), _box(10, 10, 60, 50)]),
        _record(corpus["missing"], 2, [_box(10, 10, 60, 50)]),
        _record(corpus["good"], 3, []),
    ]
    MosaicMixupDataset(dicts, image_size=(96, 96), **PLAIN)
    summaries = [m for m in (r.getMessage() for r in caplog.records) if "Data validation summary" in m]
    assert len(summaries) == 1
    for part in ("degenerate_bbox=1", "non_finite_bbox=1", "missing_file=1", "no_annotations=1",
                 "1 images and 2 boxes dropped"):
        assert part in summaries[0], summaries[0]
