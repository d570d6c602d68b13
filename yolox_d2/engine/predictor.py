"""Single-image inference in the spirit of Detectron2's DefaultPredictor, for LazyConfigs."""

import logging
import os
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import instantiate
from detectron2.data import Metadata, MetadataCatalog

from ..data.transforms import letterbox_chw, to_hw
from ..modeling.test_time_augmentation import TTA_OPTIONS, YOLOXWithTTA
from ..utils.file_io import is_local_path, local_path
from .ema import ModelEMA
from .sliced_inference import SlicedDetector

__all__ = [
    "YOLOXPredictor",
    "build_inference_model",
    "resolve_device",
    "inference_image_size",
    "wrap_test_time_augmentation",
]

logger = logging.getLogger(__name__)


def resolve_device(device: Optional[str], cfg=None) -> str:
    """
    ``device``, else ``cfg.train.device``, else ``"cpu"``; a CUDA device falls back to the CPU
    (with a warning) when no GPU is present.
    """
    if not device and cfg is not None and "train" in cfg:
        device = cfg.train.get("device", None)
    device = str(device or "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("CUDA is not available: running on the CPU")
        device = "cpu"
    return device


def wrap_test_time_augmentation(model: nn.Module, options) -> nn.Module:
    """
    ``model`` wrapped in :class:`~yolox_d2.modeling.test_time_augmentation.YOLOXWithTTA` when
    ``options.enabled``, else ``model`` itself.

    Args:
        model: the detector, in eval mode.
        options: a mapping (a config node) with ``enabled`` and any of
            :data:`~yolox_d2.modeling.test_time_augmentation.TTA_OPTIONS` (the wrapper's
            arguments), or None.

    Raises:
        ValueError: ``options`` has a key that is neither ``enabled`` nor a wrapper argument.
    """
    if not options:
        return model
    options = OmegaConf.to_container(options, resolve=True) if OmegaConf.is_config(options) else dict(options)
    unknown = sorted(set(options) - set(TTA_OPTIONS) - {"enabled"})
    if unknown:
        raise ValueError(
            f"Unknown test_time_augmentation option(s) {unknown}; the options are {['enabled', *TTA_OPTIONS]}"
        )
    if not options.pop("enabled", False):
        return model
    wrapped = YOLOXWithTTA(model, **options).eval()
    logger.info(
        "Test-time augmentation: scales %s, flip %s, merge %s (%d passes per image)",
        list(wrapped.scales) or "as given",
        wrapped.flip,
        wrapped.merge,
        wrapped.num_passes,
    )
    return wrapped


def build_inference_model(cfg, device: Optional[str] = None, fuse: bool = True) -> nn.Module:
    """
    Instantiate ``cfg.model``, load ``cfg.train.init_checkpoint`` (its EMA weights when the
    checkpoint has them, i.e. an ``"ema"`` entry with ``updates > 0``), and return the model in
    eval mode, BatchNorm folded into the convolutions when ``fuse``. When the config has a
    ``test_time_augmentation`` node with ``enabled=True``, the model comes wrapped in
    :class:`~yolox_d2.modeling.test_time_augmentation.YOLOXWithTTA` with the node's other keys
    as arguments (:func:`wrap_test_time_augmentation`); ``--eval-only`` evaluates it, e.g.
    ``test_time_augmentation.enabled=True "test_time_augmentation.scales=[320,416,512]"``.

    Args:
        cfg: a LazyConfig with ``model`` and (optionally) ``train.init_checkpoint`` /
            ``train.device`` / ``test_time_augmentation``.
        device: where to put the model (see :func:`resolve_device`).
        fuse: call ``model.fuse()`` (same outputs up to float rounding, faster).

    Raises:
        FileNotFoundError: ``train.init_checkpoint`` names a local file that does not exist.
    """
    device = resolve_device(device, cfg)
    model = instantiate(cfg.model).to(device).eval()
    checkpoint = cfg.train.get("init_checkpoint", "") if "train" in cfg else ""
    if checkpoint:
        if is_local_path(checkpoint) and not os.path.isfile(local_path(checkpoint)):
            raise FileNotFoundError(f"Checkpoint {checkpoint!r} (train.init_checkpoint) does not exist")
        ema = ModelEMA(model)
        DetectionCheckpointer(model, ema=ema).load(checkpoint)
        if ema.updates > 0:
            logger.info("Using the EMA weights of %s (updates=%d)", checkpoint, ema.updates)
            model.load_state_dict(ema.model_state_dict(model))
        else:
            logger.info("Loaded the weights of %s (no EMA state in it)", checkpoint)
    else:
        logger.warning("cfg.train.init_checkpoint is empty: the model has random weights")
    if fuse and hasattr(model, "fuse"):
        model.fuse()
    return wrap_test_time_augmentation(model, cfg.get("test_time_augmentation", None))


def inference_image_size(cfg, default: Tuple[int, int] = (640, 640)) -> Tuple[int, int]:
    """The inference size ``(h, w)``: ``cfg.dataloader.test.mapper.image_size``, else the
    model's ``test_square_size``, else ``default``."""
    test = cfg.get("dataloader", {}).get("test") if "dataloader" in cfg else None
    mapper = test.get("mapper") if test is not None else None
    if mapper is not None and "image_size" in mapper:
        return to_hw(mapper.image_size)
    square = cfg.model.get("test_square_size", 0) if "model" in cfg else 0
    return to_hw(square) if square else to_hw(default)


def _test_metadata(cfg) -> Optional[Metadata]:
    test = cfg.get("dataloader", {}).get("test") if "dataloader" in cfg else None
    dataset = test.get("dataset") if test is not None else None
    if isinstance(dataset, str):
        return MetadataCatalog.get(dataset)
    return None


class YOLOXPredictor:
    """
    Build the model of a LazyConfig, load ``cfg.train.init_checkpoint`` (using the EMA weights
    when the checkpoint has them), and run it on one BGR image at a time::

        cfg = LazyConfig.load("configs/yolox_s.py")
        cfg.train.init_checkpoint = "yolox_s_d2.pth"
        predictor = YOLOXPredictor(cfg)
        instances = predictor(cv2.imread("photo.jpg"))["instances"]

    Preprocessing is the YOLOX letterbox of ``cfg.dataloader.test.mapper.image_size`` (as
    :class:`yolox_d2.data.YOLOXTestMapper`); the result is what the model returns for that
    input, in the original image's coordinates. ``metadata`` is the Detectron2 metadata of
    ``cfg.dataloader.test.dataset`` (class names), or None.

    With ``slice_size > 0`` an image is instead cut into overlapping ``slice_size`` tiles, each
    letterboxed to the same network input size, and the detections of the tiles are merged
    (:class:`~yolox_d2.engine.sliced_inference.SlicedDetector`): for images much larger than
    the network input.
    """

    def __init__(
        self,
        cfg,
        device: Optional[str] = None,
        fuse: bool = True,
        slice_size: int = 0,
        slice_overlap: float = 0.2,
        slice_whole_image: bool = False,
    ):
        """
        Args:
            cfg: a LazyConfig with ``model``, ``train.init_checkpoint`` and (optionally)
                ``dataloader.test`` (its mapper's ``image_size`` and dataset metadata) and
                ``test_time_augmentation`` (see :func:`build_inference_model`).
            device: where to run; default ``cfg.train.device`` ("cuda" falls back to "cpu"
                when no GPU is present).
            fuse: fold BatchNorm into the convolutions (faster, same outputs).
            slice_size: if > 0, sliced inference on tiles of this many pixels.
            slice_overlap: overlap of neighbouring tiles, a fraction of ``slice_size`` in [0, 1).
            slice_whole_image: with slicing, also run once on the whole image and merge it in.
        """
        self.device = resolve_device(device, cfg)
        self.model = build_inference_model(cfg, self.device, fuse=fuse)
        self.image_size = inference_image_size(cfg)
        self.metadata = _test_metadata(cfg)
        self.sliced: Optional[SlicedDetector] = None
        if slice_size > 0:
            self.sliced = SlicedDetector(
                self.model, self.image_size, slice_size, slice_overlap, whole_image=slice_whole_image
            )

    @torch.no_grad()
    def __call__(self, image_bgr: np.ndarray) -> Dict[str, Any]:
        """
        Args:
            image_bgr: (H, W, 3) uint8 BGR image (as read by ``cv2.imread``).

        Returns:
            ``{"instances": Instances}`` in the image's coordinates.
        """
        if not isinstance(image_bgr, np.ndarray) or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise ValueError(
                "YOLOXPredictor expects an (H, W, 3) BGR numpy image, got "
                f"{type(image_bgr).__name__} {getattr(image_bgr, 'shape', '')}"
            )
        if self.sliced is not None:
            return self.sliced(image_bgr)
        height, width = image_bgr.shape[:2]
        chw, _ = letterbox_chw(image_bgr, self.image_size)
        tensor = torch.from_numpy(chw)
        return self.model([{"image": tensor, "height": height, "width": width}])[0]
