"""
Detections drawn on image files, folders, videos or the images of a registered dataset with
Detectron2's ``Visualizer``, for a :class:`~yolox_d2.engine.YOLOXPredictor` (what
``tools/demo.py`` runs)::

    run_demo(cfg, "out/", inputs=["photo.jpg", "photos/", "clip.mp4"])
    # or, with a predictor of one's own:
    failed = run_on_files(predictor, expand_inputs(["photo.jpg", "photos/", "clip.mp4"]), "out/")

Each image gives ``<output_dir>/<name>.jpg`` and each video ``<output_dir>/<name>.mp4`` (mp4v);
a name already written in the same run gets a ``_1``, ``_2``... suffix. An unreadable input is
logged by name and skipped. On the images of a registered dataset with annotations, each
drawing shows the ground truth (left) beside the predictions (right).
"""

import glob
import logging
import os
from typing import Iterable, List, Optional, Sequence, Set

import cv2
import numpy as np
import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from detectron2.data import DatasetCatalog, Metadata, MetadataCatalog
from detectron2.structures import BoxMode
from detectron2.utils.visualizer import ColorMode, Visualizer

from .predictor import YOLOXPredictor

__all__ = [
    "IMAGE_EXTS",
    "VIDEO_EXTS",
    "DEFAULT_FPS",
    "GROUND_TRUTH_COLOR",
    "InputError",
    "draw_detections",
    "draw_ground_truth_beside",
    "expand_inputs",
    "output_path",
    "run_on_image",
    "run_on_video",
    "run_on_files",
    "run_demo",
]

logger = logging.getLogger(__name__)

#: File endings (lower case) of the images and videos a folder input is searched for.
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")
#: Frame rate of the written video when the input does not tell its own.
DEFAULT_FPS = 25.0
#: RGB colour (0-1) of every ground-truth box (orange, which stands out on foliage), so that
#: every drawing of a record looks the same.
GROUND_TRUTH_COLOR = (1.0, 0.4, 0.0)


class InputError(OSError):
    """An input cannot be read (the message names it)."""


def _check_threshold(threshold: float) -> None:
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")


def draw_detections(
    image_bgr: np.ndarray, instances, metadata: Optional[Metadata], threshold: float
) -> np.ndarray:
    """The image (BGR) with the detections scoring ``>= threshold`` drawn on it.

    Args:
        image_bgr: (H, W, 3) uint8 BGR image.
        instances: the predictor's ``Instances`` for that image.
        metadata: Detectron2 metadata giving the class names, or ``None``.
        threshold: minimum score of a drawn detection.
    """
    instances = instances.to("cpu")
    instances = instances[instances.scores >= threshold]
    visualizer = Visualizer(image_bgr[:, :, ::-1], metadata, instance_mode=ColorMode.IMAGE)
    return np.ascontiguousarray(visualizer.draw_instance_predictions(instances).get_image()[:, :, ::-1])


def _caption(image_bgr: np.ndarray, text: str) -> np.ndarray:
    band = np.full((28, image_bgr.shape[1], 3), 255, dtype=np.uint8)
    cv2.putText(band, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, image_bgr], axis=0)


def draw_ground_truth_beside(
    image_bgr: np.ndarray, record: dict, predictions_bgr: np.ndarray, metadata: Optional[Metadata], caption: str
) -> np.ndarray:
    """The dataset record's ground-truth boxes drawn on the image (left, all in
    :data:`GROUND_TRUTH_COLOR`) beside a drawing of the predictions (right), each with a
    caption above it.

    Args:
        image_bgr: (H, W, 3) uint8 BGR image.
        record: its Detectron2 dataset dict (``annotations`` with ``bbox`` / ``bbox_mode`` /
            ``category_id``).
        predictions_bgr: the image with the predictions drawn (:func:`draw_detections`).
        metadata: Detectron2 metadata giving the class names, or ``None``.
        caption: the caption of the predictions.
    """
    annotations = record.get("annotations", [])
    names = metadata.get("thing_classes", None) if metadata is not None else None
    visualizer = Visualizer(image_bgr[:, :, ::-1], metadata, instance_mode=ColorMode.IMAGE)
    if annotations:
        visualizer.overlay_instances(
            boxes=[BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annotations],
            labels=[  # as Visualizer.draw_dataset_dict labels them
                (names[a["category_id"]] if names else str(a["category_id"])) + ("|crowd" if a.get("iscrowd") else "")
                for a in annotations
            ],
            assigned_colors=[GROUND_TRUTH_COLOR] * len(annotations),
        )
    truth = visualizer.output.get_image()[:, :, ::-1]
    truth = _caption(np.ascontiguousarray(truth), f"ground truth: {len(annotations)} boxes")
    gap = np.full((truth.shape[0], 8, 3), 255, dtype=np.uint8)
    return np.concatenate([truth, gap, _caption(predictions_bgr, caption)], axis=1)


