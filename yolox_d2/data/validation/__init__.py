"""
Validation of Detectron2 dataset dicts before training or evaluation.

:func:`validate_dataset_dicts` checks every image record and annotation of a dataset (any
registered dataset, no image decoding: it is cheap enough to run at every start) and returns
cleaned records. Every problem gets a fixed *reason* (see :data:`REASONS`) with a fixed
*action*: the record is converted (e.g. relative boxes to absolute, dataset category ids to
contiguous ids), the box is dropped, the image is dropped, or the problem is only reported.
A warning names the file, the ``image_id``, the reason and the offending value (the first
``max_warnings_per_reason`` occurrences of each reason; the rest are counted), and a one-line
summary with the counts per reason is logged once at the end (:class:`DataIssueReport`).

Training (``mode="train"``) never stops for bad records: they are dropped or fixed. Evaluation
(``mode="eval"``) must not silently change the dataset it scores: a record without a usable
image raises :class:`DatasetValidationError` (naming the files and image ids), annotation
problems are only reported (the evaluator reads the registered annotations itself).

Conventions (those of Detectron2):

* boxes are in the pixel frame of the image *as displayed*, i.e. after the EXIF orientation
  is applied (:func:`detectron2.data.detection_utils.read_image` applies it);
* ``category_id`` is the contiguous id ``0 .. len(thing_classes) - 1``. Datasets registered
  with raw ids (e.g. COCO's 1..90) and a ``thing_dataset_id_to_contiguous_id`` metadata map
  are converted with that map.

Boxes partly or entirely outside the declared image size are reported here but clipped /
dropped when the image is decoded (:class:`~yolox_d2.data.mosaic_dataset.MosaicMixupDataset`),
against the decoded image's real size: a declared ``height`` / ``width`` can be the stored
(pre-EXIF) size of a rotated photo, so it is not trusted to cut boxes.

Modules: :mod:`.reasons` (the reasons and their actions), :mod:`.report` (the counts and
messages), :mod:`.metadata` (the declared categories), :mod:`.annotations` (one annotation),
:mod:`.dataset_dicts` (the records), :mod:`.catalog` (registered training datasets).

Start-up checks (before the first iteration): :func:`check_image_files` (:mod:`.image_files`:
every image header readable, declared sizes right; an error for evaluation sets) and
:func:`check_num_classes` (:mod:`.class_count`: ``model.num_classes`` against ``thing_classes``).
"""

from .catalog import ValidatedDatasetDicts, get_validated_dataset_dicts
from .class_count import check_num_classes
from .dataset_dicts import validate_dataset_dicts
from .image_files import ImageFileProblem, check_image_files
from .metadata import dataset_metadata_classes
from .reasons import REASONS, Reason
from .report import DataIssueReport, DatasetValidationError

__all__ = [
    "REASONS",
    "Reason",
    "DataIssueReport",
    "DatasetValidationError",
    "ValidatedDatasetDicts",
    "validate_dataset_dicts",
    "get_validated_dataset_dicts",
    "dataset_metadata_classes",
    "ImageFileProblem",
    "check_image_files",
    "check_num_classes",
]
