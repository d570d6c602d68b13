"""
YOLOX-S on a dataset in COCO's json format (any category ids), see
:mod:`yolox_d2.data.datasets.coco_json`::

    python tools/lazyconfig_train_net.py --config-file configs/custom/yolox_s_coco_json.py \\
        dataset.train_json=/data/my/annotations/train.json dataset.train_images=/data/my/train \\
        dataset.val_json=/data/my/annotations/val.json dataset.val_images=/data/my/val

registers ``<dataset.name>_train`` / ``<dataset.name>_val`` (default ``own_coco_*``); the
classes are the train json's ``categories`` (the val json must declare the same: checked at
start-up, so ``--eval-only`` reads the train json too), and the evaluation scores against the
val json itself. Settings shared with the other formats: ``yolox_s_own_data.py``.
"""
from detectron2.config import LazyCall as L

from yolox_d2.data.datasets import check_same_thing_classes, num_thing_classes, register_coco_json

from .yolox_s_own_data import dataloader, lr_multiplier, model, optimizer, train

# the user's data: override on the command line; "???" = required
dataset = dict(train_json="???", train_images="???", val_json="???", val_images="???", name="own_coco")

_train = L(register_coco_json)(
    name="${dataset.name}_train", json_file="${dataset.train_json}", image_root="${dataset.train_images}"
)
dataloader.train.dataset.dataset_dicts.names = _train
model.num_classes = L(num_thing_classes)(dataset_name=_train)
# the val json must declare the categories of the train json: checked at start-up
dataloader.test.dataset = L(check_same_thing_classes)(
    dataset_name=L(register_coco_json)(
        name="${dataset.name}_val", json_file="${dataset.val_json}", image_root="${dataset.val_images}"
    ),
    reference=_train,
)
train.output_dir = "./output/yolox_s_coco_json"
