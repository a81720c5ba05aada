"""Dataset shards (format versions 2 and 3): the datasets of a version, a range of them per file.

A version's manifest names its shards; a shard is immutable and shared by every version
whose datasets in that range did not change, so a commit writes only the shards it
touched. A shard file is a header line and two compressed sections: the dataset names
(all that opening a store and listing it needs, read with one ranged read) and the
records (attributes and array entries), decoded only when a dataset of the shard is used.
See docs/format.md.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CorruptionError
from . import manifest as mf
from .codec import checksum
from .fields import Field, by_layout, decode_field, entry_names, fields_of
from .layouts import decode_layouts, encode_layouts

SHARD_PREFIX = "meta/"
# Rows a writer puts in one shard: a commit that touches one dataset rewrites at most this many.
SHARD_ROWS = 4096
# Versions of shard files this code reads; from LAYOUT_VERSION on, records are grouped by
# layout (atlas.format.layouts).
SHARD_VERSIONS = (2, 3)
LAYOUT_VERSION = 3
# What a section may decompress to (names, records): a base plus an allowance per row.
NAMES_BASE_BYTES = 64 << 10
NAMES_BYTES_PER_ROW = 4 << 10
MAX_SHARD_ROWS = 1 << 24
MAX_HEADER_BYTES = 1 << 20  # the header line lists the shard's array names


def new_shard_key(version: int) -> str:
    """A fresh, never-reused key for a shard written by the commit of ``version``."""
    return f"{SHARD_PREFIX}s{version}-{secrets.token_hex(10)}.shard"


def is_shard_key(key: str) -> bool:
    """Whether ``key`` has the form of a shard's key."""
    if not (key.startswith(SHARD_PREFIX + "s") and key.endswith(".shard")):
        return False
    stem = key[len(SHARD_PREFIX) + 1 : -len(".shard")]
    version, dash, token = stem.partition("-")
    return bool(dash) and version.isdigit() and version.isascii() and len(token) == 20 and all(
        c in "0123456789abcdef" for c in token
    )


def names_limit(rows: int) -> int:
    """The most bytes the names section of a shard of ``rows`` datasets may decode from."""
    return NAMES_BASE_BYTES + rows * NAMES_BYTES_PER_ROW


def records_limit(rows: int, stored: int) -> int:
    """The most bytes the records section (``stored`` bytes) of a shard may decode from:
    what a version-1 manifest of as many datasets may hold."""
    limit = mf.MANIFEST_BASE_BYTES + rows * mf.MANIFEST_BYTES_PER_ENTRY
    return min(mf.MAX_MANIFEST_BYTES, max(limit, stored * mf.MANIFEST_MAX_RATIO))


# A column row: the dataset's row in the shard, the array's id and its schema's position.
COLUMN_DTYPE = np.dtype([("row", "<u4"), ("aid", "<u8"), ("schema", "<u4")])
Columns = dict[str, np.ndarray]  # array name -> its rows (COLUMN_DTYPE), by dataset row


def columns_of(records: list[Any]) -> Columns:
    """The columns of the arrays of ``records`` (``[attributes, entries]`` each, or the
    ``[name, attributes, entries]`` of a version-1 manifest): for each array name, the rows
    of the datasets holding one, with its id and schema."""
    entry_lists = [rec[-1] for rec in records]
    found: dict[str, list[tuple[list[int], list[Any], list[Any]]]] = {}
    # similar datasets list the same arrays in the same order: each name at once for them all
    for layout, rows in by_layout(entry_lists, entry_names).items():
        width = len(layout)
        flat = [e for r in rows for e in entry_lists[r]]
        for j, name in enumerate(layout):
            picked = flat[j::width]
            found.setdefault(name, []).append((rows, [e[1] for e in picked], [e[2] for e in picked]))
    out: Columns = {}
    for name in sorted(found):
        parts = found[name]
        col = np.empty(sum(len(p[0]) for p in parts), dtype=COLUMN_DTYPE)
        col["row"] = [r for p in parts for r in p[0]]
        col["aid"] = [a for p in parts for a in p[1]]
        col["schema"] = [x for p in parts for x in p[2]]
        if len(parts) > 1:
            col = col[np.argsort(col["row"], kind="stable")]
        out[name] = col
    return out


def encode_shard(names: list[str], records: list[Any], meta_format: str, meta_compression: str) -> tuple[bytes, int]:
    """A shard file holding ``names`` and their ``records`` ([attributes, arrays] each);
    returns the file and the length of its prefix (header and names), which the manifest
    records so that readers can read the names alone."""
    data, end, _ = encode_shard_columns(names, records, meta_format, meta_compression)
    return data, end


