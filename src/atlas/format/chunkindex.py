"""The per-variable chunk index: where every stored chunk of a variable lives.

One row per stored chunk, kept as a numpy structured array sorted by
``(aid, chunk)`` so that lookups and merges are vectorised. A row names the
block that holds the chunk (segment number, byte offset and length of the
compressed block, its raw size, codec, shuffle element size and CRC-32C), where
the chunk sits inside the decompressed block, and the chunk's statistics.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Callable
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
# Version 4 (what writers write now): as version 3, with the rows stored by field in groups
# of GROUP_ROWS rows (each field's values of a group one after the other), which compresses
# to about half what whole rows do.
COLUMNAR_VERSION = 4
GROUP_ROWS = 1 << 14
READABLE_VERSIONS = (FORMAT_VERSION, 2, DECIMAL_FORMAT_VERSION, COLUMNAR_VERSION)
_FIELDS: list[tuple[str, np.dtype[Any]]] = [(name, INDEX_DTYPE[name]) for name in INDEX_DTYPE.names or ()]
# No block is ever larger than this (blocks are ~256 KiB; a single huge chunk is its own block).
MAX_BLOCK_BYTES = 1 << 34
# A block holding several chunks is at most this large raw (segment.py packs chunks into
# blocks of at most twice its BLOCK_TARGET); a larger block holds exactly one chunk, so
# its rows have ``within == 0`` and ``nbytes == raw_size``. Readers refuse other rows, so
# only a chunk the reader checked against its array's shape can make it decode a big block.
MAX_SHARED_BLOCK_BYTES = 1 << 19
# Offsets and lengths are refused beyond this, so that sums of them never wrap.
_MAX_OFFSET = 1 << 62
# An index with more rows than this is damaged or crafted (2**31 rows would be 200 GB).
MAX_INDEX_ROWS = 1 << 31
# Rows differ from one another (sorted, no repeats), so zstd cannot store one in less than
# about a byte: written indexes compress 5 to 40 times. A payload declaring more rows than
# this ratio allows is refused before anything is allocated.
MAX_INDEX_RATIO = 1024
# Rows are decompressed and checked this many bytes at a time, so a payload that stops
# looking like sorted rows is refused after at most one piece of it was decompressed.
_PIECE_BYTES = 1 << 20


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
    if live_aids is None and in_order(parts):  # runs of appends: nothing to sort or drop
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
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


def run_file_key(version: int) -> str:
    """A fresh, never-reused key for the index file of the commit of ``version``, which
    holds one run of each variable the commit changed."""
    return f"index/r{version}-{secrets.token_hex(10)}.idx"


def in_order(parts: list[np.ndarray]) -> bool:
    """Whether the parts, one after the other, are strictly sorted by (aid, chunk)."""
    last: tuple[int, int] | None = None
    for p in parts:
        aid, chunk = p["aid"], p["chunk"]
        first = (int(aid[0]), int(chunk[0]))
        if last is not None and first <= last:
            return False
        if len(p) > 1:
            da = aid[1:] > aid[:-1]
            if not (da | ((aid[1:] == aid[:-1]) & (chunk[1:] > chunk[:-1]))).all():
                return False
        last = (int(aid[-1]), int(chunk[-1]))
    return True


def index_check(data: Any) -> tuple[int, int]:
    """(length, payload checksum from the header) of an index file: what a manifest records
    so that an index file replaced by another, valid one is noticed."""
    if len(data) < HEADER.size:
        return (len(data), 0)
    return (len(data), HEADER.unpack_from(data)[4])


class ChunkIndex:
    """Sorted index rows of one variable with fast lookups by array id."""

    __slots__ = ("rows", "_aid", "_chunk", "_first", "_cols", "_blocks", "_firsts")

    def __init__(self, rows: np.ndarray | None = None) -> None:
        self.rows = empty_rows() if rows is None else rows
        self._aid = np.ascontiguousarray(self.rows["aid"])
        self._chunk = np.ascontiguousarray(self.rows["chunk"])
        self._first: dict[int, int] | None = None
        self._cols: tuple[list[int], ...] | None = None
        self._blocks: tuple[np.ndarray, list[tuple[int, ...]]] | None = None
        self._firsts: tuple[np.ndarray, np.ndarray] | None = None

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

    def first_chunk_rows(self, aids: np.ndarray) -> np.ndarray:
        """Rows of chunk 0 of many arrays at once (-1 where not stored)."""
        if self._firsts is None:
            sel = np.flatnonzero(self._chunk == 0)
            self._firsts = (self._aid[sel], sel)  # rows are sorted by aid, so these are too
        keys, rows = self._firsts
        if not len(keys):
            return np.full(len(aids), -1, dtype=np.int64)
        at = np.minimum(keys.searchsorted(aids), len(keys) - 1)
        return np.where(keys[at] == aids, rows[at], -1).astype(np.int64)

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
        """Reject rows that point outside their segment or block (crafted or damaged index);
        :meth:`from_bytes` checks the rows it reads so as they come."""
        check_fields(self.rows, where)
        check_segments(self.rows, segment_sizes, where)

    # --- serialisation ---------------------------------------------------------------------

    def to_bytes(self, version: int = COLUMNAR_VERSION) -> bytes:
        """Encode as header + zstd-compressed rows (little-endian, packed): by field in
        groups of ``GROUP_ROWS`` rows (format version 4, what writers write), or whole rows
        as an older ``version`` lists them (for readers of that version)."""
        rows = self.rows
        if version not in READABLE_VERSIONS:
            raise ValueError(f"no chunk index format version {version}")
        compressor = zstandard.ZstdCompressor(level=3).compressobj(size=rows.nbytes)
        parts = []
        if version < COLUMNAR_VERSION:
            parts.append(compressor.compress(np.ascontiguousarray(rows).tobytes()))
        else:
            for lo in range(0, len(rows), GROUP_ROWS):
                group = rows[lo : lo + GROUP_ROWS]
                for name, _ in _FIELDS:
                    parts.append(compressor.compress(np.ascontiguousarray(group[name]).tobytes()))
        parts.append(compressor.flush())
        payload = b"".join(parts)
        return HEADER.pack(MAGIC, version, len(rows), len(payload), checksum(payload)) + payload

    @classmethod
    def from_bytes(
        cls,
        data: Any,
        where: str,
        segment_sizes: list[int] | None = None,
        row_limit: Callable[[int], int] | None = None,
        into: np.ndarray | None = None,
    ) -> ChunkIndex:
        """Decode an index file, checking magic, sizes, checksum and every row (into
        ``into``, rows of ``INDEX_DTYPE``, when given: a file of another number of rows is
        refused before anything is decompressed).

        ``row_limit(rows)``: the most rows the manifest allows this variable (asked with the
        number of rows the header declares); a header declaring more is refused before
        anything is decompressed. The rows are decompressed straight into their array, a
        piece at a time, and each piece is checked (:func:`check_order`, :func:`check_fields`,
        and :func:`check_segments` when ``segment_sizes`` is given) before the next one is
        decompressed: a payload that declares many rows but holds something else is refused
        at its first bad piece.
        """
        version, nrows, payload = _checked_header(memoryview(data), where, row_limit)
        if into is not None and (len(into) != nrows or into.dtype != INDEX_DTYPE):
            raise CorruptionError(f"chunk index {where} holds {nrows} rows, not the {len(into)} recorded")
        return cls(_checked_rows(payload, version, nrows, where, segment_sizes, into))


def _checked_header(
    buf: memoryview, where: str, row_limit: Callable[[int], int] | None
) -> tuple[int, int, memoryview]:
    """``(version, rows, payload)`` of an index file whose header, payload size and checksum
    hold, and whose row count is possible (and within ``row_limit``)."""
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
    if row_limit is not None and nrows > (most := row_limit(nrows)):
        raise CorruptionError(
            f"chunk index {where} declares {nrows} rows; its variable's arrays have at most {most} chunks"
        )
    if nrows > MAX_INDEX_ROWS or nrows * INDEX_DTYPE.itemsize > len(payload) * MAX_INDEX_RATIO + 64:
        raise CorruptionError(f"chunk index {where} declares an impossible {nrows} rows")
    return version, nrows, payload


def _checked_rows(
    payload: memoryview, version: int, nrows: int, where: str, segment_sizes: list[int] | None,
    into: np.ndarray | None = None,
) -> np.ndarray:
    """The ``nrows`` rows of a compressed payload, decompressed a piece at a time into
    their array, each piece checked before the next is decompressed."""
    size = INDEX_DTYPE.itemsize
    expected = nrows * size
    try:
        declared = zstandard.frame_content_size(payload)
    except zstandard.ZstdError as e:
        raise CorruptionError(f"chunk index {where} cannot be decompressed: {e}") from None
    if declared not in (expected, -1):
        raise CorruptionError(f"chunk index {where} holds a frame of the wrong size")
    rows = np.empty(nrows, dtype=INDEX_DTYPE) if into is None else into
    # a frame of unknown size may not ask for a larger window than writers use
    window = 0 if declared >= 0 else _PIECE_BYTES << 3
    try:
        with zstandard.ZstdDecompressor(max_window_size=window).stream_reader(payload) as reader:
            if version >= COLUMNAR_VERSION:
                _read_groups(reader, rows, version, where, segment_sizes)
            else:
                _read_rows(reader, rows, version, where, segment_sizes)
            if reader.read(1):
                raise CorruptionError(f"chunk index {where} holds more than the {expected} bytes expected")
    except zstandard.ZstdError as e:
        raise CorruptionError(f"chunk index {where} cannot be decompressed: {e}") from None
    return rows


def _checked_piece(rows: np.ndarray, lo: int, hi: int, version: int, where: str, segment_sizes: list[int] | None) -> None:
    """Check rows ``lo:hi`` (and their order after row ``lo - 1``)."""
    check_order(rows[max(0, lo - 1) : hi], version, where)
    check_fields(rows[lo:hi], where)
    if segment_sizes is not None:
        check_segments(rows[lo:hi], segment_sizes, where)


def _read_rows(reader: Any, rows: np.ndarray, version: int, where: str, segment_sizes: list[int] | None) -> None:
    """Rows stored whole (versions 1 to 3), decompressed straight into ``rows`` a piece at
    a time, each piece checked before the next."""
    size = INDEX_DTYPE.itemsize
    expected = len(rows) * size
    out = rows.view(np.uint8)
    piece = max(size, _PIECE_BYTES // size * size)
    done = checked = 0
    while done < expected:
        n = reader.readinto(out[done : min(expected, done + piece)])
        if not n:
            raise CorruptionError(f"chunk index {where} holds {done} bytes, expected {expected}")
        done += n
        upto = done // size
        if upto - checked >= piece // size or done == expected:
            _checked_piece(rows, checked, upto, version, where, segment_sizes)
            checked = upto


def _read_groups(reader: Any, rows: np.ndarray, version: int, where: str, segment_sizes: list[int] | None) -> None:
    """Rows stored by field in groups (version 4): each group decompressed, put back into
    rows and checked before the next."""
    size = INDEX_DTYPE.itemsize
    buf = np.empty(min(len(rows), GROUP_ROWS) * size, dtype=np.uint8)
    for lo in range(0, len(rows), GROUP_ROWS):
        hi = min(len(rows), lo + GROUP_ROWS)
        need = (hi - lo) * size
        got = 0
        while got < need:
            n = reader.readinto(buf[got:need])
            if not n:
                raise CorruptionError(f"chunk index {where} holds {lo * size + got} bytes, expected {len(rows) * size}")
            got += n
        group = rows[lo:hi]
        at = 0
        for name, dtype in _FIELDS:
            width = dtype.itemsize * (hi - lo)
            group[name] = buf[at : at + width].view(dtype)
            at += width
        _checked_piece(rows, lo, hi, version, where, segment_sizes)


def check_segments(rows: np.ndarray, segment_sizes: list[int], where: str) -> None:
    """Refuse rows whose block lies outside its segment (vectorised)."""
    if len(rows) == 0:
        return
    seg = rows["seg"].astype(np.int64)
    if int(seg.max()) >= len(segment_sizes):
        raise CorruptionError(f"chunk index {where} names a segment that does not exist")
    sizes = np.asarray(segment_sizes, dtype=np.uint64)[seg]
    offset, length = rows["offset"], rows["length"]
    bad = (offset > _MAX_OFFSET) | (length > _MAX_OFFSET) | (offset + length > sizes)  # no sum wraps
    if bad.any():
        raise CorruptionError(
            f"chunk index {where} has {int(bad.sum())} row(s) pointing outside their segment or block"
        )


def check_order(rows: np.ndarray, version: int, where: str) -> None:
    """Refuse rows of an index file out of order or repeated, or naming decimal blocks in
    an index of the version before the decimal filter (vectorised)."""
    if len(rows) == 0:
        return
    if version == FORMAT_VERSION and ((rows["filter"] & DECIMAL) != 0).any():
        raise CorruptionError(f"chunk index {where} is version {version} but names decimal blocks")
    if len(rows) > 1:
        a, c = rows["aid"], rows["chunk"]
        if not ((a[1:] > a[:-1]) | ((a[1:] == a[:-1]) & (c[1:] > c[:-1]))).all():
            raise CorruptionError(f"chunk index {where} is not sorted")


def check_fields(rows: np.ndarray, where: str) -> None:
    """Refuse rows no writer produces: an unknown codec or filter, a block that would
    decompress to more than its stored bytes can hold or than its chunks explain, a chunk
    outside its block, offsets and sizes so large that sums of them would wrap
    (vectorised)."""
    if len(rows) == 0:
        return
    codec, filt = rows["codec"], rows["filter"]
    length, raw = rows["length"], rows["raw_size"]
    within, nbytes = rows["within"], rows["nbytes"]
    decimal = (filt & DECIMAL) != 0
    grow = np.where(decimal, np.uint64(8), np.uint64(1))  # decimal deltas: up to 8 bytes from 1
    # raw, within, nbytes and length bounded first: the sums after them cannot wrap
    bad = (
        (raw > MAX_BLOCK_BYTES)
        | (within > MAX_BLOCK_BYTES)
        | (nbytes > MAX_BLOCK_BYTES)
        | (length > _MAX_OFFSET)
        | (rows["offset"] > _MAX_OFFSET)
        | (within + nbytes > raw)
        | ((raw > MAX_SHARED_BLOCK_BYTES) & ((within != 0) | (nbytes != raw)))
        | (codec > 2)
        | ~np.isin(filt, FILTERS)
        | (decimal & (codec == 0))
        | ((codec == 0) & (raw != length))
        | ((codec == 1) & (raw > (np.minimum(length, MAX_BLOCK_BYTES) * 32768 + 64) * grow))
        | ((codec == 2) & (raw > (np.minimum(length, MAX_BLOCK_BYTES) * 256 + 64) * grow))
    )
    if bad.any():
        raise CorruptionError(
            f"chunk index {where} has {int(bad.sum())} row(s) pointing outside their segment or block"
        )
