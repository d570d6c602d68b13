"""
Convert checkpoints of the official YOLOX implementation (Megvii-BaseDetection/YOLOX) to
yolox_d2 models.

The mapping is derived from the target model itself: every parameter/buffer name of the
yolox_d2 model is translated, module by module, to the name the official code gives the same
tensor. So any yolox_d2 model built from the YOLOX parts (any variant, any number of classes)
can be matched key by key, and keys that do not line up are reported by name.
"""
import logging
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from ..layers import ConvBNAct, CSPLayer, DepthwiseSeparableConv
from ..modeling.backbone import YOLOFPN, YOLOPAFPN, DarknetResidual
from .class_predictions import class_prediction_keys

__all__ = ["official_key_map", "convert_official_state_dict", "CheckpointMismatchError"]

logger = logging.getLogger(__name__)

# Child-module renames: yolox_d2 attribute name -> official attribute name, per module type.
_CHILD_RENAMES: Dict[type, Dict[str, str]] = {
    YOLOPAFPN: {
        "bottom_up": "backbone",
        "lateral_conv5": "lateral_conv0",
        "top_down_csp4": "C3_p4",
        "lateral_conv4": "reduce_conv1",
        "top_down_csp3": "C3_p3",
        "downsample_conv3": "bu_conv2",
        "bottom_up_csp4": "C3_n3",
        "downsample_conv4": "bu_conv1",
        "bottom_up_csp5": "C3_n4",
    },
    YOLOFPN: {
        "bottom_up": "backbone",
        "reduce_conv5": "out1_cbl",
        "embed4": "out1",
        "reduce_conv4": "out2_cbl",
        "embed3": "out2",
    },
    CSPLayer: {"main_conv": "conv1", "short_conv": "conv2", "final_conv": "conv3", "blocks": "m"},
    DarknetResidual: {"conv1": "layer1", "conv2": "layer2"},
    DepthwiseSeparableConv: {"depthwise": "dconv", "pointwise": "pconv"},
}


class CheckpointMismatchError(ValueError):
    """
    The official checkpoint does not fit the model; the message lists the keys, and says what
    to do when the only difference is the number of classes.
    """


def _official_tensor_name(module: nn.Module, name: str) -> str:
    """Name of a parameter/buffer directly owned by ``module`` in the official code."""
    if isinstance(module, ConvBNAct):
        # official BaseConv: .conv (weight, bias) and .bn
        return f"conv.{name}"
    return name


def official_key_map(model: nn.Module) -> "OrderedDict[str, str]":
    """
    Returns ``{yolox_d2 state-dict key: official state-dict key}`` for every entry of
    ``model.state_dict()``.
    """
    mapping: "OrderedDict[str, str]" = OrderedDict()

    def visit(module: nn.Module, ours: str, theirs: str) -> None:
        for name, tensor in list(module.named_parameters(recurse=False)) + list(
            module.named_buffers(recurse=False)
        ):
            if name in module._non_persistent_buffers_set:
                continue
            mapping[ours + name] = theirs + _official_tensor_name(module, name)
        renames = _CHILD_RENAMES.get(type(module), {})
        for child_name, child in module.named_children():
            if isinstance(module, ConvBNAct) and child_name == "norm":
                visit(child, f"{ours}norm.", f"{theirs}bn.")
                continue
            visit(child, f"{ours}{child_name}.", f"{theirs}{renames.get(child_name, child_name)}.")

    visit(model, "", "")
    return mapping


def convert_official_state_dict(
    official: Mapping[str, torch.Tensor], model: nn.Module
) -> "OrderedDict[str, torch.Tensor]":
    """
    Translate an official YOLOX state dict (the ``"model"`` entry of an official ``.pth``) into
    ``model``'s state-dict names.

    Raises:
        CheckpointMismatchError: listing the official keys the model does not have
            ("unexpected"), the model keys absent from the checkpoint ("missing") and the keys
            whose shapes differ (e.g. a different number of classes).
    """
    mapping = official_key_map(model)
    target_shapes = {k: v.shape for k, v in model.state_dict().items()}
    converted: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    missing: List[str] = []
    mismatched: List[Tuple[str, str, tuple, tuple]] = []
    for ours, theirs in mapping.items():
        if theirs not in official:
            missing.append(f"{theirs} (for {ours})")
            continue
        tensor = official[theirs]
        if tuple(tensor.shape) != tuple(target_shapes[ours]):
            mismatched.append((theirs, ours, tuple(tensor.shape), tuple(target_shapes[ours])))
            continue
        converted[ours] = tensor
    expected = set(mapping.values())
    unexpected = sorted(k for k in official if k not in expected)
    if missing or unexpected or mismatched:
        lines = ["The official YOLOX checkpoint does not match the yolox_d2 model."]
        class_counts = _class_count_mismatch(model, missing, unexpected, mismatched)
        if class_counts is not None:
            lines.append(_class_count_advice(*class_counts))
        if missing:
            lines.append(f"Missing in the checkpoint ({len(missing)}): " + ", ".join(missing))
        if unexpected:
            lines.append(f"Unexpected in the checkpoint ({len(unexpected)}): " + ", ".join(unexpected))
        for theirs, ours, a, b in mismatched:
            lines.append(f"Shape mismatch: {theirs} {a} vs model {ours} {b}")
        raise CheckpointMismatchError("\n".join(lines))
    logger.info("Converted %d tensors from the official YOLOX checkpoint", len(converted))
    return converted


def _class_count_mismatch(
    model: nn.Module, missing: List[str], unexpected: List[str], mismatched: List[Tuple[str, str, tuple, tuple]]
) -> Optional[Tuple[int, int]]:
    """
    ``(checkpoint classes, model classes)`` when the only difference is the number of classes
    (class-prediction tensors differing in their first dimension), else None.
    """
    class_keys = class_prediction_keys(model)
    if missing or unexpected or not mismatched:
        return None
    if not all(ours in class_keys and a[1:] == b[1:] for _, ours, a, b in mismatched):
        return None
    checkpoint_classes = {a[0] for _, _, a, _ in mismatched}
    model_classes = {class_keys[ours] for _, ours, _, _ in mismatched}
    if len(checkpoint_classes) != 1 or len(model_classes) != 1:
        return None
    return checkpoint_classes.pop(), model_classes.pop()


def _class_count_advice(checkpoint_classes: int, model_classes: int) -> str:
    """What to do when a checkpoint of ``checkpoint_classes`` meets a model of ``model_classes``."""
    return (
        f"The checkpoint predicts {checkpoint_classes} classes, the model {model_classes} "
        f"(model.num_classes). Convert it at {checkpoint_classes} classes (model.num_classes="
        f"{checkpoint_classes}: the default of configs/yolox_*.py, as for the official COCO "
        "weights), then fine-tune with the converted file as train.init_checkpoint and "
        f"model.num_classes={model_classes}: loading re-initialises the class predictions "
        "and fills every other tensor from the checkpoint."
    )
