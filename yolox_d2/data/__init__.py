"""
YOLOX data pipeline for Detectron2: augmentations (:mod:`.transforms`), the Mosaic / MixUp
training dataset (:mod:`.mosaic`), the test mapper (:mod:`.mappers`), loader builders
(:mod:`.build`) and bundled datasets (:mod:`.datasets`, registered on import).
"""

from . import datasets  # noqa: F401  (registers the bundled datasets; cheap, lazy)
from . import transforms
from .build import build_yolox_test_loader, build_yolox_train_loader, find_mosaic_dataset
from .mappers import ImageReadError, ImageSizeMismatchError, YOLOXTestMapper, decode_image_bgr, read_image_bgr
from .mosaic import YOLOX_AUGMENTATION_DEFAULTS, MosaicMixupDataset, yolox_augmentation_defaults
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
