"""
Small datasets of real photos written in the users' formats (YOLO txt, VOC folders, COCO json).

The photos and boxes are the aerial tree photos of the ``deepforest`` package with their VOC
boxes (classes ``Tree``, ``Alive``, ``Dead``: ``SOAP_061`` labels its trees alive or dead),
scaled or cropped to 256 px; a scikit-image photo (Chelsea the cat) is a background image.
"""

import json
import os
from dataclasses import dataclass
from typing import Dict, List, Sequence

import cv2
import numpy as np
import skimage
import yaml

from yolox_d2.data.datasets.deepforest_trees import deepforest_data_dir
from yolox_d2.data.datasets.tiling import boxes_in_tile
from yolox_d2.data.datasets.voc_xml import find_annotated_sources

CLASSES = ("Tree", "Alive", "Dead")
SIZE = 256


@dataclass
class Sample:
    """One photo: ``image`` BGR uint8, ``boxes`` (N, 4) XYXY pixels, ``labels`` class names."""

    name: str
    image: np.ndarray
    boxes: np.ndarray
    labels: List[str]


def _scaled(source, size: int) -> Sample:
    image = cv2.imread(source.image_path, cv2.IMREAD_COLOR)
    h, w = image.shape[:2]
    scale = size / max(h, w)
    image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return Sample(source.name, image, source.boxes * scale, list(source.labels))


