"""
Local paths versus remote URIs (``s3://``, ``manifold://``...), as Detectron2's ``PathManager``
names them: a local path can be ``stat``-ed, renamed atomically and ``fsync``-ed, a remote
one only opened through the ``PathManager``.
"""

import os
from typing import Union

__all__ = ["is_local_path", "local_path"]

_FILE_SCHEME = "file://"


def is_local_path(path: Union[str, os.PathLike]) -> bool:
    """Whether ``path`` is on the local file system (no URI scheme, or ``file://``)."""
    path = str(path)
    return "://" not in path or path.startswith(_FILE_SCHEME)


def local_path(path: Union[str, os.PathLike]) -> str:
    """``path`` as an operating-system path: a local path without its ``file://`` prefix."""
    path = str(path)
    return path[len(_FILE_SCHEME) :] if path.startswith(_FILE_SCHEME) else path
