"""
Datasets in the YOLO txt format (Ultralytics / YOLOv5 layout), as Detectron2 datasets.

``data.yaml``::

    path: /data/my_dataset      # dataset root (optional: default the yaml's folder)
    train: images/train         # an image folder, a .txt list of image paths, or a list of them
    val: images/val
    names: [cat, dog]           # or {0: cat, 1: dog}; an optional `nc` must equal len(names)
                                # (`nc` alone: names class_0, class_1, ... as Ultralytics)

Paths are resolved as Ultralytics does: ``train`` / ``val`` relative to ``path``, ``path``
relative to the yaml's folder (or, if it does not exist there, to the working directory);
image folders are searched recursively; a relative line of a .txt list is relative to the
.txt's folder. The label file of ``.../images/.../a.jpg`` is ``.../labels/.../a.txt`` (the
*last* ``images`` path component replaced by ``labels``, the extension by ``.txt``); each line
is ``class cx cy w h``, normalised by the image's width and height.

Image sizes are read from the file headers, after the EXIF orientation
(:mod:`.image_header`: Detectron2's and Ultralytics' convention). Boxes become ``XYXY_ABS``
pixels, ``category_id`` the class id (``thing_classes`` = ``names`` in id order).

Bad input never stops loading. A missing label file makes a background image (counted). A
line with the wrong number of fields, a value that is not a finite number, a class id that is
not one of ``names``, a size <= 0 or a value outside ``[0, 1]`` (beyond ``COORD_TOLERANCE``)
is dropped; an image that is missing (from a .txt list) or unreadable, or whose label file is
not text, is dropped. One summary line per dataset gives the counts per reason and the first
examples (``file:line``). Registration reads only ``data.yaml``; images and labels are read
by ``DatasetCatalog.get``.
"""

import logging
import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml
from detectron2.structures import BoxMode

from yolox_d2.data.validation import Reason

from .annotation_issues import AnnotationIssues
from .image_header import IMAGE_EXTENSIONS, displayed_image_size
from .registration import register_dataset_once

__all__ = [
    "COORD_TOLERANCE",
    "YOLO_TXT_REASONS",
    "read_yolo_data_yaml",
    "yolo_label_path",
    "load_yolo_txt",
    "register_yolo_txt_split",
    "register_yolo_txt",
]

logger = logging.getLogger(__name__)

#: Normalised coordinates in ``[-COORD_TOLERANCE, 1 + COORD_TOLERANCE]`` are accepted.
COORD_TOLERANCE = 1e-6

YOLO_TXT_REASONS: Dict[str, Reason] = {
    r.key: r
    for r in [
        Reason("missing_label_file", "no label file", "kept as a background image", False),
        Reason("unreadable_label_file", "label file is not readable text", "image dropped"),
        Reason("missing_image_file", "image listed in a .txt list does not exist", "image dropped"),
        Reason("unreadable_image", "image file cannot be identified", "image dropped"),
        Reason("wrong_field_count", "line does not have 5 fields (class cx cy w h)", "line dropped"),
        Reason("not_a_number", "a field is not a finite number", "line dropped"),
        Reason("class_out_of_range", "class id is not one of the ids of names", "line dropped"),
        Reason("non_positive_size", "box width or height <= 0", "line dropped"),
        Reason("coordinate_out_of_range", "a normalised value is outside [0, 1]", "line dropped"),
    ]
}


def _resolve_root(data_yaml: str, path_value: Any) -> str:
    folder = os.path.dirname(data_yaml)
    if not path_value:
        return folder
    path_value = os.path.expanduser(str(path_value))
    if os.path.isabs(path_value):
        return path_value
    near_yaml = os.path.join(folder, path_value)
    if os.path.exists(near_yaml) or not os.path.exists(path_value):
        return os.path.normpath(near_yaml)
    return os.path.abspath(path_value)


def _class_names(data_yaml: str, data: Dict[str, Any]) -> List[str]:
    names = data.get("names")
    if names is None and isinstance(data.get("nc"), int) and data["nc"] > 0:  # Ultralytics' default names
        names = [f"class_{i}" for i in range(data["nc"])]
    if isinstance(names, dict):  # {id: name}; ids may be quoted ("0": name), as Ultralytics accepts
        try:
            by_id = {int(k): v for k, v in names.items() if not isinstance(k, bool)}
        except ValueError:
            by_id = {}
        if sorted(by_id) != list(range(len(names))):
            raise ValueError(f"{data_yaml}: the ids of 'names' must be 0..{len(names) - 1}, got {list(names)}")
        names = [by_id[i] for i in range(len(names))]
    if not isinstance(names, (list, tuple)) or not names:
        raise ValueError(f"{data_yaml}: 'names' must be a non-empty list or {{id: name}} dict, got {names!r}")
    if "nc" in data and data["nc"] != len(names):
        raise ValueError(f"{data_yaml}: nc={data['nc']!r} but 'names' has {len(names)} classes")
    return [str(n) for n in names]


