#!/usr/bin/env python
"""
Training data pipeline throughput (images / s): yolox_d2's :class:`MosaicMixupDataset` behind
:func:`build_yolox_train_loader` vs the official ``yolox==0.3.0`` ``MosaicDetection`` +
``TrainTransform`` behind a ``torch.utils.data.DataLoader``, with 0, 1 and 2 workers:

    python bench/bench_data.py                        # deepforest tree tiles, batch 8, 2 threads
    python bench/bench_data.py --workers 0 --batches 6 --runs 7 --source skimage
    python bench/bench_data.py --source deepforest_jpeg --cache off   # the tiles as JPEG files

Recipe (both sides): the full YOLOX L/M/X recipe that ``exps/default/yolox_s.py`` (0.3.0) also
uses: 640x640 output, mosaic_prob 1.0, mixup_prob 1.0 (MixUp on), hsv_prob 1.0, flip_prob 0.5,
degrees 10, translate 0.1, mosaic_scale (0.1, 2), mixup_scale (0.5, 1.5), shear 2, at most 120
labels (the official ``TrainTransform(max_labels=120)`` of ``MosaicDetection``).

Inputs: the same list of ``(file, XYXY boxes, classes)`` for both sides: the 66 tiles of the
registered ``deepforest_trees_train`` (400x400 PNG aerial photos, ~1100 tree boxes) or, with
``--source skimage``, scikit-image's sample photos with fixed boxes, or with ``--source
deepforest_jpeg`` the same tiles re-encoded by PIL as JPEG (quality 92, 4:2:0) in a temporary
folder. Uncached (``--cache off``, and the first columns of ``both``), every image is read and
decoded from disk each time it is used, on both sides: the official dataset object reads with
``cv2.imread`` and pre-resizes like its ``COCODataset.pull_item`` (uncached), ours with its own
reader (OpenCV for plain 8-bit PNGs, simplejpeg for JPEG, PIL with EXIF for everything else).
Ours skips reading a mosaic partner that cannot appear in the output and reads an image drawn
twice in a sample once (both exact: same boxes, no pixel lost).

Cached (``--cache on``, and the last columns of ``both``): the official side as its
``COCODataset(cache=True)``: every image resized to fit 640x640 once, into a ``(N, 640, 640,
3)`` memmap file (a temporary folder here, its ``data_dir`` there), ``pull_item`` copying the
image out of it; ours ``MosaicMixupDataset(cache_images=True)``: the decoded images in
``/dev/shm``, shared by the workers. Both caches are filled before the timing.

What each side returns is its real training output: official a float32 ``(B, 3, 640, 640)``
tensor collated by PyTorch's default collate + padded labels; ours a list of Detectron2 dicts
(uint8 image tensor + ``Instances``).

Timing: each timed call starts a fresh iterator (workers forked), consumes ``max(1, workers)``
batches untimed (worker start-up and the first, prefetched batches), then times ``--batches``
batches: steady-state throughput with no prefetched work carried over between sides. Calls
alternate ours / official in ABBA rounds (:func:`benchlib.alternate`). Threads: torch and
OpenCV are set to ``--threads`` in the main process for both sides (yolox_d2's and the
official's library code never change the OpenCV thread count; only the official *training
script* sets ``cv2.setNumThreads(0)``, which is not run here). Forked workers inherit the
OpenCV setting; PyTorch sets its own intra-op threads to 1 in every worker, for both sides.
"""

import argparse
import logging
import os
import random
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from yolox_d2.data import yolox_augmentation_defaults

from benchlib import Report, Stats, add_common_args, alternate, command_line, finish, photo_paths, set_threads

# The full YOLOX recipe (mosaic + MixUp at 640: L/M/X), as this project's defaults give it.
_RECIPE = yolox_augmentation_defaults("l")
IMAGE_SIZE = tuple(_RECIPE.pop("image_size"))
HSV_PROB, FLIP_PROB = _RECIPE.pop("hsv_prob"), _RECIPE.pop("flip_prob")
RECIPE = _RECIPE  # the keyword arguments MosaicDetection and MosaicMixupDataset share
MAX_LABELS = 120

