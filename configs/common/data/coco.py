"""COCO 2017 with the YOLOX data pipeline: Mosaic/MixUp training, letterbox test, COCO AP."""
from omegaconf import OmegaConf

from detectron2.config import LazyCall as L

from yolox_d2.data import (
    MosaicMixupDataset,
    YOLOXTestMapper,
    build_yolox_test_loader,
    build_yolox_train_loader,
    get_validated_dataset_dicts,
    yolox_augmentation_defaults,
)
from yolox_d2.evaluation import FasterCOCOEvaluator

dataloader = OmegaConf.create()

# The augmentation and input size of YOLOX-L; each variant config takes its own from
# yolox_augmentation_defaults(variant) (S/Tiny/Nano: no MixUp, milder mosaic scale).
dataloader.train = L(build_yolox_train_loader)(
    dataset=L(MosaicMixupDataset)(
        # validated against each dataset's metadata: bad boxes / files dropped, with a summary
        dataset_dicts=L(get_validated_dataset_dicts)(names="coco_2017_train"),
        # image_size: the one input size; the test letterbox below (and the model's
        # test_square_size in configs/yolox_l.py) follow it
        **yolox_augmentation_defaults("l"),
    ),
    total_batch_size=64,
    num_workers=4,
    seed=None,  # None: the sampler's seed is drawn from the (train.seed-seeded) global RNG
)

dataloader.test = L(build_yolox_test_loader)(
    dataset="coco_2017_val",
    mapper=L(YOLOXTestMapper)(image_size="${...train.dataset.image_size}"),
    batch_size=1,
    num_workers=4,
)

# Detectron2's COCOEvaluator, scored by faster-coco-eval (same AP, ~10x faster than pycocotools;
# backend="pycocotools" for Detectron2's own scoring)
dataloader.evaluator = L(FasterCOCOEvaluator)(
    dataset_name="${..test.dataset}",
    output_dir="${...train.output_dir}",
    # never reuse a COCO json converted earlier: a stale one silently gives wrong AP
    allow_cached_coco=False,
)
