"""
Where the yolox_d2 LazyConfig files are: ``yolox_d2/model_zoo/configs`` in an installed package
(``setup.py`` copies the repository's ``configs/`` there when it builds the package), else the
``configs/`` directory of the source checkout the package is imported from (editable installs,
``PYTHONPATH`` pointing at a checkout).

The files keep their layout, so their relative imports (``from ..common.train import ...``,
``from .yolox_l import ...``) work from either place.
"""

import os
from typing import List

from detectron2.config import LazyConfig
from omegaconf import DictConfig

__all__ = ["config_dir", "list_configs", "get_config_file", "get_config"]

_PACKAGE_CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
# <checkout>/yolox_d2/model_zoo/model_zoo.py -> <checkout>/configs
_CHECKOUT_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs")


def config_dir() -> str:
    """
    The directory holding the configs: the package copy when there is one, else the
    source checkout's ``configs/``.

    Raises:
        FileNotFoundError: neither exists (a package built without its configs).
    """
    for directory in (_PACKAGE_CONFIGS, _CHECKOUT_CONFIGS):
        if os.path.isfile(os.path.join(directory, "yolox_l.py")):
            return directory
    raise FileNotFoundError(
        f"No yolox_d2 configs: neither {_PACKAGE_CONFIGS} (installed package) nor "
        f"{_CHECKOUT_CONFIGS} (source checkout) exists; reinstall yolox_d2 with its setup.py"
    )


def list_configs() -> List[str]:
    """Every config file, as a path relative to :func:`config_dir` (``"yolox_s.py"``, ``"mix/..."``)."""
    root = config_dir()
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        found += [os.path.relpath(os.path.join(dirpath, f), root) for f in filenames if f.endswith(".py")]
    return sorted(p.replace(os.sep, "/") for p in found)


def get_config_file(config_path: str) -> str:
    """
    The path of a yolox_d2 config file.

    Args:
        config_path: relative to the configs directory, e.g. ``"yolox_s.py"`` or
            ``"deepforest/yolox_nano_trees.py"``.

    Raises:
        FileNotFoundError: no such config; the message lists the available ones.
    """
    root = config_dir()
    path = os.path.normpath(os.path.join(root, config_path))
    if os.path.commonpath([path, root]) != root or not os.path.isfile(path):
        raise FileNotFoundError(
            f"{config_path!r} is not a yolox_d2 config (in {root}); available: " + ", ".join(list_configs())
        )
    return path


def get_config(config_path: str) -> DictConfig:
    """
    Load a yolox_d2 LazyConfig, e.g. ``get_config("yolox_s.py")`` (see :func:`get_config_file`).
    The result is a fresh copy: changing it does not change later loads.
    """
    return LazyConfig.load(get_config_file(config_path))
