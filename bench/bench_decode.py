#!/usr/bin/env python
"""
JPEG decoding speed and pixel agreement: ``cv2.imdecode`` (the official YOLOX reader; OpenCV's
bundled libjpeg-turbo), PIL (yolox_d2's reader before ``simplejpeg`` was adopted:
``Image.open`` + EXIF + ``convert("RGB")`` + BGR), ``simplejpeg``, PyTurboJPEG (when it and
the system ``libturbojpeg`` are installed) and yolox_d2's
:func:`~yolox_d2.data.image_io.decode_image_bgr` (PIL header + EXIF, ``simplejpeg`` decode)::

    python bench/bench_decode.py                 # 5 runs, 1 thread
    python bench/bench_decode.py --runs 3 --sets tiles camera

Every decoder reads the file (from the page cache) and returns ``HxWx3`` uint8 BGR. Image
sets: the 400x400 tiles of ``deepforest_trees_train`` and deepforest's two large aerial crops
(1249x1035, 2299x2472), re-encoded by PIL into a temporary folder at quality 92 (4:2:0
chroma subsampling, PIL's default), at quality 95 with 4:4:4, and progressive; plus the JPEG
photos that ship with scikit-image, matplotlib, scikit-learn and deepforest, as shipped
(4:4:4, 4:2:2 and 4:2:0 cameras). Timings alternate the decoders (ABBA rounds,
:func:`benchlib.alternate`); a call decodes the whole set once; the figure is ms per image.
Agreement: the largest absolute difference and the fraction of differing values against the
cv2 and the PIL decode of the same file (OpenCV's EXIF rotation off: none of these files is
rotated).
"""

import argparse
import glob
import io
import os
import tempfile
from typing import Callable, Dict, List, Tuple

import cv2
import numpy as np
from PIL import Image

import benchlib
from benchlib import Report, Stats, alternate, command_line, finish, set_threads

Decoder = Callable[[str], np.ndarray]


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def decode_cv2(path: str) -> np.ndarray:
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    return cv2.imdecode(np.frombuffer(_read(path), np.uint8), flags)


def decode_pil(path: str) -> np.ndarray:
    """yolox_d2's reader before simplejpeg: PIL, EXIF orientation, RGB -> BGR copy."""
    from detectron2.data.detection_utils import _apply_exif_orientation

    pil = _apply_exif_orientation(Image.open(io.BytesIO(_read(path))))
    return np.ascontiguousarray(np.asarray(pil.convert("RGB"))[:, :, ::-1])


def decode_simplejpeg(path: str) -> np.ndarray:
    import simplejpeg

    return simplejpeg.decode_jpeg(_read(path), colorspace="BGR", fastdct=False, fastupsample=False)


def decode_yolox_d2(path: str) -> np.ndarray:
    from yolox_d2.data.image_io import decode_image_bgr

    return decode_image_bgr(path).image


def decoders() -> Dict[str, Decoder]:
    """The decoders installed here (PyTurboJPEG needs the system libturbojpeg)."""
    out: Dict[str, Decoder] = {"cv2": decode_cv2, "PIL": decode_pil}
    try:
        import simplejpeg  # noqa: F401

        out["simplejpeg"] = decode_simplejpeg
    except ImportError:
        pass
    try:
        from turbojpeg import TurboJPEG

        jpeg = TurboJPEG()
        out["PyTurboJPEG"] = lambda path: jpeg.decode(_read(path))  # BGR by default
    except (ImportError, OSError, RuntimeError):  # package, library or library version missing
        pass
    out["yolox_d2 decode_image_bgr"] = decode_yolox_d2
    return out


# ---------------------------------------------------------------------- image sets
def _site_packages() -> str:
    return os.path.dirname(os.path.dirname(np.__file__))


def _deepforest_pngs() -> Tuple[List[str], List[str]]:
    """(the 400x400 training tiles, deepforest's large aerial crops)."""
    import yolox_d2.data  # noqa: F401  (registers the dataset)
    from detectron2.data import DatasetCatalog

    tiles = [d["file_name"] for d in DatasetCatalog.get("deepforest_trees_train")]
    crops = sorted(glob.glob(os.path.join(_site_packages(), "deepforest", "data", "2019_YELL_*.png")))
    return tiles, crops


