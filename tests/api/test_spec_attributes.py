"""Conformance tests for typed attributes: dataset attributes (``set_attribute`` /
``get_attribute`` / ``attributes``) and per-array attributes (``set_array_attribute`` /
``get_array_attribute`` / ``array_attributes``), which follow the same typing rules."""

from __future__ import annotations

import datetime
import itertools
import math
import random
import struct

import numpy as np
import pytest

import atlas

# Every accepted meta_format / meta_compression spelling, aliases included.
META_COMBOS = list(
    itertools.product(["json", "msgpack", "mp"], ["none", "uncompressed", "zstd", "lz4"])
)
INT_KINDS = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]


def _bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def _from_bits(b: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", b))[0]


class DatasetScope:
    """Dataset attributes."""

    def __init__(self, ds: atlas.DatasetView):
        self.ds = ds

    def set(self, key, value, dtype=None):
        if dtype is None:
            return self.ds.set_attribute(key, value)
        return self.ds.set_attribute(key, value, dtype=dtype)

    def get(self, key):
        return self.ds.get_attribute(key)

    def all(self):
        return self.ds.attributes()


class ArrayScope:
    """Attributes of the array ``arr``."""

    def __init__(self, ds: atlas.DatasetView):
        self.ds = ds

    def set(self, key, value, dtype=None):
        if dtype is None:
            return self.ds.set_array_attribute("arr", key, value)
        return self.ds.set_array_attribute("arr", key, value, dtype=dtype)

    def get(self, key):
        return self.ds.get_array_attribute("arr", key)

    def all(self):
        return self.ds.array_attributes("arr")


SCOPES = {"dataset": DatasetScope, "array": ArrayScope}


def _new_dataset(store: atlas.Atlas, name: str = "ds") -> atlas.DatasetView:
    ds = store.create_dataset(name)
    ds.define_array("arr", "float64", ["x"], [2])
    return ds


@pytest.fixture(params=list(SCOPES))
def scope_kind(request) -> str:
    return request.param


@pytest.fixture
def attrs(store, scope_kind):
    return SCOPES[scope_kind](_new_dataset(store))


def _reopen(path, scope_kind: str):
    return SCOPES[scope_kind](atlas.Atlas.open(path).open_dataset("ds"))


# ---------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (True, bool),
        (False, bool),
        (0, int),
        (1, int),
        (-1, int),
        (2**63 - 1, int),
        (-(2**63), int),
        (1.5, float),
        (-0.0, float),
        (1e300, float),
        (np.float64(2.5), float),
        ("text", str),
        ("", str),
        ("2020-01-01T00:00:00", str),
    ],
    ids=repr,
)
def test_inferred_kinds(attrs, value, kind):
    attrs.set("k", value)
    got = attrs.get("k")
    assert type(got) is kind
    assert got == value
    assert type(attrs.all()["k"]) is kind


def test_bool_is_never_an_int(attrs):
    attrs.set("t", True)
    attrs.set("f", False)
    assert attrs.get("t") is True
    assert attrs.get("f") is False


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**64, 10**30])
def test_int_outside_int64_is_overflow_error(attrs, value):
    with pytest.raises(OverflowError):
        attrs.set("k", value)
    assert attrs.get("k") is None


UNSUPPORTED = [
    None,
    [1, 2],
    [],
    (1,),
    {"a": 1},
    b"bytes",
    np.int64(1),
    np.int32(1),
    np.uint8(1),
    np.float32(1.5),
    np.bool_(True),
    np.zeros(2),
    np.array(1.0),
    datetime.datetime(2020, 1, 1),
]


@pytest.mark.parametrize("value", UNSUPPORTED, ids=lambda v: type(v).__name__)
def test_unsupported_type_is_value_error_and_keeps_old_value(attrs, value):
    attrs.set("k", "old")
    attrs.set("after", 1)
    with pytest.raises(ValueError):
        attrs.set("k", value)
    assert attrs.get("k") == "old"
    with pytest.raises(ValueError):
        attrs.set("fresh", value)
    assert attrs.get("fresh") is None
    assert attrs.all() == {"k": "old", "after": 1}


# ---------------------------------------------------------------------------
# Forced kinds
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype",
    [
        *INT_KINDS,
        "timestamp_nanoseconds",
        "datetime64[ns]",
        "timestamp_ns",
        "Int8",
        "UInt16",
        "INT64",
        "TIMESTAMP_NS",
        " int32 ",
    ],
)
def test_forced_int_kinds(attrs, dtype):
    attrs.set("k", 100, dtype=dtype)
    got = attrs.get("k")
    assert type(got) is int and got == 100
    attrs.set("t", True, dtype=dtype)
    got = attrs.get("t")
    assert type(got) is int and got == 1


