"""Conformance tests for fill values (``array_fill_value``, unwritten cells, type rules)
and for array statistics (``array_stats``)."""

from __future__ import annotations

import math
import struct
import time

import numpy as np
import pytest

import atlas

INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
FLOAT_DTYPES = ["float32", "float64"]
META_COMBOS = [(fmt, comp) for fmt in ("json", "msgpack") for comp in ("none", "zstd", "lz4")]

NAT = -(2**63)
NEG_NAN = struct.unpack("<d", struct.pack("<Q", 0xFFF8000000000001))[0]


def _sign(x: float) -> float:
    return math.copysign(1.0, x)


@pytest.fixture
def ds(store) -> atlas.DatasetView:
    return store.create_dataset("ds")


# ---------------------------------------------------------------------------
# array_fill_value
# ---------------------------------------------------------------------------


FILL_CASES = [
    ("int8", -128, -128, int),
    ("int16", 12345, 12345, int),
    ("int32", -7, -7, int),
    ("int64", NAT, NAT, int),
    ("int64", 2**63 - 1, 2**63 - 1, int),
    ("uint8", 255, 255, int),
    ("uint16", 0, 0, int),
    ("uint32", 2**32 - 1, 2**32 - 1, int),
    ("uint64", 2**64 - 1, 2**64 - 1, int),
    ("float32", 1.5, 1.5, float),
    ("float32", 3, 3.0, float),
    ("float64", -2.25, -2.25, float),
    ("float64", 2**70, float(2**70), float),
    ("float64", np.float64(0.1), 0.1, float),
    ("timestamp_nanoseconds", NAT, NAT, int),
    ("timestamp_nanoseconds", 1_600_000_000_000_000_000, 1_600_000_000_000_000_000, int),
    ("string", "missing", "missing", str),
    ("string", "", "", str),
    ("string", "é🚀", "é🚀", str),
]


@pytest.mark.parametrize(("dtype", "fill", "expected", "kind"), FILL_CASES, ids=repr)
def test_array_fill_value_returns_the_value_with_python_type(ds, dtype, fill, expected, kind):
    ds.define_array("a", dtype, ["x"], [2], fill_value=fill)
    got = ds.array_fill_value("a")
    assert type(got) is kind
    assert got == expected


def test_array_fill_value_is_none_without_fill_or_array(ds):
    ds.define_array("a", "float64", ["x"], [2])
    assert ds.array_fill_value("a") is None
    ds.define_array("b", "string", ["x"], [2], fill_value=None)
    assert ds.array_fill_value("b") is None
    assert ds.array_fill_value("missing") is None


def test_nan_fill_value(ds):
    ds.define_array("a", "float32", ["x"], [2], fill_value=float("nan"))
    got = ds.array_fill_value("a")
    assert type(got) is float and math.isnan(got)


@pytest.mark.parametrize(("meta_format", "meta_compression"), META_COMBOS)
def test_fill_values_survive_flush_and_reopen(tmp_path, meta_format, meta_compression):
    path = tmp_path / "store"
    store = atlas.Atlas.create(path, meta_format=meta_format, meta_compression=meta_compression)
    ds = store.create_dataset("ds")
    for i, (dtype, fill, _, _) in enumerate(FILL_CASES):
        ds.define_array(f"a{i}", dtype, ["x"], [2], fill_value=fill)
    ds.define_array("nan32", "float32", ["x"], [2], fill_value=float("nan"))
    ds.define_array("nan64", "float64", ["x"], [2], fill_value=float("nan"))
    ds.define_array("inf", "float64", ["x"], [2], fill_value=float("inf"))
    ds.define_array("ninf", "float32", ["x"], [2], fill_value=float("-inf"))
    ds.define_array("none", "int32", ["x"], [2])
    store.flush()

    again = atlas.Atlas.open(path).open_dataset("ds")
    for i, (dtype, _, expected, kind) in enumerate(FILL_CASES):
        got = again.array_fill_value(f"a{i}")
        assert type(got) is kind, (dtype, got)
        assert got == expected, (dtype, got)
    for name in ("nan32", "nan64"):
        assert math.isnan(again.array_fill_value(name))
        assert np.isnan(again.read_array(name)).all()
    assert again.array_fill_value("inf") == math.inf
    assert again.array_fill_value("ninf") == -math.inf
    assert again.array_fill_value("none") is None


