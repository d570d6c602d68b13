"""Start-up checks: image headers and declared sizes (check_image_files), class counts (check_num_classes)."""
import logging
import os
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog

from yolox_d2.data.validation import DatasetValidationError, check_image_files, check_num_classes


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Good and broken image files; ``(h, w)`` of the good ones is 40 x 60."""
    root = tmp_path_factory.mktemp("images")
    rgb = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    out = {"png": root / "good.png", "jpg": root / "good.jpg"}
    Image.fromarray(rgb).save(out["png"])
    Image.fromarray(rgb).save(out["jpg"], quality=90)
    out["truncated"] = root / "truncated_header.png"
    out["truncated"].write_bytes(out["png"].read_bytes()[:20])  # signature, then IHDR cut short
    out["garbage"] = root / "not_an_image.jpg"
    out["garbage"].write_bytes(b"this is a text file" * 10)
    out["empty"] = root / "empty.jpg"
    out["empty"].write_bytes(b"")
    out["missing"] = root / "missing.jpg"
    # stored 60 x 40 (h x w) with EXIF orientation 6: displayed 40 x 60
    exif = Image.Exif()
    exif[0x0112] = 6
    out["exif"] = root / "exif_rotated.jpg"
    Image.fromarray(np.ascontiguousarray(np.rot90(rgb))).save(out["exif"], exif=exif.tobytes())
    return out


def _rec(path, image_id, h=40, w=60):
    return {"file_name": str(path), "image_id": image_id, "height": h, "width": w}


def test_good_files_and_exif_sizes_pass(files):
    records = [
        _rec(files["png"], 1),
        _rec(files["jpg"], 2),
        {"file_name": str(files["png"]), "image_id": 3},  # no declared size: header only
        _rec(files["exif"], 4, 40, 60),  # displayed size
        _rec(files["exif"], 5, 60, 40),  # stored (pre-EXIF) size, accepted as read_image_bgr does
    ]
    assert check_image_files(records, "good", mode="eval") == []
    assert check_image_files(records, "good", mode="eval", num_threads=1) == []


def test_transposed_size_without_exif_is_wrong(files):
    (problem,) = check_image_files([_rec(files["png"], "p", 60, 40)], mode="train")
    assert "declared height x width 60x40 but the PNG header says 40x60" in problem.problem


BROKEN = {
    "truncated": "image header not readable",
    "garbage": "image header not readable",
    "empty": "empty file (0 bytes)",
    "missing": "file not found",
    "wrong_size": "declared height x width 41x60 but the JPEG header says 40x60",
}


def _broken_records(files):
    records = [_rec(files["png"], "ok")]
    for name in BROKEN:
        path = files["jpg"] if name == "wrong_size" else files[name]
        records.append(_rec(path, f"id-{name}", 41 if name == "wrong_size" else 40, 60))
    return records


def test_evaluation_set_raises_one_error_naming_every_file(files):
    with pytest.raises(DatasetValidationError) as e:
        check_image_files(_broken_records(files), "my_val", mode="eval")
    message = str(e.value)
    assert message.startswith("[dataset 'my_val'] 5 of 6 image files cannot be used as declared")
    for name, what in BROKEN.items():
        path = files["jpg"] if name == "wrong_size" else files[name]
        (line,) = [ln for ln in message.splitlines() if f"id-{name}" in ln]
        assert str(path) in line and what in line, line
    assert "'ok'" not in message


def test_training_set_returns_and_logs_the_problems(files, caplog):
    with caplog.at_level(logging.WARNING, logger="yolox_d2"):
        problems = check_image_files(_broken_records(files), "my_train", mode="train")
    assert [p.image_id for p in problems] == [f"id-{n}" for n in BROKEN]
    assert str(problems[2]) == f"{files['empty']} (image_id='id-empty'): empty file (0 bytes)"
    assert "[dataset 'my_train'] 5 of 6 image files" in caplog.text
    assert str(files["missing"]) in caplog.text


def test_ten_thousand_records_timing(files, tmp_path):
    """10,000 records over 200 real files (timing printed, not asserted)."""
    paths = []
    for i in range(200):
        src = files["jpg"] if i % 2 else files["png"]
        dst = tmp_path / f"{i:03d}{src.suffix}"
        shutil.copyfile(src, dst)
        paths.append(dst)
    records = [_rec(paths[i % len(paths)], i) for i in range(10_000)]
    for threads in (1, 4):
        start = time.perf_counter()
        assert check_image_files(records, "timing", mode="eval", num_threads=threads) == []
        print(f"check_image_files: 10,000 records, {threads} thread(s): {time.perf_counter() - start:.2f} s")


@pytest.fixture
def datasets():
    names = {"startup_two": ["cat", "dog"], "startup_none": None}
    for name, classes in names.items():
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        DatasetCatalog.register(name, lambda: [])
        if classes is not None:
            MetadataCatalog.get(name).set(thing_classes=classes)
    yield names
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_num_classes_mismatch_names_both(datasets):
    check_num_classes(2, ["startup_two"])
    with pytest.raises(DatasetValidationError) as e:
        check_num_classes(80, ["startup_none", "startup_two"])
    message = str(e.value)
    assert "model.num_classes=80" in message and "'startup_two'" in message
    assert "declares 2 thing_classes (cat, dog)" in message


def test_num_classes_skips_datasets_without_classes(datasets, caplog):
    with caplog.at_level(logging.DEBUG, logger="yolox_d2"):
        check_num_classes(5, "startup_none")
    assert "'startup_none' declares no thing_classes" in caplog.text
