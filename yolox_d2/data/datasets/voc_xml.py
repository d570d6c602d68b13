"""
Pascal-VOC annotations: :func:`parse_voc_xml` reads one ``.xml`` file, and
:func:`find_annotated_sources` lists the photos of a directory that have one (the xml next to
its photo, as DeepForest and many VOC exports ship them) as :class:`VOCSource` records.
Nothing here is specific to one dataset.
"""

import logging
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "VOCSource", "parse_voc_xml", "find_voc_image", "find_annotated_sources"]

logger = logging.getLogger(__name__)

#: Photo extensions tried (in this order) when the xml's ``<filename>`` is not found.
IMAGE_EXTENSIONS: Tuple[str, ...] = (".png", ".tif", ".tiff", ".jpg", ".jpeg")


@dataclass(frozen=True)
class VOCSource:
    """One annotated source photo.

    Attributes:
        name: file stem, used as the source id (e.g. ``"OSBS_029"``).
        image_path: the photo.
        xml_path: its Pascal-VOC annotation.
        width: photo width from the xml.
        height: photo height from the xml.
        boxes: ``(N, 4)`` float XYXY boxes in photo pixels.
        labels: the VOC ``<name>`` of each box.
    """

    name: str
    image_path: str
    xml_path: str
    width: int
    height: int
    boxes: np.ndarray
    labels: Tuple[str, ...]


def parse_voc_xml(xml_path: str) -> Dict[str, Any]:
    """
    Read a Pascal-VOC annotation file.

    Args:
        xml_path: the ``.xml`` file.

    Returns:
        ``{"filename", "width", "height", "boxes": (N, 4) float64 XYXY, "labels": list}``.
        Coordinates are used as given (DeepForest's convention: pixel corner coordinates).

    Raises:
        xml.etree.ElementTree.ParseError: the file is not well-formed XML.
    """
    root = ET.parse(xml_path).getroot()
    size = root.find("size")
    boxes, labels = [], []
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        boxes.append([float(bb.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")])
        labels.append((obj.findtext("name") or "").strip())
    return {
        "filename": (root.findtext("filename") or "").strip(),
        "width": int(float(size.findtext("width"))) if size is not None else None,
        "height": int(float(size.findtext("height"))) if size is not None else None,
        "boxes": np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        "labels": labels,
    }


def find_voc_image(data_dir: str, xml_path: str, filename: str) -> Optional[str]:
    """
    The photo of a VOC annotation: ``<data_dir>/<filename>`` (the xml's ``<filename>``) if it
    exists, else the xml's stem with one of :data:`IMAGE_EXTENSIONS`; None when neither exists.

    Args:
        data_dir: the directory holding the photos.
        xml_path: the annotation file.
        filename: its ``<filename>`` (may be empty).
    """
    if filename:
        candidate = os.path.join(data_dir, filename)
        if os.path.isfile(candidate):
            return candidate
    stem = os.path.splitext(os.path.basename(xml_path))[0]
    for ext in IMAGE_EXTENSIONS:
        candidate = os.path.join(data_dir, stem + ext)
        if os.path.isfile(candidate):
            return candidate
    return None


def find_annotated_sources(data_dir: str) -> List[VOCSource]:
    """
    All photos of ``data_dir`` that have a VOC xml with at least one box, sorted by name.
    Unparsable xml files and xml files whose photo is missing are skipped with a warning.

    Args:
        data_dir: directory with ``*.xml`` + photos.
    """
    sources = []
    for fname in sorted(os.listdir(data_dir)):
        if not fname.lower().endswith(".xml"):
            continue
        xml_path = os.path.join(data_dir, fname)
        try:
            ann = parse_voc_xml(xml_path)
        except ET.ParseError as e:
            logger.warning("Skipping unparsable VOC file %s: %s", xml_path, e)
            continue
        if len(ann["boxes"]) == 0:
            continue
        image_path = find_voc_image(data_dir, xml_path, ann["filename"])
        if image_path is None:
            logger.warning("Skipping %s: image %r not found", xml_path, ann["filename"])
            continue
        sources.append(
            VOCSource(
                name=os.path.splitext(fname)[0],
                image_path=image_path,
                xml_path=xml_path,
                width=ann["width"],
                height=ann["height"],
                boxes=ann["boxes"],
                labels=tuple(ann["labels"]),
            )
        )
    return sources