def read_yolo_data_yaml(data_yaml: str) -> Dict[str, Any]:
    """
    Read a YOLO ``data.yaml``.

    Args:
        data_yaml: the yaml file.

    Returns:
        ``{"data_yaml": absolute path, "root": dataset root, "names": [class names in id
        order], "splits": {split key: [absolute folders / .txt lists]}}`` for every key of
        ``train``, ``val``, ``test`` the yaml has.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a mapping, no ``train`` / ``val``, or invalid ``names`` / ``nc``.
    """
    data_yaml = os.path.abspath(os.fspath(data_yaml))
    with open(data_yaml) as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{data_yaml}: expected a mapping with 'names', 'train' and 'val', got {type(data).__name__}")
    missing = [k for k in ("train", "val") if not data.get(k)]
    if missing:
        raise ValueError(f"{data_yaml}: no {' / '.join(missing)} entry (image folder or .txt list)")
    root = _resolve_root(data_yaml, data.get("path"))
    splits = {}
    for key in ("train", "val", "test"):
        value = data.get(key)
        if value:
            values = value if isinstance(value, (list, tuple)) else [value]
            splits[key] = [os.path.normpath(os.path.join(root, os.path.expanduser(str(v)))) for v in values]
    return {"data_yaml": data_yaml, "root": root, "names": _class_names(data_yaml, data), "splits": splits}


