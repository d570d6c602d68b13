"""
The data checks run before the first iteration (:func:`~yolox_d2.engine.defaults.do_train`) and
before an evaluation-only run (:func:`~yolox_d2.engine.defaults.do_eval_only`), on every rank:

* the model's number of classes against the ``thing_classes`` of every training and
  evaluation dataset (:func:`~yolox_d2.data.validation.check_num_classes`; the built model's
  ``num_classes``, so that a lazy ``model.num_classes = L(num_thing_classes)(...)`` is compared
  after it ran);
* the image file headers of every evaluation dataset
  (:func:`~yolox_d2.data.validation.check_image_files`, ``mode="eval"``): a file that cannot be
  used stops the run at once, naming the files and image ids;
* the image file headers of the training records (``mode="train"``): logged; training drops
  missing / empty files and skips undecodable ones as before.
"""

import logging
from typing import Any, List, Optional, Sequence

from detectron2.config import instantiate
from detectron2.data import DatasetCatalog
from torch import nn

from ..data.validation import check_image_files, check_num_classes
from ..data.validation.metadata import dataset_names
from ..utils.model import unwrap_model

__all__ = [
    "training_dataset_names",
    "evaluation_dataset_names",
    "check_evaluation_datasets",
    "check_training_start",
]

logger = logging.getLogger(__name__)


def _names(node: Any) -> List[str]:
    """Registered names of a config node: a name, a list of names, or a lazy call returning them
    (the custom configs' registration calls, which run again as a no-op); [] for records."""
    if node is None:
        return []
    value = instantiate(node) if hasattr(node, "get") and "_target_" in node else node
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return dataset_names(list(value))
    return []


def training_dataset_names(cfg) -> List[str]:
    """The registered training datasets of ``cfg`` (``dataloader.train.dataset.dataset_dicts.names``)."""
    dicts = cfg.dataloader.train.dataset.get("dataset_dicts", None)
    if dicts is None or not hasattr(dicts, "get"):
        return []
    return _names(dicts.get("names", None))


def evaluation_dataset_names(cfg) -> List[str]:
    """The registered datasets :func:`~yolox_d2.engine.defaults.do_test` evaluates on (none
    without ``dataloader.evaluator``)."""
    if "evaluator" not in cfg.dataloader or "test" not in cfg.dataloader:
        return []
    return _names(cfg.dataloader.test.get("dataset", None))


def _model_num_classes(model: nn.Module) -> Optional[int]:
    num_classes = getattr(unwrap_model(model), "num_classes", None)
    return int(num_classes) if isinstance(num_classes, int) else None


def check_evaluation_datasets(cfg, model: nn.Module) -> None:
    """
    Check the class count of ``model`` against the evaluation datasets and their image files.

    Args:
        cfg: the LazyConfig (``dataloader.test.dataset``, ``dataloader.evaluator``).
        model: the built model (its ``num_classes``, when it has one).

    Raises:
        DatasetValidationError: a class count differs, or an evaluation image cannot be used.
    """
    names = evaluation_dataset_names(cfg)
    num_classes = _model_num_classes(model)
    if num_classes is not None and names:
        check_num_classes(num_classes, names)
    for name in names:
        check_image_files(DatasetCatalog.get(name), name, mode="eval")


def check_training_start(cfg, model: nn.Module, train_dicts: Optional[Sequence[dict]] = None) -> None:
    """
    The checks before iteration 0: :func:`check_evaluation_datasets`, the class count against
    the training datasets, and the training records' image files (logged only).

    Args:
        cfg: the LazyConfig.
        model: the built model (not yet DDP-wrapped or wrapped: both work).
        train_dicts: the training records already built (validated), checked without loading
            the catalog again; None: not checked.

    Raises:
        DatasetValidationError: see :func:`check_evaluation_datasets`; a training class count
            that differs.
    """
    num_classes = _model_num_classes(model)
    train_names = training_dataset_names(cfg)
    if num_classes is not None and train_names:
        check_num_classes(num_classes, train_names)
    check_evaluation_datasets(cfg, model)
    if train_dicts is not None:
        check_image_files(train_dicts, ",".join(train_names) or None, mode="train")
