"""Encoding of the store config and of manifests (one per committed version).

A manifest file is one line of JSON (the header: version, time, summary, body
length and CRC-32C) followed by the body, which is the manifest itself in the
store's metadata format (JSON or msgpack), optionally compressed (zstd or lz4).
The header alone is enough to list versions; the checksum makes any damage to
the body a clear error instead of a wrong store.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import lz4.frame
import msgpack
import numpy as np
import orjson
import zstandard

from ..errors import CorruptionError
from .codec import checksum, parse_choice, read_into

FORMAT_VERSION = 3
# Versions this code reads: 1 (one manifest holding every dataset), 2 (datasets in shards)
# and 3 (shards whose records are grouped by layout).
READABLE_VERSIONS = (1, 2, 3)
CONFIG_KEY = "atlas.json"
MANIFEST_PREFIX = "manifests/"
# Plain text holding the newest version number, rewritten after each commit: only a
# starting point for readers that cannot list keys (HTTP); they probe forward from it.
LATEST_HINT_KEY = "manifests/latest"

# The header field listing, as ranges of ids, the arrays of the parent version whose chunks
# the commit wrote (arrays the commit defined are new ids, not listed): a rebase tells from it
# whether another writer changed an array's data, which its record may not show (equal
# statistics). In the header, so that it outlives the body of a removed version.
REWRITTEN_KEY = "rewritten"
# A commit rewriting arrays in more ranges than this does not list them (readers then cannot
# tell what it rewrote): the header line stays well within what readers read of it.
MAX_REWRITTEN_RANGES = 1024

META_FORMATS = ("json", "msgpack")
META_COMPRESSIONS = ("none", "zstd", "lz4")

# A manifest larger than this is refused before it is read or decompressed (hostile input).
MAX_MANIFEST_BYTES = 4 << 30
# What a manifest body may decompress to, beyond which it is refused before anything of
# that size is allocated (decoding costs up to ~45 times the decompressed bytes in Python
# objects for JSON): the larger of a base plus an allowance per dataset and per array name
# the header declares, and a multiple of its stored size. Written manifests compress 3-6
# times (segment keys are random); content that compresses better is repeated per dataset,
# which the per-entry allowance covers. Never more than MAX_MANIFEST_BYTES. Writers refuse
# to write a manifest beyond it, and readers check the counts once the body is decoded.
MANIFEST_BASE_BYTES = 512 << 10
MANIFEST_BYTES_PER_ENTRY = 64 << 10
MANIFEST_MAX_RATIO = 16
# msgpack says the same in about 3/4 of the bytes of JSON, and its containers are denser
# (a list can cost 64 times its encoding, against 44 for JSON): its allowance is half.
_MSGPACK_SHARE = 0.5
# Maps a msgpack body may hold, per byte of it: the writer's bodies hold exactly one (the
# top level), and a map costs ~70 times its encoded size as a Python dict.
_MSGPACK_BYTES_PER_MAP = 64
# A msgpack body larger than this in which more than 1 byte in 8 could be an empty array
# (an empty list costs 80 bytes, 80 times its encoding) shares one empty list among all
# (slower: a call per list); written bodies hold about one in 50.
_MSGPACK_DENSE_CHECK = 64 << 10
# Window a zstd frame without a declared content size may use (writers declare the size).
_MAX_WINDOW = 8 << 20
_PIECE = 1 << 20


def parse_meta_format(value: object) -> str:
    """Resolve ``meta_format`` ('json', 'msgpack' or 'mp'; case-insensitive)."""
    return parse_choice(value, "meta_format", META_FORMATS, {"mp": "msgpack"})


def parse_meta_compression(value: object) -> str:
    """Resolve ``meta_compression`` ('none'/'uncompressed', 'zstd' or 'lz4')."""
    return parse_choice(value, "meta_compression", META_COMPRESSIONS, {"uncompressed": "none"})


def manifest_key(version: int, meta_format: str, meta_compression: str) -> str:
    """Storage key of the manifest of ``version``."""
    ext = "json" if meta_format == "json" else "msgpack"
    if meta_compression != "none":
        ext += "." + ("zst" if meta_compression == "zstd" else "lz4")
    return f"{MANIFEST_PREFIX}{version:010d}.{ext}"


_MANIFEST_NAME = re.compile(r"manifests/([0-9]{10})\.(?:json|msgpack)(?:\.zst|\.lz4)?")


def parse_manifest_key(key: str) -> int | None:
    """Version number of a manifest key, or None if the key is not exactly a manifest's name
    (10 digits, then ``.json`` or ``.msgpack``, optionally ``.zst`` or ``.lz4``)."""
    m = _MANIFEST_NAME.fullmatch(key)
    return int(m.group(1)) if m else None


def encode_config(codec: str, meta_format: str, meta_compression: str) -> bytes:
    """The store's config file: written once by create, never changed."""
    doc = {
        "format": "atlas",
        "format_version": FORMAT_VERSION,
        "codec": codec,
        "meta_format": meta_format,
        "meta_compression": meta_compression,
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def decode_config(data: bytes, where: str) -> dict[str, Any]:
    """Parse and check the store config."""
    try:
        doc = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CorruptionError(f"store config {where} is not valid JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != "atlas":
        raise CorruptionError(f"{where} is not an Atlas store config")
    if doc.get("format_version") not in READABLE_VERSIONS:
        raise CorruptionError(
            f"{where} has format version {doc.get('format_version')!r}; this Atlas reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    try:
        from .codec import parse_codec

        doc["codec"] = parse_codec(doc.get("codec"))
        doc["meta_format"] = parse_meta_format(doc.get("meta_format"))
        doc["meta_compression"] = parse_meta_compression(doc.get("meta_compression"))
    except (TypeError, ValueError) as e:
        raise CorruptionError(f"store config {where}: {e}") from None
    return doc


def body_limit(head: dict[str, Any], stored: int, meta_format: str, where: str) -> int:
    """The most bytes a manifest body of ``stored`` bytes may decompress to (see
    ``MANIFEST_BASE_BYTES``), from the counts its header declares."""
    counts = [head.get(k, 0) for k in ("datasets", "arrays")]
    if any(type(c) is not int or c < 0 for c in counts):
        raise CorruptionError(f"manifest {where} declares impossible counts {counts!r}")
    allowance = MANIFEST_BASE_BYTES + sum(counts) * MANIFEST_BYTES_PER_ENTRY
    if meta_format == "msgpack":
        allowance = int(allowance * _MSGPACK_SHARE)
    return min(MAX_MANIFEST_BYTES, max(allowance, stored * MANIFEST_MAX_RATIO))


def rewritten_ranges(ids: list[int]) -> list[list[int]] | None:
    """Sorted, distinct ids as ``[first, last]`` ranges for a manifest header; None when
    there are more than ``MAX_REWRITTEN_RANGES`` of them."""
    out: list[list[int]] = []
    for i in ids:
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            if len(out) == MAX_REWRITTEN_RANGES:
                return None
            out.append([i, i])
    return out


def rewritten_of(head: dict[str, Any], where: str) -> list[tuple[int, int]] | None:
    """The id ranges a manifest header lists under ``rewritten``; None when it has no such
    field (written before it existed, or too many ranges: what its commit wrote is not known)."""
    ranges = head.get(REWRITTEN_KEY)
    if ranges is None:
        return None
    try:
        out = [(lo, hi) for lo, hi in ranges]
        if not all(type(lo) is int and type(hi) is int and 0 < lo <= hi < 2**63 for lo, hi in out):
            raise ValueError
    except (TypeError, ValueError):
        raise CorruptionError(f"manifest {where}: {REWRITTEN_KEY!r} is not a list of id ranges") from None
    return out


def _check_counts(head: dict[str, Any], doc: dict[str, Any], where: str) -> None:
    """Refuse a body that does not hold what its header declares (the counts the reader
    bounded decompression by): as many datasets, as many variables with live arrays."""
    datasets, variables = doc.get("datasets"), doc.get("variables")
    if "datasets" in head and type(datasets) is list and len(datasets) != head["datasets"]:
        raise CorruptionError(
            f"manifest {where} lists {len(datasets)} datasets; its header declares {head['datasets']}"
        )
    if "arrays" in head and type(variables) is list:
        live = sum(1 for v in variables if type(v) is list and len(v) == 5 and type(v[4]) is int and v[4] > 0)
        if live != head["arrays"]:
            raise CorruptionError(
                f"manifest {where} has {live} array names in use; its header declares {head['arrays']}"
            )


def _read_bounded(stream: Any, declared: int, limit: int, what: str) -> bytearray:
    """Read a decompressing stream whose frame declares ``declared`` bytes (-1: unknown),
    never holding more than ``limit`` bytes (decompression bombs) nor a second copy."""
    if declared > limit:
        raise CorruptionError(f"{what} declares {declared} decompressed bytes, more than {limit}")
    with stream:
        if declared >= 0:
            out = bytearray(declared)
            view = memoryview(out)
            short = read_into(stream, view) < declared
            view.release()
            if short:
                raise CorruptionError(f"{what} decompresses to fewer bytes than it declares")
            if stream.read(1):
                raise CorruptionError(f"{what} decompresses to more bytes than it declares")
            return out
        out = bytearray()
        while True:
            piece = stream.read(_PIECE)
            if not piece:
                return out
            out += piece
            if len(out) > limit:
                raise CorruptionError(f"{what} decompresses to more than {limit} bytes")


def _decompress(body: memoryview, meta_compression: str, limit: int, what: str) -> bytes | bytearray | memoryview:
    """The decompressed body, refused beyond ``limit`` bytes before they are allocated."""
    if meta_compression == "none":
        return body
    data = bytes(body)
    if meta_compression == "zstd":
        try:
            declared = zstandard.frame_content_size(data)
        except zstandard.ZstdError as e:
            raise CorruptionError(f"{what} cannot be decoded: not a zstd frame ({e})") from None
        if 0 <= declared <= limit:  # exactly the declared size, at once
            raw = zstandard.ZstdDecompressor().decompress(data)
            if len(raw) != declared:
                raise CorruptionError(f"{what} decompresses to {len(raw)} bytes, not {declared}")
            return raw
        reader = zstandard.ZstdDecompressor(max_window_size=_MAX_WINDOW).stream_reader(data)
        return _read_bounded(reader, declared, limit, what)
    try:
        declared = int(lz4.frame.get_frame_info(data)["content_size"]) or -1  # 0: not declared
    except (RuntimeError, KeyError, ValueError) as e:
        raise CorruptionError(f"{what} cannot be decoded: not an lz4 frame ({e})") from None
    return _read_bounded(lz4.frame.LZ4FrameFile(io.BytesIO(data), "rb"), declared, limit, what)


def _decode_json(raw: Any, maps: bool = True) -> Any:
    """Parse a JSON manifest body, refusing duplicate keys.

    orjson parses fast but silently keeps the last of duplicate keys, so its result is
    accepted only when it re-encodes to exactly the same bytes (what our writer
    produced); anything else (hand-written, lone surrogates, duplicates) goes through
    the standard parser, which refuses duplicates. A section that holds no maps
    (``maps=False``: its readers refuse any) has no keys to repeat, and orjson's result is
    taken as it is.
    """
    if maps and isinstance(raw, memoryview):
        raw = bytes(raw)  # compared below: bytes compare at memcmp speed, memoryviews do not
    try:
        doc = orjson.loads(raw)
        if not maps or orjson.dumps(doc) == raw:
            return doc
        del doc  # not held while the standard parser builds its own
    except orjson.JSONDecodeError:
        pass
    return json.loads(bytes(raw).decode("utf-8", "surrogatepass"), object_pairs_hook=_unique_keys)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate key in a JSON object")
    return out


def _empty_arrays(raw: Any) -> int:
    """How many bytes of a msgpack body are 0x90: at most how many empty arrays it holds
    (counted a piece at a time: no large temporaries)."""
    b = np.frombuffer(raw, np.uint8)
    return sum(int(np.count_nonzero(b[i : i + _PIECE] == 0x90)) for i in range(0, len(b), _PIECE))


def _decode_msgpack(raw: Any) -> Any:
    """Parse a msgpack manifest body, refusing duplicate keys and more maps than a body of
    its size can hold (empty maps would cost ~70 times their encoded size)."""
    budget = [1 + len(raw) // _MSGPACK_BYTES_PER_MAP]

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        budget[0] -= 1
        if budget[0] < 0:
            raise ValueError("more maps than a manifest holds")
        return _unique_keys(pairs)

    options: dict[str, Any] = {}
    if len(raw) > _MSGPACK_DENSE_CHECK and 8 * _empty_arrays(raw) > len(raw):
        empty: list[Any] = []  # nothing that reads a manifest adds to its lists
        options["list_hook"] = lambda items: items or empty
    return msgpack.unpackb(
        raw, raw=False, strict_map_key=True, unicode_errors="surrogatepass", use_list=True,
        object_pairs_hook=unique_keys, **options,
    )


def _packer() -> msgpack.Packer:
    return msgpack.Packer(use_bin_type=True, unicode_errors="surrogatepass")


def encode_body(doc: Any, meta_format: str) -> bytes:
    """A manifest or shard section, encoded (not yet compressed)."""
    if meta_format == "json":
        try:
            return orjson.dumps(doc)  # same bytes as the json module, ten times faster
        except (TypeError, orjson.JSONEncodeError):  # lone surrogates, ints beyond 64 bits
            return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
                "utf-8", "surrogatepass"
            )
    return _packer().pack(doc)


def compress_body(body: bytes, meta_compression: str) -> bytes:
    """An encoded section, compressed as the store's config says."""
    if meta_compression == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(body)
    if meta_compression == "lz4":
        return lz4.frame.compress(body)
    return body


def encode_manifest(
    doc: dict[str, Any], header: dict[str, Any], meta_format: str, meta_compression: str
) -> bytes:
    """Encode a manifest: JSON header line + body."""
    body = encode_body(doc, meta_format)
    raw_length = len(body)
    body = compress_body(body, meta_compression)
    limit = body_limit(header, len(body), meta_format, "being written")
    if raw_length > limit:  # readers would refuse it (see MANIFEST_BASE_BYTES): never write it
        raise ValueError(
            f"the new manifest would hold {raw_length} bytes in {len(body)} compressed ones, more than "
            f"readers accept for {header.get('datasets')} datasets ({limit}); write less repetitive "
            "attributes, or use meta_compression='none'"
        )
    head = dict(header)
    head["body_length"] = len(body)
    head["body_crc32c"] = checksum(body)
    line = json.dumps(head, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode()
    return line + b"\n" + body


def decode_header(data: bytes | memoryview, where: str) -> tuple[dict[str, Any], int]:
    """Parse the header line; return (header, offset of the body)."""
    buf = bytes(data[:65536]) if not isinstance(data, bytes) else data[:65536]
    nl = buf.find(b"\n")
    if nl < 0:
        raise CorruptionError(f"manifest {where} has no header line (truncated or not a manifest)")
    try:
        head = json.loads(buf[:nl].decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CorruptionError(f"manifest {where} has a damaged header: {e}") from None
    if not isinstance(head, dict) or head.get("atlas") != "manifest":
        raise CorruptionError(f"manifest {where} has a damaged header")
    if head.get("format_version") not in READABLE_VERSIONS:
        raise CorruptionError(f"manifest {where} has unsupported format version {head.get('format_version')!r}")
    blen = head.get("body_length")
    if not isinstance(blen, int) or not 0 <= blen <= MAX_MANIFEST_BYTES:
        raise CorruptionError(f"manifest {where} declares an impossible body length {blen!r}")
    return head, nl + 1


def decode_body(
    body: memoryview, meta_format: str, meta_compression: str, limit: int, what: str, maps: bool = True
) -> Any:
    """A checksummed section, decompressed (at most ``limit`` bytes) and decoded; anything
    wrong with it is ``CorruptionError`` naming ``what``. ``maps=False``: the section holds
    lists and values only (no duplicate keys to look for)."""
    try:
        raw = _decompress(body, meta_compression, limit, what)
        if len(raw) > limit:
            raise CorruptionError(f"{what} holds {len(raw)} bytes, more than {limit}")
        doc = _decode_json(raw, maps) if meta_format == "json" else _decode_msgpack(raw)
        del raw
    except CorruptionError:
        raise
    except Exception as e:  # any decoder failure on checksummed bytes is corruption
        raise CorruptionError(f"{what} cannot be decoded: {e}") from None
    return doc


def decode_raw(body: memoryview, meta_compression: str, limit: int, what: str) -> bytes | bytearray | memoryview:
    """A checksummed binary section, decompressed (at most ``limit`` bytes)."""
    try:
        return _decompress(body, meta_compression, limit, what)
    except CorruptionError:
        raise
    except Exception as e:  # any decoder failure on checksummed bytes is corruption
        raise CorruptionError(f"{what} cannot be decompressed: {e}") from None


def decode_manifest(
    data: bytes, where: str, meta_format: str, meta_compression: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decode a manifest file into (header, body document), checking its integrity."""
    head, start = decode_header(data, where)
    body = memoryview(data)[start:]
    if len(body) != head["body_length"]:
        raise CorruptionError(
            f"manifest {where} is truncated: body has {len(body)} of {head['body_length']} bytes"
        )
    if checksum(body) != head.get("body_crc32c"):
        raise CorruptionError(f"manifest {where} fails its checksum")
    doc = decode_body(body, meta_format, meta_compression, body_limit(head, len(body), meta_format, where), f"manifest {where}")
    if not isinstance(doc, dict):
        raise CorruptionError(f"manifest {where} body is not a mapping")
    _check_counts(head, doc, where)
    return head, doc
