"""
:class:`MosaicMixupDataset`, the loaders and the test mapper: output format, box / pixel
consistency through the whole pipeline, the mosaic switch reaching (forked and spawned,
persistent) DataLoader workers, partner sampling over the whole dataset, fixed batch shapes,
LazyConfig settability, reproducibility and error messages.
"""

import collections
import os
import uuid

import cv2
import numpy as np
import pytest
import torch
from detectron2.config import LazyCall as L
from detectron2.config import instantiate
from detectron2.data import DatasetCatalog, get_detection_dataset_dicts
from detectron2.structures import Boxes, BoxMode, Instances

from yolox_d2.data import transforms as T
from yolox_d2.data.build import build_yolox_test_loader, build_yolox_train_loader, find_mosaic_dataset
from yolox_d2.data.augmentation_defaults import yolox_augmentation_defaults
from yolox_d2.data.image_io import ImageReadError
from yolox_d2.data.mappers import YOLOXTestMapper
from yolox_d2.data.mosaic_dataset import MosaicMixupDataset

from tests.test_transforms import PALETTE, check_boxes

SIZES = [(120, 160), (160, 120), (100, 100), (90, 200), (200, 90), (140, 140), (80, 120)]


def _write_dataset(root, n, with_empty=False):
    """n synthetic images, image i holds one rectangle of colour i % 7 (class i % 7)."""
    os.makedirs(root, exist_ok=True)
    dicts = []
    for i in range(n):
        h, w = SIZES[i % len(SIZES)]
        img = np.zeros((h, w, 3), np.uint8)
        img[:, :, 2] = 40 + (i * 37) % 150  # a per-image tint in R (not in the palette range)
        x1, y1 = w // 5 + (i % 3) * 3, h // 4
        x2, y2 = x1 + w // 3, y1 + h // 3
        img[y1:y2, x1:x2] = PALETTE[i % 7]
        path = os.path.join(root, f"img_{i:03d}.png")
        cv2.imwrite(path, img)
        anns = (
            []
            if (with_empty and i == n - 1)
            else [{"bbox": [x1, y1, x2 - x1, y2 - y1], "bbox_mode": BoxMode.XYWH_ABS, "category_id": i % 7}]
        )
        dicts.append({"file_name": path, "height": h, "width": w, "image_id": 1000 + i, "annotations": anns})
    return dicts


@pytest.fixture(scope="module")
def dicts(tmp_path_factory):
    return _write_dataset(str(tmp_path_factory.mktemp("mosaic_data")), 7)


@pytest.fixture(scope="module")
def big_dicts(tmp_path_factory):
    return _write_dataset(str(tmp_path_factory.mktemp("mosaic_data_big")), 40, with_empty=True)


def expected_plain(d, size):
    img = cv2.imread(d["file_name"], cv2.IMREAD_COLOR)
    out, _, _ = T.letterbox(img, np.zeros((0, 4)), size)
    return out


def is_plain(sample, dicts_by_file, size):
    img = sample["image"].permute(1, 2, 0).numpy()
    return np.array_equal(img, expected_plain(dicts_by_file[sample["file_name"]], size))


# ------------------------------------------------------------------------------------------
def test_output_format_both_modes(big_dicts):
    ds = MosaicMixupDataset(big_dicts, image_size=(96, 128), seed=0)
    assert ds.mosaic_enabled
    for mosaic_on in (True, False):
        ds.set_mosaic_enabled(mosaic_on)
        assert ds.mosaic_enabled == mosaic_on
        for i in [0, 5, len(ds) - 1]:
            s = ds[i]
            assert set(s) == {"image", "instances", "height", "width", "file_name", "image_id"}
            assert s["image"].dtype == torch.uint8 and tuple(s["image"].shape) == (3, 96, 128)
            assert (s["height"], s["width"]) == (96, 128)
            assert s["file_name"] == big_dicts[i]["file_name"] and s["image_id"] == big_dicts[i]["image_id"]
            inst = s["instances"]
            assert isinstance(inst, Instances) and inst.image_size == (96, 128)
            assert isinstance(inst.gt_boxes, Boxes) and inst.gt_boxes.tensor.dtype == torch.float32
            assert inst.gt_classes.dtype == torch.int64
            b = inst.gt_boxes.tensor
            if len(b):
                assert (b[:, 0] >= 0).all() and (b[:, 2] <= 128).all() and (b[:, 1] >= 0).all()
                assert (
                    (b[:, 3] <= 96).all() and (b[:, 2] - b[:, 0] > 1).all() and (b[:, 3] - b[:, 1] > 1).all()
                )
    # the image without annotations gives an empty Instances in plain mode
    s = ds[len(ds) - 1]
    assert len(s["instances"]) == 0


