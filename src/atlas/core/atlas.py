"""The store handle of the core: ``Store`` (``atlas.Atlas`` is its public face).

A ``Store`` holds the state of the version it opened (or last flushed) in
memory, buffers every mutation, and commits them with ``flush()``: new segment
and index files first, under fresh names, then one new manifest created with
put-if-absent. A handle whose base version is no longer the newest gets a
``ConflictError`` instead of overwriting another writer's commit.
"""

from __future__ import annotations

import datetime as _dt
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from ..collector import paused_gc
from ..errors import ReadOnlyError, StoreNotFoundError
from ..format import manifest as mf
from ..format.codec import parse_codec
from ..names import check_name
from ..storage import open_storage
from . import commit, history, loading, scan, write
from . import rebase as rebasing
from .dataset import DatasetView
from .loading import is_store_key
from .model import StoreModel
from .reader import BlockCache, retry_if_swapped
from .state import DatasetState

if TYPE_CHECKING:
    from ..storage.base import Storage
    from .maintenance import VerifyResult

__all__ = ["Store", "is_store_key"]

# The folders whose files Atlas takes for its own.
_OWN_FOLDERS = ("data/", "index/", "meta/", "manifests/", "tags/")

# Buffered chunk bytes above which chunks are written ahead to (unreferenced) segments.
DEFAULT_BUFFER_BYTES = 128 << 20
# Decompressed blocks kept per handle.
DEFAULT_CACHE_BYTES = 256 << 20


def _open_storage(location: Any, create: bool, options: dict[str, Any]) -> Storage:
    if isinstance(location, (bytes, bytearray)):
        raise TypeError("store path must be a str or os.PathLike, not bytes")
    return open_storage(location, create=create, **options)


