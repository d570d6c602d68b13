"""
JPEG decoding with simplejpeg (:mod:`yolox_d2.data.jpeg_decode`): the pixels of
:func:`decode_image_bgr` / :func:`read_image_bgr` / :func:`read_training_image` equal the
PIL reader's (the reader before simplejpeg: PIL + Detectron2's EXIF transpose) exactly, on
real photos, every EXIF orientation, grayscale; CMYK and damaged files keep the PIL path and
its errors; a missing simplejpeg falls back to PIL with the same pixels.
"""

import io
import os

import cv2
import numpy as np
import pytest
from detectron2.data.detection_utils import _apply_exif_orientation
from PIL import Image

from tests.conftest import photo_paths
from yolox_d2.data import image_io, jpeg_decode
from yolox_d2.data.image_io import ImageReadError, decode_image_bgr, read_image_bgr, read_training_image

pytest.importorskip("simplejpeg")

ROCKET = photo_paths(("rocket.jpg",))[0]


def pil_reference(path: str) -> np.ndarray:
    """The reader before simplejpeg: PIL, Detectron2's EXIF transpose, RGB -> BGR."""
    pil = _apply_exif_orientation(Image.open(path))
    return np.ascontiguousarray(np.asarray(pil.convert("RGB"))[:, :, ::-1])


def real_jpegs():
    """The real JPEG photos shipped with the installed packages (4:4:4, 4:2:2, 4:2:0)."""
    site = os.path.dirname(os.path.dirname(np.__file__))
    names = [
        "skimage/data/rocket.jpg",
        "skimage/data/retina.jpg",
        "skimage/data/hubble_deep_field.jpg",
        "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
        "deepforest/data/AWPE Pigeon Lake 2020 DJI_0005.JPG",
    ]
    return [p for p in (os.path.join(site, n) for n in names) if os.path.exists(p)]


@pytest.fixture
def decode_calls(monkeypatch):
    """Counts the simplejpeg decodes made by jpeg_decode."""
    calls = []
    original = jpeg_decode.simplejpeg.decode_jpeg

    class Counting:
        @staticmethod
        def decode_jpeg(data, **kwargs):
            calls.append(len(data))
            return original(data, **kwargs)

    monkeypatch.setattr(jpeg_decode, "simplejpeg", Counting)
    return calls


def test_real_photos_decode_exactly_like_pil_and_cv2(decode_calls):
    paths = real_jpegs()
    assert len(paths) >= 3
    for path in paths:
        got = decode_image_bgr(path)
        np.testing.assert_array_equal(got.image, pil_reference(path), err_msg=path)
        flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
        np.testing.assert_array_equal(got.image, cv2.imread(path, flags), err_msg=path)
        assert got.mode == "RGB" and got.image.flags.c_contiguous
    assert len(decode_calls) == len(paths)  # every one went through simplejpeg


@pytest.mark.parametrize("save_args", [dict(quality=92), dict(quality=95, subsampling=0), dict(quality=90, progressive=True)])
def test_reencoded_photo_decodes_like_pil(tmp_path, save_args, decode_calls):
    path = str(tmp_path / "photo.jpg")
    Image.open(photo_paths(("astronaut.png",))[0]).convert("RGB").save(path, "JPEG", **save_args)
    np.testing.assert_array_equal(decode_image_bgr(path).image, pil_reference(path))
    record = {"file_name": path, "image_id": 1, "height": 512, "width": 512}
    np.testing.assert_array_equal(read_training_image(record), pil_reference(path))
    assert len(decode_calls) == 2


