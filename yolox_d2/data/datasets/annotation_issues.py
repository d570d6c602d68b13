"""
Problems met while parsing a dataset's annotation files (YOLO label lines, VOC xml objects,
COCO annotations), counted per reason and logged as **one summary line per dataset** with the
first few examples of each reason (file and line / object), not one log line per problem.

The reasons are :class:`yolox_d2.data.validation.Reason` objects, as for the validation of
dataset dicts; each loader declares its own. Problems found later in the dataset dicts
(degenerate boxes, boxes outside the image, missing image files at training time...) are
reported by :func:`yolox_d2.data.validation.validate_dataset_dicts`.
"""

import logging
from collections import Counter
from typing import Dict, List, Mapping, Optional

from yolox_d2.data.validation import Reason

__all__ = ["AnnotationIssues"]

logger = logging.getLogger(__name__)


class AnnotationIssues:
    """
    Counts of annotation-file problems of one dataset, with the first examples of each reason.

    Attributes:
        counts: occurrences per reason key.
        examples: the first ``max_examples`` locations (``"file:line: detail"``) per reason.
        num_images: images loaded (set by the loader).
        num_boxes: boxes loaded (set by the loader).
    """

    def __init__(
        self,
        dataset_name: Optional[str],
        source: str,
        reasons: Mapping[str, Reason],
        max_examples: int = 3,
    ) -> None:
        """
        Args:
            dataset_name: registered name, used in the summary (None: not registered).
            source: what was parsed, e.g. ``"YOLO labels of /data/images/train"``.
            reasons: the loader's reasons by key; :meth:`add` accepts only these keys.
            max_examples: examples kept (and shown) per reason.
        """
        self.dataset_name = dataset_name
        self.source = source
        self.reasons = dict(reasons)
        self.max_examples = int(max_examples)
        self.counts: Counter = Counter()
        self.examples: Dict[str, List[str]] = {}
        self.num_images = 0
        self.num_boxes = 0

    def add(self, reason: str, location: str, detail: str = "") -> None:
        """
        Count one occurrence of ``reason``.

        Args:
            reason: a key of the loader's reasons.
            location: where, e.g. ``"/data/labels/train/a.txt:3"`` or ``"Annotations/x.xml"``.
            detail: the offending value, e.g. ``"class 7, names has ids 0..1"``.
        """
        if reason not in self.reasons:
            raise KeyError(f"Unknown annotation issue {reason!r}; known: {sorted(self.reasons)}")
        self.counts[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < self.max_examples:
            shown.append(f"{location}: {detail}" if detail else location)

    def summary(self) -> str:
        """One line: totals, then per reason its count, action and first examples."""
        prefix = f"[dataset {self.dataset_name!r}] " if self.dataset_name else ""
        head = f"{prefix}{self.source}: {self.num_images} images, {self.num_boxes} boxes loaded"
        if not +self.counts:
            return f"{head}; no problems found"
        parts = []
        for key, n in sorted(self.counts.items()):
            r = self.reasons[key]
            more = ", ..." if n > len(self.examples[key]) else ""
            parts.append(f"{key}={n} ({r.description}; {r.action}), e.g. " + " | ".join(self.examples[key]) + more)
        return f"{head}; " + "; ".join(parts)

    def log_summary(self) -> None:
        """Log :meth:`summary`: a warning when a problem was found, info otherwise."""
        problems = any(n and self.reasons[k].warn_each for k, n in self.counts.items())
        logger.log(logging.WARNING if problems else logging.INFO, "Annotation files summary: %s", self.summary())
