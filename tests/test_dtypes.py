"""The dtype table: names and aliases, fill values, attribute kinds and the manifest form of
typed values (every bit of a float kept)."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from atlas.dtypes import (
    DTYPES,
    coerce_attribute,
    decode_float,
    decode_value,
    encode_float,
    encode_value,
    fill_scalar,
    infer_attribute,
    int_range,
    parse_dtype,
    validate_fill,
)


def _bits(x: float) -> bytes:
    return struct.pack(">d", x)


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("float32", "float32"),
        (" Float64 ", "float64"),
        ("UINT8", "uint8"),
        ("datetime64[ns]", "timestamp_nanoseconds"),
        ("timestamp_ns", "timestamp_nanoseconds"),
        ("str", "string"),
        ("bool", "bool"),
    ],
)
def test_dtype_names_and_aliases(given: str, name: str) -> None:
    assert parse_dtype(given) is DTYPES[name]


def test_unknown_unsupported_and_non_str_dtypes() -> None:
    with pytest.raises(ValueError, match="unknown dtype 'float16'; use one of: int8"):
        parse_dtype("float16")
    for name in ("bytes", "BINARY"):
        with pytest.raises(NotImplementedError, match="store bytes as 'string'"):
            parse_dtype(name)
    for bad in (np.float32, None, 4):
        with pytest.raises(TypeError, match="dtype must be a str"):
            parse_dtype(bad)


def test_dtype_properties() -> None:
    assert DTYPES["int16"].itemsize == 2 and DTYPES["string"].itemsize == 1
    assert DTYPES["string"].is_string and not DTYPES["bool"].is_string
    assert DTYPES["timestamp_nanoseconds"].numpy == np.int64
    assert DTYPES["timestamp_nanoseconds"].read_dtype == np.dtype("datetime64[ns]")
    assert DTYPES["float32"].read_dtype == np.float32
    assert int_range(DTYPES["uint64"]) == (0, 2**64 - 1)
    assert int_range(DTYPES["int8"]) == (-128, 127)
    assert int_range(DTYPES["timestamp_nanoseconds"]) == (-(2**63), 2**63 - 1)


def test_fill_values_are_checked_against_the_dtype() -> None:
    assert validate_fill(DTYPES["int8"], -128) == -128 and validate_fill(DTYPES["int8"], None) is None
    assert validate_fill(DTYPES["float32"], 3) == 3.0 and type(validate_fill(DTYPES["float32"], 3)) is float
    assert validate_fill(DTYPES["bool"], False) is False and validate_fill(DTYPES["string"], "") == ""
    for dtype, bad, error in [
        ("int8", 128, OverflowError),
        ("uint16", -1, OverflowError),
        ("int32", 1.0, TypeError),
        ("int32", True, TypeError),
        ("float64", "nan", TypeError),
        ("float64", True, TypeError),
        ("float64", 10**400, OverflowError),
        ("bool", 1, TypeError),
        ("string", b"x", TypeError),
    ]:
        with pytest.raises(error):
            validate_fill(DTYPES[dtype], bad)


def test_fill_scalars_of_unwritten_cells() -> None:
    assert fill_scalar(DTYPES["int32"], None) == 0 and type(fill_scalar(DTYPES["int32"], None)) is np.int32
    assert fill_scalar(DTYPES["string"], None) == "" and fill_scalar(DTYPES["string"], "x") == "x"
    assert math.isnan(fill_scalar(DTYPES["float64"], math.nan))
    assert fill_scalar(DTYPES["float32"], 1e39) == np.inf  # overflows to inf, as the API promises


@pytest.mark.parametrize(
    ("value", "kind"),
    [(True, "bool"), (3, "int64"), (-(2**63), "int64"), (2.5, "float64"), ("x", "string")],
)
def test_attribute_kinds_are_inferred(value: object, kind: str) -> None:
    got_kind, got = infer_attribute(value)
    assert got_kind == kind and got == value and type(got) in (bool, int, float, str)


def test_inference_refuses_what_has_no_kind() -> None:
    with pytest.raises(OverflowError, match="pass dtype='uint64'"):
        infer_attribute(2**63)
    for bad in (None, b"x", [1], 1j, np.float32(1.0), np.int64(1)):  # numpy scalars are no exception
        with pytest.raises(ValueError, match="unsupported attribute type"):
            infer_attribute(bad)


def test_forced_attribute_kinds() -> None:
    assert coerce_attribute(2**64 - 1, "uint64") == ("uint64", 2**64 - 1)
    assert coerce_attribute(1, "float32") == ("float32", 1.0)
    assert coerce_attribute(0.1, "float32") == ("float32", 0.1)  # kept as given, not rounded
    assert coerce_attribute(5, "timestamp_ns") == ("timestamp_nanoseconds", 5)
    assert coerce_attribute("a", "STR") == ("string", "a")
    for value, dtype, error in [
        (256, "uint8", OverflowError),
        (1.0, "int32", TypeError),
        ("1", "float64", TypeError),
        (1, "bool", TypeError),
        (1, "string", TypeError),
        (1, "binary", ValueError),  # unsupported for attributes is a ValueError, as any unknown one
        (1, "nope", ValueError),
    ]:
        with pytest.raises(error):
            coerce_attribute(value, dtype)


@pytest.mark.parametrize(
    "x", [0.0, -0.0, 1.5, 1e308, math.inf, -math.inf, math.nan, struct.unpack(">d", bytes.fromhex("fff8000000000001"))[0]]
)
def test_floats_keep_every_bit_in_the_manifest_form(x: float) -> None:
    encoded = encode_float(x)
    if math.isfinite(x):
        assert encoded is x
    else:
        assert isinstance(encoded, str) and encoded.startswith("f64:") and len(encoded) == 20
    assert _bits(decode_float(encoded)) == _bits(x)
    assert _bits(decode_value("float32", encode_value("float32", x))) == _bits(x)


def test_decoding_checks_the_type_of_each_value() -> None:
    assert decode_value("int8", 3) == 3 and decode_value("string", "s") == "s" and decode_value("bool", True) is True
    assert decode_value("float64", 2) == 2.0 and decode_value("uint8", None) is None
    assert encode_value("int64", 5) == 5 and encode_value("float64", None) is None
    for dtype, bad in [
        ("int8", 1.0),
        ("int8", True),
        ("bool", 1),
        ("string", 1),
        ("float64", "nan"),
        ("float64", "f64:zz"),
        ("float64", True),
        ("complex64", 1),
    ]:
        with pytest.raises(ValueError):
            decode_value(dtype, bad)
