"""
YOLOX data pipeline for Detectron2: augmentations (:mod:`.transforms`), image reading
(:mod:`.image_io`), the Mosaic / MixUp training dataset (:mod:`.mosaic_dataset`, over the
records of :mod:`.training_images`, with the per-variant recipe of
:mod:`.augmentation_defaults`), the test mapper (:mod:`.mappers`), loader builders
(:mod:`.build`), dataset validation (:mod:`.validation`) and bundled datasets
(:mod:`.datasets`, registered on import).
"""

from . import datasets  # noqa: F401  (registers the bundled datasets; cheap, lazy)
from . import transforms
from .augmentation_defaults import YOLOX_AUGMENTATION_DEFAULTS, yolox_augmentation_defaults
from .build import build_yolox_test_loader, build_yolox_train_loader, find_mosaic_dataset
from .image_io import ImageReadError, ImageSizeMismatchError, decode_image_bgr, read_image_bgr
from .mappers import YOLOXTestMapper
from .mosaic_dataset import MosaicMixupDataset
from .validation import (
    DataIssueReport,
    DatasetValidationError,
    ValidatedDatasetDicts,
    get_validated_dataset_dicts,
    validate_dataset_dicts,
)

__all__ = [
    "datasets",
    "transforms",
    "build_yolox_train_loader",
    "build_yolox_test_loader",
    "find_mosaic_dataset",
    "ImageReadError",
    "ImageSizeMismatchError",
    "YOLOXTestMapper",
    "decode_image_bgr",
    "read_image_bgr",
    "DataIssueReport",
    "DatasetValidationError",
    "validate_dataset_dicts",
    "get_validated_dataset_dicts",
    "ValidatedDatasetDicts",
    "MosaicMixupDataset",
    "YOLOX_AUGMENTATION_DEFAULTS",
    "yolox_augmentation_defaults",
]
