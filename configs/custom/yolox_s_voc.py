"""
YOLOX-S on a dataset in Pascal VOC folders (``Annotations/*.xml``, ``JPEGImages/``,
``ImageSets/Main/<split>.txt``) with its own classes, see
:mod:`yolox_d2.data.datasets.voc_folders`::

    python tools/lazyconfig_train_net.py --config-file configs/custom/yolox_s_voc.py \\
        dataset.root=/data/VOCdevkit/VOC2012 'dataset.class_names=[cat,dog]'

registers ``<dataset.name>_<split>`` (default ``own_voc_train`` / ``own_voc_val``) from
``ImageSets/Main/<dataset.train_split>.txt`` / ``<dataset.val_split>.txt``; the number of
classes is ``len(dataset.class_names)``, and an object of another class is dropped (counted in
the summary). Settings shared with the other formats: ``yolox_s_own_data.py``.
"""
from detectron2.config import LazyCall as L

from yolox_d2.data.datasets import num_thing_classes, register_voc_folders

from .yolox_s_own_data import dataloader, lr_multiplier, model, optimizer, train

# the user's data: override on the command line; "???" = required
dataset = dict(root="???", class_names="???", train_split="train", val_split="val", name="own_voc")

_train = L(register_voc_folders)(
    name="${dataset.name}_${dataset.train_split}",
    root="${dataset.root}",
    split="${dataset.train_split}",
    class_names="${dataset.class_names}",
)
dataloader.train.dataset.dataset_dicts.names = _train
model.num_classes = L(num_thing_classes)(dataset_name=_train)
dataloader.test.dataset = L(register_voc_folders)(
    name="${dataset.name}_${dataset.val_split}",
    root="${dataset.root}",
    split="${dataset.val_split}",
    class_names="${dataset.class_names}",
)
train.output_dir = "./output/yolox_s_voc"
