"""Raw layout of a chunk of a variable-length string array.

A string chunk is ``n`` little-endian uint32 byte lengths followed by the UTF-8
bytes of the ``n`` strings back to back (lone surrogates are kept with
``surrogatepass`` so any Python ``str`` round-trips).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

_LEN = np.dtype("<u4")
_ONE = struct.Struct("<I")


def encode_strings(values: np.ndarray) -> np.ndarray:
    """Encode an object array of ``str`` into the raw chunk layout (uint8 array)."""
    flat = values.ravel().tolist()
    try:
        encoded = [s.encode("utf-8") for s in flat]
    except UnicodeEncodeError:
        encoded = [s.encode("utf-8", "surrogatepass") for s in flat]
    lengths = np.fromiter(map(len, encoded), dtype=_LEN, count=len(encoded))
    body = b"".join(encoded)
    out = np.empty(lengths.nbytes + len(body), dtype=np.uint8)
    out[: lengths.nbytes] = lengths.view(np.uint8)
    out[lengths.nbytes :] = np.frombuffer(body, dtype=np.uint8)
    return out


def decode_strings(raw: Any, count: int) -> np.ndarray:
    """Decode ``count`` strings from the raw chunk layout into a 1-D object array."""
    buf = memoryview(raw).cast("B")
    header = count * _LEN.itemsize
    if len(buf) < header:
        raise ValueError("string chunk is shorter than its length table")
    if count == 1:  # the common one-string chunk, without numpy overhead
        (n,) = _ONE.unpack_from(buf)
        if n != len(buf) - 4:
            raise ValueError("string chunk lengths do not add up to its size")
        one = np.empty(1, dtype=object)
        one[0] = bytes(buf[4:]).decode("utf-8", "surrogatepass")
        return one
    if count <= 64:  # small chunks: plain Python beats numpy's per-call overhead
        lens = struct.unpack_from(f"<{count}I", buf)
        body = bytes(buf[header:])
        if sum(lens) != len(body):
            raise ValueError("string chunk lengths do not add up to its size")
        small = np.empty(count, dtype=object)
        pos = 0
        items = []
        for n in lens:
            items.append(body[pos : pos + n])
            pos += n
        try:
            small[:] = [b.decode("utf-8") for b in items]
        except UnicodeDecodeError:
            small[:] = [b.decode("utf-8", "surrogatepass") for b in items]
        return small
    lengths = np.frombuffer(buf[:header], dtype=_LEN).astype(np.int64)
    ends = np.cumsum(lengths)
    if count and int(ends[-1]) != len(buf) - header:
        raise ValueError("string chunk lengths do not add up to its size")
    body = bytes(buf[header:])
    out = np.empty(count, dtype=object)
    if count == 0:
        return out
    starts = (ends - lengths).tolist()
    stops = ends.tolist()
    if body.isascii():
        text = body.decode("ascii")
        out[:] = [text[a:b] for a, b in zip(starts, stops, strict=True)]
    else:
        out[:] = [body[a:b].decode("utf-8", "surrogatepass") for a, b in zip(starts, stops, strict=True)]
    return out


def to_string_array(data: np.ndarray) -> np.ndarray:
    """Validate user data for a string array and return an object array of ``str``.

    Accepts object arrays of ``str``/``bytes`` and numpy ``U``/``S`` arrays; bytes are
    decoded as UTF-8 with replacement.
    """
    kind = data.dtype.kind
    if kind == "U":
        return data.astype(object)
    if kind == "S":
        out = np.empty(data.shape, dtype=object)
        out.ravel()[:] = [b.decode("utf-8", "replace") for b in data.ravel().tolist()]
        return out
    if kind != "O":
        raise TypeError(f"a string array needs str data (object, U or S dtype), not {data.dtype}")
    flat = data.ravel().tolist()
    out = np.empty(data.shape, dtype=object)
    conv = []
    for v in flat:
        if type(v) is str:
            conv.append(v)
        elif isinstance(v, str):
            conv.append(str(v))
        elif isinstance(v, bytes):
            conv.append(v.decode("utf-8", "replace"))
        else:
            raise TypeError(f"string arrays hold str or bytes, found {type(v).__name__}")
    out.ravel()[:] = conv
    return out
