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

from ..dtypes import decode_value
from ..errors import ConflictError, CorruptionError, ReadOnlyError, StoreNotFoundError
from ..format import manifest as mf
from ..format.chunkindex import ChunkIndex, empty_rows, index_check
from ..format.codec import parse_codec
from ..names import check_name
from ..storage import open_storage
from . import commit, history, loading, read, scan, write
from .commit import UnsettledCommit
from .dataset import DatasetView
from .loading import is_store_key
from .reader import BlockCache, retry_if_swapped
from .state import ArrayState, DatasetState, Schema, SchemaTable, Variable, schema_key

if TYPE_CHECKING:
    from ..storage.base import Storage

__all__ = ["Store", "is_store_key"]

# Buffered chunk bytes above which chunks are written ahead to (unreferenced) segments.
DEFAULT_BUFFER_BYTES = 128 << 20
# Decompressed blocks kept per handle.
DEFAULT_CACHE_BYTES = 256 << 20

# What a handle holds of the version it reads (set by _reset and _install; swapped whole).
_STATE_ATTRIBUTES = (
    "_version", "_manifest_where", "_where", "_schemas", "_datasets", "_fill_memo", "_windows",
    "_seg_positions", "_peeked", "_variables", "_next_id", "_dirty_bytes", "_changed",
    "_changed_arrays", "_unsettled",
)


def _open_storage(location: Any, create: bool, options: dict[str, Any]) -> Storage:
    if isinstance(location, (bytes, bytearray)):
        raise TypeError("store path must be a str or os.PathLike, not bytes")
    return open_storage(location, create=create, **options)