# ---------------------------------------------------------------------------
# Unwritten cells
# ---------------------------------------------------------------------------


def _fill_cases_for_reads():
    return [
        ("int8", -3, np.int8),
        ("uint64", 2**64 - 1, np.uint64),
        ("int64", NAT, np.int64),
        ("float32", 2.5, np.float32),
        ("float64", float("nan"), np.float64),
        ("timestamp_nanoseconds", 86_400 * 10**9, None),
    ]


@pytest.mark.parametrize("flushed", [False, True])
@pytest.mark.parametrize(("dtype", "fill", "np_type"), _fill_cases_for_reads(), ids=repr)
def test_unwritten_cells_read_as_the_fill_value(store, ds, dtype, fill, np_type, flushed):
    ds.define_array("a", dtype, ["x"], [7], chunk_shape=[3], fill_value=fill)
    written = np.array([1, 2], dtype=np.int64 if np_type is None else np_type)
    ds.write_array("a", [1], written)
    if flushed:
        store.flush()
        ds = atlas.Atlas.open(store.storage).open_dataset("ds")
    out = ds.read_array("a")
    if dtype == "timestamp_nanoseconds":
        assert out.dtype == np.dtype("datetime64[ns]")
        assert out.view(np.int64).tolist() == [fill, 1, 2, fill, fill, fill, fill]
        return
    expected = np.full(7, fill, dtype=np_type)
    expected[1:3] = written
    assert out.dtype == np.dtype(np_type)
    np.testing.assert_array_equal(out, expected)


def _implicit_default(dtype: str) -> np.ndarray:
    if dtype == "string":
        return np.array([""] * 5, dtype=object)
    if dtype == "timestamp_nanoseconds":
        return np.array(["1970-01-01"] * 5, dtype="datetime64[ns]")
    return np.zeros(5, dtype=dtype)


@pytest.mark.parametrize("flushed", [False, True])
@pytest.mark.parametrize("dtype", [*INT_DTYPES, *FLOAT_DTYPES, "timestamp_nanoseconds", "string"])
def test_implicit_defaults_without_fill_value(store, ds, dtype, flushed):
    ds.define_array("a", dtype, ["x"], [5], chunk_shape=[2])
    expected = _implicit_default(dtype)
    out = ds.read_array("a")
    assert out.dtype == expected.dtype
    assert out.tolist() == expected.tolist()

    # Unwritten cells inside a written chunk and in chunks never written.
    if dtype == "string":
        block = np.array(["w"], dtype=object)
        expected[2] = "w"
    elif dtype == "timestamp_nanoseconds":
        block = np.array([7], dtype=np.int64)
        expected[2] = np.datetime64(7, "ns")
    else:
        block = np.array([7], dtype=dtype)
        expected[2] = 7
    ds.write_array("a", [2], block)
    if flushed:
        store.flush()
        ds = atlas.Atlas.open(store.storage).open_dataset("ds")
    out = ds.read_array("a")
    assert out.dtype == expected.dtype
    assert out.tolist() == expected.tolist()


@pytest.mark.parametrize("flushed", [False, True])
def test_string_arrays_honour_their_fill_value(store, ds, flushed):
    ds.define_array("s", "string", ["y", "x"], [3, 4], chunk_shape=[2, 2], fill_value="NA")
    assert ds.read_array("s").tolist() == [["NA"] * 4] * 3
    ds.write_array("s", [0, 1], np.array([["a", "b"]], dtype=object))
    if flushed:
        store.flush()
        ds = atlas.Atlas.open(store.storage).open_dataset("ds")
    assert ds.read_array("s").tolist() == [
        ["NA", "a", "b", "NA"],
        ["NA", "NA", "NA", "NA"],
        ["NA", "NA", "NA", "NA"],
    ]
    assert ds.read_array("s", [0, 2], [1, 2]).tolist() == [["b", "NA"]]


