"""The store an ingest writes to: opened, or created (and removed again if the ingest fails).

The store's storage reports its failures as ``StorageError``, so that they are told
apart from the failures of input files. A store whose create was interrupted is created
again; a location holding files Atlas did not write is refused.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .report import IngestError, IngestReport

if TYPE_CHECKING:
    from ...core.atlas import Store as Atlas
    from ...storage.base import Storage

__all__ = ["dir_bytes", "prepare_store"]

#: The directories of a store on local disk.
_STORE_DIRS = ("manifests", "data", "index")


def dir_bytes(location: str) -> int | None:
    """Bytes of the files under a local store directory (None for remote stores)."""
    if "://" in location or not os.path.isdir(location):
        return None
    total = 0
    for dirpath, _, filenames in os.walk(location):
        for fn in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, fn)).st_size
            except OSError:
                pass
    return total


def _holds_only_store_files(path: str) -> bool:
    """Whether the directory ``path`` holds nothing but files Atlas writes, where it writes
    them: what a create that was interrupted leaves (``atlas.json``, temporary files)."""
    from ...core.atlas import is_store_key
    from ...storage.base import TEMP_PREFIX

    def own(entry: os.DirEntry[str], key: str) -> bool:
        return entry.is_file(follow_symlinks=False) and (
            entry.name.startswith(TEMP_PREFIX) or is_store_key(key)
        )

    with os.scandir(path) as top:
        for entry in top:
            if entry.is_dir(follow_symlinks=False) and entry.name in _STORE_DIRS:
                with os.scandir(entry.path) as inner:
                    if not all(own(e, f"{entry.name}/{e.name}") for e in inner):
                        return False
            elif not own(entry, entry.name):
                return False
    return True


def prepare_store(
    path: str,
    codec: str | None,
    meta: tuple[str, str],
    report: IngestReport,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[Atlas, Callable[[], None]]:
    """Open the store, or create it; return it with the clean-up to run if the ingest fails.
    ``storage_options`` go to :func:`atlas.storage.open_storage` (an object store's endpoint,
    region, credentials...)."""
    from ...storage import open_storage
    from ...storage.wrappers import ReportingStorage

    options = dict(storage_options or {})
    store = _open_existing(ReportingStorage(open_storage(path, **options)))
    if store is not None:
        if codec is not None and codec.lower() != str(store.codec).lower():
            raise IngestError(
                f"the store {path} already uses codec {store.codec!r}; --codec only applies to new stores"
            )
        report.store_bytes_before = dir_bytes(store.location)
        return store, lambda: None
    local = "://" not in path
    existed = local and os.path.exists(path)
    if existed and (not os.path.isdir(path) or not _holds_only_store_files(path)):
        raise IngestError(f"{path} exists and is not an Atlas store; give a new or empty directory")
    from ...core.atlas import Store as Atlas

    try:
        store = Atlas.create(
            ReportingStorage(open_storage(path, create=True, **options)),
            codec=codec or "zstd",
            meta_format=meta[0],
            meta_compression=meta[1],
        )
    except FileExistsError as e:  # objects Atlas did not write, or another ingest won the race
        raise IngestError(f"cannot create a store at {path}: {e}") from None
    report.created = True
    report.store_bytes_before = 0
    return store, (lambda: _remove_new_store(path, existed)) if local else (lambda: None)


def _open_existing(storage: Storage) -> Atlas | None:
    """The store at ``storage``; None when there is none, or only a create that was interrupted."""
    from ...core.atlas import Store as Atlas
    from ...errors import CorruptionError, StoreNotFoundError
    from ...format import manifest as mf

    try:
        return Atlas.open(storage)
    except StoreNotFoundError:
        return None
    except CorruptionError:
        # a torn atlas.json is what a create interrupted on a file system without hard
        # links may leave; with a committed version, the store is damaged
        if any(mf.parse_manifest_key(k) is not None for k in storage.list(mf.MANIFEST_PREFIX)):
            raise
        return None


def _remove_new_store(path: str, existed: bool) -> None:
    """Undo the create of a local store: empty the directory it was given, or remove it."""
    if existed:  # an empty directory, or what an interrupted create left: empty it
        for entry in os.scandir(path):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
    else:
        shutil.rmtree(path, ignore_errors=True)
