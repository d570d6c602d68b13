from .yolox import YOLOX
from .yolox_head import YOLOXHead

__all__ = ["YOLOX", "YOLOXHead"]