@pytest.mark.parametrize("seed,pivot", [(0, "center"), (1, "center"), (2, "center"), (3, "center"), (0, "origin"), (1, "origin")])
def test_box_consistency_through_dataset(dicts, seed, pivot):
    """Mosaic + affine + flip (no MixUp / HSV, which change colours): boxes follow pixels,
    with either affine pivot."""
    ds = MosaicMixupDataset(
        dicts,
        image_size=(128, 128),
        affine_pivot=pivot,
        enable_mixup=False,
        hsv_prob=0.0,
        mosaic_scale=(0.5, 1.5),
        seed=seed,
        max_labels=None,
    )
    for i in range(len(ds)):
        s = ds[i]
        img = s["image"].permute(1, 2, 0).numpy()
        boxes, classes = s["instances"].gt_boxes.tensor.numpy(), s["instances"].gt_classes.numpy()
        # rectangles are at most 67x53 px, scaled <= 1.6 (letterbox) * 1.5 (affine)
        check_boxes(
            img, boxes, classes, range(7), max_dropped_area={k: 0.2 * 67 * 53 * 2.4**2 for k in range(7)}
        )
    ds.set_mosaic_enabled(False)
    for i in range(len(ds)):
        s = ds[i]
        img = s["image"].permute(1, 2, 0).numpy()
        check_boxes(
            img, s["instances"].gt_boxes.tensor.numpy(), s["instances"].gt_classes.numpy(), range(7), tol=1.5
        )


def test_affine_pivot_is_checked_and_changes_the_samples(dicts):
    with pytest.raises(ValueError, match="affine_pivot"):
        MosaicMixupDataset(dicts, image_size=(64, 64), affine_pivot="corner")
    kw = dict(image_size=(128, 128), enable_mixup=False, hsv_prob=0.0, flip_prob=0.0, seed=0)
    a = MosaicMixupDataset(dicts, affine_pivot="center", **kw)[0]["image"]
    b = MosaicMixupDataset(dicts, affine_pivot="origin", **kw)[0]["image"]
    assert a.shape == b.shape and not torch.equal(a, b)
    # the default is the official (origin) pivot
    assert torch.equal(MosaicMixupDataset(dicts, **kw)[0]["image"], b)


def test_plain_mode_is_official_train_transform(dicts):
    """Mosaic off, no flip / HSV: exactly the letterboxed image padded with 114."""
    ds = MosaicMixupDataset(dicts, image_size=(128, 96), enable_mosaic=False, hsv_prob=0.0, flip_prob=0.0)
    for i, d in enumerate(dicts):
        s = ds[i]
        np.testing.assert_array_equal(s["image"].permute(1, 2, 0).numpy(), expected_plain(d, (128, 96)))
        x, y, w, h = d["annotations"][0]["bbox"]
        r = min(128 / d["height"], 96 / d["width"])
        np.testing.assert_allclose(
            s["instances"].gt_boxes.tensor.numpy(), [[x * r, y * r, (x + w) * r, (y + h) * r]], rtol=1e-5
        )
    # flip always: boxes mirrored inside the resized (unpadded) image
    ds = MosaicMixupDataset(dicts, image_size=(128, 96), enable_mosaic=False, hsv_prob=0.0, flip_prob=1.0)
    s = ds[3]
    d = dicts[3]
    r = min(128 / d["height"], 96 / d["width"])
    rw = int(d["width"] * r)
    x, y, w, h = d["annotations"][0]["bbox"]
    np.testing.assert_allclose(
        s["instances"].gt_boxes.tensor.numpy(),
        [[rw - (x + w) * r, y * r, rw - x * r, (y + h) * r]],
        rtol=1e-5,
    )


def test_mixup_and_max_labels(big_dicts):
    ds = MosaicMixupDataset(big_dicts, image_size=(96, 96), seed=1, max_labels=3, mosaic_scale=(0.3, 0.5))
    counts = [len(ds[i]["instances"]) for i in range(20)]
    assert max(counts) == 3
    ds = MosaicMixupDataset(big_dicts, image_size=(96, 96), seed=1, max_labels=None, mosaic_scale=(0.3, 0.5))
    assert max(len(ds[i]["instances"]) for i in range(20)) > 3