@pytest.mark.parametrize("dtype", [*INT_KINDS, "timestamp_nanoseconds"])
@pytest.mark.parametrize("value", [1.0, 2.5, "1", "x"], ids=repr)
def test_forced_int_kind_rejects_float_and_str(attrs, dtype, value):
    with pytest.raises(TypeError):
        attrs.set("k", value, dtype=dtype)
    assert attrs.get("k") is None


@pytest.mark.parametrize(
    ("dtype", "value"),
    [
        ("int8", 300),
        ("int8", 128),
        ("int8", -129),
        ("int16", 2**15),
        ("int32", 2**31),
        ("int32", -(2**31) - 1),
        ("int64", 2**63),
        ("uint8", 256),
        ("uint8", -1),
        ("uint16", -1),
        ("uint32", 2**32),
        ("uint64", 2**64),
        ("uint64", -1),
        ("timestamp_nanoseconds", 2**63),
    ],
    ids=repr,
)
def test_forced_kind_out_of_range_is_overflow_error(attrs, dtype, value):
    with pytest.raises(OverflowError):
        attrs.set("k", value, dtype=dtype)


@pytest.mark.parametrize(
    ("dtype", "value"),
    [
        ("int8", -128),
        ("int8", 127),
        ("uint8", 255),
        ("int64", -(2**63)),
        ("uint32", 2**32 - 1),
        ("timestamp_nanoseconds", -(2**63)),
    ],
    ids=repr,
)
def test_forced_kind_range_limits_are_valid(attrs, dtype, value):
    attrs.set("k", value, dtype=dtype)
    assert attrs.get("k") == value


def test_uint64_max_is_valid(store, scope_kind):
    attrs = SCOPES[scope_kind](_new_dataset(store))
    attrs.set("k", 2**64 - 1, dtype="uint64")
    got = attrs.get("k")
    assert type(got) is int and got == 2**64 - 1
    store.flush()
    again = _reopen(store.storage, scope_kind).get("k")
    assert type(again) is int and again == 2**64 - 1


@pytest.mark.parametrize("dtype", ["float32", "float64", "FLOAT32", "Float64"])
def test_forced_float_kinds(attrs, dtype):
    attrs.set("i", 3, dtype=dtype)
    assert type(attrs.get("i")) is float and attrs.get("i") == 3.0
    attrs.set("f", 0.5, dtype=dtype)
    assert type(attrs.get("f")) is float and attrs.get("f") == 0.5
    with pytest.raises(TypeError):
        attrs.set("s", "1.5", dtype=dtype)
    assert attrs.get("s") is None


@pytest.mark.parametrize("dtype", ["string", "str", "String"])
def test_forced_string_needs_str(attrs, dtype):
    attrs.set("k", "12", dtype=dtype)
    assert attrs.get("k") == "12"
    for bad in (12, 1.5, True, b"12"):
        with pytest.raises(TypeError):
            attrs.set("bad", bad, dtype=dtype)
    assert attrs.get("bad") is None


def test_forced_bool_needs_bool(attrs):
    attrs.set("k", False, dtype="bool")
    assert attrs.get("k") is False
    for bad in (1, 0, 1.0, "true"):
        with pytest.raises(TypeError):
            attrs.set("bad", bad, dtype="bool")
    assert attrs.get("bad") is None


@pytest.mark.parametrize("dtype", ["float16", "complex64", "i4", "nonsense", "", "int"])
def test_unknown_forced_dtype_is_value_error(attrs, dtype):
    with pytest.raises(ValueError):
        attrs.set("k", 1, dtype=dtype)
    assert attrs.get("k") is None


def test_explicit_none_dtype_means_inference(attrs):
    attrs.set("k", 1.5, dtype=None)
    assert type(attrs.get("k")) is float


# ---------------------------------------------------------------------------
# Access, order, keys
# ---------------------------------------------------------------------------


def test_get_unset_is_none(attrs):
    assert attrs.get("never") is None
    assert attrs.all() == {}


def test_attributes_is_a_fresh_dict_in_insertion_order(attrs):
    for key, value in [("z", 1), ("a", "x"), ("m", 2.5), ("b", True)]:
        attrs.set(key, value)
    got = attrs.all()
    assert type(got) is dict
    assert list(got.items()) == [("z", 1), ("a", "x"), ("m", 2.5), ("b", True)]
    got["z"] = "mutated"
    got["new"] = 1
    del got["a"]
    assert list(attrs.all().items()) == [("z", 1), ("a", "x"), ("m", 2.5), ("b", True)]
    assert attrs.all() is not attrs.all()


def test_overwrite_keeps_position_and_may_change_type(attrs):
    attrs.set("first", 1)
    attrs.set("second", 2)
    attrs.set("third", 3)
    attrs.set("second", "now a string")
    attrs.set("first", 1.5, dtype="float32")
    assert list(attrs.all().items()) == [
        ("first", 1.5),
        ("second", "now a string"),
        ("third", 3),
    ]


