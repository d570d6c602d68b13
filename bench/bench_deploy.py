#!/usr/bin/env python
"""
Deployment runtimes side by side, batch 1 on the CPU: PyTorch eager (fused BatchNorm), and the
ONNX export in onnxruntime fp32 and INT8 (yolox_d2.export.quantize), the OpenVINO IR fp32
(yolox_d2.export.openvino_ir) and, when nncf is installed, OpenVINO INT8 (NNCF post-training
quantization, for the comparison the INT8 choice rests on)::

    python bench/bench_deploy.py                       # Nano@416 and S@640, 2 threads
    python bench/bench_deploy.py --checkpoint output/yolox_nano_trees/model_final.pth

Every runtime runs the same ``"decoded"`` graph (network + box decoding; letterbox and NMS are
outside the timings) on the same letterboxed photo with the same number of threads, runs
alternating in ABBA order (``benchlib.alternate``); the table gives median / min / p90 of
``--runs`` timed runs. The latency models have random weights with BatchNorm statistics
measured on photos (``tests/random_weights.py``): the speed of a trained model. INT8 graphs
are calibrated on ``--calib-images`` images of ``--calib-dataset`` through the inference
letterbox.

Accuracy needs trained weights: with ``--checkpoint`` (of ``--checkpoint-config``) the trained
model gets rows too, each runtime's detections on ``--eval-dataset`` are scored with
pycocotools (Detectron2's ``COCOEvaluator``), and the INT8 / fp32 detection agreement is
reported; without it the AP column is left out.
"""
import argparse
import logging
import os
import pathlib
import statistics
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from typing import Dict, List

import cv2
import numpy as np
import torch

import benchlib
from benchlib import REPO_ROOT, Report, alternate, command_line, finish, set_threads

# (yolox_d2 variant config, input size) of the latency rows
VARIANT_SIZES = {"nano": ("yolox_nano.py", 416), "s": ("yolox_s.py", 640)}
# Detections compared by the INT8 / fp32 agreement (the evaluation keeps all from 0.001 on).
AGREEMENT_SCORE_THRESH = 0.3
RUNTIMES = ("pytorch", "onnxruntime fp32", "onnxruntime int8", "openvino fp32", "openvino int8")


def get_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.add_common_args(p, runs=20, warmup=3)
    p.add_argument("--variants", nargs="*", default=list(VARIANT_SIZES), choices=list(VARIANT_SIZES))
    p.add_argument("--calib-dataset", default="deepforest_trees_train")
    p.add_argument("--calib-images", type=int, default=8)
    p.add_argument("--no-nncf", action="store_true", help="leave out OpenVINO INT8 (NNCF)")
    p.add_argument("--checkpoint", help="trained weights: adds AP / AP50 per runtime")
    p.add_argument("--checkpoint-config", default=os.path.join(REPO_ROOT, "configs/deepforest/yolox_nano_trees.py"))
    p.add_argument("--eval-dataset", default="deepforest_trees_val")
    return p