def test_partners_drawn_from_whole_dataset(big_dicts):
    """Mosaic / MixUp partners are uniform over all images (not a pool of recent ones)."""
    ds = MosaicMixupDataset(big_dicts, image_size=(64, 64), seed=0)
    loaded, drawn, partners, reads = [], [], [], 0
    original_load, original_readable = ds._load, ds._readable

    def recording_load(index):
        loaded.append(int(index))
        return original_load(index)

    def recording_readable(index, rng, pool=None):
        drawn.append(original_readable(index, rng, pool))
        return drawn[-1]

    ds._load = recording_load
    ds._readable = recording_readable
    for _ in range(150):
        del loaded[:], drawn[:]
        ds[0]
        assert loaded[0] == 0 and drawn[0] == 0  # the primary image first, and always read
        # Partners as drawn: an image drawn twice in a sample is read once, and one in a slot
        # the affine leaves out of the output is not read at all, so reads undercount draws.
        assert set(loaded) <= set(drawn)
        partners.extend(drawn[1:])
        reads += len(loaded)
    assert reads < 150 + len(partners)  # some partners were not read
    counts = collections.Counter(partners)
    # 3 mosaic partners + (usually) 1 MixUp partner per sample: ~590 draws over 40 images
    assert len(counts) == 40, sorted(counts)
    assert max(counts.values()) < 35 and min(counts.values()) >= 3


def test_mosaic_flag_and_rng_reach_forked_workers(big_dicts):
    _check_workers(big_dicts, context=None)


def test_mosaic_flag_reaches_spawned_workers(big_dicts):
    _check_workers(big_dicts, context="spawn", n_checks=1, num_workers=1)


def _check_workers(dataset_dicts, context, n_checks=2, num_workers=2):
    by_file = {d["file_name"]: d for d in dataset_dicts}
    ds = MosaicMixupDataset(dataset_dicts, image_size=(64, 64), hsv_prob=0.0, flip_prob=0.0)
    kwargs = dict(persistent_workers=True, prefetch_factor=1)
    if context:
        kwargs["multiprocessing_context"] = context
    loader = build_yolox_train_loader(ds, total_batch_size=4, num_workers=num_workers, seed=0, **kwargs)
    assert find_mosaic_dataset(loader) is ds
    it = iter(loader)
    first = next(it)
    assert len(first) == 4 and not any(is_plain(s, by_file, (64, 64)) for s in first)
    pids = set()
    for _ in range(n_checks):
        ds.set_mosaic_enabled(False)
        batches = [next(it) for _ in range(4)]  # prefetched batches may predate the switch
        assert all(is_plain(s, by_file, (64, 64)) for s in batches[-1])
        ds.set_mosaic_enabled(True)
        batches = [next(it) for _ in range(4)]
        assert not any(is_plain(s, by_file, (64, 64)) for s in batches[-1])
    del it


def test_loader_reproducible_and_fixed_batch_shapes(big_dicts):
    def run(seed, workers):
        ds = MosaicMixupDataset(big_dicts, image_size=(64, 96))
        loader = build_yolox_train_loader(ds, total_batch_size=4, num_workers=workers, seed=seed)
        it = iter(loader)
        out = [next(it) for _ in range(3)]
        del it
        return out

    a = run(0, 2)
    for batch in a:
        assert isinstance(batch, list) and len(batch) == 4
        assert {tuple(s["image"].shape) for s in batch} == {(3, 64, 96)}
    b = run(0, 2)
    c = run(1, 2)
    flat = lambda batches: [(s["file_name"], s["image"]) for bt in batches for s in bt]  # noqa: E731
    for (fa, ia), (fb, ib) in zip(flat(a), flat(b)):
        assert fa == fb and torch.equal(ia, ib)
    assert any(not torch.equal(ia, ic) for (_, ia), (_, ic) in zip(flat(a), flat(c)))
    # main process (no workers) with the same seed is reproducible too
    d, e = run(3, 0), run(3, 0)
    for (fd, idd), (fe, ie) in zip(flat(d), flat(e)):
        assert fd == fe and torch.equal(idd, ie)


def test_worker_generators_differ(big_dicts, monkeypatch):
    ds = MosaicMixupDataset(big_dicts, image_size=(64, 64), seed=0)
    Info = collections.namedtuple("Info", "id seed")
    draws = []
    for wid, wseed in [(0, 100), (1, 101), (0, 100)]:
        monkeypatch.setattr(
            torch.utils.data, "get_worker_info", lambda wid=wid, wseed=wseed: Info(wid, wseed)
        )
        ds._rng = None
        draws.append(ds._generator().integers(0, 2**31, 4).tolist())
    assert draws[0] != draws[1] and draws[0] == draws[2]


