"""The store handle of the core: ``Store`` (``atlas.Atlas`` is its public face).

A ``Store`` holds the state of the version it opened (or last flushed) in
memory, buffers every mutation, and commits them with ``flush()``: new segment
and index files first, under fresh names, then one new manifest created with
put-if-absent. A handle whose base version is no longer the newest gets a
``ConflictError`` instead of overwriting another writer's commit.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from ..dtypes import (
    DTYPES,
    coerce_attribute,
    decode_value,
    fill_scalar,
    infer_attribute,
    parse_dtype,
    validate_fill,
)
from ..errors import (
    CommitOutcomeUnknownError,
    ConflictError,
    CorruptionError,
    ReadOnlyError,
    StoreNotFoundError,
    VersionRemovedError,
)
from ..format import manifest as mf
from ..format.chunkindex import MAX_BLOCK_BYTES, ChunkIndex, empty_rows, index_check, merge_rows
from ..format.codec import parse_codec
from ..format.records import encode_attrs as _encode_attrs
from ..format.records import encode_stats as _encode_stats
from ..format.segment import ChunkPayload, new_key, start_segments
from ..format.strings import decode_strings, encode_strings, to_string_array
from ..names import check_key, check_name
from ..stats import chunk_stats, fold_many, string_stats
from ..storage import open_storage
from ..storage.base import run_concurrently
from . import history
from .commit import UnsettledCommit, commit_outcome, new_token, publish
from .dataset import DatasetView
from .indexing import clip_window, ints, sub_array, window_slices
from .reader import BlockCache, BlockKey, CacheMode, ParallelPuts, fetch_blocks, retry_if_swapped
from .state import (
    NO_CHUNKS,
    ArrayState,
    DatasetState,
    Schema,
    SchemaTable,
    Variable,
    default_chunk_shape,
    schema_key,
)

if TYPE_CHECKING:
    from ..storage.base import Storage

__all__ = ["Store"]

# Buffered chunk bytes above which chunks are written ahead to (unreferenced) segments.
DEFAULT_BUFFER_BYTES = 128 << 20
# Decompressed blocks kept per handle.
DEFAULT_CACHE_BYTES = 256 << 20
# A scan decodes at most this many raw bytes of blocks at a time.
SCAN_BATCH_BYTES = 64 << 20
# Blocks fetched and decoded together with the one a single-array read misses.
READ_AHEAD_BLOCKS = 7

_VERSION_KEY = "version"
# What a handle holds of the version it reads (set by _reset and _install; swapped whole).
_STATE_ATTRIBUTES = (
    "_version", "_manifest_where", "_where", "_schemas", "_datasets", "_fill_memo", "_windows",
    "_seg_positions", "_peeked", "_variables", "_next_id", "_dirty_bytes", "_changed",
    "_changed_arrays", "_unsettled",
)
MAX_CELLS = 2**62
_SEGMENT_KEY = re.compile(r"data/v[0-9]+-[0-9a-f]+\.seg")
_INDEX_KEY = re.compile(r"index/v[0-9]+-[0-9a-f]+\.idx")


def _sole_owner(chunk: np.ndarray) -> bool:
    """Whether a chunk read from storage is the whole of a block that nothing else holds.

    Cached blocks are read-only, and so are blocks that are the storage's own bytes; a
    writable decoded block is one no cache kept (a huge one): its chunk can be handed on
    (as a read's result, or as the buffer a partial write updates) instead of copied.
    """
    base = chunk.base
    return (
        chunk.flags.writeable and isinstance(base, np.ndarray) and base.base is None
        and base.nbytes == chunk.nbytes and chunk.dtype != np.dtype(object)
    )


def _open_storage(location: Any, create: bool, options: dict[str, Any]) -> Storage:
    if isinstance(location, (bytes, bytearray)):
        raise TypeError("store path must be a str or os.PathLike, not bytes")
    return open_storage(location, create=create, **options)


def _frozen_entries(entries: list[Any], nschemas: int) -> tuple[Any, ...]:
    """Array entries of a manifest as tuples, after the structural checks every use relies
    on (five fields, unique str names, a valid schema number); ValueError otherwise."""
    out = []
    for e in entries:
        if type(e) is not list or len(e) != 5:
            raise ValueError("an array entry is not a list of five fields")
        name, aid, sidx, st, at = e
        if type(name) is not str or type(sidx) is not int or not 0 <= sidx < nschemas:
            raise ValueError("bad array name or schema reference")
        out.append((name, aid, sidx, tuple(st) if type(st) is list else st, tuple(at) if type(at) is list else at))
    if len(out) > 1 and len({e[0] for e in out}) != len(out):
        raise ValueError("an array name is repeated")
    return tuple(out)


def is_store_key(key: str) -> bool:
    """Whether ``key`` is one Atlas writes itself: the config, a manifest, the latest-version
    hint, a segment or an index file (temporary ``.tmp-*`` files are never listed)."""
    return (
        key == mf.CONFIG_KEY
        or key == mf.LATEST_HINT_KEY
        or mf.parse_manifest_key(key) is not None
        or _SEGMENT_KEY.fullmatch(key) is not None
        or _INDEX_KEY.fullmatch(key) is not None
    )


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
        self._load(_version)

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
        self._commit()
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

    def _manifest_versions(self) -> list[int]:
        try:
            keys = self._storage.list(mf.MANIFEST_PREFIX)
        except OSError:
            if not getattr(self._storage, "read_only", False):
                raise
            return self._probe_versions()
        return sorted(v for v in (mf.parse_manifest_key(k) for k in keys) if v is not None)

    def _probe_versions(self) -> list[int]:
        """Find the newest version without listing (plain HTTP): start from the
        ``manifests/latest`` hint and step forward while newer manifests exist."""
        exists = self._storage.exists
        key = self._manifest_key
        try:
            start = int(bytes(self._storage.get(mf.LATEST_HINT_KEY)).decode("ascii").strip())
        except (FileNotFoundError, ValueError, UnicodeDecodeError):
            start = 0
        if not exists(key(start)):
            return []
        while exists(key(start + 1)):
            start += 1
        return [start]

    def _manifest_key(self, version: int) -> str:
        return mf.manifest_key(version, self._meta_format, self._meta_compression)

    def _load(self, version: int | None) -> None:
        if version == -1:  # being created
            self._version = -1
            return
        versions = self._manifest_versions()
        if not versions:
            raise StoreNotFoundError(f"no committed version in the Atlas store at {self._storage.location}")
        if version is None:
            version = versions[-1]
        elif version not in versions:
            raise KeyError(
                f"version {version} is not in the store at {self._storage.location}; "
                f"available: {versions[:3]}...{versions[-3:]}" if len(versions) > 6 else
                f"version {version} is not in the store; available: {versions}"
            )
        key = self._manifest_key(version)
        where = f"{self._storage.location}/{key}"
        try:
            data = self._storage.get(key)
        except FileNotFoundError:
            raise CorruptionError(f"manifest {where} disappeared while opening") from None
        state = history.VersionHeader(version, key, mf.decode_header(data, where)[0])
        if not state.live:
            raise state.removed_error(str(self._storage.location))
        with mf.paused_gc():  # ~10^5 new containers: collections would only rescan them
            head, doc = mf.decode_manifest(data, where, self._meta_format, self._meta_compression)
            self._install(doc, where)
        if doc.get(_VERSION_KEY) != version:
            raise CorruptionError(f"manifest {where} claims version {doc.get(_VERSION_KEY)!r}")
        self._version = version

    def _install(self, doc: dict[str, Any], where: str) -> None:
        """Build the in-memory state from a manifest document (datasets stay raw until used)."""
        self._reset()
        try:
            next_id = doc["next_id"]
            schemas = doc["schemas"]
            variables = doc["variables"]
            datasets = doc["datasets"]
            if not isinstance(next_id, int) or next_id < 1:
                raise ValueError("next_id")
            if not all(isinstance(x, list) for x in (schemas, variables, datasets)):
                raise ValueError("tables must be lists")
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptionError(f"manifest {where} is malformed: {e}") from None
        checks = doc.get("index_checks", {})
        if not isinstance(checks, dict) or not all(
            type(c) is list and len(c) == 2 and all(type(x) is int and 0 <= x < 2**63 for x in c)
            for c in checks.values()
        ):
            raise CorruptionError(f"manifest {where}: index_checks is malformed")
        self._next_id = next_id
        self._manifest_where = where
        self._where = f"manifest of {self._storage.location}"  # + ", dataset NAME" in messages
        self._schemas = SchemaTable(schemas, self._decode_schema_entry, self._schema_entry_key)
        for v in variables:
            try:
                name, vid, index_key, segs, live = v
                var = Variable(str(name), int(vid))
                if index_key is not None and not _INDEX_KEY.fullmatch(index_key):
                    raise ValueError(f"bad index key {index_key!r}")
                var.index_key = index_key
                check = checks.get(index_key) if index_key is not None else None
                var.index_check = (check[0], check[1]) if check is not None else None
                var.segments = [(k, sz) for k, sz in segs]
                for k, sz in var.segments:
                    if type(k) is not str or not _SEGMENT_KEY.fullmatch(k) or type(sz) is not int or not 0 <= sz < 2**62:
                        raise ValueError(f"bad segment entry {k!r}")
                var.live = int(live)
            except (TypeError, ValueError) as e:
                raise CorruptionError(f"manifest {where}: variable entry is malformed: {e}") from None
            if var.name in self._variables:
                raise CorruptionError(f"manifest {where}: variable {var.name!r} listed twice")
            if not 0 < var.vid < next_id or var.name.startswith("_") or "/" in var.name or var.name in ("", ".", ".."):
                raise CorruptionError(f"manifest {where}: variable entry {var.name!r} is invalid")
            self._variables[var.name] = var
        nschemas = len(schemas)
        for rec in datasets:
            if not isinstance(rec, list) or len(rec) != 3 or type(rec[0]) is not str or type(rec[2]) is not list:
                raise CorruptionError(f"manifest {where}: dataset entry is malformed")
            n = rec[0]
            if n.startswith("_") or "/" in n or n in ("", ".", ".."):
                raise CorruptionError(f"manifest {where}: invalid dataset name {n!r}")
            if rec[0] in self._datasets:
                raise CorruptionError(f"manifest {where}: dataset {rec[0]!r} listed twice")
            self._datasets[rec[0]] = rec
            rec[1] = tuple(rec[1]) if type(rec[1]) is list else rec[1]
            try:
                rec[2] = _frozen_entries(rec[2], nschemas)
            except ValueError as e:
                raise CorruptionError(f"manifest {where}, dataset {n!r}: {e}") from None
        try:  # array ids must be unique, or one array would read another's chunks
            aids = [a[1] for rec in datasets for a in rec[2]]
        except (TypeError, IndexError, KeyError):
            raise CorruptionError(f"manifest {where}: an array entry is malformed") from None
        if len(set(aids)) != len(aids):
            raise CorruptionError(f"manifest {where}: two arrays share one id")

    def _decode_schema_entry(self, s: Any) -> Schema:
        return self._decode_schema(s, self._manifest_where)

    def _schema_entry_key(self, s: Any) -> tuple[Any, ...]:
        try:
            dtype_name, shape, chunk, dims, fill = s
            return schema_key(
                dtype_name, tuple(shape), tuple(chunk), tuple(dims), decode_value(dtype_name, fill)
            )
        except (TypeError, ValueError) as e:
            raise CorruptionError(f"manifest {self._manifest_where}: schema entry is malformed: {e}") from None

    def _decode_schema(self, s: Any, where: str) -> Schema:
        try:
            dtype_name, shape, chunk, dims, fill = s
            dt = DTYPES[dtype_name]
            if len(shape) == 1 and len(chunk) == 1 and len(dims) == 1:  # the usual 1-D array
                n, c, d = shape[0], chunk[0], dims[0]
                if type(n) is not int or type(c) is not int or n < 0 or c < 0 or n > 2**62 or (c == 0 and n > 0):
                    raise ValueError("bad shape or chunk shape")
                if type(d) is not str:
                    raise ValueError("dimension names must be strings")
                shape_t: tuple[int, ...] = (n,)
                chunk_t: tuple[int, ...] = (c,)
                dims_t: tuple[str, ...] = (d,)
            else:
                shape_t = tuple(shape)
                chunk_t = tuple(chunk)
                dims_t = tuple(dims)
                if not (len(shape_t) == len(chunk_t) == len(dims_t)):
                    raise ValueError("rank mismatch")
                for n, c in zip(shape_t, chunk_t, strict=True):
                    if type(n) is not int or type(c) is not int or n < 0 or c < 0 or n > 2**62 or (c == 0 and n > 0):
                        raise ValueError("bad shape or chunk shape")
                for d in dims_t:
                    if type(d) is not str:
                        raise ValueError("dimension names must be strings")
            memo = self._fill_memo
            mkey = (dtype_name, fill)
            hit = memo.get(mkey)
            if hit is None:
                value = decode_value(dtype_name, fill)
                hit = memo[mkey] = (value, fill_scalar(dt, value))
            return Schema(dt, shape_t, chunk_t, dims_t, hit[0], hit[1])
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptionError(f"manifest {where}: schema entry is malformed: {e}") from None

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
        if self._changed or not self._store_moved_on():
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
            self._drop_array(arr)
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

    def _define(
        self,
        ds: DatasetState,
        name: str,
        dtype: str,
        dims: Sequence[str],
        shape: Sequence[int],
        chunk_shape: Sequence[int] | None,
        fill_value: Any,
    ) -> None:
        self._check_writable()
        self._check_live(ds)
        check_name(name, "array")
        dt = parse_dtype(dtype)
        if isinstance(dims, str):
            raise TypeError("dims must be a sequence of dimension names, not a str")
        try:
            dims_t = tuple(dims)
        except TypeError:
            raise TypeError(f"dims must be a sequence of str, not {type(dims).__name__}") from None
        for d in dims_t:
            if type(d) is not str and not isinstance(d, str):
                raise TypeError(f"dimension names must be str, found {type(d).__name__}")
        shape_t = ints(shape, "shape")
        chunk_t = default_chunk_shape(shape_t, dt) if chunk_shape is None else ints(chunk_shape, "chunk_shape")
        if len(dims_t) != len(shape_t):
            raise ValueError(f"dims has {len(dims_t)} names but shape has {len(shape_t)} axes")
        if len(chunk_t) != len(shape_t):
            raise ValueError(f"chunk_shape has {len(chunk_t)} axes but shape has {len(shape_t)}")
        for s, c in zip(shape_t, chunk_t, strict=True):
            if c == 0 and s > 0:
                raise ValueError("chunk_shape has an extent of 0 on a non-empty axis")
        if 0 in shape_t:
            chunk_t = tuple(0 if s == 0 else c for s, c in zip(shape_t, chunk_t, strict=True))
        if math.prod(shape_t) > MAX_CELLS or max(shape_t + chunk_t, default=0) > MAX_CELLS:
            raise OverflowError(f"shape {list(shape_t)} or chunk shape {list(chunk_t)} is too large (over 2**62 cells)")
        if math.prod(chunk_t) * dt.itemsize > MAX_BLOCK_BYTES:
            raise ValueError(
                f"a chunk of shape {list(chunk_t)} would hold over {MAX_BLOCK_BYTES >> 30} GiB; use a smaller chunk_shape"
            )
        fill = validate_fill(dt, fill_value)
        if name in ds.arrays:
            raise FileExistsError(f"array {name!r} is already defined in dataset {ds.name!r}")
        key = schema_key(dt.name, shape_t, chunk_t, dims_t, fill)
        schema = self._schemas.lookup(key)
        if schema is None:
            schema = self._intern_schema(Schema(dt, shape_t, chunk_t, dims_t, fill))
        var = self._variable(name, create=True)
        assert var is not None
        arr = ArrayState(name, self._take_id(), schema, ds.name)
        ds.arrays[name] = arr
        var.live += 1
        self._changed = True

    def _check_live(self, ds: DatasetState) -> None:
        if ds.deleted:
            raise KeyError(f"dataset {ds.name!r} was deleted")
        if self._datasets.get(ds.name) is not ds:
            raise KeyError(
                f"this view of dataset {ds.name!r} was opened before the handle moved to version "
                f"{self._version}; open the dataset again"
            )

    def _drop_array(self, arr: ArrayState) -> None:
        var = self._variables[arr.name]
        var.live -= 1
        var.dead_aids.add(arr.aid)
        var.changed = True
        for c in arr.dirty.values():
            self._dirty_bytes -= c.nbytes
        arr.dirty.clear()
        arr.deleted = True
        self._changed_arrays.pop(arr.aid, None)

    def _delete_array(self, ds: DatasetState, name: str) -> None:
        self._check_writable()
        self._check_live(ds)
        arr = ds.arrays.get(name)
        if arr is None:
            raise KeyError(f"no array named {name!r} in dataset {ds.name!r}")
        self._drop_array(arr)
        del ds.arrays[name]
        self._changed = True

    def _array(self, ds: DatasetState, name: str) -> ArrayState:
        arr = ds.arrays.get(name)
        if arr is None:
            if not isinstance(name, str):
                raise TypeError(f"array name must be a str, not {type(name).__name__}")
            raise KeyError(f"no array named {name!r} in dataset {ds.name!r}")
        return arr

    # ------------------------------------------------------------------ writing

    def _coerce(self, schema: Schema, data: Any) -> np.ndarray:
        dt = schema.dtype
        if not isinstance(data, np.ndarray):
            raise TypeError(f"data must be a numpy array, not {type(data).__name__}")
        if dt.is_string:
            return to_string_array(data)
        if dt.kind == "timestamp":
            if data.dtype == np.dtype("datetime64[ns]"):
                data = data.view(np.int64)
            elif data.dtype != np.dtype(np.int64):
                raise TypeError(
                    f"a timestamp_nanoseconds array needs int64 (ns since the epoch) or datetime64[ns] data, not {data.dtype}"
                )
        elif data.dtype != dt.numpy:
            raise TypeError(f"data has dtype {data.dtype} but the array is {dt.name}; convert it first")
        if not data.flags.c_contiguous:
            raise ValueError("data must be C-contiguous; pass np.ascontiguousarray(data)")
        return data

    def _write(self, ds: DatasetState, name: str, start: Any, data: Any) -> None:
        self._check_writable()
        self._check_live(ds)
        arr = self._array(ds, name)
        schema = arr.schema
        data = self._coerce(schema, data)
        start_t = ints(start, "start")
        rank = len(schema.shape)
        if len(start_t) != rank or data.ndim != rank:
            raise RuntimeError(
                f"rank mismatch: array {name!r} has {rank} axes, start has {len(start_t)}, data has {data.ndim}"
            )
        if data.size == 0:
            return
        if arr.dirty is NO_CHUNKS:
            arr.dirty = {}
        if schema.single and data.shape == schema.shape and not any(start_t):
            # the whole of a one-chunk array: the common case of profile ingest
            buf = data if schema.dtype.is_string else data.copy()
            old = arr.dirty.get(0)
            if old is not None:
                self._dirty_bytes -= old.nbytes if not schema.dtype.is_string else 64 * old.size
            arr.dirty[0] = buf
            self._dirty_bytes += buf.nbytes if not schema.dtype.is_string else 64 * buf.size
        else:
            stop = tuple(s + n for s, n in zip(start_t, data.shape, strict=True))
            if any(e > s for e, s in zip(stop, schema.shape, strict=True)):
                raise RuntimeError(
                    f"write of shape {list(data.shape)} at {list(start_t)} is out of bounds for array "
                    f"{name!r} of shape {list(schema.shape)}"
                )
            self._write_chunks(arr, start_t, stop, data)
        arr.written = True
        arr.changed = True
        self._changed_arrays[arr.aid] = arr
        self._changed = True
        if self._dirty_bytes > self.buffer_bytes:
            self._spill()

    def _write_chunks(self, arr: ArrayState, start: tuple[int, ...], stop: tuple[int, ...], data: np.ndarray) -> None:
        schema = arr.schema
        cs = schema.chunk_shape
        ranges = [range(a // c, (b - 1) // c + 1) for a, b, c in zip(start, stop, cs, strict=True)]
        coords_list = list(np.ndindex(*[len(r) for r in ranges])) if ranges else [()]
        need_load = []
        covered: set[int] = set()
        for rel in coords_list:
            coords = tuple(r[i] for r, i in zip(ranges, rel, strict=True))
            cid = sum(c * s for c, s in zip(coords, schema.strides, strict=True))
            if cid in arr.dirty:
                continue
            extent = schema.chunk_extent(coords)
            origin = [c * n for c, n in zip(coords, cs, strict=True)]
            if all(a <= o and o + e <= b for a, b, o, e in zip(start, stop, origin, extent, strict=True)):
                # the write covers this chunk: no need to read what it replaces
                part = tuple(slice(o - a, o - a + e) for a, o, e in zip(start, origin, extent, strict=True))
                buf = np.array(data[part], copy=True, order="C")
                arr.dirty[cid] = buf
                covered.add(cid)
                self._dirty_bytes += buf.nbytes if not schema.dtype.is_string else 64 * buf.size
            else:
                need_load.append((cid, coords))
        if need_load:
            loaded = self._read_chunks_for_update(arr, need_load)
            for cid, buf in loaded.items():
                arr.dirty[cid] = buf
                self._dirty_bytes += buf.nbytes if not schema.dtype.is_string else 64 * buf.size
        for rel in coords_list:
            coords = tuple(r[i] for r, i in zip(ranges, rel, strict=True))
            cid = sum(c * s for c, s in zip(coords, schema.strides, strict=True))
            if cid in covered:
                continue
            buf = arr.dirty[cid]
            c0 = [c * n for c, n in zip(coords, cs, strict=True)]
            src = []
            dst = []
            for a, b, o, ext in zip(start, stop, c0, buf.shape, strict=True):
                lo = max(a, o)
                hi = min(b, o + ext)
                src.append(slice(lo - a, hi - a))
                dst.append(slice(lo - o, hi - o))
            buf[tuple(dst)] = data[tuple(src)]

    def _read_chunks_for_update(self, arr: ArrayState, wanted: list[tuple[int, tuple[int, ...]]]) -> dict[int, np.ndarray]:
        """Current content of chunks about to be partly overwritten (stored or fresh fill)."""
        schema = arr.schema
        out: dict[int, np.ndarray] = {}
        sources = self._locate(arr, [cid for cid, _ in wanted])
        stored = [(cid, coords, src) for (cid, coords), src in zip(wanted, sources, strict=True) if src is not None]
        decoded = self._decode_chunks(arr, [(cid, coords, src) for cid, coords, src in stored])
        for cid, coords in wanted:
            buf = decoded.get(cid)
            if buf is None:
                buf = schema.new_chunk(schema.chunk_extent(coords))
            elif not _sole_owner(buf):  # else a huge chunk decoded for this write alone
                buf = np.array(buf, copy=True)
            out[cid] = buf
        return out

    # ------------------------------------------------------------------ locating and decoding chunks

    def _locate(self, arr: ArrayState, cids: list[int]) -> list[tuple[Variable, np.void] | None]:
        """Stored location (pending first, then committed) of each chunk, or None."""
        var = self._variables[arr.name]
        out: list[tuple[Variable, np.void] | None] = []
        committed = self._index(var)
        for cid in cids:
            j = var.pending.find(arr.aid, cid) if len(var.pending) else -1
            if j >= 0:
                out.append((var, var.pending.rows[j]))
                continue
            j = committed.find(arr.aid, cid)
            out.append((var, committed.rows[j]) if j >= 0 else None)
        return out

    def _describe_block(self, var: Variable) -> Any:
        def describe(k: BlockKey) -> str:
            return f"segment {self._storage.location}/{k[0]} at offset {k[1]} (variable {var.name!r})"

        return describe

    def _get_blocks(
        self, var: Variable, rows: np.ndarray, cache: CacheMode = "decoded", segs: list[tuple[str, int]] | None = None
    ) -> dict[BlockKey, np.ndarray]:
        """Decoded blocks of index rows; ``segs`` is the segment list the rows refer to
        (the variable's current one unless a commit in progress passes its new list)."""
        if segs is None:
            segs = var.all_segments()
        wanted: dict[BlockKey, tuple[int, int, int, int, int]] = {}
        seg_col = rows["seg"].tolist()
        off_col = rows["offset"].tolist()
        len_col = rows["length"].tolist()
        raw_col = rows["raw_size"].tolist()
        crc_col = rows["crc"].tolist()
        codec_col = rows["codec"].tolist()
        item_col = rows["filter"].tolist()
        for i in range(len(seg_col)):
            key = (segs[seg_col[i]][0], off_col[i])
            if key not in wanted:
                wanted[key] = (len_col[i], raw_col[i], crc_col[i], codec_col[i], item_col[i])
        try:
            return fetch_blocks(
                self._storage.get_many_ranges, self._cache, wanted, self._describe_block(var), cache
            )
        except FileNotFoundError as e:
            raise self._missing_error(f"a segment of variable {var.name!r} is missing: {e}") from None

    def _chunk_from_block(self, schema: Schema, block: np.ndarray, within: int, nbytes: int, extent: tuple[int, ...]) -> np.ndarray:
        """The chunk of ``extent`` cells at ``within`` in a decoded block: one view straight on
        the block (decoded cells for strings); ValueError when it does not fit there."""
        ncells = schema.size if extent is schema.shape else math.prod(extent)
        if schema.dtype.is_string:
            return decode_strings(block[within : within + nbytes], ncells).reshape(extent)
        if nbytes != ncells * schema.dtype.numpy.itemsize or within + nbytes > block.nbytes:
            raise ValueError(f"{nbytes} bytes at {within} of a {block.nbytes}-byte block")
        return np.ndarray(extent, schema.dtype.numpy, block, within)

    def _decode_chunks(self, arr: ArrayState, items: list[tuple[int, tuple[int, ...], tuple[Variable, np.void]]]) -> dict[int, np.ndarray]:
        if not items:
            return {}
        var = items[0][2][0]
        rows = np.array([src[1] for _, _, src in items], dtype=items[0][2][1].dtype)
        try:
            blocks = self._get_blocks(var, rows)
        except CorruptionError as e:
            raise CorruptionError(f"dataset {arr.dataset!r}, array {arr.name!r}: {e}") from None
        segs = var.all_segments()
        out = {}
        for (cid, coords, _), r in zip(items, rows, strict=True):
            block = blocks[(segs[int(r["seg"])][0], int(r["offset"]))]
            extent = arr.schema.chunk_extent(coords)
            try:
                out[cid] = self._chunk_from_block(arr.schema, block, int(r["within"]), int(r["nbytes"]), extent)
            except ValueError as e:
                raise CorruptionError(
                    f"dataset {arr.dataset!r}, array {arr.name!r}: chunk {cid} does not fit its block: {e}"
                ) from None
        return out

    # ------------------------------------------------------------------ reading

    def _window(self, schema: Schema, start: Any, shape: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Validated, clipped window ``(start, stop)``; memoised for the usual tuple/list inputs."""
        ts, tn = type(start), type(shape)
        if (
            (ts is list or ts is tuple) and len(start) == 1 and type(start[0]) is int
            and (shape is None or ((tn is list or tn is tuple) and len(shape) == 1 and type(shape[0]) is int))
        ):  # the usual 1-D window, checked without generators
            key: tuple[Any, ...] = (schema.shape, (start[0],), None if shape is None else (shape[0],))
        else:
            plain = (start is None or (ts in (list, tuple) and all(type(v) is int for v in start))) and (
                shape is None or (tn in (list, tuple) and all(type(v) is int for v in shape))
            )
            if not plain:
                return self._check_window(schema, start, shape)
            key = (schema.shape, None if start is None else tuple(start), None if shape is None else tuple(shape))
        hit = self._windows.get(key)
        if hit is None:
            shp = schema.shape
            if len(shp) == 1 and key[1] is not None and len(key[1]) == 1 and (key[2] is None or len(key[2]) == 1):
                # 1-D with plain ints: validation is the sign check, the rest is clipping
                a = key[1][0]
                if a < 0 or (key[2] is not None and key[2][0] < 0):
                    return self._check_window(schema, start, shape)  # raises the right error
                n = shp[0]
                lo = min(a, n)
                hi = n if key[2] is None else min(a + key[2][0], n)
                hit = ((lo,), (max(lo, hi),))
            else:
                hit = self._check_window(schema, start, shape)
            if len(self._windows) > 4096:
                self._windows.clear()
            self._windows[key] = hit
        return hit

    def _check_window(self, schema: Schema, start: Any, shape: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return clip_window(schema.shape, start, shape)

    def _finish(self, schema: Schema, out: np.ndarray) -> np.ndarray:
        if schema.dtype.kind == "timestamp":
            return out.view("datetime64[ns]")
        return out

    def _read(self, arr: ArrayState, start: Any, shape: Any) -> np.ndarray:
        schema = arr.schema
        if start is None and shape is None:
            st, stop = (0,) * len(schema.shape), schema.shape
            window = None
        else:  # arguments checked before any I/O
            st, stop = window = self._window(schema, start, shape)
        if schema.single:
            chunk = self._single_chunk(arr)
            own = not arr.dirty and chunk is not None and _sole_owner(chunk)
            return self._read_single(schema, chunk, window, own)
        out_shape = tuple(b - a for a, b in zip(st, stop, strict=True))
        out = np.empty(out_shape, dtype=schema.dtype.numpy)
        if out.size == 0:
            return self._finish(schema, out)
        self._fill_window(arr, st, stop, out)
        return self._finish(schema, out)

    def _read_single(
        self,
        schema: Schema,
        chunk: np.ndarray | None,
        window: tuple[tuple[int, ...], tuple[int, ...]] | None,
        own: bool = False,
    ) -> np.ndarray:
        """A window (None: all) of a one-chunk array, given its chunk (None: never stored);
        ``own``: the chunk was decoded for this read alone and is returned as it is."""
        if window is None or (own and window[1] == schema.shape and not any(window[0])):
            if chunk is None:
                return self._finish(schema, schema.new_chunk(schema.shape))
            return self._finish(schema, chunk if own else chunk.copy())
        st, stop = window
        if chunk is None:
            out_shape = tuple(b - a for a, b in zip(st, stop, strict=True))
            return self._finish(schema, schema.new_chunk(out_shape))
        if len(st) == 1:
            return self._finish(schema, chunk[st[0] : stop[0]].copy())
        sl = tuple(slice(a, b) for a, b in zip(st, stop, strict=True))
        return self._finish(schema, sub_array(chunk, sl).copy())

    def _read_raw(self, ds: DatasetState, name: str, start: Any, shape: Any) -> np.ndarray | None:
        """Read one array of a dataset whose entries are still raw, building no array state
        for the usual one-chunk array (a loop over 10,000 datasets would build 50,000)."""
        entries = ds._raw_arrays  # taken once: another thread may build the states meanwhile
        if entries is None or type(name) is not str:
            arr = ds.arrays.get(name)  # the state path (and its errors for odd names)
            return None if arr is None else self._read(arr, start, shape)
        peeked = self._peeked.get((ds.name, name)) if self._peeked else None
        if peeked is not None:
            return self._read(peeked, start, shape)
        for entry in entries:
            if entry[0] == name:
                break
        else:
            return None
        aid, sidx = entry[1], entry[2]
        var = self._variables.get(name)
        if type(aid) is not int or var is None or not 0 < aid < self._next_id or type(sidx) is not int:
            arr = self._peek(ds.name, entries, name)  # raises the right error
            return None if arr is None else self._read(arr, start, shape)
        schema = self._schemas[sidx]
        if not schema.single:
            arr = self._one_array(ds, name)
            return None if arr is None else self._read(arr, start, shape)
        window = None if start is None and shape is None else self._window(schema, start, shape)
        loc = self._single_location(aid, var)
        chunk = None if loc is False else self._chunk_at(var, loc, schema, ds.name, name)
        return self._read_single(schema, chunk, window, chunk is not None and _sole_owner(chunk))

    def _owners(self, var: Variable, rows: np.ndarray, message: str) -> str:
        """Name the datasets whose chunks sit in the damaged block a message points at."""
        segs = var.all_segments()
        hit = {
            int(r["aid"]) for r in rows
            if f"{segs[int(r['seg'])][0]} at offset {int(r['offset'])} " in message
        }
        names = []
        for name in list(self._datasets):
            ds = self._materialize(name)
            if ds is not None:
                a = ds.arrays.get(var.name)
                if a is not None and a.aid in hit:
                    names.append(name)
        shown = ", ".join(repr(n) for n in names[:5]) + (" ..." if len(names) > 5 else "")
        return f"affects array {var.name!r} of dataset(s) {shown}"

    def _single_chunk(self, arr: ArrayState) -> np.ndarray | None:
        """The one chunk of a one-chunk array (a read-only view; None if never stored).

        This is the hot path of per-dataset loops: a cached location and a cached block.
        """
        if arr.dirty:
            return arr.dirty[0]
        var = self._variables[arr.name]
        loc = arr.loc
        if loc is None or arr.loc_gen != var.gen:
            loc = self._single_location(arr.aid, var)
            arr.loc = loc
            arr.loc_gen = var.gen
        if loc is False:
            return None
        return self._chunk_at(var, loc, arr.schema, arr.dataset, arr.name)

    def _chunk_at(self, var: Variable, loc: Any, schema: Schema, dataset: str, name: str) -> np.ndarray:
        """The chunk at a stored location (see ``_single_location``), from the block cache or
        read with the blocks that follow it."""
        key, within, nbytes, spec = loc
        block = self._cache.get(key)
        if block is None:
            wanted = {key: spec}
            if (
                var.index is not None and not len(var.pending) and loc[0][0] in self._seg_pos(var)
                and spec[1] <= self._cache.budget // 4  # read-ahead blocks are only of use cached
            ):
                # read ahead: loops over datasets in store order will want the next blocks
                seg_no = self._seg_pos(var)[key[0]]
                segs = var.segments
                for b in var.index.blocks_after(seg_no, key[1], READ_AHEAD_BLOCKS):
                    k = (segs[b[0]][0], b[1])
                    if self._cache.get(k) is None:
                        wanted[k] = b[2:]
            try:
                try:
                    block = fetch_blocks(
                        self._storage.get_many_ranges, self._cache, wanted, self._describe_block(var)
                    )[key]
                except (CorruptionError, FileNotFoundError):
                    if len(wanted) == 1:
                        raise
                    # a damaged neighbour must not fail this read: fetch just the block it needs
                    block = fetch_blocks(
                        self._storage.get_many_ranges, self._cache, {key: spec}, self._describe_block(var)
                    )[key]
            except VersionRemovedError:
                raise
            except CorruptionError as e:
                raise CorruptionError(f"dataset {dataset!r}, array {name!r}: {e}") from None
            except FileNotFoundError as e:
                raise self._missing_error(
                    f"dataset {dataset!r}, array {name!r}: a segment is missing: {e}"
                ) from None
        try:
            return self._chunk_from_block(schema, block, within, nbytes, schema.shape)
        except ValueError as e:
            raise CorruptionError(
                f"dataset {dataset!r}, array {name!r}: chunk does not fit its block: {e}"
            ) from None

    def _seg_pos(self, var: Variable) -> dict[str, int]:
        """Position of each committed segment of a variable (cached per index generation)."""
        memo = self._seg_positions.get(var.name)
        if memo is None or memo[0] != var.gen:
            memo = (var.gen, {k: i for i, (k, _) in enumerate(var.segments)})
            self._seg_positions[var.name] = memo
        return memo[1]

    def _single_location(self, aid: int, var: Variable) -> Any:
        """Location tuple of chunk 0 of an array, or False when it was never stored."""
        idx = var.pending
        j = idx.find(aid, 0) if len(idx) else -1
        if j < 0:
            idx = var.index if var.index is not None else self._index(var)
            j = idx.first_chunk_row(aid)
            if j < 0:
                return False
        seg, offset, length, raw, crc, codec, filter_id, within, nbytes = idx.location(j)
        segs = var.segments
        seg_key = segs[seg][0] if seg < len(segs) else var.pending_segments[seg - len(segs)][0]
        return (seg_key, offset), within, nbytes, (length, raw, crc, codec, filter_id)

    def _fill_window(self, arr: ArrayState, st: tuple[int, ...], stop: tuple[int, ...], out: np.ndarray) -> None:
        """Copy the window [st, stop) of ``arr`` into ``out`` (already allocated)."""
        schema = arr.schema
        cs = schema.chunk_shape
        ranges = [range(a // c, (b - 1) // c + 1) for a, b, c in zip(st, stop, cs, strict=True)]
        coords_list = [tuple(r[i] for r, i in zip(ranges, rel, strict=True)) for rel in np.ndindex(*[len(r) for r in ranges])] if ranges else [()]
        cids = [sum(c * s for c, s in zip(coords, schema.strides, strict=True)) for coords in coords_list]
        buffered: list[tuple[tuple[int, ...], np.ndarray]] = []
        missing = []
        for cid, coords in zip(cids, coords_list, strict=True):
            buf = arr.dirty.get(cid)
            if buf is not None:
                buffered.append((coords, buf))
            else:
                missing.append((cid, coords))
        stored: list[tuple[int, tuple[int, ...], tuple[Variable, np.void]]] = []
        if missing:
            srcs = self._locate(arr, [cid for cid, _ in missing])
            stored = [(cid, coords, src) for (cid, coords), src in zip(missing, srcs, strict=True) if src is not None]
        if len(buffered) + len(stored) < len(cids):
            out.fill(schema.fillscalar)

        def place(coords: tuple[int, ...], buf: np.ndarray) -> None:
            src = []
            dst = []
            for a, b, c, n, ext in zip(st, stop, coords, cs, buf.shape, strict=True):
                o = c * n
                lo = max(a, o)
                hi = min(b, o + ext)
                src.append(slice(lo - o, hi - o))
                dst.append(slice(lo - a, hi - a))
            out[tuple(dst)] = buf[tuple(src)]

        for coords, buf in buffered:
            place(coords, buf)
        # stored chunks are decoded a batch at a time: a read holds its result and one batch
        i = 0
        while i < len(stored):
            j, size = i + 1, int(stored[i][2][1]["nbytes"])
            while j < len(stored) and size + int(stored[j][2][1]["nbytes"]) <= SCAN_BATCH_BYTES:
                size += int(stored[j][2][1]["nbytes"])
                j += 1
            batch = stored[i:j]
            decoded = self._decode_chunks(arr, batch)
            for cid, coords, _ in batch:
                place(coords, decoded[cid])
            del decoded
            i = j

    # ------------------------------------------------------------------ cross-dataset reads

    def _across_arrays(self, array: str, names: Sequence[str]) -> list[ArrayState | None]:
        if isinstance(names, str):
            raise TypeError("names must be a list of dataset names, not a str")
        names = list(names)
        if not names:
            raise ValueError("names is empty: pass at least one dataset name")
        out: list[ArrayState | None] = []
        datasets = self._datasets
        peeked = self._peeked
        for n in names:
            rec = datasets.get(n) if type(n) is str else None
            if rec is None:
                out.append(None)
            elif type(rec) is list:
                arr = peeked.get((n, array))
                out.append(arr if arr is not None else self._peek(n, rec[2], array))
            elif rec.arrays_untouched:  # type: ignore[union-attr]
                arr = peeked.get((n, array))
                out.append(arr if arr is not None else self._peek(n, rec._raw_arrays, array))  # type: ignore[union-attr]
            else:
                out.append(rec.arrays.get(array))  # type: ignore[union-attr]
        return out

    def _one_array(self, ds: DatasetState, array: str) -> ArrayState | None:
        """One array's state of a dataset whose entries are still raw, the others left raw
        (it joins them when they are built)."""
        entries = ds._raw_arrays
        if entries is None:  # built meanwhile (another thread)
            return ds.arrays.get(array)
        arr = self._peeked.get((ds.name, array))
        if arr is None:
            arr = self._peek(ds.name, entries, array)
            if ds._raw_arrays is None:  # built while this one was made: use the built one
                self._peeked.pop((ds.name, array), None)
                return ds.arrays.get(array)
        return arr

    def _peek(self, name: str, entries: Any, array: str) -> ArrayState | None:
        """One array of a dataset still in manifest form, without decoding the rest of it.

        The state is kept and reused when the dataset is materialised later, so there is
        only ever one state per array.
        """
        try:
            for entry in entries:
                if entry[0] == array:
                    aname, aid, sidx, stats, aattrs = entry
                    if type(aid) is not int or array not in self._variables or not 0 < aid < self._next_id:
                        raise TypeError("bad array id or unknown variable")
                    arr = ArrayState.from_record(aname, aid, self._schemas[sidx], name, stats, aattrs, self._where)
                    self._peeked[(name, array)] = arr
                    return arr
        except (TypeError, ValueError, IndexError) as e:
            raise CorruptionError(
                f"manifest of {self._storage.location}, dataset {name!r}: array entry is malformed: {e}"
            ) from None
        return None

    @retry_if_swapped
    def read_array_across(
        self,
        array: str,
        names: Sequence[str],
        start: Sequence[int] | None = None,
        shape: Sequence[int] | None = None,
    ) -> list[np.ndarray | None]:
        """Read one array from many datasets; ``None`` where a dataset lacks it.

        Each array is the caller's own (writable, sharing no values with another), though
        arrays read whole from one block may be views of one buffer, as numpy slices are."""
        arrs = self._across_arrays(array, names)
        if all(a is None for a in arrs):
            raise KeyError(f"none of the listed datasets has an array named {array!r}")
        results: list[np.ndarray | None] = [None] * len(arrs)
        jobs = []
        fast: list[tuple[int, ArrayState, tuple[slice, ...] | None]] = []
        var = self._variables.get(array)
        can_fast = var is not None and not len(var.pending)
        for i, a in enumerate(arrs):
            if a is None:
                continue
            schema = a.schema
            if can_fast and schema.single and not a.dirty:
                if start is None and shape is None:
                    fast.append((i, a, None))
                else:
                    st, stop = self._window(schema, start, shape)
                    fast.append((i, a, window_slices(st, stop)))
                continue
            if start is None and shape is None:
                st, stop = (0,) * len(schema.shape), schema.shape
            else:
                st, stop = self._window(schema, start, shape)
            out = np.empty(tuple(b - x for x, b in zip(st, stop, strict=True)), dtype=schema.dtype.numpy)
            jobs.append((a, st, stop, out))
            results[i] = out
        self._scan(array, jobs)
        for i, r in enumerate(results):
            if r is not None:
                a = arrs[i]
                assert a is not None
                results[i] = self._finish(a.schema, r)
        if fast:
            assert var is not None

            def emit(i: int, chunk: np.ndarray | None, a: ArrayState, sl: tuple[slice, ...] | None, own: bool) -> None:
                schema = a.schema
                if chunk is None:
                    shape_ = schema.shape if sl is None else tuple(x.stop - x.start for x in sl)
                    out = schema.new_chunk(shape_)
                elif own and sl is None:
                    out = chunk  # a piece of a block decoded for this call alone
                else:
                    out = (chunk if sl is None else sub_array(chunk, sl)).copy()
                results[i] = self._finish(schema, out)

            self._scan_single(var, fast, emit)
        return results

    def _scan_single(
        self,
        var: Variable,
        items: list[tuple[int, ArrayState, tuple[slice, ...] | None]],
        emit: Callable[[int, np.ndarray | None, ArrayState, tuple[slice, ...] | None, bool], None],
    ) -> None:
        """Bulk read of one-chunk arrays with nothing buffered: one index lookup per array,
        blocks fetched and decoded together (in bounded batches), each chunk handed to ``emit``
        as a view into its block (``None`` when it was never stored).

        The last argument of ``emit`` says the view is the caller's to keep: its block was
        decoded for this call alone (not cached, not shared), the wanted chunks tile it
        exactly, and no other item views the same chunk. Keeping such views saves a copy
        and the memory of a second one."""
        idx = self._index(var)
        first = idx.first_chunk_row
        rows = [first(a.aid) for _, a, _ in items]
        seg_keys = [k for k, _ in var.all_segments()]
        by_block: dict[BlockKey, list[int]] = {}
        wanted: dict[BlockKey, tuple[int, int, int, int, int]] = {}
        locs: list[tuple[int, int] | None] = []
        needed = 0  # what the caller keeps: whole chunks, or the windows' share of them
        for pos, j in enumerate(rows):
            i, a, sl = items[pos]
            if j < 0:
                locs.append(None)
                emit(i, None, a, sl, False)
                continue
            seg, offset, length, raw, crc, codec, filter_id, within, nbytes = idx.location(j)
            key = (seg_keys[seg], offset)
            if key not in wanted:
                wanted[key] = (length, raw, crc, codec, filter_id)
                by_block[key] = []
            by_block[key].append(pos)
            locs.append((within, nbytes))
            size = a.schema.size
            needed += nbytes if sl is None or not size else nbytes * math.prod(x.stop - x.start for x in sl) // size
        total = sum(w[1] for w in wanted.values())
        mode = self._scan_cache_mode(total, sum(w[0] for w in wanted.values()), needed)
        # blocks that stay cached may come in big batches; others only a batch at a time
        limit = SCAN_BATCH_BYTES if mode == "decoded" else min(SCAN_BATCH_BYTES, max(self._storage.scan_batch_bytes, total // 16))
        keys = list(wanted)
        b0 = 0
        while b0 < len(keys):
            acc = 0
            b1 = b0
            while b1 < len(keys) and (b1 == b0 or acc + wanted[keys[b1]][1] <= limit):
                acc += wanted[keys[b1]][1]
                b1 += 1
            batch = {k: wanted[k] for k in keys[b0:b1]}
            try:
                blocks = fetch_blocks(
                    self._storage.get_many_ranges, self._cache, batch, self._describe_block(var), mode
                )
            except CorruptionError as e:
                hit = {items[p][1].dataset for k in batch for p in by_block[k] if k[0] in str(e) and f"offset {k[1]} " in str(e)}
                shown = ", ".join(repr(n) for n in sorted(hit)[:5])
                raise CorruptionError(f"{e}; affects array {var.name!r} of dataset(s) {shown}") from None
            except FileNotFoundError as e:
                raise self._missing_error(f"a segment of variable {var.name!r} is missing: {e}") from None
            for key, block in blocks.items():
                # a fresh block is writable (cached ones are not); one view per chunk
                whole = False
                if block.flags.writeable:  # and the chunks tile it exactly (a damaged index could overlap them)
                    spans: dict[int, int] = {}
                    for p in by_block[key]:
                        w, nb = locs[p]  # type: ignore[misc]
                        spans[w] = max(nb, spans.get(w, 0))
                    end = 0
                    for w in sorted(spans):
                        if w != end:
                            break
                        end += spans[w]
                    whole = end == block.nbytes
                seen: set[int] = set()
                for pos in by_block[key]:
                    i, a, sl = items[pos]
                    within, nbytes = locs[pos]  # type: ignore[misc]
                    own = whole and within not in seen
                    seen.add(within)
                    schema = a.schema
                    try:
                        chunk = self._chunk_from_block(schema, block, within, nbytes, schema.shape)
                    except ValueError as e:
                        raise CorruptionError(
                            f"dataset {a.dataset!r}, array {a.name!r}: chunk does not fit its block: {e}"
                        ) from None
                    emit(i, chunk, a, sl, own and not schema.dtype.is_string)
            b0 = b1

    def _scan_cache_mode(self, decoded: int, stored: int, result: int) -> CacheMode:
        """How a bulk read keeps blocks, so that its peak memory stays within 1.5x its result:
        the decoded blocks when they are at most a quarter of the result, else their stored
        (compressed) bytes when those are, else nothing (the rest of the half is left to the
        batch in flight and per-dataset state). It uses whatever is cached either way."""
        room = min(self._cache.budget // 2, result // 4)
        if decoded <= room:
            return "decoded"
        if stored <= room:
            return "stored"
        return "read"

    @retry_if_swapped
    def read_array_across_stacked(
        self,
        array: str,
        names: Sequence[str],
        start: Sequence[int] | None = None,
        shape: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Read one array from many datasets into one ndarray of shape ``(len(names), *shape)``."""
        arrs = self._across_arrays(array, names)
        names = list(names)
        for n, a in zip(names, arrs, strict=True):
            if a is None:
                raise KeyError(f"dataset {n!r} has no array named {array!r}")
        present = [a for a in arrs if a is not None]
        dtypes = {a.schema.dtype.name for a in present}
        if len(dtypes) > 1:
            raise TypeError(f"array {array!r} has different dtypes across these datasets: {sorted(dtypes)}")
        windows = []
        for a in present:
            schema = a.schema
            if start is None and shape is None:
                windows.append(((0,) * len(schema.shape), schema.shape))
            else:
                windows.append(self._window(schema, start, shape))
        shapes = {tuple(b - x for x, b in zip(st, stop, strict=True)) for st, stop in set(windows)}
        if len(shapes) > 1:
            raise ValueError(
                f"array {array!r} has different shapes across these datasets ({len(shapes)} distinct); "
                "pass start/shape to read a common window"
            )
        common = shapes.pop()
        dt = present[0].schema.dtype
        out = np.empty((len(present), *common), dtype=dt.numpy)
        var = self._variables.get(array)
        jobs = []
        fast: list[tuple[int, ArrayState, tuple[slice, ...] | None]] = []
        can_fast = var is not None and not len(var.pending)
        for i, (a, (st, stop)) in enumerate(zip(present, windows, strict=True)):
            if can_fast and a.schema.single and not a.dirty:
                full = stop == a.schema.shape and not any(st)
                fast.append((i, a, None if full else window_slices(st, stop)))
            else:
                jobs.append((a, st, stop, out[i, ...]))
        self._scan(array, jobs)
        if fast:
            assert var is not None

            def emit(i: int, chunk: np.ndarray | None, a: ArrayState, sl: tuple[slice, ...] | None, own: bool) -> None:
                if chunk is None:
                    out[i, ...] = a.schema.fillscalar
                else:
                    out[i, ...] = chunk if sl is None else sub_array(chunk, sl)

            self._scan_single(var, fast, emit)
        return self._finish(present[0].schema, out)

    def _scan(self, array: str, jobs: list[tuple[ArrayState, tuple[int, ...], tuple[int, ...], np.ndarray]]) -> None:
        """Fill many windows of one variable, fetching and decoding blocks in bulk batches."""
        var = self._variables.get(array)
        # (out, out slices, chunk extent, dirty buffer or row number in `rows`)
        pend_aids: list[int] = []
        pend_cids: list[int] = []
        pend_meta: list[tuple[np.ndarray, tuple[slice, ...], tuple[slice, ...], tuple[int, ...], Schema]] = []
        for arr, st, stop, out in jobs:
            if out.size == 0:
                continue
            schema = arr.schema
            cs = schema.chunk_shape
            if schema.single:
                full = tuple(slice(a, b) for a, b in zip(st, stop, strict=True))
                if arr.dirty:
                    out[...] = arr.dirty[0][full]
                    continue
                pend_aids.append(arr.aid)
                pend_cids.append(0)
                pend_meta.append((out, ..., full, schema.shape, schema))  # type: ignore[arg-type]
                continue
            else:
                ranges = [range(a // c, (b - 1) // c + 1) for a, b, c in zip(st, stop, cs, strict=True)]
                coords_list = [tuple(r[i] for r, i in zip(ranges, rel, strict=True)) for rel in np.ndindex(*[len(r) for r in ranges])]
            chunk_ids = [sum(c * s for c, s in zip(coords, schema.strides, strict=True)) for coords in coords_list]
            if not all(cid in arr.dirty for cid in chunk_ids):
                out.fill(schema.fillscalar)  # cells of chunks never written stay the fill value
            for coords, cid in zip(coords_list, chunk_ids, strict=True):
                extent = schema.chunk_extent(coords)
                src = []
                dst = []
                for a, b, c, n, ext in zip(st, stop, coords, cs, extent, strict=True):
                    o = c * n
                    lo = max(a, o)
                    hi = min(b, o + ext)
                    src.append(slice(lo - o, hi - o))
                    dst.append(slice(lo - a, hi - a))
                buf = arr.dirty.get(cid)
                if buf is not None:
                    out[tuple(dst)] = buf[tuple(src)]
                    continue
                pend_aids.append(arr.aid)
                pend_cids.append(cid)
                pend_meta.append((out, tuple(dst), tuple(src), extent, schema))
        if not pend_aids:
            return
        if var is None:
            for out, _, _, _, schema in pend_meta:
                out.fill(schema.fillscalar)
            return
        aids = np.asarray(pend_aids, dtype=np.uint64)
        cids = np.asarray(pend_cids, dtype=np.uint64)
        committed = self._index(var)
        found_c = committed.find_many(aids, cids)
        found_p = var.pending.find_many(aids, cids) if len(var.pending) else np.full(len(aids), -1)
        # gather rows: pending wins over committed
        use_p = found_p >= 0
        use_c = (~use_p) & (found_c >= 0)
        sel = np.flatnonzero(use_p | use_c)
        for k in np.flatnonzero(~(use_p | use_c)).tolist():
            out, where_, _, _, schema = pend_meta[k]
            if where_ is ...:
                out.fill(schema.fillscalar)  # a one-chunk array never written
        if len(sel) == 0:
            return
        rows = empty_rows(len(sel))
        p_sel = use_p[sel]
        if p_sel.any():
            rows[p_sel] = var.pending.rows[found_p[sel][p_sel]]
        if (~p_sel).any():
            rows[~p_sel] = committed.rows[found_c[sel][~p_sel]]
        segs = var.all_segments()
        seg_keys = [k for k, _ in segs]
        # batch by raw bytes so decoded blocks held at once stay small next to the result;
        # blocks are cached only when they are not much bigger than what the reads need
        raw = rows["raw_size"]
        order = np.lexsort((rows["offset"], rows["seg"]))
        result_bytes = sum({id(m[0]): int(m[0].nbytes) for m in pend_meta}.values())
        batch_budget = min(SCAN_BATCH_BYTES, max(self._storage.scan_batch_bytes, result_bytes // 16))
        block_ids = np.stack([rows["seg"].astype(np.int64), rows["offset"].astype(np.int64)], axis=1)
        first = np.unique(block_ids, axis=0, return_index=True)[1]
        mode = self._scan_cache_mode(int(raw[first].sum()), int(rows["length"][first].sum()), result_bytes)
        start_i = 0
        n = len(order)
        while start_i < n:
            acc = 0
            end_i = start_i
            seen: set[tuple[int, int]] = set()
            while end_i < n:
                r = order[end_i]
                bk = (int(rows["seg"][r]), int(rows["offset"][r]))
                if bk not in seen:
                    if acc and acc + int(raw[r]) > batch_budget:
                        break
                    seen.add(bk)
                    acc += int(raw[r])
                end_i += 1
            batch = order[start_i:end_i]
            brows = rows[batch]
            try:
                blocks = self._get_blocks(var, brows, cache=mode)
            except CorruptionError as e:
                raise CorruptionError(f"{e}; {self._owners(var, brows, str(e))}") from None
            within = brows["within"].tolist()
            nbytes = brows["nbytes"].tolist()
            bseg = brows["seg"].tolist()
            boff = brows["offset"].tolist()
            for j, ri in enumerate(batch.tolist()):
                out, dst_t, src_t, extent, schema = pend_meta[int(sel[ri])]
                block = blocks[(seg_keys[bseg[j]], boff[j])]
                try:
                    chunk = self._chunk_from_block(schema, block, within[j], nbytes[j], extent)
                except ValueError as e:
                    raise CorruptionError(f"a chunk of variable {array!r} does not fit its block: {e}") from None
                out[dst_t] = chunk[src_t]
            start_i = end_i

    # ------------------------------------------------------------------ attributes

    def _set_attr(self, target: dict[str, tuple[str, Any]], key: Any, value: Any, dtype: Any) -> None:
        self._check_writable()
        check_key(key)
        kv = infer_attribute(value) if dtype is None else coerce_attribute(value, dtype)
        target[key] = kv
        self._changed = True

    # ------------------------------------------------------------------ flush

    def _payloads(self, arrays: Iterable[ArrayState]) -> Iterator[tuple[str, list[ChunkPayload]]]:
        """Turn every buffered chunk into a payload with stats, one variable at a time."""
        by_var: dict[str, list[tuple[ArrayState, int, np.ndarray]]] = {}
        for arr in arrays:
            if arr.dirty:
                lst = by_var.setdefault(arr.name, [])
                for cid in sorted(arr.dirty):
                    lst.append((arr, cid, arr.dirty[cid]))
        for vname, items in by_var.items():
            payloads: list[ChunkPayload | None] = [None] * len(items)
            groups: dict[str, list[int]] = {}
            for i, (arr, _, _) in enumerate(items):
                groups.setdefault(arr.schema.dtype.name, []).append(i)
            for dname, idx in groups.items():
                dt = DTYPES[dname]
                if dt.is_string:
                    for i in idx:
                        arr, cid, buf = items[i]
                        fill = arr.schema.fill
                        snulls = 0 if fill is None else int(np.count_nonzero(buf == fill))
                        payloads[i] = ChunkPayload(arr.aid, cid, 1, encode_strings(buf), buf.size, snulls, 0, 0, 0)
                    continue
                chunks = [items[i][2] for i in idx]
                fills = [items[i][0].schema.fill for i in idx]
                nulls, vmin, vmax, has = chunk_stats(dt, chunks, fills)
                itemsize = dt.itemsize
                is_float = dt.kind == "float"
                nl, mn, mx, hs = nulls.tolist(), vmin.tolist(), vmax.tolist(), has.tolist()
                for j, i in enumerate(idx):
                    arr, cid, buf = items[i]
                    raw = buf.reshape(-1).view(np.uint8)
                    payloads[i] = ChunkPayload(arr.aid, cid, itemsize, raw, buf.size, nl[j], mn[j], mx[j], hs[j], is_float)
            yield vname, [p for p in payloads if p is not None]

    def _write_ahead(self, arrays: Iterable[ArrayState]) -> list[tuple[Variable, np.ndarray, list[tuple[str, int]], list[ArrayState]]]:
        """Write buffered chunks to new segments; return what to attach (not yet attached)."""
        arrays = [a for a in arrays if a.dirty]
        by_name: dict[str, list[ArrayState]] = {}
        for a in arrays:
            by_name.setdefault(a.name, []).append(a)
        started = []
        for vname, payloads in self._payloads(arrays):
            var = self._variables[vname]
            started.append((var, start_segments(var.vid, payloads, self._codec), by_name[vname]))
        result = []
        puts = ParallelPuts(self._storage)
        try:
            for var, finish, arrs in started:
                first_seg = len(var.segments) + len(var.pending_segments)
                rows, segs = finish(puts.put, first_seg)
                result.append((var, rows, segs, arrs))
        finally:
            puts.wait()
        return result

    def _spill(self) -> None:
        """Write buffered chunks ahead so memory stays bounded (invisible until flush)."""
        arrays = [a for a in self._changed_arrays.values() if a.dirty]
        for var, rows, segs, arrs in self._write_ahead(arrays):
            var.pending = ChunkIndex(merge_rows([var.pending.rows, rows]))
            var.pending_segments.extend(segs)
            var.changed = True
            var.gen += 1
            for a in arrs:
                a.dirty.clear()
        self._dirty_bytes = 0

    def flush(self) -> None:
        """Commit every buffered change atomically as a new version (no-op when unchanged).

        ``ConflictError`` if another writer committed since this handle's version (nothing
        is written over it). A flush that raises committed nothing, except
        ``CommitOutcomeUnknownError``: then call ``flush()`` again, which finishes the
        commit if it had landed and commits again if it had not."""
        if self._unsettled is not None and self._settle():
            return
        if self._read_only or not self._changed:
            return
        self._commit()

    def _settle(self) -> bool:
        """Find out whether the unsettled commit landed; True if it did (and is now installed)."""
        u = self._unsettled
        assert u is not None
        outcome = commit_outcome(self._storage, u.key, u.version, u.token)  # may raise: stays unsettled
        self._unsettled = None
        if outcome == "ours":
            u.install()
            return True
        if outcome == "theirs":
            u.lost()  # raises ConflictError
        return False

    def close(self) -> None:
        """Same as :meth:`flush`; the handle stays usable."""
        self.flush()

    def _commit(self, rewrite: dict[str, tuple[ChunkIndex, list[tuple[str, int]]]] | None = None) -> None:
        """Write data, indexes and the next manifest; swap in-memory state only on success."""
        # 1. data written ahead for every buffered chunk (string stats taken from buffers first)
        string_stats_now = {
            a.aid: string_stats(a.schema.size, a.schema.size, [a.dirty[0]], a.schema.fill)
            for a in self._changed_arrays.values()
            if a.schema.dtype.is_string and a.schema.single and 0 in a.dirty and not a.deleted
        }
        attach = self._write_ahead(list(self._changed_arrays.values()))
        pending = {id(v): (v, rows, segs) for v, rows, segs, _ in attach}
        # 2. merged indexes for changed variables
        try:
            new_vars, checks = self._merged_indexes(pending, rewrite)
        except (CorruptionError, VersionRemovedError):
            if self._store_moved_on():  # a compaction removed what this old version named
                raise self._conflict_error(self._version + 1) from None
            raise
        self._check_written_ahead()
        with mf.paused_gc():  # builds ~10^5 short-lived containers, none of them cyclic
            # 3. stats for arrays whose data changed
            new_stats = self._new_stats(new_vars, string_stats_now)
            # 4. manifest
            version = self._version + 1
            token = new_token()
            doc = self._manifest_doc(version, new_vars, new_stats, checks)
            header = {
                "atlas": "manifest",
                "format_version": mf.FORMAT_VERSION,
                "version": version,
                "timestamp": history.now_iso(),
                "commit": token,
                "datasets": len(self._datasets),
                "arrays": sum(1 for v in self._variables.values() if v.live > 0),
            }
            data = mf.encode_manifest(doc, header, self._meta_format, self._meta_compression)
            del doc

        def lost() -> None:
            # nothing of ours is referenced: the files written above are orphans for compact()
            for var, rows, segs in pending.values():
                var.pending = ChunkIndex(merge_rows([var.pending.rows, rows]))
                var.pending_segments.extend(segs)
                var.changed = True
                var.gen += 1
            for _, _, _, arrs in attach:
                for a in arrs:
                    a.dirty.clear()
            self._dirty_bytes = 0
            raise self._conflict_error(version)

        def install() -> None:
            for vname, (key, segs, idx) in new_vars.items():
                var = self._variables[vname]
                var.index_check = checks.get(key) if key is not None else None
                var.index_key = key
                var.segments = segs
                var.index = idx
                var.pending = ChunkIndex(empty_rows())
                var.pending_segments = []
                var.dead_aids.clear()
                var.changed = False
                var.gen += 1
            for _, _, _, arrs in attach:
                for a in arrs:
                    a.dirty.clear()
            for aid, st in new_stats.items():
                arr = self._changed_arrays[aid]
                arr.stats = st
                arr.changed = False
            self._changed_arrays.clear()
            self._dirty_bytes = 0
            self._version = version
            self._changed = False
            self._state_gen += 1
            if rewrite:
                self._cache.clear()
            self._after_commit(version)

        key = self._manifest_key(version)
        try:
            landed = publish(self._storage, key, version, data, token)
        except CommitOutcomeUnknownError:
            self._unsettled = UnsettledCommit(version, key, token, install, lost)
            raise
        if not landed:
            lost()
        install()

    def _merged_indexes(
        self,
        pending: dict[int, tuple[Variable, np.ndarray, list[tuple[str, int]]]],
        rewrite: dict[str, tuple[ChunkIndex, list[tuple[str, int]]]] | None,
    ) -> tuple[dict[str, tuple[str | None, list[tuple[str, int]], ChunkIndex]], dict[str, tuple[int, int]]]:
        """Write the new index of every changed variable.

        Returns (key, segments, index) by variable name, and (length, payload checksum) by
        index key, which the manifest records so that a replaced index file is noticed."""
        new_vars: dict[str, tuple[str | None, list[tuple[str, int]], ChunkIndex]] = {}
        checks: dict[str, tuple[int, int]] = {}
        puts = ParallelPuts(self._storage)
        try:
            for var in self._variables.values():
                extra = pending.get(id(var))
                if rewrite is not None and var.name in rewrite:
                    idx, segs = rewrite[var.name]
                elif var.changed or extra is not None:
                    parts = [self._index(var).rows, var.pending.rows]
                    segs = list(var.segments) + list(var.pending_segments)
                    if extra is not None:
                        parts.append(extra[1])
                        segs.extend(extra[2])
                    merged = merge_rows(parts)
                    if var.dead_aids:
                        merged = merged[~np.isin(merged["aid"], np.fromiter(var.dead_aids, dtype=np.uint64))]
                    idx = ChunkIndex(merged)
                else:
                    continue
                key = None
                if len(idx):
                    key = new_key("index", var.vid, "idx")
                    data = idx.to_bytes()
                    checks[key] = index_check(data)
                    puts.put(key, data)
                new_vars[var.name] = (key, segs, idx)
        finally:
            puts.wait()
        return new_vars, checks

    def _check_written_ahead(self) -> None:
        """ConflictError if a segment written ahead by this handle was deleted meanwhile."""
        keys = [k for var in self._variables.values() for k, _ in var.pending_segments]
        if not keys:
            return
        present = run_concurrently(self._storage.exists, keys)
        gone = [k for k, ok in zip(keys, present, strict=True) if not ok]
        if gone:
            raise ConflictError(
                f"{len(gone)} segment(s) this handle wrote ahead to {self._storage.location} were deleted "
                f"meanwhile (first: {gone[0]}), by a compaction or garbage collection whose grace period "
                "was shorter than this write; nothing was committed. Write the changes again."
            )

    def _store_moved_on(self) -> bool:
        try:
            versions = self._manifest_versions()
        except Exception:
            return False
        return bool(versions) and versions[-1] > self._version

    def _conflict_error(self, version: int) -> ConflictError:
        return ConflictError(
            f"the store at {self._storage.location} moved on to version {version} or later since this "
            f"handle read version {self._version}; nothing was written over it. Reopen the store "
            "and apply your changes again."
        )

    def _after_commit(self, version: int) -> None:
        """Steps after a commit landed: none of them may fail the flush."""
        try:  # a hint for readers that cannot list (HTTP); never trusted alone
            self._storage.put(mf.LATEST_HINT_KEY, str(version).encode())
        except Exception:
            pass
        try:
            self._storage.mark_changed()
        except Exception:
            pass

    def _new_stats(
        self,
        new_vars: dict[str, tuple[str | None, list[tuple[str, int]], ChunkIndex]],
        string_now: dict[int, dict[str, Any]],
    ) -> dict[int, dict[str, Any] | None]:
        """Fresh stats of every changed array, folded from index rows in bulk."""
        out: dict[int, dict[str, Any] | None] = {}
        groups: dict[tuple[str, str], list[ArrayState]] = {}
        for arr in self._changed_arrays.values():
            if arr.deleted:
                continue
            if not arr.written:
                out[arr.aid] = None
            elif arr.aid in string_now:
                out[arr.aid] = string_now[arr.aid]
            elif arr.schema.dtype.is_string:
                var = self._variables[arr.name]
                idx = new_vars[arr.name][2] if arr.name in new_vars else self._index(var)
                out[arr.aid] = self._array_stats_from(arr, var, idx, new_vars.get(arr.name, (None, None, None))[1])
            else:
                groups.setdefault((arr.name, arr.schema.dtype.name), []).append(arr)
        for (vname, dname), arrs in groups.items():
            var = self._variables[vname]
            idx = new_vars[vname][2] if vname in new_vars else self._index(var)
            aids = np.fromiter((a.aid for a in arrs), dtype=np.uint64, count=len(arrs))
            lo = idx._aid.searchsorted(aids, "left")
            hi = idx._aid.searchsorted(aids, "right")
            folded = fold_many(DTYPES[dname], [a.schema.size for a in arrs], lo, hi, idx.rows)
            for a, st in zip(arrs, folded, strict=True):
                out[a.aid] = st
        return out

    def _array_stats_from(self, arr: ArrayState, var: Variable, idx: ChunkIndex, segs: list[tuple[str, int]] | None) -> dict[str, Any] | None:
        if not arr.written:
            return None
        schema = arr.schema
        row_count = math.prod(schema.shape)
        lo, hi = idx.span(arr.aid)
        r = idx.rows[lo:hi]
        if schema.dtype.is_string:
            values = []
            if len(r):
                seg_list = var.all_segments() if segs is None else segs
                blocks = self._get_blocks(var, r, segs=seg_list)
                for row in r:
                    block = blocks[(seg_list[int(row["seg"])][0], int(row["offset"]))]
                    within = int(row["within"])
                    piece = block[within : within + int(row["nbytes"])]
                    values.append(decode_strings(piece, int(row["ncells"])))
        return string_stats(row_count, int(r["ncells"].sum()) if len(r) else 0, values, schema.fill)

    def _manifest_doc(
        self,
        version: int,
        new_vars: dict[str, tuple[str | None, list[tuple[str, int]], ChunkIndex]],
        new_stats: dict[int, dict[str, Any] | None],
        checks: dict[str, tuple[int, int]],
    ) -> dict[str, Any]:
        datasets = []
        for name, ds in self._datasets.items():
            if not isinstance(ds, DatasetState):
                datasets.append(ds)
                continue
            if ds.arrays_untouched and ds._raw_attrs is not None:
                datasets.append([name, ds._raw_attrs[0], ds._raw_arrays])
                continue
            if ds.arrays_untouched:
                datasets.append([name, _encode_attrs(ds.attrs), ds._raw_arrays])
                continue
            arrays = []
            for aname, arr in ds.arrays.items():
                st = new_stats[arr.aid] if arr.aid in new_stats else arr.stats
                arrays.append([aname, arr.aid, arr.schema.pos, _encode_stats(arr.schema.dtype, st), _encode_attrs(arr.attrs)])
            datasets.append([name, _encode_attrs(ds.attrs), arrays])
        variables = []
        index_checks: dict[str, list[int]] = {}
        for vname, var in self._variables.items():
            if vname in new_vars:
                key, segs, idx = new_vars[vname]
                check = checks.get(key) if key is not None else None
            else:
                key, segs, check = var.index_key, var.segments, var.index_check
            live = var.live
            if live <= 0 and key is None:
                continue  # nothing left of this variable
            variables.append([vname, var.vid, key, [[k, s] for k, s in segs], live])
            if key is not None and check is not None:
                index_checks[key] = list(check)
        schemas = self._schemas.encoded()
        return {
            "index_checks": index_checks,
            "format_version": mf.FORMAT_VERSION,
            _VERSION_KEY: version,
            "parent": self._version if self._version >= 0 else None,
            "codec": self._codec,
            "next_id": self._next_id,
            "schemas": schemas,
            "variables": variables,
            "datasets": datasets,
        }

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
        self.flush()

    def __repr__(self) -> str:
        return f"<Atlas {self.location!r} datasets={len(self._datasets)} version={self._version}>"

    def __reduce__(self) -> tuple[Any, ...]:
        if self._changed:
            raise RuntimeError("flush() before pickling an Atlas handle: buffered changes cannot be sent")
        return (type(self).open, (self._storage, self._version if self._read_only else None))