def p90(values: List[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


class TorchEngine:
    """The PyTorch model as an engine (a float32 batch in, the graph's outputs out)."""

    output_names = ["predictions"]

    def __init__(self, wrapper):
        self.wrapper = wrapper

    @torch.no_grad()
    def __call__(self, batch: np.ndarray) -> List[np.ndarray]:
        return [self.wrapper(torch.from_numpy(batch)).numpy()]


def build_runtimes(model, size: int, workdir: str, args, notes: List[str]) -> Dict[str, object]:
    """name -> engine (callable on a float32 batch) for every runtime, plus "pytorch"."""
    from yolox_d2.export import YOLOXExportWrapper, export_onnx
    from yolox_d2.export.openvino_ir import export_openvino
    from yolox_d2.export.quantize import calibration_images_from_dataset, quantize_onnx_int8
    from yolox_d2_runtime import OnnxRuntimeEngine, OpenVINOEngine

    wrapper = YOLOXExportWrapper(model, "decoded")
    fp32 = export_onnx(wrapper, os.path.join(workdir, "model.onnx"), sample_size=size)
    calibration = calibration_images_from_dataset(args.calib_dataset, args.calib_images, size)
    int8 = quantize_onnx_int8(fp32, os.path.join(workdir, "model_int8.onnx"), calibration)
    threads = args.threads

    engines = {
        "pytorch": TorchEngine(wrapper),
        # No spinning: idle threads would busy-wait through the other runtimes' runs.
        "onnxruntime fp32": OnnxRuntimeEngine(fp32, threads, allow_spinning=False),
        "onnxruntime int8": OnnxRuntimeEngine(int8, threads, allow_spinning=False),
    }
    try:
        import openvino as ov
    except ImportError:
        notes.append("openvino is not installed: no OpenVINO rows (pip install -e '.[deploy]')")
        return engines
    ir = export_openvino(fp32, os.path.join(workdir, "openvino"))
    engines["openvino fp32"] = OpenVINOEngine(ir.xml_path, threads, (size, size))
    photo = calibration[:1]
    diffs = {n: np.abs(engines[n](photo)[0] - engines["pytorch"](photo)[0]) for n in ("onnxruntime fp32", "openvino fp32")}
    notes.append(
        f"{size}x{size}, max |fp32 output - PyTorch| on a calibration image (boxes in pixels, "
        f"probabilities): " + ", ".join(f"{n} {d[..., :4].max():.2g} / {d[..., 4:].max():.2g}" for n, d in diffs.items())
    )
    if args.no_nncf:
        return engines
    try:
        import nncf  # noqa: F401  (the OpenVINO INT8 row needs it)
    except ImportError:
        notes.append("nncf is not installed: no OpenVINO INT8 row")
        return engines
    from yolox_d2.export.openvino_int8 import quantize_openvino_int8

    xml = quantize_openvino_int8(ir.xml_path, os.path.join(workdir, "openvino", "model_int8.xml"), calibration)
    engines["openvino int8"] = OpenVINOEngine(xml, threads, (size, size))
    return engines


def evaluate_ap(model, engines, size: int, args, workdir: str) -> Dict[str, Dict[str, float]]:
    """COCO AP / AP50 of each runtime's detections on ``--eval-dataset``, and INT8 agreement."""
    from detectron2.data import DatasetCatalog
    from detectron2.evaluation import COCOEvaluator
    from detectron2.structures import Boxes, Instances

    from yolox_d2.data import read_image_bgr
    from yolox_d2.data.transforms import letterbox_resize
    from yolox_d2.export.quantize import int8_agreement
    from yolox_d2_runtime import YOLOXDetector

    dicts = DatasetCatalog.get(args.eval_dataset)
    images = [read_image_bgr(d) for d in dicts]
    results: Dict[str, Dict[str, float]] = {}
    rows: Dict[str, np.ndarray] = {}
    for name, engine in engines.items():
        evaluator = COCOEvaluator(args.eval_dataset, output_dir=os.path.join(workdir, "coco"))
        evaluator.reset()
        detector = None if name == "pytorch" else YOLOXDetector(
            engine,
            input_size=size,
            score_thresh=model.test_score_thresh,
            nms_thresh=model.test_nms_thresh,
            max_detections=model.max_detections_per_image,
            class_agnostic=model.test_class_agnostic_nms,
        )
        per_image = []
        for i, (d, image) in enumerate(zip(dicts, images)):
            if name == "pytorch":  # the model's own inference, as YOLOXPredictor runs it
                resized, _ = letterbox_resize(image, size)
                tensor = torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1)))
                with torch.no_grad():
                    instances = model([{"image": tensor, "height": image.shape[0], "width": image.shape[1]}])[0]["instances"]
                boxes, scores, classes = (instances.pred_boxes.tensor.numpy(), instances.scores.numpy(), instances.pred_classes.numpy())
            else:
                det = detector(image)
                boxes, scores, classes = det.boxes, det.scores, det.classes
                instances = Instances(
                    image.shape[:2],
                    pred_boxes=Boxes(torch.from_numpy(boxes)),
                    scores=torch.from_numpy(scores),
                    pred_classes=torch.from_numpy(classes),
                )
            evaluator.process([{"image_id": d["image_id"]}], [{"instances": instances}])
            per_image.append(np.concatenate([np.full((len(scores), 1), i), boxes, scores[:, None], classes[:, None]], 1))
        rows[name] = np.concatenate(per_image)
        bbox = evaluator.evaluate()["bbox"]
        results[name] = {"AP": bbox["AP"], "AP50": bbox["AP50"]}
    for kind in ("onnxruntime", "openvino"):
        if f"{kind} int8" in rows:
            fp32, int8 = rows[f"{kind} fp32"], rows[f"{kind} int8"]
            keep = AGREEMENT_SCORE_THRESH
            results[f"{kind} int8"]["agreement"] = int8_agreement(fp32[fp32[:, 5] >= keep], int8[int8[:, 5] >= keep])
    return results


