"""In-memory state of a store: schemas, arrays, datasets and variables.

A ``Schema`` is immutable and shared by every array that has the same dtype,
shape, chunking, dims and fill value (in memory and in the manifest). An
``ArrayState`` is one definition of an array in one dataset, identified by a
store-wide ``aid`` that is never reused, so a deleted array's chunks can never
come back under a new definition. A ``Variable`` groups every array of one name
across datasets: its segment files and its chunk index.
"""

from __future__ import annotations

import math
import struct
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..dtypes import DType, encode_value, fill_scalar
from ..format.chunkindex import ChunkIndex, empty_rows
from ..format.records import attr_values, decode_attrs, decode_stats

_pack_double = struct.Struct("<d").pack

#: The default chunking's size limit, in raw bytes. An array no larger keeps one chunk of its
#: full shape (``chunk_shape == shape``, as defined by the API); a larger array defined without
#: a chunk shape is cut into chunks of at most this size. 4 MiB is netCDF-4's default chunk
#: size, and sits inside the range zarr and h5py aim their guessed chunks at; it bounds what a
#: partial write buffers, and what a read of a few cells decodes, to a few MiB.
AUTO_CHUNK_BYTES = 4 << 20
#: Bytes assumed per cell of a string array when sizing chunks (what a buffered cell costs).
STRING_CELL_BYTES = 64
# Fresh chunk buffers of at least this many cells whose fill has all-zero bits are zeroed lazily.
_LAZY_ZEROS_CELLS = 1 << 16


def default_chunk_shape(shape: tuple[int, ...], dtype: DType) -> tuple[int, ...]:
    """The chunk shape of an array defined without one.

    ``shape`` itself when the array holds at most ``AUTO_CHUNK_BYTES`` (or is 0-D, or empty);
    otherwise the largest axis is halved (rounding up; of equal axes the leading one, so the
    trailing, fastest-varying axes stay whole longest) until a chunk holds at most
    ``AUTO_CHUNK_BYTES``; each halving at most halves the chunk, so it ends up holding more
    than half of that.
    """
    cell = STRING_CELL_BYTES if dtype.is_string else dtype.itemsize
    if not shape or 0 in shape or math.prod(shape) * cell <= AUTO_CHUNK_BYTES:
        return shape
    chunk = list(shape)
    cells = math.prod(chunk)
    while cells * cell > AUTO_CHUNK_BYTES:
        axis = max(range(len(chunk)), key=lambda i: (chunk[i], -i))
        n = chunk[axis]
        chunk[axis] = (n + 1) // 2
        cells = cells // n * chunk[axis]
    return tuple(chunk)


