"""
A detector with exactly known output, for the sliced-inference and test-time augmentation
tests: it finds every blob of bright pixels (all channels > 127) and returns its bounding box,
in the interface of a Detectron2 model (``list[dict]`` in, ``[{"instances"}]`` out in the
``"height"`` / ``"width"`` coordinates, as YOLOX's ``detector_postprocess`` scales them).
"""

from typing import List

import cv2
import numpy as np
import torch
from torch import nn

from detectron2.structures import Boxes, Instances


class BrightBlobDetector(nn.Module):
    """Bounding boxes (pixel corners) of the 8-connected bright blobs, score 0.9, class 0."""

    test_nms_thresh = 0.65
    max_detections_per_image = 100

    def __init__(self):
        super().__init__()
        self.calls: List[int] = []  # batch size of every call

    def forward(self, batched_inputs):
        self.calls.append(len(batched_inputs))
        results = []
        for x in batched_inputs:
            image = x["image"].float().cpu().numpy()
            h, w = image.shape[-2:]
            height, width = x.get("height", h), x.get("width", w)
            mask = (image.min(axis=0) > 127).astype(np.uint8)
            count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            stats = stats[1:count]  # label 0 is the background
            boxes = np.stack(
                [stats[:, 0], stats[:, 1], stats[:, 0] + stats[:, 2], stats[:, 1] + stats[:, 3]], axis=1
            ).astype(np.float32).reshape(-1, 4)
            boxes *= np.array([width / w, height / h, width / w, height / h], dtype=np.float32)
            results.append(
                {
                    "instances": Instances(
                        (int(height), int(width)),
                        pred_boxes=Boxes(torch.from_numpy(boxes)),
                        scores=torch.full((len(boxes),), 0.9),
                        pred_classes=torch.zeros(len(boxes), dtype=torch.int64),
                    )
                }
            )
        return results


def draw_squares(height: int, width: int, boxes) -> np.ndarray:
    """A dark (H, W, 3) uint8 BGR image with a white filled rectangle for every XYXY box."""
    image = np.full((height, width, 3), 30, dtype=np.uint8)
    for x0, y0, x1, y1 in boxes:
        image[int(y0) : int(y1), int(x0) : int(x1)] = 255
    return image


def sorted_rows(boxes: torch.Tensor) -> torch.Tensor:
    """The rows of an (N, 4) tensor in lexicographic order (to compare box sets)."""
    rows = sorted(boxes.tolist())
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)
