"""
:func:`validate_dataset_dicts`: the check of every image record of a dataset (its image file,
declared size, ``image_id`` and ``annotations`` list; each annotation is checked by
:func:`~yolox_d2.data.validation.annotations.check_annotation`), returning cleaned records.
"""

import logging
import math
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ...utils.file_io import is_local_path, local_path
from .annotations import check_annotation, dataset_category_remap
from .metadata import dataset_metadata_classes, dataset_names
from .reasons import REASONS
from .report import DataIssueReport, DatasetValidationError

__all__ = ["validate_dataset_dicts"]

logger = logging.getLogger(__name__)


def _positive_int(value: Any) -> Optional[int]:
    """``value`` as a positive int if it is one (3, 3.0, np.int64(3)), else None."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    if isinstance(value, bool) or not math.isfinite(f) or f <= 0 or f != int(f):
        return None
    return int(f)


def _check_image_file(rec: Mapping[str, Any], check_files: bool) -> Optional[str]:
    """The reason the record's image cannot be used, or None."""
    file_name = rec.get("file_name")
    if not isinstance(file_name, (str, os.PathLike)) or not str(file_name):
        return "missing_file_name"
    if not check_files or not is_local_path(file_name):
        return None
    try:
        st = os.stat(local_path(file_name))
    except OSError:
        return "missing_file"
    if st.st_size == 0:
        return "empty_file"
    return None


class _RecordChecker:
    """
    Checks the records of one :func:`validate_dataset_dicts` call, one at a time, and keeps
    what spans records: the ``image_id`` values seen and the records without a usable image.
    """

    def __init__(
        self,
        report: DataIssueReport,
        mode: str,
        n_cls: Optional[int],
        remap: Optional[Dict[int, int]],
        check_files: bool,
        filter_empty: bool,
        max_labels: Optional[int],
    ) -> None:
        """
        Args:
            report: where problems are recorded.
            mode: ``"train"`` or ``"eval"`` (see :func:`validate_dataset_dicts`).
            n_cls: number of declared classes, or None.
            remap: dataset id -> contiguous id map to apply, or None.
            check_files: ``stat`` local image files.
            filter_empty: drop training images left without a non-crowd box.
            max_labels: report images with more boxes than this, or None.
        """
        self.report = report
        self.mode = mode
        self.n_cls = n_cls
        self.remap = remap
        self.check_files = check_files
        self.filter_empty = filter_empty
        self.max_labels = max_labels
        #: one line per record without a usable image (an error in evaluation)
        self.unusable: List[str] = []
        self._seen_ids: Dict[Any, int] = {}

    def check(self, rec: Any) -> Optional[Dict[str, Any]]:
        """The record to return for ``rec`` (cleaned in training), or None when it is dropped."""
        self.report.num_images += 1
        if not isinstance(rec, Mapping):
            self.report.add("not_a_dict", detail=f"got {type(rec).__name__}")
            self.unusable.append(f"<{type(rec).__name__} record>")
            return None
        where = dict(file_name=rec.get("file_name"), image_id=rec.get("image_id"))
        image_reason = _check_image_file(rec, self.check_files)
        if image_reason is not None:
            self.report.add(image_reason, **where)
            self._unusable(where, REASONS[image_reason].description)
            return None
        if self.mode == "eval":
            self._check_image_id(rec, where)
        size, bad_size = self._image_size(rec, where)
        anns = self._annotations(rec, where)
        if anns is None:
            return None
        clean_anns = []
        for ann in anns:
            self.report.num_boxes += 1
            clean = check_annotation(ann, size, self.n_cls, self.remap, self.report, where)
            if clean is not None:
                clean_anns.append(clean)
        if not self._check_targets(anns, clean_anns, where):
            return None
        if self.mode == "eval":
            return rec
        new = dict(rec, annotations=clean_anns)
        if bad_size:
            new.pop("height", None)
            new.pop("width", None)
        return new

    def _unusable(self, where: Dict[str, Any], problem: str) -> None:
        self.unusable.append(f"{where['file_name']!r} (image_id={where['image_id']!r}): {problem}")

    def _check_image_id(self, rec: Mapping[str, Any], where: Dict[str, Any]) -> None:
        """Report a missing or repeated ``image_id`` (evaluation matches predictions by it)."""
        image_id = where["image_id"]
        if "image_id" not in rec:
            self.report.add("missing_image_id", **where)
        elif image_id in self._seen_ids:
            self.report.add("duplicate_image_id", detail=f"also used by record #{self._seen_ids[image_id]}", **where)
        else:
            self._seen_ids[image_id] = self.report.num_images - 1

    def _image_size(self, rec: Mapping[str, Any], where: Dict[str, Any]) -> Tuple[Optional[Tuple[int, int]], bool]:
        """``((height, width) or None, whether a declared size is invalid)``."""
        if "height" not in rec and "width" not in rec:
            return None, False
        h, w = _positive_int(rec.get("height")), _positive_int(rec.get("width"))
        if h is not None and w is not None:
            return (h, w), False
        self.report.add("invalid_image_size", detail=f"height={rec.get('height')!r}, width={rec.get('width')!r}", **where)
        if self.mode == "eval":  # predictions are rescaled to the declared size
            self._unusable(where, f"invalid height={rec.get('height')!r} / width={rec.get('width')!r}")
        return None, True

    def _annotations(self, rec: Mapping[str, Any], where: Dict[str, Any]) -> Optional[Sequence[Any]]:
        """The record's annotations (none: ``[]``), or None when the field is not a list."""
        anns = rec.get("annotations", [])
        if anns is None:
            return []
        if not isinstance(anns, (list, tuple)):
            self.report.add("invalid_annotations_field", detail=f"got {type(anns).__name__}", **where)
            self._unusable(where, "annotations is not a list")
            return None
        return anns

    def _check_targets(self, anns: Sequence[Any], clean_anns: List[Dict[str, Any]], where: Dict[str, Any]) -> bool:
        """Report images without / with too many boxes; False when the image is filtered out."""
        n_targets = sum(1 for a in clean_anns if not a.get("iscrowd", 0))
        if n_targets == 0 and (self.mode == "train" or not anns):
            if self.mode == "train" and self.filter_empty:
                self.report.add("filtered_empty", **where)
                return False
            self.report.add("no_annotations", **where)
        if self.max_labels is not None and n_targets > self.max_labels:
            self.report.add(
                "more_than_max_labels", detail=f"{n_targets} boxes > max_labels={self.max_labels}", **where
            )
        return True


