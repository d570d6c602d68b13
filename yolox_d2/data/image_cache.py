"""
:class:`SharedImageCache`: decoded training images kept in shared memory, read and filled by
every DataLoader worker of a rank (forked or spawned), so that each image file is decoded
once per rank instead of once per use (the official YOLOX ``--cache``, without its stale-cache
risk and with the same pixels as an uncached run).

Layout: one file ``yolox_d2_image_cache_<pid>_<random>`` in ``/dev/shm`` (RAM; or any
directory given), mapped by every process: a table of one entry per dataset image (its slot,
the decoded size, the key of the file it was decoded from, counters), then the slots. Each
image has a fixed slot of ``height * width * 3`` bytes (its declared size), assigned in
dataset order while the total stays within ``max_bytes``; images that do not fit, and images
without a declared size, are never cached (they are decoded on each use, as without cache).
The whole bound is reserved (``posix_fallocate``) when the cache is built, so running out of
``/dev/shm`` shows up there (a warning; caching is then off), never as a crash later.

Staleness: an entry is served only while ``os.stat`` of its file still gives the same
``(st_mtime_ns, st_ctime_ns, st_size, st_ino)`` as when it was decoded; a changed, replaced or
touched file is decoded again (and re-cached in its slot). Non-local paths (URIs) are never
cached.

Concurrency: entry ``i`` is guarded by a POSIX record lock on byte ``i`` of the file
(``fcntl.lockf``): one process decodes an image while the others wanting it wait, then copy
it. The kernel releases the locks of a process that dies. Each process must use the cache from
one thread (as DataLoader workers and the main process do).

Lifetime: the process that built the cache removes the file when the cache is closed or
garbage collected, or at interpreter exit; only a process killed outright (``SIGKILL``)
leaves it behind (delete ``/dev/shm/yolox_d2_image_cache_*`` of dead processes by hand).
"""

import fcntl
import logging
import mmap
import os
import secrets
import tempfile
import weakref
from typing import Callable, Dict, Optional, Sequence

import numpy as np

__all__ = ["SharedImageCache"]

logger = logging.getLogger(__name__)

_FILE_PREFIX = "yolox_d2_image_cache_"
_ENTRY = np.dtype(
    [
        ("offset", "<i8"),  # slot start, from the first slot
        ("capacity", "<i8"),  # slot bytes (0: never cached)
        ("height", "<i4"),
        ("width", "<i4"),
        ("mtime_ns", "<i8"),
        ("ctime_ns", "<i8"),
        ("size", "<i8"),
        ("inode", "<u8"),
        ("valid", "<i4"),
        ("stores", "<i4"),  # times the image was decoded into the slot
        ("hits", "<i8"),  # times it was served from the slot
    ]
)
_ALIGN = 64


def _default_directory() -> str:
    return "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


def _file_key(file_name) -> Optional[tuple]:
    """``(mtime_ns, ctime_ns, size, inode)`` of a local file, None when it cannot be stat'ed."""
    if not isinstance(file_name, (str, os.PathLike)) or "://" in os.fspath(file_name):
        return None
    try:
        st = os.stat(file_name)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino


def _release(fd: int, path: str, owner_pid: Optional[int]) -> None:
    """Finalizer: close this process' descriptor; the object that made the file removes it."""
    if owner_pid == os.getpid():
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    os.close(fd)


