"""
The shared decoded-image cache (:mod:`yolox_d2.data.image_cache`) and its use by the training
dataset (``MosaicMixupDataset(cache_images=True)``): cached pixels are returned unchanged,
a changed file is decoded again, the memory bound holds, DataLoader workers share one cache
(each file decoded once), and no shared file is left behind.
"""

import gc
import glob
import multiprocessing
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from detectron2.structures import BoxMode
from PIL import Image

from tests.conftest import REPO_ROOT
from yolox_d2.data import MosaicMixupDataset, build_yolox_train_loader, training_images
from yolox_d2.data.image_cache import SharedImageCache
from yolox_d2.data.image_io import ImageReadError, read_training_image
from yolox_d2.data.training_images import TrainingImages

SHM_PATTERN = "/dev/shm/yolox_d2_image_cache_*"


@pytest.fixture(autouse=True)
def no_leaked_shared_files():
    """Every test leaves /dev/shm as it found it (the cache files are removed)."""
    before = set(glob.glob(SHM_PATTERN))
    yield
    gc.collect()
    assert set(glob.glob(SHM_PATTERN)) - before == set()


def write_image(path, seed: int, size=(48, 64)) -> np.ndarray:
    """A random RGB PNG; returns its BGR pixels."""
    rgb = np.random.default_rng(seed).integers(0, 256, size + (3,), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return rgb[:, :, ::-1]


class CountingDecode:
    def __init__(self, path):
        self.path, self.calls = str(path), 0

    def __call__(self) -> np.ndarray:
        self.calls += 1
        return read_training_image({"file_name": self.path})


def test_cached_image_is_returned_identical(tmp_path):
    path = tmp_path / "a.png"
    expected = write_image(path, 0)
    cache = SharedImageCache([expected.nbytes], max_bytes=10**6)
    decode = CountingDecode(path)
    first = cache.get(0, str(path), decode)
    second = cache.get(0, str(path), decode)
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_array_equal(second, expected)
    assert decode.calls == 1 and second.dtype == np.uint8 and second.flags.c_contiguous
    second[...] = 0  # a copy: the cached pixels are not changed through it
    np.testing.assert_array_equal(cache.get(0, str(path), decode), expected)
    stats = cache.stats()
    assert (stats["stores"], stats["hits"], stats["cached"], stats["cached_bytes"]) == (1, 2, 1, expected.nbytes)
    cache.close()
    assert not os.path.exists(cache.path or "") and cache.stats()["cached"] == 0


def test_changed_file_is_decoded_again(tmp_path):
    path = tmp_path / "a.png"
    old = write_image(path, 0)
    cache = SharedImageCache([old.nbytes], max_bytes=old.nbytes)
    decode = CountingDecode(path)
    np.testing.assert_array_equal(cache.get(0, str(path), decode), old)

    new = write_image(path, 1)  # new content, new mtime
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    np.testing.assert_array_equal(cache.get(0, str(path), decode), new)
    np.testing.assert_array_equal(cache.get(0, str(path), decode), new)
    assert decode.calls == 2 and cache.stores(0) == 2

    # Same size, the old mtime put back: the ctime still changed, so it is seen.
    st = os.stat(path)
    newer = write_image(path, 2)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == st.st_mtime_ns and os.stat(path).st_size == st.st_size
    np.testing.assert_array_equal(cache.get(0, str(path), decode), newer)
    assert decode.calls == 3

    # Replaced by another file (rename over it): decoded again.
    other = tmp_path / "b.png"
    replaced = write_image(other, 3)
    os.replace(other, path)
    np.testing.assert_array_equal(cache.get(0, str(path), decode), replaced)
    assert decode.calls == 4
    cache.close()


def test_memory_bound_is_respected(tmp_path):
    paths = [tmp_path / f"{k}.png" for k in range(3)]
    images = [write_image(p, k) for k, p in enumerate(paths)]
    nbytes = images[0].nbytes  # 48 * 64 * 3
    cache = SharedImageCache([nbytes] * 3, max_bytes=2 * nbytes + nbytes // 2)
    assert cache.capacity_bytes == 2 * nbytes
    assert os.path.getsize(cache.path) <= 2 * nbytes + 72 * 3 + 64  # slots + table (aligned)
    decodes = [CountingDecode(p) for p in paths]
    for _ in range(3):
        for k, p in enumerate(paths):
            np.testing.assert_array_equal(cache.get(k, str(p), decodes[k]), images[k])
    assert [d.calls for d in decodes] == [1, 1, 3]  # the third image does not fit: never cached
    stats = cache.stats()
    assert (stats["slots"], stats["cached"], stats["cached_bytes"]) == (2, 2, 2 * nbytes)
    cache.close()

    nothing = SharedImageCache([nbytes], max_bytes=nbytes - 1)
    assert nothing.path is None and nothing.capacity_bytes == 0
    decode = CountingDecode(paths[0])
    nothing.get(0, str(paths[0]), decode), nothing.get(0, str(paths[0]), decode)
    assert decode.calls == 2


def test_an_image_larger_than_its_slot_or_unreadable_is_not_stored(tmp_path):
    path = tmp_path / "a.png"
    image = write_image(path, 0)
    cache = SharedImageCache([image.nbytes - 3, image.nbytes], max_bytes=10**6)
    decode = CountingDecode(path)
    cache.get(0, str(path), decode), cache.get(0, str(path), decode)
    assert decode.calls == 2 and cache.stores(0) == 0

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match="broken.png"):
        cache.get(1, str(broken), CountingDecode(broken))
    assert cache.stores(1) == 0
    write_image(broken, 1)  # fixed: the entry's lock was released, the new file is cached
    decode = CountingDecode(broken)
    cache.get(1, str(broken), decode), cache.get(1, str(broken), decode)
    assert decode.calls == 1 and cache.stores(1) == 1
    cache.close()


def _read_in_child(cache, path, out):
    image = cache.get(0, path, lambda: np.zeros((48, 64, 3), np.uint8))  # never called: cached
    out.put((image.sum(), cache.stores(0)))


def test_copies_and_forked_processes_share_the_entries(tmp_path):
    path = tmp_path / "a.png"
    expected = write_image(path, 0)
    cache = SharedImageCache([expected.nbytes], max_bytes=expected.nbytes)
    cache.get(0, str(path), CountingDecode(path))
    # pickled (as for spawned DataLoader workers): same file, same entries
    copy = pickle.loads(pickle.dumps(cache))
    assert copy.path == cache.path
    np.testing.assert_array_equal(copy.get(0, str(path), lambda: 1 / 0), expected)
    del copy
    gc.collect()
    assert os.path.exists(cache.path)  # a copy never removes the owner's file
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(cache, str(path), out))
    child.start()
    total, stores = out.get(timeout=60)
    child.join(60)
    assert child.exitcode == 0 and (total, stores) == (int(expected.astype(np.int64).sum()), 1)
    assert cache.stats()["hits"] == 2  # the copy's and the child's hits are in the shared table
    assert os.path.exists(cache.path)  # the child's exit leaves it
    cache.close()