# ---------------------------------------------------------------------------
# Fill value type rules
# ---------------------------------------------------------------------------

TYPE_ERRORS = [
    *[(d, v) for d in ("int8", "int64", "uint32", "timestamp_nanoseconds") for v in (True, False)],
    *[(d, 1.0) for d in ("int16", "uint8", "timestamp_nanoseconds")],
    ("int32", np.int32(1)),
    ("int64", np.int64(1)),
    ("uint16", np.uint16(3)),
    ("timestamp_nanoseconds", np.int64(1)),
    ("timestamp_nanoseconds", np.datetime64("2020-01-01", "ns")),
    ("int32", "1"),
    ("timestamp_nanoseconds", "2020-01-01"),
    ("float32", True),
    ("float64", False),
    ("float32", "1.5"),
    ("float64", "nan"),
    ("float32", np.float32(1.5)),
    ("float64", np.float32(1.5)),
    ("float64", np.int64(1)),
    ("string", b"bytes"),
    ("string", 1),
    ("string", 1.5),
    ("string", True),
]


@pytest.mark.parametrize(("dtype", "fill"), TYPE_ERRORS, ids=repr)
def test_fill_value_of_wrong_type_is_type_error(ds, dtype, fill):
    with pytest.raises(TypeError):
        ds.define_array("a", dtype, ["x"], [2], fill_value=fill)
    assert ds.array_meta("a") is None


OVERFLOWS = [
    ("int8", 128),
    ("int8", -129),
    ("int16", 2**15),
    ("int32", -(2**31) - 1),
    ("int64", 2**63),
    ("int64", -(2**63) - 1),
    ("uint8", 256),
    ("uint8", -1),
    ("uint16", -1),
    ("uint32", 2**32),
    ("uint64", 2**64),
    ("uint64", -1),
    ("timestamp_nanoseconds", 2**63),
    ("timestamp_nanoseconds", -(2**63) - 1),
]


@pytest.mark.parametrize(("dtype", "fill"), OVERFLOWS, ids=repr)
def test_fill_value_out_of_range_is_overflow_error(ds, dtype, fill):
    with pytest.raises(OverflowError):
        ds.define_array("a", dtype, ["x"], [2], fill_value=fill)


@pytest.mark.parametrize(
    ("fill", "expected"), [(1e300, np.inf), (-1e300, -np.inf), (2**200, np.inf)]
)
def test_float32_fill_overflow_silently_becomes_inf(ds, fill, expected):
    ds.define_array("a", "float32", ["x"], [3], fill_value=fill)
    out = ds.read_array("a")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.full(3, expected, dtype=np.float32))


def test_float_array_accepts_int_fill(ds):
    ds.define_array("a", "float64", ["x"], [2], fill_value=-3)
    np.testing.assert_array_equal(ds.read_array("a"), [-3.0, -3.0])
    assert ds.array_fill_value("a") == -3.0
    assert type(ds.array_fill_value("a")) is float


# ---------------------------------------------------------------------------
# Stats: when they exist
# ---------------------------------------------------------------------------


def test_stats_are_none_before_the_first_flush(ds):
    ds.define_array("a", "int32", ["x"], [3])
    ds.write_array("a", [0], np.array([1, 2, 3], dtype=np.int32))
    assert ds.array_stats("a") is None


def test_stats_are_none_for_missing_arrays(store, ds):
    store.flush()
    assert ds.array_stats("missing") is None


@pytest.mark.parametrize("fill", [None, 1.0, float("nan")])
def test_stats_are_none_for_never_written_arrays(store, ds, fill):
    ds.define_array("a", "float64", ["x"], [3], fill_value=fill)
    store.flush()
    assert ds.array_stats("a") is None
    store.flush()
    assert ds.array_stats("a") is None
    assert atlas.Atlas.open(store.storage).open_dataset("ds").array_stats("a") is None


