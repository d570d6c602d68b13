"""
OpenVINO IR export (yolox_d2.export.openvino_ir): IR files converted from the ONNX export of a
random-weight Nano, float32 weights, dynamic batch and size, outputs checked against PyTorch
(decoded and NMS graphs), and a clear error when they differ.
"""

import copy
import os

import numpy as np
import pytest
import torch

from yolox_d2.export import ExportVerificationError, YOLOXExportWrapper, export_onnx, letterbox_batch
from yolox_d2.export.openvino_ir import export_openvino, verify_openvino
from yolox_d2_runtime import OpenVINOEngine

from .conftest import photo_paths
from .official_reference import read_bgr
from .random_weights import random_yolox

ov = pytest.importorskip("openvino", reason="OpenVINO tests need `pip install openvino` (the deploy / dev extras)")

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:Exporting aten:UserWarning"),
]


@pytest.fixture(scope="module")
def nano(repo_root):
    """Nano with tiny float32 rounding: outputs compared at 1e-3."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield random_yolox(repo_root, "yolox_nano.py", seed=2, flavour="official").fuse()
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def decoded(nano, tmp_path_factory):
    out = tmp_path_factory.mktemp("openvino")
    wrapper = YOLOXExportWrapper(nano, "decoded")
    onnx_path = export_onnx(wrapper, out / "nano.onnx", sample_size=320)
    result = export_openvino(onnx_path, out / "ir", reference=wrapper, verify_shapes=[(1, 320), (2, 256)])
    return wrapper, result, onnx_path


def test_ir_is_written_in_float32_and_matches_pytorch(decoded):
    _, result, _ = decoded
    assert result.xml_path.endswith(os.path.join("ir", "nano.xml"))
    assert os.path.isfile(result.xml_path) and os.path.isfile(result.xml_path[: -len(".xml")] + ".bin")
    assert 0.0 <= result.max_abs_difference <= 1e-2
    model = ov.Core().read_model(result.xml_path)
    assert model.input(0).get_partial_shape().is_dynamic
    assert [o.get_any_name() for o in model.outputs] == ["predictions"]
    element_types = {op.get_output_element_type(0).get_type_name() for op in model.get_ops() if op.get_type_name() == "Constant"}
    assert "f16" not in element_types


def test_ir_runs_on_photos_like_pytorch(decoded):
    wrapper, result, _ = decoded
    batch, _ = letterbox_batch([read_bgr(p) for p in photo_paths()], (320, 416))
    with torch.no_grad():
        expected = wrapper(torch.from_numpy(batch)).numpy()
    got = OpenVINOEngine(result.xml_path, num_threads=1)(batch)[0]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)
    # a static-size compilation (as the runtime and the benchmark use) gives the same
    static = OpenVINOEngine(result.xml_path, num_threads=1, input_size=(320, 416))
    assert static.input_shape == (None, 3, 320, 416)
    np.testing.assert_allclose(static(batch)[0], got, rtol=1e-4, atol=1e-4)


def test_nms_graph_converts_and_matches_pytorch(nano, tmp_path):
    wrapper = YOLOXExportWrapper(nano, "nms", score_thresh=0.3, nms_thresh=0.65, max_detections=50)
    onnx_path = export_onnx(wrapper, tmp_path / "nano_nms.onnx", sample_size=320)
    result = export_openvino(onnx_path, tmp_path, reference=wrapper, verify_shapes=[(2, 320)])
    assert result.max_abs_difference <= 1e-2
    assert [o.get_any_name() for o in ov.Core().read_model(result.xml_path).outputs] == ["detections"]


def test_a_wrong_ir_is_reported(nano, decoded, tmp_path):
    _, result, onnx_path = decoded
    other = copy.deepcopy(nano)
    with torch.no_grad():
        for conv in other.head.cls_preds:
            conv.bias.add_(1.0)
    with pytest.raises(ExportVerificationError, match="output predictions differs from PyTorch by up to"):
        verify_openvino(YOLOXExportWrapper(other, "decoded"), result.xml_path, shapes=[(1, 320)])
    assert export_openvino(onnx_path, tmp_path).max_abs_difference is None  # nothing to check against
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_openvino(tmp_path / "no_such_model.onnx", tmp_path)
