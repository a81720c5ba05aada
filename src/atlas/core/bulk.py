"""Scans planned over columns: one variable's one-chunk arrays read across many stored
datasets with numpy, without a Python object per dataset.

The datasets' array ids and schemas come from the shards' array columns, their chunks'
places from the variable's chunk index, both as numpy arrays; blocks are grouped, fetched
and decoded together, and each block's chunks are gathered into the results in one step.
What this path does not cover (datasets this handle changed, several chunks per array,
strings, buffered data) is read by :mod:`atlas.core.scan`, dataset by dataset.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import CorruptionError
from ..executors import in_background
from ..format.chunkindex import BLOCK_FIELDS, block_keys
from . import read
from .indexing import window_slices
from .reader import BlockKey, fetch_blocks
from .state import Schema, Variable

if TYPE_CHECKING:
    from .model import StoreModel

# Below this many datasets the per-dataset path is as fast.
MIN_DATASETS = 64


@dataclass
class Plan:
    """Where the chunks of the datasets at ``positions`` (of the caller's names) are:
    ``schemas`` their schema numbers, ``rows`` their chunk's index row (-1: never stored),
    and ``windows`` the window read of each schema number."""

    positions: np.ndarray
    schemas: np.ndarray
    rows: np.ndarray
    windows: dict[int, tuple[tuple[int, ...], tuple[int, ...]]]
    others: list[int]  # positions the per-dataset path reads (or that lack the array)
    absent: np.ndarray  # positions of stored datasets without the array
    facts: SchemaFacts


@dataclass
class SchemaFacts:
    """What the gathering needs of each schema number of a plan, as arrays indexed by it
    (profiles of different lengths have a schema each: thousands of them): the window's
    first cell and cells along the one axis (``lo``, ``count``: 1-D schemas), the cells of
    the window (``cells``), the chunk's bytes, the element size, the number of dimensions
    and the dtype (``dtype_code`` into ``dtype_names`` and the numpy ``dtypes``); and the
    distinct window extents."""

    lo: np.ndarray
    count: np.ndarray
    cells: np.ndarray
    nbytes: np.ndarray
    itemsize: np.ndarray
    ndim: np.ndarray
    dtype_code: np.ndarray
    dtype_names: list[str]
    dtypes: list[np.dtype[Any]]
    extents: set[tuple[int, ...]]


def _facts(windows: dict[int, tuple[tuple[int, ...], tuple[int, ...]]], table: Any) -> SchemaFacts:
    top = max(windows) + 1 if windows else 0
    names: list[str] = []
    dtypes: list[np.dtype[Any]] = []
    extents: set[tuple[int, ...]] = set()
    rows = []  # per schema: lo, count, cells, nbytes, itemsize, ndim, dtype code
    for s, (st, stop) in windows.items():
        schema: Schema = table[s]
        extent = tuple(b - a for a, b in zip(st, stop, strict=True))
        extents.add(extent)
        name = schema.dtype.name
        if name not in names:
            names.append(name)
            dtypes.append(schema.dtype.numpy)
        one = len(extent) == 1
        rows.append((
            st[0] if one else 0, extent[0] if one else 0, math.prod(extent), schema.nbytes,
            schema.dtype.numpy.itemsize, len(extent), names.index(name),
        ))
    table_of = np.zeros((top, 7), dtype=np.int64)
    if rows:
        table_of[list(windows)] = rows
    lo, count, cells, nbytes, itemsize, ndim, code = (np.ascontiguousarray(c) for c in table_of.T)
    return SchemaFacts(lo, count, cells, nbytes, itemsize, ndim, code, names, dtypes, extents)


def plan(
    store: StoreModel, array: str, names: Sequence[Any], start: Sequence[int] | None, shape: Sequence[int] | None
) -> Plan | None:
    """The plan of a scan of ``array`` over ``names``, or None when too little of it can
    be read this way."""
    var = store._variables.get(array)
    if var is None or len(var.pending) or len(names) < MIN_DATASETS:
        return None
    # the shards' columns are read while the variable's chunk index is loaded (each waits on
    # the pools, so the columns are read on a thread of their own)
    locations = in_background(store._datasets.array_locations, list(names), array)
    idx = store._index(var)
    positions, ids, schema_numbers, others = locations()
    if len(positions) < MIN_DATASETS:
        return None
    held = ids != 0
    absent = positions[~held]
    if len(absent):  # else every dataset has the array: nothing to pick out
        positions, ids, schema_numbers = positions[held], ids[held], schema_numbers[held]
    table = store._schemas
    windows: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    distinct = _distinct(schema_numbers)
    slow_schema = np.zeros(distinct[-1] + 1 if distinct else 0, dtype=bool)
    for s in distinct:
        schema = table[s]
        if not schema.single or schema.dtype.is_string:
            slow_schema[s] = True
            continue
        if start is None and shape is None:
            windows[s] = ((0,) * len(schema.shape), schema.shape)
        else:
            windows[s] = read.read_window(store, schema, start, shape)
    slow = slow_schema[schema_numbers]
    if slow.any():
        others = sorted(others + positions[slow].tolist())
        positions, ids, schema_numbers = positions[~slow], ids[~slow], schema_numbers[~slow]
    rows = idx.first_chunk_rows(ids)
    return Plan(positions, schema_numbers, rows, windows, others, absent, _facts(windows, table))


def fill(
    store: StoreModel,
    array: str,
    names: Sequence[Any],
    p: Plan,
    put: Callable[[np.ndarray, Schema, np.ndarray, bool], None],
    dest: Callable[[np.ndarray, Schema], np.ndarray | None] | None = None,
) -> None:
    """Read the planned chunks; ``put(positions, schema, chunks, fresh)`` receives, per
    schema and block, the positions and their windows stacked: a fresh array (the caller's
    own) when ``fresh``, else a view of a block, to copy from. Chunks never stored come as
    the schema's fill. ``dest(positions, schema)`` may give where the whole chunks of
    consecutive positions go (contiguous, of the schema's dtype): a block holding exactly
    those chunks is then decoded straight into it, and ``put`` does not see them."""
    var = store._variables[array]
    table = store._schemas
    missing = p.rows < 0
    for s in _distinct(p.schemas[missing]):
        at = missing & (p.schemas == s)
        schema = table[s]
        put(p.positions[at], schema, _filled(schema, p.windows[s], int(at.sum())), True)
    found = np.flatnonzero(~missing)
    if not len(found):
        return
    c = _located(store, var, names, p, found)
    mode = read.scan_cache_mode(store, c.total, c.stored, _kept_bytes(p, c.schemas))
    for b0, b1 in read.scan_batches(store, mode, c.raw_sizes):
        into: dict[BlockKey, np.ndarray] = {}
        if dest is not None and mode != "decoded":  # the decoded cache must not hold the caller's array
            for b in range(b0, b1):
                items = c.items(b)
                view = _whole_block_dest(
                    c.within[items], c.schemas[items], p.positions[found[items]], c.raw_sizes[b], p, table, dest
                )
                if view is not None:
                    into[c.keys[b]] = view
        batch = {k: c.wanted[k] for k in c.keys[b0:b1]}
        try:
            blocks = fetch_blocks(
                store._storage.get_many_ranges, store._cache, batch, read.describe_block(store, var), mode, into,
                store._storage.get_many_ranges_transient,
            )
        except FileNotFoundError as e:
            raise store._missing_error(f"a segment of variable {var.name!r} is missing: {e}") from None
        for b in range(b0, b1):
            if c.keys[b] not in into:  # else decoded in place
                items = c.items(b)  # into found
                _gather(blocks[c.keys[b]], c.within[items], c.schemas[items], found[items], p, table, put, names, array)


@dataclass
class _Located:
    """The stored chunks of a scan (those at ``found`` of its plan) grouped by block: each
    chunk's place in its block and schema; the blocks in storage order (``keys``, as
    ``fetch_blocks`` wants them, their raw sizes, and in all their raw and stored bytes);
    ``order[bounds[b]:bounds[b + 1]]`` are the chunks of block ``b``."""

    within: np.ndarray
    schemas: np.ndarray
    order: np.ndarray
    bounds: np.ndarray
    wanted: dict[BlockKey, tuple[int, int, int, int, int]]
    keys: list[BlockKey]
    raw_sizes: list[int]
    total: int
    stored: int

    def items(self, b: int) -> np.ndarray:
        """The chunks of block ``b`` (positions in ``found``)."""
        return self.order[self.bounds[b] : self.bounds[b + 1]]


def _located(store: StoreModel, var: Variable, names: Sequence[Any], p: Plan, found: np.ndarray) -> _Located:
    """Where the chunks at ``found`` of a plan are, from the few index fields a scan needs;
    ``CorruptionError`` naming the dataset when a chunk's size is not its schema's."""
    column = store._index(var).column
    at = p.rows[found]
    within, nbytes = column("within")[at], column("nbytes")[at]
    schemas = p.schemas[found]
    nbytes_of = p.facts.nbytes  # every schema found has a window: its facts are there
    bad = np.flatnonzero(nbytes.astype(np.int64) != nbytes_of[schemas])
    if len(bad):
        name = names[int(p.positions[found[bad[0]]])]
        raise CorruptionError(
            f"dataset {name!r}, array {var.name!r}: chunk does not fit its block: {int(nbytes[bad[0]])} "
            f"bytes, not the {int(nbytes_of[schemas[bad[0]]])} its schema holds"
        )
    first, order, bounds = _by_block(block_keys(column("seg")[at], column("offset")[at]))
    seg_keys = [k for k, _ in var.all_segments()]
    heads = {f: column(f)[at[first]] for f in BLOCK_FIELDS}
    wanted: dict[BlockKey, tuple[int, int, int, int, int]] = {}
    for seg, off, length, raw, crc, codec, filt in zip(*(heads[f].tolist() for f in BLOCK_FIELDS), strict=True):
        wanted[(seg_keys[seg], off)] = (length, raw, crc, codec, filt)
    total = int(heads["raw_size"].astype(np.int64).sum())
    stored = int(heads["length"].astype(np.int64).sum())
    return _Located(within, schemas, order, bounds, wanted, list(wanted), heads["raw_size"].tolist(), total, stored)


def _kept_bytes(p: Plan, schemas: np.ndarray) -> int:
    """What the caller keeps of the chunks of ``schemas``: their windows' share."""
    f = p.facts
    counts = np.bincount(schemas, minlength=len(f.cells))
    return int((counts * f.cells * f.itemsize).sum())


def _by_block(block_of: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chunks grouped by the block holding them (``block_of``: one key per chunk), blocks in
    storage order: (the first chunk of each block, the chunks in block order, where each
    block's chunks start and end in that order). Chunks already in storage order, as a
    scan of datasets in the order they were written finds them, need no sort."""
    n = len(block_of)
    if n < 2 or bool((block_of[1:] >= block_of[:-1]).all()):
        starts = np.flatnonzero(np.concatenate([[True], block_of[1:] != block_of[:-1]]))
        return starts, np.arange(n), np.append(starts, n)
    keys, first, inverse = np.unique(block_of, return_index=True, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    return first, order, np.searchsorted(inverse[order], np.arange(len(keys) + 1))


def evenly_spaced(values: np.ndarray, step: int, start: int | None = None) -> bool:
    """Whether ``values`` go up by ``step`` from one to the next (from ``start``, when given):
    consecutive positions, or chunks back to back in a block."""
    k = len(values)
    if not k:
        return True
    if start is not None and int(values[0]) != start:
        return False
    return int(values[-1]) - int(values[0]) == (k - 1) * step and (k == 1 or bool((np.diff(values) == step).all()))


def _whole_block_dest(
    within: np.ndarray,
    schemas: np.ndarray,
    positions: np.ndarray,
    raw_size: int,
    p: Plan,
    table: Any,
    dest: Callable[[np.ndarray, Schema], np.ndarray | None],
) -> np.ndarray | None:
    """The caller's bytes a block decodes into, when the block holds, back to back from its
    start and nothing else, the whole chunks of one schema for consecutive positions."""
    k = len(positions)
    if not k:
        return None
    s = int(schemas[0])
    if bool((schemas != s).any()):
        return None
    schema: Schema = table[s]
    st, stop = p.windows[s]
    if any(st) or tuple(stop) != tuple(schema.shape) or k * schema.nbytes != raw_size:
        return None
    if not evenly_spaced(positions, 1) or not evenly_spaced(within.astype(np.int64), schema.nbytes, start=0):
        return None
    view = dest(positions, schema)
    if view is None or view.dtype != schema.dtype.numpy or not view.flags.c_contiguous or view.nbytes != raw_size:
        return None
    return view.reshape(-1).view(np.uint8)


def _gather(
    block: np.ndarray,
    within: np.ndarray,
    schemas: np.ndarray,
    items: np.ndarray,
    p: Plan,
    table: Any,
    put: Callable[[np.ndarray, Schema, np.ndarray, bool], None],
    names: Sequence[Any],
    array: str,
) -> None:
    """The chunks of one decoded block, gathered per schema and handed to ``put``."""
    distinct = _distinct(schemas)
    if len(distinct) > 1 and _gather_one_axis(block, within, schemas, distinct, items, p, table, put, names, array):
        return
    for s in distinct:
        at = schemas == s
        schema: Schema = table[s]
        dtype, size = schema.dtype.numpy, schema.size
        starts = within[at].astype(np.int64)
        if len(starts) and int(starts.max()) + schema.nbytes > block.nbytes:
            bad = items[at][0]
            raise CorruptionError(
                f"dataset {names[int(p.positions[bad])]!r}, array {array!r}: chunk does not fit its block"
            )
        k, item = len(starts), dtype.itemsize
        fresh = True
        if k and evenly_spaced(starts, schema.nbytes) and not int(starts[0]) % item:  # back to back, as a flush writes them: one view
            first = int(starts[0]) // item
            chunks = np.frombuffer(block, dtype, block.nbytes // item)[first : first + k * size]
            # a block decoded for this read alone (not cached) and tiled by these chunks
            # exactly is the caller's to keep: no copy, no second block in memory
            fresh = block.flags.writeable and not first and k * schema.nbytes == block.nbytes
        elif bool((starts % item).any()):  # chunks of several dtypes share the block
            chunks = np.stack([np.frombuffer(block, dtype, size, w) for w in starts.tolist()])
        else:
            cells = np.frombuffer(block, dtype, block.nbytes // item)
            chunks = cells[(starts // item)[:, None] + np.arange(size)]
        chunks = chunks.reshape(k, *schema.shape)
        st, stop = p.windows[s]
        if stop != schema.shape or any(st):  # a window: a view would keep the whole block
            chunks = chunks[(slice(None), *window_slices(st, stop))]
            fresh = False
        put(p.positions[items[at]], schema, chunks, fresh)


def _gather_one_axis(
    block: np.ndarray,
    within: np.ndarray,
    schemas: np.ndarray,
    distinct: list[int],
    items: np.ndarray,
    p: Plan,
    table: Any,
    put: Callable[[np.ndarray, Schema, np.ndarray, bool], None],
    names: Sequence[Any],
    array: str,
) -> bool:
    """One-axis arrays of many schemas of one dtype (profiles of different lengths) in one
    block, gathered together rather than schema by schema; False when they are not."""
    f = p.facts
    codes = f.dtype_code[distinct]
    if bool((codes != codes[0]).any()) or bool((f.ndim[distinct] != 1).any()):
        return False
    dtype = f.dtypes[int(codes[0])]
    item = dtype.itemsize
    starts = within.astype(np.int64)
    if bool((starts % item).any()):
        return False
    lo, count, nbytes = f.lo, f.count, f.nbytes
    over = np.flatnonzero(starts + nbytes[schemas] > block.nbytes)
    if len(over):
        name = names[int(p.positions[items[over[0]]])]
        raise CorruptionError(f"dataset {name!r}, array {array!r}: chunk does not fit its block")
    first = starts // item + lo[schemas]
    lengths = count[schemas]
    cells = np.frombuffer(block, dtype, block.nbytes // item)
    positions = p.positions[items]
    schema = table[distinct[0]]  # what is done with the chunks depends on their dtype alone
    if bool((lengths == lengths[0]).all()):  # windows of one length: one gather
        put(positions, schema, cells[first[:, None] + np.arange(int(lengths[0]))], True)
        return True
    # whole arrays tiling a block decoded for this read alone: views, the caller's to keep
    ends = starts + nbytes[schemas]
    own = bool(block.flags.writeable) and not lo[schemas].any() and bool((lengths * item == nbytes[schemas]).all())
    if own:
        order = np.argsort(starts, kind="stable")
        own = int(starts[order[0]]) == 0 and int(ends[order[-1]]) == block.nbytes and bool(
            (starts[order[1:]] == ends[order[:-1]]).all()
        )
    for i, a, n in zip(positions.tolist(), first.tolist(), lengths.tolist(), strict=True):
        piece = cells[a : a + n]
        put(np.array([i]), schema, (piece if own else piece.copy())[None], True)
    return True


def _filled(schema: Schema, window: tuple[tuple[int, ...], tuple[int, ...]], count: int) -> np.ndarray:
    extent = tuple(b - a for a, b in zip(*window, strict=True))
    out = np.empty((count, *extent), dtype=schema.dtype.numpy)
    out[...] = schema.fillscalar
    return out


def _distinct(numbers: np.ndarray) -> list[int]:
    """The distinct values of small non-negative ints."""
    return np.flatnonzero(np.bincount(numbers)).tolist() if len(numbers) else []
