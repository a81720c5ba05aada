"""Writing: defining arrays, coercing data, projecting a write onto the chunk grid and
buffering the chunks it touches (reading stored chunks a partial write updates)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..dtypes import (
    coerce_attribute,
    infer_attribute,
    parse_dtype,
    validate_fill,
)
from ..format.chunkindex import MAX_BLOCK_BYTES
from ..format.strings import to_string_array
from ..names import check_key, check_name
from . import commit, read
from .indexing import ints
from .state import (
    NO_CHUNKS,
    ArrayState,
    DatasetState,
    Schema,
    default_chunk_shape,
    schema_key,
)

if TYPE_CHECKING:
    from .model import StoreModel
MAX_CELLS = 2**62


def define_array(
    store: StoreModel,
    ds: DatasetState,
    name: str,
    dtype: str,
    dims: Sequence[str],
    shape: Sequence[int],
    chunk_shape: Sequence[int] | None,
    fill_value: Any,
) -> None:
    store._check_writable()
    store._check_live(ds)
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
    schema = store._schemas.lookup(key)
    if schema is None:
        schema = store._intern_schema(Schema(dt, shape_t, chunk_t, dims_t, fill))
    var = store._variable(name, create=True)
    assert var is not None
    arr = ArrayState(name, store._take_id(), schema, ds.name)
    ds.arrays[name] = arr
    var.live += 1
    store._datasets.mark_modified(ds.name)
    store._changed = True


def drop_array(store: StoreModel, arr: ArrayState) -> None:
    var = store._variables[arr.name]
    var.live -= 1
    var.dead_aids.add(arr.aid)
    var.changed = True
    for c in arr.dirty.values():
        store._dirty_bytes -= c.nbytes
    arr.dirty.clear()
    arr.deleted = True
    store._changed_arrays.pop(arr.aid, None)


def delete_array(store: StoreModel, ds: DatasetState, name: str) -> None:
    store._check_writable()
    store._check_live(ds)
    arr = ds.arrays.get(name)
    if arr is None:
        raise KeyError(f"no array named {name!r} in dataset {ds.name!r}")
    drop_array(store, arr)
    del ds.arrays[name]
    store._datasets.mark_modified(ds.name)
    store._changed = True


def delete_dataset(store: StoreModel, name: str) -> None:
    """Delete a dataset and all its arrays (effective at once, persisted by flush)."""
    store._check_writable()
    ds = store._dataset(name)
    for arr in ds.arrays.values():
        drop_array(store, arr)
    ds.deleted = True
    del store._datasets[name]
    store._changed = True


def coerce(store: StoreModel, schema: Schema, data: Any) -> np.ndarray:
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


def write_array(store: StoreModel, ds: DatasetState, name: str, start: Any, data: Any) -> None:
    store._check_writable()
    store._check_live(ds)
    arr = store._array(ds, name)
    schema = arr.schema
    data = coerce(store, schema, data)
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
            store._dirty_bytes -= old.nbytes if not schema.dtype.is_string else 64 * old.size
        arr.dirty[0] = buf
        store._dirty_bytes += buf.nbytes if not schema.dtype.is_string else 64 * buf.size
    else:
        stop = tuple(s + n for s, n in zip(start_t, data.shape, strict=True))
        if any(e > s for e, s in zip(stop, schema.shape, strict=True)):
            raise RuntimeError(
                f"write of shape {list(data.shape)} at {list(start_t)} is out of bounds for array "
                f"{name!r} of shape {list(schema.shape)}"
            )
        write_chunks(store, arr, start_t, stop, data)
    arr.written = True
    arr.changed = True
    store._changed_arrays[arr.aid] = arr
    store._datasets.mark_modified(ds.name)
    store._changed = True
    if store._dirty_bytes > store.buffer_bytes:
        commit.spill(store)


def write_chunks(store: StoreModel, arr: ArrayState, start: tuple[int, ...], stop: tuple[int, ...], data: np.ndarray) -> None:
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
            store._dirty_bytes += buf.nbytes if not schema.dtype.is_string else 64 * buf.size
        else:
            need_load.append((cid, coords))
    if need_load:
        loaded = read_chunks_for_update(store, arr, need_load)
        for cid, buf in loaded.items():
            arr.dirty[cid] = buf
            store._dirty_bytes += buf.nbytes if not schema.dtype.is_string else 64 * buf.size
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


def read_chunks_for_update(store: StoreModel, arr: ArrayState, wanted: list[tuple[int, tuple[int, ...]]]) -> dict[int, np.ndarray]:
    """Current content of chunks about to be partly overwritten (stored or fresh fill)."""
    schema = arr.schema
    out: dict[int, np.ndarray] = {}
    sources = read.locate(store, arr, [cid for cid, _ in wanted])
    stored = [(cid, coords, src) for (cid, coords), src in zip(wanted, sources, strict=True) if src is not None]
    decoded = read.decode_chunks(store, arr, [(cid, coords, src) for cid, coords, src in stored])
    for cid, coords in wanted:
        buf = decoded.get(cid)
        if buf is None:
            buf = schema.new_chunk(schema.chunk_extent(coords))
        elif not read.sole_owner(buf):  # else a huge chunk decoded for this write alone
            buf = np.array(buf, copy=True)
        out[cid] = buf
    return out


def set_attribute(
    store: StoreModel, dataset: str, target: dict[str, tuple[str, Any]], key: Any, value: Any, dtype: Any
) -> None:
    """Set an attribute of ``dataset`` (in ``target``: its attributes or an array's)."""
    store._check_writable()
    check_key(key)
    kv = infer_attribute(value) if dtype is None else coerce_attribute(value, dtype)
    target[key] = kv
    store._datasets.mark_modified(dataset)
    store._changed = True