def expand_inputs(inputs: Iterable[str]) -> List[str]:
    """Files as given; folders replaced by their images and videos (sorted, not recursive).

    Args:
        inputs: paths of files or folders.
    """
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
    """``<out_dir>/<stem><ext>``, with a numeric suffix if that name is already taken.

    Args:
        out_dir: the output folder.
        path: the input file.
        ext: the output file ending (``".jpg"``, ``".mp4"``).
        used: the output paths already given in this run; the new one is added to it.
    """
    stem = os.path.splitext(os.path.basename(path))[0] or "input"
    candidate, n = os.path.join(out_dir, stem + ext), 0
    while candidate in used:
        n += 1
        candidate = os.path.join(out_dir, f"{stem}_{n}{ext}")
    used.add(candidate)
    return candidate


def run_on_image(
    predictor: YOLOXPredictor,
    path: str,
    out_path: str,
    metadata: Optional[Metadata],
    threshold: float,
    record: Optional[dict] = None,
) -> int:
    """Detect on one image file and write the drawing.

    Args:
        predictor: the predictor to run.
        path: the image file.
        out_path: the image file to write.
        metadata: class names for the drawing (see :func:`draw_detections`).
        threshold: minimum score of a drawn detection.
        record: the image's dataset dict: its ground truth is drawn beside the predictions
            (:func:`draw_ground_truth_beside`).

    Returns:
        The number of drawn detections.

    Raises:
        InputError: the image does not exist or cannot be decoded.
        OSError: the drawing cannot be written.
    """
    if not os.path.isfile(path):
        raise InputError(f"no such file {path!r}")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"cannot read image {path!r} (empty, truncated or not an image)")
    instances = predictor(image)["instances"]
    drawn = int((instances.scores >= threshold).sum())
    drawing = draw_detections(image, instances, metadata, threshold)
    if record is not None:
        drawing = draw_ground_truth_beside(image, record, drawing, metadata, f"predictions >= {threshold:g}: {drawn}")
    if not cv2.imwrite(out_path, drawing):
        raise OSError(f"cannot write {out_path!r}")
    logger.info("%s: %d detections >= %.2f -> %s", path, drawn, threshold, out_path)
    return drawn


def run_on_video(
    predictor: YOLOXPredictor, path: str, out_path: str, metadata: Optional[Metadata], threshold: float
) -> int:
    """Detect on every frame of a video and write the drawn video (mp4v, with a progress bar).

    Args:
        predictor: the predictor to run.
        path: the video file.
        out_path: the video file to write.
        metadata: class names for the drawing (see :func:`draw_detections`).
        threshold: minimum score of a drawn detection.

    Returns:
        The number of frames.

    Raises:
        InputError: the video does not exist, cannot be opened or has no readable frame.
        OSError: the drawn video cannot be written.
    """
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
                drawn = draw_detections(frame, predictor(frame)["instances"], metadata, threshold)
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


