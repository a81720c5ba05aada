"""Typed values of the CF encoding record: attribute values packed into a JSON-able form that
keeps their numpy type (``pack``, ``unpack``), and how an attribute edit is told apart."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from .conventions import decode_attribute

__all__ = ["pack", "plain_value", "same_value", "unpack"]


def pack(value: Any) -> Any:
    """A JSON-able form of an attribute value that keeps its numpy type (``unpack`` inverts it)."""
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, np.generic):
        if isinstance(value, float) and not math.isfinite(value):
            return {"f": repr(value)}
        return value
    if isinstance(value, (bytes, np.bytes_)):
        return {"b": bytes(value).decode("latin-1")}
    if isinstance(value, np.generic):
        if value.dtype.kind == "S":
            return {"b": value.tobytes().decode("latin-1")}
        if value.dtype.kind in "biuf":
            item = value.item()
            if isinstance(item, float) and not math.isfinite(item):
                item = repr(item)
            return {"t": value.dtype.str, "v": item}
        return pack(value.item())
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf":
            items = [repr(x) if isinstance(x, float) and not math.isfinite(x) else x for x in value.ravel().tolist()]
            return {"t": value.dtype.str, "a": items}
        return {"l": [pack(v) for v in value.ravel().tolist()]}
    if isinstance(value, (list, tuple)):
        return {"l": [pack(v) for v in value]}
    return {"j": json.dumps(value, default=str)}


def _num(x: Any) -> Any:
    return float(x) if isinstance(x, str) else x


def unpack(value: Any) -> Any:
    """Inverse of :func:`pack`."""
    if not isinstance(value, dict):
        return value
    if "b" in value:
        return np.bytes_(value["b"].encode("latin-1"))
    if "f" in value:
        return float(value["f"])
    if "v" in value:
        return np.dtype(value["t"]).type(_num(value["v"]))
    if "a" in value:
        return np.array([_num(x) for x in value["a"]], dtype=np.dtype(value["t"]))
    if "l" in value:
        return [unpack(v) for v in value["l"]]
    if "j" in value:
        return json.loads(value["j"])
    return value


def plain_value(value: Any) -> Any:
    """What the ``"{var}.{attr}"`` copy of a value reads back as (to tell edits apart)."""
    from .conventions import encode_attribute

    return decode_attribute(encode_attribute(value)[0])


def same_value(a: Any, b: Any) -> bool:
    try:
        return bool(np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)))
    except Exception:  # pragma: no cover - odd values: treat as edited
        return False
