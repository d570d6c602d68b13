#!/usr/bin/env python
"""yolox_d2: YOLOX as a Detectron2 plugin.

Install into an environment that already has PyTorch and Detectron2 with ``pip install -e .``;
``make test`` / ``make demo`` build a complete virtualenv (see README.md).
"""
from setuptools import find_packages, setup

setup(
    name="yolox_d2",
    version="0.1.0",
    description="YOLOX (Exceeding YOLO Series in 2021) as a Detectron2 plugin",
    python_requires=">=3.8",
    packages=find_packages(include=["yolox_d2", "yolox_d2.*", "yolox_d2_runtime"]),
    # Detectron2 itself is not listed: it is published under several names (official source
    # builds, sal-detectron2, ...) and an existing install must never be replaced.
    install_requires=[
        "torch>=1.10",
        "torchvision",
        "numpy",
        "opencv-python",
        "pycocotools",
        "fvcore",
        "iopath",
        "omegaconf",
    ],
    extras_require={
        # Test-time only. The official `yolox==0.3.0` (parity reference) additionally needs
        # `pip install --no-deps --no-build-isolation yolox==0.3.0` (its setup.py imports torch).
        "dev": [
            "pytest",
            "scikit-image",
            "loguru",
            "thop",
            "tabulate",
            "psutil",
            "ninja",
            "hypothesis",
            # ONNX export tests (tests/test_export.py). "numpy<2": without it pip resolves
            # onnx's ml_dtypes to 0.6+, which upgrades numpy past the <2 that Detectron2 needs.
            # Pinned as the "deploy" extra below (tests/test_quantize.py, test_openvino.py,
            # test_torch_free_runtime.py; bench/bench_deploy.py), verified with torch 2.14.1.
            "onnx==1.23.2",
            "onnxruntime==1.32.0",
            "openvino==2026.4.1",
            "nncf==3.4.0",
            "numpy<2",
        ],
        # Deployment (docs: yolox_d2.export.quantize, yolox_d2.export.openvino_ir,
        # yolox_d2_runtime): ONNX + INT8 (onnxruntime), OpenVINO IR; nncf only for the
        # OpenVINO INT8 comparison of bench/bench_deploy.py. None of them moves numpy past <2.
        "deploy": [
            "onnx==1.23.2",
            "onnxruntime==1.32.0",
            "openvino==2026.4.1",
            "nncf==3.4.0",
            "numpy<2",
        ],
    },
)
