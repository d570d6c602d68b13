"""
Datasets in Pascal VOC folders with the user's own classes, as Detectron2 datasets::

    <root>/Annotations/<id>.xml
    <root>/JPEGImages/<id>.jpg          (or the xml's <filename>, or <id> with another image extension)
    <root>/ImageSets/Main/<split>.txt   (one <id> per line)

Conventions of Detectron2's :func:`detectron2.data.datasets.load_voc_instances`: files are
opened with ``PathManager``, ``height`` / ``width`` come from the xml's ``<size>`` (from the
image header when it has none, EXIF orientation applied as in :mod:`.image_header`),
``image_id`` is the ``<id>``, boxes are the 1-based pixel indices ``xmin ymin xmax ymax``
turned into ``XYXY_ABS`` by ``xmin - 1``, ``ymin - 1``, and ``difficult`` objects are kept
(Detectron2: "they don't hurt accuracy"). ``category_id`` is the index in ``class_names``.

Bad input never stops loading (Detectron2 raises on an unknown class name): an object whose
class is not in ``class_names``, or whose ``<bndbox>`` is missing or not numbers, is dropped;
an ``<id>`` whose image or xml is missing, or whose xml cannot be parsed, is dropped. One
summary line per dataset gives the counts per reason and the first examples (the split
file's line, the xml and the object's number).
"""

import logging
import os
import xml.etree.ElementTree as ET
from typing import Any, Dict, List, Optional, Sequence, Tuple

from detectron2.structures import BoxMode
from detectron2.utils.file_io import PathManager

from yolox_d2.data.validation import Reason

from .annotation_issues import AnnotationIssues
from .image_header import IMAGE_EXTENSIONS, displayed_image_size
from .registration import register_dataset_once

__all__ = ["VOC_FOLDERS_REASONS", "load_voc_folders", "register_voc_folders"]

logger = logging.getLogger(__name__)

VOC_FOLDERS_REASONS: Dict[str, Reason] = {
    r.key: r
    for r in [
        Reason("missing_annotation_file", "Annotations/<id>.xml does not exist", "image dropped"),
        Reason("unreadable_annotation_file", "the xml cannot be parsed", "image dropped"),
        Reason("missing_image_file", "no image for the id in JPEGImages", "image dropped"),
        Reason("unreadable_image", "image file cannot be identified", "image dropped"),
        Reason("size_from_image", "no valid <size> in the xml", "height/width read from the image", False),
        Reason("unknown_class", "object class not in class_names", "object dropped"),
        Reason("malformed_bndbox", "<bndbox> missing or not 4 numbers", "object dropped"),
    ]
}


def _split_ids(split_file: str) -> List[Tuple[int, str]]:
    """``(line number, id)`` of every non-empty line (the first token, as VOC's ``<id> [flag]``)."""
    with PathManager.open(split_file) as f:
        lines = f.read().splitlines()
    return [(i, line.split()[0]) for i, line in enumerate(lines, 1) if line.strip()]


def _find_image(root: str, file_id: str, xml_filename: Optional[str]) -> Optional[str]:
    """JPEGImages/<id>.jpg as Detectron2, else the xml's <filename>, else <id> with another extension."""
    folder = os.path.join(root, "JPEGImages")
    candidates = [os.path.join(folder, file_id + ".jpg")]
    if xml_filename:
        candidates.append(os.path.join(folder, os.path.basename(xml_filename)))
    candidates += [os.path.join(folder, file_id + ext) for ext in IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS)]
    for path in candidates:
        if PathManager.isfile(path):
            return path
    return None


def _xml_size(tree: ET.ElementTree) -> Optional[Tuple[int, int]]:
    try:
        height, width = int(tree.findtext("./size/height")), int(tree.findtext("./size/width"))
    except (TypeError, ValueError):
        return None
    return (height, width) if height > 0 and width > 0 else None


