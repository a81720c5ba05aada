"""Block codecs: a filter, compression and the per-block checksum.

A block is the unit of compression: the raw bytes of several chunks of one
variable, passed through a filter, then compressed. The filter is one byte of
the chunk index: 1 none; 2, 4 or 8 byte-shuffle by that element size (all bytes
0 of every element, then all bytes 1, ...), so that zstd / lz4 see long runs of
similar bytes; ``DECIMAL | 4`` or ``DECIMAL | 8`` the decimal filter on float32
or float64 values (:mod:`atlas.format.decimal`). The CRC-32C of the stored
(compressed) bytes is kept in the chunk index, so corruption is found before
anything is decompressed.

Compressor and decompressor objects are not thread-safe, so each thread keeps
its own.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator
from typing import Any

import crc32c as _crc32c
import lz4.block
import numpy as np
import zstandard

from . import decimal

CODECS = ("none", "zstd", "lz4")
CODEC_IDS = {"none": 0, "zstd": 1, "lz4": 2}
CODEC_NAMES = {v: k for k, v in CODEC_IDS.items()}

ZSTD_LEVEL = 3
# The most a stored byte can expand to (zstd: an RLE block of 128 KiB from 4 bytes; lz4: 255).
# A block or index claiming more is damaged or crafted, and is refused before allocating.
MAX_RATIO = {"none": 1, "zstd": 32768, "lz4": 256}

# Filter byte of a decimal block: DECIMAL | element size.
DECIMAL = 0x80
FILTERS = (1, 2, 4, 8, DECIMAL | 4, DECIMAL | 8)
_LZ4_SIZE = struct.Struct("<I")
# Blocks of at least this many raw bytes (a huge chunk is a block of its own) are filtered
# and (de)compressed piece by piece where the codec allows it (zstd, and no compression),
# so that a block costs its own size and not two or three copies of it.
STREAM_MIN_BYTES = 16 << 20
_PIECE_BYTES = 4 << 20


def plausible_size(codec: str, stored: int, raw: int, filter_id: int = 1) -> bool:
    """Whether ``stored`` compressed bytes can decode to ``raw`` bytes."""
    if filter_id & DECIMAL:  # deltas of one byte per element expand at most 8 times
        return codec != "none" and raw <= (stored * MAX_RATIO[codec] + 64) * 8
    if codec == "none":
        return raw == stored
    return raw <= stored * MAX_RATIO[codec] + 64


def _decimal_bound(raw_size: int, itemsize: int) -> int:
    """The largest encoded size of a decimal block of ``raw_size`` bytes."""
    n = raw_size // itemsize
    return decimal.HEADER.size + decimal.BASE.size + n * (8 + itemsize) + (n + 7) // 8


_local = threading.local()


def parse_choice(value: object, what: str, choices: tuple[str, ...], aliases: dict[str, str]) -> str:
    """Resolve a case-insensitive option value (``TypeError`` / ``ValueError`` on bad input)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    key = value.strip().lower()
    key = aliases.get(key, key)
    if key not in choices:
        raise ValueError(f"unknown {what} {value!r}; use one of: {', '.join(repr(c) for c in choices)}")
    return key


def parse_codec(value: object) -> str:
    """Resolve a codec option (case-insensitive; 'uncompressed' means 'none')."""
    return parse_choice(value, "codec", CODECS, {"uncompressed": "none"})


def _zstd_c() -> zstandard.ZstdCompressor:
    c = getattr(_local, "zc", None)
    if c is None:
        c = _local.zc = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True)
    return c


def _zstd_d() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "zd", None)
    if d is None:
        d = _local.zd = zstandard.ZstdDecompressor()
    return d


def checksum(data: Any) -> int:
    """CRC-32C of a bytes-like object."""
    return int(_crc32c.crc32c(data))


def shuffle(raw: np.ndarray, itemsize: int) -> np.ndarray:
    """Byte-shuffle a uint8 buffer whose length is a multiple of ``itemsize``."""
    if itemsize <= 1 or raw.size == 0:
        return raw
    return np.ascontiguousarray(raw.reshape(-1, itemsize).T)