def measure(label: str, model, size: int, args, rows, figures, notes, evaluate: bool) -> None:
    from yolox_d2.export import letterbox_batch

    photo = cv2.imread(benchlib.photo_paths()[0], cv2.IMREAD_COLOR)
    batch, _ = letterbox_batch([photo], size)
    with tempfile.TemporaryDirectory() as workdir:
        engines = build_runtimes(model, size, workdir, args, notes)
        times = alternate({n: (lambda e=e: e(batch)) for n, e in engines.items()}, args.runs, args.warmup)
        accuracy = evaluate_ap(model, engines, size, args, workdir) if evaluate else {}
    base = statistics.median(times["onnxruntime fp32"])
    for name in RUNTIMES:
        if name not in times:
            continue
        t = times[name]
        med = statistics.median(t)
        row = [label, name, f"{1e3 * med:.1f}", f"{1e3 * min(t):.1f}", f"{1e3 * p90(t):.1f}", f"{base / med:.2f}x"]
        key = f"{label.split('@')[0]}_{name.replace(' ', '_')}"
        figures[f"{key}_median_ms"] = 1e3 * med
        if args.checkpoint:
            acc = accuracy.get(name)
            row.append(f"{acc['AP']:.1f} / {acc['AP50']:.1f}" if acc else "–")
            if acc:
                figures[f"{key}_ap50"] = acc["AP50"]
                figures[f"{key}_ap50_loss_vs_pytorch"] = accuracy["pytorch"]["AP50"] - acc["AP50"]
                if "agreement" in acc:
                    notes.append(f"{label} {name}: {acc['agreement']}")
        rows.append(row)
    if "onnxruntime int8" in times:
        figures[f"{label.split('@')[0]}_ort_int8_speedup"] = base / statistics.median(times["onnxruntime int8"])
    if "openvino int8" in times:
        figures[f"{label.split('@')[0]}_ov_int8_speedup"] = base / statistics.median(times["openvino int8"])


def main(argv=None):
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    set_threads(args.threads)
    import yolox_d2  # noqa: F401  (registers the datasets)
    from tests.random_weights import random_yolox

    rows, figures, notes = [], {}, []
    for variant in args.variants:
        config, size = VARIANT_SIZES[variant]
        model = random_yolox(pathlib.Path(REPO_ROOT), config, seed=1, flavour="calibrated").fuse()
        measure(f"{variant}@{size} (random weights)", model, size, args, rows, figures, notes, evaluate=False)
    if args.checkpoint:
        from detectron2.config import LazyConfig

        from yolox_d2.engine.predictor import build_inference_model, inference_image_size

        cfg = LazyConfig.load(args.checkpoint_config)
        cfg.train.init_checkpoint = args.checkpoint
        model = build_inference_model(cfg, "cpu", fuse=True)
        size = inference_image_size(cfg)[0]
        label = f"{os.path.basename(args.checkpoint_config)[:-3]}@{size} (checkpoint)"
        measure(label, model, size, args, rows, figures, notes, evaluate=True)
    columns = ["model", "runtime", "median ms", "min ms", "p90 ms", "speed vs onnxruntime fp32"]
    if args.checkpoint:
        columns.append(f"AP / AP50 ({args.eval_dataset})")
    notes.append(
        f"batch 1, {args.threads} threads, {args.runs} alternating runs after {args.warmup} warm-up; "
        f"INT8 calibrated on {args.calib_images} images of {args.calib_dataset}"
    )
    report = Report(
        title=f"Deployment runtimes, CPU, {args.threads} threads",
        command=command_line(),
        columns=columns,
        rows=rows,
        notes=notes,
        figures=figures,
    )
    report.machine = benchlib.machine_info()
    for package in ("onnxruntime", "openvino", "nncf"):
        try:
            report.machine[package] = version(package)
        except PackageNotFoundError:
            pass
    finish(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
