"""
ONNX / TorchScript export (yolox_d2.export, export_model and tools/export_model.py): exported graphs of random-
weight Nano and S models, run in onnxruntime and TorchScript at two input sizes and batch 1 and
3, give the PyTorch raw outputs (1e-4) and the same detections on real photos.
"""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from detectron2.config import LazyConfig
from detectron2.structures import ImageList
from torchvision.ops import box_iou

from yolox_d2.data.mappers import YOLOXTestMapper
from yolox_d2.export import (
    YOLOXExportWrapper,
    batched_detections,
    decode_raw_predictions,
    detections_from_predictions,
    export_model,
    export_onnx,
    export_torchscript,
    letterbox_batch,
    onnxruntime_session,
    run_onnx,
)

from .conftest import photo_paths
from .official_reference import read_bgr
from .random_weights import random_yolox

pytest.importorskip("onnx", reason="export tests need `pip install onnx onnxruntime` (the dev extras)")
pytest.importorskip("onnxruntime", reason="export tests need `pip install onnx onnxruntime` (the dev extras)")

# Known deprecations of the tools the export deliberately uses with torch 2.14 (TorchScript
# tracing, the TorchScript-based ONNX exporter); see docs/deployment.md.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.onnx"),
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Exporting aten:UserWarning"),
]

SCORE_THRESH = 0.3
NMS_THRESH = 0.65
MAX_DETECTIONS = 10000  # above what the random models give: detections are compared in full
NANO_SHAPES = [(1, 320), (3, 320), (1, 416), (3, 416)]
S_SHAPES = [(1, 320), (3, 384)]
# Detections of the "calibrated" models (see tests/random_weights.py), whose float32 logits
# carry ~1e-3 of rounding noise in any implementation, PyTorch included.
SCORE_TOL, BOX_TOL, BOX_RTOL, IOU_TOL = 2e-3, 0.5, 5e-3, 5e-3


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a busy 2-core machine more threads are much slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def photos():
    return [read_bgr(p) for p in photo_paths()]


def _model(repo_root, config, seed, flavour):
    model = random_yolox(
        repo_root,
        config,
        seed=seed,
        flavour=flavour,
        test_score_thresh=SCORE_THRESH,
        test_nms_thresh=NMS_THRESH,
        max_detections_per_image=MAX_DETECTIONS,
    )
    return model.fuse()


@pytest.fixture(scope="module")
def nano(repo_root):
    """Nano whose outputs depend on the image (detection comparisons)."""
    return _model(repo_root, "yolox_nano.py", seed=0, flavour="calibrated")


@pytest.fixture(scope="module")
def small(repo_root):
    """S whose outputs depend on the image (detection comparisons)."""
    return _model(repo_root, "yolox_s.py", seed=1, flavour="calibrated")


@pytest.fixture(scope="module")
def nano_exact(repo_root):
    """Nano with tiny float32 rounding (1e-4 comparisons of raw outputs)."""
    return _model(repo_root, "yolox_nano.py", seed=2, flavour="official")


@pytest.fixture(scope="module")
def small_exact(repo_root):
    """S with tiny float32 rounding (1e-4 comparisons of raw outputs)."""
    return _model(repo_root, "yolox_s.py", seed=3, flavour="official")


def _batch(photos, batch_size, size) -> torch.Tensor:
    batch, _ = letterbox_batch(photos[:batch_size], size)
    return torch.from_numpy(batch)


def _session(path):
    return onnxruntime_session(path, num_threads=1)


def _as_list(outputs):
    return [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)


def _detections(predictions, box_format="xyxy"):
    return detections_from_predictions(
        predictions,
        box_format=box_format,
        score_thresh=SCORE_THRESH,
        nms_thresh=NMS_THRESH,
        max_detections=MAX_DETECTIONS,
    )


