#!/usr/bin/env python
"""
Export a yolox_d2 model (LazyConfig + checkpoint) to ONNX or TorchScript, with a dynamic batch
size and input size (multiples of 32):

    python tools/export_model.py --config-file configs/yolox_s.py --output yolox_s.onnx \\
        --mode nms --opts train.init_checkpoint=yolox_s_d2.pth
    python tools/export_model.py --config-file configs/yolox_s.py --output yolox_s.ts \\
        --mode decoded --box-format cxcywh --opts train.init_checkpoint=yolox_s_d2.pth

The weights are ``train.init_checkpoint`` (its EMA weights when it has them), BatchNorm is
folded into the convolutions unless ``--no-fuse``. Graph input ``images``: float32 (N, 3, H, W),
BGR 0-255, letterboxed and padded with 114 (``yolox_d2.export.letterbox_batch``). Outputs by
``--mode``:

  raw      predictions (N, A, 5+C) [dx, dy, log w, log h, obj logit, class logits]
           (--raw-layout levels: raw_p3/raw_p4/raw_p5 (N, 5+C, H_l, W_l))
  decoded  predictions (N, A, 5+C) [x1, y1, x2, y2 | cx, cy, w, h, obj prob, class probs]
  nms      detections (K, 7) [batch_index, x1, y1, x2, y2, score, class]

Boxes are in network-input pixels. ``--verify`` runs the exported file (onnxruntime /
torch.jit.load) on random inputs of two shapes and compares it with PyTorch (exit status 1 when
it differs). Config overrides go last: ``--opts key=value ...``.
"""

import argparse
import logging
import os
import sys
from typing import List, Optional, Sequence, Tuple

from detectron2.config import LazyConfig
from detectron2.utils.logger import setup_logger

import yolox_d2  # noqa: F401  (registers the YOLOX parts)
from yolox_d2.engine.predictor import build_inference_model, inference_image_size
from yolox_d2.export import (
    BOX_FORMATS,
    DEFAULT_OPSET,
    OUTPUT_MODES,
    RAW_LAYOUTS,
    ExportVerificationError,
    YOLOXExportWrapper,
    export_onnx,
    export_torchscript,
    verify_export,
)

logger = logging.getLogger("yolox_d2.export_model")

FORMAT_BY_EXTENSION = {
    ".onnx": "onnx",
    ".pt": "torchscript",
    ".ts": "torchscript",
    ".torchscript": "torchscript",
}


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, help="a yolox_d2 LazyConfig")
    p.add_argument("--output", required=True, help="file to write (.onnx, or .pt/.ts for TorchScript)")
    p.add_argument("--format", choices=("onnx", "torchscript"), help="default: from the --output extension")
    p.add_argument("--mode", choices=OUTPUT_MODES, default="decoded", help="graph outputs (default: decoded)")
    p.add_argument(
        "--raw-layout", choices=RAW_LAYOUTS, default="concat", help="--mode raw: one tensor or per level"
    )
    p.add_argument("--box-format", choices=BOX_FORMATS, default="xyxy", help="--mode decoded: box encoding")
    p.add_argument("--score-thresh", type=float, help="--mode nms (default: model.test_score_thresh)")
    p.add_argument("--nms-thresh", type=float, help="--mode nms (default: model.test_nms_thresh)")
    p.add_argument(
        "--max-detections", type=int, help="--mode nms, per image (default: the model's; <= 0: all)"
    )
    p.add_argument(
        "--class-agnostic", action="store_true", default=None, help="--mode nms: NMS across classes"
    )
    p.add_argument(
        "--size",
        type=int,
        nargs="+",
        metavar="PX",
        help="tracing input size H [W], multiples of 32 (default: the config's test size)",
    )
    p.add_argument("--batch-size", type=int, default=1, help="tracing batch size (default 1)")
    p.add_argument(
        "--static", action="store_true", help="ONNX: fix the batch and input size to the tracing input's"
    )
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--no-fuse", action="store_true", help="keep BatchNorm layers (default: folded)")
    p.add_argument("--device", default="cpu", help="device to trace on (default cpu)")
    p.add_argument("--verify", action="store_true", help="compare the exported file with PyTorch")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides key=value")
    return p


def resolve_format(output: str, fmt: Optional[str]) -> str:
    """The export format: ``fmt`` if given, else from the extension of ``output``."""
    if fmt:
        return fmt
    ext = os.path.splitext(output)[1].lower()
    if ext not in FORMAT_BY_EXTENSION:
        raise ValueError(
            f"Cannot tell the format from {output!r}: use a {sorted(FORMAT_BY_EXTENSION)} extension or --format"
        )
    return FORMAT_BY_EXTENSION[ext]


def resolve_size(size: Optional[Sequence[int]], cfg, divisibility: int) -> Tuple[int, int]:
    """``--size`` as (h, w), default the config's test size rounded up to ``divisibility``."""
    if size:
        if len(size) > 2:
            raise ValueError(f"--size takes H or H W, got {list(size)}")
        h, w = (size[0], size[0]) if len(size) == 1 else (size[0], size[1])
        if h <= 0 or w <= 0 or h % divisibility or w % divisibility:
            raise ValueError(f"--size must be positive multiples of {divisibility}, got {h}x{w}")
        return h, w
    h, w = inference_image_size(cfg)
    return -(-h // divisibility) * divisibility, -(-w // divisibility) * divisibility


def verification_shapes(
    batch_size: int, size: Tuple[int, int], dynamic: bool
) -> List[Tuple[int, Tuple[int, int]]]:
    """The tracing shape and, for dynamic graphs, another batch size and input size."""
    shapes = [(batch_size, size)]
    if dynamic:
        shapes.append((batch_size + 1, (size[0] + 32, size[1] + 64)))
    return shapes


def main(argv: Optional[List[str]] = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    try:
        fmt = resolve_format(args.output, args.format)
    except ValueError as e:
        parser.error(str(e))
    if args.static and fmt != "onnx":
        parser.error("--static applies to ONNX only (a traced TorchScript module is always dynamic)")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.opset < 11:
        parser.error(f"--opset must be >= 11 (dynamic NonMaxSuppression / Resize), got {args.opset}")

    cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.opts)
    try:
        model = build_inference_model(cfg, args.device, fuse=not args.no_fuse)
        wrapper = YOLOXExportWrapper(
            model,
            args.mode,
            raw_layout=args.raw_layout,
            box_format=args.box_format,
            score_thresh=args.score_thresh,
            nms_thresh=args.nms_thresh,
            max_detections=args.max_detections,
            class_agnostic=args.class_agnostic,
        )
        size = resolve_size(args.size, cfg, wrapper.size_divisibility)
    except (FileNotFoundError, TypeError, ValueError) as e:
        logger.error("%s", e)
        return 2

    if fmt == "onnx":
        export_onnx(
            wrapper,
            args.output,
            sample_size=size,
            batch_size=args.batch_size,
            opset=args.opset,
            dynamic=not args.static,
        )
    else:
        export_torchscript(wrapper, args.output, sample_size=size, batch_size=args.batch_size)

    if args.verify:
        try:
            verify_export(
                wrapper, args.output, fmt, shapes=verification_shapes(args.batch_size, size, not args.static)
            )
        except ExportVerificationError as e:
            logger.error("Verification failed: %s", e)
            return 1
    return 0


if __name__ == "__main__":
    setup_logger(name="yolox_d2")
    sys.exit(main())
