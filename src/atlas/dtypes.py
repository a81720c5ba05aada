"""The one table of supported dtypes and the rules for values of each kind.

Every place that needs to know how an Atlas dtype maps to numpy, which Python
values are valid fill values or attributes, or how a value is written to the
manifest, asks this module.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class DType:
    """An Atlas dtype: its canonical name, its kind and its numpy storage dtype."""

    name: str
    kind: str  # "int", "uint", "float", "bool", "timestamp", "string"
    numpy: np.dtype[Any]

    @property
    def itemsize(self) -> int:
        """Bytes per element in a raw chunk (1 for strings, which are variable-length)."""
        return 1 if self.kind == "string" else int(self.numpy.itemsize)

    @property
    def is_string(self) -> bool:
        return self.kind == "string"

    @property
    def read_dtype(self) -> np.dtype[Any]:
        """The numpy dtype that reads return."""
        if self.kind == "timestamp":
            return np.dtype("datetime64[ns]")
        return self.numpy


def _int_dtype(name: str, kind: str) -> DType:
    return DType(name, kind, np.dtype(name))


DTYPES: dict[str, DType] = {
    **{n: _int_dtype(n, "int") for n in ("int8", "int16", "int32", "int64")},
    **{n: _int_dtype(n, "uint") for n in ("uint8", "uint16", "uint32", "uint64")},
    "float32": DType("float32", "float", np.dtype("float32")),
    "float64": DType("float64", "float", np.dtype("float64")),
    "bool": DType("bool", "bool", np.dtype("bool")),
    "timestamp_nanoseconds": DType("timestamp_nanoseconds", "timestamp", np.dtype("int64")),
    "string": DType("string", "string", np.dtype(object)),
}

_ALIASES = {
    "datetime64[ns]": "timestamp_nanoseconds",
    "timestamp_ns": "timestamp_nanoseconds",
    "str": "string",
}

_NOT_IMPLEMENTED = {"bytes", "binary"}

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


_PARSED: dict[str, DType] = {}


def parse_dtype(value: object) -> DType:
    """Resolve a user-given dtype name (case-insensitive, aliases allowed)."""
    if type(value) is str:
        hit = _PARSED.get(value)
        if hit is not None:
            return hit
    dt = _parse_dtype(value)
    if len(_PARSED) < 1000:
        _PARSED[value] = dt  # type: ignore[index]
    return dt


def _parse_dtype(value: object) -> DType:
    if not isinstance(value, str):
        raise TypeError(f"dtype must be a str such as 'float32', not {type(value).__name__}")
    key = value.strip().lower()
    key = _ALIASES.get(key, key)
    if key in _NOT_IMPLEMENTED:
        raise NotImplementedError(f"dtype {value!r} is not supported yet; store bytes as 'string'")
    try:
        return DTYPES[key]
    except KeyError:
        known = ", ".join(DTYPES)
        raise ValueError(f"unknown dtype {value!r}; use one of: {known}") from None


def int_range(dtype: DType) -> tuple[int, int]:
    """Inclusive range of an integer-valued dtype (timestamps are int64)."""
    info = np.iinfo(np.int64 if dtype.kind == "timestamp" else dtype.numpy)
    return int(info.min), int(info.max)


def validate_fill(dtype: DType, value: object) -> int | float | bool | str | None:
    """Check a fill value against the dtype and return it as a plain Python value."""
    if value is None:
        return None
    kind = dtype.kind
    if kind in ("int", "uint", "timestamp"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(
                f"fill_value for a {dtype.name} array must be a Python int, not {type(value).__name__}"
            )
        lo, hi = int_range(dtype)
        if not lo <= value <= hi:
            raise OverflowError(f"fill_value {value} is out of range for {dtype.name} [{lo}, {hi}]")
        return int(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(
                f"fill_value for a {dtype.name} array must be a Python float or int, "
                f"not {type(value).__name__}"
            )
        return float(value)  # ints beyond float range raise OverflowError here
    if kind == "bool":
        if not isinstance(value, bool):
            raise TypeError(f"fill_value for a bool array must be a bool, not {type(value).__name__}")
        return value
    if not isinstance(value, str):
        raise TypeError(f"fill_value for a string array must be a str, not {type(value).__name__}")
    return value


def fill_scalar(dtype: DType, fill: Any) -> Any:
    """The numpy scalar that unwritten cells hold (fill value, or zero / empty string)."""
    if dtype.kind == "string":
        return "" if fill is None else fill
    if fill is None:
        return dtype.numpy.type(0)
    if dtype.name == "float32" and abs(fill) > 3.4e38:
        with np.errstate(over="ignore"):
            return dtype.numpy.type(fill)  # overflows to inf, silently, as the API promises
    return dtype.numpy.type(fill)


# --- attributes -------------------------------------------------------------------------------

def infer_attribute(value: object) -> tuple[str, Any]:
    """Infer the kind of an attribute from its Python type."""
    if isinstance(value, bool):
        return "bool", value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise OverflowError(f"attribute value {value} does not fit in int64; pass dtype='uint64'")
        return "int64", int(value)
    if isinstance(value, float):
        return "float64", float(value)
    if isinstance(value, str):
        return "string", str(value)
    raise ValueError(
        f"unsupported attribute type {type(value).__name__}: use bool, int, float or str"
    )


def coerce_attribute(value: object, dtype: object) -> tuple[str, Any]:
    """Coerce an attribute value to a forced dtype, as ``set_attribute(..., dtype=)``.

    An attribute dtype that is not supported is a ``ValueError`` like any unknown one (the
    API's rule for attributes; ``define_array`` says ``NotImplementedError`` for binary)."""
    try:
        dt = parse_dtype(dtype)
    except NotImplementedError as e:
        raise ValueError(f"unknown attribute dtype {dtype!r}: {e}") from None
    kind = dt.kind
    if kind in ("int", "uint", "timestamp"):
        if not isinstance(value, int):
            raise TypeError(f"attribute of dtype {dt.name} needs an int, not {type(value).__name__}")
        v = int(value)
        lo, hi = int_range(dt)
        if not lo <= v <= hi:
            raise OverflowError(f"attribute value {v} is out of range for {dt.name} [{lo}, {hi}]")
        return dt.name, v
    if kind == "float":
        if isinstance(value, str) or not isinstance(value, (int, float)):
            raise TypeError(f"attribute of dtype {dt.name} needs a float, not {type(value).__name__}")
        # kept exactly as given (a float32 kind is not rounded), like the original package
        return dt.name, float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise TypeError(f"attribute of dtype bool needs a bool, not {type(value).__name__}")
        return "bool", value
    if not isinstance(value, str):
        raise TypeError(f"attribute of dtype string needs a str, not {type(value).__name__}")
    return "string", value


# --- encoding values in the manifest ------------------------------------------------------------
# Finite floats are written as numbers; NaN and infinities as "f64:<16 hex digits>" so JSON stays
# standard and every bit (sign and payload of NaN included) survives.


def encode_float(x: float) -> float | str:
    """Manifest form of a float: itself when finite, else its exact bits as text."""
    if math.isfinite(x):
        return x
    return "f64:" + struct.pack(">d", x).hex()


def decode_float(v: Any) -> float:
    """Inverse of :func:`encode_float`."""
    if isinstance(v, str):
        if not v.startswith("f64:") or len(v) != 20:
            raise ValueError(f"bad encoded float {v!r}")
        return float(struct.unpack(">d", bytes.fromhex(v[4:]))[0])
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"bad encoded float {v!r}")
    return float(v)


def encode_value(kind_or_dtype: str, value: Any) -> Any:
    """Manifest form of a typed scalar (fill value, attribute, statistic)."""
    if value is None:
        return None
    if kind_or_dtype in ("float32", "float64"):
        return encode_float(value)
    return value


def decode_value(dtype_name: str, v: Any) -> Any:
    """Decode a typed scalar written by :func:`encode_value`, checking its type."""
    if v is None:
        return None
    dt = DTYPES.get(dtype_name)
    if dt is None:
        raise ValueError(f"unknown dtype {dtype_name!r} in metadata")
    if dt.kind == "float":
        return decode_float(v)
    if dt.kind in ("int", "uint", "timestamp"):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"expected an int for {dtype_name}, found {type(v).__name__}")
        return int(v)
    if dt.kind == "bool":
        if not isinstance(v, bool):
            raise ValueError(f"expected a bool, found {type(v).__name__}")
        return v
    if not isinstance(v, str):
        raise ValueError(f"expected a str, found {type(v).__name__}")
    return v