Item = Tuple[str, np.ndarray, np.ndarray, int, int]  # file, boxes XYXY, classes, height, width


# ---------------------------------------------------------------------- inputs
def deepforest_items() -> List[Item]:
    """The tiles of ``deepforest_trees_train`` with their boxes (validated by yolox_d2)."""
    import yolox_d2.data  # noqa: F401  (registers the dataset)
    from detectron2.data import DatasetCatalog
    from detectron2.structures import BoxMode

    items = []
    for d in DatasetCatalog.get("deepforest_trees_train"):
        boxes = [
            BoxMode.convert(list(a["bbox"]), BoxMode(a["bbox_mode"]), BoxMode.XYXY_ABS)
            for a in d["annotations"]
            if not a.get("iscrowd", 0)
        ]
        classes = [int(a["category_id"]) for a in d["annotations"] if not a.get("iscrowd", 0)]
        items.append(
            (
                d["file_name"],
                np.asarray(boxes, np.float64).reshape(-1, 4),
                np.asarray(classes, np.int64),
                int(d["height"]),
                int(d["width"]),
            )
        )
    return items


def deepforest_jpeg_items(folder: str) -> List[Item]:
    """The deepforest tiles re-encoded as JPEG (quality 92, 4:2:0) into ``folder``."""
    from PIL import Image

    items = []
    for k, (file_name, boxes, classes, h, w) in enumerate(deepforest_items()):
        path = os.path.join(folder, f"tile_{k:03d}.jpg")
        Image.open(file_name).convert("RGB").save(path, "JPEG", quality=92)
        items.append((path, boxes, classes, h, w))
    return items


def skimage_items() -> List[Item]:
    """scikit-image sample photos, each with 3 fixed boxes (relative positions)."""
    rel = np.array([[0.1, 0.1, 0.4, 0.5], [0.5, 0.2, 0.9, 0.8], [0.3, 0.55, 0.6, 0.95]])
    items = []
    for k, path in enumerate(photo_paths()):
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        h, w = img.shape[:2]
        boxes = np.round(rel * [w, h, w, h])
        items.append((path, boxes, np.array([k % 3, (k + 1) % 3, (k + 2) % 3], np.int64), h, w))
    return items


# ---------------------------------------------------------------------- official side
def build_official(items: Sequence[Item], cache_dir: Optional[str] = None):
    """
    ``MosaicDetection`` + ``TrainTransform`` over a minimal official-style dataset; with
    ``cache_dir``, its images cached as ``COCODataset(cache=True)`` does (a memmap file there).
    """
    from yolox.data import MosaicDetection, TrainTransform
    from yolox.data.datasets.datasets_wrapper import Dataset as YoloxDataset

    class ListDataset(YoloxDataset):
        """Like the official ``COCODataset`` without image cache: ``pull_item`` reads the file
        (``cv2.imread``) and resizes it to fit ``img_size``; annotations are pre-scaled."""

        def __init__(self, items: Sequence[Item], img_size: Tuple[int, int], cache_dir: Optional[str]):
            super().__init__(img_size)
            self.img_size = img_size
            self.annotations = []
            for file_name, boxes, classes, h, w in items:
                r = min(img_size[0] / h, img_size[1] / w)
                res = np.zeros((len(boxes), 5))
                res[:, :4] = boxes * r
                res[:, 4] = classes
                self.annotations.append((res, (h, w), (int(h * r), int(w * r)), file_name))
            self.imgs = None
            if cache_dir is not None:  # COCODataset._cache_images: resized images, padded, on disk
                path = os.path.join(cache_dir, "img_resized_cache_bench.array")
                shape = (len(self.annotations), img_size[0], img_size[1], 3)
                imgs = np.memmap(path, shape=shape, dtype=np.uint8, mode="w+")
                for k in range(len(self.annotations)):
                    out = self.load_resized_img(k)
                    imgs[k][: out.shape[0], : out.shape[1], :] = out
                imgs.flush()
                self.imgs = np.memmap(path, shape=shape, dtype=np.uint8, mode="r+")

        def __len__(self) -> int:
            return len(self.annotations)

        def load_anno(self, index: int) -> np.ndarray:
            return self.annotations[index][0]

        def load_resized_img(self, index: int) -> np.ndarray:
            file_name = self.annotations[index][3]
            img = cv2.imread(file_name)
            assert img is not None, f"file named {file_name} not found"
            r = min(self.img_size[0] / img.shape[0], self.img_size[1] / img.shape[1])
            return cv2.resize(
                img, (int(img.shape[1] * r), int(img.shape[0] * r)), interpolation=cv2.INTER_LINEAR
            ).astype(np.uint8)

        def pull_item(self, index: int):
            res, img_info, resized_info, _ = self.annotations[index]
            if self.imgs is not None:
                img = self.imgs[index][: resized_info[0], : resized_info[1], :].copy()
            else:
                img = self.load_resized_img(index)
            return img, res.copy(), img_info, np.array([index])

    return MosaicDetection(
        ListDataset(items, IMAGE_SIZE, cache_dir),
        img_size=IMAGE_SIZE,
        mosaic=True,
        preproc=TrainTransform(max_labels=MAX_LABELS, flip_prob=FLIP_PROB, hsv_prob=HSV_PROB),
        **RECIPE,
    )


