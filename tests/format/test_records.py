"""Manifest records of attributes and statistics: typed values round-trip exactly, and
malformed records are corruption, not wrong values."""

from __future__ import annotations

import json
import math
import struct

import pytest

from atlas.dtypes import DTYPES
from atlas.errors import CorruptionError
from atlas.format.records import attr_values, decode_attrs, decode_stats, encode_attrs, encode_stats


def _bits(x: float) -> bytes:
    return struct.pack(">d", x)


def test_attributes_round_trip_through_json_with_every_kind_and_special_float() -> None:
    nan = struct.unpack(">d", bytes.fromhex("7ff8000000000123"))[0]  # a NaN with a payload
    attrs = {
        "s": ("string", "tête"),
        "i": ("int64", -(2**63)),
        "u": ("uint64", 2**64 - 1),
        "f": ("float64", 0.1),
        "inf": ("float64", -math.inf),
        "nan": ("float64", nan),
        "neg0": ("float32", -0.0),
        "b": ("bool", True),
        "t": ("timestamp_nanoseconds", 1_600_000_000_000_000_000),
    }
    flat = encode_attrs(attrs)
    assert flat[:3] == ["s", "string", "tête"]
    back = decode_attrs(json.loads(json.dumps(flat, allow_nan=False)), "m")  # standard JSON only
    assert list(back) == list(attrs)  # order kept
    for key, (kind, value) in attrs.items():
        got_kind, got = back[key]
        assert got_kind == kind and type(got) is type(value)
        if isinstance(value, float):
            assert _bits(got) == _bits(value), key
        else:
            assert got == value
    assert encode_attrs({}) == [] and decode_attrs([], "m") == {}


@pytest.mark.parametrize(
    ("flat", "message"),
    [
        ({"k": 1}, "malformed"),
        (["k", "int64"], "malformed"),
        ([1, "int64", 1], "entry is malformed"),
        (["k", "complex", 1], "entry is malformed"),
        (["k", "int64", "one"], "attribute 'k'"),
        (["k", "bool", 1], "attribute 'k'"),
        (["k", "float64", "f64:zz"], "attribute 'k'"),
        (["k", "int64", 1, "k", "int64", 2], "listed twice"),
    ],
)
def test_malformed_attribute_lists_are_corruption(flat: object, message: str) -> None:
    with pytest.raises(CorruptionError, match=message):
        decode_attrs(flat, "manifest 7")
    with pytest.raises(CorruptionError, match="manifest 7"):
        attr_values(flat, "manifest 7")


def test_attr_values_gives_plain_values_on_the_fast_path_and_the_slow_one() -> None:
    assert attr_values(["a", "int64", 1, "b", "string", "x"], "m") == {"a": 1, "b": "x"}
    assert attr_values(("a", "float64", 1.5), "m") == {"a": 1.5}
    # an encoded NaN and an int where a float is due take the full decoder
    slow = attr_values(["n", "float64", "f64:7ff8000000000000", "f", "float32", 2], "m")
    assert math.isnan(slow["n"]) and slow["f"] == 2.0 and type(slow["f"]) is float


def test_statistics_round_trip_and_malformed_ones_are_corruption() -> None:
    f4 = DTYPES["float32"]
    stats = {"row_count": 10, "null_count": 3, "min": -math.inf, "max": 2.5}
    raw = encode_stats(f4, stats)
    assert raw == [10, 3, "f64:fff0000000000000", 2.5]
    assert decode_stats(f4, json.loads(json.dumps(raw)), "m") == stats
    assert encode_stats(f4, None) is None and decode_stats(f4, None, "m") is None
    u8 = DTYPES["uint64"]
    assert decode_stats(u8, encode_stats(u8, {"row_count": 1, "null_count": 0, "min": 2**64 - 1, "max": 2**64 - 1}), "m")[
        "max"
    ] == 2**64 - 1
    for bad in ([10, 3, 1.0], [10.0, 3, 1.0, 2.0], [10, "3", 1.0, 2.0], [10, 3, "x", 2.0], "stats"):
        with pytest.raises(CorruptionError, match="statistics are malformed"):
            decode_stats(f4, bad, "m")
    with pytest.raises(CorruptionError):
        decode_stats(DTYPES["int32"], [1, 0, 1.5, 2], "m")  # a float where an int is due