def test_stats_are_stale_between_flushes(store, ds):
    ds.define_array("a", "int32", ["x"], [10], chunk_shape=[4])
    ds.write_array("a", [0], np.array([5, 0, 3], dtype=np.int32))
    store.flush()
    first = {"row_count": 10, "null_count": 6, "min": 0, "max": 5}
    assert ds.array_stats("a") == first

    ds.write_array("a", [8], np.array([-7, 100], dtype=np.int32))
    assert ds.array_stats("a") == first  # stale until the next flush
    store.flush()
    assert ds.array_stats("a") == {"row_count": 10, "null_count": 4, "min": -7, "max": 100}


def test_stats_via_another_view_and_close(store, ds):
    ds.define_array("a", "int16", ["x"], [2])
    ds.write_array("a", [0], np.array([4, -4], dtype=np.int16))
    store.close()
    assert store.open_dataset("ds").array_stats("a") == {
        "row_count": 2,
        "null_count": 0,
        "min": -4,
        "max": 4,
    }


@pytest.mark.parametrize(("meta_format", "meta_compression"), META_COMBOS)
def test_stats_persist_across_reopen(tmp_path, meta_format, meta_compression):
    path = tmp_path / "store"
    store = atlas.Atlas.create(path, meta_format=meta_format, meta_compression=meta_compression)
    ds = store.create_dataset("ds")
    ds.define_array("f", "float64", ["x"], [6], chunk_shape=[3], fill_value=float("nan"))
    ds.write_array("f", [0], np.array([1.5, np.nan, -2.5]))
    ds.define_array("u", "uint64", ["x"], [2])
    ds.write_array("u", [0], np.array([2**64 - 1, 3], dtype=np.uint64))
    ds.define_array("s", "string", ["x"], [2])
    ds.write_array("s", [0], np.array(["b", "é"], dtype=object))
    ds.define_array("t", "timestamp_nanoseconds", ["x"], [2])
    ds.write_array("t", [0], np.array([NAT, 9], dtype=np.int64))
    ds.define_array("allnull", "int8", ["x"], [2], fill_value=1)
    ds.write_array("allnull", [0], np.array([1, 1], dtype=np.int8))
    store.flush()
    before = {name: ds.array_stats(name) for name in ds.list_arrays()}

    again = atlas.Atlas.open(path).open_dataset("ds")
    for name, stats in before.items():
        got = again.array_stats(name)
        assert got is not None
        assert got["row_count"] == stats["row_count"]
        assert got["null_count"] == stats["null_count"]
        if name == "s":
            assert bytes(got["min"]) == bytes(stats["min"]) == b"b"
            assert bytes(got["max"]) == bytes(stats["max"]) == "é".encode()
        else:
            assert got["min"] == stats["min"] and got["max"] == stats["max"]
    assert again.array_stats("f") == {"row_count": 6, "null_count": 4, "min": -2.5, "max": 1.5}
    assert again.array_stats("u")["max"] == 2**64 - 1
    assert again.array_stats("t")["min"] == NAT
    assert again.array_stats("allnull") == {
        "row_count": 2,
        "null_count": 2,
        "min": None,
        "max": None,
    }


# ---------------------------------------------------------------------------
# Stats: row_count / null_count
# ---------------------------------------------------------------------------


def test_row_count_is_product_of_shape(store, ds):
    ds.define_array("a", "int8", ["z", "y", "x"], [3, 4, 5], chunk_shape=[2, 2, 2])
    ds.write_array("a", [0, 0, 0], np.ones((1, 1, 1), dtype=np.int8))
    ds.define_array("s", "float32", [], [])
    ds.write_array("s", [], np.array(2.5, dtype=np.float32))
    store.flush()
    assert ds.array_stats("a")["row_count"] == 60
    assert ds.array_stats("s") == {"row_count": 1, "null_count": 0, "min": 2.5, "max": 2.5}