@torch.no_grad()
def pytorch_detections(model, images: torch.Tensor) -> torch.Tensor:
    """The model's own inference (YOLOX.forward_inference) as (K, 7) rows like the exports'."""
    features = model.backbone(images)
    features = [features[f] for f in model.head_in_features]
    sizes = [tuple(images.shape[-2:])] * len(images)
    results = model.forward_inference(ImageList(images, sizes), features, model.head(features))
    rows = []
    for i, r in enumerate(results):
        rows.append(
            torch.cat(
                (
                    torch.full((len(r), 1), float(i)),
                    r.pred_boxes.tensor,
                    r.scores[:, None],
                    r.pred_classes[:, None].float(),
                ),
                dim=1,
            )
        )
    return torch.cat(rows)


def _borderline(row, others, *, score_thresh, nms_thresh, score_tol, iou_tol, agnostic, cap_score):
    """Whether float rounding may decide if ``row`` is kept: its score is at the threshold (or
    at the per-image cap), or its IoU with a better same-class box is at the NMS threshold."""
    score = float(row[5])
    if score < score_thresh + score_tol or (cap_score is not None and score <= cap_score + score_tol):
        return True
    rivals = others[(others[:, 5] >= score - score_tol) & (agnostic | (others[:, 6] == row[6]))]
    if len(rivals) == 0:
        return False
    ious = box_iou(row[None, 1:5], rivals[:, 1:5])[0]
    return bool(((ious - nms_thresh).abs() <= iou_tol).any())


def assert_same_detections(
    got,
    expected,
    *,
    score_tol=1e-5,
    box_tol=1e-3,
    box_rtol=1e-5,
    iou_tol=1e-4,
    cap=None,
    agnostic=False,
    score_thresh=SCORE_THRESH,
    nms_thresh=NMS_THRESH,
    min_per_image=5,
):
    """
    The same detections per image: a one-to-one matching of (class, box, score) within the
    tolerances. A detection may go unmatched only where float rounding decides (see
    :func:`_borderline`), and such cases must be rare (<= 2% of an image's detections).
    """
    got, expected = torch.as_tensor(got).float(), torch.as_tensor(expected).float()
    assert got.shape[1] == expected.shape[1] == 7
    for b in sorted(set(expected[:, 0].tolist()) | set(got[:, 0].tolist())):
        g, e = got[got[:, 0] == b], expected[expected[:, 0] == b]
        assert len(e) >= min_per_image, f"image {b}: the random model should detect something"
        free = torch.ones(len(g), dtype=torch.bool)
        missing = []
        for row in e[e[:, 5].argsort(descending=True)]:
            # relative to the box size too: a huge box (exp of a large log-size) rounds coarsely
            size = float(torch.maximum(row[3] - row[1], row[4] - row[2]))
            box_diff = (g[:, 1:5] - row[1:5]).abs().amax(dim=1)
            match = (
                free
                & (g[:, 6] == row[6])
                & ((g[:, 5] - row[5]).abs() <= score_tol)
                & (box_diff <= box_tol + box_rtol * size)
            )
            if match.any():
                free[torch.nonzero(match)[:, 0][box_diff[match].argmin()]] = False
            else:
                missing.append(row)
        extra = list(g[free])
        cap_score = float(e[:, 5].min()) if cap is not None and len(e) == cap else None
        for rows, others, what in ((missing, g, "missing from the export"), (extra, e, "not in PyTorch's")):
            for row in rows:
                assert _borderline(
                    row,
                    others,
                    score_thresh=score_thresh,
                    nms_thresh=nms_thresh,
                    score_tol=score_tol,
                    iou_tol=iou_tol,
                    agnostic=agnostic,
                    cap_score=cap_score,
                ), f"image {b}: detection {row.tolist()} {what} detections"
        assert len(missing) + len(extra) <= max(
            1, 0.02 * len(e)
        ), f"image {b}: too many borderline differences"


def assert_close_detections(got, expected, **kwargs):
    """:func:`assert_same_detections` with the tolerances of the calibrated models."""
    assert_same_detections(
        got, expected, score_tol=SCORE_TOL, box_tol=BOX_TOL, box_rtol=BOX_RTOL, iou_tol=IOU_TOL, **kwargs
    )


