#!/usr/bin/env python
"""
Convert an official YOLOX checkpoint (Megvii-BaseDetection/YOLOX ``.pth`` whose ``"model"``
entry is the state dict) into a Detectron2 checkpoint for a yolox_d2 config:

    python tools/convert_yolox_weights.py --config-file configs/yolox_s.py yolox_s.pth yolox_s_d2.pth

Convert with the model the checkpoint was trained as (the official COCO weights: 80 classes,
the default of ``configs/yolox_*.py``); ``key=value`` config overrides go after the two file
names. The result loads with ``DetectionCheckpointer(model).load("yolox_s_d2.pth")`` (or
``train.init_checkpoint=yolox_s_d2.pth``) with no missing or unexpected keys. To fine-tune on
another number of classes, train with ``train.init_checkpoint=yolox_s_d2.pth`` and your
``model.num_classes``: the class predictions are re-initialised (one log line says so), every
other tensor is loaded. Keys that do not line up are listed in the error (exit status 1), with
that advice when only the number of classes differs.
"""
import argparse
import logging
import sys

import torch

from detectron2.config import LazyConfig, instantiate
from detectron2.utils.logger import setup_logger

import yolox_d2  # noqa: F401  (registers the YOLOX parts)
from yolox_d2.checkpoint import CheckpointMismatchError, convert_official_state_dict

logger = logging.getLogger("yolox_d2.convert")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, help="yolox_d2 LazyConfig of the model")
    p.add_argument("input", help="official YOLOX checkpoint (.pth)")
    p.add_argument("output", help="where to write the Detectron2 checkpoint (.pth)")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides key=value")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    setup_logger(name="yolox_d2")

    cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.opts)
    model = instantiate(cfg.model)
    try:
        checkpoint = torch.load(args.input, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        logger.error("Checkpoint file not found: %s", args.input)
        return 2
    state_dict = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        logger.error("%s is not an official YOLOX checkpoint: expected a dict with a 'model' state dict", args.input)
        return 2
    try:
        converted = convert_official_state_dict(state_dict, model)
    except CheckpointMismatchError as e:
        logger.error("Cannot convert %s for %s:\n%s", args.input, args.config_file, e)
        return 1
    torch.save(
        {"model": converted, "__author__": "yolox_d2 convert_yolox_weights", "matching_heuristics": False},
        args.output,
    )
    logger.info("Wrote %s (%d tensors)", args.output, len(converted))
    return 0


if __name__ == "__main__":
    sys.exit(main())
