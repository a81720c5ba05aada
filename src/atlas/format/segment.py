"""Segment writing: pack chunks into blocks, compress them in parallel, write segments.

Small chunks of the same variable and dtype from neighbouring datasets are packed
into one block of about ``BLOCK_TARGET`` raw bytes, so a scan decompresses a few
large blocks instead of thousands of tiny ones. A segment file is the magic
``SEGMENT_MAGIC`` followed by stored blocks back to back; it is immutable once
written and only referenced by index rows.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..executors import cpu_pool
from .chunkindex import MAX_SHARED_BLOCK_BYTES, empty_rows
from .codec import (
    CODEC_IDS,
    DECIMAL,
    STREAM_MIN_BYTES,
    compress,
    encode_filtered,
    encode_large,
    filtered,
    shuffle,
    streams,
)

# Chunks are packed into a block until it holds this much; a chunk that would take it past
# twice that starts a new block. So a block of several chunks is at most twice this, which
# readers rely on (a larger block must hold one chunk only).
BLOCK_TARGET = MAX_SHARED_BLOCK_BYTES // 2
SEGMENT_TARGET = 64 << 20
SEGMENT_MAGIC = b"ATLASSEG"

@dataclass(slots=True)
class ChunkPayload:
    """One chunk ready to be stored, with its statistics."""

    aid: int
    chunk: int
    itemsize: int  # element size; chunks are grouped by it (and by is_float)
    raw: np.ndarray  # uint8
    ncells: int
    nulls: int
    vmin: int
    vmax: int
    has_minmax: int
    is_float: bool = False  # float32 / float64 cells: the decimal filter may apply


def new_key(prefix: str, vid: int, ext: str) -> str:
    """A fresh, never-reused storage key for a file of variable ``vid``."""
    return f"{prefix}/v{vid}-{secrets.token_hex(10)}.{ext}"


def new_shared_key() -> str:
    """A fresh, never-reused key for a segment file shared by the variables of one write."""
    return f"data/m-{secrets.token_hex(10)}.seg"


class SegmentSink:
    """Where the blocks of one write go: segment files (cut at ``SEGMENT_TARGET``) that the
    variables written share, each variable's blocks contiguous in them. ``close`` writes the
    last file and returns every file's size."""

    def __init__(self, put: Callable[[str, bytes], None], new_key: Callable[[], str] = new_shared_key) -> None:
        self._put = put
        self._new_key = new_key
        self.sizes: dict[str, int] = {}
        self._start()

    def _start(self) -> None:
        self.key = self._new_key()
        self._parts: list[bytes | bytearray | memoryview] = [SEGMENT_MAGIC]
        self._size = len(SEGMENT_MAGIC)

    def _cut(self) -> None:
        if self._size > len(SEGMENT_MAGIC):
            data = b"".join(self._parts)
            self._put(self.key, data)
            self.sizes[self.key] = len(data)
        self._start()

    def append(self, block: bytes | bytearray | memoryview) -> tuple[str, int]:
        """Add a stored block; returns (segment key, offset)."""
        if self._size > len(SEGMENT_MAGIC) and self._size + len(block) > SEGMENT_TARGET:
            self._cut()
        at = self._size
        self._parts.append(block)
        self._size += len(block)
        return self.key, at

    def close(self) -> dict[str, int]:
        self._cut()
        return self.sizes


# The segments a variable's write used: (key, bytes of its blocks in that file).
Owned = list[tuple[str, int]]


def write_segments(
    put: Callable[[str, bytes], None],
    vid: int,
    payloads: list[ChunkPayload],
    codec: str,
    first_seg: int,
) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """Store ``payloads`` as new segment files of their own; return (index rows,
    [(segment key, size)])."""
    sink = SegmentSink(put, lambda: new_key("data", vid, "seg"))
    rows, owned = start_segments(vid, payloads, codec)(sink, first_seg)
    sizes = sink.close()
    return rows, [(k, sizes[k]) for k, _ in owned]


def start_segments(
    vid: int, payloads: list[ChunkPayload], codec: str
) -> Callable[[SegmentSink, int], tuple[np.ndarray, Owned]]:
    """Pack ``payloads`` into blocks and start compressing them in the worker pool.

    Returns a function ``finish(sink, first_seg)`` that waits for the blocks, adds them to
    the sink's segment files and returns (index rows, [(segment key, bytes of these blocks
    in it)]); ``first_seg`` is the position the first of those segments takes in the
    variable's list. Starting several variables before finishing any keeps every core busy.
    """
    rows = empty_rows(len(payloads))
    if not payloads:
        return lambda sink, first_seg: (rows, [])
    # 1. pack into blocks (payload order kept: neighbouring datasets stay together)
    order = sorted(range(len(payloads)), key=lambda i: (payloads[i].itemsize, payloads[i].is_float))
    groups: list[tuple[list[int], tuple[int, bool]]] = []
    cur: list[int] = []
    cur_size = 0
    cur_kind: tuple[int, bool] = (-1, False)
    for i in order:
        p = payloads[i]
        kind = (p.itemsize, p.is_float)
        if cur and (kind != cur_kind or cur_size >= BLOCK_TARGET or cur_size + p.raw.size > 2 * BLOCK_TARGET):
            groups.append((cur, cur_kind))
            cur, cur_size = [], 0
        cur.append(i)
        cur_kind = kind
        cur_size += p.raw.size
    if cur:
        groups.append((cur, cur_kind))

    blocks = _choose_filters(groups, payloads, codec)

    def build(block: tuple[list[int], int, int]) -> tuple[bytes | bytearray | memoryview, int, int, int]:
        members, filter_id, fallback = block
        parts = [payloads[i].raw for i in members]
        raw = parts[0] if len(parts) == 1 else np.concatenate(parts)
        data = None
        if filter_id & DECIMAL:
            data = filtered(raw, filter_id)
            if data is None:  # this block is no decimal data after all (or too large for it)
                filter_id = fallback
        if data is None:
            if raw.size >= STREAM_MIN_BYTES and streams(codec, filter_id):
                # a huge chunk is a block of its own: encode it without a filtered copy
                stored_large, crc_large = encode_large(raw, codec, filter_id)
                return stored_large, crc_large, int(raw.size), filter_id
            data = filtered(raw, filter_id)
        assert data is not None
        stored, crc = encode_filtered(data, codec, filter_id)
        return stored, crc, int(raw.size), filter_id

    futures = [cpu_pool().submit(build, b) for b in blocks]
    return lambda sink, first_seg: _finish_segments(
        sink, payloads, codec, first_seg, rows, [f.result() for f in futures], blocks
    )


