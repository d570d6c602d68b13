"""Shared plumbing of backbones made of named sequential stages."""
from typing import Dict, Sequence

import torch

from detectron2.layers import FrozenBatchNorm2d
from detectron2.modeling import Backbone

__all__ = ["SequentialStagesBackbone"]


class SequentialStagesBackbone(Backbone):
    """
    A backbone whose stages are submodules applied one after another. Subclasses build the
    stages, then call :meth:`_set_stages` with their names, strides and channels, and
    :meth:`freeze` with their ``freeze_at``.
    """

    def _set_stages(
        self,
        names: Sequence[str],
        strides: Sequence[int],
        channels: Sequence[int],
        out_features: Sequence[str],
    ) -> None:
        unknown = [f for f in out_features if f not in names]
        if unknown or not out_features:
            raise ValueError(
                f"{type(self).__name__} out_features {list(out_features)} must be a non-empty "
                f"subset of {list(names)}"
            )
        self._stage_names = tuple(names)
        self._out_feature_strides = dict(zip(names, strides))
        self._out_feature_channels = dict(zip(names, channels))
        self._out_features = [n for n in names if n in out_features]
        # Stages after the last requested one are never run.
        self._num_stages_to_run = max(names.index(f) for f in out_features) + 1

    def freeze(self, freeze_at: int = 0) -> "SequentialStagesBackbone":
        """
        Freeze the first ``freeze_at`` stages, as Detectron2's ``ResNet.freeze`` does: their
        parameters get ``requires_grad=False`` and their BatchNorm layers become
        :class:`~detectron2.layers.FrozenBatchNorm2d` (same buffers, fixed statistics even in
        training mode).

        Args:
            freeze_at: 0 freezes nothing, 1 the stem, ``k`` the stem and the ``k - 1`` stages
                after it (at most the number of stages).

        Returns:
            self.
        """
        freeze_at = int(freeze_at)
        if not 0 <= freeze_at <= len(self._stage_names):
            raise ValueError(
                f"{type(self).__name__} freeze_at must be in 0..{len(self._stage_names)} "
                f"(stages {list(self._stage_names)}), got {freeze_at}"
            )
        for name in self._stage_names[:freeze_at]:
            stage = getattr(self, name)
            for p in stage.parameters():
                p.requires_grad = False
            FrozenBatchNorm2d.convert_frozen_batchnorm(stage)
        return self

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        outputs = {}
        for name in self._stage_names[: self._num_stages_to_run]:
            x = getattr(self, name)(x)
            if name in self._out_features:
                outputs[name] = x
        return outputs