def _objects(
    tree: ET.ElementTree, xml_path: str, class_names: Sequence[str], issues: AnnotationIssues
) -> List[Dict[str, Any]]:
    instances = []
    for number, obj in enumerate(tree.findall("object"), 1):
        where = f"{xml_path} object #{number}"
        cls = (obj.findtext("name") or "").strip()
        if cls not in class_names:
            issues.add("unknown_class", where, f"{cls!r} not in class_names {list(class_names)}")
            continue
        bndbox = obj.find("bndbox")
        try:
            bbox = [float(bndbox.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
        except (AttributeError, TypeError, ValueError):
            text = ET.tostring(bndbox, encoding="unicode").strip() if bndbox is not None else "no <bndbox>"
            issues.add("malformed_bndbox", where, " ".join(text.split()))
            continue
        # 1-based pixel indices [1, W] -> coordinates [0, W] (Detectron2's load_voc_instances)
        bbox[0] -= 1.0
        bbox[1] -= 1.0
        instances.append({"category_id": class_names.index(cls), "bbox": bbox, "bbox_mode": BoxMode.XYXY_ABS})
    return instances


def load_voc_folders(
    root: str, split: str, class_names: Sequence[str], dataset_name: Optional[str] = None
) -> List[Dict[str, Any]]:
    """
    One split of a VOC-style dataset as Detectron2 dataset dicts.

    Args:
        root: the folder with ``Annotations``, ``JPEGImages`` and ``ImageSets/Main``.
        split: the ``ImageSets/Main/<split>.txt`` to read.
        class_names: the classes; ``category_id`` is the index in this list.
        dataset_name: used in the summary line.

    Returns:
        Dicts with ``file_name``, ``image_id`` (the id), ``height``, ``width`` and
        ``annotations`` (``category_id``, ``bbox`` XYXY_ABS, ``bbox_mode``), in split-file order.

    Raises:
        FileNotFoundError: no ``ImageSets/Main/<split>.txt``.
    """
    root = os.fspath(root)
    class_names = [str(c) for c in class_names]
    split_file = os.path.join(root, "ImageSets", "Main", split + ".txt")
    if not PathManager.isfile(split_file):
        raise FileNotFoundError(f"VOC split file {split_file!r} does not exist")
    annotation_dir = PathManager.get_local_path(os.path.join(root, "Annotations/"))
    issues = AnnotationIssues(dataset_name, f"VOC annotations of {split_file}", VOC_FOLDERS_REASONS)
    dicts = []
    for line, file_id in _split_ids(split_file):
        listed_at = f"{split_file}:{line}"
        xml_path = os.path.join(annotation_dir, file_id + ".xml")
        if not PathManager.isfile(xml_path):
            issues.add("missing_annotation_file", listed_at, xml_path)
            continue
        try:
            with PathManager.open(xml_path) as f:
                tree = ET.parse(f)
        except ET.ParseError as e:
            issues.add("unreadable_annotation_file", xml_path, str(e))
            continue
        image_path = _find_image(root, file_id, tree.findtext("filename"))
        if image_path is None:
            issues.add("missing_image_file", listed_at, f"id {file_id!r}: no {file_id}.jpg in {root}/JPEGImages")
            continue
        size = _xml_size(tree)
        if size is None:
            issues.add("size_from_image", xml_path)
            try:
                size = displayed_image_size(image_path)
            except OSError as e:
                issues.add("unreadable_image", image_path, f"{type(e).__name__}: {e}")
                continue
        instances = _objects(tree, xml_path, class_names, issues)
        dicts.append(
            {"file_name": image_path, "image_id": file_id, "height": size[0], "width": size[1], "annotations": instances}
        )
        issues.num_boxes += len(instances)
    issues.num_images = len(dicts)
    issues.log_summary()
    return dicts


def register_voc_folders(name: str, root: str, split: str, class_names: Sequence[str]) -> str:
    """
    Register one split of VOC folders as ``name`` (lazily: nothing is read now); again with the
    same arguments: nothing happens.

    Metadata: ``thing_classes`` = ``class_names``, ``dirname`` = ``root``, ``split``,
    ``evaluator_type="coco"``.

    Args:
        name: the dataset name.
        root: the folder with ``Annotations``, ``JPEGImages`` and ``ImageSets/Main``.
        split: the ``ImageSets/Main/<split>.txt`` to read.
        class_names: the classes, in ``category_id`` order.

    Returns:
        ``name`` (e.g. for ``names=L(register_voc_folders)(...)`` in a config).

    Raises:
        ValueError: ``class_names`` is empty or has duplicates.
        DatasetRegistrationError: the name is registered with other arguments.
    """
    if isinstance(class_names, str):
        raise ValueError(f"class_names must be a list of names, got the string {class_names!r}")
    class_names = [str(c) for c in class_names]
    if not class_names or len(set(class_names)) != len(class_names):
        raise ValueError(f"class_names must be a non-empty list of distinct names, got {class_names}")
    root = os.fspath(root)
    root = root if "://" in root else os.path.abspath(root)
    return register_dataset_once(
        name,
        lambda: load_voc_folders(root, split, class_names, name),
        source={"format": "voc_folders", "root": root, "split": split, "class_names": class_names},
        thing_classes=class_names,
        dirname=root,
        split=split,
        evaluator_type="coco",
    )