def run_on_files(
    predictor: YOLOXPredictor,
    files: Sequence[str],
    output_dir: str,
    metadata: Optional[Metadata] = None,
    threshold: float = 0.3,
    records: Optional[Sequence[dict]] = None,
) -> List[str]:
    """Run :func:`run_on_image` / :func:`run_on_video` (by file ending) on every file.

    Outputs are named by :func:`output_path`; a progress bar runs over two or more files, with
    the ``yolox_d2`` log lines above it.

    Args:
        predictor: the predictor to run.
        files: image and video files.
        output_dir: the output folder (created when missing).
        metadata: class names for the drawing; ``None`` uses ``predictor.metadata``.
        threshold: minimum score of a drawn detection, in [0, 1].
        records: dataset dicts, one per file (images only): their ground truth is drawn beside
            the predictions.

    Returns:
        The files that failed (each logged with the reason), in input order.
    """
    _check_threshold(threshold)
    if records is not None and len(records) != len(files):
        raise ValueError(f"{len(records)} dataset records for {len(files)} files")
    os.makedirs(output_dir, exist_ok=True)
    metadata = metadata if metadata is not None else predictor.metadata
    failed, used = [], set()
    # log lines go above the progress bars instead of breaking them
    with logging_redirect_tqdm(loggers=[logging.getLogger("yolox_d2")]):
        for i, path in enumerate(tqdm.tqdm(files, desc="demo", unit="file", disable=len(files) < 2)):
            is_video = path.lower().endswith(VIDEO_EXTS)
            out_path = output_path(output_dir, path, ".mp4" if is_video else ".jpg", used)
            try:
                if is_video:
                    run_on_video(predictor, path, out_path, metadata, threshold)
                else:
                    record = records[i] if records is not None else None
                    run_on_image(predictor, path, out_path, metadata, threshold, record)
            except OSError as e:
                logger.error("Skipping %s: %s", path, e)
                failed.append(path)
    return failed


def run_demo(
    cfg,
    output_dir: str,
    inputs: Sequence[str] = (),
    dataset: Optional[str] = None,
    max_images: int = 0,
    threshold: float = 0.3,
    device: Optional[str] = None,
    slice_size: int = 0,
    slice_overlap: float = 0.2,
    slice_whole_image: bool = False,
) -> int:
    """Build the :class:`~yolox_d2.engine.YOLOXPredictor` of ``cfg`` and draw its detections on
    ``inputs`` or on the images of ``dataset`` (:func:`run_on_files`).

    Args:
        cfg: a LazyConfig with ``model`` and ``train.init_checkpoint`` (see the predictor).
        output_dir: the output folder (created when missing).
        inputs: image files, folders (their images and videos) or videos.
        dataset: instead of ``inputs``, a registered dataset; its metadata names the classes
            (else the metadata of ``cfg.dataloader.test.dataset``); when its records have
            ``annotations``, each drawing shows the ground truth beside the predictions.
        max_images: with ``dataset``, at most this many images (0: all).
        threshold: minimum score of a drawn detection, in [0, 1].
        device: where to run; default ``cfg.train.device``.
        slice_size: if > 0, sliced inference on tiles of this many pixels (see the predictor).
        slice_overlap: with slicing, the overlap of neighbouring tiles (fraction of a tile).
        slice_whole_image: with slicing, also one pass over the whole image.

    Returns:
        The exit status of ``tools/demo.py``: 0 when every output was written, 1 when some input
        failed (each is logged by name), 2 when there was nothing to do (no input, or
        ``train.init_checkpoint`` does not exist).
    """
    _check_threshold(threshold)
    if inputs and dataset:
        raise ValueError("give either inputs or a dataset, not both")
    records = None
    if dataset:
        records = DatasetCatalog.get(dataset)[: max_images or None]
        files = [d["file_name"] for d in records]
        if not any("annotations" in d for d in records):
            records = None
    else:
        files = expand_inputs(inputs)
    if not files:
        logger.error("Nothing to do: no input files, folders or videos and no dataset")
        return 2
    os.makedirs(output_dir, exist_ok=True)
    try:
        predictor = YOLOXPredictor(
            cfg,
            device=device,
            slice_size=slice_size,
            slice_overlap=slice_overlap,
            slice_whole_image=slice_whole_image,
        )
    except FileNotFoundError as e:
        logger.error("%s", e)
        return 2
    metadata = MetadataCatalog.get(dataset) if dataset else None
    failed = run_on_files(predictor, files, output_dir, metadata, threshold, records)
    if failed:
        logger.error("%d of %d inputs failed: %s", len(failed), len(files), ", ".join(failed))
        return 1
    logger.info("Wrote %d outputs to %s", len(files), output_dir)
    return 0
