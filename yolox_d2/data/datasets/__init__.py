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