def test_lazyconfig_and_per_size_defaults(dicts):
    name = f"_yolox_d2_test_{uuid.uuid4().hex[:8]}"
    DatasetCatalog.register(name, lambda: dicts)
    try:
        cfg = L(build_yolox_train_loader)(
            dataset=L(MosaicMixupDataset)(
                dataset_dicts=L(get_detection_dataset_dicts)(names=name),
                **yolox_augmentation_defaults("nano"),
            ),
            total_batch_size=2,
            num_workers=0,
        )
        cfg.dataset.image_size = (96, 64)  # override like a config file would
        cfg.dataset.degrees = 5.0
        loader = instantiate(cfg)
        ds = find_mosaic_dataset(loader)
        assert isinstance(ds, MosaicMixupDataset)
        assert ds.mosaic_prob == 0.5 and not ds.enable_mixup and ds.mosaic_scale == (0.5, 1.5)
        assert ds.image_size == (96, 64) and ds.degrees == 5.0 and len(ds) == len(dicts)
        batch = next(iter(loader))
        assert [tuple(s["image"].shape) for s in batch] == [(3, 96, 64)] * 2
    finally:
        DatasetCatalog.remove(name)
    full = yolox_augmentation_defaults("yolox_l")
    assert full["enable_mixup"] and full["mosaic_scale"] == (0.1, 2.0) and full["mixup_scale"] == (0.5, 1.5)
    assert yolox_augmentation_defaults("tiny")["image_size"] == (416, 416)
    with pytest.raises(KeyError):
        yolox_augmentation_defaults("huge")


def test_constructor_defaults_are_the_large_model_recipe(dicts):
    """MosaicMixupDataset's augmentation defaults (what LazyConfig sees) are the table's L row."""
    import inspect

    params = inspect.signature(MosaicMixupDataset).parameters
    large = yolox_augmentation_defaults("l")
    assert {k: params[k].default for k in large} == large
    assert large == dict(
        image_size=(640, 640),
        mosaic_prob=1.0,
        mixup_prob=1.0,
        enable_mixup=True,
        mosaic_scale=(0.1, 2.0),
        mixup_scale=(0.5, 1.5),
        degrees=10.0,
        translate=0.1,
        shear=2.0,
        hsv_prob=1.0,
        flip_prob=0.5,
    )
    name = f"_yolox_d2_test_{uuid.uuid4().hex[:8]}"
    DatasetCatalog.register(name, lambda: dicts)
    try:
        ds = instantiate(L(MosaicMixupDataset)(dataset_dicts=L(get_detection_dataset_dicts)(names=name)))
    finally:
        DatasetCatalog.remove(name)
    assert ds.image_size == (640, 640) and ds.mosaic_scale == (0.1, 2.0) and ds.mixup_scale == (0.5, 1.5)
    assert (ds.mosaic_prob, ds.mixup_prob, ds.enable_mixup, ds.hsv_prob, ds.flip_prob) == (1.0, 1.0, True, 1.0, 0.5)
    assert (ds.degrees, ds.translate, ds.shear) == (10.0, 0.1, 2.0)


def test_unreadable_image_error_names_file(tmp_path, dicts, caplog):
    """
    Training skips what it cannot read (validation drops the missing file, the sample of an
    undecodable one is replaced), naming the file and id; the test mapper raises instead.
    """
    missing = dict(dicts[0], file_name=str(tmp_path / "does_not_exist.png"), image_id="img-404")
    garbage_path = tmp_path / "garbage.png"
    garbage_path.write_bytes(b"this is not an image")
    garbage = dict(dicts[1], file_name=str(garbage_path), image_id=77)
    for bad in (missing, garbage):
        caplog.clear()
        ds = MosaicMixupDataset([bad] + dicts, image_size=(64, 64), enable_mosaic=False, seed=0)
        sample = ds[0]
        assert sample["file_name"] != bad["file_name"]
        assert sample["file_name"] in {d["file_name"] for d in dicts}
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any(bad["file_name"] in m and repr(bad["image_id"]) in m for m in warnings), warnings
        with pytest.raises(ImageReadError) as e:
            YOLOXTestMapper((64, 64))(bad)
        assert bad["file_name"] in str(e.value) and str(bad["image_id"]) in str(e.value)


