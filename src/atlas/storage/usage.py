"""How much room a store takes: what ``du`` says on local disk, object sizes elsewhere."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .base import Storage
from .local import LocalStorage
from .wrappers import WrappedStorage

__all__ = ["DiskUsage", "disk_usage"]

#: The unit of ``st_blocks`` (POSIX: 512 bytes, whatever the file system's block size).
_BLOCK = 512


@dataclass(frozen=True)
class DiskUsage:
    """The files of a store: their number, their sizes (``du --apparent-size``) and the
    room they take (``du``: allocated blocks; the sizes again on object stores, which bill
    by size)."""

    files: int
    apparent_bytes: int
    allocated_bytes: int


def _local_root(storage: Storage) -> str | None:
    while isinstance(storage, WrappedStorage):
        storage = storage.inner
    return storage.root if isinstance(storage, LocalStorage) else None


def _local_usage(root: str) -> DiskUsage:
    files = apparent = 0
    allocated = os.lstat(root).st_blocks * _BLOCK  # the directory itself, as du -s counts it
    seen: set[tuple[int, int]] = set()  # hard links count once, as du counts them
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue  # removed while walking
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            allocated += st.st_blocks * _BLOCK
            if name in filenames:
                files += 1
                apparent += st.st_size
    return DiskUsage(files, apparent, allocated)


def disk_usage(storage: Storage) -> DiskUsage:
    """The files of the store ``storage`` and the room they take (directories included in
    the allocated bytes on local disk, as ``du`` counts them)."""
    root = _local_root(storage)
    if root is not None:
        return _local_usage(root)
    sizes = [size for _, size, _ in storage.list_details("")]
    return DiskUsage(len(sizes), sum(sizes), sum(sizes))
