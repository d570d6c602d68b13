"""
YOLOX-S on a user's own dataset: the settings shared by the configs of this folder, which
only say where the data is (``yolox_s_coco_json.py``, ``yolox_s_voc.py``,
``yolox_s_yolo_txt.py``). Not usable alone: ``dataloader.train.dataset.dataset_dicts.names``,
``dataloader.test.dataset`` and ``model.num_classes`` are set by them.

How the datasets follow the command line: LazyConfig applies ``key=value`` overrides after
loading this file, so nothing is registered here. Each format config puts a *call* of its
register function in the dataset names, e.g. ``names=L(register_yolo_txt_split)(data_yaml=
"${dataset.data_yaml}", ...)``, with its arguments interpolated from the top-level ``dataset``
node the user overrides (``dataset.data_yaml=...``); the call runs when the trainer
instantiates the config, registers the dataset (again: no-op) and returns its name. The same
call is copied wherever the name is needed (nothing interpolates into
``dataloader.train.dataset``, which the training tool replaces by the built dataset).

- ``model.num_classes`` follows the class list: the format configs set it to
  ``L(num_thing_classes)`` of the training set, i.e. ``len(thing_classes)`` of its metadata
  (the ``names`` of a data.yaml, ``dataset.class_names`` for VOC, the json's categories for
  COCO). ``model.num_classes=N`` overrides it; the training set's validation then stops with
  an error naming both counts when ``N`` differs from the class list. (OmegaConf has no
  ``len`` interpolation; the call runs at start-up, after the overrides.)
- The evaluator (``COCOEvaluator``, COCO AP) and the test loader use the val split.
- Images without any box are trained on as background images (``filter_empty=False``, as
  YOLOX and Ultralytics do).
- Length: 100 epochs of the training set (``train.schedule``: warm-up 5, no-augmentation last
  15, evaluation and checkpoint every 10), resolved at start-up from the number of training
  images and the batch (16), with the official lr 0.01 per 64 images (0.0025). An explicit
  ``train.max_iter=N`` compresses that schedule into N iterations; ``train.schedule.epochs=N``
  changes its length in epochs.
- From scratch by default; to fine-tune official weights, convert them
  (``tools/convert_yolox_weights.py``) and set ``train.init_checkpoint=yolox_s_d2.pth``: the
  class-prediction tensors, whose shape differs, are re-initialised, with one log line naming
  them (``yolox_d2.checkpoint.AtomicDetectionCheckpointer``).
- ``train.device=cpu`` to train without a GPU (slow: see ``configs/deepforest/`` for a
  CPU-sized YOLOX-Nano setting).
"""
from ..yolox_s import dataloader, lr_multiplier, model, optimizer, train

BATCH = 16

model.test_score_thresh = 0.001  # COCO-style evaluation

dataloader.train.dataset.dataset_dicts.filter_empty = False
dataloader.train.dataset.dataset_dicts.num_classes = "${model.num_classes}"
dataloader.train.total_batch_size = BATCH
dataloader.test.num_workers = 2
# dataloader.evaluator.dataset_name is "${..test.dataset}" (configs/common/data/coco.py): the val split

train.output_dir = "./output/yolox_s_own_data"
train.schedule.update(epochs=100, warmup_epochs=5, no_aug_epochs=15, eval_every_epochs=10, checkpoint_every_epochs=10)
