"""
The kinds of data problems (:class:`Reason`) and what is done about each: the table
:data:`REASONS` that :func:`~yolox_d2.data.validation.validate_dataset_dicts`, the
:class:`~yolox_d2.data.validation.DataIssueReport` and the training dataset use.
"""

from dataclasses import dataclass
from typing import Dict, FrozenSet

__all__ = ["Reason", "REASONS", "IMAGE_DROP_REASONS", "BOX_DROP_REASONS"]


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

#: Reasons that drop a whole image record (for the summary's totals).
IMAGE_DROP_REASONS: FrozenSet[str] = frozenset(k for k, r in REASONS.items() if r.action.startswith("image dropped"))
#: Reasons that drop a single box, now or when the image is loaded (for the summary's totals).
BOX_DROP_REASONS: FrozenSet[str] = frozenset(
    k for k, r in REASONS.items() if r.action in ("box dropped", "dropped when loaded")
)
