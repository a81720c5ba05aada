"""The per-variable chunk index: where every stored chunk of a variable lives.

One row per stored chunk, kept as a numpy structured array sorted by
``(aid, chunk)`` so that lookups and merges are vectorised. A row names the
block that holds the chunk (segment number, byte offset and length of the
compressed block, its raw size, codec, shuffle element size and CRC-32C), where
the chunk sits inside the decompressed block, and the chunk's statistics.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import zstandard

from ..errors import CorruptionError
from .codec import DECIMAL, FILTERS, checksum

INDEX_DTYPE = np.dtype(
    [
        ("aid", "<u8"),  # array instance id (unique per definition of an array in a dataset)
        ("chunk", "<u8"),  # row-major linear index of the chunk in the array's chunk grid
        ("seg", "<u4"),  # position of the segment file in the variable's segment list
        ("codec", "u1"),  # 0 none, 1 zstd, 2 lz4
        ("filter", "u1"),  # 1 none, 2/4/8 byte-shuffle by that size, 0x84/0x88 decimal (see codec.py)
        ("has_minmax", "u1"),  # 1 when vmin/vmax are set (chunk has non-null cells)
        ("offset", "<u8"),  # byte offset of the stored block in the segment
        ("length", "<u8"),  # stored (compressed) block length
        ("raw_size", "<u8"),  # decompressed block length
        ("crc", "<u4"),  # CRC-32C of the stored block
        ("within", "<u8"),  # byte offset of the chunk inside the decompressed block
        ("nbytes", "<u8"),  # raw byte length of the chunk
        ("ncells", "<u8"),  # number of cells in the chunk (edge chunks are clipped)
        ("nulls", "<u8"),  # cells equal to the fill value
        ("vmin", "<i8"),  # min over non-null cells (int64 / uint64 bits / float64 bits)
        ("vmax", "<i8"),  # max over non-null cells
    ]
)

MAGIC = b"ATLASIDX"
HEADER = struct.Struct("<8sIQQI")  # magic, format version, rows, payload length, crc32c
FORMAT_VERSION = 1
# Indexes with decimal-filter rows are version 3 (their new blocks may be decimal format 2,
# with a base), so readers that predate the filter, or that format, refuse them by version
# instead of calling the blocks damaged; others stay version 1. Version 2 (decimal format 1
# blocks only) is still read.
DECIMAL_FORMAT_VERSION = 3
READABLE_VERSIONS = (FORMAT_VERSION, 2, DECIMAL_FORMAT_VERSION)
# No block is ever larger than this (blocks are ~256 KiB; a single huge chunk is its own block).
MAX_BLOCK_BYTES = 1 << 34
# An index with more rows than this is damaged or crafted (2**31 rows would be 200 GB).
MAX_INDEX_ROWS = 1 << 31


def empty_rows(n: int = 0) -> np.ndarray:
    """A zeroed block of ``n`` index rows."""
    return np.zeros(n, dtype=INDEX_DTYPE)


def merge_rows(parts: list[np.ndarray], live_aids: np.ndarray | None = None) -> np.ndarray:
    """Merge row sets in priority order: for a repeated (aid, chunk) the last part wins.

    Rows whose aid is not in ``live_aids`` (deleted arrays and datasets) are dropped.
    """
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_rows()
    rows = parts[0] if len(parts) == 1 else np.concatenate(parts)
    if live_aids is not None:
        rows = rows[np.isin(rows["aid"], live_aids)]
    if len(rows) == 0:
        return rows
    order = np.lexsort((np.arange(len(rows)), rows["chunk"], rows["aid"]))
    rows = rows[order]
    aid, chunk = rows["aid"], rows["chunk"]
    last = np.ones(len(rows), dtype=bool)
    last[:-1] = (aid[1:] != aid[:-1]) | (chunk[1:] != chunk[:-1])
    return rows[last]


def index_check(data: Any) -> tuple[int, int]:
    """(length, payload checksum from the header) of an index file: what a manifest records
    so that an index file replaced by another, valid one is noticed."""
    if len(data) < HEADER.size:
        return (len(data), 0)
    return (len(data), HEADER.unpack_from(data)[4])


class ChunkIndex:
    """Sorted index rows of one variable with fast lookups by array id."""

    __slots__ = ("rows", "_aid", "_chunk", "_first", "_cols", "_blocks")

    def __init__(self, rows: np.ndarray | None = None) -> None:
        self.rows = empty_rows() if rows is None else rows
        self._aid = np.ascontiguousarray(self.rows["aid"])
        self._chunk = np.ascontiguousarray(self.rows["chunk"])
        self._first: dict[int, int] | None = None
        self._cols: tuple[list[int], ...] | None = None
        self._blocks: tuple[np.ndarray, list[tuple[int, ...]]] | None = None

    def blocks_after(self, seg: int, offset: int, count: int) -> list[tuple[int, ...]]:
        """The next ``count`` blocks in storage order after the block at (seg, offset), as
        (seg, offset, length, raw_size, crc, codec, filter): what a reader going through
        datasets in store order needs next, so it can fetch and decode them together."""
        if self._blocks is None:
            r = self.rows
            key = (r["seg"].astype(np.int64) << 40) | r["offset"].astype(np.int64)
            uniq, first = np.unique(key, return_index=True)
            sub = r[first]
            specs = list(zip(
                sub["seg"].tolist(), sub["offset"].tolist(), sub["length"].tolist(), sub["raw_size"].tolist(),
                sub["crc"].tolist(), sub["codec"].tolist(), sub["filter"].tolist(), strict=True,
            ))
            self._blocks = (uniq, specs)
        keys, specs = self._blocks
        i = int(keys.searchsorted((seg << 40) | offset, "right"))
        return specs[i : i + count]

    def first_chunk_row(self, aid: int) -> int:
        """Row of chunk 0 of an array (-1 if not stored), from a dict built once."""
        if self._first is None:
            sel = np.flatnonzero(self._chunk == 0)
            self._first = dict(zip(self._aid[sel].tolist(), sel.tolist(), strict=True))
        return self._first.get(aid, -1)

    def location(self, j: int) -> tuple[int, int, int, int, int, int, int, int, int]:
        """(seg, offset, length, raw_size, crc, codec, filter, within, nbytes) of row ``j``."""
        cols = self._cols
        if cols is None:
            r = self.rows
            cols = self._cols = tuple(
                r[f].tolist()
                for f in ("seg", "offset", "length", "raw_size", "crc", "codec", "filter", "within", "nbytes")
            )
        seg, off, length, raw, crc, codec, item, within, nbytes = cols
        return seg[j], off[j], length[j], raw[j], crc[j], codec[j], item[j], within[j], nbytes[j]

    def __len__(self) -> int:
        return len(self.rows)

    def span(self, aid: int) -> tuple[int, int]:
        """Row range [lo, hi) of one array."""
        a = self._aid
        return int(a.searchsorted(aid, "left")), int(a.searchsorted(aid, "right"))

    def find(self, aid: int, chunk: int) -> int:
        """Row number of one chunk, or -1 when it was never stored."""
        lo, hi = self.span(aid)
        if lo == hi:
            return -1
        j = lo + int(self._chunk[lo:hi].searchsorted(chunk))
        if j < hi and int(self._chunk[j]) == chunk:
            return j
        return -1

    def find_many(self, aids: np.ndarray, chunks: np.ndarray) -> np.ndarray:
        """Row numbers for many (aid, chunk) pairs at once (-1 where missing)."""
        n = len(self.rows)
        if n == 0 or len(aids) == 0:
            return np.full(len(aids), -1, dtype=np.int64)
        # composite ordering: search aid range, then chunk within it
        lo = self._aid.searchsorted(aids, "left")
        hi = self._aid.searchsorted(aids, "right")
        out = np.full(len(aids), -1, dtype=np.int64)
        single = (hi - lo) == 1
        if single.any():
            j = lo[single]
            ok = self._chunk[j] == chunks[single]
            res = np.where(ok, j, -1)
            out[single] = res
        multi = np.flatnonzero((hi - lo) > 1)
        for k in multi.tolist():
            a, b = int(lo[k]), int(hi[k])
            j = a + int(self._chunk[a:b].searchsorted(chunks[k]))
            if j < b and self._chunk[j] == chunks[k]:
                out[k] = j
        return out

    def validate(self, segment_sizes: list[int], where: str) -> None:
        """Reject rows that point outside their segment or block (crafted or damaged index)."""
        r = self.rows
        if len(r) == 0:
            return
        seg = r["seg"].astype(np.int64)
        if int(seg.max()) >= len(segment_sizes):
            raise CorruptionError(f"chunk index {where} names a segment that does not exist")
        sizes = np.asarray(segment_sizes, dtype=np.uint64)[seg]
        decimal = (r["filter"] & DECIMAL) != 0
        grow = np.where(decimal, np.uint64(8), np.uint64(1))  # decimal deltas: up to 8 bytes from 1
        bad = (
            (r["offset"] + r["length"] > sizes)
            | (r["within"] + r["nbytes"] > r["raw_size"])
            | (r["raw_size"] > MAX_BLOCK_BYTES)
            | (r["codec"] > 2)
            | ~np.isin(r["filter"], FILTERS)
            | (decimal & (r["codec"] == 0))
            | ((r["codec"] == 0) & (r["raw_size"] != r["length"]))
            | ((r["codec"] == 1) & (r["raw_size"] > (r["length"] * 32768 + 64) * grow))
            | ((r["codec"] == 2) & (r["raw_size"] > (r["length"] * 256 + 64) * grow))
        )
        if bad.any():
            raise CorruptionError(
                f"chunk index {where} has {int(bad.sum())} row(s) pointing outside their segment or block"
            )

    # --- serialisation ---------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Encode as header + zstd-compressed rows (little-endian, packed)."""
        payload = zstandard.ZstdCompressor(level=3).compress(self.rows.tobytes())
        decimal = len(self.rows) and bool(((self.rows["filter"] & DECIMAL) != 0).any())
        version = DECIMAL_FORMAT_VERSION if decimal else FORMAT_VERSION
        return HEADER.pack(MAGIC, version, len(self.rows), len(payload), checksum(payload)) + payload

    @classmethod
    def from_bytes(cls, data: Any, where: str) -> ChunkIndex:
        """Decode an index file, checking magic, sizes and checksum."""
        buf = memoryview(data)
        if len(buf) < HEADER.size:
            raise CorruptionError(f"chunk index {where} is truncated")
        magic, version, nrows, plen, crc = HEADER.unpack(buf[: HEADER.size])
        if magic != MAGIC:
            raise CorruptionError(f"chunk index {where} has a bad magic number")
        if version not in READABLE_VERSIONS:
            raise CorruptionError(f"chunk index {where} has unsupported version {version}")
        payload = buf[HEADER.size :]
        if len(payload) != plen:
            raise CorruptionError(f"chunk index {where} is truncated ({len(payload)} of {plen} bytes)")
        if checksum(payload) != crc:
            raise CorruptionError(f"chunk index {where} fails its checksum")
        expected = nrows * INDEX_DTYPE.itemsize
        if nrows > MAX_INDEX_ROWS or expected > len(payload) * 32768 + 64:
            raise CorruptionError(f"chunk index {where} declares an impossible {nrows} rows")
        if zstandard.frame_content_size(payload) not in (expected, -1):
            raise CorruptionError(f"chunk index {where} holds a frame of the wrong size")
        try:
            raw = zstandard.ZstdDecompressor().decompress(payload, max_output_size=max(expected, 1))
        except (zstandard.ZstdError, OverflowError, MemoryError, ValueError) as e:
            raise CorruptionError(f"chunk index {where} cannot be decompressed: {e}") from None
        if len(raw) != expected:
            raise CorruptionError(f"chunk index {where} holds {len(raw)} bytes, expected {expected}")
        rows = np.frombuffer(raw, dtype=INDEX_DTYPE).copy()
        if version == FORMAT_VERSION and nrows and ((rows["filter"] & DECIMAL) != 0).any():
            raise CorruptionError(f"chunk index {where} is version {version} but names decimal blocks")
        if nrows > 1:
            a, c = rows["aid"], rows["chunk"]
            ok = (a[1:] > a[:-1]) | ((a[1:] == a[:-1]) & (c[1:] > c[:-1]))
            if not ok.all():
                raise CorruptionError(f"chunk index {where} is not sorted")
        return cls(rows)