class SharedImageCache:
    """
    Decoded ``HxWx3`` uint8 images of a dataset in shared memory (see the module docstring).

    Memory: ``sum(height_i * width_i * 3)`` bytes over the cached images (those that fit
    within ``max_bytes``, in dataset order), plus a table of ``72 * len(slot_bytes)`` bytes;
    all of it is reserved when the cache is built. With the default ``max_bytes`` it is at
    most half the free space of ``directory`` at that time (DataLoader workers also pass
    their batches through ``/dev/shm``).

    Attributes:
        path: the shared file (None when nothing could be cached).
        capacity_bytes: bytes reserved for slots.
    """

    def __init__(
        self,
        slot_bytes: Sequence[int],
        max_bytes: Optional[int] = None,
        directory: Optional[str] = None,
    ) -> None:
        """
        Args:
            slot_bytes: per dataset index, the bytes its decoded image needs
                (``height * width * 3``); 0 for an image that must not be cached (e.g. no
                declared size).
            max_bytes: bound on the slot bytes; None: half the free space of ``directory``.
            directory: where the shared file lives; None: ``/dev/shm`` (RAM), else the
                temporary directory.
        """
        directory = directory or _default_directory()
        if max_bytes is None:
            st = os.statvfs(directory)
            max_bytes = st.f_bavail * st.f_frsize // 2
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        sizes = np.asarray(slot_bytes, dtype=np.int64).reshape(-1)
        if (sizes < 0).any():
            raise ValueError("slot_bytes must be >= 0")
        # Slots in dataset order while the running total stays within the bound.
        fits = np.cumsum(sizes) <= max_bytes
        capacity = np.where(fits, sizes, 0)
        self._num = len(sizes)
        self.capacity_bytes = int(capacity.sum())
        self.path: Optional[str] = None
        self._table_bytes = -(-self._num * _ENTRY.itemsize // _ALIGN) * _ALIGN
        if self.capacity_bytes == 0:
            logger.warning("Image cache: no image fits within %d bytes (or none has a size); not caching", max_bytes)
            return
        path = os.path.join(directory, f"{_FILE_PREFIX}{os.getpid()}_{secrets.token_hex(4)}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.posix_fallocate(fd, 0, self._table_bytes + self.capacity_bytes)
        except OSError as e:
            os.close(fd)
            os.unlink(path)
            logger.warning(
                "Image cache: cannot reserve %.1f MiB in %s (%s); not caching",
                self.capacity_bytes / 2**20, directory, e,
            )
            self.capacity_bytes = 0
            return
        self._attach(fd, path, owner_pid=os.getpid())
        self._table["offset"] = np.cumsum(capacity) - capacity
        self._table["capacity"] = capacity
        cached, wanted = int((capacity > 0).sum()), int((sizes > 0).sum())
        (logger.info if cached == wanted else logger.warning)(
            "Image cache: %d of the %d images with a size fit within %d bytes (%.1f MiB reserved "
            "in %s); the others are decoded on every use",
            cached, wanted, max_bytes, self.capacity_bytes / 2**20, path,
        )

    def _attach(self, fd: int, path: str, owner_pid: Optional[int]) -> None:
        """
        Map the shared file (``fd`` stays open: it holds this process' locks); the file is
        removed with this object when ``owner_pid`` is the process (not in forked copies).
        """
        self.path = path
        self._fd = fd
        self._map = mmap.mmap(fd, self._table_bytes + self.capacity_bytes)
        self._table = np.frombuffer(self._map, dtype=_ENTRY, count=self._num)
        self._slots = np.frombuffer(self._map, dtype=np.uint8, offset=self._table_bytes, count=self.capacity_bytes)
        self._finalizer = weakref.finalize(self, _release, fd, path, owner_pid)

    def __getstate__(self) -> Dict:
        """Pickled (spawned DataLoader workers, copies) by file name; the copy maps it again."""
        return {k: self.__dict__[k] for k in ("_num", "capacity_bytes", "path", "_table_bytes")}

    def __setstate__(self, state: Dict) -> None:
        self.__dict__.update(state)
        if self.path is not None:
            self._attach(os.open(self.path, os.O_RDWR), self.path, owner_pid=None)

    def __len__(self) -> int:
        return self._num

    def close(self) -> None:
        """Release the mapping's file now (the owner removes it); the cache then stops caching."""
        if self.path is not None:
            self._finalizer()
            self.path, self.capacity_bytes = None, 0

    def get(self, index: int, file_name: str, decode: Callable[[], np.ndarray]) -> np.ndarray:
        """
        The decoded image of dataset entry ``index``: a copy of the cached one when the entry
        is valid and ``file_name`` is unchanged, else ``decode()`` (stored in the slot when it
        is a ``HxWx3`` uint8 array that fits). Errors of ``decode`` propagate (nothing stored).

        Args:
            index: dataset index (its slot and lock).
            file_name: the image file (its ``os.stat`` is the staleness key).
            decode: reads and decodes the file.
        """
        index = int(index)
        if self.path is None or self._table["capacity"][index] == 0:
            return decode()
        key = _file_key(file_name)  # taken before reading: a change during the read is seen next time
        if key is None:
            return decode()
        fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, index)
        try:
            entry = self._table[index : index + 1]
            offset = int(entry["offset"][0])
            if entry["valid"][0] and (
                int(entry["mtime_ns"][0]), int(entry["ctime_ns"][0]), int(entry["size"][0]), int(entry["inode"][0])
            ) == key:
                h, w = int(entry["height"][0]), int(entry["width"][0])
                entry["hits"] += 1
                return self._slots[offset : offset + h * w * 3].reshape(h, w, 3).copy()
            entry["valid"] = 0
            image = decode()
            if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
                if image.nbytes <= int(entry["capacity"][0]):
                    h, w = image.shape[:2]
                    self._slots[offset : offset + image.nbytes].reshape(h, w, 3)[...] = image
                    entry["height"], entry["width"] = h, w
                    entry["mtime_ns"], entry["ctime_ns"], entry["size"], entry["inode"] = key
                    entry["stores"] += 1
                    entry["valid"] = 1
            return image
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, index)

    def stats(self) -> Dict[str, int]:
        """
        Counters over all processes (read without locking: a snapshot): ``images`` (dataset size), ``slots`` (images that can be
        cached), ``capacity_bytes``, ``cached`` (valid entries), ``cached_bytes``, ``stores``
        (decodes written to a slot; one per image unless its file changed), ``hits``.
        """
        if self.path is None:
            return dict(images=self._num, slots=0, capacity_bytes=0, cached=0, cached_bytes=0, stores=0, hits=0)
        t = self._table
        valid = t["valid"] == 1
        return dict(
            images=self._num,
            slots=int((t["capacity"] > 0).sum()),
            capacity_bytes=self.capacity_bytes,
            cached=int(valid.sum()),
            cached_bytes=int((t["height"][valid].astype(np.int64) * t["width"][valid] * 3).sum()),
            stores=int(t["stores"].sum()),
            hits=int(t["hits"].sum()),
        )

    def stores(self, index: int) -> int:
        """How many times image ``index`` was decoded into its slot (by any process)."""
        return 0 if self.path is None else int(self._table["stores"][int(index)])
