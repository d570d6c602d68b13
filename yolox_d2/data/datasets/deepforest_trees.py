"""
``deepforest_trees_train`` / ``deepforest_trees_val``: a small real detection dataset built from
the aerial (NEON) tree-crown photos and their Pascal-VOC boxes shipped inside the PyPI package
``deepforest==2.1.0`` (``deepforest/data/*.xml`` + images; about 950 boxes over 4 photos, all
mapped to the single class ``"tree"``; ``SOAP_061``'s ``Alive`` / ``Dead`` labels included).

Large photos are cut into overlapping tiles (default 400x400, stride 300). A box is kept in a
tile when at least ``min_visible`` of its area lies inside it, and is clipped to the tile.
The split is **by source photo** (no photo contributes to both splits); by default
``2019_YELL_2_541000_4977000_image_crop`` (279 boxes) is the validation photo.

Tiles are written once to a cache directory, ``<root>/deepforest_trees/<key>/`` where
``root`` is the ``root`` argument, else ``$YOLOX_D2_DATASETS``, else ``~/.cache/yolox_d2``,
and ``key`` hashes the *contents* of the source files, the tiling parameters, the split and a
format version, so a changed source or parameter never reuses a stale cache. A cache
directory is published atomically (built in a temporary directory, then renamed) and checked
(manifest + every tile present) before use.

Registration (on ``import yolox_d2.data``) is cheap: nothing is read until the dataset
function is called (e.g. by ``DatasetCatalog.get``). ``deepforest`` is located with
:func:`importlib.util.find_spec`, never imported (it would pull heavy dependencies).
"""

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

__all__ = [
    "DEEPFOREST_INSTALL_COMMAND",
    "DEFAULT_VAL_SOURCES",
    "VOCSource",
    "deepforest_data_dir",
    "parse_voc_xml",
    "find_annotated_sources",
    "tile_starts",
    "boxes_in_tile",
    "default_cache_root",
    "prepare_deepforest_trees",
    "load_deepforest_trees",
    "register_deepforest_trees",
]

logger = logging.getLogger(__name__)

DEEPFOREST_INSTALL_COMMAND = "pip install --no-deps deepforest==2.1.0"
#: Source photo(s) (file stem) used for validation by default.
DEFAULT_VAL_SOURCES: Tuple[str, ...] = ("2019_YELL_2_541000_4977000_image_crop",)
THING_CLASSES = ["tree"]
_CACHE_FORMAT_VERSION = 1
_MANIFEST = "manifest.json"
_IMAGE_EXTS = (".png", ".tif", ".tiff", ".jpg", ".jpeg")


def deepforest_data_dir() -> str:
    """
    The ``data`` directory of the installed ``deepforest`` package (found without importing it).

    Raises:
        ImportError: deepforest is not installed (the message gives the install command).
    """
    spec = importlib.util.find_spec("deepforest")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "The deepforest_trees datasets are built from the images shipped in the PyPI package "
            f"'deepforest', which is not installed. Install it with: {DEEPFOREST_INSTALL_COMMAND}"
        )
    for location in spec.submodule_search_locations:
        data_dir = os.path.join(location, "data")
        if os.path.isdir(data_dir):
            return data_dir
    raise ImportError(
        f"The installed deepforest package has no data directory ({list(spec.submodule_search_locations)}); "
        f"reinstall it with: {DEEPFOREST_INSTALL_COMMAND}"
    )


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


def _find_image(data_dir: str, xml_path: str, filename: str) -> Optional[str]:
    """The photo named in the xml, else one with the xml's stem and an image extension."""
    if filename:
        candidate = os.path.join(data_dir, filename)
        if os.path.isfile(candidate):
            return candidate
    stem = os.path.splitext(os.path.basename(xml_path))[0]
    for ext in _IMAGE_EXTS:
        candidate = os.path.join(data_dir, stem + ext)
        if os.path.isfile(candidate):
            return candidate
    return None


def find_annotated_sources(data_dir: Optional[str] = None) -> List[VOCSource]:
    """
    All photos of ``data_dir`` that have a VOC xml with at least one box, sorted by name.

    Args:
        data_dir: directory with ``*.xml`` + photos; default :func:`deepforest_data_dir`.
    """
    data_dir = data_dir or deepforest_data_dir()
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
        image_path = _find_image(data_dir, xml_path, ann["filename"])
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