def yolo_label_path(image_path: str) -> str:
    """The label file of an image: the last ``images`` path component -> ``labels``, extension -> ``.txt``."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return os.path.splitext(sb.join(image_path.rsplit(sa, 1)))[0] + ".txt"


def _is_image(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def _image_entries(source: str, key: str, data_yaml: str) -> List[Tuple[str, Optional[str]]]:
    """``(image path, where it is listed or None)`` of one ``train`` / ``val`` entry."""
    if os.path.isdir(source):
        found = []
        for dirpath, dirnames, filenames in os.walk(source, followlinks=True):
            dirnames.sort()
            found += [os.path.join(dirpath, f) for f in sorted(filenames) if _is_image(f)]
        return [(p, None) for p in found]
    if os.path.isfile(source) and source.lower().endswith(".txt"):
        folder = os.path.dirname(source)
        with open(source) as f:
            lines = f.read().splitlines()
        return [
            (os.path.normpath(os.path.join(folder, os.path.expanduser(line.strip()))), f"{source}:{i}")
            for i, line in enumerate(lines, 1)
            if line.strip()
        ]
    if os.path.isfile(source) and _is_image(source):
        return [(source, None)]
    raise FileNotFoundError(f"{data_yaml}: '{key}' entry {source!r} is not an image folder, a .txt list or an image")


def _parse_line(line: str, num_classes: int) -> Tuple[Optional[Tuple[int, float, float, float, float]], str, str]:
    """``(box, "", "")`` or ``(None, reason, detail)`` for one non-empty label line."""
    fields = line.split()
    if len(fields) != 5:
        return None, "wrong_field_count", f"{len(fields)} fields {line.strip()!r}"
    try:
        values = [float(v) for v in fields]
    except ValueError:
        return None, "not_a_number", repr(line.strip())
    if not all(math.isfinite(v) for v in values):
        return None, "not_a_number", repr(line.strip())
    cls, cx, cy, w, h = values
    if cls != int(cls) or not 0 <= cls < num_classes:
        return None, "class_out_of_range", f"class {fields[0]}, names has ids 0..{num_classes - 1}"
    if w <= 0 or h <= 0:
        return None, "non_positive_size", f"w={fields[3]} h={fields[4]}"
    if not all(-COORD_TOLERANCE <= v <= 1 + COORD_TOLERANCE for v in (cx, cy, w, h)):
        return None, "coordinate_out_of_range", f"cx cy w h = {' '.join(fields[1:])}"
    return (int(cls), cx, cy, w, h), "", ""


def _read_labels(
    label_path: str, size: Tuple[int, int], num_classes: int, issues: AnnotationIssues
) -> Optional[List[Dict[str, Any]]]:
    """The annotations of one label file (None: the file is unreadable, the image is dropped)."""
    try:
        with open(label_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        issues.add("unreadable_label_file", label_path, f"{type(e).__name__}: {e}")
        return None
    height, width = size
    annotations = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        box, reason, detail = _parse_line(line, num_classes)
        if box is None:
            issues.add(reason, f"{label_path}:{number}", detail)
            continue
        cls, cx, cy, w, h = box
        annotations.append(
            {
                "bbox": [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height],
                "bbox_mode": BoxMode.XYXY_ABS,
                "category_id": cls,
                "iscrowd": 0,
            }
        )
    return annotations


def load_yolo_txt(data_yaml: str, split: str, dataset_name: Optional[str] = None) -> List[Dict[str, Any]]:
    """
    One split of a YOLO txt dataset as Detectron2 dataset dicts.

    Args:
        data_yaml: the dataset's ``data.yaml``.
        split: a key of the yaml holding images: ``"train"``, ``"val"`` or ``"test"``.
        dataset_name: used in the summary line.

    Returns:
        Dicts with ``file_name``, ``height``, ``width`` (displayed size), ``image_id`` (index
        in the split) and ``annotations`` (``bbox`` XYXY_ABS pixels, ``category_id``,
        ``iscrowd`` 0), images in folder / list order.

    Raises:
        FileNotFoundError: the split's entry does not exist or holds no image.
        ValueError: the yaml is invalid or has no such split.
    """
    config = read_yolo_data_yaml(data_yaml)
    if split not in config["splits"]:
        raise ValueError(f"{config['data_yaml']}: no '{split}' entry; it has {sorted(config['splits'])}")
    sources = config["splits"][split]
    entries = [e for source in sources for e in _image_entries(source, split, config["data_yaml"])]
    if not entries:
        raise FileNotFoundError(f"{config['data_yaml']}: '{split}' ({', '.join(sources)}) holds no image")
    num_classes = len(config["names"])
    issues = AnnotationIssues(dataset_name, f"YOLO labels of '{split}' ({', '.join(sources)})", YOLO_TXT_REASONS)
    dicts: List[Dict[str, Any]] = []
    for image_path, listed_at in entries:
        if listed_at is not None and not os.path.isfile(image_path):
            issues.add("missing_image_file", listed_at, image_path)
            continue
        try:
            size = displayed_image_size(image_path)
        except OSError as e:
            issues.add("unreadable_image", image_path, f"{type(e).__name__}: {e}")
            continue
        label_path = yolo_label_path(image_path)
        if os.path.isfile(label_path):
            annotations = _read_labels(label_path, size, num_classes, issues)
            if annotations is None:
                continue
        else:
            issues.add("missing_label_file", label_path)
            annotations = []
        dicts.append(
            {"file_name": image_path, "height": size[0], "width": size[1], "image_id": len(dicts), "annotations": annotations}
        )
        issues.num_boxes += len(annotations)
    issues.num_images = len(dicts)
    if dicts and issues.counts["missing_label_file"] == len(dicts):
        logger.warning(
            "%s: no image of '%s' has a label file; are the labels where YOLO looks for them? "
            "e.g. %s for %s",
            config["data_yaml"],
            split,
            yolo_label_path(dicts[0]["file_name"]),
            dicts[0]["file_name"],
        )
    issues.log_summary()
    return dicts


def register_yolo_txt_split(name_prefix: str, data_yaml: str, split: str) -> str:
    """
    Register one split as ``<name_prefix>_<split>`` (lazily: only ``data.yaml`` is read now,
    for ``thing_classes``); again with the same arguments: nothing happens.

    Args:
        name_prefix: dataset name prefix.
        data_yaml: the dataset's ``data.yaml``.
        split: ``"train"``, ``"val"`` or ``"test"`` (a key of the yaml).

    Returns:
        The dataset name, e.g. to use as ``names=L(register_yolo_txt_split)(...)`` in a config.

    Raises:
        DatasetRegistrationError: the name is registered with other arguments.
    """
    config = read_yolo_data_yaml(data_yaml)
    if split not in config["splits"]:
        raise ValueError(f"{config['data_yaml']}: no '{split}' entry; it has {sorted(config['splits'])}")
    name = f"{name_prefix}_{split}"
    path = config["data_yaml"]
    return register_dataset_once(
        name,
        lambda: load_yolo_txt(path, split, name),
        source={"format": "yolo_txt", "data_yaml": path, "split": split},
        thing_classes=config["names"],
        evaluator_type="coco",
        split=split,
    )


def register_yolo_txt(name_prefix: str, data_yaml: str, splits: Sequence[str] = ("train", "val")) -> Tuple[str, ...]:
    """
    Register ``<name_prefix>_train`` and ``<name_prefix>_val`` (see :func:`register_yolo_txt_split`).

    Args:
        name_prefix: dataset name prefix.
        data_yaml: the dataset's ``data.yaml``.
        splits: the splits to register.

    Returns:
        The dataset names, in the order of ``splits``.
    """
    return tuple(register_yolo_txt_split(name_prefix, data_yaml, s) for s in splits)
