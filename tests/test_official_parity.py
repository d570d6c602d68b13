"""
Numerical parity with the official YOLOX (PyPI yolox==0.3.0, test-time reference only):
the official model with random weights, converted by tools/convert_yolox_weights.py, gives
the same raw head outputs and the same detections on real photos.

The models run in their default memory formats (ours channels-last, the official NCHW), so
convolutions round differently in the last bit (~1e-7 on scores). The random reference
models keep thousands of near-equal-score detections, whose NMS order can therefore swap
among (near-)ties: detections are compared as matched sets, plus the sorted score lists.
"""
import subprocess
import sys

import pytest
import torch

from detectron2.checkpoint import DetectionCheckpointer

from yolox_d2.data.mappers import YOLOXTestMapper

from .conftest import photo_paths
from .official_reference import VARIANTS, converted_pair, official_detect, read_bgr

pytest.importorskip("yolox", reason="the official yolox==0.3.0 reference is installed by `make test`")

SCORE_THRESH = 0.05
NMS_THRESH = 0.65


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def pair(request, repo_root):
    variant = request.param
    official, ours = converted_pair(
        repo_root, variant, test_score_thresh=SCORE_THRESH, test_nms_thresh=NMS_THRESH,
        max_detections_per_image=100000,
    )
    return variant, official, ours


def _capture_official_raw(official, x):
    """Raw per-level (cls, reg, obj) outputs of the official head, via forward hooks."""
    captured = {"cls": [], "reg": [], "obj": []}
    hooks = []
    for key, layers in (("cls", official.head.cls_preds), ("reg", official.head.reg_preds), ("obj", official.head.obj_preds)):
        for layer in layers:
            hooks.append(layer.register_forward_hook(lambda m, i, o, key=key: captured[key].append(o)))
    try:
        with torch.no_grad():
            decoded = official(x)
    finally:
        for h in hooks:
            h.remove()
    return captured, decoded