def test_null_count_with_fill_counts_unwritten_chunks_and_fill_cells(store, ds):
    ds.define_array("a", "int32", ["x"], [10], chunk_shape=[4], fill_value=7)
    ds.write_array("a", [0], np.array([7, 1], dtype=np.int32))
    store.flush()
    # chunk 0 = [7, 1, fill, fill] -> 3 nulls; chunks 1 and 2 never written -> 6 nulls.
    assert ds.array_stats("a") == {"row_count": 10, "null_count": 9, "min": 1, "max": 1}


def test_null_count_without_fill_counts_only_unwritten_chunks(store, ds):
    ds.define_array("a", "int32", ["x"], [10], chunk_shape=[4])
    ds.write_array("a", [5], np.array([3], dtype=np.int32))
    store.flush()
    # chunk 1 = [0, 3, 0, 0]: the implicit zeros are ordinary values.
    assert ds.array_stats("a") == {"row_count": 10, "null_count": 6, "min": 0, "max": 3}


def test_null_count_2d_chunk_granular(store, ds):
    ds.define_array("a", "float64", ["y", "x"], [5, 5], chunk_shape=[2, 3], fill_value=-1.0)
    ds.write_array("a", [1, 2], np.array([[4.0, -1.0]]))
    store.flush()
    # The block touches chunks (0,0) and (0,1): 6 + 4 cells, 2 written, one equal to fill.
    # Everything else (15 cells) was never written.
    assert ds.array_stats("a") == {"row_count": 25, "null_count": 24, "min": 4.0, "max": 4.0}


def test_all_null_gives_none_min_max(store, ds):
    ds.define_array("a", "uint8", ["x"], [3], fill_value=9)
    ds.write_array("a", [0], np.array([9, 9, 9], dtype=np.uint8))
    store.flush()
    assert ds.array_stats("a") == {"row_count": 3, "null_count": 3, "min": None, "max": None}


def test_huge_sparse_array_null_counting_is_chunk_granular_and_fast(store, ds):
    shape = [1000, 1000, 1000]
    ds.define_array("f", "float64", ["z", "y", "x"], shape, [10, 10, 10], fill_value=float("nan"))
    block = np.full((10, 10, 10), 2.0)
    block[0, 0, 0] = np.nan
    block[0, 0, 1] = -3.0
    ds.write_array("f", [500, 0, 990], block)
    ds.define_array("i", "int16", ["z", "y", "x"], shape, [10, 10, 10])
    ds.write_array("i", [5, 5, 5], np.full((2, 2, 2), 3, dtype=np.int16))
    t0 = time.perf_counter()
    store.flush()
    stats_f = ds.array_stats("f")
    stats_i = ds.array_stats("i")
    elapsed = time.perf_counter() - t0
    assert stats_f == {"row_count": 10**9, "null_count": 10**9 - 999, "min": -3.0, "max": 2.0}
    # The written 2x2x2 block lies in one 10x10x10 chunk, whose other cells are implicit zeros.
    assert stats_i == {"row_count": 10**9, "null_count": 10**9 - 1000, "min": 0, "max": 3}
    assert elapsed < 10.0
    window = ds.read_array("f", [500, 0, 995], [1, 1, 10])
    np.testing.assert_array_equal(window[0, 0, :5], [2.0] * 5)
    assert np.isnan(window[0, 0, 5:]).all()


# ---------------------------------------------------------------------------
# Stats: min / max
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_int_min_max_are_python_ints(store, ds, dtype):
    info = np.iinfo(dtype)
    ds.define_array("a", dtype, ["x"], [4])
    ds.write_array("a", [0], np.array([info.max, info.min, 1, 2], dtype=dtype))
    store.flush()
    stats = ds.array_stats("a")
    assert type(stats["min"]) is int and type(stats["max"]) is int
    assert stats["min"] == int(info.min)
    assert stats["max"] == int(info.max)
    assert type(stats["row_count"]) is int and type(stats["null_count"]) is int