def _encode(sources: List[str], folder: str, tag: str, **save_args) -> List[str]:
    os.makedirs(folder, exist_ok=True)
    out = []
    for k, src in enumerate(sources):
        path = os.path.join(folder, f"{tag}_{k:03d}.jpg")
        Image.open(src).convert("RGB").save(path, "JPEG", **save_args)
        out.append(path)
    return out


def camera_jpegs() -> List[str]:
    """The real JPEG photos shipped with installed packages."""
    site = _site_packages()
    names = [
        "skimage/data/rocket.jpg",
        "skimage/data/retina.jpg",
        "skimage/data/hubble_deep_field.jpg",
        "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
        "sklearn/datasets/images/china.jpg",
        "sklearn/datasets/images/flower.jpg",
        "deepforest/data/AWPE Pigeon Lake 2020 DJI_0005.JPG",
    ]
    return [p for p in (os.path.join(site, n) for n in names) if os.path.exists(p)]


def image_sets(folder: str, names: List[str]) -> Dict[str, List[str]]:
    tiles, crops = _deepforest_pngs()
    makers = {
        "tiles": lambda: _encode(tiles, folder, "tile_q92", quality=92),
        "aerial": lambda: _encode(crops, folder, "aerial_q92", quality=92),
        "aerial444": lambda: _encode(crops, folder, "aerial_q95_444", quality=95, subsampling=0),
        "progressive": lambda: _encode(crops, folder, "aerial_q92_prog", quality=92, progressive=True),
        "camera": camera_jpegs,
    }
    return {name: makers[name]() for name in names}


SET_TITLES = {
    "tiles": "deepforest tiles 400x400, q92 4:2:0",
    "aerial": "aerial crops 1249x1035 + 2299x2472, q92 4:2:0",
    "aerial444": "aerial crops, q95 4:4:4",
    "progressive": "aerial crops, q92 progressive",
    "camera": "shipped camera JPEGs (0.3-2 Mpx, 4:4:4 / 4:2:2 / 4:2:0)",
}


# ---------------------------------------------------------------------- measures
def agreement(decode: Decoder, reference: Decoder, paths: List[str]) -> str:
    """``max |diff|`` and the fraction of differing values over ``paths``."""
    worst, differing, total = 0, 0, 0
    for path in paths:
        a, b = decode(path).astype(np.int16), reference(path).astype(np.int16)
        if a.shape != b.shape:
            return f"shape {a.shape} != {b.shape}"
        diff = np.abs(a - b)
        worst, differing, total = max(worst, int(diff.max())), differing + int((diff > 0).sum()), total + diff.size
    return "identical" if worst == 0 else f"max {worst}, {differing / total:.2%} differ"


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.add_common_args(p, runs=5, warmup=1)
    p.set_defaults(threads=1)
    p.add_argument("--sets", nargs="+", default=list(SET_TITLES), choices=list(SET_TITLES))
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    set_threads(args.threads)
    decs = decoders()
    rows, figures = [], {}
    with tempfile.TemporaryDirectory() as folder:
        for set_name, paths in image_sets(folder, args.sets).items():
            runners = {name: (lambda d=d: [d(p) for p in paths]) for name, d in decs.items()}
            times = alternate(runners, runs=args.runs, warmup=args.warmup)
            base = Stats.of(times["cv2"], scale=1e3 / len(paths)).median
            for name, t in times.items():
                st = Stats.of(t, scale=1e3 / len(paths))
                rows.append(
                    [
                        f"{SET_TITLES[set_name]} ({len(paths)})",
                        name,
                        st.fmt("ms", digits=2),
                        f"{base / st.median:.2f}x",
                        agreement(decs[name], decode_cv2, paths),
                        agreement(decs[name], decode_pil, paths),
                    ]
                )
                figures[f"{set_name}_{name.split()[0]}_ms"] = round(st.median, 3)
    report = Report(
        title="JPEG decoding: ms per image and pixel agreement",
        command=command_line(),
        columns=["images", "decoder", "ms / image", "speed vs cv2", "vs cv2", "vs PIL"],
        rows=rows,
        notes=[
            f"{args.runs} timed runs per decoder (ABBA order) after {args.warmup} warm-up, median "
            f"(min–max); file read from the page cache included; {args.threads} OpenCV / torch thread",
            "yolox_d2 decode_image_bgr: PIL parses the header and EXIF, simplejpeg decodes (PIL "
            "for CMYK / unusual / damaged files)",
        ],
        figures=figures,
    )
    finish(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
