"""DistributedDataParallel wrapping that also works for CPU (gloo) training."""
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from detectron2.engine.defaults import create_ddp_model as _d2_create_ddp_model
from detectron2.utils import comm

__all__ = ["create_ddp_model"]


def create_ddp_model(model: nn.Module, *, fp16_compression: bool = False, **kwargs) -> nn.Module:
    """
    Detectron2's :func:`create_ddp_model`, except that a model on the CPU is wrapped without
    ``device_ids`` (DDP rejects them for CPU modules, so Detectron2's version cannot run
    ``--num-gpus 2`` on a CPU machine with gloo). Returns ``model`` itself in a single process.
    """
    if comm.get_world_size() == 1:
        return model
    device = next(model.parameters()).device
    if device.type != "cpu":
        return _d2_create_ddp_model(model, fp16_compression=fp16_compression, **kwargs)
    kwargs.pop("device_ids", None)
    return DistributedDataParallel(model, **kwargs)