def test_file_removed_at_interpreter_exit(tmp_path):
    code = (
        "from yolox_d2.data.image_cache import SharedImageCache\n"
        "c = SharedImageCache([100], max_bytes=100)\n"
        "print(c.path)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    path = out.stdout.strip().splitlines()[-1]
    assert path.startswith("/dev/shm/yolox_d2_image_cache_") and not os.path.exists(path)


# ---------------------------------------------------------------------- the training dataset
def tiny_dicts(folder, n=4):
    dicts = []
    for k in range(n):
        path = os.path.join(folder, f"img{k}.png")
        write_image(path, k, size=(80 + 8 * k, 96))
        dicts.append(
            {
                "file_name": path,
                "image_id": k,
                "height": 80 + 8 * k,
                "width": 96,
                "annotations": [{"bbox": [10, 10, 50, 60], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0}],
            }
        )
    return dicts


def test_training_images_cache_bound_and_pixels(tmp_path):
    dicts = tiny_dicts(str(tmp_path))
    images = TrainingImages(dicts, cache_images=True, cache_max_bytes=(80 * 96 + 88 * 96) * 3)
    assert images.cache.capacity_bytes == (80 * 96 + 88 * 96) * 3
    for _ in range(2):
        for k in range(len(images)):
            np.testing.assert_array_equal(images.load(k)[0], read_training_image(dicts[k]))
    assert [images.cache.stores(k) for k in range(4)] == [1, 1, 0, 0]
    assert TrainingImages(dicts).cache is None  # off by default


def test_dataset_samples_equal_without_cache(tmp_path):
    dicts = tiny_dicts(str(tmp_path))
    kw = dict(image_size=(64, 64), seed=3, dataset_name=None)
    plain, cached = MosaicMixupDataset(dicts, **kw), MosaicMixupDataset(dicts, cache_images=True, **kw)
    for _ in range(2):  # the second pass is served from the cache
        for i in range(len(dicts)):
            a, b = plain[i], cached[i]
            assert torch.equal(a["image"], b["image"])
            assert torch.equal(a["instances"].gt_boxes.tensor, b["instances"].gt_boxes.tensor)


def test_dataloader_workers_decode_each_file_once(tmp_path, monkeypatch):
    log = tmp_path / "reads.log"
    original = training_images.read_training_image

    def logged(record):  # inherited by the forked workers; appends from every process
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {record['file_name']}\n")
        return original(record)

    monkeypatch.setattr(training_images, "read_training_image", logged)
    dicts = tiny_dicts(str(tmp_path))
    dataset = MosaicMixupDataset(dicts, image_size=(64, 64), seed=0, cache_images=True)
    loader = build_yolox_train_loader(dataset, total_batch_size=2, num_workers=2, seed=0)
    it = iter(loader)
    for _ in range(12):  # 24 samples of up to 5 images each, over 4 files
        next(it)
    del it
    reads = log.read_text().split("\n")[:-1]
    files = [r.split(" ", 1)[1] for r in reads]
    assert sorted(files) == sorted(d["file_name"] for d in dicts)  # each file read once
    del dataset, loader
