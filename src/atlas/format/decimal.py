"""The decimal filter: floats that are rounded decimals stored as small integers, losslessly.

Measured data is usually written with a fixed number of decimals (a temperature of
``12.345``, a depth of ``1013.5``), but a float32 or float64 holding such a value has
mantissa bits that look random to a byte compressor. The filter finds the power of
ten ``10**e`` for which ``value * 10**e`` is an integer for (nearly) every value of a
block, stores the differences of consecutive integers in the narrowest width that
holds them (1, 2, 4 or 8 bytes, byte-shuffled), and keeps every value that does not
come back bit for bit (NaN, infinities, -0.0, full-precision values) as an exception
with its exact bits. The codec then compresses that instead of the floats.

Decoding is exact by construction: the encoder runs the decoder's own formula on every
value and turns each mismatch into an exception.

Layout of an encoded block (before compression)::

    header   <BBBBI: format (2), e, width, formula, exception count
    base     <q: the first integer (format 2 only; format 1 blocks start from 0)
    deltas   n * width bytes, byte-shuffled (n = raw bytes / element size)
    bitmap   ceil(n / 8) bytes, exceptions only: bit i (little-endian) set = exception
    values   exception count * element size bytes: the exceptions' exact bits

``formula`` 0 computes ``float32(int) / float32(10**e)`` (float32 blocks whose
integers stay below 2**24, so both operands are exact); formula 1 computes
``float64(int) / 10**e``, cast to the element type.

The integers are ``base`` plus the running sums of the deltas; the first delta is 0, so
a salinity of 34.567 (34567 at e = 3) costs 2 bytes a value instead of 4. Format 1
(no base) is still read.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

HEADER = struct.Struct("<BBBBI")
BASE = struct.Struct("<q")
FORMAT = 2  # what encode writes; decode also reads format 1 (no base)
# Largest exponent tried: float32 holds ~7 significant digits, float64 ~15.
MAX_EXPONENT = {4: 7, 8: 15}
# A block with more exceptions than this fraction of its values is left to the plain codecs.
MAX_EXCEPTION_FRACTION = 0.5
# Larger blocks (a huge chunk is its own block) are left to the plain codecs: encoding
# needs about ten times the block in temporaries.
MAX_BLOCK_BYTES = 32 << 20
_SAMPLE = 2048
_PIECE = 1 << 15  # values decoded at a time
_POW10 = [10.0**e for e in range(23)]
_FLOAT: dict[int, np.dtype[Any]] = {4: np.dtype("<f4"), 8: np.dtype("<f8")}
_UINT: dict[int, np.dtype[Any]] = {4: np.dtype("<u4"), 8: np.dtype("<u8")}
_INT: dict[int, np.dtype[Any]] = {1: np.dtype("i1"), 2: np.dtype("<i2"), 4: np.dtype("<i4"), 8: np.dtype("<i8")}


def _decode_into(ints: np.ndarray, e: int, itemsize: int, formula: int, out: np.ndarray) -> None:
    """Write the float values of the integers into ``out`` (the decoder's exact formula)."""
    if formula == 0:  # float32 / float32: both operands exact below 2**24
        np.divide(ints.astype(np.float32), np.float32(_POW10[e]), out=out)
    elif itemsize == 8:
        np.divide(ints.astype(np.float64), _POW10[e], out=out)
    else:
        out[...] = ints.astype(np.float64) / _POW10[e]


def _exponent(values: np.ndarray, itemsize: int) -> int | None:
    """The smallest e that fits the most of a sample of the finite values (None: too few)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    sample = finite[:: max(1, finite.size // _SAMPLE)].astype(np.float64)
    ft = _FLOAT[itemsize]
    want = sample.astype(ft)
    best, best_count = None, 0
    with np.errstate(all="ignore"):
        for e in range(MAX_EXPONENT[itemsize] + 1):
            ints = np.rint(sample * _POW10[e])
            fits = (np.abs(ints) < 2.0**52) & ((ints / _POW10[e]).astype(ft) == want)
            count = int(np.count_nonzero(fits))
            if count > best_count:
                best, best_count = e, count
                if count == sample.size:
                    break
    return best if best_count >= (1 - MAX_EXCEPTION_FRACTION) * sample.size else None


def encode(raw: np.ndarray, itemsize: int) -> np.ndarray | None:
    """Encode a block of little-endian floats (uint8 buffer) into a new uint8 buffer; None
    when the filter does not fit."""
    if itemsize not in _FLOAT or raw.size == 0 or raw.size % itemsize or raw.size > MAX_BLOCK_BYTES:
        return None
    values = raw.view(_FLOAT[itemsize])
    e = _exponent(values, itemsize)
    if e is None:
        return None
    n = values.size
    with np.errstate(all="ignore"):
        scaled = np.rint(values.astype(np.float64) * _POW10[e])
        usable = np.abs(scaled) < 2.0**52  # False for NaN and infinities too
        ints = np.where(usable, scaled, 0.0).astype(np.int64)
    formula = 0 if itemsize == 4 and np.abs(ints).max() < 2**24 else 1
    bits = values.view(_UINT[itemsize])
    back = np.empty(n, dtype=_FLOAT[itemsize])
    _decode_into(ints, e, itemsize, formula, back)
    exc = ~(usable & (back.view(_UINT[itemsize]) == bits))
    nexc = int(np.count_nonzero(exc))
    if nexc > MAX_EXCEPTION_FRACTION * n:
        return None
    if nexc:
        # exceptions repeat the previous integer (the base before the first), so their deltas
        # are 0 and each other value's delta is from the value before it that is no exception
        keep = ~exc
        good = ints[keep]
        deltas = np.zeros(n, dtype=np.int64)
        base = int(good[0]) if good.size else 0
        if good.size:
            steps = np.empty_like(good)
            steps[0] = 0
            np.subtract(good[1:], good[:-1], out=steps[1:])
            deltas[keep] = steps
    else:
        base = int(ints[0])
        deltas = np.empty_like(ints)
        deltas[0] = 0
        np.subtract(ints[1:], ints[:-1], out=deltas[1:])
    lo, hi = int(deltas.min()), int(deltas.max())
    width = next(w for w in (1, 2, 4, 8) if -(1 << (8 * w - 1)) <= lo and hi < (1 << (8 * w - 1)))
    narrow = deltas.astype(_INT[width]).view(np.uint8)
    head = HEADER.size + BASE.size
    body = head + n * width
    out = np.empty(body + ((n + 7) // 8 + nexc * itemsize if nexc else 0), dtype=np.uint8)
    out[:head] = np.frombuffer(HEADER.pack(FORMAT, e, width, formula, nexc) + BASE.pack(base), dtype=np.uint8)
    out[head:body].reshape(width, n)[...] = narrow.reshape(n, width).T  # byte planes
    if nexc:
        out[body : body + (n + 7) // 8] = np.packbits(exc, bitorder="little")
        out[body + (n + 7) // 8 :] = bits[exc].view(np.uint8)
    return out


def decode(
    data: bytes | memoryview | np.ndarray, itemsize: int, raw_size: int, into: np.ndarray | None = None
) -> np.ndarray:
    """Decode a block back to its exact raw bytes (uint8; written into ``into``, raw_size
    bytes of uint8, when given); ValueError when it is malformed."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if itemsize not in _FLOAT or raw_size % itemsize or buf.size < HEADER.size:
        raise ValueError("decimal block has an impossible size")
    fmt, e, width, formula, nexc = HEADER.unpack(buf[: HEADER.size].tobytes())
    n = raw_size // itemsize
    if (
        fmt not in (1, 2) or width not in _INT or formula > 1 or (formula == 0 and (itemsize != 4 or width > 4))
        or e > MAX_EXPONENT[itemsize] or nexc > n
    ):
        raise ValueError("decimal block header is malformed")
    head = HEADER.size
    base = 0
    if fmt == 2:
        if buf.size < head + BASE.size:
            raise ValueError("decimal block has no room for its base")
        (base,) = BASE.unpack(buf[head : head + BASE.size].tobytes())
        head += BASE.size
        if abs(base) >= (2**24 if formula == 0 else 2**52):  # no encoder writes such a base
            raise ValueError("decimal block base is out of range")
    body = head + n * width
    end = body + ((n + 7) // 8 + nexc * itemsize if nexc else 0)
    if buf.size != end:
        raise ValueError(f"decimal block holds {buf.size} bytes, expected {end}")
    planes = buf[head:body].reshape(width, n)
    out = np.empty(n, dtype=_FLOAT[itemsize]) if into is None else into.view(_FLOAT[itemsize])
    acc = np.int32 if formula == 0 else np.int64
    carry = base
    for lo in range(0, n, _PIECE):  # in pieces: temporaries stay small next to the block
        hi = min(n, lo + _PIECE)
        interleaved = np.empty((hi - lo, width), dtype=np.uint8)
        for k in range(width):
            interleaved[:, k] = planes[k, lo:hi]
        ints = np.cumsum(interleaved.view(_INT[width]).reshape(-1), dtype=acc)
        if carry:
            np.add(ints, carry, out=ints, casting="unsafe")
        carry = int(ints[-1])
        _decode_into(ints, e, itemsize, formula, out[lo:hi])
    if nexc:
        mask = np.unpackbits(buf[body : body + (n + 7) // 8], count=n, bitorder="little").view(bool)
        if int(np.count_nonzero(mask)) != nexc:
            raise ValueError("decimal block exception count does not match its bitmap")
        out.view(_UINT[itemsize])[mask] = buf[body + (n + 7) // 8 :].view(_UINT[itemsize])
    result = out.view(np.uint8)
    if result.size != raw_size:
        raise ValueError(f"decimal block decodes to {result.size} bytes, expected {raw_size}")
    return result