def encode_shard_columns(
    names: list[str], records: list[Any], meta_format: str, meta_compression: str
) -> tuple[bytes, int, Columns]:
    """:func:`encode_shard`, and the shard's array columns."""
    if len(names) != len(records):
        raise ValueError("one record per name")
    rows = len(names)
    names_raw = mf.encode_body(names, meta_format)
    names_part = mf.compress_body(names_raw, meta_compression)
    body_raw = mf.encode_body(encode_layouts(records), meta_format)
    body = mf.compress_body(body_raw, meta_compression)
    if len(names_raw) > names_limit(rows) or len(body_raw) > records_limit(rows, len(body)):
        raise ValueError(
            f"a shard of {rows} datasets would hold {len(names_raw) + len(body_raw)} bytes in "
            f"{len(names_part) + len(body)} compressed ones, more than readers accept; write less "
            "repetitive attributes or shorter names, or use meta_compression='none'"
        )
    columns = columns_of(records)
    cols_raw = b"".join(c.tobytes() for c in columns.values())
    cols = mf.compress_body(cols_raw, meta_compression)
    fields = [(name, mf.compress_body(raw, meta_compression)) for name, raw in fields_of(records).items()]
    head = {
        "atlas": "shard",
        "format_version": LAYOUT_VERSION,
        "rows": rows,
        "names_length": len(names_part),
        "names_crc32c": checksum(names_part),
        "columns": [[name, len(c)] for name, c in columns.items()],
        "columns_length": len(cols),
        "columns_crc32c": checksum(cols),
        "body_length": len(body),
        "body_crc32c": checksum(body),
        "fields": [[name, len(part), checksum(part)] for name, part in fields],
    }
    line = json.dumps(head, ensure_ascii=True, separators=(",", ":")).encode() + b"\n"
    if len(line) > MAX_HEADER_BYTES // 2:  # too many keys to list: catalogues read the records
        head["fields"], fields = None, []
        line = json.dumps(head, ensure_ascii=True, separators=(",", ":")).encode() + b"\n"
    return line + names_part + cols + body + b"".join(p for _, p in fields), len(line) + len(names_part), columns


LENGTH_FIELDS = (
    "rows", "names_length", "names_crc32c", "columns_length", "columns_crc32c", "body_length", "body_crc32c"
)


@dataclass(frozen=True)
class ShardHeader:
    """What a shard's header line says, checked: where each section is and what it holds."""

    rows: int
    names_at: tuple[int, int, int]  # offset, length, crc
    columns_at: tuple[int, int, int]
    body_at: tuple[int, int, int]
    columns: tuple[tuple[str, int], ...]  # array name, rows of its column
    # catalogue field name -> offset, length, crc (None: the shard holds no fields)
    fields: dict[str, tuple[int, int, int]] | None
    version: int  # 2: records as a list; 3: records by layout

    @property
    def length(self) -> int:
        return self.body_at[0] + self.body_at[1] + sum(f[1] for f in (self.fields or {}).values())


def parse_header(data: bytes | memoryview, rows: int, where: str) -> ShardHeader:
    """The header of a shard file (from its first bytes); ``CorruptionError`` if damaged or
    not holding the ``rows`` datasets its manifest says."""
    buf = bytes(data[:MAX_HEADER_BYTES])
    nl = buf.find(b"\n")
    try:
        if nl < 0:
            raise ValueError("no header line")
        head = json.loads(buf[:nl].decode("ascii"))
        if not isinstance(head, dict) or head.get("atlas") != "shard":
            raise ValueError("not a shard header")
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CorruptionError(f"shard {where} has a damaged header: {e}") from None
    if head.get("format_version") not in SHARD_VERSIONS:
        raise CorruptionError(f"shard {where} has unsupported format version {head.get('format_version')!r}")
    for field in LENGTH_FIELDS:
        value = head.get(field)
        if type(value) is not int or not 0 <= value < 2**40:
            raise CorruptionError(f"shard {where} declares an impossible {field} {value!r}")
    if head["rows"] != rows:
        raise CorruptionError(f"shard {where} holds {head['rows']} datasets; its manifest says {rows}")
    cols = head.get("columns")
    try:
        columns = tuple((str(n), int(c)) for n, c in cols) if type(cols) is list else None
        if columns is None or any(not 0 < c <= rows or not n for n, c in columns):
            raise ValueError
    except (TypeError, ValueError):
        raise CorruptionError(f"shard {where} has a damaged column list") from None
    if len({n for n, _ in columns}) != len(columns):
        raise CorruptionError(f"shard {where} lists a column twice")
    start = nl + 1
    names_at = (start, head["names_length"], head["names_crc32c"])
    columns_at = (start + names_at[1], head["columns_length"], head["columns_crc32c"])
    body_at = (columns_at[0] + columns_at[1], head["body_length"], head["body_crc32c"])
    fields = _fields(head, body_at[0] + body_at[1], where)
    return ShardHeader(rows, names_at, columns_at, body_at, columns, fields, head["format_version"])