def official_loader(dataset, batch_size: int, workers: int, seed: int):
    from detectron2.data.samplers import TrainingSampler
    from yolox.data.dataloading import worker_init_reset_seed

    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=TrainingSampler(len(dataset), shuffle=True, seed=seed),
        num_workers=workers,
        worker_init_fn=worker_init_reset_seed,
        drop_last=True,
    )


# ---------------------------------------------------------------------- our side
def build_ours(items: Sequence[Item], cache_images: bool = False):
    from detectron2.structures import BoxMode

    from yolox_d2.data import MosaicMixupDataset

    dicts = [
        {
            "file_name": f,
            "height": h,
            "width": w,
            "image_id": i,
            "annotations": [
                {"bbox": b.tolist(), "bbox_mode": BoxMode.XYXY_ABS, "category_id": int(c)}
                for b, c in zip(boxes, classes)
            ],
        }
        for i, (f, boxes, classes, h, w) in enumerate(items)
    ]
    return MosaicMixupDataset(
        dicts,
        image_size=IMAGE_SIZE,
        hsv_prob=HSV_PROB,
        flip_prob=FLIP_PROB,
        max_labels=MAX_LABELS,
        seed=0,
        cache_images=cache_images,
        **RECIPE,
    )


def ours_loader(dataset, batch_size: int, workers: int, seed: int):
    from yolox_d2.data import build_yolox_train_loader

    return build_yolox_train_loader(dataset, total_batch_size=batch_size, num_workers=workers, seed=seed)


