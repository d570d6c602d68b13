"""tools/export_model.py --int8 and --format openvino: the deployment exports from the command
line and from ``yolox_d2.export.export_model``."""
import os
import subprocess
import sys

import numpy as np
import pytest
from detectron2.config import LazyConfig

from yolox_d2.export import export_model, onnxruntime_session, run_onnx

pytest.importorskip("onnxruntime", reason="the export tests need onnxruntime (the dev extras)")

TREES = "configs/deepforest/yolox_nano_trees.py"


def _tool(repo_root, *args):
    proc = subprocess.run(
        [sys.executable, str(repo_root / "tools" / "export_model.py"), "--config-file", str(repo_root / TREES), *args],
        capture_output=True,
        text=True,
        cwd=repo_root,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_int8_from_the_command_line_writes_both_graphs_and_reports_agreement(repo_root, tmp_path):
    out = tmp_path / "nano.onnx"
    rc, log = _tool(
        repo_root, "--output", str(out), "--size", "256", "--int8",
        "--calib-dataset", "deepforest_trees_val", "--calib-images", "3",
    )
    assert rc == 0, log
    int8 = tmp_path / "nano_int8.onnx"
    assert out.is_file() and int8.is_file()
    assert "3 calibration images" in log and "INT8 vs fp32" in log
    # the INT8 graph runs and has the float graph's output layout
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 256, 256)).astype(np.float32)
    (fp32,), (q,) = run_onnx(onnxruntime_session(str(out)), x), run_onnx(onnxruntime_session(str(int8)), x)
    assert q.shape == fp32.shape and np.isfinite(q).all()


def test_int8_options_are_checked_before_anything_is_built(repo_root, tmp_path):
    rc, log = _tool(repo_root, "--output", str(tmp_path / "a.onnx"), "--int8")
    assert rc == 2 and "int8 needs calib_dataset" in log
    rc, log = _tool(repo_root, "--output", str(tmp_path / "a.ts"), "--int8", "--calib-dataset", "x")
    assert rc == 2 and "int8 quantizes an ONNX graph (onnxruntime) or an OpenVINO IR (NNCF)" in log


def test_openvino_export_is_verified_against_pytorch(repo_root, tmp_path):
    pytest.importorskip("openvino", reason="openvino does not import here")
    cfg = LazyConfig.load(str(repo_root / TREES))
    out = tmp_path / "nano_openvino"
    xml = export_model(cfg, out, format="openvino", size=[256], verify=True)
    assert xml == str(out / "nano_openvino.xml")
    assert (out / "nano_openvino.xml").is_file() and (out / "nano_openvino.bin").is_file()
    assert (out / "nano_openvino.onnx").is_file()


def test_openvino_int8_from_the_command_line_writes_a_quantized_ir_and_reports_agreement(repo_root, tmp_path):
    ov = pytest.importorskip("openvino", reason="openvino does not import here")
    pytest.importorskip("nncf", reason="nncf does not import here")
    out = tmp_path / "nano_ov"
    rc, log = _tool(
        repo_root, "--output", str(out), "--format", "openvino", "--size", "256", "--int8",
        "--calib-dataset", "deepforest_trees_val", "--calib-images", "3",
    )
    assert rc == 0, log
    fp32_xml, int8_xml = out / "nano_ov.xml", out / "nano_ov_int8.xml"
    assert fp32_xml.is_file() and int8_xml.is_file() and (out / "nano_ov_int8.bin").is_file()
    assert "3 calibration images" in log and "INT8 vs fp32" in log
    core = ov.Core()
    ops = {op.get_type_name() for op in core.read_model(str(int8_xml)).get_ops()}
    assert "FakeQuantize" in ops  # NNCF's int8 quantization points
    assert "FakeQuantize" not in {op.get_type_name() for op in core.read_model(str(fp32_xml)).get_ops()}
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 256, 256)).astype(np.float32)
    (fp32,) = core.compile_model(str(fp32_xml), "CPU")(x).values()
    (q,) = core.compile_model(str(int8_xml), "CPU")(x).values()
    assert q.shape == fp32.shape and np.isfinite(q).all()
