"""
Validation of Detectron2 dataset dicts before training or evaluation.

:func:`validate_dataset_dicts` checks every image record and annotation of a dataset (any
registered dataset, no image decoding: it is cheap enough to run at every start) and returns
cleaned records. Every problem gets a fixed *reason* (see :data:`REASONS`) with a fixed
*action*: the record is converted (e.g. relative boxes to absolute, dataset category ids to
contiguous ids), the box is dropped, the image is dropped, or the problem is only reported.
A warning names the file, the ``image_id``, the reason and the offending value (the first
``max_warnings_per_reason`` occurrences of each reason; the rest are counted), and a one-line
summary with the counts per reason is logged once at the end (:class:`DataIssueReport`).

Training (``mode="train"``) never stops for bad records: they are dropped or fixed. Evaluation
(``mode="eval"``) must not silently change the dataset it scores: a record without a usable
image raises :class:`DatasetValidationError` (naming the files and image ids), annotation
problems are only reported (the evaluator reads the registered annotations itself).

Conventions (those of Detectron2):

* boxes are in the pixel frame of the image *as displayed*, i.e. after the EXIF orientation
  is applied (:func:`detectron2.data.detection_utils.read_image` applies it);
* ``category_id`` is the contiguous id ``0 .. len(thing_classes) - 1``. Datasets registered
  with raw ids (e.g. COCO's 1..90) and a ``thing_dataset_id_to_contiguous_id`` metadata map
  are converted with that map.

Boxes partly or entirely outside the declared image size are reported here but clipped /
dropped when the image is decoded (:class:`~yolox_d2.data.mosaic.MosaicMixupDataset`),
against the decoded image's real size: a declared ``height`` / ``width`` can be the stored
(pre-EXIF) size of a rotated photo, so it is not trusted to cut boxes.
"""

import logging
import math
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.build import print_instances_class_histogram
from detectron2.structures import BoxMode

