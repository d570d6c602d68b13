"""
Random-weight yolox_d2 models for the export and demo tests, in two flavours:

* ``"official"``: BatchNorm statistics drawn at random, as ``tests/official_reference.py`` does.
  The activations saturate, so the outputs barely depend on the image (their spread across
  images is ~1e-7), but float32 rounding stays tiny: raw outputs of two implementations agree
  to ~1e-6, which checks the graph structure (layouts, anchor order, decoding) at 1e-4.
* ``"calibrated"``: BatchNorm statistics measured on the scikit-image photos. The detections
  then depend on the image (different counts, classes and boxes per photo), which is what a
  detection comparison needs; but a deep random network amplifies float32 rounding: PyTorch's
  own float32 logits differ from float64 by ~1e-3, and so do onnxruntime's.
"""

from pathlib import Path

import cv2
import torch
from torch import nn

from detectron2.config import LazyConfig, instantiate

from yolox_d2.export import letterbox_batch

from .conftest import photo_paths

FLAVOURS = ("official", "calibrated")


def calibration_batch(size: int = 320) -> torch.Tensor:
    """The scikit-image photos letterboxed into a (3, 3, size, size) 0-255 batch."""
    images = [cv2.imread(p, cv2.IMREAD_COLOR) for p in photo_paths()]
    return torch.from_numpy(letterbox_batch(images, size)[0])


def randomize_yolox(model: nn.Module, seed: int = 0, flavour: str = "official") -> nn.Module:
    """
    Randomise the BatchNorm layers (see the module docstring for the two ``flavour`` s) and
    spread the class / objectness biases over [-2.5, 0.5] so that there are detections.
    Returns ``model`` in eval mode.
    """
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {FLAVOURS}, got {flavour!r}")
    generator = torch.Generator().manual_seed(seed)

    def uniform_(t: torch.Tensor, lo: float, hi: float) -> None:
        t.copy_(torch.rand(t.shape, generator=generator) * (hi - lo) + lo)

    with torch.no_grad():
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        for m in norms:
            uniform_(m.weight, 0.5, 1.5)
            uniform_(m.bias, -0.2, 0.2)
            if flavour == "official":
                uniform_(m.running_mean, -0.2, 0.2)
                uniform_(m.running_var, 0.5, 2.0)
            else:
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the calibration pass
        if flavour == "calibrated":
            model.train()
            features = model.backbone(calibration_batch())
            model.head([features[f] for f in model.head_in_features])
            for m in norms:
                m.momentum = 0.03
        for conv in list(model.head.cls_preds) + list(model.head.obj_preds):
            uniform_(conv.bias, -2.5, 0.5)
    return model.eval()


def random_yolox(
    repo_root: Path, config: str, seed: int = 0, flavour: str = "official", **model_overrides
) -> nn.Module:
    """``configs/<config>`` instantiated with seeded random weights (see :func:`randomize_yolox`)."""
    cfg = LazyConfig.load(str(repo_root / "configs" / config))
    for key, value in model_overrides.items():
        setattr(cfg.model, key, value)
    torch.manual_seed(seed)
    return randomize_yolox(instantiate(cfg.model), seed, flavour)
