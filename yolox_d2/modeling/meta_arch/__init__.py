from .coupled_head import CoupledHead
from .yolox import YOLOX
from .yolox_head import YOLOXHead

__all__ = ["CoupledHead", "YOLOX", "YOLOXHead"]
