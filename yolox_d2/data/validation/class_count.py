"""
:func:`check_num_classes`: the model's number of classes against the ``thing_classes`` that the
datasets it is trained and evaluated on declare, checked at start-up (a mismatch otherwise
shows up as an index error deep in the loss, or as silently wrong evaluation).
"""

import logging
from typing import Sequence, Union

from .metadata import dataset_metadata_classes
from .metadata import dataset_names as name_list
from .report import DatasetValidationError

__all__ = ["check_num_classes"]

logger = logging.getLogger(__name__)


def check_num_classes(num_classes: int, dataset_names: Union[str, Sequence[str]]) -> None:
    """
    Check that every dataset declares ``num_classes`` classes in its ``MetadataCatalog``
    ``thing_classes``. A dataset without ``thing_classes`` is skipped (debug log).

    Args:
        num_classes: the model's ``num_classes`` (e.g. ``cfg.model.num_classes``).
        dataset_names: registered dataset name(s), training and test sets alike.

    Raises:
        DatasetValidationError: naming ``model.num_classes``, the dataset and its classes.
    """
    for name in name_list(dataset_names):
        classes, _ = dataset_metadata_classes(name)
        if classes is None:
            logger.debug("Dataset %r declares no thing_classes: num_classes not checked", name)
            continue
        if len(classes) != int(num_classes):
            shown = ", ".join(map(str, classes[:10])) + (", ..." if len(classes) > 10 else "")
            raise DatasetValidationError(
                f"model.num_classes={num_classes} but dataset {name!r} declares {len(classes)} "
                f"thing_classes ({shown}); set model.num_classes={len(classes)}"
            )
