"""
:func:`get_validated_dataset_dicts`: the training records of datasets registered in
Detectron2's ``DatasetCatalog``, each validated against its own metadata, as a
:class:`ValidatedDatasetDicts` list.
"""

from typing import Optional, Sequence, Union

from detectron2.data import DatasetCatalog
from detectron2.data.build import print_instances_class_histogram

from .dataset_dicts import validate_dataset_dicts
from .metadata import dataset_metadata_classes
from .report import DataIssueReport, DatasetValidationError

__all__ = ["ValidatedDatasetDicts", "get_validated_dataset_dicts"]


class ValidatedDatasetDicts(list):
    """
    A list of dataset dicts already checked by :func:`validate_dataset_dicts` (training
    mode); :attr:`report` holds the counts. :class:`~yolox_d2.data.mosaic_dataset.MosaicMixupDataset`
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
        ValueError: ``names`` is empty.
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