class Store:
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

    def _reset(self) -> None:
        self._version = 0
        self._manifest_where = str(self._storage.location)
        self._where = f"manifest of {self._storage.location}"
        self._schemas = SchemaTable([], self._decode_schema_entry, self._schema_entry_key)
        self._datasets: dict[str, DatasetState | list[Any]] = {}
        self._fill_memo: dict[tuple[str, Any], tuple[Any, Any]] = {}
        self._windows: dict[Any, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self._seg_positions: dict[str, tuple[int, dict[str, int]]] = {}
        self._peeked: dict[tuple[str, str], ArrayState] = {}  # arrays read before their dataset was decoded
        self._variables: dict[str, Variable] = {}
        self._next_id = 1
        self._dirty_bytes = 0
        self._changed = False  # anything to commit
        self._changed_arrays: dict[int, ArrayState] = {}
        self._unsettled: UnsettledCommit | None = None  # a commit whose outcome is unknown

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

        Raises ``FileExistsError`` if a store already exists there, or if the location
        holds files Atlas did not write. A create that was interrupted (only
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
        foreign = [k for k in keys if not is_store_key(k)]
        if foreign:
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            raise FileExistsError(
                f"{storage.location} is not empty and is not an Atlas store (it holds {foreign[0]!r}{more}); "
                "give a new or empty location"
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
        cls, path: str | os.PathLike[str] | Any, version: int | str | None = None, **storage_options: Any
    ) -> Self:
        """Open an existing store; ``version=N`` or ``version="tag"`` opens that version read-only.

        ``VersionRemovedError`` (a ``KeyError``) if the version was expired or removed."""
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
        return cls(storage, config, version, version is not None)

    @staticmethod
    def _tagged_version(storage: Storage, name: str) -> int:
        key = history.tag_key(history.check_tag_name(name))
        try:
            return history.decode_tag(storage.get(key), f"{storage.location}/{key}")
        except FileNotFoundError:
            raise KeyError(f"no tag named {name!r} in the store at {storage.location}") from None

    # ------------------------------------------------------------------ loading



    def _manifest_key(self, version: int) -> str:
        return mf.manifest_key(version, self._meta_format, self._meta_compression)



    def _decode_schema_entry(self, s: Any) -> Schema:
        return loading.decode_schema(self, s, self._manifest_where)

    def _schema_entry_key(self, s: Any) -> tuple[Any, ...]:
        try:
            dtype_name, shape, chunk, dims, fill = s
            return schema_key(
                dtype_name, tuple(shape), tuple(chunk), tuple(dims), decode_value(dtype_name, fill)
            )
        except (TypeError, ValueError) as e:
            raise CorruptionError(f"manifest {self._manifest_where}: schema entry is malformed: {e}") from None


    def _materialize(self, name: str) -> DatasetState | None:
        rec = self._datasets.get(name)
        if rec is None or isinstance(rec, DatasetState):
            return rec
        ds = DatasetState(name)
        if rec[1]:
            ds._raw_attrs = (rec[1], self._where)
        entries = rec[2]  # checked when the manifest was read (_frozen_entries)
        ds._arrays = None
        ds._raw_arrays = entries
        ds._build = self._build_shared  # one bound method for all, not one per dataset
        self._datasets[name] = ds
        return ds

    def _build_arrays(self, ds: DatasetState, entries: list[Any]) -> dict[str, ArrayState]:
        """Array states of a dataset from its manifest entries, validating each."""
        name = ds.name
        where = self._where
        arrays: dict[str, ArrayState] = {}
        schemas = self._schemas
        variables = self._variables
        peeked = self._peeked
        next_id = self._next_id
        from_record = ArrayState.from_record
        try:
            for aname, aid, sidx, stats, aattrs in entries:
                if type(aname) is not str or type(aid) is not int or aname in arrays or not 0 < aid < next_id:
                    raise TypeError("bad or repeated array name, or bad id")
                if aname.startswith("_") or "/" in aname or aname in ("", ".", ".."):
                    raise ValueError(f"invalid array name {aname!r}")
                if aname not in variables:
                    raise ValueError(f"array {aname!r} has no entry in the variable table")
                known = peeked.pop((name, aname), None) if peeked else None
                arrays[aname] = known if known is not None else from_record(aname, aid, schemas[sidx], name, stats, aattrs, where)
        except (TypeError, ValueError, IndexError) as e:
            raise CorruptionError(f"{where}, dataset {name!r}: array entry is malformed: {e}") from None
        return arrays

    # ------------------------------------------------------------------ helpers

    def _check_writable(self) -> None:
        if self._read_only:
            raise ReadOnlyError(
                f"this handle on {self._storage.location} is read-only "
                f"({'an old version' if not getattr(self._storage, 'read_only', False) else 'read-only storage'})"
            )
        if self._unsettled is not None:
            raise ConflictError(
                f"the last flush() on {self._storage.location} failed before it could tell whether version "
                f"{self._unsettled.version} landed; call flush() again to settle it before changing anything"
            )

    def _check_storage_writable(self) -> None:
        """For store-wide changes (tags, expiry): any handle may make them, even one on an
        old version, unless the storage itself is read-only."""
        if getattr(self._storage, "read_only", False):
            raise ReadOnlyError(f"the store at {self._storage.location} is read-only")

    def _missing_error(self, message: str) -> Exception:
        """The error for a file of this version that is gone: VersionRemovedError when the
        version was expired or removed meanwhile, else CorruptionError."""
        try:
            head = history.read_header(self._storage, self._manifest_key(self._version), self._version)
        except Exception:
            return CorruptionError(message)
        return CorruptionError(message) if head.live else head.removed_error(str(self._storage.location))

    def _advance(self) -> None:
        """Bring a handle without changes of its own to the newest version, in one swap.

        Views obtained before refuse writes afterwards (they name the old version)."""
        if self._changed or not commit.store_moved_on(self):
            return
        fresh = type(self)(self._storage, self._config(), None, False)
        with self._lock:
            for name in _STATE_ATTRIBUTES:
                setattr(self, name, getattr(fresh, name))
            self._schemas._decode = self._decode_schema_entry
            self._schemas._key_of = self._schema_entry_key
            self._cache.clear()
            self._state_gen += 1

    def _config(self) -> dict[str, Any]:
        return {"codec": self._codec, "meta_format": self._meta_format, "meta_compression": self._meta_compression}

    def _take_id(self) -> int:
        i = self._next_id
        self._next_id += 1
        return i

    def _variable(self, name: str, create: bool) -> Variable | None:
        var = self._variables.get(name)
        if var is None and create:
            var = Variable(name, self._take_id())
            self._variables[name] = var
        return var

    def _index(self, var: Variable) -> ChunkIndex:
        if var.index is None:
            with self._lock:
                return self._load_index(var)
        return var.index

    def _load_index(self, var: Variable) -> ChunkIndex:
        if var.index is None:
            if var.index_key is None:
                var.index = ChunkIndex(empty_rows())
            else:
                where = f"{self._storage.location}/{var.index_key} (variable {var.name!r})"
                try:
                    data = self._storage.get(var.index_key)
                except FileNotFoundError:
                    raise self._missing_error(f"chunk index {where} is missing") from None
                if var.index_check is not None and index_check(data) != var.index_check:
                    raise CorruptionError(
                        f"chunk index {where} is not the file version {self._version} recorded "
                        f"(length and checksum {index_check(data)} instead of {var.index_check}): it was replaced"
                    )
                var.index = ChunkIndex.from_bytes(data, where)
                var.index.validate([size for _, size in var.segments], where)
        return var.index

    def _dataset(self, name: str) -> DatasetState:
        if not isinstance(name, str):
            raise TypeError(f"dataset name must be a str, not {type(name).__name__}")
        ds = self._materialize(name)
        if ds is None:
            raise KeyError(f"no dataset named {name!r} in {self._storage.location}")
        return ds

    def _intern_schema(self, schema: Schema) -> Schema:
        return self._schemas.intern(schema)

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
        self._check_writable()
        ds = self._dataset(name)
        for arr in ds.arrays.values():
            write.drop_array(self, arr)
        ds.deleted = True
        del self._datasets[name]
        self._changed = True

    def dataset_exists(self, name: str) -> bool:
        """Whether a dataset of this name exists."""
        return isinstance(name, str) and name in self._datasets

    def list_datasets(self) -> list[str]:
        """Dataset names in creation order."""
        return list(self._datasets)

    def list_arrays(self) -> list[str]:
        """Sorted union of array names over all datasets."""
        return sorted(name for name, var in self._variables.items() if var.live > 0)

    # ------------------------------------------------------------------ arrays (used by views)


    def _check_live(self, ds: DatasetState) -> None:
        if ds.deleted:
            raise KeyError(f"dataset {ds.name!r} was deleted")
        if self._datasets.get(ds.name) is not ds:
            raise KeyError(
                f"this view of dataset {ds.name!r} was opened before the handle moved to version "
                f"{self._version}; open the dataset again"
            )



    def _array(self, ds: DatasetState, name: str) -> ArrayState:
        arr = ds.arrays.get(name)
        if arr is None:
            if not isinstance(name, str):
                raise TypeError(f"array name must be a str, not {type(name).__name__}")
            raise KeyError(f"no array named {name!r} in dataset {ds.name!r}")
        return arr

    # ------------------------------------------------------------------ writing





    # ------------------------------------------------------------------ locating and decoding chunks






    # ------------------------------------------------------------------ reading













    # ------------------------------------------------------------------ cross-dataset reads









    # ------------------------------------------------------------------ attributes


    # ------------------------------------------------------------------ flush






    # ------------------------------------------------------------------ reading and committing

    @retry_if_swapped
    def read_array_across(
        self,
        array: str,
        names: Sequence[str],
        start: Sequence[int] | None = None,
        shape: Sequence[int] | None = None,
    ) -> list[np.ndarray | None]:
        """Read one array from many datasets; ``None`` where a dataset lacks it.

        ``KeyError`` when none of the listed datasets has the array. Each array is the
        caller's own (writable, sharing no values with another), though arrays read whole
        from one block may be views of one buffer, as numpy slices are."""
        return scan.read_array_across(self, array, names, start, shape)

    @retry_if_swapped
    def read_array_across_stacked(
        self,
        array: str,
        names: Sequence[str],
        start: Sequence[int] | None = None,
        shape: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Read one array from many datasets into one ndarray of shape ``(len(names), *shape)``.

        ``KeyError`` if a dataset lacks the array, ``TypeError`` for different dtypes and
        ``ValueError`` for different shapes unless ``start``/``shape`` give a common window."""
        return scan.read_array_across_stacked(self, array, names, start, shape)

    def flush(self) -> None:
        """Commit every buffered change atomically as a new version (no-op when unchanged).

        ``ConflictError`` if another writer committed since this handle's version (nothing
        is written over it). A flush that raises committed nothing, except
        ``CommitOutcomeUnknownError``: then call ``flush()`` again, which finishes the
        commit if it had landed and commits again if it had not."""
        commit.flush(self)

    def close(self) -> None:
        """Same as :meth:`flush`; the handle stays usable."""
        commit.flush(self)

    def _window(self, schema: Schema, start: Any, shape: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The clipped window of a read of ``schema``'s array (see :func:`read.read_window`)."""
        return read.read_window(self, schema, start, shape)










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

    def verify(self) -> list[str]:
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
        return (type(self).open, (self._storage, self._version if self._read_only else None))