def test_raw_head_outputs_match(pair):
    variant, official, ours = pair
    size = VARIANTS[variant][1]
    torch.manual_seed(1)
    x = torch.rand(2, 3, size, size - 64) * 255
    captured, official_decoded = _capture_official_raw(official, x)
    with torch.no_grad():
        features, (cls, reg, obj) = ours.run_network(x)
    for name, a_list, b_list in (("cls", captured["cls"], cls), ("reg", captured["reg"], reg), ("obj", captured["obj"], obj)):
        assert len(a_list) == len(b_list) == 3
        for level, (a, b) in enumerate(zip(a_list, b_list)):
            assert a.shape == b.shape, (name, level)
            torch.testing.assert_close(b, a, atol=1e-4, rtol=0, msg=f"{variant} {name} level {level}")

    # Decoded (boxes, obj, cls) outputs in the official layout.
    with torch.no_grad():
        c, r, o = ours.flatten_predictions((cls, reg, obj))
        grid, strides = ours.anchor_grid(features)
        boxes = ours.decode_boxes(r, grid, strides)
    centers = (boxes[..., :2] + boxes[..., 2:]) / 2
    sizes = boxes[..., 2:] - boxes[..., :2]
    torch.testing.assert_close(centers, official_decoded[..., :2], atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(sizes, official_decoded[..., 2:4], atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(o.sigmoid(), official_decoded[..., 4], atol=1e-5, rtol=0)
    torch.testing.assert_close(c.sigmoid(), official_decoded[..., 5:], atol=1e-5, rtol=0)


def _match_detections(boxes, scores, classes, ref_boxes, ref_scores, ref_classes, chunk=1024):
    """
    Index into the reference of the detection matching each of ours: same class, score within
    1e-6, nearest box (max-abs coordinate difference). Asserts the matching is one-to-one.
    """
    match = []
    for start in range(0, len(boxes), chunk):
        b = boxes[start : start + chunk]
        dist = torch.cdist(b.double(), ref_boxes.double(), p=float("inf"))
        bad = (classes[start : start + chunk, None] != ref_classes[None]) | (
            (scores[start : start + chunk, None] - ref_scores[None]).abs() > 1e-6
        )
        dist[bad] = float("inf")
        match.append(dist.argmin(dim=1))
    match = torch.cat(match) if match else torch.zeros(0, dtype=torch.long)
    assert len(torch.unique(match)) == len(match), "two detections matched the same reference"
    return match


@pytest.mark.parametrize("photo", photo_paths())
def test_detections_identical_on_real_photos(pair, photo):
    variant, official, ours = pair
    size = VARIANTS[variant][1]
    image = read_bgr(photo)
    expected, ratio = official_detect(official, image, size, 80, SCORE_THRESH, NMS_THRESH)
    assert len(expected) > 5, "the random reference model should detect something"

    inputs = [YOLOXTestMapper(image_size=size)({"file_name": photo, "image_id": 0})]
    with torch.no_grad():
        images = ours.preprocess_image(inputs)
        assert tuple(images.tensor.shape[-2:]) == (size, size)  # same 114 canvas as the official
        features, predictions = ours.run_network(images.tensor)
        raw = ours.forward_inference(images, features, predictions)[0]
        final = ours(inputs)[0]["instances"]

    # Same detections in network-input coordinates, in score order.
    assert len(raw) == len(expected)
    expected_scores = expected[:, 4] * expected[:, 5]
    torch.testing.assert_close(raw.scores, expected_scores.sort(descending=True).values, atol=1e-6, rtol=0)
    match = _match_detections(
        raw.pred_boxes.tensor, raw.scores, raw.pred_classes,
        expected[:, :4], expected_scores, expected[:, 6].long(),
    )
    torch.testing.assert_close(raw.pred_boxes.tensor, expected[match, :4], atol=1e-3, rtol=1e-5)

    # And in original-image coordinates: the official divides by the letterbox ratio; Detectron2
    # rescales by (original / resized) size per axis and clips to the image, which differs by
    # under a pixel.
    h, w = image.shape[:2]
    assert final.image_size == (h, w)
    expected = expected[match]  # in our order
    official_boxes = expected[:, :4] / ratio
    official_boxes[:, 0::2] = official_boxes[:, 0::2].clamp(0, w)
    official_boxes[:, 1::2] = official_boxes[:, 1::2].clamp(0, h)
    keep = (official_boxes[:, 2] > official_boxes[:, 0]) & (official_boxes[:, 3] > official_boxes[:, 1])
    assert len(final) == int(keep.sum())
    torch.testing.assert_close(final.pred_boxes.tensor, official_boxes[keep], atol=1.0, rtol=0)
    assert torch.equal(final.pred_classes, expected[keep, 6].long())


def test_convert_tool_gives_checkpoint_that_loads_cleanly(repo_root, tmp_path):
    """The CLI converts an official .pth; every key of the model is filled, none is left over."""
    from .official_reference import build_official_model, build_yolox_d2_model

    official = build_official_model("yolox-s", seed=3)
    src, dst = tmp_path / "official.pth", tmp_path / "d2.pth"
    torch.save({"model": official.state_dict(), "start_epoch": 10}, src)
    proc = subprocess.run(
        [sys.executable, str(repo_root / "tools" / "convert_yolox_weights.py"),
         "--config-file", str(repo_root / "configs" / "yolox_s.py"), str(src), str(dst)],
        capture_output=True, text=True, cwd=repo_root,
    )
    assert proc.returncode == 0, proc.stderr
    converted = torch.load(dst, weights_only=True)["model"]
    model = build_yolox_d2_model(repo_root, "s")
    assert set(converted) == set(model.state_dict())
    DetectionCheckpointer(model).load(str(dst))
    for k, v in model.state_dict().items():
        assert torch.equal(v, converted[k]), k
    assert len(converted) == len(official.state_dict())


def test_convert_tool_lists_unknown_and_missing_keys(repo_root, tmp_path):
    from .official_reference import build_official_model

    sd = build_official_model("yolox-nano").state_dict()
    sd["head.extra_layer.weight"] = torch.zeros(1)
    del sd["head.obj_preds.0.bias"]
    src = tmp_path / "official.pth"
    torch.save({"model": sd}, src)
    proc = subprocess.run(
        [sys.executable, str(repo_root / "tools" / "convert_yolox_weights.py"),
         "--config-file", str(repo_root / "configs" / "yolox_nano.py"), str(src), str(tmp_path / "out.pth")],
        capture_output=True, text=True, cwd=repo_root,
    )
    assert proc.returncode == 1
    output = proc.stdout + proc.stderr
    assert "Unexpected in the checkpoint (1): head.extra_layer.weight" in output
    assert "Missing in the checkpoint (1): head.obj_preds.0.bias" in output
    assert not (tmp_path / "out.pth").exists()


def test_convert_class_count_mismatch_says_how_to_fine_tune(repo_root):
    """80-class official weights into a 20-class model: the error gives the working path."""
    from yolox_d2.checkpoint import CheckpointMismatchError, convert_official_state_dict

    from .official_reference import build_official_model, build_yolox_d2_model

    official = build_official_model("yolox-nano").state_dict()
    model = build_yolox_d2_model(repo_root, "nano", num_classes=20)
    with pytest.raises(CheckpointMismatchError) as info:
        convert_official_state_dict(official, model)
    message = str(info.value)
    assert "The checkpoint predicts 80 classes, the model 20 (model.num_classes)" in message
    assert "Convert it at 80 classes (model.num_classes=80" in message
    assert "train.init_checkpoint and model.num_classes=20" in message
    assert "Shape mismatch: head.cls_preds.0.weight (80, 64, 1, 1) vs model head.cls_preds.0.weight (20, 64, 1, 1)" in message


def test_convert_tool_class_count_mismatch_exits_with_advice(repo_root, tmp_path):
    """The README's two-step path: the tool refuses 80 -> 20 classes and says what to do."""
    from .official_reference import build_official_model

    src = tmp_path / "official.pth"
    torch.save({"model": build_official_model("yolox-nano").state_dict()}, src)
    proc = subprocess.run(
        [sys.executable, str(repo_root / "tools" / "convert_yolox_weights.py"),
         "--config-file", str(repo_root / "configs" / "yolox_nano.py"), str(src), str(tmp_path / "out.pth"),
         "model.num_classes=20"],
        capture_output=True, text=True, cwd=repo_root,
    )
    assert proc.returncode == 1
    assert "The checkpoint predicts 80 classes, the model 20" in proc.stdout + proc.stderr
    assert not (tmp_path / "out.pth").exists()


def test_convert_message_without_class_advice_for_another_variant(repo_root):
    """A checkpoint of another variant differs in more than the classes: no fine-tuning advice."""
    from yolox_d2.checkpoint import CheckpointMismatchError, convert_official_state_dict

    from .official_reference import build_official_model, build_yolox_d2_model

    with pytest.raises(CheckpointMismatchError) as info:
        convert_official_state_dict(build_official_model("yolox-nano").state_dict(), build_yolox_d2_model(repo_root, "tiny"))
    assert "Shape mismatch" in str(info.value)
    assert "fine-tune" not in str(info.value)
