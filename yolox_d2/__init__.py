"""
yolox_d2: YOLOX ("YOLOX: Exceeding YOLO Series in 2021") as a Detectron2 plugin.

``import yolox_d2`` registers the CSPDarknet / Darknet53 backbones and the PAFPN / YOLOFPN
necks in ``BACKBONE_REGISTRY``, the ``YOLOX`` meta-architecture in ``META_ARCH_REGISTRY``,
and the bundled datasets in ``DatasetCatalog``.
"""
from . import checkpoint, data, engine, evaluation, layers, modeling, solver  # noqa: F401  (registration side effects)
from .config import add_yolox_config

__version__ = "0.1.0"
