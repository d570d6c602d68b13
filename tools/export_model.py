#!/usr/bin/env python
"""
Export a yolox_d2 model (LazyConfig + checkpoint) to ONNX, TorchScript or OpenVINO IR, with a
dynamic batch size and input size (multiples of 32), optionally plus an INT8 ONNX graph:

    python tools/export_model.py --config-file configs/yolox_s.py --output yolox_s.onnx \\
        --mode nms --opts train.init_checkpoint=yolox_s_d2.pth
    python tools/export_model.py --config-file configs/yolox_s.py --output yolox_s.ts \\
        --mode decoded --box-format cxcywh --opts train.init_checkpoint=yolox_s_d2.pth
    python tools/export_model.py --config-file configs/yolox_s.py --output yolox_s.onnx \
        --int8 --calib-dataset coco_2017_val --calib-images 100 --opts train.init_checkpoint=yolox_s_d2.pth
    python tools/export_model.py --config-file configs/yolox_s.py --output yolox_s_openvino \
        --format openvino --verify --opts train.init_checkpoint=yolox_s_d2.pth

The weights are ``train.init_checkpoint`` (its EMA weights when it has them), BatchNorm is
folded into the convolutions unless ``--no-fuse``. Graph input ``images``: float32 (N, 3, H, W),
BGR 0-255, letterboxed and padded with 114 (``yolox_d2.export.letterbox_batch``). Outputs by
``--mode``:

  raw      predictions (N, A, 5+C) [dx, dy, log w, log h, obj logit, class logits]
           (--raw-layout levels: raw_p3/raw_p4/raw_p5 (N, 5+C, H_l, W_l))
  decoded  predictions (N, A, 5+C) [x1, y1, x2, y2 | cx, cy, w, h, obj prob, class probs]
  nms      detections (K, 7) [batch_index, x1, y1, x2, y2, score, class]

Boxes are in network-input pixels. ``--verify`` runs the exported file (onnxruntime /
torch.jit.load / OpenVINO) on random inputs of two shapes and compares it with PyTorch (exit
status 1 when it differs); ``--int8`` logs how the INT8 detections agree with float32 ones. Config overrides go last: ``--opts key=value ...``. From Python:
``yolox_d2.export.export_model(cfg, output, ...)``.
"""

import argparse
import logging
import sys
from typing import List, Optional

from detectron2.config import LazyConfig
from detectron2.utils.logger import setup_logger

import yolox_d2  # noqa: F401  (registers the YOLOX parts)
from yolox_d2.export import (
    BOX_FORMATS,
    DEFAULT_OPSET,
    EXPORT_FORMATS,
    OUTPUT_MODES,
    RAW_LAYOUTS,
    ExportVerificationError,
    check_export_options,
    export_model,
    resolve_format,
)

logger = logging.getLogger("yolox_d2.export_model")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, help="a yolox_d2 LazyConfig")
    p.add_argument("--output", required=True, help="file to write (.onnx, .pt/.ts; a folder for openvino)")
    p.add_argument("--format", choices=EXPORT_FORMATS, help="default: from the --output extension")
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
    p.add_argument("--int8", action="store_true", help="also write <output>_int8.onnx (onnxruntime) or, with --format openvino, <name>_int8.xml (NNCF)")
    p.add_argument("--calib-dataset", help="--int8: registered dataset of the calibration images")
    p.add_argument("--calib-images", type=int, default=100, help="--int8: calibration images (default 100)")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides key=value")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    try:
        fmt = resolve_format(args.output, args.format)
        check_export_options(
            fmt, static=args.static, batch_size=args.batch_size, opset=args.opset,
            int8=args.int8, calib_dataset=args.calib_dataset,
        )
    except ValueError as e:
        parser.error(str(e))

    cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.opts)
    try:
        export_model(
            cfg,
            args.output,
            format=fmt,
            mode=args.mode,
            raw_layout=args.raw_layout,
            box_format=args.box_format,
            score_thresh=args.score_thresh,
            nms_thresh=args.nms_thresh,
            max_detections=args.max_detections,
            class_agnostic=args.class_agnostic,
            size=args.size,
            batch_size=args.batch_size,
            static=args.static,
            opset=args.opset,
            fuse=not args.no_fuse,
            device=args.device,
            verify=args.verify,
            int8=args.int8,
            calib_dataset=args.calib_dataset,
            calib_images=args.calib_images,
        )
    except ExportVerificationError as e:
        logger.error("Verification failed: %s", e)
        return 1
    except (FileNotFoundError, TypeError, ValueError) as e:
        logger.error("%s", e)
        return 2
    return 0


if __name__ == "__main__":
    setup_logger(name="yolox_d2")
    sys.exit(main())
