"""
SimOTA label assignment (YOLOX), vectorised over a padded batch.

The assignment reproduces the official YOLOX ``get_assignments`` of the installed reference
(``YOLOXHead.get_in_boxes_info`` + ``dynamic_k_matching`` for the 2021 "legacy" rule,
``get_geometry_constraint`` + ``simota_matching`` for the post-2023 rule), but processes every
image of a batch at once: ground truths are padded to ``(B, G)`` with a validity mask and the
candidate predictions of every image are packed to the front of a ``(B, N)`` buffer, in anchor
order, exactly like the official per-image ``pred[fg_mask]`` compaction, so the dynamic-k
selection runs over the official candidate set.

The steps, as in mmdetection's ``SimOTAAssigner``:

1. :mod:`.candidates`: the candidate predictions and the geometry prior of every pair;
2. :mod:`.costs`: the pair costs (IoU cost, classification-cost bounds, exact official costs
   of the pairs that can decide the assignment);
3. :mod:`.dynamic_k`: dynamic-k matching (ties: lower anchor index first, deterministically);

orchestrated by :class:`SimOTAMatcher` (:mod:`.matcher`). :class:`OneToOneMatcher`
(:mod:`.one_to_one`) reuses steps 1-2 for the one positive per object of end-to-end YOLOX.
"""

from .matcher import SIMOTA_RULES, SimOTAAssignment, SimOTAMatcher, SimOTARule, check_assignment_inputs
from .one_to_one import OneToOneMatcher

__all__ = [
    "OneToOneMatcher",
    "SIMOTA_RULES",
    "SimOTAAssignment",
    "SimOTAMatcher",
    "SimOTARule",
    "check_assignment_inputs",
]