@pytest.mark.parametrize("key", ["", "a/b", "_x", ".", "..", " ", "\x00", "ü/名"])
def test_attribute_keys_are_not_validated(attrs, key):
    attrs.set(key, 7)
    assert attrs.get(key) == 7
    assert attrs.all() == {key: 7}


@pytest.mark.parametrize("key", [1, None, b"k", ("k",)], ids=repr)
def test_non_str_key_is_type_error(attrs, key):
    with pytest.raises(TypeError):
        attrs.set(key, 1)
    with pytest.raises(TypeError):
        attrs.get(key)
    assert attrs.all() == {}


# ---------------------------------------------------------------------------
# Persistence
# ---------------------------------------------------------------------------

PERSISTED = [
    ("t", True, None, bool),
    ("f", False, None, bool),
    ("i", -42, None, int),
    ("big", 2**63 - 1, None, int),
    ("small", -(2**63), None, int),
    ("x", 0.1, None, float),
    ("y", 1e-310, None, float),
    ("s", "plain", None, str),
    ("empty", "", None, str),
    ("ts1", "2020-01-01T00:00:00", None, str),
    ("ts2", "2020-01-01", None, str),
    ("num", "1.5", None, str),
    ("js", '{"a": 1}', None, str),
    ("unicode", "ünï 名 🚀\x00", None, str),
    ("i8", -5, "int8", int),
    ("u16", 65535, "uint16", int),
    ("i32", 7, "int32", int),
    ("tsn", 1_600_000_000_000_000_000, "timestamp_nanoseconds", int),
    ("nat", -(2**63), "timestamp_nanoseconds", int),
    ("f32", 1.5, "float32", float),
    ("f32i", 2, "float32", float),
    ("f64", 0.25, "float64", float),
    ("fb", True, "bool", bool),
    ("fs", "123", "string", str),
    ("ib", True, "int16", int),
]


@pytest.mark.parametrize(("meta_format", "meta_compression"), META_COMBOS)
def test_kinds_values_and_order_persist_exactly(
    tmp_path, scope_kind, meta_format, meta_compression
):
    path = tmp_path / "store"
    store = atlas.Atlas.create(path, meta_format=meta_format, meta_compression=meta_compression)
    attrs = SCOPES[scope_kind](_new_dataset(store))
    for key, value, dtype, _ in PERSISTED:
        attrs.set(key, value, dtype=dtype)
    attrs.set("i", "overwritten")  # keeps its position, changes type
    store.flush()

    expected = [(key, value) for key, value, _, _ in PERSISTED]
    expected[2] = ("i", "overwritten")
    kinds = {key: kind for key, _, _, kind in PERSISTED}
    kinds["i"] = str
    for handle in (attrs, _reopen(path, scope_kind)):
        got = handle.all()
        assert list(got.items()) == expected
        for key, value in got.items():
            assert type(value) is kinds[key], key
            assert type(handle.get(key)) is kinds[key], key


TIMESTAMP_LIKE = [
    "2020-01-01T00:00:00.123456789Z",
    "2020-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "2020-01-01T00:00:00+00:00",
    "2020-01-01T12:30:00-05:00",
    "2020-01-01T00:00:00",
    "2020-01-01 00:00:00",
    "2020-01-01",
    "1677-09-21T00:12:43.145224192Z",
]


@pytest.mark.parametrize(("meta_format", "meta_compression"), META_COMBOS)
def test_timestamp_looking_strings_stay_strings(
    tmp_path, scope_kind, meta_format, meta_compression
):
    path = tmp_path / "store"
    store = atlas.Atlas.create(path, meta_format=meta_format, meta_compression=meta_compression)
    attrs = SCOPES[scope_kind](_new_dataset(store))
    for i, text in enumerate(TIMESTAMP_LIKE):
        attrs.set(f"s{i}", text)
    attrs.set("forced", 5, dtype="timestamp_nanoseconds")
    store.flush()
    for handle in (attrs, _reopen(path, scope_kind)):
        got = handle.all()
        assert [got[f"s{i}"] for i in range(len(TIMESTAMP_LIKE))] == TIMESTAMP_LIKE
        assert all(type(got[f"s{i}"]) is str for i in range(len(TIMESTAMP_LIKE)))
        assert type(got["forced"]) is int and got["forced"] == 5


SPECIAL_FLOATS = {
    "nan": float("nan"),
    "inf": float("inf"),
    "-inf": float("-inf"),
    "-0.0": -0.0,
    "denormal": 5e-324,
    "max": 1.7976931348623157e308,
    "negative nan": _from_bits(0xFFF8000000000000),
    "nan payload": _from_bits(0x7FF8DEADBEEF0001),
    "negative nan payload": _from_bits(0xFFF0000000000001),
}


