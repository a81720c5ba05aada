"""The in-memory model of the version a handle reads, and the lookups every core module
shares: datasets decoded from the manifest only when first used, array states, variables
with their lazily loaded chunk indexes, shared schemas.

``StoreModel`` is the seam between what a version holds and how it is held: the loading,
write, read, scan, commit and maintenance modules are functions over it, and
``atlas.core.atlas.Store`` (the handle) builds on it.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import numpy as np

from ..collector import paused_gc
from ..dtypes import DTYPES, fill_scalar
from ..errors import ConflictError, CorruptionError, ReadOnlyError
from ..executors import cpu_pool
from ..format import manifest as mf
from ..format.chunkindex import (
    ChunkIndex,
    columns_part,
    empty_columns,
    in_order,
    index_check,
    merge_rows,
)
from ..format.records import decode_checked, encode_attrs, encode_stats
from . import history
from .reader import BlockCache, without_frames
from .shards import Shard, array_entries
from .state import (
    ArrayState,
    DatasetState,
    IndexRun,
    Schema,
    SchemaTable,
    UnsettledCommit,
    Variable,
    schema_key,
)
from .table import DatasetTable

if TYPE_CHECKING:
    from ..storage.base import Storage

__all__ = ["STATE_ATTRIBUTES", "StoreModel"]

# What a handle holds of the version it reads (set by _reset and loading.install; swapped whole).
STATE_ATTRIBUTES = (
    "_version", "_manifest_where", "_where", "_schemas", "_datasets", "_fill_memo", "_windows",
    "_seg_positions", "_variables", "_next_id", "_base_id", "_dirty_bytes", "_changed",
    "_changed_arrays", "_string_stats", "_unsettled", "_unpublished", "_rewritten_ahead",
)


class StoreModel:
    """What a handle holds: its storage and settings, and the state of its version."""

    _storage: Storage
    _codec: str
    _meta_format: str
    _meta_compression: str
    _read_only: bool
    _read_only_why: str | None = None  # why a read-only handle is (errors say it)
    _cache: BlockCache
    _lock: threading.RLock
    buffer_bytes: int
    _state_gen: int  # bumped whenever committed state is swapped (reads in flight retry)
    _build_shared: Any  # _build_arrays bound once, shared by every dataset state

    def _reset(self) -> None:
        self._version = 0
        self._manifest_where = str(self._storage.location)
        self._where = f"manifest of {self._storage.location}"
        self._schemas = SchemaTable([], self._decode_schema_entry, self._schema_entry_key)
        self._datasets = DatasetTable([], _no_shards)
        self._fill_memo: dict[tuple[str, Any], tuple[Any, Any]] = {}
        self._windows: dict[Any, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self._seg_positions: dict[str, tuple[int, dict[str, int]]] = {}
        self._variables: dict[str, Variable] = {}
        self._next_id = 1
        self._base_id = 1  # next_id of the version read: ids from it on were taken by this handle
        self._dirty_bytes = 0
        self._changed = False  # anything to commit
        self._changed_arrays: dict[int, ArrayState] = {}
        self._string_stats: dict[int, dict[str, Any]] = {}  # of string arrays written ahead whole
        self._unsettled: UnsettledCommit | None = None  # a commit whose outcome is unknown
        self._unpublished: list[str] = []  # files of checkpoints the next commit publishes
        # the most stored datasets a commit rewrites with the new ones (None: as many as
        # table.SHARD_MERGE_RATIO allows); a long ingest sets it to bound what a commit decodes
        self._merge_limit: int | None = None
        self._rewritten_ahead: set[int] = set()  # ids of arrays whose chunks checkpoints rewrote

    def _manifest_key(self, version: int) -> str:
        return mf.manifest_key(version, self._meta_format, self._meta_compression)

    def _decode_schema_entry(self, s: Any) -> Schema:
        return self._decode_schema(s, self._manifest_where)

    def _schema_entry_key(self, s: Any) -> tuple[Any, ...]:
        try:
            dtype_name, shape, chunk, dims, fill = s
            return schema_key(
                dtype_name, tuple(shape), tuple(chunk), tuple(dims), decode_checked(dtype_name, fill)
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
        self._datasets.keep(name, ds)
        return ds

    def _build_arrays(self, ds: DatasetState, entries: list[Any]) -> dict[str, ArrayState]:
        """Array states of a dataset from its manifest entries, validating each."""
        name = ds.name
        where = self._where
        arrays: dict[str, ArrayState] = {}
        schemas = self._schemas
        variables = self._variables
        next_id = self._next_id
        from_record = ArrayState.from_record
        some = ds._some
        try:
            for aname, aid, sidx, stats, aattrs in entries:
                if type(aname) is not str or type(aid) is not int or aname in arrays or not 0 < aid < next_id:
                    raise TypeError("bad or repeated array name, or bad id")
                if aname.startswith("_") or "/" in aname or aname in ("", ".", ".."):
                    raise ValueError(f"invalid array name {aname!r}")
                if aname not in variables:
                    raise ValueError(f"array {aname!r} has no entry in the variable table")
                known = some.get(aname) if some else None  # built alone before: that is its state
                if known is None:
                    known = from_record(aname, aid, schemas[sidx], name, stats, aattrs, where)
                arrays[aname] = known
        except (TypeError, ValueError, IndexError) as e:
            raise CorruptionError(f"{where}, dataset {name!r}: array entry is malformed: {e}") from None
        return arrays

    def _read_only_reason(self) -> str:
        if getattr(self._storage, "read_only", False):
            return "read-only storage"
        return self._read_only_why or "an old version"  # set by Store.open

    def _check_writable(self) -> None:
        if self._read_only:
            raise ReadOnlyError(
                f"this handle on {self._storage.location} is read-only "
                f"({self._read_only_reason()})"
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
            try:
                var.index = self._decoded_index(var)
            except CorruptionError as e:  # its frames hold the runs read
                raise without_frames(e) from None
        return var.index

    def _decoded_index(self, var: Variable) -> ChunkIndex:
        """A variable's committed index, its runs fetched together. Runs whose sizes the
        manifest records are decoded in parallel, each into its own part of one table held
        by field; runs in order (appends) are then that table as it is, others are merged."""
        runs = var.runs
        if not runs:
            return ChunkIndex()
        counts = [r.rows for r in runs]
        if len(runs) == 1 or min(counts) < 0:  # one run, or sizes unknown (an older manifest)
            parts = self._decoded_runs(var, runs)
            return parts[0] if len(parts) == 1 else ChunkIndex(merge_rows([p.rows for p in parts]))
        found = self._fetched_runs(var, runs)
        sizes = [size for _, size in var.segments]
        limit = self._index_row_limit()
        table = empty_columns(sum(counts))
        starts = np.cumsum([0, *counts]).tolist()
        into = [columns_part(table, a, b) for a, b in itertools.pairwise(starts)]

        def decode(i: int) -> ChunkIndex:
            return ChunkIndex.from_bytes(found[i][0], found[i][1], sizes, limit, into[i])

        decoded = list(cpu_pool().map(decode, range(len(runs))))
        if in_order(into):
            return ChunkIndex(columns=table)
        return ChunkIndex(merge_rows([d.rows for d in decoded]))

    def _run_rows(self, var: Variable, runs: list[IndexRun]) -> list[np.ndarray]:
        """The rows of some runs of a variable's committed index (fetched together), each
        checked against what the manifest recorded of it."""
        try:
            return [idx.rows for idx in self._decoded_runs(var, runs)]
        except CorruptionError as e:  # its frames hold the runs read
            raise without_frames(e) from None

    def _decoded_runs(self, var: Variable, runs: list[IndexRun]) -> list[ChunkIndex]:
        """Some runs of a variable's committed index, fetched together and decoded one by
        one, each checked against the number of rows the manifest recorded of it."""
        sizes = [size for _, size in var.segments]
        limit = self._index_row_limit()
        out = []
        for r, (data, where) in zip(runs, self._fetched_runs(var, runs), strict=True):
            idx = ChunkIndex.from_bytes(data, where, sizes, limit)
            if r.rows >= 0 and len(idx) != r.rows:
                raise CorruptionError(f"chunk index {where} holds {len(idx)} rows; version {self._version} recorded {r.rows}")
            out.append(idx)
        return out

    def _fetched_runs(self, var: Variable, runs: list[IndexRun]) -> list[tuple[Any, str]]:
        """The bytes of some runs of a variable's committed index (fetched together) and
        where each is, each checked against the length and checksum the manifest recorded.
        Callers decompress them and drop them: the reads are transient."""
        ranged = [r for r in runs if r.length >= 0]
        try:
            requests = [(r.key, [r.offset], [r.length]) for r in ranged]
            fetched = iter(self._storage.get_many_ranges_transient(requests))
        except FileNotFoundError as e:
            where = f"{self._storage.location} (variable {var.name!r})"
            raise self._missing_error(f"a chunk index file of {where} is missing: {e}") from None
        found: list[tuple[Any, str]] = []
        for r in runs:
            where = f"{self._storage.location}/{r.key}" + (f" at {r.offset}" if r.offset else "") + f" (variable {var.name!r})"
            try:
                data = next(fetched)[0] if r.length >= 0 else self._storage.get(r.key)
            except FileNotFoundError:
                raise self._missing_error(f"chunk index {where} is missing") from None
            if r.crc is not None and index_check(data) != (r.length, r.crc):
                raise CorruptionError(
                    f"chunk index {where} is not the one version {self._version} recorded "
                    f"(length and checksum {index_check(data)} instead of {(r.length, r.crc)}): it was replaced"
                )
            found.append((data, where))
        return found

    def _index_row_limit(self) -> Callable[[int], int]:
        """The most rows a run of a committed index can hold: one per chunk of every array
        id handed out so far (ids are never reused; the schemas are looked at only when a
        run holds more rows than that)."""
        ids = self._next_id
        return lambda rows: rows if rows <= ids else ids * self._schemas.max_chunks()

    def _dataset(self, name: str) -> DatasetState:
        if not isinstance(name, str):
            raise TypeError(f"dataset name must be a str, not {type(name).__name__}")
        ds = self._materialize(name)
        if ds is None:
            raise KeyError(f"no dataset named {name!r} in {self._storage.location}")
        return ds

    def _intern_schema(self, schema: Schema) -> Schema:
        return self._schemas.intern(schema)

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

    def _decode_schema(self, s: Any, where: str) -> Schema:
        """A schema from its manifest entry (fill values decoded once per dtype and value)."""
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
                value = decode_checked(dtype_name, fill)  # a fill its dtype holds
                hit = memo[mkey] = (value, fill_scalar(dt, value))
            return Schema(dt, shape_t, chunk_t, dims_t, hit[0], hit[1])
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptionError(f"manifest {where}: schema entry is malformed: {e}") from None

    def _array_from_entries(self, name: str, entries: Any, array: str) -> ArrayState | None:
        """The state of one array of a dataset whose entries are still raw, made from its
        entry alone (None when the dataset has no such array)."""
        try:
            for entry in entries:
                if entry[0] == array:
                    aname, aid, sidx, stats, aattrs = entry
                    if type(aid) is not int or array not in self._variables or not 0 < aid < self._next_id:
                        raise TypeError("bad array id or unknown variable")
                    return ArrayState.from_record(aname, aid, self._schemas[sidx], name, stats, aattrs, self._where)
        except (TypeError, ValueError, IndexError) as e:
            raise CorruptionError(
                f"manifest of {self._storage.location}, dataset {name!r}: array entry is malformed: {e}"
            ) from None
        return None

    def _attributes_of(self, names: list[str], keys: Collection[str]) -> dict[str, dict[str, Any]]:
        """``{key: value}`` of the attributes ``keys`` of each dataset of ``names`` that
        exists, without making (and keeping) a state of any."""
        return self._datasets.attribute_values(names, keys)

    def _record_of(self, ds: DatasetState, new_stats: dict[int, dict[str, Any] | None]) -> list[Any]:
        """The stored record of a dataset state (``new_stats`` by array id where they changed)."""
        name = ds.name
        flat = ds.stored_attrs  # attributes as read, while untouched: kept as they are
        attrs = encode_attrs(ds.attrs) if flat is None else flat
        entries = ds.stored_entries
        if entries is not None:
            return [name, attrs, entries]
        arrays = []
        for aname, arr in ds.arrays.items():
            st = new_stats[arr.aid] if arr.aid in new_stats else arr.stats
            arrays.append([aname, arr.aid, arr.schema.pos, encode_stats(arr.schema.dtype, st), encode_attrs(arr.attrs)])
        return [name, attrs, arrays]

    def live_array_count(self) -> int:
        """How many arrays the live datasets hold in all (each variable counts its own)."""
        return sum(var.live for var in self._variables.values() if var.live > 0)

    def _arrays_of(self, names: list[Any], array: str) -> list[ArrayState | None]:
        """The state of one array of each dataset in ``names`` (None where either is
        missing). Stored datasets this handle has not touched are found in the shards'
        array columns, without decoding their records."""
        out: list[ArrayState | None] = [None] * len(names)
        pos, ids, schemas, other = self._datasets.array_locations(names, array)
        if len(pos):
            with paused_gc():  # up to millions of states that live on: nothing to collect
                self._column_states(names, array, pos, ids, schemas, out)
        if other:
            with paused_gc():  # as many states as datasets, all of them kept
                self._record_states(names, array, other, out)
        return out

    def _record_states(self, names: list[Any], array: str, which: list[int], out: list[ArrayState | None]) -> None:
        """Array states of the datasets at positions ``which``, from their states."""
        from_entries = self._array_from_entries
        for i in which:
            name = names[i]
            ds = self._materialize(name) if type(name) is str else None
            if ds is not None:
                out[i] = ds.array_state(array, from_entries)

    def _column_states(
        self, names: list[Any], array: str, pos: np.ndarray, ids: np.ndarray, schemas: np.ndarray,
        out: list[ArrayState | None],
    ) -> None:
        """Array states of untouched stored datasets from their column entries, for this
        read alone: such a dataset has nothing buffered, and its state (when a view makes
        one) is built from its record."""
        table = self._schemas
        if array not in self._variables and (ids != 0).any():
            raise CorruptionError(f"{self._where}: array {array!r} has no entry in the variable table")
        for i, aid, sidx in zip(pos.tolist(), ids.tolist(), schemas.tolist(), strict=True):
            if not aid:
                continue
            out[i] = ArrayState(array, aid, table[sidx], names[i])  # ids and schema: for reading data only

    def _element_kinds(self, names: set[str]) -> dict[str, dict[int, tuple[int, bool]]]:
        """(element size, is float) of every live array of the named variables, by array id."""
        schemas = self._schemas
        kinds: dict[str, dict[int, tuple[int, bool]]] = {n: {} for n in names}
        try:
            for aname, aid, pos in array_entries(self._datasets):
                if aname in kinds:
                    dt = schemas[pos].dtype
                    kinds[aname][aid] = (dt.itemsize, dt.kind == "float")
        except (TypeError, IndexError) as e:
            raise CorruptionError(f"manifest of {self._storage.location}: an array entry is malformed: {e}") from None
        return kinds


def _no_shards(shard: Shard) -> list[list[Any]]:
    raise AssertionError("a table without shards loads none")
