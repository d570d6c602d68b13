"""YOLOX-L: depth 1.0, width 1.0, 640x640 (54.2M params, 155.6 GFLOPs, 49.7 COCO AP)."""
from .common.models.yolox import model
