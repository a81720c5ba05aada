"""Statistics: per-chunk summaries computed in bulk, folded into per-array stats.

Each stored chunk carries its null count and its min / max over non-null cells
(as 64-bit values in the chunk index), so the statistics of an array are a
vectorised reduction over its index rows and never need the data again. Cells
of chunks never written count as nulls, so huge sparse arrays cost nothing.

Floats are ordered by IEEE total order (a positive NaN is the largest value, a
negative NaN the smallest) by mapping their bits to signed integers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .dtypes import DType

I64_MAX = np.iinfo(np.int64).max
I64_MIN = np.iinfo(np.int64).min
U64_MAX = np.iinfo(np.uint64).max
# Cells summarised per numpy pass (bounds the temporaries of a spill or flush).
STATS_SLICE_CELLS = 1 << 21


def float_keys(bits: np.ndarray) -> np.ndarray:
    """Map float64 bit patterns (as int64) to int64 keys in IEEE total order."""
    return bits ^ ((bits >> 63) & np.int64(I64_MAX))


def keys_to_bits(keys: np.ndarray) -> np.ndarray:
    """Inverse of :func:`float_keys` (the map is an involution)."""
    return float_keys(keys)


def null_mask(dtype: DType, flat: np.ndarray, fill: Any) -> np.ndarray | None:
    """Which cells equal the fill value (NaN-aware); None when no fill is set."""
    if fill is None:
        return None
    if dtype.kind == "float":
        if math.isnan(fill):
            return np.isnan(flat)
        with np.errstate(over="ignore"):
            return flat == dtype.numpy.type(fill)
    return flat == dtype.numpy.type(fill)


# Hot path at flush: the statistics of every chunk of a variable in a few numpy passes,
# one concatenated buffer per group of chunks (``_fill_groups``), not a pass per chunk.
def chunk_stats(
    dtype: DType, chunks: Sequence[np.ndarray], fills: Sequence[Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-chunk (nulls, vmin, vmax, has_minmax) for numeric/bool/timestamp chunks.

    ``vmin``/``vmax`` are int64 columns holding the index representation: int64
    values, uint64 bits, float64 bits or 0/1 for bools.
    """
    n = len(chunks)
    nulls = np.zeros(n, dtype=np.uint64)
    vmin = np.zeros(n, dtype=np.int64)
    vmax = np.zeros(n, dtype=np.int64)
    has = np.zeros(n, dtype=np.uint8)
    if n == 0:
        return nulls, vmin, vmax, has
    if any(c.size > STATS_SLICE_CELLS for c in chunks):
        return _sliced_stats(dtype, chunks, fills)
    for idx in _fill_groups(chunks, fills):
        _group_stats(dtype, chunks, idx, fills[idx[0]], (nulls, vmin, vmax, has))
    return nulls, vmin, vmax, has


def _fill_groups(chunks: Sequence[np.ndarray], fills: Sequence[Any]) -> list[list[int]]:
    """The chunks' positions grouped by fill value, so that each group is one concatenation
    and one mask, and each group cut into parts of about ``STATS_SLICE_CELLS`` cells, so
    that the temporaries stay small."""
    groups: dict[Any, list[list[int]]] = {}
    cells: dict[Any, int] = {}
    for i, f in enumerate(fills):
        key = ("nan",) if isinstance(f, float) and math.isnan(f) else (type(f).__name__, f)
        lst = groups.setdefault(key, [[]])
        size = chunks[i].size
        if lst[-1] and cells[key] + size > STATS_SLICE_CELLS:
            lst.append([])
            cells[key] = 0
        lst[-1].append(i)
        cells[key] = cells.get(key, 0) + size
    return [part for lst in groups.values() for part in lst]