def test_float32_min_max_are_widened_exactly(store, ds):
    ds.define_array("a", "float32", ["x"], [3])
    values = np.array([0.1, 3.4e38, -1e-30], dtype=np.float32)
    ds.write_array("a", [0], values)
    store.flush()
    stats = ds.array_stats("a")
    assert type(stats["min"]) is float and type(stats["max"]) is float
    assert stats["min"] == float(np.float32(-1e-30))
    assert stats["max"] == float(np.float32(3.4e38))


def test_float64_min_max(store, ds):
    ds.define_array("a", "float64", ["x"], [3])
    ds.write_array("a", [0], np.array([5e-324, -1.7976931348623157e308, 0.1]))
    store.flush()
    stats = ds.array_stats("a")
    assert stats["min"] == -1.7976931348623157e308
    assert stats["max"] == 0.1
    assert type(stats["min"]) is float


def test_min_max_skip_null_cells(store, ds):
    ds.define_array("a", "int64", ["x"], [4], fill_value=-100)
    ds.write_array("a", [0], np.array([-100, 5, 100, -100], dtype=np.int64))
    store.flush()
    assert ds.array_stats("a") == {"row_count": 4, "null_count": 2, "min": 5, "max": 100}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_nan_fill_matches_every_nan_including_negative(store, ds, dtype):
    ds.define_array("a", dtype, ["x"], [6], chunk_shape=[3], fill_value=float("nan"))
    values = np.array([1.0, np.nan, NEG_NAN, 4.0], dtype=dtype)
    assert np.signbit(values[2]) and np.isnan(values[2])
    ds.write_array("a", [0], values)
    store.flush()
    # Cells 1, 2 (NaNs), 4, 5 (unwritten, inside the written chunk 1) are null.
    assert ds.array_stats("a") == {"row_count": 6, "null_count": 4, "min": 1.0, "max": 4.0}


@pytest.mark.parametrize("fill", [None, 1.0])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_nan_is_a_value_unless_fill_is_nan(store, ds, dtype, fill):
    ds.define_array("pos", dtype, ["x"], [3], fill_value=fill)
    ds.write_array("pos", [0], np.array([1.5, np.nan, -2.0], dtype=dtype))
    ds.define_array("neg", dtype, ["x"], [3], fill_value=fill)
    ds.write_array("neg", [0], np.array([1.5, NEG_NAN, -2.0], dtype=dtype))
    ds.define_array("both", dtype, ["x"], [4], fill_value=fill)
    ds.write_array("both", [0], np.array([NEG_NAN, 7.0, np.nan, -8.0], dtype=dtype))
    store.flush()

    pos = ds.array_stats("pos")
    assert pos["null_count"] == 0
    assert pos["min"] == -2.0
    assert math.isnan(pos["max"]) and _sign(pos["max"]) == 1.0

    neg = ds.array_stats("neg")
    assert neg["null_count"] == 0
    assert math.isnan(neg["min"]) and _sign(neg["min"]) == -1.0
    assert neg["max"] == 1.5

    both = ds.array_stats("both")
    assert both["null_count"] == 0
    assert math.isnan(both["min"]) and _sign(both["min"]) == -1.0
    assert math.isnan(both["max"]) and _sign(both["max"]) == 1.0


def test_nan_value_counted_with_non_nan_fill(store, ds):
    ds.define_array("a", "float32", ["x"], [3], fill_value=1.0)
    ds.write_array("a", [0], np.array([NEG_NAN, np.nan, 1.0], dtype=np.float32))
    store.flush()
    stats = ds.array_stats("a")
    assert stats["row_count"] == 3 and stats["null_count"] == 1
    assert math.isnan(stats["min"]) and _sign(stats["min"]) == -1.0
    assert math.isnan(stats["max"]) and _sign(stats["max"]) == 1.0


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_zero_fill_also_matches_negative_zero(store, ds, dtype):
    ds.define_array("a", dtype, ["x"], [4], fill_value=0.0)
    ds.write_array("a", [0], np.array([-0.0, 0.0, 2.0, -3.0], dtype=dtype))
    store.flush()
    assert ds.array_stats("a") == {"row_count": 4, "null_count": 2, "min": -3.0, "max": 2.0}


