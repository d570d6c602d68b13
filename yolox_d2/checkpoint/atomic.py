"""
Crash-safe checkpoints: :class:`AtomicDetectionCheckpointer` never leaves a half-written file
under a checkpoint's name, nor a ``last_checkpoint`` tag that points to one.

Every file is written to a temporary file in the same directory, flushed and ``fsync``-ed,
then renamed over the final name with :func:`os.replace` (atomic on POSIX and Windows within
one file system), and the directory is ``fsync``-ed so the rename survives a power loss.
``last_checkpoint`` is updated the same way, and only after the checkpoint it names is
complete. A process killed at any moment (``SIGKILL``, OOM killer, preemption) therefore
leaves the previous checkpoint and tag intact, plus at most a hidden temporary file, which the
next save removes.

Remote paths (``s3://``, ``manifold://``...) have no atomic rename: they are written with the
plain :class:`~detectron2.checkpoint.DetectionCheckpointer` behaviour.

Loading a checkpoint made for another number of classes (fine-tuning) leaves the model's
class-prediction tensors as initialised and says so in one line (see
:mod:`yolox_d2.checkpoint.class_predictions`); any other shape mismatch is reported as before.
"""

import logging
import os
import re
import secrets
from typing import IO, Any, Callable, Dict, Optional

import torch
from detectron2.checkpoint import DetectionCheckpointer
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from ..utils.file_io import is_local_path, local_path
from .class_predictions import pop_mismatched_class_predictions

__all__ = [
    "AtomicDetectionCheckpointer",
    "atomic_write",
    "atomic_torch_save",
    "remove_stale_temporaries",
]

logger = logging.getLogger(__name__)

# Temporary files: ".<final name>.<pid>.<random>.tmp-ckpt", hidden and recognisable.
_TMP_SUFFIX = ".tmp-ckpt"
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]+" + re.escape(_TMP_SUFFIX) + "$")


def _fsync_dir(directory: str) -> None:
    """Persist a rename in ``directory`` (best effort: not every file system supports it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str, write: Callable[[IO[bytes]], Any]) -> None:
    """
    Write a local file atomically: ``write(f)`` fills a temporary file in the same directory,
    which is flushed, ``fsync``-ed and renamed to ``path`` (the directory is ``fsync``-ed too).

    On any error (or interruption) ``path`` is untouched and the temporary file is removed
    (a ``SIGKILL`` can leave it behind: see :func:`remove_stale_temporaries`).

    Args:
        path: the final local path.
        write: called with a binary file object opened for writing.
    """
    path = local_path(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(
        directory, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}{_TMP_SUFFIX}"
    )
    # 0o666 & ~umask, like open(path, "wb")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def atomic_torch_save(data: Any, path: str, path_manager: Optional[Any] = None) -> None:
    """
    ``torch.save(data, path)`` through :func:`atomic_write` for local paths; remote paths
    are written with ``path_manager`` (Detectron2's ``PathManager`` by default), not atomically.
    """
    if is_local_path(path):
        atomic_write(path, lambda f: torch.save(data, f))
        return
    if path_manager is None:
        from detectron2.utils.file_io import PathManager as path_manager  # noqa: N813
    with path_manager.open(path, "wb") as f:
        torch.save(data, f)


def remove_stale_temporaries(directory: str) -> int:
    """
    Remove temporary files left in ``directory`` by :func:`atomic_write` calls of *other*
    processes (interrupted writers). Only one process writes checkpoints to a directory
    (Detectron2's main process), so they are garbage.

    Returns:
        The number of files removed.
    """
    removed = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        m = _TMP_RE.match(name)
        if m is None or int(m.group("pid")) == os.getpid():
            continue
        try:
            os.unlink(os.path.join(directory, name))
            removed += 1
        except OSError:
            pass
    if removed:
        logger.info("Removed %d incomplete checkpoint file(s) left in %s by an interrupted run", removed, directory)
    return removed


class AtomicDetectionCheckpointer(DetectionCheckpointer):
    """
    :class:`~detectron2.checkpoint.DetectionCheckpointer` whose :meth:`save` and
    :meth:`tag_last_checkpoint` are atomic (see the module docstring): at any instant,
    ``last_checkpoint`` names a complete checkpoint (or does not exist), so ``--resume``
    after a kill always loads a whole file.

    Loading is Detectron2's, except for a checkpoint whose class-prediction tensors (the
    YOLOX head's ``cls_preds``) were made for another number of classes: they are skipped,
    the model keeps its initial ones, and a single warning names them and both class
    counts, instead of one shape-mismatch warning per tensor.
    """

    def _load_model(self, checkpoint: Dict[str, Any]) -> Any:
        """
        fvcore's extension point for loading ``checkpoint["model"]``: leave out the
        class-prediction tensors that differ only in the number of classes (logged once),
        then load the rest with :class:`~detectron2.checkpoint.DetectionCheckpointer`.
        """
        state_dict = checkpoint.get("model")
        if not isinstance(state_dict, dict) or checkpoint.get("matching_heuristics", False):
            # heuristic (Caffe2 / pycls) name matching renames keys first: leave it alone
            return super()._load_model(checkpoint)
        if state_dict and all(k.startswith("module.") for k in state_dict):  # as fvcore does
            consume_prefix_in_state_dict_if_present(state_dict, "module.")
        reinitialized = pop_mismatched_class_predictions(state_dict, self.model)
        incompatible = super()._load_model(checkpoint)
        if reinitialized.keys:
            self.logger.warning(reinitialized.message())
            skipped = set(reinitialized.keys)
            incompatible.missing_keys[:] = [k for k in incompatible.missing_keys if k not in skipped]
        return incompatible

    def save(self, name: str, **kwargs: Any) -> None:
        """
        Write ``<save_dir>/<name>.pth`` atomically, then tag it as the last checkpoint.

        Args:
            name: file name without ``.pth``.
            kwargs: extra data to save (e.g. ``iteration``).
        """
        if not self.save_dir or not self.save_to_disk:
            return
        if not is_local_path(self.save_dir):
            super().save(name, **kwargs)
            return
        data: Dict[str, Any] = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)

        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        if os.path.basename(save_file) != basename:
            raise ValueError(f"Checkpoint name {name!r} must not contain a directory")
        self.logger.info("Saving checkpoint to %s", save_file)
        os.makedirs(local_path(self.save_dir), exist_ok=True)
        remove_stale_temporaries(local_path(self.save_dir))
        atomic_torch_save(data, save_file)
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        """
        Atomically point ``<save_dir>/last_checkpoint`` at ``last_filename_basename``.

        Args:
            last_filename_basename: the checkpoint's file name (in ``save_dir``).
        """
        if not is_local_path(self.save_dir):
            super().tag_last_checkpoint(last_filename_basename)
            return
        path = os.path.join(self.save_dir, "last_checkpoint")
        atomic_write(path, lambda f: f.write(last_filename_basename.encode("utf-8")))