# ---------------------------------------------------------------------- timing
def throughput_runner(
    make_loader: Callable[[int], object], workers: int, batches: int, batch_size: int, out: List[float]
):
    """A callable for :func:`alternate`: one fresh iterator, untimed start, ``batches`` timed."""
    calls = [0]

    def run() -> None:
        calls[0] += 1
        it = iter(make_loader(calls[0]))
        for _ in range(max(1, workers)):
            next(it)
        start = time.perf_counter()
        for _ in range(batches):
            next(it)
        out.append(batches * batch_size / (time.perf_counter() - start))
        del it  # shuts the workers down before the other side runs

    return run


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, runs=7, warmup=1)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader worker counts")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--batches", type=int, default=4, help="timed batches per run")
    p.add_argument("--source", choices=["deepforest", "deepforest_jpeg", "skimage"], default="deepforest")
    p.add_argument("--cache", choices=["off", "on", "both"], default="both", help="image caches of both sides")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    set_threads(args.threads)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)

    folder = tempfile.TemporaryDirectory()
    items = {"deepforest": deepforest_items, "skimage": skimage_items}.get(args.source)
    items = items() if items else deepforest_jpeg_items(folder.name)
    n_boxes = sum(len(it[1]) for it in items)
    variants = {"off": [False], "on": [True], "both": [False, True]}[args.cache]
    datasets = {}
    for cached in variants:
        suffix = " cached" if cached else ""
        official_ds, ours_ds = build_official(items, folder.name if cached else None), build_ours(items, cached)
        # sanity: both produce training samples of the recipe's size (and ours fills its cache)
        image, labels, _, _ = official_ds[0]
        assert image.shape == (3,) + IMAGE_SIZE and labels.shape == (MAX_LABELS, 5), (image.shape, labels.shape)
        for i in range(len(items) if cached else 1):
            sample = ours_ds[i]
            assert tuple(sample["image"].shape) == (3,) + IMAGE_SIZE, sample["image"].shape
        datasets["official" + suffix], datasets["yolox_d2" + suffix] = official_ds, ours_ds

    rows, figures = [], {}
    for workers in args.workers:
        times: Dict[str, List[float]] = {name: [] for name in datasets}
        runners = {
            name: throughput_runner(
                lambda k, ds=ds, name=name: (official_loader if name.startswith("official") else ours_loader)(
                    ds, args.batch_size, workers, seed=k
                ),
                workers,
                args.batches,
                args.batch_size,
                times[name],
            )
            for name, ds in datasets.items()
        }
        alternate(runners, runs=args.runs, warmup=args.warmup)
        row = [str(workers)]
        for cached in variants:
            suffix = " cached" if cached else ""
            # the warm-up calls appended too: keep the timed ones only
            so = Stats.of(times["official" + suffix][args.warmup :], scale=1.0)
            sr = Stats.of(times["yolox_d2" + suffix][args.warmup :], scale=1.0)
            speedup = sr.median / so.median
            row += [so.fmt("img/s"), sr.fmt("img/s"), f"{speedup:.2f}x"]
            tag = "_cached" if cached else ""
            figures[f"speedup{tag}_workers{workers}"] = round(speedup, 3)
            figures[f"ours{tag}_img_per_s_workers{workers}"] = round(sr.median, 2)
            figures[f"official{tag}_img_per_s_workers{workers}"] = round(so.median, 2)
        rows.append(row)
    folder.cleanup()

    columns = ["workers"]
    for cached in variants:
        suffix = " (cached)" if cached else ""
        columns += [f"official img/s{suffix}", f"yolox_d2 img/s{suffix}", f"ours / official{suffix}"]
    report = Report(
        title="Training data pipeline (mosaic + mixup + affine + HSV + flip, 640x640)",
        command=command_line(),
        columns=columns,
        rows=rows,
        notes=[
            f"{len(items)} images ({args.source}, {n_boxes} boxes); uncached: read and decoded from "
            "disk for every use on both sides; cached: the official COCODataset(cache=True) scheme "
            "vs MosaicMixupDataset(cache_images=True), both filled before timing; batch size "
            f"{args.batch_size}, {args.batches} timed batches per run after max(1, workers) untimed "
            f"ones, {args.runs} runs per side (ABBA order), median (min–max)",
            "recipe: mosaic_prob 1, mixup_prob 1, hsv_prob 1, flip_prob 0.5, degrees 10, translate "
            "0.1, mosaic_scale (0.1, 2), mixup_scale (0.5, 1.5), shear 2, max_labels 120",
            f"threads: torch and cv2.setNumThreads({args.threads}) in the main process for both; "
            "forked workers inherit the cv2 setting, torch uses 1 thread per worker",
            "official: MosaicDetection + TrainTransform, torch DataLoader (default collate: float32 "
            "batch tensor); yolox_d2: MosaicMixupDataset via build_yolox_train_loader (list of dicts, "
            "uint8 images)",
        ],
        figures=figures,
    )
    finish(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