class Schema:
    """Dtype, shape, chunk shape, dims and fill value of an array (immutable, shared)."""

    __slots__ = (
        "dtype", "shape", "chunk_shape", "dims", "fill", "grid", "nchunks", "size",
        "single", "fillscalar", "_key", "strides", "pos", "nbytes",
    )

    def __init__(
        self,
        dtype: DType,
        shape: tuple[int, ...],
        chunk_shape: tuple[int, ...],
        dims: tuple[str, ...],
        fill: Any,
        fillscalar: Any = None,
    ) -> None:
        self.dtype = dtype
        self.shape = shape
        self.chunk_shape = chunk_shape
        self.dims = dims
        self.fill = fill
        if shape == chunk_shape:  # the usual one-chunk array
            grid: tuple[int, ...] = ((1,) if shape[0] else (0,)) if len(shape) == 1 else tuple(1 if n else 0 for n in shape)
        else:
            grid = tuple((n + c - 1) // c if c > 0 else 0 for n, c in zip(shape, chunk_shape, strict=True))
        self.grid = grid
        self.nchunks = math.prod(grid)
        self.size = math.prod(shape)
        # raw bytes of the whole array (-1 for strings, whose cells vary in length)
        self.nbytes = -1 if dtype.is_string else self.size * dtype.numpy.itemsize
        self.single = self.nchunks == 1
        self.fillscalar = fill_scalar(dtype, fill) if fillscalar is None else fillscalar
        # row-major strides of the chunk grid, for linear chunk ids
        if len(grid) <= 1:
            self.strides: tuple[int, ...] = (1,) * len(grid)
        else:
            st = [1] * len(grid)
            for i in range(len(grid) - 2, -1, -1):
                st[i] = st[i + 1] * grid[i + 1]
            self.strides = tuple(st)
        self._key: tuple[Any, ...] | None = None
        self.pos = -1  # position in its store's schema table

    @property
    def key(self) -> tuple[Any, ...]:
        """Hashable identity, for sharing equal schemas."""
        k = self._key
        if k is None:
            k = self._key = schema_key(self.dtype.name, self.shape, self.chunk_shape, self.dims, self.fill)
        return k

    def encoded(self) -> list[Any]:
        """Manifest form ``[dtype, shape, chunk_shape, dims, fill]``."""
        return [
            self.dtype.name, list(self.shape), list(self.chunk_shape), list(self.dims),
            encode_value(self.dtype.name, self.fill),
        ]

    def chunk_extent(self, coords: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the chunk at grid coordinates ``coords`` (edge chunks are clipped)."""
        return tuple(
            min(c, s - i * c) for i, c, s in zip(coords, self.chunk_shape, self.shape, strict=True)
        )

    def new_chunk(self, extent: tuple[int, ...]) -> np.ndarray:
        """A chunk buffer holding only the fill value (or zeros / empty strings)."""
        if self.dtype.is_string:
            arr = np.empty(extent, dtype=object)
            arr.fill(self.fillscalar)
            return arr
        dt = self.dtype.numpy
        if math.prod(extent) >= _LAZY_ZEROS_CELLS and not np.asarray(self.fillscalar, dtype=dt).tobytes().strip(b"\0"):
            # all-zero bits: pages the system zeroes on first touch, so the cells a partial
            # write never reaches cost no memory
            return np.zeros(extent, dtype=dt)
        return np.full(extent, self.fillscalar, dtype=dt)

    def meta(self) -> dict[str, Any]:
        """The ``array_meta`` dictionary (fresh lists every time: callers may change them)."""
        return {
            "dtype": self.dtype.name,
            "shape": [*self.shape],
            "chunk_shape": [*self.chunk_shape],
            "dimension_names": [*self.dims],
        }


def schema_key(dtype: str, shape: tuple[int, ...], chunk: tuple[int, ...], dims: tuple[str, ...], fill: Any) -> tuple[Any, ...]:
    """Hashable identity of a schema (NaN fills compared by bits)."""
    if type(fill) is float:
        fill_id: Any = ("f", _pack_double(fill))
    else:
        fill_id = (type(fill).__name__, fill)
    return (dtype, shape, chunk, dims, fill_id)


class SchemaTable:
    """The store's shared schemas, decoded from the manifest only when first used."""

    def __init__(self, raw: list[Any], decode: Callable[[Any], Schema], key_of: Callable[[Any], tuple[Any, ...]]) -> None:
        self._raw = raw
        self._items: list[Schema | None] = [None] * len(raw)
        self._decode = decode
        self._key_of = key_of
        self._ids: dict[tuple[Any, ...], int] | None = None
        self._most_chunks = (0, 0)  # (schemas looked at, most chunks of one of them)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i: int) -> Schema:
        if i < 0:
            raise IndexError(i)
        s = self._items[i]
        if s is None:
            s = self._decode(self._raw[i])
            s.pos = i
            self._items[i] = s
        return s

    def __iter__(self) -> Iterator[Schema]:
        for i in range(len(self._items)):
            yield self[i]

    def intern(self, schema: Schema) -> Schema:
        """The table's schema equal to ``schema``, adding it if new."""
        if self._ids is None:
            self._ids = {}
            for i, s in enumerate(self._items):
                self._ids[s.key if s is not None else self._key_of(self._raw[i])] = i
        found = self._ids.get(schema.key)
        if found is not None:
            return self[found]
        schema.pos = len(self._items)
        self._ids[schema.key] = schema.pos
        self._items.append(schema)
        return schema

    def lookup(self, key: tuple[Any, ...]) -> Schema | None:
        """The schema with this identity, if the table has it."""
        if self._ids is None:
            return None
        i = self._ids.get(key)
        return None if i is None else self[i]

    def max_chunks(self) -> int:
        """The most chunks an array of any schema in the table has (each schema is decoded
        once, when this is first asked)."""
        seen, most = self._most_chunks
        for i in range(seen, len(self._items)):
            most = max(most, self[i].nchunks)
        self._most_chunks = (len(self._items), most)
        return most

    def encoded(self) -> list[Any]:
        """Manifest form of every schema (undecoded entries are passed through)."""
        raw = self._raw
        return [raw[i] if s is None else s.encoded() for i, s in enumerate(self._items)]


class _Empty(dict):
    """A shared empty dict that refuses items: the ``dirty`` / ``attrs`` of the many
    arrays that have none (a store of 10,000 datasets would hold 100,000 empty dicts)."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("internal error: item set on a shared empty dict")

    __setitem__ = update = setdefault = __ior__ = _refuse


NO_CHUNKS: dict[int, np.ndarray] = _Empty()
_NO_ATTRS: dict[str, tuple[str, Any]] = _Empty()


class ArrayState:
    """One array of one dataset: schema, buffered chunks, stats and attributes.

    Stats and attributes read from a manifest are decoded on first use, so opening a
    store with many datasets costs little until they are looked at.
    """

    __slots__ = (
        "name", "aid", "schema", "dirty", "changed", "written", "deleted", "dataset",
        "_stats", "_attrs", "_raw", "loc", "loc_gen",
    )

    def __init__(self, name: str, aid: int, schema: Schema, dataset: str) -> None:
        self.name = name
        self.dataset = dataset
        self.aid = aid
        self.schema = schema
        # chunk id -> chunk buffered in memory; a fresh dict replaces NO_CHUNKS at the first write
        self.dirty: dict[int, np.ndarray] = NO_CHUNKS
        self.changed = False  # data changed since the last flush (stats to recompute)
        self.written = False  # ever received a write (committed or not)
        self.deleted = False
        self._stats: dict[str, Any] | None = None  # as of the last flush
        self._attrs: dict[str, tuple[str, Any]] = _NO_ATTRS
        # (stats, attrs, "manifest FILE") not yet decoded
        self._raw: tuple[Any, Any, str] | None = None
        self.loc: Any = None  # cached stored location of a single-chunk array
        self.loc_gen = -1

    @classmethod
    def from_record(cls, name: str, aid: int, schema: Schema, dataset: str, stats: Any, attrs: Any, where: str) -> ArrayState:
        """An array as listed in a manifest (``where``: "manifest FILE"); its stats
        and attributes stay encoded until used."""
        st = cls(name, aid, schema, dataset)
        st.written = stats is not None
        if stats is not None or attrs:
            st._raw = (stats, attrs, where)
        return st

    def _decode(self) -> None:
        raw = self._raw
        if raw is not None:
            self._raw = None
            where = f"{raw[2]}, dataset {self.dataset!r}"
            self._stats = decode_stats(self.schema.dtype, raw[0], where)
            if raw[1]:
                self._attrs = decode_attrs(raw[1], where)

    @property
    def stats(self) -> dict[str, Any] | None:
        if self._raw is not None:
            self._decode()
        return self._stats

    @stats.setter
    def stats(self, value: dict[str, Any] | None) -> None:
        if self._raw is not None:
            self._decode()
        self._stats = value

    @property
    def attrs(self) -> dict[str, tuple[str, Any]]:
        if self._raw is not None:
            self._decode()
        attrs = self._attrs
        if attrs is _NO_ATTRS:  # callers may add to it
            attrs = self._attrs = {}
        return attrs


_SOME_LOCK = threading.Lock()


#: Datasets of at most this many arrays find an array's raw entry by scanning them.
_SCANNED_ENTRIES = 8


class DatasetState:
    """One dataset: its arrays (definition order) and attributes (insertion order).

    A dataset read from a manifest keeps its array entries encoded until something needs
    the array states; names and schemas (``array_names``, ``schema_of``) are answered from
    the entries directly, so a metadata sweep builds no per-array state. One array's state
    can be built alone (``array_state``, for a read of that array); building the others
    later reuses it, so an array never has two states.
    """

    # weakly referable: a dataset's table keeps the state of an unchanged dataset only
    # while something else (a view) holds it
    __slots__ = (
        "name", "_arrays", "_raw_arrays", "_some", "_build", "_attrs", "_raw_attrs", "deleted", "_entry_at",
        "__weakref__",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self._arrays: dict[str, ArrayState] | None = {}
        self._raw_arrays: list[Any] | None = None
        self._some: dict[str, ArrayState] | None = None  # states built one by one while entries are raw
        self._build: Callable[[DatasetState, list[Any]], dict[str, ArrayState]] | None = None
        self._attrs: dict[str, tuple[str, Any]] = {}
        self._raw_attrs: tuple[Any, str] | None = None  # (flat list, "manifest FILE")
        self.deleted = False
        # for a dataset of many arrays: its raw entries and where each array's entry is in them
        self._entry_at: tuple[Any, dict[str, int]] | None = None

    @property
    def arrays(self) -> dict[str, ArrayState]:
        arrays = self._arrays
        if arrays is None:
            assert self._build is not None and self._raw_arrays is not None
            arrays = self._arrays = self._build(self, self._raw_arrays)
            self._raw_arrays = self._some = self._entry_at = None
        return arrays

    def array_state(self, name: str, make: Callable[[str, Any, str], ArrayState | None]) -> ArrayState | None:
        """The state of one array, None when the dataset has no such array. While the
        entries are raw, ``make(dataset, entries, array)`` builds that one alone; it is kept
        here, and reused when the others are built."""
        entries = self._raw_arrays  # taken once: another thread may build the states meanwhile
        if entries is None:
            return self.arrays.get(name)
        some = self._some
        if some is None:
            with _SOME_LOCK:  # two threads must not each start a dict (one would be lost)
                some = self._some
                if some is None:
                    some = self._some = {}
        arr = some.get(name)
        if arr is None:
            made = make(self.name, entries, name)
            if made is None:
                return None
            arr = some.setdefault(name, made)  # a state another thread made first is the one
        if self._raw_arrays is None:  # built meanwhile: the built one is the state
            return self.arrays.get(name)
        return arr

    def built_alone(self, name: str) -> ArrayState | None:
        """The state of ``name`` built alone while the entries were raw, if any."""
        some = self._some
        return None if some is None else some.get(name)

    @property
    def arrays_untouched(self) -> bool:
        """Whether the array entries are still exactly as read from the manifest."""
        return self._arrays is None

    def become(self, other: DatasetState) -> None:
        """Take what ``other``, a state of the same dataset in another version, holds (views
        of this state then read that version's dataset)."""
        self._arrays, self._raw_arrays, self._some, self._build = other._arrays, other._raw_arrays, other._some, other._build
        self._attrs, self._raw_attrs = other._attrs, other._raw_attrs

    @property
    def stored_entries(self) -> Any | None:
        """The array entries as the dataset's record lists them, while its arrays are as
        read (None once their states are built)."""
        return self._raw_arrays if self._arrays is None else None

    @property
    def stored_attrs(self) -> Any | None:
        """The flat attribute list as the dataset's record holds it, while its attributes
        are as read (None once decoded)."""
        raw = self._raw_attrs
        return None if raw is None else raw[0]

    # The raw entries are read once: building the states (maybe in another thread) sets
    # ``_arrays`` before it drops ``_raw_arrays``, so one of the two is always there.

    def array_names(self) -> list[str]:
        """Array names in definition order."""
        raw = self._raw_arrays
        if raw is not None:
            return [e[0] for e in raw]
        return list(self.arrays)

    def raw_entry(self, entries: Any, name: str) -> Any:
        """The entry of array ``name`` among ``entries`` (this dataset's raw entries), or
        None. A dataset of many arrays (an Argo file has 60) looks them up in a map made at
        its first lookup: a sweep asking for each array's metadata would otherwise scan
        them all for each."""
        if len(entries) <= _SCANNED_ENTRIES:
            for e in entries:
                if e[0] == name:
                    return e
            return None
        at = self._entry_at
        if at is None or at[0] is not entries:
            positions: dict[str, int] = {}
            for i, e in enumerate(entries):
                positions.setdefault(e[0], i)  # the first, as a scan finds it
            at = (entries, positions)
            if self._raw_arrays is entries:  # else the states were built meanwhile: keep no map
                self._entry_at = at
        found = at[1].get(name)
        return None if found is None else entries[found]

    def schema_of(self, name: str, schemas: Any) -> Schema | None:
        """The schema of one array, or None when the dataset has no such array."""
        raw = self._raw_arrays
        if raw is not None:
            e = self.raw_entry(raw, name)
            return None if e is None else schemas[e[2]]
        a = self.arrays.get(name)
        return None if a is None else a.schema

    def attr_values(self) -> dict[str, Any]:
        """A fresh ``{key: value}`` dict of the attributes (still-encoded ones stay encoded)."""
        if self._raw_attrs is not None:
            return attr_values(self._raw_attrs[0], self._raw_attrs[1], self.name)
        return {k: v for k, (_, v) in self._attrs.items()}

    @property
    def attrs(self) -> dict[str, tuple[str, Any]]:
        if self._raw_attrs is not None:
            raw, where = self._raw_attrs
            self._raw_attrs = None
            self._attrs = decode_attrs(raw, f"{where}, dataset {self.name!r}")
        return self._attrs


class WeakStates:
    """Dataset states by name, each held only while something else holds it (as a
    ``weakref.WeakValueDictionary`` does, without its bookkeeping on every call: a sweep
    over every dataset of a store looks each one up and keeps its state). Entries whose
    state is gone are dropped whenever the map has doubled since the last time; entries are
    added and dropped under a lock, so that a state kept meanwhile is never dropped."""

    __slots__ = ("_refs", "_limit", "_lock")

    def __init__(self) -> None:
        self._refs: dict[str, weakref.ref[DatasetState]] = {}
        self._limit = _PRUNE_AT
        self._lock = threading.Lock()

    def get(self, name: str, default: Any = None) -> Any:
        """The state held for ``name``, or ``default``."""
        ref = self._refs.get(name)
        state = None if ref is None else ref()
        return default if state is None else state

    def __setitem__(self, name: str, state: DatasetState) -> None:
        with self._lock:
            refs = self._refs
            refs[name] = weakref.ref(state)
            if len(refs) > self._limit:
                for n in [n for n, r in refs.items() if r() is None]:
                    del refs[n]
                self._limit = max(_PRUNE_AT, 2 * len(refs))

    def pop(self, name: str, default: Any = None) -> Any:
        """The state held for ``name`` (or ``default``), no longer held."""
        with self._lock:
            ref = self._refs.pop(name, None)
        state = None if ref is None else ref()
        return default if state is None else state

    def update(self, items: Any) -> None:
        """Hold the states of a dict or of (name, state) pairs."""
        for name, state in items.items() if isinstance(items, dict) else items:
            self[name] = state

    def values(self) -> list[DatasetState]:
        """The states held."""
        return [s for r in list(self._refs.values()) if (s := r()) is not None]

    def __len__(self) -> int:
        """How many states are held (alive): a pass over every entry."""
        return len(self.values())

    def __bool__(self) -> bool:
        """Whether any entry is left (cheap: its state may be gone)."""
        return bool(self._refs)


_PRUNE_AT = 1024


class IndexRun(NamedTuple):
    """One run of a variable's committed chunk index: a complete index (header and rows)
    stored at ``offset`` in the index file ``key``. A later run's row for the same chunk wins."""

    key: str
    offset: int
    length: int  # -1: the whole file, length not recorded (version-1 manifests without index_checks)
    crc: int | None  # the payload checksum its header holds; None: not recorded
    rows: int  # -1: not recorded (version 1)

    def entry(self) -> list[Any]:
        """The run as a version-2 manifest lists it."""
        return [self.key, self.offset, self.length, self.crc, self.rows]


class Variable:
    """All arrays of one name across datasets: segment files and chunk index."""

    __slots__ = (
        "name", "vid", "runs", "segments", "owned", "index", "pending", "pending_segments",
        "dead_aids", "live", "changed", "gen",
    )

    def __init__(self, name: str, vid: int) -> None:
        self.name = name
        self.vid = vid
        self.runs: list[IndexRun] = []  # the committed chunk index, oldest run first
        self.segments: list[tuple[str, int]] = []  # committed segment files (key, size)
        # bytes of this variable's blocks in a segment shared with other variables, by key
        # (a segment missing here holds this variable's blocks alone)
        self.owned: dict[str, int] = {}
        self.index: ChunkIndex | None = None  # loaded lazily
        self.pending = ChunkIndex(empty_rows())  # rows written ahead, not yet committed
        self.pending_segments: list[tuple[str, int]] = []
        self.dead_aids: set[int] = set()  # arrays deleted since the last flush
        self.live = 0  # number of live arrays of this name
        self.changed = False
        self.gen = 0  # bumped whenever index or pending rows change (invalidates cached locations)

    def all_segments(self) -> list[tuple[str, int]]:
        """Committed then pending segment files; a row's ``seg`` indexes this list."""
        return self.segments + self.pending_segments

    def owned_bytes(self, key: str, size: int) -> int:
        """Bytes of this variable's blocks in the segment ``key`` of ``size`` bytes."""
        return self.owned.get(key, size - 8)  # 8: the segment's magic

    def segment_entries(self, segments: list[tuple[str, int]]) -> list[list[Any]]:
        """Segments as a version-2 manifest lists them: ``[key, size, bytes of this variable's blocks]``."""
        return [[k, size, self.owned_bytes(k, size)] for k, size in segments]


@dataclass
class UnsettledCommit:
    """A commit whose put failed and whose read-back failed too."""

    version: int
    key: str
    token: str
    install: Callable[[], None]  # makes the handle's state the committed one
    lost: Callable[[], None]  # what to do when another writer's commit holds the number