def _save_with_orientation(path: str, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.open(ROCKET).save(path, "JPEG", quality=93, exif=exif.tobytes())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_like_pil(tmp_path, orientation, decode_calls):
    path = str(tmp_path / f"o{orientation}.jpg")
    _save_with_orientation(path, orientation)
    got = decode_image_bgr(path)
    expected = pil_reference(path)
    assert got.image.shape == expected.shape
    np.testing.assert_array_equal(got.image, expected)
    assert got.exif_transposed == (orientation >= 5)
    assert got.image.flags.c_contiguous
    assert decode_calls  # the fast path, with the orientation applied in numpy


def test_exif_rotated_jpeg_keeps_size_check_rules(tmp_path):
    path = str(tmp_path / "rot6.jpg")
    _save_with_orientation(path, 6)  # stored 640x427, displayed 427 wide x 640 high
    stored_size = {"file_name": path, "image_id": 7, "height": 427, "width": 640}
    displayed = read_image_bgr(stored_size)  # accepted with a warning: the transpose of the stored size
    assert displayed.shape == (640, 427, 3)
    np.testing.assert_array_equal(displayed, pil_reference(path))
    np.testing.assert_array_equal(read_training_image({**stored_size, "height": 640, "width": 427}), displayed)
    with pytest.raises(image_io.ImageSizeMismatchError, match="EXIF rotation"):
        read_image_bgr({**stored_size, "height": 400, "width": 640})


def test_grayscale_jpeg_gives_three_equal_channels(tmp_path, decode_calls):
    path = str(tmp_path / "gray.jpg")
    Image.open(ROCKET).convert("L").save(path, "JPEG", quality=92)
    got = decode_image_bgr(path)
    assert got.mode == "L" and got.image.shape == (427, 640, 3)
    np.testing.assert_array_equal(got.image, pil_reference(path))
    np.testing.assert_array_equal(got.image[..., 0], np.asarray(Image.open(path)))
    assert (got.image == got.image[..., :1]).all()
    assert decode_calls


def test_cmyk_jpeg_keeps_the_pil_conversion(tmp_path, decode_calls):
    path = str(tmp_path / "cmyk.jpg")
    Image.open(ROCKET).convert("CMYK").save(path, "JPEG", quality=92)
    got = decode_image_bgr(path)
    assert got.mode == "CMYK" and got.image.shape == (427, 640, 3)
    np.testing.assert_array_equal(got.image, pil_reference(path))
    assert not decode_calls  # simplejpeg's CMYK conversion differs from PIL's: not used


@pytest.mark.parametrize("reader", [read_image_bgr, read_training_image])
def test_truncated_jpeg_raises_naming_the_file(tmp_path, reader):
    path = tmp_path / "truncated.jpg"
    data = open(ROCKET, "rb").read()
    path.write_bytes(data[: len(data) // 2])
    assert jpeg_decode.decode_jpeg_bgr(path.read_bytes()) is None  # refused by simplejpeg too
    with pytest.raises(ImageReadError, match=r"truncated\.jpg.*image_id=5"):
        reader({"file_name": str(path), "image_id": 5, "height": 427, "width": 640})


def test_corrupt_but_recoverable_jpeg_is_left_to_pil(tmp_path):
    # Bytes inserted before the start-of-scan marker: libjpeg-turbo warns ("extraneous bytes
    # before marker"), which simplejpeg (strict) reports; PIL decodes the file as it always did.
    data = open(ROCKET, "rb").read()
    sos = data.index(b"\xff\xda")
    path = str(tmp_path / "extraneous.jpg")
    with open(path, "wb") as f:
        f.write(data[:sos] + b"\x00\x01\x02" + data[sos:])
    assert jpeg_decode.decode_jpeg_bgr(open(path, "rb").read()) is None
    np.testing.assert_array_equal(decode_image_bgr(path).image, pil_reference(path))
    np.testing.assert_array_equal(decode_image_bgr(path).image, pil_reference(ROCKET))


def test_without_simplejpeg_the_pil_reader_gives_the_same_pixels(tmp_path, monkeypatch):
    gray = str(tmp_path / "gray.jpg")
    Image.open(ROCKET).convert("L").save(gray, "JPEG", quality=92)
    rotated = str(tmp_path / "rot8.jpg")
    _save_with_orientation(rotated, 8)
    paths = [ROCKET, gray, rotated]
    fast = [decode_image_bgr(p) for p in paths]
    monkeypatch.setattr(jpeg_decode, "simplejpeg", None)
    monkeypatch.setattr(jpeg_decode, "FAST_JPEG_AVAILABLE", False)
    assert not jpeg_decode.fast_jpeg_mode("JPEG", "RGB")
    for path, f in zip(paths, fast):
        slow = decode_image_bgr(path)
        np.testing.assert_array_equal(slow.image, f.image, err_msg=path)
        assert (slow.mode, slow.exif_transposed) == (f.mode, f.exif_transposed)


def test_orient_like_exif_matches_pil_transpose():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for orientation in range(0, 10):
        pil = Image.fromarray(rgb)
        exif = pil.getexif()
        exif[0x0112] = orientation
        buf = io.BytesIO()
        pil.save(buf, "PNG", exif=exif.tobytes())  # lossless: the pixels stay exact
        expected = np.asarray(_apply_exif_orientation(Image.open(buf)).convert("RGB"))
        np.testing.assert_array_equal(jpeg_decode.orient_like_exif(rgb, orientation), expected, err_msg=str(orientation))
