"""
YOLOX-Nano trained from scratch on the aerial tree photos shipped in deepforest==2.1.0
(datasets ``deepforest_trees_train`` / ``deepforest_trees_val``, registered by yolox_d2),
sized to train and evaluate on a 2-core CPU in about 10 minutes (``make demo``).
Trained from scratch (no pretrained weights can be downloaded), so AP stays modest.
"""
from ..yolox_nano import dataloader, lr_multiplier, model, optimizer, train

model.num_classes = 1
model.test_score_thresh = 0.001  # COCO-style evaluation

BATCH = 8
dataloader.train.dataset.dataset_dicts.names = "deepforest_trees_train"
dataloader.train.dataset.image_size = (416, 416)  # the test letterbox and the model follow it
dataloader.train.dataset.mosaic_prob = 1.0
dataloader.train.total_batch_size = BATCH
dataloader.train.num_workers = 2
dataloader.test.dataset = "deepforest_trees_val"
dataloader.test.num_workers = 0

train.output_dir = "./output/yolox_nano_trees"
train.device = "cpu"
train.seed = 0
train.log_period = 10
# The recipe's EMA (0.9998) averages over ~5000 iterations, longer than this whole run.
train.ema.update(decay=0.99, tau=50)
train.multiscale.random_size = (10, 16)  # 320-512
# 66 training tiles // 8 per batch = 8 iterations per epoch: 1000 iterations in all, lr 0.16 x 8 / 64
# = 0.02 (a short from-scratch run: 16x the official 0.01 per 64 images).
train.schedule.update(epochs=125, eval_every_epochs=125, checkpoint_every_epochs=125, base_lr=0.16)