def _cropped(source, size: int) -> Sample:
    """The ``size`` x ``size`` window (on a grid of step ``size / 2``) holding the most boxes."""
    image = cv2.imread(source.image_path, cv2.IMREAD_COLOR)
    h, w = image.shape[:2]
    windows = [(x, y) for y in range(0, h - size + 1, size // 2) for x in range(0, w - size + 1, size // 2)]
    x0, y0 = max(windows, key=lambda xy: len(boxes_in_tile(source.boxes, (*xy, xy[0] + size, xy[1] + size), 0.5)[1]))
    boxes, keep = boxes_in_tile(source.boxes, (x0, y0, x0 + size, y0 + size), min_visible=0.5)
    crop = np.ascontiguousarray(image[y0 : y0 + size, x0 : x0 + size])
    return Sample(f"{source.name}_x{x0}_y{y0}", crop, boxes, [source.labels[k] for k in keep])


def real_samples(size: int = SIZE) -> Dict[str, List[Sample]]:
    """``{"train": [OSBS_029, SOAP_061 scaled, a crop of a YELL photo], "val": [a crop of the other YELL photo]}``."""
    sources = {s.name: s for s in find_annotated_sources(deepforest_data_dir())}
    return {
        "train": [
            _scaled(sources["OSBS_029"], size),
            _scaled(sources["SOAP_061"], size),
            _cropped(sources["2019_YELL_2_528000_4978000_image_crop2"], size),
        ],
        "val": [_cropped(sources["2019_YELL_2_541000_4977000_image_crop"], size)],
    }


def background_photo(size: int = SIZE) -> np.ndarray:
    """Chelsea the cat (scikit-image), BGR, longest side ``size``: no tree in it."""
    rgb = skimage.data.chelsea()
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    rgb = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _write_image(path: str, image: np.ndarray) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, image), path
    return path


def yolo_lines(sample: Sample, classes: Sequence[str] = CLASSES) -> List[str]:
    """``class cx cy w h`` lines, normalised by the image size."""
    h, w = sample.image.shape[:2]
    lines = []
    for (x1, y1, x2, y2), label in zip(sample.boxes, sample.labels):
        cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
        lines.append(f"{classes.index(label)} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
    return lines


def write_yolo_txt(
    root: str,
    splits: Dict[str, List[Sample]],
    classes: Sequence[str] = CLASSES,
    names_as_dict: bool = False,
    val_as_list: bool = False,
    background: bool = True,
) -> str:
    """
    ``root/images/<split>/*.jpg``, ``root/labels/<split>/*.txt`` and ``root/data.yaml``; with
    ``background`` the train split also gets ``cat.jpg`` with no label file. With
    ``val_as_list`` the yaml's ``val`` is ``val.txt`` listing ``./images/val/...``.

    Returns:
        The ``data.yaml`` path.
    """
    for split, samples in splits.items():
        for s in samples:
            _write_image(os.path.join(root, "images", split, s.name + ".jpg"), s.image)
            label = os.path.join(root, "labels", split, s.name + ".txt")
            os.makedirs(os.path.dirname(label), exist_ok=True)
            with open(label, "w") as f:
                f.write("\n".join(yolo_lines(s, classes)) + "\n")
    if background:
        _write_image(os.path.join(root, "images", "train", "cat.jpg"), background_photo())
    val = "images/val"
    if val_as_list:
        with open(os.path.join(root, "val.txt"), "w") as f:
            f.write("".join(f"./images/val/{s.name}.jpg\n" for s in splits["val"]))
        val = "val.txt"
    names = {i: c for i, c in enumerate(classes)} if names_as_dict else list(classes)
    data_yaml = os.path.join(root, "data.yaml")
    with open(data_yaml, "w") as f:
        yaml.safe_dump({"path": ".", "train": "images/train", "val": val, "names": names}, f)
    return data_yaml


_VOC_OBJECT = (
    "<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
    "<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
)


def voc_xml(file_name: str, height: int, width: int, objects: Sequence[str]) -> str:
    return (
        f"<annotation><folder>JPEGImages</folder><filename>{file_name}</filename><size><width>{width}</width>"
        f"<height>{height}</height><depth>3</depth></size>{''.join(objects)}</annotation>"
    )


def voc_object(name: str, box: Sequence[float], difficult: int = 0) -> str:
    """An ``<object>``: ``box`` XYXY pixels written as VOC's 1-based integer pixel indices."""
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    return _VOC_OBJECT.format(name=name, difficult=difficult, x1=x1 + 1, y1=y1 + 1, x2=x2, y2=y2)


def write_voc_folders(root: str, splits: Dict[str, List[Sample]]) -> str:
    """``Annotations/``, ``JPEGImages/`` and ``ImageSets/Main/<split>.txt``; every 5th object is difficult."""
    os.makedirs(os.path.join(root, "Annotations"), exist_ok=True)
    os.makedirs(os.path.join(root, "ImageSets", "Main"), exist_ok=True)
    for split, samples in splits.items():
        for s in samples:
            _write_image(os.path.join(root, "JPEGImages", s.name + ".jpg"), s.image)
            objects = [voc_object(lab, b, difficult=int(i % 5 == 4)) for i, (b, lab) in enumerate(zip(s.boxes, s.labels))]
            with open(os.path.join(root, "Annotations", s.name + ".xml"), "w") as f:
                f.write(voc_xml(s.name + ".jpg", *s.image.shape[:2], objects))
        with open(os.path.join(root, "ImageSets", "Main", split + ".txt"), "w") as f:
            f.write("".join(s.name + "\n" for s in samples))
    return root


def write_coco_json(root: str, split: str, samples: List[Sample], category_ids: Dict[str, int]) -> str:
    """``root/<split>/*.jpg`` and ``root/<split>.json`` with the given (any) category ids."""
    images, annotations = [], []
    for image_id, s in enumerate(samples, 1):
        _write_image(os.path.join(root, split, s.name + ".jpg"), s.image)
        h, w = s.image.shape[:2]
        images.append({"id": image_id * 10, "file_name": s.name + ".jpg", "height": h, "width": w})
        for (x1, y1, x2, y2), label in zip(s.boxes, s.labels):
            bbox = [round(float(v), 2) for v in (x1, y1, x2 - x1, y2 - y1)]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id * 10,
                    "category_id": category_ids[label],
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                }
            )
    categories = [{"id": cid, "name": name} for name, cid in category_ids.items()]
    json_file = os.path.join(root, split + ".json")
    with open(json_file, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return json_file
