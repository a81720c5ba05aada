"""Manifest records of attributes and statistics (typed values, exact round trip)."""

from __future__ import annotations

from math import isfinite
from typing import Any

from ..dtypes import DTYPES, DType, decode_value, encode_value
from ..errors import CorruptionError


def encode_attrs(attrs: dict[str, tuple[str, Any]]) -> list[Any]:
    """Flatten attributes to ``[key, kind, value, ...]`` with manifest-safe values."""
    flat: list[Any] = []
    for k, (kind, v) in attrs.items():
        if type(v) is float and not isfinite(v):
            v = encode_value(kind, v)
        flat += (k, kind, v)
    return flat


_FAST_TYPES = {
    "string": str, "int64": int, "float64": float, "bool": bool, "int32": int, "int16": int,
    "int8": int, "uint8": int, "uint16": int, "uint32": int, "uint64": int, "float32": float,
    "timestamp_nanoseconds": int,
}


def decode_attrs(flat: Any, where: str) -> dict[str, tuple[str, Any]]:
    """Decode a flat ``[key, kind, value, ...]`` attribute list, checking every entry."""
    if not isinstance(flat, (list, tuple)) or len(flat) % 3:
        raise CorruptionError(f"{where}: attribute list is malformed")
    out: dict[str, tuple[str, Any]] = {}
    fast = _FAST_TYPES
    for i in range(0, len(flat), 3):
        k, kind, v = flat[i], flat[i + 1], flat[i + 2]
        if type(k) is not str or kind not in DTYPES:
            raise CorruptionError(f"{where}: attribute entry is malformed")
        if type(v) is fast[kind]:
            out[k] = (kind, v)
            continue
        try:
            out[k] = (kind, decode_value(kind, v))
        except ValueError as e:
            raise CorruptionError(f"{where}: attribute {k!r}: {e}") from None
    if 3 * len(out) != len(flat):
        raise CorruptionError(f"{where}: an attribute key is listed twice")
    return out


_fast_type = _FAST_TYPES.get


def attr_values(flat: Any, where: str) -> dict[str, Any]:
    """``{key: value}`` of a flat attribute list, without building the typed form.

    The common case (every value already of its kind's plain Python type, string keys,
    no repeats) is checked and built with C-level calls; anything else takes the full
    decoder.
    """
    if (type(flat) is tuple or type(flat) is list) and not len(flat) % 3:
        keys = flat[0::3]
        vals = flat[2::3]
        if list(map(_fast_type, flat[1::3])) == list(map(type, vals)) and all(type(k) is str for k in keys):
            out = dict(zip(keys, vals, strict=True))
            if len(out) == len(keys):
                return out
    return {k: v for k, (_, v) in decode_attrs(flat, where).items()}


def encode_stats(dtype: DType, stats: dict[str, Any] | None) -> Any:
    if stats is None:
        return None
    name = dtype.name
    lo, hi = stats["min"], stats["max"]
    return [stats["row_count"], stats["null_count"], encode_value(name, lo), encode_value(name, hi)]


def decode_stats(dtype: DType, raw: Any, where: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        rc, nc, lo, hi = raw
        if not isinstance(rc, int) or not isinstance(nc, int):
            raise ValueError("counts must be ints")
        return {
            "row_count": rc,
            "null_count": nc,
            "min": decode_value(dtype.name, lo),
            "max": decode_value(dtype.name, hi),
        }
    except (TypeError, ValueError) as e:
        raise CorruptionError(f"{where}: statistics are malformed: {e}") from None