def tile_starts(length: int, tile: int, stride: int) -> List[int]:
    """
    Tile start offsets along one axis: ``0, stride, 2*stride, ...`` plus a last tile flush
    with the end, so the tiles cover ``[0, length)``; a single ``[0, length)`` tile when
    ``length <= tile``.

    Args:
        length: image size along the axis.
        tile: tile size.
        stride: step between tiles (``tile - overlap``), > 0.
    """
    if stride <= 0:
        raise ValueError(f"Tile stride must be positive, got {stride}")
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def boxes_in_tile(
    boxes: np.ndarray, tile_box: Sequence[float], min_visible: float
) -> Tuple[np.ndarray, np.ndarray]:
    """
    Boxes of a photo that belong to a tile, in tile coordinates.

    Args:
        boxes: ``(N, 4)`` XYXY boxes in photo pixels.
        tile_box: ``(x0, y0, x1, y1)`` of the tile in photo pixels.
        min_visible: keep a box when at least this fraction of its area is inside the tile.

    Returns:
        ``(clipped boxes relative to the tile, indices of the kept boxes)``.
    """
    x0, y0, x1, y1 = tile_box
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    clipped = boxes.copy()
    clipped[:, 0::2] = clipped[:, 0::2].clip(x0, x1)
    clipped[:, 1::2] = clipped[:, 1::2].clip(y0, y1)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = np.nonzero((area > 0) & (inside > 0) & (inside >= min_visible * area))[0]
    return clipped[keep] - np.array([x0, y0, x0, y0], dtype=np.float64), keep


def default_cache_root() -> str:
    """``$YOLOX_D2_DATASETS`` if set, else ``~/.cache/yolox_d2`` (read at call time)."""
    return os.environ.get("YOLOX_D2_DATASETS") or os.path.join(os.path.expanduser("~"), ".cache", "yolox_d2")


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _cache_key(sources: Sequence[VOCSource], params: Dict[str, Any]) -> str:
    """Hash of the format version, the parameters and the contents of every source file."""
    h = hashlib.sha256()
    h.update(json.dumps({"version": _CACHE_FORMAT_VERSION, "params": params}, sort_keys=True).encode())
    for s in sources:
        h.update(f"|{s.name}|{os.path.basename(s.image_path)}|".encode())
        h.update(_file_digest(s.xml_path).encode())
        h.update(_file_digest(s.image_path).encode())
    return h.hexdigest()[:16]


def _check_params(tile_size: int, overlap: int, min_visible: float) -> None:
    if tile_size <= 0:
        raise ValueError(f"tile_size must be positive, got {tile_size}")
    if not 0 <= overlap < tile_size:
        raise ValueError(f"overlap must be in [0, tile_size), got {overlap}")
    if not 0.0 < min_visible <= 1.0:
        raise ValueError(f"min_visible must be in (0, 1], got {min_visible}")


def _build_tiles(
    sources: Sequence[VOCSource],
    out_dir: str,
    tile_size: int,
    overlap: int,
    min_visible: float,
    val_sources: Sequence[str],
) -> Dict[str, List[Dict[str, Any]]]:
    """Write the tiles of every source to ``out_dir``; return the per-split records."""
    splits: Dict[str, List[Dict[str, Any]]] = {"train": [], "val": []}
    stride = tile_size - overlap
    image_id = 0
    for src in sources:
        image = cv2.imread(src.image_path, cv2.IMREAD_COLOR)
        if image is None:
            raise OSError(f"Cannot read source photo {src.image_path!r}")
        H, W = image.shape[:2]
        if (src.width, src.height) != (W, H) and src.width is not None:
            logger.warning(
                "%s: xml size %sx%s != image size %dx%d; using the image size",
                src.xml_path,
                src.width,
                src.height,
                W,
                H,
            )
        split = "val" if src.name in val_sources else "train"
        for y0 in tile_starts(H, tile_size, stride):
            for x0 in tile_starts(W, tile_size, stride):
                x1, y1 = min(x0 + tile_size, W), min(y0 + tile_size, H)
                boxes, keep = boxes_in_tile(src.boxes, (x0, y0, x1, y1), min_visible)
                rel = f"{src.name}_x{x0}_y{y0}.png"
                if not cv2.imwrite(os.path.join(out_dir, rel), image[y0:y1, x0:x1]):
                    raise OSError(f"Cannot write tile {os.path.join(out_dir, rel)!r}")
                splits[split].append(
                    {
                        "file_name": rel,
                        "height": y1 - y0,
                        "width": x1 - x0,
                        "image_id": image_id,
                        "source_image": src.name,
                        "tile_box": [x0, y0, x1, y1],
                        "annotations": [
                            {
                                "bbox": [round(float(v), 3) for v in b],
                                "bbox_mode": int(BoxMode.XYXY_ABS),
                                "category_id": 0,
                                "iscrowd": 0,
                                "source_label": src.labels[int(k)],
                            }
                            for b, k in zip(boxes, keep)
                        ],
                    }
                )
                image_id += 1
    return splits