__all__ = [
    "REASONS",
    "Reason",
    "DataIssueReport",
    "DatasetValidationError",
    "ValidatedDatasetDicts",
    "validate_dataset_dicts",
    "get_validated_dataset_dicts",
    "dataset_metadata_classes",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reason:
    """A kind of data problem and what is done about it.

    Attributes:
        key: short identifier (used in logs and in :attr:`DataIssueReport.counts`).
        description: what is wrong, in words.
        action: what happens to the record (``"image dropped"``, ``"box dropped"``, ...).
        warn_each: log a warning per occurrence (up to the report's limit); otherwise the
            occurrences only appear in the summary.
    """

    key: str
    description: str
    action: str
    warn_each: bool = True


#: Every reason :func:`validate_dataset_dicts` and the training dataset use, by key.
REASONS: Dict[str, Reason] = {
    r.key: r
    for r in [
        Reason("not_a_dict", "record is not a dict", "image dropped"),
        Reason("missing_file_name", "no 'file_name'", "image dropped"),
        Reason("missing_file", "image file does not exist", "image dropped"),
        Reason("empty_file", "image file is empty (0 bytes)", "image dropped"),
        Reason(
            "invalid_image_size",
            "'height'/'width' are not positive integers",
            "ignored, the decoded image's size is used",
        ),
        Reason("invalid_annotations_field", "'annotations' is not a list", "image dropped"),
        Reason("no_annotations", "image has no boxes", "kept as a background image", False),
        Reason("filtered_empty", "image has no boxes", "image dropped (filter_empty)", False),
        Reason("malformed_annotation", "annotation is not a dict", "box dropped"),
        Reason("malformed_bbox", "'bbox' is missing or not 4 numbers", "box dropped"),
        Reason("unsupported_bbox_mode", "'bbox_mode' is missing or not an axis-aligned mode", "box dropped"),
        Reason("relative_bbox_without_size", "relative box but no valid image size", "box dropped"),
        Reason("non_finite_bbox", "box has a NaN or infinite coordinate", "box dropped"),
        Reason("degenerate_bbox", "box has zero or negative width/height", "box dropped"),
        Reason(
            "bbox_partly_outside",
            "box is partly outside the declared image size",
            "clipped to the image when loaded",
        ),
        Reason(
            "bbox_outside_image",
            "box is entirely outside the declared image size",
            "dropped when loaded",
        ),
        Reason("invalid_category_id", "'category_id' is missing or not an integer", "box dropped"),
        Reason(
            "undeclared_category_id",
            "'category_id' is not one of the dataset's declared classes",
            "box dropped",
        ),
        Reason(
            "category_id_remapped",
            "dataset category ids mapped with thing_dataset_id_to_contiguous_id",
            "converted",
            False,
        ),
        Reason("crowd_ignored", "crowd annotation", "not used as a training target", False),
        Reason(
            "more_than_max_labels",
            "image has more boxes than max_labels",
            "a training sample keeps the first max_labels boxes",
            False,
        ),
        Reason("duplicate_image_id", "'image_id' used by several records", "reported"),
        Reason("missing_image_id", "no 'image_id'", "reported"),
    ]
}

# Reasons that drop a whole image / a single box (for the summary's totals).
_IMAGE_DROPS = {k for k, r in REASONS.items() if r.action.startswith("image dropped")}
_BOX_DROPS = {k for k, r in REASONS.items() if r.action in ("box dropped", "dropped when loaded")}



class DatasetValidationError(ValueError):
    """A dataset cannot be used as it is (e.g. evaluation images missing); names the records."""


class DataIssueReport:
    """
    Counts of data problems per reason, with rate-limited warnings and a one-time summary.

    Warnings name the dataset, the file, the ``image_id``, the reason, the action and a
    detail (e.g. the offending box). Each reason is warned about at most
    ``max_warnings_per_reason`` times; further occurrences are only counted.
    """

    def __init__(
        self,
        dataset_name: Optional[str] = None,
        max_warnings_per_reason: int = 10,
        report_only: bool = False,
    ) -> None:
        """
        Args:
            dataset_name: name used in messages (e.g. the registered dataset name).
            max_warnings_per_reason: individual warnings logged per reason.
            report_only: the records are not changed (evaluation): messages say so instead
                of the training action ("box dropped", ...).
        """
        self.dataset_name = dataset_name
        self.report_only = bool(report_only)
        self.max_warnings_per_reason = int(max_warnings_per_reason)
        self.counts: Counter = Counter()
        self.num_images = 0
        self.num_boxes = 0

    def _prefix(self) -> str:
        return f"[dataset {self.dataset_name!r}] " if self.dataset_name else ""

    def action(self, reason: str) -> str:
        """What is done for ``reason`` (training action, or "reported only" for evaluation)."""
        r = REASONS[reason]
        if self.report_only and reason not in _IMAGE_DROPS:
            return "reported only: evaluation uses the annotations as registered"
        return r.action

    def add(
        self,
        reason: str,
        file_name: Any = None,
        image_id: Any = None,
        detail: str = "",
        count: int = 1,
    ) -> None:
        """
        Record ``count`` occurrences of ``reason`` and warn (rate-limited).

        Args:
            reason: a key of :data:`REASONS`.
            file_name: the image file of the record.
            image_id: the record's ``image_id``.
            detail: the offending value, e.g. ``"bbox=[1, 2, nan, 4]"``.
            count: occurrences to add (e.g. all boxes of an image at once).
        """
        r = REASONS[reason]
        before = self.counts[reason]
        self.counts[reason] += count
        if not r.warn_each or before >= self.max_warnings_per_reason:
            return
        logger.warning(
            "%s%s (image_id=%r): %s (%s)%s",
            self._prefix(),
            file_name,
            image_id,
            r.description,
            self.action(reason),
            f": {detail}" if detail else "",
        )
        if before + 1 == self.max_warnings_per_reason:
            logger.warning(
                "%sfurther %r problems are not logged one by one; see the summary",
                self._prefix(),
                reason,
            )

    def merge(self, other: "DataIssueReport") -> None:
        """Add the counts of ``other`` (e.g. of another dataset of a concatenation)."""
        self.counts.update(other.counts)
        self.num_images += other.num_images
        self.num_boxes += other.num_boxes

    @property
    def dropped_images(self) -> int:
        """Number of image records dropped."""
        return sum(self.counts[k] for k in _IMAGE_DROPS)

    @property
    def dropped_boxes(self) -> int:
        """Number of boxes dropped (now or when loaded)."""
        return sum(self.counts[k] for k in _BOX_DROPS)

    def summary(self) -> str:
        """One line: totals and the count of every reason that occurred, with its action."""
        if not +self.counts:
            return f"{self._prefix()}{self.num_images} images, {self.num_boxes} boxes: no problems found"
        parts = [
            f"{key}={n} ({self.action(key)})" for key, n in sorted(self.counts.items()) if n
        ]
        if self.report_only:
            totals = "records unchanged"
        else:
            totals = f"{self.dropped_images} images and {self.dropped_boxes} boxes dropped"
        return (
            f"{self._prefix()}{self.num_images} images, {self.num_boxes} boxes checked; "
            f"{totals}. " + "; ".join(parts)
        )

    def log_summary(self) -> None:
        """
        Log :meth:`summary` once: a warning when a problem was found, info when only expected
        properties were counted (images without boxes, crowd boxes, converted category ids).
        """
        problems = any(n and REASONS[k].warn_each for k, n in self.counts.items())
        logger.log(logging.WARNING if problems else logging.INFO, "Data validation summary: %s", self.summary())


# ---------------------------------------------------------------------------------------------
def _names(dataset_name: Union[None, str, Sequence[str]]) -> List[str]:
    if dataset_name is None:
        return []
    if isinstance(dataset_name, str):
        return [dataset_name]
    return [str(n) for n in dataset_name]


def dataset_metadata_classes(
    dataset_name: Union[None, str, Sequence[str]]
) -> Tuple[Optional[List[str]], Optional[Dict[int, int]]]:
    """
    ``thing_classes`` and ``thing_dataset_id_to_contiguous_id`` of registered dataset(s).

    Args:
        dataset_name: a registered name, several (the first that declares them wins; Detectron2
            requires them to agree), or None.

    Returns:
        ``(thing_classes or None, id map or None)``.
    """
    classes, id_map = None, None
    for name in _names(dataset_name):
        meta = MetadataCatalog.get(name)
        if classes is None and meta.get("thing_classes") is not None:
            classes = list(meta.get("thing_classes"))
        if id_map is None and meta.get("thing_dataset_id_to_contiguous_id") is not None:
            id_map = {int(k): int(v) for k, v in meta.get("thing_dataset_id_to_contiguous_id").items()}
    return classes, id_map


def _positive_int(value: Any) -> Optional[int]:
    """``value`` as a positive int if it is one (3, 3.0, np.int64(3)), else None."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    if isinstance(value, bool) or not math.isfinite(f) or f <= 0 or f != int(f):
        return None
    return int(f)


def _integer(value: Any) -> Optional[int]:
    """``value`` as an int if it is integral (3, 3.0, np.int64), else None (bool / str / NaN)."""
    if type(value) is int:  # the common case, fast
        return value
    if isinstance(value, (bool, str, bytes)) or value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f) or f != int(f):
        return None
    return int(f)


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


# bbox_mode (BoxMode member or its int value: BoxMode is an IntEnum) -> (is XYWH, is relative)
_MODES = {
    BoxMode.XYXY_ABS: (False, False),
    BoxMode.XYWH_ABS: (True, False),
    BoxMode.XYXY_REL: (False, True),
    BoxMode.XYWH_REL: (True, True),
}


def _mode_name(raw_mode: Any) -> str:
    try:
        return BoxMode(int(raw_mode)).name
    except (ValueError, TypeError):
        return repr(raw_mode)


def _parse_box(
    ann: Mapping[str, Any], size: Optional[Tuple[int, int]]
) -> Tuple[Optional[List[float]], Optional[str], str]:
    """``(xyxy_abs, None, "")`` or ``(None, reason, detail)`` for one annotation."""
    raw_mode = ann.get("bbox_mode")
    try:
        xywh, relative = _MODES[raw_mode]
    except (KeyError, TypeError):  # missing, rotated (XYWHA_ABS), unknown or unhashable
        return None, "unsupported_bbox_mode", f"bbox_mode={_mode_name(raw_mode)}"
    raw = ann.get("bbox")
    try:
        x, y, a, b = raw  # type: ignore[misc]
        x, y, a, b = float(x), float(y), float(a), float(b)
    except (TypeError, ValueError):
        return None, "malformed_bbox", f"bbox={raw!r}"
    if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(a) and math.isfinite(b)):
        return None, "non_finite_bbox", f"bbox={[x, y, a, b]} ({_mode_name(raw_mode)})"
    values = (x, y, a, b)
    if xywh:
        a, b = x + a, y + b
    if relative:
        if size is None:
            return None, "relative_bbox_without_size", f"bbox={list(values)} ({_mode_name(raw_mode)})"
        h, w = size
        x, a, y, b = x * w, a * w, y * h, b * h
    if not (math.isfinite(a) and math.isfinite(b)):  # overflow of x + w
        return None, "non_finite_bbox", f"bbox={list(values)} ({_mode_name(raw_mode)})"
    if not (a > x and b > y):
        return (
            None,
            "degenerate_bbox",
            f"bbox={list(values)} ({_mode_name(raw_mode)}), width={a - x:g}, height={b - y:g}",
        )
    return [x, y, a, b], None, ""


def validate_dataset_dicts(
    dataset_dicts: Iterable[Dict[str, Any]],
    dataset_name: Union[None, str, Sequence[str]] = None,
    *,
    mode: str = "train",
    num_classes: Optional[int] = None,
    check_files: bool = True,
    filter_empty: bool = False,
    max_labels: Optional[int] = None,
    report: Optional[DataIssueReport] = None,
    log_summary: bool = True,
) -> List[Dict[str, Any]]:
    """
    Check Detectron2 dataset dicts and return them cleaned (the input is not modified).

    Per image record: a ``file_name`` (and with ``check_files``, a local file that exists and
    is not empty; remote URIs are not checked), optional positive integer ``height`` /
    ``width``, ``annotations`` a list. Per annotation: ``bbox`` 4 finite numbers in an
    axis-aligned ``bbox_mode`` (relative modes are converted with the image size), positive
    width and height, ``category_id`` an integer among the declared classes. See
    :data:`REASONS` for what is done in each case, and the module docstring for the
    conventions.

    Args:
        dataset_dicts: the records, e.g. ``DatasetCatalog.get(name)`` or
            ``get_detection_dataset_dicts(names)``.
        dataset_name: registered dataset name(s) whose metadata (``thing_classes``,
            ``thing_dataset_id_to_contiguous_id``) declare the categories; also used in
            messages. None: categories are only checked to be integers >= 0 (and below
            ``num_classes`` if given).
        mode: ``"train"``: drop / fix bad records and boxes, never raise for bad data.
            ``"eval"``: return the records unchanged; records without a usable image raise
            :class:`DatasetValidationError`; everything else is reported.
        num_classes: number of classes of the model; must agree with ``thing_classes`` when
            both are known.
        check_files: check that local image files exist and are not empty (one ``stat`` per
            image; no decoding).
        filter_empty: ``mode="train"``: drop images left without any non-crowd box
            (Detectron2's ``filter_empty``); otherwise they are kept as background images.
        max_labels: report images with more boxes than a training sample keeps.
        report: collect into this report (default: a new one); its counts can be inspected.
        log_summary: log the summary line when done.

    Returns:
        ``mode="train"``: new records (shallow copies) holding only the usable images; their
        ``annotations`` have ``bbox`` in ``XYXY_ABS`` floats, ``bbox_mode=BoxMode.XYXY_ABS``
        and an int contiguous ``category_id``; invalid ``height`` / ``width`` are removed.
        ``mode="eval"``: the input records, in a new list.

    Raises:
        DatasetValidationError: ``mode="eval"`` and some record has no usable image; or the
            class counts of the metadata and ``num_classes`` disagree.
        ValueError: unknown ``mode``.
    """
    if mode not in ("train", "eval"):
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
    names = _names(dataset_name)
    display_name = ",".join(names) if names else None
    if report is None:
        report = DataIssueReport(display_name, report_only=mode == "eval")
    else:
        report.report_only = mode == "eval"
        if report.dataset_name is None:
            report.dataset_name = display_name
    records = list(dataset_dicts)

    thing_classes, id_map = dataset_metadata_classes(names)
    if thing_classes is not None and num_classes is not None and len(thing_classes) != int(num_classes):
        raise DatasetValidationError(
            f"Dataset {display_name!r} declares {len(thing_classes)} thing_classes "
            f"{thing_classes[:10]}{'...' if len(thing_classes) > 10 else ''} but the model has "
            f"num_classes={num_classes}"
        )
    n_cls = len(thing_classes) if thing_classes is not None else num_classes
    remap = _category_remap(records, n_cls, id_map)
    if remap is not None:
        logger.warning(
            "%scategory ids are the dataset's own ids (%s), not contiguous ids 0..%d: converted "
            "with the metadata's thing_dataset_id_to_contiguous_id",
            report._prefix(),
            sorted(remap)[:10],
            (n_cls or 0) - 1,
        )

    out: List[Dict[str, Any]] = []
    unusable: List[str] = []
    seen_ids: Dict[Any, int] = {}
    for rec in records:
        report.num_images += 1
        if not isinstance(rec, Mapping):
            report.add("not_a_dict", detail=f"got {type(rec).__name__}")
            unusable.append(f"<{type(rec).__name__} record>")
            continue
        file_name, image_id = rec.get("file_name"), rec.get("image_id")
        where = dict(file_name=file_name, image_id=image_id)
        image_reason = _check_image_file(rec, check_files)
        if image_reason is not None:
            report.add(image_reason, **where)
            unusable.append(f"{file_name!r} (image_id={image_id!r}): {REASONS[image_reason].description}")
            continue
        if mode == "eval":
            if "image_id" not in rec:
                report.add("missing_image_id", **where)
            elif image_id in seen_ids:
                report.add("duplicate_image_id", detail=f"also used by record #{seen_ids[image_id]}", **where)
            else:
                seen_ids[image_id] = report.num_images - 1

        size: Optional[Tuple[int, int]] = None
        bad_size = False
        if "height" in rec or "width" in rec:
            h, w = _positive_int(rec.get("height")), _positive_int(rec.get("width"))
            if h is None or w is None:
                bad_size = True
                report.add(
                    "invalid_image_size", detail=f"height={rec.get('height')!r}, width={rec.get('width')!r}", **where
                )
                if mode == "eval":  # predictions are rescaled to the declared size
                    unusable.append(
                        f"{file_name!r} (image_id={image_id!r}): invalid height={rec.get('height')!r} / "
                        f"width={rec.get('width')!r}"
                    )
            else:
                size = (h, w)

        anns = rec.get("annotations", [])
        if anns is None:
            anns = []
        if not isinstance(anns, (list, tuple)):
            report.add("invalid_annotations_field", detail=f"got {type(anns).__name__}", **where)
            unusable.append(f"{file_name!r} (image_id={image_id!r}): annotations is not a list")
            continue
        clean_anns = []
        for ann in anns:
            report.num_boxes += 1
            clean = _check_annotation(ann, size, n_cls, remap, report, where)
            if clean is not None:
                clean_anns.append(clean)
        n_targets = sum(1 for a in clean_anns if not a.get("iscrowd", 0))
        if n_targets == 0 and (mode == "train" or not anns):
            if mode == "train" and filter_empty:
                report.add("filtered_empty", **where)
                continue
            report.add("no_annotations", **where)
        if max_labels is not None and n_targets > max_labels:
            report.add("more_than_max_labels", detail=f"{n_targets} boxes > max_labels={max_labels}", **where)

        if mode == "train":
            new = dict(rec, annotations=clean_anns)
            if bad_size:
                new.pop("height", None)
                new.pop("width", None)
            out.append(new)
        else:
            out.append(rec)

    if report.counts["more_than_max_labels"]:
        logger.warning(
            "%s%d images have more than max_labels=%s boxes; a training sample keeps the first %s",
            report._prefix(),
            report.counts["more_than_max_labels"],
            max_labels,
            max_labels,
        )
    if log_summary:
        report.log_summary()
    if mode == "eval" and unusable:
        shown = "\n  ".join(unusable[:10])
        more = f"\n  ... and {len(unusable) - 10} more" if len(unusable) > 10 else ""
        raise DatasetValidationError(
            f"{report._prefix()}{len(unusable)} of {len(records)} evaluation records have no usable "
            f"image; evaluation would not score the dataset as registered:\n  {shown}{more}"
        )
    return out


def _check_image_file(rec: Mapping[str, Any], check_files: bool) -> Optional[str]:
    """The reason the record's image cannot be used, or None."""
    file_name = rec.get("file_name")
    if not isinstance(file_name, (str, os.PathLike)) or not str(file_name):
        return "missing_file_name"
    if not check_files or not _is_local(str(file_name)):
        return None
    path = str(file_name)
    if path.startswith("file://"):
        path = path[len("file://") :]
    try:
        st = os.stat(path)
    except OSError:
        return "missing_file"
    if st.st_size == 0:
        return "empty_file"
    return None


def _category_remap(
    records: Sequence[Any], n_cls: Optional[int], id_map: Optional[Dict[int, int]]
) -> Optional[Dict[int, int]]:
    """
    The id map to apply when the records hold *dataset* category ids: some id is outside
    ``[0, n_cls)``, every id is a key of the metadata's map and the map is not the identity.
    """
    if not id_map or n_cls is None:
        return None
    if all(k == v for k, v in id_map.items()):
        return None
    ids = set()
    for rec in records:
        if not isinstance(rec, Mapping):
            continue
        anns = rec.get("annotations") or []
        if not isinstance(anns, (list, tuple)):
            continue
        for ann in anns:
            if isinstance(ann, Mapping):
                cid = _integer(ann.get("category_id"))
                if cid is not None:
                    ids.add(cid)
    if ids and any(not 0 <= i < n_cls for i in ids) and ids <= set(id_map):
        return id_map
    return None


def _check_annotation(
    ann: Any,
    size: Optional[Tuple[int, int]],
    n_cls: Optional[int],
    remap: Optional[Dict[int, int]],
    report: DataIssueReport,
    where: Dict[str, Any],
) -> Optional[Dict[str, Any]]:
    """A normalised copy of one annotation, or None (dropped; the reason is recorded)."""
    if not isinstance(ann, Mapping):
        report.add("malformed_annotation", detail=f"got {type(ann).__name__}", **where)
        return None
    box, reason, detail = _parse_box(ann, size)
    if box is None:
        report.add(reason, detail=detail, **where)
        return None
    cid = _integer(ann.get("category_id"))
    if cid is None:
        report.add("invalid_category_id", detail=f"category_id={ann.get('category_id')!r}", **where)
        return None
    if remap is not None:
        report.add("category_id_remapped", **where)
        cid = remap[cid]
    if cid < 0 or (n_cls is not None and cid >= n_cls):
        declared = f"declared classes: 0..{n_cls - 1}" if n_cls is not None else "must be >= 0"
        report.add("undeclared_category_id", detail=f"category_id={ann.get('category_id')!r} ({declared})", **where)
        return None
    iscrowd = int(bool(ann.get("iscrowd", 0)))
    if iscrowd:
        report.add("crowd_ignored", **where)
    elif size is not None:
        h, w = size
        x1, y1, x2, y2 = box
        if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
            report.add("bbox_outside_image", detail=f"bbox(XYXY)={box}, image {w}x{h} (WxH)", **where)
        elif x1 < 0 or y1 < 0 or x2 > w or y2 > h:
            report.add("bbox_partly_outside", detail=f"bbox(XYXY)={box}, image {w}x{h} (WxH)", **where)
    return dict(ann, bbox=box, bbox_mode=BoxMode.XYXY_ABS, category_id=cid, iscrowd=iscrowd)


class ValidatedDatasetDicts(list):
    """
    A list of dataset dicts already checked by :func:`validate_dataset_dicts` (training
    mode); :attr:`report` holds the counts. :class:`~yolox_d2.data.mosaic.MosaicMixupDataset`
    does not validate such a list again.
    """

    report: DataIssueReport


def get_validated_dataset_dicts(
    names: Union[str, Sequence[str]],
    *,
    filter_empty: bool = True,
    check_files: bool = True,
    num_classes: Optional[int] = None,
    max_labels: Optional[int] = 120,
) -> ValidatedDatasetDicts:
    """
    The training records of registered dataset(s), validated: the bad-data-safe replacement
    of :func:`detectron2.data.get_detection_dataset_dicts` for training (which asserts on an
    undeclared category id and does not look at boxes).

    Each dataset is loaded from ``DatasetCatalog`` and checked with
    :func:`validate_dataset_dicts` (``mode="train"``) against its own metadata, then the
    datasets are concatenated; a summary per dataset is logged, and the class histogram when
    the datasets declare ``thing_classes`` (as Detectron2 does).

    Args:
        names: registered dataset name(s).
        filter_empty: drop images without any non-crowd box (Detectron2's default for training).
        check_files: drop records whose local image file is missing or empty.
        num_classes: the model's number of classes (checked against ``thing_classes``).
        max_labels: report images with more boxes than a training sample keeps.

    Returns:
        The records (see :func:`validate_dataset_dicts`), with the combined report in
        ``.report``.

    Raises:
        DatasetValidationError: no usable record is left, or the datasets declare different
            ``thing_classes``.
    """
    names = [names] if isinstance(names, str) else [str(n) for n in names]
    if not names:
        raise ValueError("get_validated_dataset_dicts() needs at least one dataset name")
    combined = DataIssueReport(",".join(names))
    out = ValidatedDatasetDicts()
    classes = None
    for name in names:
        report = DataIssueReport(name)
        thing_classes, _ = dataset_metadata_classes(name)
        if classes is not None and thing_classes is not None and thing_classes != classes:
            raise DatasetValidationError(
                f"Datasets {names} declare different thing_classes: {classes[:10]} vs "
                f"{thing_classes[:10]} ({name!r})"
            )
        classes = classes if classes is not None else thing_classes
        out.extend(
            validate_dataset_dicts(
                DatasetCatalog.get(name),
                name,
                mode="train",
                num_classes=num_classes,
                check_files=check_files,
                filter_empty=filter_empty,
                max_labels=max_labels,
                report=report,
            )
        )
        combined.merge(report)
    out.report = combined
    if not out:
        raise DatasetValidationError(f"No usable training image in {names}: {combined.summary()}")
    if classes is not None:
        print_instances_class_histogram(out, classes)
    return out
