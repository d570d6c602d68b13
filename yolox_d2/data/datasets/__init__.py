"""
Bundled datasets. Importing this package registers (lazily, at no I/O cost):

* ``deepforest_trees_train`` / ``deepforest_trees_val``: aerial tree crowns from the
  ``deepforest`` PyPI package, tiled (see :mod:`.deepforest_trees`).

Reusable for other datasets: :mod:`.voc_xml` (Pascal-VOC annotation files next to their
photos) and :mod:`.tiling` (cutting large photos into overlapping tiles).
"""

from .deepforest_trees import (
    DEEPFOREST_INSTALL_COMMAND,
    load_deepforest_trees,
    prepare_deepforest_trees,
    register_deepforest_trees,
)

__all__ = [
    "DEEPFOREST_INSTALL_COMMAND",
    "load_deepforest_trees",
    "prepare_deepforest_trees",
    "register_deepforest_trees",
]

register_deepforest_trees()

# Users' own data (registered by calling these; see configs/custom/).
from .coco_json import load_coco_json_dataset, register_coco_json  # noqa: E402
from .registration import (  # noqa: E402
    DatasetRegistrationError,
    check_same_thing_classes,
    num_thing_classes,
    thing_classes_of,
)
from .voc_folders import load_voc_folders, register_voc_folders  # noqa: E402
from .yolo_txt import load_yolo_txt, register_yolo_txt, register_yolo_txt_split  # noqa: E402
__all__ += [
    "DatasetRegistrationError",
    "check_same_thing_classes",
    "load_coco_json_dataset",
    "load_voc_folders",
    "load_yolo_txt",
    "num_thing_classes",
    "register_coco_json",
    "register_voc_folders",
    "register_yolo_txt",
    "register_yolo_txt_split",
    "thing_classes_of",
]
