"""Dataset shards (format version 2): the datasets of a version, a range of them per file.

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
from typing import Any

from ..errors import CorruptionError
from . import manifest as mf
from .codec import checksum

SHARD_PREFIX = "meta/"
# Rows a writer puts in one shard: a commit that touches one dataset rewrites at most this many.
SHARD_ROWS = 4096
# What a section may decompress to (names, records): a base plus an allowance per row.
NAMES_BASE_BYTES = 64 << 10
NAMES_BYTES_PER_ROW = 4 << 10
MAX_SHARD_ROWS = 1 << 24


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


def encode_shard(names: list[str], records: list[Any], meta_format: str, meta_compression: str) -> tuple[bytes, int]:
    """A shard file holding ``names`` and their ``records`` ([attributes, arrays] each);
    returns the file and the length of its prefix (header and names), which the manifest
    records so that readers can read the names alone."""
    if len(names) != len(records):
        raise ValueError("one record per name")
    rows = len(names)
    names_raw = mf.encode_body(names, meta_format)
    names_part = mf.compress_body(names_raw, meta_compression)
    body_raw = mf.encode_body(records, meta_format)
    body = mf.compress_body(body_raw, meta_compression)
    if len(names_raw) > names_limit(rows) or len(body_raw) > records_limit(rows, len(body)):
        raise ValueError(
            f"a shard of {rows} datasets would hold {len(names_raw) + len(body_raw)} bytes in "
            f"{len(names_part) + len(body)} compressed ones, more than readers accept; write less "
            "repetitive attributes or shorter names, or use meta_compression='none'"
        )
    head = {
        "atlas": "shard",
        "format_version": mf.FORMAT_VERSION,
        "rows": len(names),
        "names_length": len(names_part),
        "names_crc32c": checksum(names_part),
        "body_length": len(body),
        "body_crc32c": checksum(body),
    }
    line = json.dumps(head, ensure_ascii=True, separators=(",", ":")).encode() + b"\n"
    return line + names_part + body, len(line) + len(names_part)


def _header(data: bytes | memoryview, rows: int, where: str) -> tuple[dict[str, Any], int]:
    buf = bytes(data[:4096])
    nl = buf.find(b"\n")
    try:
        if nl < 0:
            raise ValueError("no header line")
        head = json.loads(buf[:nl].decode("ascii"))
        if not isinstance(head, dict) or head.get("atlas") != "shard":
            raise ValueError("not a shard header")
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CorruptionError(f"shard {where} has a damaged header: {e}") from None
    if head.get("format_version") != mf.FORMAT_VERSION:
        raise CorruptionError(f"shard {where} has unsupported format version {head.get('format_version')!r}")
    for field in ("rows", "names_length", "names_crc32c", "body_length", "body_crc32c"):
        value = head.get(field)
        if type(value) is not int or not 0 <= value < 2**40:
            raise CorruptionError(f"shard {where} declares an impossible {field} {value!r}")
    if head["rows"] != rows:
        raise CorruptionError(f"shard {where} holds {head['rows']} datasets; its manifest says {rows}")
    return head, nl + 1


def _section(
    data: bytes | memoryview, start: int, length: int, crc: int, limit: int, meta: tuple[str, str], where: str
) -> Any:
    part = memoryview(data)[start : start + length]
    if len(part) != length:
        raise CorruptionError(f"shard {where} is truncated")
    if checksum(part) != crc:
        raise CorruptionError(f"shard {where} fails its checksum")
    return mf.decode_body(part, meta[0], meta[1], limit, f"shard {where}")


def names_end(data: bytes | memoryview, rows: int, where: str) -> int:
    """Where the names section of a shard ends (the prefix readers fetch to list names)."""
    head, start = _header(data, rows, where)
    return start + int(head["names_length"])


def decode_names(prefix: bytes | memoryview, rows: int, meta: tuple[str, str], where: str) -> list[str]:
    """The dataset names of a shard, from its first bytes (header and names section)."""
    head, start = _header(prefix, rows, where)
    names = _section(prefix, start, head["names_length"], head["names_crc32c"], names_limit(rows), meta, where)
    if type(names) is not list or len(names) != rows or not all(type(n) is str for n in names):
        raise CorruptionError(f"shard {where}: the names section is not a list of {rows} names")
    return names


def decode_records(data: bytes | memoryview, rows: int, meta: tuple[str, str], where: str) -> list[Any]:
    """The records ([attributes, arrays] per dataset) of a whole shard file."""
    head, start = _header(data, rows, where)
    start += head["names_length"]
    if len(data) != start + head["body_length"]:
        raise CorruptionError(f"shard {where} is {len(data)} bytes, not the {start + head['body_length']} it declares")
    limit = records_limit(rows, head["body_length"])
    records = _section(data, start, head["body_length"], head["body_crc32c"], limit, meta, where)
    if type(records) is not list or len(records) != rows:
        raise CorruptionError(f"shard {where}: the records section does not hold {rows} records")
    return records