# ------------------------------------------------------------------------------------ exports
@pytest.fixture(scope="module")
def exact_exports(nano_exact, small_exact, tmp_path_factory):
    """Raw / decoded graphs of the low-rounding models: outputs compared at 1e-4."""
    out = tmp_path_factory.mktemp("exact_exports")
    with torch.no_grad():
        # Fill the model's anchor-grid cache at the tracing size: the export must not bake it in.
        YOLOXExportWrapper(nano_exact, "decoded")(torch.zeros(1, 3, 320, 320))
    w = {
        "nano_levels": YOLOXExportWrapper(nano_exact, "raw", raw_layout="levels"),
        "nano_decoded": YOLOXExportWrapper(nano_exact, "decoded"),
        "s_cxcywh": YOLOXExportWrapper(small_exact, "decoded", box_format="cxcywh"),
        "s_raw": YOLOXExportWrapper(small_exact, "raw"),
    }
    onnx = {"nano_levels": _session(export_onnx(w["nano_levels"], out / "nano_levels.onnx", sample_size=320))}
    # (a session without spinning threads gives the same outputs)
    onnx["nano_decoded"] = onnxruntime_session(
        export_onnx(w["nano_decoded"], out / "nano_decoded.onnx", sample_size=320),
        num_threads=1,
        allow_spinning=False,
    )
    onnx["s_cxcywh"] = _session(
        export_onnx(w["s_cxcywh"], out / "s.onnx", sample_size=(320, 384), batch_size=2)
    )
    ts = {
        k: torch.jit.load(export_torchscript(w[k], out / f"{k}.ts", sample_size=320))
        for k in ("nano_decoded", "s_raw")
    }
    return w, onnx, ts


@pytest.fixture(scope="module")
def detection_exports(nano, small, tmp_path_factory):
    """Graphs of the image-dependent models: detections compared."""
    out = tmp_path_factory.mktemp("detection_exports")
    w = {
        "nano_nms": YOLOXExportWrapper(nano, "nms"),
        "nano_decoded": YOLOXExportWrapper(nano, "decoded"),
        "s_decoded": YOLOXExportWrapper(small, "decoded"),
        "s_raw": YOLOXExportWrapper(small, "raw"),
    }
    onnx = {
        k: _session(export_onnx(w[k], out / f"{k}.onnx", sample_size=320))
        for k in ("nano_nms", "nano_decoded", "s_decoded")
    }
    ts = {
        k: torch.jit.load(export_torchscript(w[k], out / f"{k}.ts", sample_size=320))
        for k in ("nano_nms", "s_raw")
    }
    return w, onnx, ts


