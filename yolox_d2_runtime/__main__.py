"""
Detect objects in images with an exported YOLOX graph, without PyTorch::

    python -m yolox_d2_runtime yolox_s.onnx photo.jpg other.jpg --input-size 640

Prints one JSON line per image: ``{"file": ..., "detections": [{"box", "score", "class"}]}``.
"""

import argparse
import json
import sys

import cv2

from .detector import YOLOXDetector


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="exported graph: .onnx (onnxruntime) or .xml (OpenVINO IR)")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--input-size", type=int, nargs="+", help="letterbox size: S or H W (needed for dynamic graphs)")
    p.add_argument("--score-thresh", type=float, default=0.3)
    p.add_argument("--nms-thresh", type=float, default=0.65)
    p.add_argument("--max-detections", type=int, default=100)
    p.add_argument("--box-format", choices=["xyxy", "cxcywh"], default="xyxy")
    p.add_argument("--threads", type=int, help="engine threads (default: all cores)")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    size = args.input_size
    if size is not None and len(size) not in (1, 2):
        raise SystemExit("--input-size takes S or H W")
    detector = YOLOXDetector(
        args.model,
        input_size=None if size is None else (size[0] if len(size) == 1 else tuple(size)),
        score_thresh=args.score_thresh,
        nms_thresh=args.nms_thresh,
        max_detections=args.max_detections,
        box_format=args.box_format,
        num_threads=args.threads,
    )
    for path in args.images:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"Cannot read image {path!r}")
        print(json.dumps({"file": path, "detections": detector(image).to_list()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
