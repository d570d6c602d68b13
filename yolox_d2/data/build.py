"""
Data loader builders for YOLOX on Detectron2 (LazyConfig friendly)::

    from detectron2.config import LazyCall as L
    from yolox_d2.data import (MosaicMixupDataset, YOLOXTestMapper, build_yolox_test_loader,
                               build_yolox_train_loader, get_validated_dataset_dicts)

    dataloader.train = L(build_yolox_train_loader)(
        dataset=L(MosaicMixupDataset)(
            dataset_dicts=L(get_validated_dataset_dicts)(names="deepforest_trees_train"),
            image_size=(640, 640),
        ),
        total_batch_size=16,
        num_workers=4,
    )
    dataloader.test = L(build_yolox_test_loader)(
        dataset="deepforest_trees_val", mapper=L(YOLOXTestMapper)(image_size=(640, 640)),
    )
"""

import logging
from typing import Any, Callable, Dict, Optional, Sequence, Union

import torch.utils.data as torchdata
from detectron2.data import DatasetCatalog, build_detection_test_loader, build_detection_train_loader
from detectron2.data.samplers import TrainingSampler
from detectron2.utils import comm

from .mappers import YOLOXTestMapper
from .mosaic_dataset import MosaicMixupDataset
from .validation import DatasetValidationError, validate_dataset_dicts

__all__ = ["build_yolox_train_loader", "build_yolox_test_loader", "find_mosaic_dataset"]

logger = logging.getLogger(__name__)


def build_yolox_train_loader(
    dataset: torchdata.Dataset,
    total_batch_size: int,
    num_workers: int = 4,
    seed: Optional[int] = None,
    **kwargs,
) -> torchdata.DataLoader:
    """
    Detectron2's training loader over a :class:`MosaicMixupDataset` (no mapper: the dataset
    already yields model inputs), with **no aspect-ratio grouping**: every batch is a list of
    ``total_batch_size / world_size`` dicts of the same image size (``drop_last``).
    The sampler is Detectron2's infinite :class:`TrainingSampler` (shuffled, sharded over ranks).

    Args:
        dataset: a :class:`MosaicMixupDataset` (any map-style dataset returning model input
            dicts works).
        total_batch_size: images per iteration summed over all ranks (divisible by the world
            size).
        num_workers: DataLoader worker processes per rank.
        seed: when given, seeds the sampler's shuffling (same on every rank, as the sampler
            requires) and the DataLoader worker seeds (``seed + rank``), which
            :class:`MosaicMixupDataset` derives its augmentation randomness from: runs are
            reproducible. None: random.
        kwargs: forwarded to ``torch.utils.data.DataLoader`` (e.g. ``persistent_workers``,
            ``prefetch_factor``, ``pin_memory``, ``multiprocessing_context``).

    Returns:
        An iterable yielding ``list[dict]`` batches.
    """
    if isinstance(dataset, (list, tuple)):
        raise TypeError(
            "build_yolox_train_loader() expects a MosaicMixupDataset, got a list; wrap it: "
            "MosaicMixupDataset(dataset_dicts=...)"
        )
    sampler = TrainingSampler(len(dataset), shuffle=True, seed=seed)
    loader_seed = None if seed is None else int(seed) + comm.get_rank()
    return build_detection_train_loader(
        dataset=dataset,
        mapper=None,
        sampler=sampler,
        total_batch_size=total_batch_size,
        aspect_ratio_grouping=False,
        num_workers=num_workers,
        seed=loader_seed,
        **kwargs,
    )


def build_yolox_test_loader(
    dataset: Union[str, Sequence[str], Sequence[Dict[str, Any]], torchdata.Dataset],
    mapper: Optional[Callable[[Dict[str, Any]], Dict[str, Any]]] = None,
    batch_size: int = 1,
    num_workers: int = 0,
    validate: bool = True,
) -> torchdata.DataLoader:
    """
    Detectron2's inference loader (every image exactly once, split over ranks) for YOLOX.

    With ``validate`` (default), dataset dicts (given by name or as a list) are checked with
    :func:`~yolox_d2.data.validation.validate_dataset_dicts` in ``"eval"`` mode before any
    inference runs: a record whose image file is missing or empty, or whose ``height`` /
    ``width`` are invalid, raises :class:`~yolox_d2.data.validation.DatasetValidationError`
    listing the files and image ids (evaluation never skips images: that would silently score
    another dataset); annotation problems are logged (the evaluator reads the registered
    annotations itself). An image that turns out to be undecodable during inference raises
    :class:`~yolox_d2.data.image_io.ImageReadError` from the mapper, naming the file and id.

    Args:
        dataset: a registered dataset name, a list of names (concatenated, empty images kept),
            a list of dataset dicts, or a map-style dataset of dataset dicts.
        mapper: dataset dict -> model input; default :class:`YOLOXTestMapper` at 640x640.
        batch_size: images per batch per rank.
        num_workers: DataLoader worker processes.
        validate: check the dataset dicts first (not done for a map-style dataset).

    Returns:
        An iterable yielding ``list[dict]`` batches.
    """
    if isinstance(dataset, str):
        dataset = [dataset]
    if isinstance(dataset, (list, tuple)) and dataset and all(isinstance(x, str) for x in dataset):
        # Not get_detection_dataset_dicts(): it asserts on bad category ids while printing its
        # class histogram; the records are reported here instead, and kept as registered.
        records = []
        for name in dataset:
            dicts = DatasetCatalog.get(name)
            if not dicts:
                raise DatasetValidationError(f"Evaluation dataset {name!r} is empty")
            records.extend(validate_dataset_dicts(dicts, name, mode="eval") if validate else dicts)
        dataset = records
    elif validate and isinstance(dataset, (list, tuple)):
        dataset = validate_dataset_dicts(dataset, None, mode="eval")
    if mapper is None:
        mapper = YOLOXTestMapper()
    return build_detection_test_loader(
        dataset=list(dataset) if isinstance(dataset, tuple) else dataset,
        mapper=mapper,
        batch_size=batch_size,
        num_workers=num_workers,
    )


def find_mosaic_dataset(obj: Any, max_depth: int = 8) -> Optional[MosaicMixupDataset]:
    """
    Find the :class:`MosaicMixupDataset` behind a loader built by
    :func:`build_yolox_train_loader` (follows ``.dataset`` attributes), e.g. to call
    ``set_mosaic_enabled(False)`` for the last epochs.

    Args:
        obj: a data loader, a Detectron2 dataset wrapper or the dataset itself.
        max_depth: how many ``.dataset`` links to follow.

    Returns:
        The dataset, or None when there is none.
    """
    for _ in range(max_depth + 1):
        if isinstance(obj, MosaicMixupDataset):
            return obj
        obj = getattr(obj, "dataset", None)
        if obj is None:
            return None
    return None
