"""
The training batch of :class:`~yolox_d2.modeling.YOLOX`, between the inputs and the label
assignment: class-id checks, the multi-scale resize, padded ground-truth tensors and the
loss normalisers averaged over workers.
"""
from typing import Dict, List, Tuple

import torch
from torch import Tensor
from torch.nn import functional as F
from torch.nn.utils.rnn import pad_sequence

from detectron2.structures import Boxes, ImageList, Instances
from detectron2.utils import comm

__all__ = ["average_over_workers", "check_gt_classes", "pad_ground_truths", "resize_training_batch"]


def check_gt_classes(batched_inputs: List[Dict], gt_instances: List[Instances], num_classes: int) -> None:
    """Raise a clear error (file, image_id) for class ids outside ``[0, num_classes)``."""
    classes = [x.gt_classes for x in gt_instances]
    if not any(len(c) for c in classes):
        return
    bad = [(c < 0) | (c >= num_classes) for c in classes]
    if not bool(torch.cat(bad).any()):
        return
    for x, c, b in zip(batched_inputs, classes, bad):
        if bool(b.any()):
            raise ValueError(
                f"Training image {x.get('file_name')!r} (image_id={x.get('image_id')!r}) has "
                f"class ids {sorted(set(c[b].tolist()))} outside [0, {num_classes}) "
                f"(model num_classes={num_classes}); check the dataset's thing_classes "
                "against model.num_classes"
            )


def resize_training_batch(
    images: ImageList, gt_instances: List[Instances], size: Tuple[int, int]
) -> Tuple[ImageList, List[Instances]]:
    """Multi-scale training: bilinear-resize the batch to ``size`` (h, w), boxes alike."""
    if tuple(images.tensor.shape[-2:]) == tuple(size):
        return images, gt_instances
    h, w = images.tensor.shape[-2:]
    new_h, new_w = size
    tensor = F.interpolate(images.tensor, size=(new_h, new_w), mode="bilinear", align_corners=False)
    sy, sx = new_h / h, new_w / w
    image_sizes = [(round(ih * sy), round(iw * sx)) for ih, iw in images.image_sizes]
    scaled = []
    for inst, image_size in zip(gt_instances, image_sizes):
        new = Instances(image_size, **inst.get_fields())
        new.gt_boxes = Boxes(inst.gt_boxes.tensor * inst.gt_boxes.tensor.new_tensor([sx, sy, sx, sy]))
        scaled.append(new)
    return ImageList(tensor, image_sizes), scaled


def pad_ground_truths(gt_instances: List[Instances], device: torch.device) -> Tuple[Tensor, Tensor, Tensor]:
    """Pad per-image ground truths to (N, G, 4) boxes, (N, G) classes and (N, G) validity."""
    boxes = [x.gt_boxes.tensor.float() for x in gt_instances]
    classes = [x.gt_classes.long() for x in gt_instances]
    counts = torch.tensor([len(b) for b in boxes], device=device)
    if int(counts.max()) == 0:
        n = len(boxes)
        return (
            torch.zeros((n, 0, 4), device=device),
            torch.zeros((n, 0), dtype=torch.long, device=device),
            torch.zeros((n, 0), dtype=torch.bool, device=device),
        )
    gt_boxes = pad_sequence(boxes, batch_first=True)
    gt_classes = pad_sequence(classes, batch_first=True)
    gt_valid = torch.arange(gt_boxes.shape[1], device=device)[None, :] < counts[:, None]
    return gt_boxes, gt_classes, gt_valid


def average_over_workers(value: float, device: torch.device) -> float:
    """``value`` averaged over the distributed workers (itself when there is one), at least 1:
    the normaliser of a loss summed over positives."""
    total = torch.tensor(float(value), device=device)
    if comm.get_world_size() > 1:
        torch.distributed.all_reduce(total)
        total = total / comm.get_world_size()
    return max(float(total), 1.0)
