#!/usr/bin/env python
"""
Run a YOLOX LazyConfig on images, folders, videos or a registered dataset and draw the
detections with Detectron2's Visualizer:

    python tools/demo.py --config-file configs/deepforest/yolox_nano_trees.py \\
        --input photo.jpg more_photos/ clip.mp4 --output out/ \\
        --confidence-threshold 0.3 --opts train.init_checkpoint=output/yolox_nano_trees/model_final.pth
    python tools/demo.py --config-file ... --dataset deepforest_trees_val --max-images 2 --output out/

Each image gives ``<output>/<name>.jpg`` and each video ``<output>/<name>.mp4`` (mp4v); a name
already written in this run gets a ``_1``, ``_2``... suffix. Class names come from the metadata
of ``--dataset`` or else of ``dataloader.test.dataset``. Folders and videos show a progress bar.
An unreadable input is reported by name and skipped; the exit status is 1 if any input
failed, 2 if there was nothing to do. Config overrides go last: ``--opts key=value ...`` (e.g.
``train.device=cpu``). Images much larger than the network input: ``--slice 416 --overlap 0.2``
runs overlapping 416 px tiles and merges their detections (``--slice-whole-image`` adds one
pass over the whole image). The work is done by :func:`yolox_d2.engine.demo.run_demo`.
"""

import argparse
import sys
from typing import List, Optional

from detectron2.config import LazyConfig
from detectron2.utils.logger import setup_logger

import yolox_d2  # noqa: F401  (registers models and datasets)
from yolox_d2.engine.demo import run_demo


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, help="a yolox_d2 LazyConfig")
    p.add_argument("--input", nargs="+", default=[], help="image files, folders or videos")
    p.add_argument("--dataset", help="run on the images of this registered dataset instead")
    p.add_argument("--max-images", type=int, default=0, help="with --dataset: at most this many (0: all)")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument(
        "--confidence-threshold", type=float, default=0.3, help="minimum score to draw (default 0.3)"
    )
    p.add_argument("--device", default=None, help="cpu / cuda (default: the config's train.device)")
    p.add_argument("--slice", type=int, default=0, metavar="SIZE", help="sliced inference on SIZE px tiles")
    p.add_argument("--overlap", type=float, default=0.2, help="with --slice: tile overlap, a fraction (0.2)")
    p.add_argument("--slice-whole-image", action="store_true", help="with --slice: add a whole-image pass")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides key=value")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    if not 0.0 <= args.confidence_threshold <= 1.0:
        parser.error(f"--confidence-threshold must be in [0, 1], got {args.confidence_threshold}")
    if args.input and args.dataset:
        parser.error("give either --input or --dataset, not both")
    if args.slice < 0 or not 0.0 <= args.overlap < 1.0:
        parser.error(f"--slice must be >= 0 and --overlap in [0, 1), got {args.slice} and {args.overlap}")
    cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.opts)
    return run_demo(
        cfg,
        args.output,
        inputs=args.input,
        dataset=args.dataset,
        max_images=args.max_images,
        threshold=args.confidence_threshold,
        device=args.device,
        slice_size=args.slice,
        slice_overlap=args.overlap,
        slice_whole_image=args.slice_whole_image,
    )


if __name__ == "__main__":
    setup_logger(name="yolox_d2")
    sys.exit(main())