def _load_manifest(cache_dir: str, key: str) -> Optional[Dict[str, Any]]:
    """The manifest of a complete cache directory for ``key``, else None."""
    path = os.path.join(cache_dir, _MANIFEST)
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    if manifest.get("key") != key or manifest.get("version") != _CACHE_FORMAT_VERSION:
        return None
    for records in manifest.get("splits", {}).values():
        for r in records:
            if not os.path.isfile(os.path.join(cache_dir, r["file_name"])):
                return None
    return manifest


def prepare_deepforest_trees(
    root: Optional[str] = None,
    tile_size: int = 400,
    overlap: int = 100,
    min_visible: float = 0.5,
    val_sources: Sequence[str] = DEFAULT_VAL_SOURCES,
    data_dir: Optional[str] = None,
) -> Dict[str, List[Dict[str, Any]]]:
    """
    Build (or reuse) the tile cache and return both splits as Detectron2 dataset dicts.

    Args:
        root: cache root; default :func:`default_cache_root` (``$YOLOX_D2_DATASETS`` or
            ``~/.cache/yolox_d2``). Tiles go to ``<root>/deepforest_trees/<key>/``.
        tile_size: tile side in pixels (photos not larger than this stay whole).
        overlap: overlap between neighbouring tiles in pixels (stride ``tile_size - overlap``).
        min_visible: keep a box in a tile when at least this fraction of its area is inside.
        val_sources: stems of the source photos forming the validation split.
        data_dir: directory with the VOC xml + photos; default: deepforest's data directory.

    Returns:
        ``{"train": [...], "val": [...]}``; each dict has ``file_name`` (absolute), ``height``,
        ``width``, ``image_id`` (int, unique over both splits), ``annotations`` (``bbox``
        XYXY_ABS in tile pixels, ``category_id`` 0, ``iscrowd`` 0), ``source_image`` (photo
        stem) and ``tile_box`` (tile position ``[x0, y0, x1, y1]`` in the photo).
    """
    tile_size, overlap, min_visible = int(tile_size), int(overlap), float(min_visible)
    _check_params(tile_size, overlap, min_visible)
    if isinstance(val_sources, str):
        val_sources = (val_sources,)
    val_sources = tuple(sorted(str(v) for v in val_sources))
    sources = find_annotated_sources(data_dir)
    names = [s.name for s in sources]
    if not sources:
        raise FileNotFoundError(f"No VOC-annotated photos found in {data_dir or deepforest_data_dir()!r}")
    unknown = [v for v in val_sources if v not in names]
    if unknown:
        raise ValueError(f"Unknown val_sources {unknown}; annotated photos are {names}")
    if not [n for n in names if n not in val_sources]:
        raise ValueError("val_sources leaves no photo for the training split")

    params = dict(
        tile_size=tile_size, overlap=overlap, min_visible=min_visible, val_sources=list(val_sources)
    )
    key = _cache_key(sources, params)
    base = os.path.join(root or default_cache_root(), "deepforest_trees")
    cache_dir = os.path.join(base, key)
    manifest = _load_manifest(cache_dir, key)
    if manifest is None:
        os.makedirs(base, exist_ok=True)
        logger.info(
            "Tiling %d deepforest photos into %s (tile %d, overlap %d) ...",
            len(sources),
            cache_dir,
            tile_size,
            overlap,
        )
        tmp_dir = tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=base)
        try:
            splits = _build_tiles(sources, tmp_dir, tile_size, overlap, min_visible, val_sources)
            manifest = {
                "version": _CACHE_FORMAT_VERSION,
                "key": key,
                "params": params,
                "sources": names,
                "splits": splits,
            }
            with open(os.path.join(tmp_dir, _MANIFEST), "w") as f:
                json.dump(manifest, f)
            # publish, unless another process (e.g. another rank) did meanwhile
            if _load_manifest(cache_dir, key) is None:
                if os.path.isdir(cache_dir):  # incomplete / damaged leftover
                    shutil.rmtree(cache_dir, ignore_errors=True)
                try:
                    os.rename(tmp_dir, cache_dir)
                except OSError:  # lost a race with another process publishing it
                    if _load_manifest(cache_dir, key) is None:
                        raise
        finally:
            if os.path.isdir(tmp_dir):
                shutil.rmtree(tmp_dir, ignore_errors=True)
        manifest = _load_manifest(cache_dir, key)
        if manifest is None:
            raise OSError(f"Failed to build the deepforest_trees cache in {cache_dir!r}")
    else:
        logger.info("Using the deepforest_trees tile cache %s", cache_dir)

    out: Dict[str, List[Dict[str, Any]]] = {}
    for split, records in manifest["splits"].items():
        dicts = []
        for r in records:
            r = dict(r, file_name=os.path.join(cache_dir, r["file_name"]))
            r["annotations"] = [dict(a, bbox_mode=BoxMode(a["bbox_mode"])) for a in r["annotations"]]
            dicts.append(r)
        out[split] = dicts
    return out


