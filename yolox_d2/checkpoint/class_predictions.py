"""
Fine-tuning on another number of classes: the class-prediction tensors of a checkpoint made
for C1 classes cannot fill a model with C2 classes. :func:`pop_mismatched_class_predictions`
takes them out of the state dict to load (the model keeps its freshly initialised ones) and
describes what it did in one line, so that every other tensor loads as usual and a shape
mismatch anywhere else is still reported by the checkpointer.
"""

from typing import Dict, List, MutableMapping, NamedTuple, Tuple

from torch import nn

from ..modeling.meta_arch import YOLOXHead

__all__ = ["ReinitializedClassPredictions", "class_prediction_keys", "pop_mismatched_class_predictions"]


class ReinitializedClassPredictions(NamedTuple):
    """
    Class-prediction tensors left out of a checkpoint load.

    Attributes:
        keys: the model's state-dict keys that keep their initial values.
        checkpoint_classes: the class counts found in the checkpoint (one, normally).
        model_classes: the model's class counts.
    """

    keys: List[str]
    checkpoint_classes: List[int]
    model_classes: List[int]

    def message(self) -> str:
        """One line naming the tensors and why they were re-initialised."""
        return (
            f"Re-initialised {len(self.keys)} class-prediction tensors ({', '.join(self.keys)}): "
            f"the checkpoint has {_counts(self.checkpoint_classes)} classes, the model has "
            f"{_counts(self.model_classes)} (model.num_classes); every other tensor is loaded "
            "from the checkpoint"
        )


def _counts(values: List[int]) -> str:
    return " / ".join(str(v) for v in values)


def class_prediction_keys(model: nn.Module) -> Dict[str, int]:
    """
    ``{state-dict key: number of classes}`` of the per-level class-prediction convolutions
    (``cls_preds.<level>.weight`` / ``.bias``) of every :class:`YOLOXHead` in ``model``: the
    tensors whose first dimension is the number of classes.
    """
    keys: Dict[str, int] = {}
    for name, module in model.named_modules():
        if not isinstance(module, YOLOXHead):
            continue
        prefix = f"{name}." if name else ""
        for level, conv in enumerate(module.cls_preds):
            for tensor_name, _ in conv.named_parameters(recurse=False):
                keys[f"{prefix}cls_preds.{level}.{tensor_name}"] = int(module.num_classes)
    return keys


def pop_mismatched_class_predictions(
    state_dict: MutableMapping[str, object], model: nn.Module
) -> ReinitializedClassPredictions:
    """
    Remove from ``state_dict`` (a checkpoint's ``"model"`` entry, keys without a ``module.``
    prefix) the class-prediction tensors of ``model`` (:func:`class_prediction_keys`) whose
    shape differs from the model's **only** in the number of classes (first dimension).
    A tensor differing in any other dimension is left in place, for the checkpointer to
    report as a real mismatch.

    Args:
        state_dict: modified in place.
        model: the model about to be loaded.

    Returns:
        What was removed (``keys`` is empty when nothing was).
    """
    target = model.state_dict()
    removed: List[str] = []
    found: List[Tuple[int, int]] = []
    for key, model_classes in class_prediction_keys(model).items():
        if key not in state_dict or key not in target:
            continue
        shape = tuple(getattr(state_dict[key], "shape", ()))
        expected = tuple(target[key].shape)
        if len(shape) == len(expected) and shape[1:] == expected[1:] and shape[:1] != expected[:1]:
            del state_dict[key]
            removed.append(key)
            found.append((int(shape[0]), model_classes))
    return ReinitializedClassPredictions(
        keys=removed,
        checkpoint_classes=sorted({c for c, _ in found}),
        model_classes=sorted({m for _, m in found}),
    )