@pytest.mark.parametrize("batch_size,size", NANO_SHAPES)
def test_nano_raw_and_decoded_outputs_match_pytorch(exact_exports, photos, batch_size, size):
    w, onnx, ts = exact_exports
    x = _batch(photos, batch_size, size)
    with torch.no_grad():
        levels = _as_list(w["nano_levels"](x))
        decoded = w["nano_decoded"](x)
        traced = ts["nano_decoded"](x)
    options = onnx["nano_decoded"].get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    got = run_onnx(onnx["nano_levels"], x)
    assert len(got) == 3
    for level, (g, e, stride) in enumerate(zip(got, levels, (8, 16, 32))):
        assert g.shape == (batch_size, 85, size // stride, size // stride)
        torch.testing.assert_close(torch.from_numpy(g), e, atol=1e-4, rtol=0)
    anchors = (size // 8) ** 2 * 21 // 16
    for got in (torch.from_numpy(run_onnx(onnx["nano_decoded"], x)[0]), traced):
        assert got.shape == (batch_size, anchors, 85)
        torch.testing.assert_close(got[..., 4:], decoded[..., 4:], atol=1e-5, rtol=0)
        torch.testing.assert_close(got[..., :4], decoded[..., :4], atol=1e-4, rtol=1e-6)


@pytest.mark.parametrize("batch_size,size", S_SHAPES)
def test_s_raw_and_decoded_outputs_match_pytorch(exact_exports, photos, batch_size, size):
    w, onnx, ts = exact_exports
    x = _batch(photos, batch_size, size)
    with torch.no_grad():
        torch.testing.assert_close(ts["s_raw"](x), w["s_raw"](x), atol=1e-4, rtol=0)
        expected = w["s_cxcywh"](x)
    got = torch.from_numpy(run_onnx(onnx["s_cxcywh"], x)[0])
    torch.testing.assert_close(got[..., 4:], expected[..., 4:], atol=1e-5, rtol=0)
    torch.testing.assert_close(got[..., :4], expected[..., :4], atol=1e-4, rtol=1e-6)


@pytest.mark.parametrize("batch_size,size", NANO_SHAPES)
def test_nano_onnx_detections_match_pytorch(nano, detection_exports, photos, batch_size, size):
    """Decoded graph + the same NMS in PyTorch, and NMS in the graph, vs YOLOX.forward_inference."""
    _, onnx, _ = detection_exports
    x = _batch(photos, batch_size, size)
    expected = pytorch_detections(nano, x)
    decoded = torch.from_numpy(run_onnx(onnx["nano_decoded"], x)[0])
    assert_close_detections(_detections(decoded), expected)

    (in_graph,) = run_onnx(onnx["nano_nms"], x)
    assert in_graph.dtype == np.float32 and in_graph.ndim == 2 and in_graph.shape[1] == 7
    assert np.all(np.diff(in_graph[:, 0]) >= 0), "rows are grouped by image"
    for b in range(batch_size):
        assert np.all(np.diff(in_graph[in_graph[:, 0] == b, 5]) <= 0), "best first within an image"
    assert_close_detections(in_graph, expected)


@pytest.mark.parametrize("batch_size,size", [(1, 416), (3, 320)])
def test_nano_torchscript_nms_matches_pytorch(nano, detection_exports, photos, batch_size, size):
    _, _, ts = detection_exports
    x = _batch(photos, batch_size, size)
    with torch.no_grad():
        got = ts["nano_nms"](x)
    assert_close_detections(got, pytorch_detections(nano, x))


@pytest.mark.parametrize("batch_size,size", S_SHAPES)
def test_s_onnx_and_torchscript_detections_match_pytorch(small, detection_exports, photos, batch_size, size):
    _, onnx, ts = detection_exports
    x = _batch(photos, batch_size, size)
    expected = pytorch_detections(small, x)
    assert_close_detections(_detections(torch.from_numpy(run_onnx(onnx["s_decoded"], x)[0])), expected)
    with torch.no_grad():
        raw = ts["s_raw"](x)
    assert_close_detections(_detections(decode_raw_predictions(small, raw, (size, size))), expected)


# ------------------------------------------------------------------------ eager semantics
def test_letterbox_batch_is_the_model_input(nano, photos):
    """letterbox_batch gives the tensor the model builds from YOLOXTestMapper inputs."""
    inputs = [YOLOXTestMapper(image_size=416)({"file_name": p, "image_id": 0}) for p in photo_paths()]
    with torch.no_grad():
        expected = nano.preprocess_image(inputs).tensor
    batch, ratios = letterbox_batch(photos, 416)
    assert torch.equal(torch.from_numpy(batch), expected)
    for image, ratio in zip(photos, ratios):
        assert ratio == pytest.approx(min(416 / image.shape[0], 416 / image.shape[1]))
    with pytest.raises(ValueError, match="at least one image"):
        letterbox_batch([], 416)
    with pytest.raises(ValueError, match=r"Image 0: expected an \(H, W, 3\)"):
        letterbox_batch([photos[0][:, :, 0]], 416)


def test_wrapper_output_layouts_agree(nano, photos):
    x = _batch(photos, 2, 320)
    with torch.no_grad():
        levels = YOLOXExportWrapper(nano, "raw", raw_layout="levels")(x)
        raw = YOLOXExportWrapper(nano, "raw")(x)
        xyxy = YOLOXExportWrapper(nano, "decoded")(x)
        cxcywh = YOLOXExportWrapper(nano, "decoded", box_format="cxcywh")(x)
        nms = YOLOXExportWrapper(nano, "nms")(x)
    flat = torch.cat([lv.flatten(2) for lv in levels], dim=2).transpose(1, 2)
    torch.testing.assert_close(flat, raw, atol=1e-6, rtol=0)
    torch.testing.assert_close(decode_raw_predictions(nano, raw, (320, 320)), xyxy, atol=1e-4, rtol=1e-6)
    torch.testing.assert_close(cxcywh[..., 4:], xyxy[..., 4:], atol=1e-6, rtol=0)
    torch.testing.assert_close((xyxy[..., :2] + xyxy[..., 2:4]) / 2, cxcywh[..., :2], atol=1e-4, rtol=0)
    torch.testing.assert_close(xyxy[..., 2:4] - xyxy[..., :2], cxcywh[..., 2:4], atol=1e-4, rtol=0)
    assert_same_detections(nms, pytorch_detections(nano, x))


def test_wrapper_nms_cap_and_class_agnostic(nano, photos):
    x = _batch(photos, 3, 320)
    saved = nano.max_detections_per_image, nano.test_class_agnostic_nms
    try:
        for cap, agnostic in ((7, False), (MAX_DETECTIONS, True)):
            nano.max_detections_per_image, nano.test_class_agnostic_nms = cap, agnostic
            with torch.no_grad():
                got = YOLOXExportWrapper(nano, "nms")(x)
            assert_same_detections(got, pytorch_detections(nano, x), cap=cap, agnostic=agnostic)
    finally:
        nano.max_detections_per_image, nano.test_class_agnostic_nms = saved


def test_wrapper_applies_pixel_normalisation(repo_root, photos):
    model = random_yolox(
        repo_root,
        "yolox_nano.py",
        seed=2,
        pixel_mean=[100.0, 110.0, 120.0],
        pixel_std=[50.0, 60.0, 70.0],
        test_square_size=0,
    )
    x = _batch(photos, 1, 320)
    with torch.no_grad():
        images = model.preprocess_image([{"image": x[0]}])
        features = model.backbone(images.tensor)
        cls, reg, obj = model.flatten_predictions(model.head([features[f] for f in model.head_in_features]))
        raw = YOLOXExportWrapper(model, "raw")(x)
    torch.testing.assert_close(raw, torch.cat((reg, obj[..., None], cls), dim=-1), atol=1e-5, rtol=0)


def test_wrapper_rejects_bad_arguments(nano):
    with pytest.raises(ValueError, match="output must be one of"):
        YOLOXExportWrapper(nano, "boxes")
    with pytest.raises(ValueError, match="box_format must be one of"):
        YOLOXExportWrapper(nano, "decoded", box_format="xywh")
    with pytest.raises(ValueError, match="raw_layout must be one of"):
        YOLOXExportWrapper(nano, "raw", raw_layout="flat")
    with pytest.raises(ValueError, match=r"nms_thresh must be in \[0, 1\]"):
        YOLOXExportWrapper(nano, "nms", nms_thresh=1.5)
    with pytest.raises(TypeError, match="needs a yolox_d2 YOLOX model, got Conv2d"):
        YOLOXExportWrapper(nn.Conv2d(3, 3, 1))
    wrapper = YOLOXExportWrapper(nano, "decoded")
    with pytest.raises(ValueError, match="multiples of 32, got 330x320"):
        wrapper(torch.zeros(1, 3, 330, 320))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        wrapper(torch.zeros(3, 320, 320))
    with pytest.raises(ValueError, match="floating point"):
        wrapper(torch.zeros(1, 3, 320, 320, dtype=torch.uint8))
    with pytest.raises(ValueError, match="multiple of 32"):
        export_onnx(wrapper, "unused.onnx", sample_size=100)
    with pytest.raises(ValueError, match="opset must be >= 11"):
        export_onnx(wrapper, "unused.onnx", sample_size=64, opset=10)
    with pytest.raises(ValueError, match="a 320x320 input gives 2100 anchors"):
        decode_raw_predictions(nano, torch.zeros(1, 10, 85), (320, 320))
    nano.train()
    try:
        with pytest.raises(ValueError, match="call model.eval"):
            YOLOXExportWrapper(nano)
    finally:
        nano.eval()


# --------------------------------------------------------------- in-graph NMS, edge cases
class _Detections(nn.Module):
    def __init__(self, cap, agnostic):
        super().__init__()
        self.cap, self.agnostic = cap, agnostic

    def forward(self, boxes, scores, classes):
        return batched_detections(
            boxes,
            scores,
            classes,
            num_classes=4,
            score_thresh=0.3,
            nms_thresh=0.5,
            max_detections=self.cap,
            class_agnostic=self.agnostic,
        )


def _reference_detections(boxes, scores, classes, cap, agnostic):
    """Per image, per class torchvision NMS, best first, capped: the definition."""
    import torchvision

    rows = []
    for b in range(len(boxes)):
        keep = torch.nonzero(scores[b] >= 0.3)[:, 0]
        groups = torch.zeros_like(classes[b][keep]) if agnostic else classes[b][keep]
        kept = keep[torchvision.ops.batched_nms(boxes[b][keep], scores[b][keep], groups, 0.5)]
        kept = kept[scores[b][kept].argsort(descending=True)][: cap if cap > 0 else None]
        rows += [[b, *boxes[b, k].tolist(), float(scores[b, k]), float(classes[b, k])] for k in kept]
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 7)


def _clustered_boxes(n, a, seed):
    g = torch.Generator().manual_seed(seed)
    centers = torch.rand(n, a, 2, generator=g) * 40  # crowded: NMS has work to do
    sizes = torch.rand(n, a, 2, generator=g) * 20 + 5
    boxes = torch.cat((centers - sizes / 2, centers + sizes / 2), dim=-1)  # some negative coords
    return boxes, torch.rand(n, a, generator=g), torch.randint(0, 4, (n, a), generator=g)


@pytest.mark.parametrize("cap,agnostic", [(3, False), (0, True)])
def test_batched_detections_onnx_matches_definition(tmp_path, cap, agnostic):
    module = _Detections(cap, agnostic)
    path = tmp_path / "nms.onnx"
    sample = _clustered_boxes(2, 30, seed=0)
    torch.onnx.export(
        module,
        sample,
        str(path),
        dynamo=False,
        input_names=["boxes", "scores", "classes"],
        output_names=["detections"],
        opset_version=17,
        dynamic_axes={"boxes": {0: "n", 1: "a"}, "scores": {0: "n", 1: "a"}, "classes": {0: "n", 1: "a"}},
    )
    session = _session(path)
    boxes, scores, classes = _clustered_boxes(3, 50, seed=1)
    scores[1] = 0.1  # an image without candidates
    cases = [(boxes, scores, classes), (boxes[:1], torch.zeros_like(scores[:1]), classes[:1])]
    for case in cases:
        expected = _reference_detections(*case, cap, agnostic)
        eager = module(*case)
        (got,) = session.run(None, {k: v.numpy() for k, v in zip(("boxes", "scores", "classes"), case)})
        assert torch.equal(torch.from_numpy(got), eager)
        assert eager.shape == expected.shape
        torch.testing.assert_close(eager, expected, atol=0, rtol=0)
    assert len(expected) == 0  # the last case has no candidates at all


# ------------------------------------------------------------------------------------- CLI
def _save_checkpoint_with_ema(repo_root, path):
    """A checkpoint whose "model" and "ema" weights differ; returns the EMA model (unfused)."""
    from yolox_d2.engine import ModelEMA

    trained = random_yolox(repo_root, "yolox_nano.py", seed=3)
    ema_model = random_yolox(repo_root, "yolox_nano.py", seed=4)
    ema = ModelEMA(ema_model)
    ema.updates = 10
    torch.save({"model": trained.state_dict(), "ema": ema.state_dict()}, path)
    return ema_model


def test_export_cli_onnx_uses_ema_weights_and_verifies(repo_root, tmp_path, photos):
    ema_model = _save_checkpoint_with_ema(repo_root, tmp_path / "model.pth")
    out = tmp_path / "nano.onnx"
    proc = subprocess.run(
        [
            sys.executable,
            str(repo_root / "tools" / "export_model.py"),
            "--config-file",
            str(repo_root / "configs" / "yolox_nano.py"),
            "--output",
            str(out),
            "--mode",
            "raw",
            "--size",
            "320",
            "--verify",
            "--opts",
            f"train.init_checkpoint={tmp_path / 'model.pth'}",
            "train.device=cpu",
        ],
        capture_output=True,
        text=True,
        cwd=repo_root,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = proc.stdout + proc.stderr
    assert "Using the EMA weights" in log and "Verified onnx" in log
    x = _batch(photos, 2, 416)
    with torch.no_grad():
        expected = YOLOXExportWrapper(ema_model, "raw")(x)
    torch.testing.assert_close(torch.from_numpy(run_onnx(_session(out), x)[0]), expected, atol=1e-4, rtol=0)


def test_export_model_torchscript_and_errors(repo_root, tmp_path):
    """export_model (the library call behind tools/export_model.py) for the quick cases."""
    cfg_path = str(repo_root / "configs" / "yolox_nano.py")

    def cfg(*overrides):
        return LazyConfig.apply_overrides(LazyConfig.load(cfg_path), ["train.device=cpu", *overrides])

    out = tmp_path / "nano.ts"
    assert export_model(cfg(), out, mode="nms", size=[256], verify=True, max_detections=5) == str(out)
    traced = torch.jit.load(str(out))
    with torch.no_grad():
        assert traced(torch.rand(2, 3, 320, 288) * 255).shape[1] == 7

    static = tmp_path / "static.onnx"
    export_model(cfg(), static, static=True, size=[256], batch_size=2)
    import onnx

    dims = [d.dim_value for d in onnx.load(str(static)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 3, 256, 256]

    missing = tmp_path / "nowhere.pth"
    message = f"Checkpoint '{missing}' (train.init_checkpoint) does not exist"
    with pytest.raises(FileNotFoundError, match=re.escape(message)):
        export_model(cfg(f"train.init_checkpoint={missing}"), tmp_path / "a.onnx")
    with pytest.raises(ValueError, match="size must be positive multiples of 32, got 330x330"):
        export_model(cfg(), tmp_path / "a.onnx", size=[330])
    with pytest.raises(ValueError, match="Cannot tell the format"):
        export_model(cfg(), tmp_path / "model.bin")
    with pytest.raises(ValueError, match="static applies to ONNX only"):
        export_model(cfg(), out, static=True)
    with pytest.raises(ValueError, match="opset must be >= 11"):
        export_model(cfg(), tmp_path / "a.onnx", opset=9)


def test_export_cli_rejects_bad_options(repo_root, tmp_path):
    """The command line turns option errors into usage errors (exit status 2)."""
    proc = subprocess.run(
        [
            sys.executable,
            str(repo_root / "tools" / "export_model.py"),
            "--config-file",
            str(repo_root / "configs" / "yolox_nano.py"),
            "--output",
            str(tmp_path / "model.bin"),
        ],
        capture_output=True,
        text=True,
        cwd=repo_root,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Cannot tell the format from" in proc.stderr and "usage:" in proc.stderr
