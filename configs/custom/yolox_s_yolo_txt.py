"""
YOLOX-S on a dataset in the YOLO txt format (Ultralytics layout: ``data.yaml`` with ``names``,
``train``, ``val``; ``images/`` and ``labels/`` folders), see
:mod:`yolox_d2.data.datasets.yolo_txt`::

    python tools/lazyconfig_train_net.py --config-file configs/custom/yolox_s_yolo_txt.py \\
        dataset.data_yaml=/data/my_dataset/data.yaml

registers ``<dataset.name>_train`` / ``<dataset.name>_val`` (default ``own_yolo_*``) from the
yaml's ``train`` / ``val``; the number of classes is the yaml's ``names``. Settings shared with
the other formats (schedule, evaluation, background images...): ``yolox_s_own_data.py``.
"""
from detectron2.config import LazyCall as L

from yolox_d2.data.datasets import num_thing_classes, register_yolo_txt_split

from .yolox_s_own_data import dataloader, lr_multiplier, model, optimizer, train

# the user's data: override on the command line (dataset.data_yaml=...); "???" = required
dataset = dict(data_yaml="???", name="own_yolo")

_train = L(register_yolo_txt_split)(name_prefix="${dataset.name}", data_yaml="${dataset.data_yaml}", split="train")
dataloader.train.dataset.dataset_dicts.names = _train
model.num_classes = L(num_thing_classes)(dataset_name=_train)
dataloader.test.dataset = L(register_yolo_txt_split)(
    name_prefix="${dataset.name}", data_yaml="${dataset.data_yaml}", split="val"
)
train.output_dir = "./output/yolox_s_yolo_txt"