def _group_stats(
    dtype: DType,
    chunks: Sequence[np.ndarray],
    idx: list[int],
    fill: Any,
    out: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Fill rows ``idx`` of :func:`chunk_stats`'s four columns ``out``: the chunks at
    ``idx``, which share the fill value ``fill``, summarised in one pass over their
    concatenation."""
    parts = [chunks[i].reshape(-1) for i in idx]
    sizes = np.fromiter((p.size for p in parts), dtype=np.int64, count=len(parts))
    keep = sizes > 0
    if not keep.all():
        idx = [i for i, k in zip(idx, keep, strict=True) if k]
        parts = [p for p, k in zip(parts, keep, strict=True) if k]
        sizes = sizes[keep]
    if not idx:
        return
    flat = parts[0] if len(parts) == 1 else np.concatenate(parts)
    starts = np.zeros(len(parts), dtype=np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    mask = null_mask(dtype, flat, fill)
    gnull = np.zeros(len(idx), dtype=np.int64) if mask is None else np.add.reduceat(mask, starts, dtype=np.int64)
    keys, lo_sent, hi_sent = _order_keys(dtype.kind, flat)
    if mask is None:
        kmin = np.minimum.reduceat(keys, starts)
        kmax = np.maximum.reduceat(keys, starts)
    else:
        if keys is flat and len(parts) == 1:
            keys = keys.copy()  # a view of the caller's chunk: the sentinels must not land there
        np.copyto(keys, lo_sent, where=mask)
        kmin = np.minimum.reduceat(keys, starts)
        np.copyto(keys, hi_sent, where=mask)
        kmax = np.maximum.reduceat(keys, starts)
    if dtype.kind == "float":
        kmin, kmax = _float64_bits(kmin, flat.dtype), _float64_bits(kmax, flat.dtype)
    nulls, vmin, vmax, has = out
    ia = np.asarray(idx)
    nulls[ia] = gnull
    vmin[ia] = kmin.view(np.int64) if kmin.dtype != np.int64 else kmin
    vmax[ia] = kmax.view(np.int64) if kmax.dtype != np.int64 else kmax
    has[ia] = (gnull < sizes).astype(np.uint8)


def _order_keys(kind: str, flat: np.ndarray) -> tuple[np.ndarray, Any, Any]:
    """Integers ordered as the values of ``flat`` are (floats in IEEE total order), and the
    sentinels that a null cell takes so as not to count in a minimum, and in a maximum."""
    if kind == "float":
        # total-order keys in the native width (int32 for float32): no widening of the data
        ibits: Any = np.int32 if flat.dtype.itemsize == 4 else np.int64
        info = np.iinfo(ibits)
        bits: Any = flat.view(ibits)
        keys = bits >> (8 * flat.dtype.itemsize - 1)  # in place from here: one temporary
        keys &= ibits(info.max)
        keys ^= bits
        return keys, ibits(info.max), ibits(info.min)
    if kind == "uint":
        return flat.astype(np.uint64, copy=False), np.uint64(U64_MAX), np.uint64(0)
    return flat.astype(np.int64, copy=False), np.int64(I64_MAX), np.int64(I64_MIN)


def _float64_bits(keys: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    """Total-order keys of floats of ``dtype`` back to bits, to values, widened exactly to
    float64, as float64 bits (int64)."""
    ib = keys.dtype.type
    sh = 8 * dtype.itemsize - 1
    mx = ib(np.iinfo(keys.dtype).max)
    return (keys ^ ((keys >> sh) & mx)).view(dtype).astype(np.float64).view(np.int64)


def _sliced_stats(
    dtype: DType, chunks: Sequence[np.ndarray], fills: Sequence[Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`chunk_stats` of chunks some of which exceed ``STATS_SLICE_CELLS``: each such
    chunk is summarised in slices (views, so the temporaries stay those of one slice) and
    the slices' summaries are folded per chunk."""
    step = STATS_SLICE_CELLS
    pieces: list[np.ndarray] = []
    piece_fills: list[Any] = []
    counts = np.empty(len(chunks), dtype=np.int64)
    for i, (c, f) in enumerate(zip(chunks, fills, strict=True)):
        flat = c.reshape(-1)
        if flat.size > step:
            parts = [flat[j : j + step] for j in range(0, flat.size, step)]
        else:
            parts = [flat]
        pieces.extend(parts)
        piece_fills.extend([f] * len(parts))
        counts[i] = len(parts)
    pn, pmin, pmax, phas = chunk_stats(dtype, pieces, piece_fills)
    starts = np.zeros(len(chunks), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    nulls = np.add.reduceat(pn, starts).astype(np.uint64)
    has = np.maximum.reduceat(phas, starts).astype(np.uint8)
    vmin, vmax = _fold_bounds(dtype.kind, pmin, pmax, phas.astype(bool), starts)
    none = has == 0
    vmin[none] = 0
    vmax[none] = 0
    return nulls, vmin, vmax, has


def _fold_bounds(
    kind: str, vmin: np.ndarray, vmax: np.ndarray, has: np.ndarray, starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The least ``vmin`` and the greatest ``vmax`` of each run of rows beginning at
    ``starts``, over the rows where ``has`` is set, as int64 columns in the index
    representation (floats compared in IEEE total order); a run with no such row gets a
    sentinel, which the caller masks."""
    if kind == "float":  # float64 bits
        lo = keys_to_bits(np.minimum.reduceat(np.where(has, float_keys(vmin), np.int64(I64_MAX)), starts))
        hi = keys_to_bits(np.maximum.reduceat(np.where(has, float_keys(vmax), np.int64(I64_MIN)), starts))
    elif kind == "uint":  # uint64 bits
        lo = np.minimum.reduceat(np.where(has, vmin.view(np.uint64), np.uint64(U64_MAX)), starts).view(np.int64)
        hi = np.maximum.reduceat(np.where(has, vmax.view(np.uint64), np.uint64(0)), starts).view(np.int64)
    else:
        lo = np.minimum.reduceat(np.where(has, vmin, np.int64(I64_MAX)), starts)
        hi = np.maximum.reduceat(np.where(has, vmax, np.int64(I64_MIN)), starts)
    return lo, hi


def string_stats(row_count: int, written_cells: int, values: list[np.ndarray], fill: Any) -> dict[str, Any]:
    """Stats of a string array from the values of its written chunks."""
    nulls = 0
    lo: str | None = None
    hi: str | None = None
    for v in values:
        flat = v.ravel()
        if fill is not None:
            m = flat == fill
            nulls += int(np.count_nonzero(m))
            flat = flat[~m]
        if flat.size:
            cmin, cmax = min(flat.tolist()), max(flat.tolist())
            lo = cmin if lo is None or cmin < lo else lo
            hi = cmax if hi is None or cmax > hi else hi
    return {
        "row_count": row_count,
        "null_count": row_count - written_cells + nulls,
        "min": lo,
        "max": hi,
    }


def fold_many(
    dtype: DType, row_counts: list[int], lo: np.ndarray, hi: np.ndarray, rows_at: Callable[[np.ndarray], np.ndarray]
) -> list[dict[str, Any]]:
    """Fold the index rows of many arrays of one dtype into their ``array_stats`` dicts.

    ``null_count`` is the cells of chunks never written plus the null cells of written
    ones; min/max come from the per-chunk values (floats in IEEE total order).

    ``rows_at(numbers)`` gives the rows of a chunk-index table sorted by array at some row
    numbers; array ``i`` owns rows ``lo[i]:hi[i]``.
    """
    n = len(row_counts)
    lengths = (hi - lo).astype(np.int64)
    total = int(lengths.sum())
    out: list[dict[str, Any]] = []
    if total == 0:
        return [{"row_count": rc, "null_count": rc, "min": None, "max": None} for rc in row_counts]
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    take = np.repeat(lo.astype(np.int64) - starts, lengths) + np.arange(total)
    sub = rows_at(take)
    nonempty = lengths > 0
    st = np.minimum(starts, total - 1)
    ncells = np.add.reduceat(sub["ncells"].astype(np.int64), st)
    nulls = np.add.reduceat(sub["nulls"].astype(np.int64), st)
    has = sub["has_minmax"].astype(bool)
    anyhas = np.maximum.reduceat(has.astype(np.int64), st) > 0
    kind = dtype.kind
    lo_bits, hi_bits = _fold_bounds(kind, sub["vmin"], sub["vmax"], has, st)
    if kind == "float":
        mins = lo_bits.view(np.float64).tolist()
        maxs = hi_bits.view(np.float64).tolist()
    elif kind == "uint":
        mins = lo_bits.view(np.uint64).tolist()
        maxs = hi_bits.view(np.uint64).tolist()
    else:
        mins = lo_bits.tolist()
        maxs = hi_bits.tolist()
        if kind == "bool":
            mins = [bool(x) for x in mins]
            maxs = [bool(x) for x in maxs]
    wc, nc, ah, ne = ncells.tolist(), nulls.tolist(), anyhas.tolist(), nonempty.tolist()
    for i, rc in enumerate(row_counts):
        if not ne[i]:
            out.append({"row_count": rc, "null_count": rc, "min": None, "max": None})
            continue
        ok = ah[i]
        out.append(
            {
                "row_count": rc,
                "null_count": rc - wc[i] + nc[i],
                "min": mins[i] if ok else None,
                "max": maxs[i] if ok else None,
            }
        )
    return out