def _prepare_report(report: Optional[DataIssueReport], display_name: Optional[str], mode: str) -> DataIssueReport:
    """``report`` set up for ``mode`` (named ``display_name`` unless it has a name), or a new one."""
    if report is None:
        return DataIssueReport(display_name, report_only=mode == "eval")
    report.report_only = mode == "eval"
    if report.dataset_name is None:
        report.dataset_name = display_name
    return report


def _declared_categories(
    records: Sequence[Any],
    names: List[str],
    display_name: Optional[str],
    num_classes: Optional[int],
    report: DataIssueReport,
) -> Tuple[Optional[int], Optional[Dict[int, int]]]:
    """
    ``(number of declared classes or None, dataset id map to apply or None)`` from the
    metadata of ``names`` and the model's ``num_classes``.
    """
    thing_classes, id_map = dataset_metadata_classes(names)
    if thing_classes is not None and num_classes is not None and len(thing_classes) != int(num_classes):
        raise DatasetValidationError(
            f"Dataset {display_name!r} declares {len(thing_classes)} thing_classes "
            f"{thing_classes[:10]}{'...' if len(thing_classes) > 10 else ''} but the model has "
            f"num_classes={num_classes}"
        )
    n_cls = len(thing_classes) if thing_classes is not None else num_classes
    remap = dataset_category_remap(records, n_cls, id_map)
    if remap is not None:
        logger.warning(
            "%scategory ids are the dataset's own ids (%s), not contiguous ids 0..%d: converted "
            "with the metadata's thing_dataset_id_to_contiguous_id",
            report.prefix,
            sorted(remap)[:10],
            (n_cls or 0) - 1,
        )
    return n_cls, remap


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
    :data:`~yolox_d2.data.validation.REASONS` for what is done in each case, and the
    :mod:`yolox_d2.data.validation` docstring for the conventions.

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
    names = dataset_names(dataset_name)
    display_name = ",".join(names) if names else None
    report = _prepare_report(report, display_name, mode)
    records = list(dataset_dicts)
    n_cls, remap = _declared_categories(records, names, display_name, num_classes, report)

    checker = _RecordChecker(report, mode, n_cls, remap, check_files, filter_empty, max_labels)
    out = [checked for checked in map(checker.check, records) if checked is not None]

    if report.counts["more_than_max_labels"]:
        logger.warning(
            "%s%d images have more than max_labels=%s boxes; a training sample keeps the first %s",
            report.prefix,
            report.counts["more_than_max_labels"],
            max_labels,
            max_labels,
        )
    if log_summary:
        report.log_summary()
    if mode == "eval" and checker.unusable:
        shown = "\n  ".join(checker.unusable[:10])
        more = f"\n  ... and {len(checker.unusable) - 10} more" if len(checker.unusable) > 10 else ""
        raise DatasetValidationError(
            f"{report.prefix}{len(checker.unusable)} of {len(records)} evaluation records have no usable "
            f"image; evaluation would not score the dataset as registered:\n  {shown}{more}"
        )
    return out
