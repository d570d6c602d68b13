"""SGD of the YOLOX recipe: nesterov, momentum 0.9, weight decay 5e-4 on conv/linear weights only."""
import torch

from detectron2.config import LazyCall as L
from detectron2.solver.build import get_default_optimizer_params

SGD = L(torch.optim.SGD)(
    params=L(get_default_optimizer_params)(
        # params.model is set to the model object before instantiating the optimizer.
        weight_decay_norm=0.0,
        weight_decay_bias=0.0,
    ),
    # None: train.schedule.base_lr (0.01) per train.schedule.base_batch_size (64) images, scaled
    # linearly with dataloader.train.total_batch_size at start-up; a value set here wins
    lr=None,
    momentum=0.9,
    nesterov=True,
    weight_decay=5e-4,
)
