"""
The LazyConfig files of yolox_d2 (the repository's ``configs/``), reachable from an installed
package the way :mod:`detectron2.model_zoo` serves Detectron2's::

    from yolox_d2.model_zoo import get_config
    cfg = get_config("yolox_s.py")
    model = get_config("yolox_nano.py").model  # in a user's own LazyConfig file
"""

from .model_zoo import config_dir, get_config, get_config_file, list_configs

__all__ = ["config_dir", "get_config", "get_config_file", "list_configs"]
