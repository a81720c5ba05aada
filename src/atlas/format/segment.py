"""Segment writing: pack chunks into blocks, compress them in parallel, write segments.

Small chunks of the same variable and dtype from neighbouring datasets are packed
into one block of about ``BLOCK_TARGET`` raw bytes, so a scan decompresses a few
large blocks instead of thousands of tiny ones. A segment file is the magic
``SEGMENT_MAGIC`` followed by stored blocks back to back; it is immutable once
written and only referenced by index rows.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .chunkindex import empty_rows
from .codec import CODEC_IDS, compress, encode_block, shuffle

BLOCK_TARGET = 256 * 1024
SEGMENT_TARGET = 64 << 20
SEGMENT_MAGIC = b"ATLASSEG"

_POOL: ThreadPoolExecutor | None = None


def pool() -> ThreadPoolExecutor:
    """The shared worker pool for codec work (codecs release the GIL)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="atlas")
    return _POOL


@dataclass(slots=True)
class ChunkPayload:
    """One chunk ready to be stored, with its statistics."""

    aid: int
    chunk: int
    itemsize: int  # shuffle element size; chunks are grouped by it
    raw: np.ndarray  # uint8
    ncells: int
    nulls: int
    vmin: int
    vmax: int
    has_minmax: int


def new_key(prefix: str, vid: int, ext: str) -> str:
    """A fresh, never-reused storage key for a file of variable ``vid``."""
    return f"{prefix}/v{vid}-{secrets.token_hex(10)}.{ext}"


def write_segments(
    put: Callable[[str, bytes], None],
    vid: int,
    payloads: list[ChunkPayload],
    codec: str,
    first_seg: int,
) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """Store ``payloads`` as new segment files; return (index rows, [(segment key, size)])."""
    return start_segments(vid, payloads, codec)(put, first_seg)


def start_segments(
    vid: int, payloads: list[ChunkPayload], codec: str
) -> Callable[[Callable[[str, bytes], None], int], tuple[np.ndarray, list[tuple[str, int]]]]:
    """Pack ``payloads`` into blocks and start compressing them in the worker pool.

    Returns a function ``finish(put, first_seg)`` that waits for the blocks, writes the
    segment files and returns (index rows, [(segment key, size)]). Starting several
    variables before finishing any keeps every core busy.
    """
    rows = empty_rows(len(payloads))
    if not payloads:
        return lambda put, first_seg: (rows, [])
    # 1. pack into blocks (payload order kept: neighbouring datasets stay together)
    order = sorted(range(len(payloads)), key=lambda i: payloads[i].itemsize)
    blocks: list[tuple[list[int], int]] = []
    cur: list[int] = []
    cur_size = 0
    cur_item = -1
    for i in order:
        p = payloads[i]
        if cur and (p.itemsize != cur_item or cur_size >= BLOCK_TARGET or cur_size + p.raw.size > 2 * BLOCK_TARGET):
            blocks.append((cur, cur_item))
            cur, cur_size = [], 0
        cur.append(i)
        cur_item = p.itemsize
        cur_size += p.raw.size
    if cur:
        blocks.append((cur, cur_item))

    blocks = _choose_shuffle(blocks, payloads, codec)

    def build(block: tuple[list[int], int]) -> tuple[bytes, int, int]:
        members, itemsize = block
        parts = [payloads[i].raw for i in members]
        raw = parts[0] if len(parts) == 1 else np.concatenate(parts)
        stored, crc = encode_block(raw, codec, itemsize)
        return stored, crc, int(raw.size)

    futures = [pool().submit(build, b) for b in blocks]
    return lambda put, first_seg: _finish_segments(
        put, vid, payloads, codec, first_seg, rows, blocks, [f.result() for f in futures]
    )


def _choose_shuffle(
    blocks: list[tuple[list[int], int]], payloads: list[ChunkPayload], codec: str
) -> list[tuple[list[int], int]]:
    """Keep the byte-shuffle only where it compresses better.

    Shuffling wins on most measured data (smooth floats, counters), but not on data
    with few distinct values, where the codec matches whole elements. The first block of
    each element size is compressed both ways (at most 256 KiB of it) and the smaller
    choice applies to all blocks of that size in this write.
    """
    if codec == "none":
        return [(m, 1) for m, _ in blocks]
    decided: dict[int, int] = {}
    out = []
    for members, itemsize in blocks:
        if itemsize > 1 and itemsize not in decided:
            parts = [payloads[i].raw for i in members]
            raw = parts[0] if len(parts) == 1 else np.concatenate(parts)
            sample = raw[: (BLOCK_TARGET // itemsize) * itemsize]
            shuffled = len(compress(shuffle(sample, itemsize), codec))
            plain = len(compress(sample, codec))
            decided[itemsize] = itemsize if shuffled < plain else 1
        out.append((members, decided.get(itemsize, 1)))
    return out


def _finish_segments(
    put: Callable[[str, bytes], None],
    vid: int,
    payloads: list[ChunkPayload],
    codec: str,
    first_seg: int,
    rows: np.ndarray,
    blocks: list[tuple[list[int], int]],
    encoded: list[tuple[bytes, int, int]],
) -> tuple[np.ndarray, list[tuple[str, int]]]:
    # 2. fill index rows and cut segments
    segments: list[tuple[str, int]] = []
    seg_parts: list[bytes] = [SEGMENT_MAGIC]
    seg_size = len(SEGMENT_MAGIC)
    seg_no = first_seg
    codec_id = CODEC_IDS[codec]

    def finish() -> None:
        nonlocal seg_parts, seg_size, seg_no
        key = new_key("data", vid, "seg")
        data = b"".join(seg_parts)
        put(key, data)
        segments.append((key, len(data)))
        seg_no += 1
        seg_parts = [SEGMENT_MAGIC]
        seg_size = len(SEGMENT_MAGIC)

    n = len(payloads)
    col_seg = np.zeros(n, dtype=np.int64)
    col_item = np.zeros(n, dtype=np.int64)
    col_off = np.zeros(n, dtype=np.int64)
    col_len = np.zeros(n, dtype=np.int64)
    col_raw = np.zeros(n, dtype=np.int64)
    col_crc = np.zeros(n, dtype=np.int64)
    col_within = np.zeros(n, dtype=np.int64)
    for (members, itemsize), (stored, crc, raw_size) in zip(blocks, encoded, strict=True):
        if seg_size > len(SEGMENT_MAGIC) and seg_size + len(stored) > SEGMENT_TARGET:
            finish()
        m = np.asarray(members)
        sizes = np.fromiter((payloads[i].raw.size for i in members), dtype=np.int64, count=len(members))
        col_seg[m] = seg_no
        col_item[m] = itemsize
        col_off[m] = seg_size
        col_len[m] = len(stored)
        col_raw[m] = raw_size
        col_crc[m] = crc
        col_within[m] = np.cumsum(sizes) - sizes
        seg_parts.append(stored)
        seg_size += len(stored)
    finish()
    rows["aid"] = [p.aid for p in payloads]
    rows["chunk"] = [p.chunk for p in payloads]
    rows["seg"] = col_seg
    rows["codec"] = codec_id
    rows["itemsize"] = col_item
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
    return rows, segments

