"""Encoding of the store config and of manifests (one per committed version).

A manifest file is one line of JSON (the header: version, time, summary, body
length and CRC-32C) followed by the body, which is the manifest itself in the
store's metadata format (JSON or msgpack), optionally compressed (zstd or lz4).
The header alone is enough to list versions; the checksum makes any damage to
the body a clear error instead of a wrong store.
"""

from __future__ import annotations

import gc
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lz4.frame
import msgpack
import orjson
import zstandard

from ..errors import CorruptionError
from .codec import checksum, parse_choice

FORMAT_VERSION = 1
CONFIG_KEY = "atlas.json"
MANIFEST_PREFIX = "manifests/"
# Plain text holding the newest version number, rewritten after each commit: only a
# starting point for readers that cannot list keys (HTTP); they probe forward from it.
LATEST_HINT_KEY = "manifests/latest"

META_FORMATS = ("json", "msgpack")
META_COMPRESSIONS = ("none", "zstd", "lz4")

# A manifest larger than this is refused before it is read or decompressed (hostile input).
MAX_MANIFEST_BYTES = 4 << 30


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
    if doc.get("format_version") != FORMAT_VERSION:
        raise CorruptionError(
            f"{where} has format version {doc.get('format_version')!r}; this Atlas reads version {FORMAT_VERSION}"
        )
    try:
        from .codec import parse_codec

        doc["codec"] = parse_codec(doc.get("codec"))
        doc["meta_format"] = parse_meta_format(doc.get("meta_format"))
        doc["meta_compression"] = parse_meta_compression(doc.get("meta_compression"))
    except (TypeError, ValueError) as e:
        raise CorruptionError(f"store config {where}: {e}") from None
    return doc


def _bounded(stream: Any, limit: int, where: str) -> bytes:
    """Read a decompressing stream, refusing output beyond ``limit`` (decompression bombs)."""
    out = bytearray()
    with stream:
        while True:
            piece = stream.read(1 << 20)
            if not piece:
                return bytes(out)
            out += piece
            if len(out) > limit:
                raise CorruptionError(f"manifest {where} decompresses to more than {limit} bytes")


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a manifest is decoded and installed.

    Decoding creates ~10^5 lists and strings, none of them garbage; every few hundred
    of them would trigger a collection that rescans all the others (most of the time
    of a large open). Reference counting still frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _decode_json(raw: bytes) -> Any:
    """Parse a JSON manifest body, refusing duplicate keys.

    orjson parses fast but silently keeps the last of duplicate keys, so its result is
    accepted only when it re-encodes to exactly the same bytes (what our writer
    produced); anything else (hand-written, lone surrogates, duplicates) goes through
    the standard parser, which refuses duplicates.
    """
    try:
        doc = orjson.loads(raw)
        if orjson.dumps(doc) == raw:
            return doc
    except orjson.JSONDecodeError:
        pass
    return json.loads(raw.decode("utf-8", "surrogatepass"), object_pairs_hook=_unique_keys)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate key in a JSON object")
    return out


def _packer() -> msgpack.Packer:
    return msgpack.Packer(use_bin_type=True, unicode_errors="surrogatepass")


def encode_manifest(
    doc: dict[str, Any], header: dict[str, Any], meta_format: str, meta_compression: str
) -> bytes:
    """Encode a manifest: JSON header line + body."""
    if meta_format == "json":
        try:
            body = orjson.dumps(doc)  # same bytes as the json module, ten times faster
        except (TypeError, orjson.JSONEncodeError):  # lone surrogates, ints beyond 64 bits
            body = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
                "utf-8", "surrogatepass"
            )
    else:
        body = _packer().pack(doc)
    if meta_compression == "zstd":
        body = zstandard.ZstdCompressor(level=3).compress(body)
    elif meta_compression == "lz4":
        body = lz4.frame.compress(body)
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
    if head.get("format_version") != FORMAT_VERSION:
        raise CorruptionError(f"manifest {where} has unsupported format version {head.get('format_version')!r}")
    blen = head.get("body_length")
    if not isinstance(blen, int) or not 0 <= blen <= MAX_MANIFEST_BYTES:
        raise CorruptionError(f"manifest {where} declares an impossible body length {blen!r}")
    return head, nl + 1


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
    try:
        limit = min(MAX_MANIFEST_BYTES, len(body) * (32768 if meta_compression == "zstd" else 256) + (1 << 20))
        if meta_compression == "zstd":
            raw: bytes | memoryview = _bounded(zstandard.ZstdDecompressor().stream_reader(bytes(body)), limit, where)
        elif meta_compression == "lz4":
            raw = _bounded(lz4.frame.LZ4FrameFile(io.BytesIO(bytes(body)), "rb"), limit, where)
        else:
            raw = body
        if meta_format == "json":
            doc = _decode_json(bytes(raw))
        else:
            doc = msgpack.unpackb(
                raw, raw=False, strict_map_key=True, unicode_errors="surrogatepass", use_list=True,
                object_pairs_hook=_unique_keys,
            )
    except CorruptionError:
        raise
    except Exception as e:  # any decoder failure on checksummed bytes is corruption
        raise CorruptionError(f"manifest {where} cannot be decoded: {e}") from None
    if not isinstance(doc, dict):
        raise CorruptionError(f"manifest {where} body is not a mapping")
    return head, doc
