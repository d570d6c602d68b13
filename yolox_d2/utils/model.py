"""Reaching the user model inside data-parallel and ``torch.compile`` wrappers."""
from torch import nn

__all__ = ["unwrap_model"]

_WRAPPER_TYPES = (nn.parallel.DistributedDataParallel, nn.parallel.DataParallel)


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the user model inside data-parallel / compile wrappers.

    Unwraps (repeatedly) :class:`~torch.nn.parallel.DistributedDataParallel`,
    :class:`~torch.nn.DataParallel` (``.module``) and ``torch.compile`` wrappers
    (``._orig_mod``). Any other module is returned unchanged.

    Args:
        model: a model, possibly wrapped.

    Returns:
        The innermost wrapped module.
    """
    while True:
        if isinstance(model, _WRAPPER_TYPES):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model