def _fields(head: dict[str, Any], at: int, where: str) -> dict[str, tuple[int, int, int]] | None:
    """Where each catalogue field of a shard is (None for shards written without them)."""
    out: dict[str, tuple[int, int, int]] = {}
    listed = head.get("fields")
    if listed is None:
        return None
    try:
        if type(listed) is not list:
            raise ValueError
        for name, length, crc in listed:
            if type(name) is not str or type(length) is not int or type(crc) is not int or not 0 <= length < 2**40:
                raise ValueError
            out[name] = (at, length, crc)
            at += length
    except (TypeError, ValueError):
        raise CorruptionError(f"shard {where} has a damaged field list") from None
    if len(out) != len(listed):
        raise CorruptionError(f"shard {where} lists a field twice")
    return out


def decode_shard_field(head: ShardHeader, name: str, data: bytes | memoryview, base: int, meta_compression: str, where: str) -> Field:
    """One catalogue field of a shard (``data`` starting at file offset ``base``)."""
    assert head.fields is not None
    part = _section(data, head.fields[name], base, where)
    raw = mf.decode_raw(part, meta_compression, records_limit(head.rows, len(part)), f"shard {where}")
    return decode_field(raw, head.rows, f"shard {where}, field {name!r}")


def _section(data: bytes | memoryview, at: tuple[int, int, int], base: int, where: str) -> memoryview:
    """The checksummed bytes of a section (``data`` starting at file offset ``base``)."""
    start, length, crc = at
    part = memoryview(data)[start - base : start - base + length]
    if len(part) != length:
        raise CorruptionError(f"shard {where} is truncated")
    if checksum(part) != crc:
        raise CorruptionError(f"shard {where} fails its checksum")
    return part


def names_end(data: bytes | memoryview, rows: int, where: str) -> int:
    """Where the names section of a shard ends (the prefix readers fetch to list names)."""
    head = parse_header(data, rows, where)
    return head.names_at[0] + head.names_at[1]


def decode_names(prefix: bytes | memoryview, rows: int, meta: tuple[str, str], where: str) -> list[str]:
    """The dataset names of a shard, from its first bytes (header and names section)."""
    head = parse_header(prefix, rows, where)
    part = _section(prefix, head.names_at, 0, where)
    names = mf.decode_body(part, meta[0], meta[1], names_limit(rows), f"shard {where}", maps=False)
    if type(names) is not list or len(names) != rows or not all(type(n) is str for n in names):
        raise CorruptionError(f"shard {where}: the names section is not a list of {rows} names")
    return names


def decode_columns(
    head: ShardHeader, data: bytes | memoryview, base: int, meta_compression: str, where: str
) -> Columns:
    """The array columns of a shard from its columns section (``data`` starting at file
    offset ``base``), each checked: rows in order and within the shard, ids above 0."""
    part = _section(data, head.columns_at, base, where)
    size = COLUMN_DTYPE.itemsize
    expected = sum(c for _, c in head.columns) * size
    raw = mf.decode_raw(part, meta_compression, expected, f"shard {where}")
    if len(raw) != expected:
        raise CorruptionError(f"shard {where}: the columns section holds {len(raw)} bytes, not {expected}")
    out: Columns = {}
    pos = 0
    for name, count in head.columns:
        col = np.frombuffer(raw, COLUMN_DTYPE, count, pos)
        pos += count * size
        rows = col["row"]
        if (col["aid"] == 0).any() or rows[-1] >= head.rows or (count > 1 and (rows[1:] <= rows[:-1]).any()):
            raise CorruptionError(f"shard {where}: the column of array {name!r} is malformed")
        out[name] = col
    return out


def decode_records(
    data: bytes | memoryview, names: list[str], meta: tuple[str, str], where: str
) -> tuple[list[Any], Columns, bool]:
    """The records and array columns of a whole shard file, which must agree, and whether
    the records are built already: ``[name, attributes, entries]`` each, as readers hold
    them, from a version-3 shard (its records section by layout, checked against the
    columns); else ``[attributes, entries]`` each, as a version-2 shard lists them, for the
    caller to check against the columns."""
    rows = len(names)
    head = parse_header(data, rows, where)
    if len(data) != head.length:
        raise CorruptionError(f"shard {where} is {len(data)} bytes, not the {head.length} it declares")
    part = _section(data, head.body_at, 0, where)
    records = mf.decode_body(part, meta[0], meta[1], records_limit(rows, len(part)), f"shard {where}", maps=False)
    columns = decode_columns(head, data, 0, meta[1], where)
    if head.version >= LAYOUT_VERSION:
        return decode_layouts(records, names, columns, where), columns, True
    if type(records) is not list or len(records) != rows:
        raise CorruptionError(f"shard {where}: the records section does not hold {rows} records")
    return records, columns, False
