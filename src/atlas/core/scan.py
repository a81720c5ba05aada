"""Reading one variable across many datasets (``read_array_across`` and its stacked form):
planning the chunks and blocks of every dataset at once and filling the results."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import (
    CorruptionError,
)
from ..format.chunkindex import empty_rows
from . import bulk, read
from .indexing import sub_array, window_slices
from .reader import BlockKey, bad_chunk_sizes, check_chunk_size, fetch_blocks
from .state import (
    ArrayState,
    Schema,
    Variable,
)

if TYPE_CHECKING:
    from .model import StoreModel


def across_arrays(store: StoreModel, array: str, names: Sequence[str]) -> list[ArrayState | None]:
    if isinstance(names, str):
        raise TypeError("names must be a list of dataset names, not a str")
    names = list(names)
    if not names:
        raise ValueError("names is empty: pass at least one dataset name")
    out = store._arrays_of(names, array)
    return out


def read_array_across(
    store: StoreModel,
    array: str,
    names: Sequence[str],
    start: Sequence[int] | None = None,
    shape: Sequence[int] | None = None,
) -> list[np.ndarray | None]:
    """Read one array from many datasets; ``None`` where a dataset lacks it.

    Each array is the caller's own (writable, sharing no values with another), though
    arrays read whole from one block may be views of one buffer, as numpy slices are."""
    if isinstance(names, str):
        raise TypeError("names must be a list of dataset names, not a str")
    names = list(names)
    p = bulk.plan(store, array, names, start, shape)
    if p is None:
        results = _read_each(store, array, names, start, shape)
    else:
        results = [None] * len(names)

        def put(positions: np.ndarray, schema: Schema, chunks: np.ndarray, fresh: bool) -> None:
            chunks = read.finish(store, schema, chunks if fresh else chunks.copy())
            for i, chunk in zip(positions.tolist(), chunks, strict=True):
                results[i] = chunk

        bulk.fill(store, array, names, p, put)
        if p.others:
            for i, got in zip(p.others, _read_each(store, array, [names[i] for i in p.others], start, shape), strict=True):
                results[i] = got
    if all(r is None for r in results):
        raise KeyError(f"none of the listed datasets has an array named {array!r}")
    return results


def _read_each(
    store: StoreModel, array: str, names: list[Any], start: Sequence[int] | None, shape: Sequence[int] | None
) -> list[np.ndarray | None]:
    """``read_array_across`` dataset by dataset (None where a dataset lacks the array)."""
    arrs = across_arrays(store, array, names)
    results: list[np.ndarray | None] = [None] * len(arrs)
    jobs = []
    fast: list[tuple[int, ArrayState, tuple[slice, ...] | None]] = []
    var = store._variables.get(array)
    can_fast = var is not None and not len(var.pending)
    for i, a in enumerate(arrs):
        if a is None:
            continue
        schema = a.schema
        if can_fast and schema.single and not a.dirty:
            if start is None and shape is None:
                fast.append((i, a, None))
            else:
                st, stop = read.read_window(store, schema, start, shape)
                fast.append((i, a, window_slices(st, stop)))
            continue
        if start is None and shape is None:
            st, stop = (0,) * len(schema.shape), schema.shape
        else:
            st, stop = read.read_window(store, schema, start, shape)
        out = np.empty(tuple(b - x for x, b in zip(st, stop, strict=True)), dtype=schema.dtype.numpy)
        jobs.append((a, st, stop, out))
        results[i] = out
    scan_jobs(store, array, jobs)
    for i, r in enumerate(results):
        if r is not None:
            a = arrs[i]
            assert a is not None
            results[i] = read.finish(store, a.schema, r)
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
            results[i] = read.finish(store, schema, out)

        scan_single(store, var, fast, emit)
    return results


# One function on purpose (hot path): a single pass over every dataset's index rows, with
# the columns bound to locals; split into calls per dataset, a 10,000-dataset scan pays
# for 10,000 calls.
def scan_single(
    store: StoreModel,
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
    idx = store._index(var)
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
        size = a.schema.size
        if nbytes != a.schema.nbytes:  # checked before blocks are fetched (strings always)
            try:
                check_chunk_size(a.schema.dtype, size, nbytes)
            except ValueError as e:
                raise CorruptionError(
                    f"dataset {a.dataset!r}, array {a.name!r}: chunk does not fit its block: {e}"
                ) from None
        key = (seg_keys[seg], offset)
        if key not in wanted:
            wanted[key] = (length, raw, crc, codec, filter_id)
            by_block[key] = []
        by_block[key].append(pos)
        locs.append((within, nbytes))
        needed += nbytes if sl is None or not size else nbytes * math.prod(x.stop - x.start for x in sl) // size
    raw_sizes = [w[1] for w in wanted.values()]
    mode = read.scan_cache_mode(store, sum(raw_sizes), sum(w[0] for w in wanted.values()), needed)
    keys = list(wanted)
    for b0, b1 in read.scan_batches(store, mode, raw_sizes):
        batch = {k: wanted[k] for k in keys[b0:b1]}
        try:
            blocks = fetch_blocks(
                store._storage.get_many_ranges, store._cache, batch, read.describe_block(store, var), mode,
                get_transient=store._storage.get_many_ranges_transient,
            )
        except CorruptionError as e:
            hit = {items[p][1].dataset for k in batch for p in by_block[k] if k[0] in str(e) and f"offset {k[1]} " in str(e)}
            shown = ", ".join(repr(n) for n in sorted(hit)[:5])
            raise CorruptionError(f"{e}; affects array {var.name!r} of dataset(s) {shown}") from None
        except FileNotFoundError as e:
            raise store._missing_error(f"a segment of variable {var.name!r} is missing: {e}") from None
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
                    chunk = read.chunk_from_block(store, schema, block, within, nbytes, schema.shape)
                except ValueError as e:
                    raise CorruptionError(
                        f"dataset {a.dataset!r}, array {a.name!r}: chunk does not fit its block: {e}"
                    ) from None
                emit(i, chunk, a, sl, own and not schema.dtype.is_string)


def read_array_across_stacked(
    store: StoreModel,
    array: str,
    names: Sequence[str],
    start: Sequence[int] | None = None,
    shape: Sequence[int] | None = None,
    pad: bool = False,
    slot: Sequence[int] | None = None,
) -> np.ndarray:
    """Read one array from many datasets into one ndarray of shape ``(len(names), *shape)``.

    Ragged windows (arrays of different shapes) are a ``ValueError`` unless ``pad``: then
    each one fills the leading corner of a slot as large as the largest window in every
    dimension (or of shape ``slot``, when given: at least every window), and the rest of
    the slot holds that dataset's fill value (zeros for arrays without one)."""
    if not isinstance(names, str):
        names = list(names)
        got = _stacked_in_bulk(store, array, names, start, shape, pad, slot)
        if got is not None:
            return got
    arrs = across_arrays(store, array, names)
    names = list(names)
    for n, a in zip(names, arrs, strict=True):
        if a is None:
            if not (isinstance(n, str) and n in store._datasets):
                raise KeyError(f"no dataset named {n!r}")
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
            windows.append(read.read_window(store, schema, start, shape))
    extents = [tuple(b - x for x, b in zip(st, stop, strict=True)) for st, stop in windows]
    common = stacked_shape(array, extents, pad) if slot is None else tuple(slot)
    dt = present[0].schema.dtype
    out = read.result_buffer((len(present), *common), dt.numpy)
    dests = [out[i, ...] for i in range(len(present))]
    if any(e != common for e in extents):  # padded: each window fills a corner of its slot
        for i, (a, e) in enumerate(zip(present, extents, strict=True)):
            out[i, ...] = a.schema.fillscalar
            dests[i] = out[i][tuple(slice(0, n) for n in e)]
    _fill_windows(store, array, present, windows, dests)
    return read.finish(store, present[0].schema, out)