def test_timestamp_without_fill_counts_nat_as_a_value(store, ds):
    ds.define_array("t", "timestamp_nanoseconds", ["x"], [3])
    ds.write_array("t", [0], np.array([5, NAT, 9], dtype=np.int64))
    store.flush()
    assert ds.array_stats("t") == {"row_count": 3, "null_count": 0, "min": NAT, "max": 9}


def test_timestamp_with_nat_fill_treats_nat_as_null(store, ds):
    ds.define_array("t", "timestamp_nanoseconds", ["x"], [5], chunk_shape=[4], fill_value=NAT)
    ds.write_array("t", [0], np.array([5, NAT, -9], dtype=np.int64))
    store.flush()
    # NaT at 1, the unwritten cell 3 in chunk 0 and chunk 1 (cell 4) are null.
    stats = ds.array_stats("t")
    assert stats == {"row_count": 5, "null_count": 3, "min": -9, "max": 5}
    assert type(stats["min"]) is int


def test_string_min_max_are_utf8_bytes(store, ds):
    ds.define_array("s", "string", ["x"], [4])
    ds.write_array("s", [0], np.array(["b", "é", "ab", "z"], dtype=object))
    store.flush()
    stats = ds.array_stats("s")
    assert stats["row_count"] == 4 and stats["null_count"] == 0
    assert bytes(stats["min"]) == b"ab"
    assert bytes(stats["max"]) == "é".encode()
    assert list(bytes(stats["max"])) == [0xC3, 0xA9]


def test_string_implicit_empty_cells_are_values_without_fill(store, ds):
    ds.define_array("s", "string", ["x"], [4], chunk_shape=[2])
    ds.write_array("s", [0], np.array(["b", "é", "ab"], dtype=object))
    store.flush()
    stats = ds.array_stats("s")
    # Chunk 1 = ["ab", ""]: the implicit "" is a value (and the minimum).
    assert stats["null_count"] == 0
    assert bytes(stats["min"]) == b""
    assert bytes(stats["max"]) == "é".encode()


def test_string_fill_cells_are_null(store, ds):
    ds.define_array("s", "string", ["x"], [4], fill_value="x")
    ds.write_array("s", [0], np.array(["x", "y"], dtype=object))
    store.flush()
    stats = ds.array_stats("s")
    # "x" written and the two unwritten cells read as the fill: three nulls.
    assert stats["row_count"] == 4
    assert stats["null_count"] == 3
    assert bytes(stats["min"]) == b"y" and bytes(stats["max"]) == b"y"


def test_stats_after_overwrite_reflect_the_current_data(store, ds):
    ds.define_array("a", "float64", ["x"], [4], chunk_shape=[2], fill_value=0.0)
    ds.write_array("a", [0], np.array([9.0, -9.0, 1.0, 2.0]))
    store.flush()
    ds.write_array("a", [0], np.array([0.0, 0.0, 1.0]))
    store.flush()
    assert ds.array_stats("a") == {"row_count": 4, "null_count": 2, "min": 1.0, "max": 2.0}


@pytest.mark.parametrize("dtype", ["int64", "uint64", "float32"])
def test_stats_leave_the_written_cells_as_they_are(tmp_path, dtype):
    # one dataset, one chunk: the stats see the buffered chunk itself, fill cells included
    store = atlas.Atlas.create(tmp_path / "s")
    d = store.create_dataset("only")
    fill = float("nan") if dtype == "float32" else 7
    d.define_array("x", dtype, ["i"], [6], fill_value=fill)
    values = np.array([1, 7, 3, 7, 9, 2], dtype=dtype)
    if dtype == "float32":
        values[[1, 3]] = np.nan
    d.write_array("x", [0], values)
    store.flush()
    again = atlas.Atlas.open(tmp_path / "s").open_dataset("only")
    assert np.array_equal(again.read_array("x"), values, equal_nan=True)
    stats = again.array_stats("x")
    assert (stats["null_count"], stats["min"], stats["max"]) == (2, 1, 9)
