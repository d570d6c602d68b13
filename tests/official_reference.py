"""Test-time helpers around the official YOLOX (PyPI ``yolox==0.3.0``): the parity reference."""
import cv2
import numpy as np
import torch
from torch import nn

from detectron2.config import LazyConfig, instantiate

from yolox_d2.checkpoint import convert_official_state_dict

# yolox_d2 config -> (official exp name, test size)
VARIANTS = {
    "nano": ("yolox-nano", 416),
    "tiny": ("yolox-tiny", 416),
    "s": ("yolox-s", 640),
    "darknet53": ("yolov3", 640),
}


def build_official_model(exp_name: str, seed: int = 0) -> nn.Module:
    """The official model with random weights, random BN statistics and spread-out score biases."""
    from yolox.exp import get_exp

    torch.manual_seed(seed)
    model = get_exp(None, exp_name).get_model()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        # Spread the class/objectness biases so random weights still give many detections.
        for conv in list(model.head.cls_preds) + list(model.head.obj_preds):
            conv.bias.uniform_(-2.5, 0.5)
    return model.eval()


def build_yolox_d2_model(repo_root, variant: str, **overrides) -> nn.Module:
    cfg = LazyConfig.load(str(repo_root / "configs" / f"yolox_{variant}.py"))
    for k, v in overrides.items():
        setattr(cfg.model, k, v)
    return instantiate(cfg.model)


def converted_pair(repo_root, variant: str, seed: int = 0, **overrides):
    """(official model, yolox_d2 model with the official weights converted), both in eval."""
    official = build_official_model(VARIANTS[variant][0], seed)
    ours = build_yolox_d2_model(repo_root, variant, **overrides)
    ours.load_state_dict(convert_official_state_dict(official.state_dict(), ours), strict=True)
    return official, ours.eval()


def official_preprocess(image_bgr: np.ndarray, size: int):
    """The official ValTransform (legacy=False): letterbox into a 114-filled square canvas."""
    from yolox.data.data_augment import ValTransform

    tensor, _ = ValTransform(legacy=False)(image_bgr, None, (size, size))
    ratio = min(size / image_bgr.shape[0], size / image_bgr.shape[1])
    return torch.from_numpy(tensor).unsqueeze(0), ratio


def official_detect(model, image_bgr, size, num_classes, conf, nms):
    """Official demo path: (N, 7) detections [x1, y1, x2, y2, obj, cls_conf, cls] in input coords."""
    from yolox.utils import postprocess

    tensor, ratio = official_preprocess(image_bgr, size)
    with torch.no_grad():
        out = model(tensor)
    det = postprocess(out, num_classes, conf, nms, class_agnostic=False)[0]
    if det is None:
        det = torch.zeros((0, 7))
    return det, ratio


def read_bgr(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    assert image is not None, path
    return image
