"""
``deepforest_trees_train`` / ``deepforest_trees_val``: a small real detection dataset built from
the aerial (NEON) tree-crown photos and their Pascal-VOC boxes shipped inside the PyPI package
``deepforest==2.1.0`` (``deepforest/data/*.xml`` + images; about 950 boxes over 4 photos, all
mapped to the single class ``"tree"``; ``SOAP_061``'s ``Alive`` / ``Dead`` labels included).

Large photos are cut into overlapping tiles (default 400x400, stride 300). A box is kept in a
tile when at least ``min_visible`` of its area lies inside it, and is clipped to the tile.
The split is **by source photo** (no photo contributes to both splits); by default
``2019_YELL_2_541000_4977000_image_crop`` (279 boxes) is the validation photo. The VOC files
are read by :mod:`.voc_xml` and the photos tiled by :mod:`.tiling`; this module holds what is
specific to deepforest: where its photos are, the tile cache and the registration.

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
from typing import Any, Dict, List, Optional, Sequence, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from .tiling import build_tiles, check_tiling_params
from .voc_xml import VOCSource, find_annotated_sources

__all__ = [
    "DEEPFOREST_INSTALL_COMMAND",
    "DEFAULT_VAL_SOURCES",
    "deepforest_data_dir",
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


def _annotated_sources(data_dir: str, val_sources: Tuple[str, ...]) -> List[VOCSource]:
    """The annotated photos of ``data_dir``; checks that ``val_sources`` splits them in two."""
    sources = find_annotated_sources(data_dir)
    names = [s.name for s in sources]
    if not sources:
        raise FileNotFoundError(f"No VOC-annotated photos found in {data_dir!r}")
    unknown = [v for v in val_sources if v not in names]
    if unknown:
        raise ValueError(f"Unknown val_sources {unknown}; annotated photos are {names}")
    if not [n for n in names if n not in val_sources]:
        raise ValueError("val_sources leaves no photo for the training split")
    return sources


def _build_cache(
    sources: Sequence[VOCSource], cache_dir: str, key: str, params: Dict[str, Any]
) -> Dict[str, Any]:
    """
    Tile ``sources`` into a temporary directory next to ``cache_dir`` and publish it as
    ``cache_dir`` with one rename (unless another process, e.g. another rank, published a
    complete one meanwhile); return the manifest of the published directory.
    """
    base = os.path.dirname(cache_dir)
    os.makedirs(base, exist_ok=True)
    logger.info(
        "Tiling %d deepforest photos into %s (tile %d, overlap %d) ...",
        len(sources),
        cache_dir,
        params["tile_size"],
        params["overlap"],
    )
    tmp_dir = tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=base)
    try:
        splits = build_tiles(
            sources, tmp_dir, params["tile_size"], params["overlap"], params["min_visible"], params["val_sources"]
        )
        manifest = {
            "version": _CACHE_FORMAT_VERSION,
            "key": key,
            "params": params,
            "sources": [s.name for s in sources],
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
    return manifest


def _records(manifest: Dict[str, Any], cache_dir: str) -> Dict[str, List[Dict[str, Any]]]:
    """The manifest's splits as dataset dicts: absolute ``file_name``, ``BoxMode`` members."""
    out: Dict[str, List[Dict[str, Any]]] = {}
    for split, records in manifest["splits"].items():
        dicts = []
        for r in records:
            r = dict(r, file_name=os.path.join(cache_dir, r["file_name"]))
            r["annotations"] = [dict(a, bbox_mode=BoxMode(a["bbox_mode"])) for a in r["annotations"]]
            dicts.append(r)
        out[split] = dicts
    return out


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
    check_tiling_params(tile_size, overlap, min_visible)
    if isinstance(val_sources, str):
        val_sources = (val_sources,)
    val_sources = tuple(sorted(str(v) for v in val_sources))
    sources = _annotated_sources(data_dir or deepforest_data_dir(), val_sources)

    params = dict(
        tile_size=tile_size, overlap=overlap, min_visible=min_visible, val_sources=list(val_sources)
    )
    key = _cache_key(sources, params)
    cache_dir = os.path.join(root or default_cache_root(), "deepforest_trees", key)
    manifest = _load_manifest(cache_dir, key)
    if manifest is None:
        manifest = _build_cache(sources, cache_dir, key, params)
    else:
        logger.info("Using the deepforest_trees tile cache %s", cache_dir)
    return _records(manifest, cache_dir)


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
