"""The per-variable chunk index: where every stored chunk of a variable lives.

One row per stored chunk, sorted by ``(aid, chunk)`` so that lookups and merges are
vectorised. In memory an index is held by field (one contiguous numpy array per field,
as version-4 files store it), and as whole rows (a structured array) only where a caller
asks for them: a scan across a million datasets reads a few fields. A row names the
block that holds the chunk (segment number, byte offset and length of the
compressed block, its raw size, codec, shuffle element size and CRC-32C), where
the chunk sits inside the decompressed block, and the chunk's statistics.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import zstandard

from ..errors import CorruptionError
from .codec import DECIMAL, FILTERS, checksum, read_into

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
# What names a stored block (its rows share these): where it is, its sizes, checksum and coding.
BLOCK_FIELDS = ("seg", "offset", "length", "raw_size", "crc", "codec", "filter")
_LOCATION = (*BLOCK_FIELDS, "within", "nbytes")  # where a chunk is: its block, then its place in it
# Lookups of one array at a time searched in the columns before they are served from a dict
# and Python lists (built once: a third of a second at a million rows, what a loop over
# that many datasets repays, and a read of a few datasets never pays).
LOOKUPS_BEFORE_LISTS = 256
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


IndexColumns = dict[str, np.ndarray]


def empty_rows(n: int = 0) -> np.ndarray:
    """A zeroed block of ``n`` index rows."""
    return np.zeros(n, dtype=INDEX_DTYPE)


def empty_columns(n: int) -> IndexColumns:
    """Room for ``n`` index rows held by field (uninitialised)."""
    return {name: np.empty(n, dtype=dtype) for name, dtype in _FIELDS}


def columns_part(columns: IndexColumns, lo: int, hi: int) -> IndexColumns:
    """Rows ``lo:hi`` of an index held by field (views)."""
    return {name: col[lo:hi] for name, col in columns.items()}


def row_count(rows: np.ndarray | IndexColumns) -> int:
    """How many rows whole rows, or rows held by field, hold."""
    return len(rows["aid"])


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


def block_keys(seg: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """One int64 per row naming its block: segment number and offset in it together."""
    return (seg.astype(np.int64) << 40) | offset.astype(np.int64)


def run_file_key(version: int) -> str:
    """A fresh, never-reused key for the index file of the commit of ``version``, which
    holds one run of each variable the commit changed."""
    return f"index/r{version}-{secrets.token_hex(10)}.idx"


def in_order(parts: Sequence[np.ndarray | IndexColumns]) -> bool:
    """Whether the parts (whole rows or by field), one after the other, are strictly sorted
    by (aid, chunk)."""
    last: tuple[int, int] | None = None
    for p in parts:
        aid, chunk = p["aid"], p["chunk"]
        if not len(aid):
            continue
        first = (int(aid[0]), int(chunk[0]))
        if last is not None and first <= last:
            return False
        if len(aid) > 1:
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
    """Sorted index rows of one variable with fast lookups by array id: held by field, or
    as whole rows (each form made from the other when first asked for)."""

    __slots__ = ("_rows", "_columns", "_n", "_blocks", "_firsts", "_lookups", "_first", "_lists")

    def __init__(self, rows: np.ndarray | None = None, *, columns: IndexColumns | None = None) -> None:
        self._rows: np.ndarray | None
        if columns is not None:
            self._rows, self._columns, self._n = None, columns, row_count(columns)
        else:
            self._rows = empty_rows() if rows is None else rows
            self._columns = {}
            self._n = len(self._rows)
        self._blocks: tuple[np.ndarray, list[tuple[int, ...]]] | None = None
        self._firsts: tuple[np.ndarray, np.ndarray] | None = None
        # one array at a time: searched in the columns at first; after LOOKUPS_BEFORE_LISTS
        # lookups (a loop over datasets), a dict of first rows and Python lists of the fields
        self._lookups = 0
        self._first: dict[int, int] | None = None
        self._lists: tuple[list[int], ...] | None = None

    @property
    def rows(self) -> np.ndarray:
        """The rows whole (a structured array of ``INDEX_DTYPE``, built once when the index
        is held by field, which it then no longer is)."""
        if self._rows is None:
            self._rows = self.take(slice(None))
            self._columns = {}  # one form holds the rows: fields are taken from them again when asked
        return self._rows

    def column(self, name: str) -> np.ndarray:
        """One field of every row (contiguous)."""
        col = self._columns.get(name)
        if col is None:
            assert self._rows is not None
            col = self._columns[name] = np.ascontiguousarray(self._rows[name])
        return col

    def take(self, which: slice | np.ndarray) -> np.ndarray:
        """Whole rows at ``which`` (a slice, or row numbers): only those are put together."""
        columns = self._columns  # replaced, not changed, once the rows are put together
        if self._rows is not None:
            return self._rows[which]
        first = columns["aid"][which]
        out = np.empty(len(first), dtype=INDEX_DTYPE)
        out["aid"] = first
        for name, _ in _FIELDS[1:]:
            out[name] = columns[name][which]
        return out

    def row(self, j: int) -> np.void:
        """Row ``j`` whole."""
        return self._rows[j] if self._rows is not None else self.take(np.array([j]))[0]

    def appended(self, rows: np.ndarray) -> ChunkIndex:
        """This index with ``rows`` merged in (theirs win): rows that all come after this
        index's are joined field by field, without putting this index's rows together."""
        if not len(rows):
            return self
        columns = self._columns
        # this index is sorted: its last row, then every row appended, must be in order
        if self._rows is None and in_order([columns_part(columns, max(0, self._n - 1), self._n), rows]):
            return ChunkIndex(columns={name: np.concatenate([columns[name], rows[name]]) for name, _ in _FIELDS})
        return ChunkIndex(merge_rows([self.rows, rows]))

    def blocks_after(self, seg: int, offset: int, count: int) -> list[tuple[int, ...]]:
        """The next ``count`` blocks in storage order after the block at (seg, offset), as
        (seg, offset, length, raw_size, crc, codec, filter): what a reader going through
        datasets in store order needs next, so it can fetch and decode them together."""
        if self._blocks is None:
            key = block_keys(self.column("seg"), self.column("offset"))
            uniq, first = np.unique(key, return_index=True)
            specs = list(zip(*(self.column(f)[first].tolist() for f in BLOCK_FIELDS), strict=True))
            self._blocks = (uniq, specs)
        keys, specs = self._blocks
        i = int(keys.searchsorted((seg << 40) | offset, "right"))
        return specs[i : i + count]

    def first_chunk_row(self, aid: int) -> int:
        """Row of chunk 0 of an array (-1 if not stored)."""
        first = self._first
        if first is not None:
            return first.get(aid, -1)
        keys, rows = self._first_chunks()
        self._lookups += 1
        if self._lookups > LOOKUPS_BEFORE_LISTS:
            self._first = dict(zip(keys.tolist(), rows.tolist(), strict=True))
        at = int(keys.searchsorted(aid))
        return int(rows[at]) if at < len(keys) and int(keys[at]) == aid else -1

    def first_chunk_rows(self, aids: np.ndarray) -> np.ndarray:
        """Rows of chunk 0 of many arrays at once (-1 where not stored)."""
        keys, rows = self._first_chunks()
        if not len(keys):
            return np.full(len(aids), -1, dtype=np.int64)
        at = np.minimum(keys.searchsorted(aids), len(keys) - 1)
        return np.where(keys[at] == aids, rows[at], -1).astype(np.int64)

    def _first_chunks(self) -> tuple[np.ndarray, np.ndarray]:
        """(array ids, their chunk 0's row) of the arrays whose chunk 0 is stored, by id."""
        if self._firsts is None:
            sel = np.flatnonzero(self.column("chunk") == 0)
            self._firsts = (self.column("aid")[sel], sel)  # rows are sorted by aid, so these are too
        return self._firsts

    def location(self, j: int) -> tuple[int, int, int, int, int, int, int, int, int]:
        """(seg, offset, length, raw_size, crc, codec, filter, within, nbytes) of row ``j``."""
        lists = self._lists
        if lists is None:
            self._lookups += 1
            if self._lookups <= LOOKUPS_BEFORE_LISTS:
                return tuple(int(self.column(f)[j]) for f in _LOCATION)  # type: ignore[return-value]
            lists = self._lists = tuple(self.column(f).tolist() for f in _LOCATION)
        seg, off, length, raw, crc, codec, item, within, nbytes = lists
        return seg[j], off[j], length[j], raw[j], crc[j], codec[j], item[j], within[j], nbytes[j]

    def __len__(self) -> int:
        return self._n

    def span(self, aid: int) -> tuple[int, int]:
        """Row range [lo, hi) of one array."""
        a = self.column("aid")
        return int(a.searchsorted(aid, "left")), int(a.searchsorted(aid, "right"))

    def find(self, aid: int, chunk: int) -> int:
        """Row number of one chunk, or -1 when it was never stored."""
        lo, hi = self.span(aid)
        if lo == hi:
            return -1
        chunks = self.column("chunk")
        j = lo + int(chunks[lo:hi].searchsorted(chunk))
        if j < hi and int(chunks[j]) == chunk:
            return j
        return -1

    def find_many(self, aids: np.ndarray, chunks: np.ndarray) -> np.ndarray:
        """Row numbers for many (aid, chunk) pairs at once (-1 where missing)."""
        if self._n == 0 or len(aids) == 0:
            return np.full(len(aids), -1, dtype=np.int64)
        aid_col, chunk_col = self.column("aid"), self.column("chunk")
        # composite ordering: search aid range, then chunk within it
        lo = aid_col.searchsorted(aids, "left")
        hi = aid_col.searchsorted(aids, "right")
        out = np.full(len(aids), -1, dtype=np.int64)
        single = (hi - lo) == 1
        if single.any():
            j = lo[single]
            ok = chunk_col[j] == chunks[single]
            res = np.where(ok, j, -1)
            out[single] = res
        multi = np.flatnonzero((hi - lo) > 1)
        for k in multi.tolist():
            a, b = int(lo[k]), int(hi[k])
            j = a + int(chunk_col[a:b].searchsorted(chunks[k]))
            if j < b and chunk_col[j] == chunks[k]:
                out[k] = j
        return out

    def validate(self, segment_sizes: list[int], where: str) -> None:
        """Reject rows that point outside their segment or block (crafted or damaged index);
        :meth:`from_bytes` checks the rows it reads so as they come."""
        fields = {name: self.column(name) for name, _ in _FIELDS}
        check_fields(fields, where)
        check_segments(fields, segment_sizes, where)

    # --- serialisation ---------------------------------------------------------------------

    def to_bytes(self, version: int = COLUMNAR_VERSION) -> bytes:
        """Encode as header + zstd-compressed rows (little-endian, packed): by field in
        groups of ``GROUP_ROWS`` rows (format version 4, what writers write), or whole rows
        as an older ``version`` lists them (for readers of that version)."""
        if version not in READABLE_VERSIONS:
            raise ValueError(f"no chunk index format version {version}")
        n = self._n
        compressor = zstandard.ZstdCompressor(level=3).compressobj(size=n * INDEX_DTYPE.itemsize)
        parts = []
        if version < COLUMNAR_VERSION:
            parts.append(compressor.compress(np.ascontiguousarray(self.rows).tobytes()))
        else:
            columns = [self.column(name) for name, _ in _FIELDS]
            for lo in range(0, n, GROUP_ROWS):
                for col in columns:
                    parts.append(compressor.compress(col[lo : lo + GROUP_ROWS].tobytes()))
        parts.append(compressor.flush())
        payload = b"".join(parts)
        return HEADER.pack(MAGIC, version, n, len(payload), checksum(payload)) + payload

    @classmethod
    def from_bytes(
        cls,
        data: Any,
        where: str,
        segment_sizes: list[int] | None = None,
        row_limit: Callable[[int], int] | None = None,
        into: IndexColumns | None = None,
    ) -> ChunkIndex:
        """Decode an index file, checking magic, sizes, checksum and every row (into
        ``into``, rows held by field, when given: a file of another number of rows is
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
        if into is not None and row_count(into) != nrows:
            raise CorruptionError(f"chunk index {where} holds {nrows} rows, not the {row_count(into)} recorded")
        rows = _checked_rows(payload, version, nrows, where, segment_sizes, into)
        return cls(columns=rows) if isinstance(rows, dict) else cls(rows)


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
    into: IndexColumns | None = None,
) -> np.ndarray | IndexColumns:
    """The ``nrows`` rows of a compressed payload, decompressed a piece at a time (by field
    from version 4, whole rows before), each piece checked before the next is
    decompressed."""
    size = INDEX_DTYPE.itemsize
    expected = nrows * size
    try:
        declared = zstandard.frame_content_size(payload)
    except zstandard.ZstdError as e:
        raise CorruptionError(f"chunk index {where} cannot be decompressed: {e}") from None
    if declared not in (expected, -1):
        raise CorruptionError(f"chunk index {where} holds a frame of the wrong size")
    rows: np.ndarray | IndexColumns
    # a frame of unknown size may not ask for a larger window than writers use
    window = 0 if declared >= 0 else _PIECE_BYTES << 3
    try:
        with zstandard.ZstdDecompressor(max_window_size=window).stream_reader(payload) as reader:
            if version >= COLUMNAR_VERSION:
                rows = empty_columns(nrows) if into is None else into
                _read_groups(reader, rows, version, where, segment_sizes)
            else:
                rows = np.empty(nrows, dtype=INDEX_DTYPE)
                _read_rows(reader, rows, version, where, segment_sizes)
                if into is not None:
                    for name, _ in _FIELDS:
                        into[name][:] = rows[name]
                    rows = into
            if reader.read(1):
                raise CorruptionError(f"chunk index {where} holds more than the {expected} bytes expected")
    except zstandard.ZstdError as e:
        raise CorruptionError(f"chunk index {where} cannot be decompressed: {e}") from None
    return rows


def _checked_piece(
    rows: np.ndarray | IndexColumns, lo: int, hi: int, version: int, where: str, segment_sizes: list[int] | None
) -> None:
    """Check rows ``lo:hi`` (and their order after row ``lo - 1``)."""

    def part(a: int, b: int) -> np.ndarray | IndexColumns:
        return columns_part(rows, a, b) if isinstance(rows, dict) else rows[a:b]

    check_order(part(max(0, lo - 1), hi), version, where)
    piece = part(lo, hi)
    check_fields(piece, where)
    if segment_sizes is not None:
        check_segments(piece, segment_sizes, where)


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


def _read_groups(reader: Any, columns: IndexColumns, version: int, where: str, segment_sizes: list[int] | None) -> None:
    """Rows stored by field in groups (version 4): each group's fields decompressed straight
    into their columns, and the group checked before the next."""
    n = row_count(columns)
    size = INDEX_DTYPE.itemsize
    done = 0  # bytes read so far
    for lo in range(0, n, GROUP_ROWS):
        hi = min(n, lo + GROUP_ROWS)
        for name, _ in _FIELDS:
            out = columns[name][lo:hi].view(np.uint8)
            got = read_into(reader, out)
            done += got
            if got < len(out):
                raise CorruptionError(f"chunk index {where} holds {done} bytes, expected {n * size}")
        _checked_piece(columns, lo, hi, version, where, segment_sizes)


def check_segments(rows: np.ndarray | IndexColumns, segment_sizes: list[int], where: str) -> None:
    """Refuse rows whose block lies outside its segment (vectorised)."""
    if row_count(rows) == 0:
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


def check_order(rows: np.ndarray | IndexColumns, version: int, where: str) -> None:
    """Refuse rows of an index file out of order or repeated, or naming decimal blocks in
    an index of the version before the decimal filter (vectorised)."""
    if row_count(rows) == 0:
        return
    if version == FORMAT_VERSION and ((rows["filter"] & DECIMAL) != 0).any():
        raise CorruptionError(f"chunk index {where} is version {version} but names decimal blocks")
    if row_count(rows) > 1:
        a, c = rows["aid"], rows["chunk"]
        if not ((a[1:] > a[:-1]) | ((a[1:] == a[:-1]) & (c[1:] > c[:-1]))).all():
            raise CorruptionError(f"chunk index {where} is not sorted")


def check_fields(rows: np.ndarray | IndexColumns, where: str) -> None:
    """Refuse rows no writer produces: an unknown codec or filter, a block that would
    decompress to more than its stored bytes can hold or than its chunks explain, a chunk
    outside its block, offsets and sizes so large that sums of them would wrap
    (vectorised)."""
    if row_count(rows) == 0:
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