def test_test_mapper_sizes(tmp_path):
    for (H, W), size in [
        ((300, 500), (640, 640)),
        ((1035, 1249), (640, 640)),
        ((480, 640), (416, 416)),
        ((100, 50), 64),
    ]:
        path = str(tmp_path / f"im_{H}_{W}.png")
        cv2.imwrite(path, np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8))
        d = {"file_name": path, "height": H, "width": W, "image_id": 7, "annotations": []}
        out = YOLOXTestMapper(size)(d)
        sh, sw = (size, size) if isinstance(size, int) else size
        r = min(sh / H, sw / W)
        assert tuple(out["image"].shape) == (3, int(H * r), int(W * r))
        assert out["image"].dtype == torch.uint8
        assert (out["height"], out["width"], out["image_id"], out["file_name"]) == (H, W, 7, path)
        assert "annotations" not in out
        ref, _ = T.letterbox_resize(cv2.imread(path), size)
        np.testing.assert_array_equal(out["image"].permute(1, 2, 0).numpy(), ref)
    loader = build_yolox_test_loader([d, d], YOLOXTestMapper(32), batch_size=1)
    batches = list(loader)
    assert len(batches) == 2 and tuple(batches[0][0]["image"].shape) == (3, 32, 16)


def test_fast_png_reader_matches_the_general_reader(tmp_path, monkeypatch):
    """
    Training reads plain 8-bit PNGs with OpenCV and everything else with read_image_bgr:
    the same pixels either way, and the same errors (naming the file and id).
    """
    from PIL import Image, PngImagePlugin

    from yolox_d2.data import image_io
    from yolox_d2.data.image_io import ImageSizeMismatchError, read_image_bgr

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    files = {}
    for name, image, kwargs in [
        ("rgb", Image.fromarray(rgb), {}),
        ("gray", Image.fromarray(rgb[:, :, 0]), {}),
        ("rgba", Image.fromarray(np.concatenate([rgb, rgb[:, :, :1]], 2), "RGBA"), {}),
        ("gray16", Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257), {}),
        ("palette", Image.fromarray(rgb).convert("P"), {}),
    ]:
        files[name] = tmp_path / f"{name}.png"
        image.save(files[name], **kwargs)
    exif = Image.Exif()
    exif[0x0112] = 6
    files["exif"] = tmp_path / "exif.png"
    Image.fromarray(rgb).save(files["exif"], exif=exif.tobytes())
    xmp = PngImagePlugin.PngInfo()
    xmp.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta><rdf:Description tiff:Orientation="8"/></x:xmpmeta>')
    files["xmp"] = tmp_path / "xmp.png"
    Image.fromarray(rgb).save(files["xmp"], pnginfo=xmp)
    files["jpeg"] = tmp_path / "photo.jpg"
    Image.fromarray(rgb).save(files["jpeg"], quality=90)

    general_calls = []
    original = image_io.read_image_bgr

    def counting(record, *args, **kwargs):
        general_calls.append(record["file_name"])
        return original(record, *args, **kwargs)

    monkeypatch.setattr(image_io, "read_image_bgr", counting)
    for name, path in files.items():
        expected = read_image_bgr({"file_name": str(path), "image_id": 1})
        h, w = expected.shape[:2]
        record = {"file_name": str(path), "image_id": 1, "height": h, "width": w}
        del general_calls[:]
        np.testing.assert_array_equal(image_io.read_training_image(record), expected, err_msg=name)
        fast = name in ("rgb", "gray", "rgba")
        assert (general_calls == []) == fast, (name, general_calls)
    assert read_image_bgr({"file_name": str(files["exif"])}).shape[:2] == (50, 40)  # rotated

    data = files["rgb"].read_bytes()
    broken = {
        "truncated": data[: len(data) // 2],
        "no_iend": data[:-12],
        "garbage": b"\x89PNG\r\n\x1a\n" + b"x" * 40,
    }
    for name, content in broken.items():
        path = tmp_path / f"{name}.png"
        path.write_bytes(content)
        record = {"file_name": str(path), "image_id": f"id-{name}", "height": 40, "width": 50}
        try:
            expected = read_image_bgr(record)
        except ImageReadError as e:
            with pytest.raises(ImageReadError) as got:
                image_io.read_training_image(record)
            assert str(got.value) == str(e) and str(path) in str(e) and f"id-{name}" in str(e)
        else:  # PIL accepts a PNG without IEND; OpenCV does not, the general reader is used
            np.testing.assert_array_equal(image_io.read_training_image(record), expected)
    wrong_size = {"file_name": str(files["rgb"]), "image_id": 9, "height": 50, "width": 40}
    with pytest.raises(ImageSizeMismatchError, match="image_id=9"):
        image_io.read_training_image(wrong_size)
