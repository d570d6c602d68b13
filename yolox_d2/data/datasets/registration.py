"""
Registration of users' datasets in Detectron2's catalogs, safe to repeat.

A LazyConfig registers its datasets when it is instantiated, and may instantiate the same
registration node several times (the training set, the model's number of classes...):
:func:`register_dataset_once` registers a name the first time, does nothing when the name is
already registered from the same source, and raises an error naming both sources when it is
registered from another one. The source is kept in the metadata, key ``"source"``.
"""

from typing import Any, Callable, Dict, List

from detectron2.data import DatasetCatalog, MetadataCatalog

from yolox_d2.data.validation import dataset_metadata_classes

__all__ = [
    "DatasetRegistrationError",
    "register_dataset_once",
    "thing_classes_of",
    "num_thing_classes",
    "check_same_thing_classes",
]


class DatasetRegistrationError(ValueError):
    """A dataset name is already registered with another source."""


def register_dataset_once(
    name: str, load: Callable[[], List[Dict[str, Any]]], source: Dict[str, Any], **metadata: Any
) -> str:
    """
    Register ``name`` in ``DatasetCatalog`` (``load`` runs at ``DatasetCatalog.get``, not now)
    and set its metadata, unless it is already registered from the same ``source``.

    Args:
        name: the dataset name.
        load: returns the dataset dicts.
        source: what identifies the data (format, paths, split, classes); stored as the
            metadata ``"source"`` and compared on a second registration.
        metadata: other metadata (``thing_classes``, ``evaluator_type``, ...).

    Returns:
        ``name``.

    Raises:
        DatasetRegistrationError: ``name`` is registered from another source (or by other code).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"A dataset name must be a non-empty string, got {name!r}")
    if name in DatasetCatalog:
        registered = MetadataCatalog.get(name).get("source")
        if registered == source:
            return name
        raise DatasetRegistrationError(
            f"Dataset {name!r} is already registered with {registered!r}; cannot register it again with "
            f"{source!r}. Use another name, or DatasetCatalog.remove({name!r}) and "
            f"MetadataCatalog.remove({name!r}) first."
        )
    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(source=source, **metadata)
    return name


def thing_classes_of(dataset_name: str) -> List[str]:
    """
    ``thing_classes`` of a registered dataset. When its metadata has none yet (a COCO json
    declares them when it is loaded), the dataset is loaded once (``DatasetCatalog.get``).

    Args:
        dataset_name: a registered dataset name.

    Raises:
        ValueError: the dataset declares no ``thing_classes`` even once loaded.
    """
    classes, _ = dataset_metadata_classes(dataset_name)
    if classes is None:
        DatasetCatalog.get(dataset_name)
        classes, _ = dataset_metadata_classes(dataset_name)
    if not classes:
        raise ValueError(f"Dataset {dataset_name!r} declares no thing_classes in its metadata")
    return classes


def num_thing_classes(dataset_name: str) -> int:
    """
    ``len(thing_classes)`` of a registered dataset (:func:`thing_classes_of`), e.g. for
    ``model.num_classes=L(num_thing_classes)(dataset_name=...)`` in a config.
    """
    return len(thing_classes_of(dataset_name))


def check_same_thing_classes(dataset_name: str, reference: str) -> str:
    """
    ``dataset_name``, after checking that it declares the ``thing_classes`` of ``reference``
    (e.g. a val split against the training split the model's classes come from).

    Args:
        dataset_name: a registered dataset name.
        reference: another registered dataset name.

    Raises:
        DatasetRegistrationError: the class lists differ (both are named).
    """
    classes, expected = thing_classes_of(dataset_name), thing_classes_of(reference)
    if classes != expected:
        raise DatasetRegistrationError(
            f"Dataset {dataset_name!r} declares thing_classes {classes} but {reference!r} declares "
            f"{expected}: a model trained on one cannot be scored on the other"
        )
    return dataset_name