def _choose_filters(
    groups: list[tuple[list[int], tuple[int, bool]]], payloads: list[ChunkPayload], codec: str
) -> list[tuple[list[int], int, int]]:
    """Pick each block's filter: (members, filter, fallback when the decimal filter does not fit).

    Byte-shuffling wins on most measured data (smooth floats, counters), but not on data
    with few distinct values, where the codec matches whole elements; floats that are
    rounded decimals shrink most with the decimal filter. The first block of each kind
    of element is encoded every way (at most 256 KiB of it) and the smallest choice
    applies to all blocks of that kind in this write.
    """
    if codec == "none":
        return [(m, 1, 1) for m, _ in groups]
    decided: dict[tuple[int, bool], tuple[int, int]] = {}
    out = []
    for members, kind in groups:
        itemsize, is_float = kind
        if itemsize > 1 and kind not in decided:
            parts = [payloads[i].raw for i in members]
            raw = parts[0] if len(parts) == 1 else np.concatenate(parts)
            sample = raw[: (BLOCK_TARGET // itemsize) * itemsize]
            sizes = {1: len(compress(sample, codec)), itemsize: len(compress(shuffle(sample, itemsize), codec))}
            fallback = min(sizes, key=lambda f: sizes[f])
            if is_float and itemsize in (4, 8):
                encoded = filtered(sample, DECIMAL | itemsize)
                if encoded is not None:
                    sizes[DECIMAL | itemsize] = len(compress(encoded, codec))
            decided[kind] = (min(sizes, key=lambda f: sizes[f]), fallback)
        best, fallback = decided.get(kind, (1, 1))
        out.append((members, best, fallback))
    return out


# One function on purpose: the blocks' compression futures are collected and laid out
# in segments in one ordered pass.
def _finish_segments(
    sink: SegmentSink,
    payloads: list[ChunkPayload],
    codec: str,
    first_seg: int,
    rows: np.ndarray,
    encoded: list[tuple[bytes | bytearray | memoryview, int, int, int]],
    blocks: list[tuple[list[int], int, int]],
) -> tuple[np.ndarray, Owned]:
    # 2. fill index rows, the blocks laid out in the sink's segments
    owned: Owned = []
    codec_id = CODEC_IDS[codec]
    n = len(payloads)
    col_seg = np.zeros(n, dtype=np.int64)
    col_item = np.zeros(n, dtype=np.int64)
    col_off = np.zeros(n, dtype=np.int64)
    col_len = np.zeros(n, dtype=np.int64)
    col_raw = np.zeros(n, dtype=np.int64)
    col_crc = np.zeros(n, dtype=np.int64)
    col_within = np.zeros(n, dtype=np.int64)
    for (members, _, _), (stored, crc, raw_size, filter_id) in zip(blocks, encoded, strict=True):
        key, offset = sink.append(stored)
        if not owned or owned[-1][0] != key:
            owned.append((key, 0))
        owned[-1] = (key, owned[-1][1] + len(stored))
        m = np.asarray(members)
        sizes = np.fromiter((payloads[i].raw.size for i in members), dtype=np.int64, count=len(members))
        col_seg[m] = first_seg + len(owned) - 1
        col_item[m] = filter_id
        col_off[m] = offset
        col_len[m] = len(stored)
        col_raw[m] = raw_size
        col_crc[m] = crc
        col_within[m] = np.cumsum(sizes) - sizes
    rows["aid"] = [p.aid for p in payloads]
    rows["chunk"] = [p.chunk for p in payloads]
    rows["seg"] = col_seg
    rows["codec"] = codec_id
    rows["filter"] = col_item
    rows["has_minmax"] = [p.has_minmax for p in payloads]
    rows["offset"] = col_off
    rows["length"] = col_len
    rows["raw_size"] = col_raw
    rows["crc"] = col_crc
    rows["within"] = col_within
    rows["nbytes"] = [p.raw.size for p in payloads]
    rows["ncells"] = [p.ncells for p in payloads]
    rows["nulls"] = [p.nulls for p in payloads]
    rows["vmin"] = [p.vmin for p in payloads]
    rows["vmax"] = [p.vmax for p in payloads]
    return rows, owned