def unshuffle(data: np.ndarray, itemsize: int) -> np.ndarray:
    """Inverse of :func:`shuffle` (one strided copy per byte plane, which numpy does fast)."""
    if itemsize <= 1 or data.size == 0:
        return data
    planes = data.reshape(itemsize, -1)
    out = np.empty((planes.shape[1], itemsize), dtype=np.uint8)
    for k in range(itemsize):
        out[:, k] = planes[k]
    return out.reshape(-1)


def compress(raw: bytes | bytearray | memoryview | np.ndarray, codec: str) -> bytes:
    """Compress one block."""
    if codec == "zstd":
        return _zstd_c().compress(raw)  # type: ignore[arg-type]  # any buffer works
    if codec == "lz4":
        return lz4.block.compress(raw, store_size=False)
    return bytes(raw)


def decompress(data: Any, codec: str, raw_size: int) -> bytes | memoryview:
    """Decompress one block whose raw size is known from the index."""
    if codec == "zstd":
        return _zstd_d().decompress(data, max_output_size=raw_size)
    if codec == "lz4":
        return lz4.block.decompress(data, uncompressed_size=raw_size)
    return data


def filtered(raw: np.ndarray, filter_id: int) -> bytes | np.ndarray | None:
    """A raw uint8 block passed through a filter (None when the decimal filter does not fit)."""
    if filter_id & DECIMAL:
        return decimal.encode(raw, filter_id & ~DECIMAL)
    return shuffle(raw, filter_id)


def encode_filtered(data: bytes | np.ndarray, codec: str, filter_id: int) -> tuple[bytes, int]:
    """Compress an already filtered block; return (stored bytes, crc32c).

    A decimal block's encoded length is not in the index, so with lz4 (whose blocks do
    not record it) it is stored in 4 bytes in front.
    """
    if filter_id & DECIMAL and codec == "lz4":
        stored = _LZ4_SIZE.pack(len(data)) + compress(data, codec)
    else:
        stored = compress(data, codec)
    return stored, checksum(stored)


def streams(codec: str, filter_id: int) -> bool:
    """Whether a large block with this codec and filter is encoded and decoded in pieces."""
    if codec == "none":  # stored as the raw buffer itself
        return filter_id == 1
    return codec == "zstd" and not filter_id & DECIMAL


def _filtered_pieces(raw: np.ndarray, filter_id: int) -> Iterator[np.ndarray]:
    """The bytes :func:`filtered` would return (no or byte-shuffle filter), piece by piece."""
    if filter_id <= 1:
        for i in range(0, raw.size, _PIECE_BYTES):
            yield raw[i : i + _PIECE_BYTES]
        return
    planes = raw.reshape(-1, filter_id)
    n = planes.shape[0]
    for k in range(filter_id):
        for lo in range(0, n, _PIECE_BYTES):
            yield np.ascontiguousarray(planes[lo : lo + _PIECE_BYTES, k])


def encode_large(raw: np.ndarray, codec: str, filter_id: int) -> tuple[bytes | bytearray | memoryview, int]:
    """:func:`encode_block` for a large block, without a filtered copy of it (see
    :func:`streams`): the shuffled bytes go to zstd a few MiB at a time, and an
    uncompressed block is stored as the raw buffer itself."""
    if not streams(codec, filter_id):
        raise ValueError(f"codec {codec!r} with filter {filter_id} is not encoded in pieces")
    if codec == "none":
        stored: bytes | bytearray | memoryview = raw.data  # filter 1: the bytes as they are
        return stored, checksum(stored)
    cobj = _zstd_c().compressobj(size=int(raw.size))
    out = bytearray()
    for piece in _filtered_pieces(raw, filter_id):
        out += cobj.compress(piece.data)
    out += cobj.flush()
    return out, checksum(out)


def read_into(reader: Any, view: Any) -> int:
    """Fill ``view`` from a decompressing stream ``reader``: the bytes put there, fewer than
    ``len(view)`` only when the stream ended first."""
    pos = 0
    while pos < len(view):
        got = reader.readinto(view[pos:])
        if not got:
            break
        pos += got
    return pos


