#!/usr/bin/env python
"""
Run a YOLOX LazyConfig on images, folders, videos or a registered dataset and draw the
detections with Detectron2's Visualizer:

    python tools/demo.py --config-file configs/deepforest/yolox_nano_trees.py \\
        --input photo.jpg more_photos/ clip.mp4 --output out/ \\
        --confidence-threshold 0.3 --opts train.init_checkpoint=output/yolox_nano_trees/model_final.pth
    python tools/demo.py --config-file ... --dataset deepforest_trees_val --max-images 2 --output out/

Each image gives ``<output>/<name>.jpg`` and each video ``<output>/<name>.mp4`` (mp4v); a name
already written in this run gets a ``_1``, ``_2``... suffix. Class names come from the metadata
of ``--dataset`` or else of ``dataloader.test.dataset``. Folders and videos show a progress bar.
An unreadable input is reported by name and skipped; the exit status is 1 if any input
failed, 2 if there was nothing to do. Config overrides go last: ``--opts key=value ...`` (e.g.
``train.device=cpu``).
"""

import argparse
import glob
import logging
import os
import sys
from typing import Iterable, List, Optional, Set

import cv2
import numpy as np
import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from detectron2.config import LazyConfig
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils.logger import setup_logger
from detectron2.utils.visualizer import ColorMode, Visualizer

import yolox_d2  # noqa: F401  (registers models and datasets)
from yolox_d2.engine import YOLOXPredictor

logger = logging.getLogger("yolox_d2.demo")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")
DEFAULT_FPS = 25.0


class InputError(OSError):
    """An input cannot be read (the message names it)."""


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, help="a yolox_d2 LazyConfig")
    p.add_argument("--input", nargs="+", default=[], help="image files, folders or videos")
    p.add_argument("--dataset", help="run on the images of this registered dataset instead")
    p.add_argument("--max-images", type=int, default=0, help="with --dataset: at most this many (0: all)")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument(
        "--confidence-threshold", type=float, default=0.3, help="minimum score to draw (default 0.3)"
    )
    p.add_argument("--device", default=None, help="cpu / cuda (default: the config's train.device)")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides key=value")
    return p


def draw(image_bgr: np.ndarray, instances, metadata, threshold: float) -> np.ndarray:
    """The image (BGR) with the detections scoring ``>= threshold`` drawn on it."""
    instances = instances.to("cpu")
    instances = instances[instances.scores >= threshold]
    visualizer = Visualizer(image_bgr[:, :, ::-1], metadata, instance_mode=ColorMode.IMAGE)
    return np.ascontiguousarray(visualizer.draw_instance_predictions(instances).get_image()[:, :, ::-1])


def expand_inputs(inputs: Iterable[str]) -> List[str]:
    """Files as given; folders replaced by their images and videos (sorted, not recursive)."""
    files = []
    for path in inputs:
        if os.path.isdir(path):
            found = sorted(
                f
                for f in glob.glob(os.path.join(path, "*"))
                if os.path.isfile(f) and f.lower().endswith(IMAGE_EXTS + VIDEO_EXTS)
            )
            if not found:
                logger.warning("No images or videos in folder %s", path)
            files.extend(found)
        else:
            files.append(path)
    return files


def output_path(out_dir: str, path: str, ext: str, used: Set[str]) -> str:
    """``<out_dir>/<stem><ext>``, with a numeric suffix if that name is already taken."""
    stem = os.path.splitext(os.path.basename(path))[0] or "input"
    candidate, n = os.path.join(out_dir, stem + ext), 0
    while candidate in used:
        n += 1
        candidate = os.path.join(out_dir, f"{stem}_{n}{ext}")
    used.add(candidate)
    return candidate


def run_image(predictor: YOLOXPredictor, path: str, out_path: str, metadata, threshold: float) -> int:
    """Detect on one image file and write the drawing; returns the number of drawn detections."""
    if not os.path.isfile(path):
        raise InputError(f"no such file {path!r}")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"cannot read image {path!r} (empty, truncated or not an image)")
    instances = predictor(image)["instances"]
    if not cv2.imwrite(out_path, draw(image, instances, metadata, threshold)):
        raise OSError(f"cannot write {out_path!r}")
    drawn = int((instances.scores >= threshold).sum())
    logger.info("%s: %d detections >= %.2f -> %s", path, drawn, threshold, out_path)
    return drawn


def run_video(predictor: YOLOXPredictor, path: str, out_path: str, metadata, threshold: float) -> int:
    """Detect on every frame of a video and write the drawn video; returns the frame count."""
    if not os.path.isfile(path):
        raise InputError(f"no such file {path!r}")
    video = cv2.VideoCapture(path)
    if not video.isOpened():
        raise InputError(f"cannot open video {path!r}")
    writer = None
    frames = 0
    try:
        fps = video.get(cv2.CAP_PROP_FPS)
        fps = fps if fps and fps > 0 else DEFAULT_FPS
        total = int(video.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        with tqdm.tqdm(total=total, desc=os.path.basename(path), unit="frame", leave=False) as bar:
            while True:
                ok, frame = video.read()
                if not ok:
                    break
                drawn = draw(frame, predictor(frame)["instances"], metadata, threshold)
                if writer is None:
                    height, width = drawn.shape[:2]
                    writer = cv2.VideoWriter(out_path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
                    if not writer.isOpened():
                        raise OSError(f"cannot write video {out_path!r} (mp4v codec)")
                writer.write(drawn)
                frames += 1
                bar.update(1)
    finally:
        video.release()
        if writer is not None:
            writer.release()
    if frames == 0:
        raise InputError(f"no frame could be read from video {path!r}")
    logger.info("%s: %d frames -> %s", path, frames, out_path)
    return frames


def main(argv: Optional[List[str]] = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    if not 0.0 <= args.confidence_threshold <= 1.0:
        parser.error(f"--confidence-threshold must be in [0, 1], got {args.confidence_threshold}")
    if args.input and args.dataset:
        parser.error("give either --input or --dataset, not both")

    cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.opts)
    if args.dataset:
        dicts = DatasetCatalog.get(args.dataset)
        files = [d["file_name"] for d in dicts[: args.max_images or None]]
    else:
        files = expand_inputs(args.input)
    if not files:
        logger.error("Nothing to do: give --input files/folders/videos or --dataset")
        return 2
    os.makedirs(args.output, exist_ok=True)
    try:
        predictor = YOLOXPredictor(cfg, device=args.device)
    except FileNotFoundError as e:
        logger.error("%s", e)
        return 2
    metadata = MetadataCatalog.get(args.dataset) if args.dataset else predictor.metadata

    failed, used = [], set()
    # log lines go above the progress bars instead of breaking them
    with logging_redirect_tqdm(loggers=[logging.getLogger("yolox_d2")]):
        for path in tqdm.tqdm(files, desc="demo", unit="file", disable=len(files) < 2):
            is_video = path.lower().endswith(VIDEO_EXTS)
            out_path = output_path(args.output, path, ".mp4" if is_video else ".jpg", used)
            try:
                if is_video:
                    run_video(predictor, path, out_path, metadata, args.confidence_threshold)
                else:
                    run_image(predictor, path, out_path, metadata, args.confidence_threshold)
            except OSError as e:
                logger.error("Skipping %s: %s", path, e)
                failed.append(path)
    if failed:
        logger.error("%d of %d inputs failed: %s", len(failed), len(files), ", ".join(failed))
        return 1
    logger.info("Wrote %d outputs to %s", len(files), args.output)
    return 0


if __name__ == "__main__":
    setup_logger(name="yolox_d2")
    sys.exit(main())
