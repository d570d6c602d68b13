from .defaults import add_yolox_config

__all__ = ["add_yolox_config"]
