"""
Datasets in COCO's json format (``images``, ``annotations``, ``categories``), as Detectron2
datasets, with any category ids.

Parsing is Detectron2's :func:`~detectron2.data.datasets.load_coco_json`, the metadata those of
:func:`~detectron2.data.datasets.register_coco_instances` (``json_file``, ``image_root``,
``evaluator_type="coco"``, so ``COCOEvaluator`` scores against the json itself). As in
Detectron2, the categories sorted by id give ``thing_classes`` and the map from the json's ids
to contiguous ids ``thing_dataset_id_to_contiguous_id``, set in the metadata when the json is
loaded (``DatasetCatalog.get``), and ``category_id`` in the dicts is the contiguous id.

Bad input: Detectron2 stops at the first annotation whose ``category_id`` is not in
``categories``; here such an annotation is dropped, and one summary line per dataset gives the
count and the first examples (annotation id, image). Boxes and image files are checked later,
as for every dataset, by :func:`yolox_d2.data.validation.validate_dataset_dicts`. The json is
read twice (its categories, then Detectron2's loader).
"""

import json
import logging
import os
from typing import Any, Dict, List, Optional

from detectron2.data import MetadataCatalog
from detectron2.data.datasets import load_coco_json
from detectron2.utils.file_io import PathManager

from yolox_d2.data.validation import Reason

from .annotation_issues import AnnotationIssues
from .registration import register_dataset_once

__all__ = ["COCO_JSON_REASONS", "coco_json_categories", "load_coco_json_dataset", "register_coco_json"]

logger = logging.getLogger(__name__)

COCO_JSON_REASONS: Dict[str, Reason] = {
    r.key: r
    for r in [
        Reason("undeclared_category_id", "annotation category_id is not in the json's categories", "box dropped"),
    ]
}


def coco_json_categories(json_file: str) -> Dict[int, str]:
    """
    ``{category id: name}`` of a COCO json, sorted by id.

    Raises:
        ValueError: the json has no ``categories``, or one without an integer ``id`` / a ``name``.
    """
    with PathManager.open(json_file) as f:
        categories = json.load(f).get("categories") or []
    try:
        out = {int(c["id"]): str(c["name"]) for c in categories}
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{json_file}: each category needs an integer 'id' and a 'name' ({e!r})") from e
    if not out:
        raise ValueError(f"{json_file}: no 'categories'; a detection dataset needs at least one")
    return dict(sorted(out.items()))


def load_coco_json_dataset(json_file: str, image_root: str, dataset_name: Optional[str] = None) -> List[Dict[str, Any]]:
    """
    A COCO json as Detectron2 dataset dicts, with contiguous ``category_id``.

    Args:
        json_file: the json file.
        image_root: the folder the json's ``file_name`` are relative to.
        dataset_name: when given, its metadata gets ``thing_classes`` and
            ``thing_dataset_id_to_contiguous_id`` (as Detectron2's ``load_coco_json``).

    Returns:
        Detectron2's records (``file_name``, ``height``, ``width``, ``image_id``,
        ``annotations`` with ``bbox`` XYWH_ABS, ``category_id``, ``iscrowd``, ...), without
        the annotations of undeclared categories.
    """
    categories = coco_json_categories(json_file)
    id_map = {cid: i for i, cid in enumerate(categories)}
    if dataset_name is not None:
        MetadataCatalog.get(dataset_name).set(
            thing_classes=list(categories.values()), thing_dataset_id_to_contiguous_id=id_map
        )
    # dataset_name=None: Detectron2 keeps the json's ids (and does not raise on undeclared ones)
    dicts = load_coco_json(json_file, image_root, dataset_name=None, extra_annotation_keys=["id"])
    issues = AnnotationIssues(dataset_name, f"COCO json {json_file}", COCO_JSON_REASONS)
    for record in dicts:
        kept = []
        for ann in record["annotations"]:
            ann_id = ann.pop("id", None)
            cid = ann.get("category_id")
            if cid not in id_map:
                issues.add(
                    "undeclared_category_id",
                    f"annotation id {ann_id}",
                    f"image {record['file_name']}: category_id {cid!r}, categories are {list(categories)}",
                )
                continue
            ann["category_id"] = id_map[cid]
            kept.append(ann)
        record["annotations"] = kept
        issues.num_boxes += len(kept)
    issues.num_images = len(dicts)
    issues.log_summary()
    return dicts


def register_coco_json(
    name: str, json_file: str, image_root: str, metadata: Optional[Dict[str, Any]] = None
) -> str:
    """
    Register a COCO json as ``name`` (lazily: the json is read by ``DatasetCatalog.get``);
    again with the same arguments: nothing happens.

    Args:
        name: the dataset name.
        json_file: the json file.
        image_root: the folder the json's ``file_name`` are relative to.
        metadata: extra metadata (as ``register_coco_instances``' ``metadata``).

    Returns:
        ``name`` (e.g. for ``names=L(register_coco_json)(...)`` in a config).

    Raises:
        DatasetRegistrationError: the name is registered with other arguments.
    """
    json_file, image_root = os.fspath(json_file), os.fspath(image_root)
    json_file = json_file if "://" in json_file else os.path.abspath(json_file)
    image_root = image_root if "://" in image_root else os.path.abspath(image_root)
    metadata = dict(metadata or {})
    return register_dataset_once(
        name,
        lambda: load_coco_json_dataset(json_file, image_root, name),
        source={"format": "coco_json", "json_file": json_file, "image_root": image_root, "metadata": metadata},
        json_file=json_file,
        image_root=image_root,
        evaluator_type="coco",
        **metadata,
    )
