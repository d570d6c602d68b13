#!/usr/bin/env python
"""
Write training samples exactly as the model receives them, each next to its source image with
the original annotations, to check a dataset and its augmentation before training:

    python tools/browse_dataset.py --config-file configs/deepforest/yolox_nano_trees.py \\
        --num 8 --output browse/
    python tools/browse_dataset.py --config-file configs/yolox_s.py --num 8 --output browse/ \\
        --no-aug --opts dataloader.train.dataset.dataset_dicts.names=my_dataset_train

Each sample gives ``<output>/<k>_<source file name>.jpg``: the model input of the config's
``dataloader.train.dataset`` (Mosaic / affine / MixUp / HSV / flip, or with ``--no-aug`` the
letterbox of the recipe's last epochs) with its boxes and class names (the dataset's
``thing_classes``), and the sample's primary source image with its registered boxes, scaled to
the same height. Config overrides go last: ``--opts key=value ...``.
"""
import argparse
import logging
import os
import sys

import cv2
import torch
import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from detectron2.config import LazyConfig
from detectron2.utils.logger import setup_logger

import yolox_d2  # noqa: F401  (registers models and datasets)
from yolox_d2.data.visualize_samples import TrainingSampleBrowser

logger = logging.getLogger("yolox_d2.browse_dataset")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, help="a yolox_d2 LazyConfig")
    p.add_argument("--num", type=int, default=16, help="number of samples to write (default 16)")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--no-aug", action="store_true", help="the no-augmentation phase: letterbox, HSV, flip")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample order and augmentation")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides key=value")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    setup_logger(name="yolox_d2")
    if args.num < 1:
        logger.error("--num must be at least 1, got %d", args.num)
        return 2
    cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.opts)
    torch.manual_seed(args.seed)  # the dataset's generator in this process derives from it
    browser = TrainingSampleBrowser(cfg.dataloader.train.dataset, no_aug=args.no_aug)
    os.makedirs(args.output, exist_ok=True)
    indices = browser.sample_indices(args.num, args.seed)
    with logging_redirect_tqdm():
        for k, index in enumerate(tqdm.tqdm(indices, desc="samples", unit="sample")):
            picture, sample = browser.draw(index)
            stem = os.path.splitext(os.path.basename(str(sample["file_name"])))[0]
            path = os.path.join(args.output, f"{k:04d}_{stem}.jpg")
            if not cv2.imwrite(path, picture):
                logger.error("Cannot write %s", path)
                return 1
    logger.info("Wrote %d samples to %s", len(indices), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
