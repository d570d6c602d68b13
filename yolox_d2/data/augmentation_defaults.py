"""
The YOLOX augmentation recipe per model variant: the keyword arguments of
:class:`~yolox_d2.data.mosaic_dataset.MosaicMixupDataset` (plus the training ``image_size``)
for Nano, Tiny, S, M, L, X and Darknet53. The large-model row (L) also gives the dataset's
constructor defaults.
"""

from typing import Any, Dict

__all__ = ["YOLOX_AUGMENTATION_DEFAULTS", "yolox_augmentation_defaults"]

_BASE_AUG = dict(
    mosaic_prob=1.0,
    mixup_prob=1.0,
    enable_mixup=True,
    mosaic_scale=(0.1, 2.0),
    mixup_scale=(0.5, 1.5),
    degrees=10.0,
    translate=0.1,
    shear=2.0,
    hsv_prob=1.0,
    flip_prob=0.5,
)
_SMALL_AUG = dict(_BASE_AUG, enable_mixup=False, mosaic_scale=(0.5, 1.5))

#: Per-variant augmentation keyword arguments for
#: :class:`~yolox_d2.data.mosaic_dataset.MosaicMixupDataset` (plus the training
#: ``image_size``). S / Tiny / Nano use the weakened recipe of the YOLOX paper (no MixUp,
#: mosaic scale (0.5, 1.5); Nano mosaic prob 0.5). Note: the official
#: ``exps/default/yolox_s.py`` (0.3.0) keeps the full L/M/X recipe for S.
YOLOX_AUGMENTATION_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "nano": dict(_SMALL_AUG, mosaic_prob=0.5, image_size=(416, 416)),
    "tiny": dict(_SMALL_AUG, image_size=(416, 416)),
    "s": dict(_SMALL_AUG, image_size=(640, 640)),
    "m": dict(_BASE_AUG, image_size=(640, 640)),
    "l": dict(_BASE_AUG, image_size=(640, 640)),
    "x": dict(_BASE_AUG, image_size=(640, 640)),
    "darknet53": dict(_BASE_AUG, image_size=(640, 640)),
}


def yolox_augmentation_defaults(variant: str) -> Dict[str, Any]:
    """
    The recipe's :class:`~yolox_d2.data.mosaic_dataset.MosaicMixupDataset` keyword arguments
    for a model variant.

    Use as ``L(MosaicMixupDataset)(dataset_dicts=..., **yolox_augmentation_defaults("s"))``.

    Args:
        variant: one of ``nano, tiny, s, m, l, x, darknet53`` (case-insensitive, an optional
            ``yolox_`` / ``yolox-`` prefix is ignored).

    Returns:
        A new dict (safe to modify).
    """
    key = variant.lower()
    for prefix in ("yolox_", "yolox-"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    if key not in YOLOX_AUGMENTATION_DEFAULTS:
        raise KeyError(f"Unknown YOLOX variant {variant!r}; known: {sorted(YOLOX_AUGMENTATION_DEFAULTS)}")
    return dict(YOLOX_AUGMENTATION_DEFAULTS[key])