class Store(StoreModel):
    """A store of many datasets laid out variable-first.

    Mutations are buffered in memory and persisted atomically by :meth:`flush`.
    """

    # ------------------------------------------------------------------ construction

    def __init__(self, _storage: Storage, _config: dict[str, Any], _version: int | None, _read_only: bool) -> None:
        self._storage = _storage
        self._codec: str = _config["codec"]
        self._meta_format: str = _config["meta_format"]
        self._meta_compression: str = _config["meta_compression"]
        self._read_only = _read_only or bool(getattr(_storage, "read_only", False))
        self._cache = BlockCache(DEFAULT_CACHE_BYTES)
        self._lock = threading.RLock()  # reads may come from several threads (dask)
        self.buffer_bytes = DEFAULT_BUFFER_BYTES
        self._build_shared = self._build_arrays
        self._state_gen = 0  # bumped whenever committed state is swapped (reads in flight retry)
        self._reset()
        loading.load(self, _version)

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str] | Any,
        codec: str = "zstd",
        meta_format: str = "json",
        meta_compression: str = "none",
        **storage_options: Any,
    ) -> Self:
        """Create a new, empty store at ``path`` (a directory, URL or obstore store).

        Raises ``FileExistsError`` if a store already exists there, or if the folders Atlas
        writes (``data/``, ``index/``, ``meta/``, ``manifests/``, ``tags/``) hold files it did not
        write; other files beside them are left alone. A create that was interrupted (only
        ``atlas.json``, temporary files or unreferenced data and index files, and no
        committed version) is done again over what it left.
        """
        codec = parse_codec(codec)
        meta_format = mf.parse_meta_format(meta_format)
        meta_compression = mf.parse_meta_compression(meta_compression)
        storage = _open_storage(path, True, storage_options)
        if getattr(storage, "read_only", False):
            raise ReadOnlyError(f"cannot create a store at {storage.location}: the location is read-only")
        keys = storage.list("")
        if any(mf.parse_manifest_key(k) is not None for k in keys):
            raise FileExistsError(f"an Atlas store already exists at {storage.location}")
        # files of the user's own beside the store are left alone; inside the folders Atlas
        # writes they would be taken for its own (and removed as orphans by compaction)
        foreign = [k for k in keys if k.startswith(_OWN_FOLDERS) and not is_store_key(k)]
        if foreign:
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            raise FileExistsError(
                f"{storage.location} is not an Atlas store, and its folder for Atlas's files holds "
                f"{foreign[0]!r}{more}; give a new or empty location"
            )
        config_bytes = mf.encode_config(codec, meta_format, meta_compression)
        if storage.exists(mf.CONFIG_KEY):
            # a config without any committed version is a create that was interrupted: redo it
            storage.put(mf.CONFIG_KEY, config_bytes)
        elif not storage.put_if_absent(mf.CONFIG_KEY, config_bytes):
            raise FileExistsError(f"an Atlas store already exists at {storage.location}")
        config = {"codec": codec, "meta_format": meta_format, "meta_compression": meta_compression}
        self = cls(storage, config, -1, False)
        commit.commit(self)
        return self

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | Any,
        version: int | str | None = None,
        mode: str | None = None,
        **storage_options: Any,
    ) -> Self:
        """Open an existing store.

        ``mode="r"`` gives a read-only handle on the newest version (every write raises
        ``ReadOnlyError``); ``mode="r+"`` (the default) a writable one. ``version=N`` or
        ``version="tag"`` opens that version, always read-only (``mode="r+"`` with a
        version is refused). Any other mode gives ``ValueError``.
        ``VersionRemovedError`` (a ``KeyError``) if the version was expired or removed."""
        read_only = _check_mode(mode, version)
        storage = _open_storage(path, False, storage_options)
        try:
            raw = storage.get(mf.CONFIG_KEY)
        except FileNotFoundError:
            raise StoreNotFoundError(f"no Atlas store at {storage.location}") from None
        config = mf.decode_config(raw, f"{storage.location}/{mf.CONFIG_KEY}")
        if version is not None:
            if isinstance(version, str):
                version = cls._tagged_version(storage, version)
            elif isinstance(version, bool) or not isinstance(version, int):
                raise TypeError("version must be an int (a version number) or a str (a tag)")
        self = cls(storage, config, version, read_only)
        if mode == "r":
            self._read_only_why = _MODE_R
        return self

    @staticmethod
    def _tagged_version(storage: Storage, name: str) -> int:
        key = history.tag_key(history.check_tag_name(name))
        try:
            return history.decode_tag(storage.get(key), f"{storage.location}/{key}")
        except FileNotFoundError:
            raise KeyError(f"no tag named {name!r} in the store at {storage.location}") from None

    # ------------------------------------------------------------------ datasets

    def create_dataset(self, name: str) -> DatasetView:
        """Create an empty dataset and return a view on it."""
        check_name(name, "dataset")
        self._check_writable()
        if name in self._datasets:
            raise FileExistsError(f"dataset {name!r} already exists")
        ds = DatasetState(name)
        self._datasets[name] = ds
        self._changed = True
        return DatasetView(self, ds)

    def open_dataset(self, name: str) -> DatasetView:
        """Return a view on an existing dataset (``KeyError`` if missing)."""
        return DatasetView(self, self._dataset(name))

    def delete_dataset(self, name: str) -> None:
        """Delete a dataset and all its arrays (effective at once, persisted by flush)."""
        write.delete_dataset(self, name)

    def dataset_exists(self, name: str) -> bool:
        """Whether a dataset of this name exists."""
        return isinstance(name, str) and name in self._datasets

    def list_datasets(self) -> list[str]:
        """Dataset names in creation order."""
        return list(self._datasets.names())

    def list_arrays(self) -> list[str]:
        """Sorted union of array names over all datasets."""
        return sorted(name for name, var in self._variables.items() if var.live > 0)

    # ------------------------------------------------------------------ reading and committing

    @retry_if_swapped
    def read_array_across(
        self,
        array: str,
        names: Sequence[str],
        start: Sequence[int] | None = None,
        shape: Sequence[int] | None = None,
    ) -> list[np.ndarray | None]:
        """Read one array from many datasets; ``None`` where a dataset lacks it, and also
        where a listed dataset does not exist (as in the 0.10 API: a misspelt name gives
        ``None``, not an error).

        ``KeyError`` when none of the listed datasets has the array. Each array is the
        caller's own (writable, sharing no values with another), though arrays read whole
        from one block may be views of one buffer, as numpy slices are."""
        with paused_gc():  # planning builds many containers, none of them cyclic
            return scan.read_array_across(self, array, names, start, shape)

    @retry_if_swapped
    def read_array_across_stacked(
        self,
        array: str,
        names: Sequence[str],
        start: Sequence[int] | None = None,
        shape: Sequence[int] | None = None,
        pad: bool = False,
    ) -> np.ndarray:
        """Read one array from many datasets into one ndarray of shape ``(len(names), *shape)``.

        ``KeyError`` if a dataset lacks the array, ``TypeError`` for different dtypes and
        ``ValueError`` for different shapes unless ``start``/``shape`` give a common window
        or ``pad=True``, which pads each array to the largest shape with its fill value."""
        with paused_gc():  # planning builds many containers, none of them cyclic
            return scan.read_array_across_stacked(self, array, names, start, shape, pad)

    def flush(self, rebase: bool = False) -> None:
        """Commit every buffered change atomically as a new version (no-op when unchanged).

        ``ConflictError`` if another writer committed since this handle's version (nothing
        is written over it). With ``rebase=True`` this handle's changes are instead applied
        again on the newest version and committed there (again, after a short random pause,
        while other writers keep winning), unless they truly conflict with what landed: the
        same array or attribute changed on both sides, a dataset deleted on one side and
        changed on the other, the same new dataset name created on both. Then
        ``ConflictError`` (its ``conflicts`` say what), nothing is committed, and the handle
        still holds its changes on its version. After a rebase the handle reads the version
        it committed, with the other writers' work in it.

        A flush that raises committed nothing, except ``CommitOutcomeUnknownError``: then
        call ``flush()`` again, which finishes the commit if it had landed and commits again
        if it had not."""
        if rebase:
            rebasing.flush_rebasing(self)
        else:
            commit.flush(self)

    def close(self) -> None:
        """Same as :meth:`flush`; the handle stays usable."""
        commit.flush(self)

    # ------------------------------------------------------------------ compaction and versions

    def compact(self, keep_versions: int = 1, grace_period: _dt.timedelta | float | None = None) -> None:
        """Rewrite variables holding dead data densely, expire old versions, delete their files.

        Buffered changes are flushed first, and compaction works from the newest version
        (a handle that is behind is brought to it; with changes of its own it gets
        ``ConflictError``). The ``keep_versions`` newest versions and tagged versions stay
        readable. Files of the versions it expires are deleted once ``grace_period`` has
        passed since (a ``timedelta`` or seconds), files no version ever named once they
        are that old. The default deletes what it replaced at once and keeps files no
        version names for an hour: they may be another writer's work in progress. Pass
        e.g. ``timedelta(hours=1)`` while other processes read old versions.
        """
        from .maintenance import compact

        compact(self, keep_versions, grace_period)

    def upgrade(self) -> bool:
        """Bring a store written in format version 1 to the current format by committing a
        version whose metadata is all in shards and runs (datasets in shards, chunk indexes in
        runs).
        Returns False when there was nothing to upgrade. Any commit upgrades too; this one
        commits even without changes."""
        from .maintenance import upgrade

        self._check_writable()
        return upgrade(self)

    def expire_versions(self, older_than: _dt.datetime | None = None, keep: int | None = None) -> list[int]:
        """Expire old versions: those committed before ``older_than``, beyond the ``keep``
        newest, or both. The newest and tagged versions never expire. Their files are
        deleted by :meth:`garbage_collect` once its grace period has passed. Returns the
        version numbers expired."""
        from .maintenance import expire_versions

        self._check_storage_writable()
        return expire_versions(self, older_than=older_than, keep=keep)

    def garbage_collect(self, grace_period: _dt.timedelta | float = _dt.timedelta(hours=1)) -> dict[str, Any]:
        """Delete files no kept version refers to once ``grace_period`` has passed: since
        the expiry of the version that named them, or since a never-committed file was
        written. Returns what it deleted and what it kept for now."""
        from .maintenance import collect_garbage, grace_seconds

        self._check_storage_writable()
        seconds = grace_seconds(grace_period, "grace_period")
        return collect_garbage(self, seconds, seconds).as_dict()

    def tag(self, name: str, version: int | None = None) -> None:
        """Name a version (default: this handle's). Tags are immutable and never expire;
        ``FileExistsError`` if the name is taken."""
        self._check_storage_writable()
        history.check_tag_name(name)
        if version is None:
            version = self._version
        if isinstance(version, bool) or not isinstance(version, int):
            raise TypeError(f"version must be an int, not {type(version).__name__}")
        from .maintenance import version_headers

        live = {h.version for h in version_headers(self) if h.live}
        if version not in live:
            raise KeyError(f"version {version} is not a live version of the store at {self._storage.location}")
        if not self._storage.put_if_absent(history.tag_key(name), history.encode_tag(version)):
            raise FileExistsError(f"tag {name!r} already exists; delete it first to move it")

    def tags(self) -> dict[str, int]:
        """Every tag and the version it names."""
        return dict(sorted(history.read_tags(self._storage).items()))

    def delete_tag(self, name: str) -> None:
        """Delete a tag (the version it named may then be expired). ``KeyError`` if absent."""
        self._check_storage_writable()
        key = history.tag_key(history.check_tag_name(name))
        if not self._storage.exists(key):
            raise KeyError(f"no tag named {name!r} in the store at {self._storage.location}")
        self._storage.delete(key)

    def versions(self) -> list[dict[str, Any]]:
        """Committed versions, oldest first: ``{"version", "timestamp", "datasets", "arrays"}``."""
        from .maintenance import list_versions

        return list_versions(self)

    def verify(self) -> VerifyResult:
        """Check every block and index of the current version; return the problems found.

        The list also has ``notes`` (things that are not damage, such as files no kept
        version refers to, which ``compact()`` removes) and ``unreferenced_files`` /
        ``unreferenced_bytes``."""
        from .maintenance import verify

        return verify(self)

    # ------------------------------------------------------------------ dunder

    @property
    def version(self) -> int:
        """The committed version this handle reads."""
        return self._version

    @property
    def codec(self) -> str:
        """Block codec of this store (``zstd``, ``lz4`` or ``none``)."""
        return self._codec

    @property
    def meta_format(self) -> str:
        """How manifests are encoded (``json`` or ``msgpack``)."""
        return self._meta_format

    @property
    def meta_compression(self) -> str:
        """How manifests are compressed (``none``, ``zstd`` or ``lz4``)."""
        return self._meta_compression

    @property
    def cache_bytes(self) -> int:
        """Budget of the block cache, in bytes (256 MiB by default; 0 turns it off).

        Single-array reads keep the blocks they decode. A scan across datasets keeps blocks
        only when they come to at most a quarter of its result, so that its peak memory
        stays near the result: the decoded blocks if they are that small, else their stored
        (compressed) bytes if those are, and the next scan then decodes them without I/O."""
        return self._cache.budget

    @cache_bytes.setter
    def cache_bytes(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"cache_bytes must be an int >= 0, not {value!r}")
        self._cache.resize(value)

    @property
    def storage(self) -> Storage:
        """The byte store this handle reads and writes (reopen with ``Atlas.open(storage)``)."""
        return self._storage

    @property
    def location(self) -> str:
        """Where the store lives (path or URL)."""
        return str(self._storage.location)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        commit.flush(self)

    def __repr__(self) -> str:
        return f"<Atlas {self.location!r} datasets={len(self._datasets)} version={self._version}>"

    def __reduce__(self) -> tuple[Any, ...]:
        if self._changed:
            raise RuntimeError("flush() before pickling an Atlas handle: buffered changes cannot be sent")
        if self._read_only and self._read_only_why == _MODE_R:
            return (_reopen_read_only, (type(self), self._storage, self._version))
        return (type(self).open, (self._storage, self._version if self._read_only else None))


#: Why a handle opened with ``mode="r"`` is read-only (its write errors say so).
_MODE_R = "opened with mode='r'; open it without mode='r' to write"


def _check_mode(mode: str | None, version: int | str | None) -> bool:
    """Whether ``Store.open`` with ``mode`` and ``version`` gives a read-only handle."""
    if mode is not None and mode not in ("r", "r+"):
        raise ValueError(f"mode must be 'r' (read-only) or 'r+' (read and write), not {mode!r}")
    if mode == "r+" and version is not None:
        raise ValueError("an old version opens read-only: pass mode='r' (or no mode) with version=")
    return mode == "r" or version is not None


def _reopen_read_only(cls: type[Store], storage: Storage, version: int) -> Store:
    """Unpickle a handle opened with ``mode='r'``: the same version, read-only again."""
    self = cls.open(storage, version)
    self._read_only_why = _MODE_R
    return self