def _decode_large(stored: Any, filter_id: int, raw_size: int) -> np.ndarray:
    """Decompress a large zstd block straight into its unfiltered place, a piece at a time."""
    out = np.empty(raw_size, dtype=np.uint8)
    with _zstd_d().stream_reader(stored) as reader:

        def fill(view: memoryview) -> None:
            if read_into(reader, view) < len(view):
                raise ValueError(f"block decompressed to fewer than the {raw_size} bytes the index says")

        if filter_id <= 1:
            fill(out.data)
        else:
            planes = out.reshape(-1, filter_id)
            n = planes.shape[0]
            piece = np.empty(min(n, _PIECE_BYTES), dtype=np.uint8)
            for k in range(filter_id):
                for lo in range(0, n, _PIECE_BYTES):
                    m = min(_PIECE_BYTES, n - lo)
                    fill(piece.data[:m])
                    planes[lo : lo + m, k] = piece[:m]
        if reader.read(1):
            raise ValueError(f"block decompressed to more than the {raw_size} bytes the index says")
    return out


def encode_block(raw: np.ndarray, codec: str, filter_id: int) -> tuple[bytes, int]:
    """Filter and compress a raw uint8 block; return (stored bytes, crc32c)."""
    data = filtered(raw, filter_id)
    if data is None:
        raise ValueError("the decimal filter does not fit this block")
    return encode_filtered(data, codec, filter_id)


def _frame_size(stored: Any) -> int:
    """The content size a zstd frame declares (-1: not declared)."""
    try:
        return int(zstandard.frame_content_size(stored))
    except zstandard.ZstdError as e:
        raise ValueError(f"not a zstd frame: {e}") from None


def decode_block(stored: Any, codec: str, filter_id: int, raw_size: int, into: np.ndarray | None = None) -> np.ndarray:
    """Decompress and unfilter a block (checksum is checked by the caller); ValueError when
    its sizes are impossible, before anything of that size is allocated. With ``into``
    (``raw_size`` contiguous bytes of uint8), the block is decoded into it, which is
    returned: a block of the decimal filter straight, any other through a copy."""
    if into is not None and (into.dtype != np.uint8 or into.shape != (raw_size,) or not into.flags.c_contiguous):
        raise ValueError("a block is decoded into raw_size contiguous bytes")
    if filter_id & DECIMAL:
        return _decimal_block(stored, codec, filter_id, raw_size, into)
    if into is not None:
        into[:] = decode_block(stored, codec, filter_id, raw_size)
        return into
    if codec == "zstd" and _frame_size(stored) not in (raw_size, -1):
        raise ValueError(f"block frame claims {_frame_size(stored)} bytes, the index {raw_size}")
    if codec == "zstd" and raw_size >= STREAM_MIN_BYTES:
        return _decode_large(stored, filter_id, raw_size)
    raw = decompress(stored, codec, raw_size)
    arr = np.frombuffer(raw, dtype=np.uint8)
    if raw is stored and arr.flags.writeable:
        arr.flags.writeable = False  # the storage's own bytes: whoever gets them must copy
    if arr.size != raw_size:
        raise ValueError(f"block decompressed to {arr.size} bytes, expected {raw_size}")
    return unshuffle(arr, filter_id)


def _decimal_block(stored: Any, codec: str, filter_id: int, raw_size: int, into: np.ndarray | None) -> np.ndarray:
    """A block of the decimal filter decoded (into ``into`` when given)."""
    itemsize = filter_id & ~DECIMAL
    if codec == "lz4":
        if len(stored) < _LZ4_SIZE.size:
            raise ValueError("decimal lz4 block is too short")
        (size,) = _LZ4_SIZE.unpack_from(stored)
        body = memoryview(stored)[_LZ4_SIZE.size :]
    elif codec == "zstd":
        size = _frame_size(stored)
        body = stored
    else:
        raise ValueError("the decimal filter needs a codec")
    bound = min(_decimal_bound(raw_size, itemsize), len(body) * MAX_RATIO[codec] + 64)
    if not 0 <= size <= bound:
        raise ValueError(f"decimal block claims {size} encoded bytes, at most {bound} are possible")
    if codec == "zstd":
        data: Any = _zstd_d().decompress(body, max_output_size=size)
    else:
        data = lz4.block.decompress(body, uncompressed_size=size)
    return decimal.decode(data, itemsize, raw_size, into)