def load_deepforest_trees(split: str, **kwargs) -> List[Dict[str, Any]]:
    """
    One split of the tiled dataset (the function registered in ``DatasetCatalog``).

    Args:
        split: ``"train"`` or ``"val"``.
        kwargs: :func:`prepare_deepforest_trees` arguments.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    dicts = prepare_deepforest_trees(**kwargs)[split]
    logger.info(
        "deepforest_trees %s: %d tiles, %d boxes",
        split,
        len(dicts),
        sum(len(d["annotations"]) for d in dicts),
    )
    return dicts


def register_deepforest_trees(
    name_prefix: str = "deepforest_trees",
    root: Optional[str] = None,
    tile_size: int = 400,
    overlap: int = 100,
    min_visible: float = 0.5,
    val_sources: Sequence[str] = DEFAULT_VAL_SOURCES,
    data_dir: Optional[str] = None,
) -> Tuple[str, str]:
    """
    Register ``<name_prefix>_train`` and ``<name_prefix>_val`` (lazy: nothing is read now).

    Metadata: ``thing_classes=["tree"]``, ``evaluator_type="coco"``. Names already registered
    are left alone. All other arguments: see :func:`prepare_deepforest_trees`.

    Args:
        name_prefix: dataset name prefix.
        root: cache root (None: resolved when the data is first loaded).
        tile_size: tile side in pixels.
        overlap: tile overlap in pixels.
        min_visible: minimum visible area fraction for a box to be kept in a tile.
        val_sources: source photo stems of the validation split.
        data_dir: VOC directory (None: deepforest's, located at load time).

    Returns:
        The two dataset names ``(train, val)``.
    """
    kwargs = dict(
        root=root,
        tile_size=tile_size,
        overlap=overlap,
        min_visible=min_visible,
        val_sources=tuple(val_sources),
        data_dir=data_dir,
    )
    names = []
    for split in ("train", "val"):
        name = f"{name_prefix}_{split}"
        names.append(name)
        if name in DatasetCatalog:
            continue

        def _load(split=split):
            return load_deepforest_trees(split, **kwargs)

        DatasetCatalog.register(name, _load)
        MetadataCatalog.get(name).set(
            thing_classes=list(THING_CLASSES),
            evaluator_type="coco",
            split=split,
            val_sources=list(kwargs["val_sources"]),
        )
    return names[0], names[1]