@pytest.mark.parametrize(("meta_format", "meta_compression"), META_COMBOS)
def test_special_floats_persist_bit_for_bit(tmp_path, scope_kind, meta_format, meta_compression):
    path = tmp_path / "store"
    store = atlas.Atlas.create(path, meta_format=meta_format, meta_compression=meta_compression)
    attrs = SCOPES[scope_kind](_new_dataset(store))
    for key, value in SPECIAL_FLOATS.items():
        attrs.set(key, value)
    attrs.set("after", "still readable")
    store.flush()

    again = _reopen(path, scope_kind)
    got = again.all()
    assert list(got) == [*SPECIAL_FLOATS, "after"]
    for key, value in SPECIAL_FLOATS.items():
        assert type(got[key]) is float
        assert _bits(got[key]) == _bits(value), key
    assert math.isnan(again.get("nan"))
    assert again.get("inf") == math.inf and again.get("-inf") == -math.inf
    assert again.get("after") == "still readable"


@pytest.mark.parametrize(("meta_format", "meta_compression"), META_COMBOS)
def test_every_float_persists_bit_for_bit(tmp_path, scope_kind, meta_format, meta_compression):
    rng = random.Random(20240501)
    values = []
    while len(values) < 300:
        v = _from_bits(rng.getrandbits(64))
        if math.isfinite(v):
            values.append(v)
    values += [1 / 3, 0.1 + 0.2, 2.0**-1074, 2.0**1023, -(2.0**-1022), 123456789.12345678]

    path = tmp_path / "store"
    store = atlas.Atlas.create(path, meta_format=meta_format, meta_compression=meta_compression)
    attrs = SCOPES[scope_kind](_new_dataset(store))
    for i, v in enumerate(values):
        attrs.set(f"v{i}", v)
    store.flush()

    got = _reopen(path, scope_kind).all()
    mismatched = [
        (v, got[f"v{i}"]) for i, v in enumerate(values) if _bits(got[f"v{i}"]) != _bits(v)
    ]
    assert mismatched == []


# ---------------------------------------------------------------------------
# Per-array attributes specifics
# ---------------------------------------------------------------------------


def test_array_attributes_of_unknown_array_are_key_error(store):
    ds = _new_dataset(store)
    with pytest.raises(KeyError):
        ds.set_array_attribute("missing", "k", 1)
    with pytest.raises(KeyError):
        ds.get_array_attribute("missing", "k")
    with pytest.raises(KeyError):
        ds.array_attributes("missing")


def test_array_attributes_are_per_array(store):
    ds = _new_dataset(store)
    ds.define_array("other", "int8", ["x"], [1])
    ds.set_array_attribute("arr", "units", "m")
    ds.set_array_attribute("other", "units", "s")
    ds.set_array_attribute("other", "scale", 2, dtype="int8")
    assert ds.array_attributes("arr") == {"units": "m"}
    assert ds.array_attributes("other") == {"units": "s", "scale": 2}
    assert ds.get_array_attribute("arr", "scale") is None
    store.flush()
    again = atlas.Atlas.open(store.storage).open_dataset("ds")
    assert again.array_attributes("arr") == {"units": "m"}
    assert list(again.array_attributes("other").items()) == [("units", "s"), ("scale", 2)]


def test_array_attributes_are_visible_through_other_views(store):
    ds = _new_dataset(store)
    ds.set_array_attribute("arr", "k", 1.5)
    assert store.open_dataset("ds").get_array_attribute("arr", "k") == 1.5


def test_array_attributes_of_a_deleted_array_are_key_error(store):
    ds = _new_dataset(store)
    ds.set_array_attribute("arr", "k", 1)
    ds.delete_array("arr")
    with pytest.raises(KeyError):
        ds.array_attributes("arr")
    with pytest.raises(KeyError):
        ds.set_array_attribute("arr", "k", 2)


def test_array_attributes_not_persisted_before_flush(store):
    ds = _new_dataset(store)
    store.flush()
    ds.set_array_attribute("arr", "k", 1)
    assert atlas.Atlas.open(store.storage).open_dataset("ds").array_attributes("arr") == {}
    store.flush()
    assert atlas.Atlas.open(store.storage).open_dataset("ds").array_attributes("arr") == {
        "k": 1
    }


def test_dataset_attributes_not_persisted_before_flush(store):
    ds = _new_dataset(store)
    ds.set_attribute("a", 1)
    store.flush()
    ds.set_attribute("a", 2)
    ds.set_attribute("b", 3)
    assert atlas.Atlas.open(store.storage).open_dataset("ds").attributes() == {"a": 1}
    store.flush()
    assert atlas.Atlas.open(store.storage).open_dataset("ds").attributes() == {"a": 2, "b": 3}
