"""Manifest records of attributes and statistics (typed values, exact round trip)."""

from __future__ import annotations

from collections.abc import Callable
from math import isfinite
from operator import contains, itemgetter
from typing import Any, cast

from ..dtypes import DTYPES, DType, decode_value, encode_value, int_range
from ..errors import CorruptionError

# Inclusive range of each integer kind (timestamps are int64 nanoseconds).
_INT_RANGES = {
    name: int_range(dt) for name, dt in DTYPES.items() if dt.kind in ("int", "uint", "timestamp")
}
# The same ranges as range objects (``v in r`` is one C-level test), and for each sequence of
# kinds seen (datasets of a store mostly share theirs), where the integer kinds are in it.
_RANGES = {name: range(lo, hi + 1) for name, (lo, hi) in _INT_RANGES.items()}
# Per sequence of attribute kinds (datasets of one collection repeat a few): the plain
# Python type each value must have, a getter of the values of integer kinds and their ranges.
_KindPlan = tuple[list[type | None], Callable[[Any], tuple[Any, ...]] | None, tuple[range, ...]]
_KIND_PLANS: dict[tuple[Any, ...], _KindPlan] = {}


def _kind_plan(kinds: Any) -> _KindPlan:
    """The types and integer ranges a flat attribute list's values must match (TypeError
    for an unhashable kind)."""
    key = kinds if type(kinds) is tuple else tuple(kinds)
    plan = _KIND_PLANS.get(key)
    if plan is None:
        slots = [i for i, k in enumerate(key) if type(k) is str and k in _RANGES]
        getter: Callable[[Any], tuple[Any, ...]] | None = None
        if len(slots) == 1:
            only = slots[0]
            getter = lambda vals: (vals[only],)  # noqa: E731 - itemgetter of one gives no tuple
        elif slots:
            getter = itemgetter(*slots)
        plan = (
            [_FAST_TYPES.get(k) if type(k) is str else None for k in key],
            getter,
            tuple(_RANGES[key[i]] for i in slots),
        )
        if len(_KIND_PLANS) < 4096:
            _KIND_PLANS[key] = plan
    return plan


def decode_checked(kind: str, v: Any) -> Any:
    """A typed value read from a manifest (see :func:`atlas.dtypes.decode_value`), refusing
    one its kind cannot hold (an ``int8`` of 10**30, a ``uint8`` of -1, an int too large
    for a float): ``ValueError``."""
    try:
        out = decode_value(kind, v)
    except OverflowError as e:  # float() of a huge int
        raise ValueError(f"{v!r} is out of range for {kind}: {e}") from None
    bounds = _INT_RANGES.get(kind)
    if bounds is not None and out is not None and not bounds[0] <= out <= bounds[1]:
        raise ValueError(f"{out} is out of range for {kind} [{bounds[0]}, {bounds[1]}]")
    return out


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
    ranges = _INT_RANGES
    for i in range(0, len(flat), 3):
        k, kind, v = flat[i], flat[i + 1], flat[i + 2]
        if type(k) is not str or type(kind) is not str or kind not in DTYPES:
            raise CorruptionError(f"{where}: attribute entry is malformed")
        if type(v) is fast[kind]:
            bounds = ranges.get(kind)
            if bounds is None or bounds[0] <= cast(int, v) <= bounds[1]:
                out[k] = (kind, v)
                continue
        try:
            out[k] = (kind, decode_checked(kind, v))
        except ValueError as e:
            raise CorruptionError(f"{where}: attribute {k!r}: {e}") from None
    if 3 * len(out) != len(flat):
        raise CorruptionError(f"{where}: an attribute key is listed twice")
    return out




_STR_ONLY = {str}


def attr_values(flat: Any, where: str, dataset: str | None = None) -> dict[str, Any]:
    """``{key: value}`` of a flat attribute list, without building the typed form.

    The common case (string kinds and keys, every value already of its kind's plain Python
    type and, for integer kinds, in range; no repeats) is checked and built with C-level
    calls; anything else takes the full decoder (whose errors name ``where`` and
    ``dataset``, put together only then).
    """
    if (type(flat) is tuple or type(flat) is list) and not len(flat) % 3:
        keys = flat[0::3]
        vals = flat[2::3]
        try:
            types, int_values, int_ranges = _kind_plan(flat[1::3])
        except TypeError:  # an unhashable kind: the full decoder says what is wrong
            types, int_values, int_ranges = [], None, ()
        if (
            types == list(map(type, vals))
            and set(map(type, keys)) <= _STR_ONLY
            and (int_values is None or all(map(contains, int_ranges, int_values(vals))))
        ):
            out = dict(zip(keys, vals, strict=True))
            if len(out) == len(keys):
                return out
    if dataset is not None:
        where = f"{where}, dataset {dataset!r}"
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
            "min": decode_checked(dtype.name, lo),
            "max": decode_checked(dtype.name, hi),
        }
    except (TypeError, ValueError) as e:
        raise CorruptionError(f"{where}: statistics are malformed: {e}") from None