def _fill_windows(
    store: StoreModel,
    array: str,
    arrays: list[ArrayState],
    windows: list[tuple[tuple[int, ...], tuple[int, ...]]],
    dests: list[np.ndarray],
) -> None:
    """Copy the window of each array into its destination: one-chunk arrays with nothing
    buffered the fast way (``scan_single``), the others through ``scan_jobs``."""
    var = store._variables.get(array)
    jobs = []
    fast: list[tuple[int, ArrayState, tuple[slice, ...] | None]] = []
    can_fast = var is not None and not len(var.pending)
    for i, (a, (st, stop)) in enumerate(zip(arrays, windows, strict=True)):
        if can_fast and a.schema.single and not a.dirty:
            full = stop == a.schema.shape and not any(st)
            fast.append((i, a, None if full else window_slices(st, stop)))
        else:
            jobs.append((a, st, stop, dests[i]))
    scan_jobs(store, array, jobs)
    if fast:
        assert var is not None

        def emit(i: int, chunk: np.ndarray | None, a: ArrayState, sl: tuple[slice, ...] | None, own: bool) -> None:
            if chunk is None:
                dests[i][...] = a.schema.fillscalar
            else:
                dests[i][...] = chunk if sl is None else sub_array(chunk, sl)

        scan_single(store, var, fast, emit)


