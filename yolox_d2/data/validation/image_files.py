"""
:func:`check_image_files`: a start-up check of every image file of a dataset, without decoding
pixels: the file exists, is not empty, its header names an image format PIL reads, and the
record's ``height`` / ``width`` (when present) agree with the size in the header.

The size rule is the one :func:`~yolox_d2.data.mappers.read_image_bgr` applies after decoding:
the declared size must be the displayed size (EXIF orientation applied) or, for a photo whose
EXIF orientation swaps the axes, the stored size. The header gives the stored size, so a
declared size equal to it is always accepted, its transpose only when the EXIF orientation
swaps the axes (the orientation is read only in that case).

Only headers are read (PIL's lazy ``Image.open``): about 0.3 ms per file in one thread on a
local disk (10,000 JPEG/PNG files in 2.9-3.8 s on a loaded 2-core machine). Parsing a header is
Python code holding the GIL, so threads (``num_threads``) pay off only where opening a file is
slow (network file systems); on a local disk 4 threads were ~1.5x slower than one.
"""

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from detectron2.utils.file_io import PathManager
from PIL import Image

from ...utils.file_io import is_local_path, local_path
from .report import DatasetValidationError

__all__ = ["ImageFileProblem", "check_image_files"]

logger = logging.getLogger(__name__)

# As yolox_d2.data.mappers.decode_image_bgr: EXIF orientations that swap the image axes.
_EXIF_ORIENTATION_TAG = 0x0112
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)
# How many problems an error message or the warnings list one by one.
_MAX_LISTED = 50


class ImageFileProblem(NamedTuple):
    """One record whose image file cannot be used as declared."""

    file_name: Any
    image_id: Any
    problem: str

    def __str__(self) -> str:
        return f"{self.file_name} (image_id={self.image_id!r}): {self.problem}"


def _declared_size(record: Mapping[str, Any]) -> Optional[Tuple[int, int]]:
    """
    ``(height, width)`` of a record when both are present and integers, else None (not
    checked: :func:`~yolox_d2.data.validation.validate_dataset_dicts` reports such sizes and
    the decoder ignores them, as here).
    """
    if "height" not in record or "width" not in record:
        return None
    try:
        return int(record["height"]), int(record["width"])
    except (TypeError, ValueError):
        return None


def _header_problem(f, declared: Optional[Tuple[int, int]]) -> Optional[str]:
    """The problem with the image header read from the open binary file ``f``, or None."""
    try:
        with Image.open(f) as image:
            width, height = image.size
            image_format = image.format
            if declared is None or declared == (height, width):
                return None
            if declared == (width, height):
                try:
                    orientation = image.getexif().get(_EXIF_ORIENTATION_TAG)
                except Exception:  # malformed EXIF: ignored, as when decoding
                    orientation = None
                if orientation in _TRANSPOSING_ORIENTATIONS:
                    return None
    except Exception as e:  # PIL.UnidentifiedImageError, truncated header, decompression bomb...
        return f"image header not readable: {type(e).__name__}: {e}"
    return (
        f"declared height x width {declared[0]}x{declared[1]} but the {image_format} header "
        f"says {height}x{width}; fix 'height'/'width' in the annotations"
    )


def _record_problem(record: Mapping[str, Any]) -> Optional[ImageFileProblem]:
    """The problem of one record, or None."""
    file_name = record.get("file_name")
    image_id = record.get("image_id")
    if not isinstance(file_name, (str, os.PathLike)) or not str(file_name):
        return ImageFileProblem(file_name, image_id, "no 'file_name'")
    declared = _declared_size(record)
    try:
        if is_local_path(file_name):
            path = local_path(file_name)
            if os.stat(path).st_size == 0:
                problem = "empty file (0 bytes)"
            else:
                with open(path, "rb") as f:
                    problem = _header_problem(f, declared)
        else:
            with PathManager.open(str(file_name), "rb") as f:
                problem = _header_problem(f, declared)
    except FileNotFoundError:
        problem = "file not found"
    except OSError as e:
        problem = f"cannot open the file: {type(e).__name__}: {e}"
    return None if problem is None else ImageFileProblem(file_name, image_id, problem)


def _listing(problems: Sequence[ImageFileProblem]) -> str:
    lines = [f"  {p}" for p in problems[:_MAX_LISTED]]
    if len(problems) > _MAX_LISTED:
        lines.append(f"  ... and {len(problems) - _MAX_LISTED} more")
    return "\n".join(lines)


def check_image_files(
    dataset_dicts: Iterable[Mapping[str, Any]],
    dataset_name: Optional[str] = None,
    *,
    mode: str = "eval",
    num_threads: int = 1,
) -> List[ImageFileProblem]:
    """
    Check the image file of every record (see the module docstring), reading headers only.

    Args:
        dataset_dicts: Detectron2 dataset dicts (``file_name``; ``image_id``, ``height`` and
            ``width`` when present).
        dataset_name: the registered name, used in messages.
        mode: ``"eval"``: any problem raises one error listing them (an evaluation set must
            be scored as registered). ``"train"``: the problems are logged (a warning per
            file for the first ones, then a count) and returned; the training pipeline drops
            missing / empty files and skips undecodable ones as before.
        num_threads: threads reading headers (1: in this thread); more only for file
            systems with a slow ``open`` (NFS, Lustre, object stores).

    Returns:
        The problems, in record order (empty when every file is fine).

    Raises:
        DatasetValidationError: ``mode="eval"`` and a file has a problem; the message names
            every file (the first 50) with its ``image_id`` and the problem.
    """
    if mode not in ("train", "eval"):
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
    records = list(dataset_dicts)
    if num_threads > 1 and len(records) > 1:
        with ThreadPoolExecutor(max_workers=int(num_threads)) as pool:
            results = list(pool.map(_record_problem, records, chunksize=64))
    else:
        results = [_record_problem(r) for r in records]
    problems = [p for p in results if p is not None]
    prefix = f"[dataset {dataset_name!r}] " if dataset_name else ""
    if not problems:
        logger.info("%sAll %d image files have a readable header and the declared size", prefix, len(records))
        return problems
    summary = f"{prefix}{len(problems)} of {len(records)} image files cannot be used as declared"
    if mode == "eval":
        raise DatasetValidationError(f"{summary}:\n{_listing(problems)}")
    logger.warning("%s (they are skipped in training):\n%s", summary, _listing(problems))
    return problems
