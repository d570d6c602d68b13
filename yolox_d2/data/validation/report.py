"""
What data validation found: :class:`DataIssueReport` counts the problems per reason (see
:data:`~yolox_d2.data.validation.reasons.REASONS`), logs rate-limited warnings and a one-line
summary; :class:`DatasetValidationError` is raised when a dataset cannot be used as it is.
"""

import logging
from collections import Counter
from typing import Any, Optional

from .reasons import BOX_DROP_REASONS, IMAGE_DROP_REASONS, REASONS

__all__ = ["DataIssueReport", "DatasetValidationError"]

logger = logging.getLogger(__name__)


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

    @property
    def prefix(self) -> str:
        """The start of every message: ``"[dataset '<name>'] "``, or ``""`` without a name."""
        return f"[dataset {self.dataset_name!r}] " if self.dataset_name else ""

    def action(self, reason: str) -> str:
        """What is done for ``reason`` (training action, or "reported only" for evaluation)."""
        r = REASONS[reason]
        if self.report_only and reason not in IMAGE_DROP_REASONS:
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
            self.prefix,
            file_name,
            image_id,
            r.description,
            self.action(reason),
            f": {detail}" if detail else "",
        )
        if before + 1 == self.max_warnings_per_reason:
            logger.warning(
                "%sfurther %r problems are not logged one by one; see the summary",
                self.prefix,
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
        return sum(self.counts[k] for k in IMAGE_DROP_REASONS)

    @property
    def dropped_boxes(self) -> int:
        """Number of boxes dropped (now or when loaded)."""
        return sum(self.counts[k] for k in BOX_DROP_REASONS)

    def summary(self) -> str:
        """One line: totals and the count of every reason that occurred, with its action."""
        if not +self.counts:
            return f"{self.prefix}{self.num_images} images, {self.num_boxes} boxes: no problems found"
        parts = [
            f"{key}={n} ({self.action(key)})" for key, n in sorted(self.counts.items()) if n
        ]
        if self.report_only:
            totals = "records unchanged"
        else:
            totals = f"{self.dropped_images} images and {self.dropped_boxes} boxes dropped"
        return (
            f"{self.prefix}{self.num_images} images, {self.num_boxes} boxes checked; "
            f"{totals}. " + "; ".join(parts)
        )

    def log_summary(self) -> None:
        """
        Log :meth:`summary` once: a warning when a problem was found, info when only expected
        properties were counted (images without boxes, crowd boxes, converted category ids).
        """
        problems = any(n and REASONS[k].warn_each for k, n in self.counts.items())
        logger.log(logging.WARNING if problems else logging.INFO, "Data validation summary: %s", self.summary())