def _stacked_in_bulk(
    store: StoreModel,
    array: str,
    names: list[Any],
    start: Sequence[int] | None,
    shape: Sequence[int] | None,
    pad: bool,
    slot: Sequence[int] | None,
) -> np.ndarray | None:
    """A stacked read planned over columns (None when the per-dataset path must do it:
    a dataset changed, lacking the array or not stored, or windows to pad)."""
    p = bulk.plan(store, array, names, start, shape)
    if p is None or p.others or len(p.absent):
        return None
    if len(p.facts.dtype_names) > 1:
        raise TypeError(f"array {array!r} has different dtypes across these datasets: {sorted(p.facts.dtype_names)}")
    extents = p.facts.extents
    common = stacked_shape(array, list(extents), pad) if slot is None else tuple(slot)
    if extents != {common}:
        return None
    first = store._schemas[next(iter(p.windows))]
    out = read.result_buffer((len(names), *common), first.dtype.numpy)

    def put(positions: np.ndarray, schema: Schema, chunks: np.ndarray, fresh: bool) -> None:
        p0 = int(positions[0])
        if bulk.evenly_spaced(positions, 1):
            out[p0 : p0 + len(positions)] = chunks  # consecutive datasets: one copy
        else:
            out[positions] = chunks

    def dest(positions: np.ndarray, schema: Schema) -> np.ndarray | None:
        p0 = int(positions[0])
        return out[p0 : p0 + len(positions)] if schema.dtype.numpy == out.dtype else None

    bulk.fill(store, array, names, p, put, dest)
    return read.finish(store, first, out)


def stacked_shape(array: str, extents: Sequence[tuple[int, ...]], pad: bool) -> tuple[int, ...]:
    """The shape of one slot of a stacked read: the windows' common shape, or with ``pad``
    the largest extent in each dimension."""
    shapes = set(extents)
    if len(shapes) == 1:
        return shapes.pop()
    if not pad:
        raise ValueError(
            f"array {array!r} has different shapes across these datasets ({len(shapes)} distinct); "
            "pass start/shape to read a common window, or pad=True to pad to the largest"
        )
    if len({len(s) for s in shapes}) > 1:
        raise ValueError(f"array {array!r} has different numbers of dimensions across these datasets; cannot pad")
    return tuple(max(dim) for dim in zip(*shapes, strict=True))


# One function on purpose (hot path): planning, fetching and filling share the per-batch
# locals of one loop over thousands of chunks; helpers per chunk would cost a call each.
def scan_jobs(store: StoreModel, array: str, jobs: list[tuple[ArrayState, tuple[int, ...], tuple[int, ...], np.ndarray]]) -> None:
    """Fill many windows of one variable, fetching and decoding blocks in bulk batches."""
    var = store._variables.get(array)
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
    committed = store._index(var)
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
        rows[p_sel] = var.pending.take(found_p[sel][p_sel])
    if (~p_sel).any():
        rows[~p_sel] = committed.take(found_c[sel][~p_sel])
    metas = [pend_meta[k] for k in sel.tolist()]  # chunk sizes checked before blocks are fetched
    bad = bad_chunk_sizes(
        rows["nbytes"],
        np.fromiter((m[4].size if m[3] is m[4].shape else math.prod(m[3]) for m in metas), np.uint64, len(metas)),
        np.fromiter((0 if m[4].dtype.is_string else m[4].dtype.numpy.itemsize for m in metas), np.uint64, len(metas)),
    )
    if len(bad):
        m = metas[int(bad[0])]
        raise CorruptionError(
            f"a chunk of variable {array!r} does not fit its block: a chunk of {math.prod(m[3])} cells "
            f"claims {int(rows['nbytes'][bad[0]])} bytes"
        )
    segs = var.all_segments()
    seg_keys = [k for k, _ in segs]
    # batch by raw bytes so decoded blocks held at once stay small next to the result;
    # blocks are cached only when they are not much bigger than what the reads need
    raw = rows["raw_size"]
    order = np.lexsort((rows["offset"], rows["seg"]))
    result_bytes = sum({id(m[0]): int(m[0].nbytes) for m in pend_meta}.values())
    batch_budget = min(read.DECODE_BATCH_BYTES, max(store._storage.scan_batch_bytes, result_bytes // 16))
    block_ids = np.stack([rows["seg"].astype(np.int64), rows["offset"].astype(np.int64)], axis=1)
    first = np.unique(block_ids, axis=0, return_index=True)[1]
    mode = read.scan_cache_mode(store, int(raw[first].sum()), int(rows["length"][first].sum()), result_bytes)
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
            blocks = read.get_blocks(store, var, brows, cache=mode)
        except CorruptionError as e:
            raise CorruptionError(f"{e}; {read.owners(store, var, brows, str(e))}") from None
        within = brows["within"].tolist()
        nbytes = brows["nbytes"].tolist()
        bseg = brows["seg"].tolist()
        boff = brows["offset"].tolist()
        for j, ri in enumerate(batch.tolist()):
            out, dst_t, src_t, extent, schema = pend_meta[int(sel[ri])]
            block = blocks[(seg_keys[bseg[j]], boff[j])]
            try:
                chunk = read.chunk_from_block(store, schema, block, within[j], nbytes[j], extent)
            except ValueError as e:
                raise CorruptionError(f"a chunk of variable {array!r} does not fit its block: {e}") from None
            out[dst_t] = chunk[src_t]
        start_i = end_i

