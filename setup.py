#!/usr/bin/env python
"""yolox_d2: YOLOX as a Detectron2 plugin.

Install into an environment that already has PyTorch and Detectron2 with ``pip install -e .``;
``make test`` / ``make demo`` build a complete virtualenv (see README.md).
"""
import glob
import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class build_py_with_configs(build_py):  # noqa: N801  (a setuptools command name)
    """
    Also copy the LazyConfig files of ``configs/`` into ``yolox_d2/model_zoo/configs`` of the
    built package, as Detectron2 ships its ``configs/`` in ``detectron2/model_zoo``. Editable
    installs read the checkout's ``configs/`` directly (see ``yolox_d2.model_zoo``).
    """

    def run(self):
        super().run()
        destination = os.path.join(self.build_lib, "yolox_d2", "model_zoo", "configs")
        for source in sorted(glob.glob(os.path.join(HERE, "configs", "**", "*.py"), recursive=True)):
            target = os.path.join(destination, os.path.relpath(source, os.path.join(HERE, "configs")))
            self.mkpath(os.path.dirname(target))
            self.copy_file(source, target)


setup(
    name="yolox_d2",
    version="0.1.0",
    description="YOLOX (Exceeding YOLO Series in 2021) as a Detectron2 plugin",
    python_requires=">=3.8",
    packages=find_packages(include=["yolox_d2", "yolox_d2.*", "yolox_d2_runtime"]),
    cmdclass={"build_py": build_py_with_configs},
    # Detectron2 itself is not listed: it is published under several names (official source
    # builds, sal-detectron2, ...) and an existing install must never be replaced.
    install_requires=[
        "torch>=1.10",
        "torchvision",
        "numpy",
        "opencv-python",
        "pycocotools",
        # COCO AP in C++ (yolox_d2.evaluation.FasterCOCOEvaluator): same AP as pycocotools, ~10x faster
        "faster-coco-eval==1.8.0",
        "fvcore",
        "iopath",
        "omegaconf",
        # JPEG decoding (yolox_d2/data/jpeg_decode.py): libjpeg-turbo bundled in the wheel,
        # no system library; pixels identical to PIL's (tests/test_image_decode.py).
        "simplejpeg>=1.9,<2",
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
