"""Conformance tests for arrays in a ``DatasetView``: dtypes and aliases, ``define_array``,
``write_array``, ``read_array`` / ``read_arrays``, array names and ``delete_array``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import atlas

NUMERIC = {
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
}
CANONICAL = [*NUMERIC, "timestamp_nanoseconds", "string"]
CODECS = ["zstd", "lz4", "none", "uncompressed"]

# What ``read_array`` returns for each canonical dtype.
READ_DTYPE = {
    **{name: np.dtype(t) for name, t in NUMERIC.items()},
    "timestamp_nanoseconds": np.dtype("datetime64[ns]"),
    "string": np.dtype(object),
}


def sample(dtype: str, shape) -> np.ndarray:
    """Distinctive, non-zero sample data in the form ``write_array`` wants."""
    n = int(np.prod(shape, dtype=np.int64))
    if dtype == "string":
        words = ["alpha", "β", "", "日本", "x y", "a\x00b", "🚀"]
        return np.array([words[i % len(words)] + str(i) for i in range(n)], dtype=object).reshape(
            shape
        )
    if dtype == "timestamp_nanoseconds":
        return (np.arange(n, dtype=np.int64) * 1_000_000_007 - 3).reshape(shape)
    t = np.dtype(NUMERIC[dtype])
    if t.kind == "f":
        return (np.arange(n, dtype=t) * t.type(1.5) - t.type(2.25)).reshape(shape)
    info = np.iinfo(t)
    values = [info.max, info.min, 1, 7, info.max - 1, 3]
    return np.array([values[i % len(values)] for i in range(n)], dtype=t).reshape(shape)


def as_read(dtype: str, data: np.ndarray) -> np.ndarray:
    """The array ``read_array`` should return for data written as ``data``."""
    if dtype == "timestamp_nanoseconds":
        return data.view("datetime64[ns]")
    return data


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    assert isinstance(actual, np.ndarray)
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    if expected.dtype == object:
        assert actual.tolist() == expected.tolist()
    else:
        np.testing.assert_array_equal(actual, expected)


@pytest.fixture
def ds(store) -> atlas.DatasetView:
    return store.create_dataset("ds")


# ---------------------------------------------------------------------------
# dtypes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", CANONICAL)
def test_canonical_dtype_write_read(ds, dtype):
    ds.define_array("a", dtype, ["y", "x"], [3, 5], chunk_shape=[2, 2])
    assert ds.array_meta("a")["dtype"] == dtype
    data = sample(dtype, (3, 5))
    ds.write_array("a", [0, 0], data)
    out = ds.read_array("a")
    assert out.dtype == READ_DTYPE[dtype]
    assert_same(out, as_read(dtype, data))


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("dtype", CANONICAL)
def test_canonical_dtype_persists_for_every_codec(tmp_path, dtype, codec):
    path = tmp_path / "store"
    store = atlas.Atlas.create(path, codec=codec)
    ds = store.create_dataset("ds")
    ds.define_array("a", dtype, ["y", "x"], [4, 5], chunk_shape=[3, 2])
    data = sample(dtype, (4, 4))
    ds.write_array("a", [0, 1], data)
    store.flush()

    out = atlas.Atlas.open(path).open_dataset("ds").read_array("a")
    assert out.dtype == READ_DTYPE[dtype]
    np.testing.assert_equal(out.shape, (4, 5))
    assert_same(out[:, 1:], as_read(dtype, data))


ALIASES = [
    ("datetime64[ns]", "timestamp_nanoseconds"),
    ("timestamp_ns", "timestamp_nanoseconds"),
    ("TIMESTAMP_NS", "timestamp_nanoseconds"),
    ("Datetime64[NS]", "timestamp_nanoseconds"),
    ("Timestamp_Nanoseconds", "timestamp_nanoseconds"),
    ("str", "string"),
    ("String", "string"),
    ("STRING", "string"),
    ("FLOAT32", "float32"),
    ("Float64", "float64"),
    ("Int8", "int8"),
    ("INT64", "int64"),
    ("UInt16", "uint16"),
    ("uInt64", "uint64"),
    (" int32 ", "int32"),
    ("\tfloat64\n", "float64"),
    ("  string", "string"),
]


@pytest.mark.parametrize(("alias", "canonical"), ALIASES)
def test_dtype_aliases_report_canonical_name(store, ds, alias, canonical):
    ds.define_array("a", alias, ["x"], [4])
    assert ds.array_meta("a")["dtype"] == canonical
    data = sample(canonical, (4,))
    ds.write_array("a", [0], data)
    assert_same(ds.read_array("a"), as_read(canonical, data))
    store.flush()
    assert ds.array_meta("a")["dtype"] == canonical


@pytest.mark.parametrize("dtype", ["bool", "Bool", "BOOL"])
def test_bool_arrays_are_supported(tmp_path, dtype):
    path = tmp_path / "store"
    store = atlas.Atlas.create(path)
    ds = store.create_dataset("ds")
    ds.define_array("b", dtype, ["x"], [5], chunk_shape=[2])
    assert ds.array_meta("b")["dtype"] == "bool"
    data = np.array([True, False, True], dtype=np.bool_)
    ds.write_array("b", [1], data)
    expected = np.array([False, True, False, True, False])
    assert_same(ds.read_array("b"), expected)
    store.flush()
    assert_same(atlas.Atlas.open(path).open_dataset("ds").read_array("b"), expected)


def test_bool_array_fill_value_and_stats(tmp_path):
    path = tmp_path / "store"
    store = atlas.Atlas.create(path)
    ds = store.create_dataset("ds")
    ds.define_array("b", "bool", ["x"], [4], fill_value=True)
    assert ds.array_fill_value("b") is True
    ds.write_array("b", [0], np.array([False], dtype=np.bool_))
    assert_same(ds.read_array("b"), np.array([False, True, True, True]))
    store.flush()
    stats = ds.array_stats("b")
    assert stats["row_count"] == 4
    assert stats["null_count"] == 3
    assert stats["min"] is False and stats["max"] is False

    ds.define_array("c", "bool", ["x"], [3])
    ds.write_array("c", [0], np.array([True, False, True], dtype=np.bool_))
    store.flush()
    stats = atlas.Atlas.open(path).open_dataset("ds").array_stats("c")
    assert stats["min"] is False
    assert stats["max"] is True
    assert stats["null_count"] == 0


@pytest.mark.parametrize("fill", [1, 0, 1.0, "True"], ids=repr)
def test_bool_fill_value_must_be_bool(ds, fill):
    with pytest.raises(TypeError):
        ds.define_array("b", "bool", ["x"], [2], fill_value=fill)


@pytest.mark.parametrize("dtype", ["bytes", "binary"])
def test_bytes_and_binary_are_not_implemented(ds, dtype):
    with pytest.raises(NotImplementedError):
        ds.define_array("a", dtype, ["x"], [2])
    assert ds.array_meta("a") is None


@pytest.mark.parametrize(
    "dtype",
    [
        "float16",
        "complex64",
        "complex128",
        "i4",
        "<f4",
        "f8",
        "int",
        "float",
        "uint",
        "object",
        "datetime64[us]",
        "datetime64",
        "timestamp",
        "",
        "nonsense",
    ],
)
def test_unknown_dtype_is_value_error(ds, dtype):
    with pytest.raises(ValueError):
        ds.define_array("a", dtype, ["x"], [2])
    assert ds.array_meta("a") is None


@pytest.mark.parametrize("dtype", [5, None, np.dtype("int8"), np.int8, b"int8", ["int8"]], ids=repr)
def test_non_str_dtype_is_type_error(ds, dtype):
    with pytest.raises(TypeError):
        ds.define_array("a", dtype, ["x"], [2])


# ---------------------------------------------------------------------------
# define_array
# ---------------------------------------------------------------------------


def test_array_meta_exact_shape_and_types(ds):
    ds.define_array("a", "float64", ["time", "depth"], [10, 20], chunk_shape=[5, 7])
    meta = ds.array_meta("a")
    assert meta == {
        "dtype": "float64",
        "shape": [10, 20],
        "chunk_shape": [5, 7],
        "dimension_names": ["time", "depth"],
    }
    assert set(meta) == {"dtype", "shape", "chunk_shape", "dimension_names"}
    for key in ("shape", "chunk_shape", "dimension_names"):
        assert type(meta[key]) is list
    assert all(type(v) is int for v in meta["shape"] + meta["chunk_shape"])
    assert all(type(v) is str for v in meta["dimension_names"])
    assert type(meta["dtype"]) is str


def test_array_meta_is_none_for_missing_array(ds):
    assert ds.array_meta("missing") is None


def test_chunk_shape_defaults_to_shape(ds):
    ds.define_array("a", "int32", ["y", "x"], [3, 4])
    assert ds.array_meta("a")["chunk_shape"] == [3, 4]


def test_zero_dimensional_array(tmp_path):
    path = tmp_path / "store"
    store = atlas.Atlas.create(path)
    ds = store.create_dataset("ds")
    ds.define_array("s", "float64", [], [])
    meta = ds.array_meta("s")
    assert meta["shape"] == [] and meta["chunk_shape"] == [] and meta["dimension_names"] == []
    out = ds.read_array("s")
    assert out.shape == () and out == 0.0
    ds.write_array("s", [], np.array(2.5))
    assert ds.read_array("s").shape == ()
    assert ds.read_array("s") == 2.5
    store.flush()
    again = atlas.Atlas.open(path).open_dataset("ds")
    assert again.array_meta("s") == meta
    assert again.read_array("s") == 2.5


def test_zero_length_axis_gets_chunk_extent_zero(ds):
    ds.define_array("a", "int32", ["n", "x"], [0, 4])
    meta = ds.array_meta("a")
    assert meta["shape"] == [0, 4]
    assert meta["chunk_shape"] == [0, 4]
    out = ds.read_array("a")
    assert out.shape == (0, 4) and out.dtype == np.int32


def test_chunk_extent_zero_is_fine_on_an_empty_axis(ds):
    ds.define_array("a", "int32", ["n", "x"], [0, 4], chunk_shape=[0, 2])
    assert ds.array_meta("a")["chunk_shape"] == [0, 2]


def test_second_definition_is_file_exists_error(store, ds):
    ds.define_array("a", "int32", ["x"], [3])
    ds.write_array("a", [0], np.array([1, 2, 3], dtype=np.int32))
    with pytest.raises(FileExistsError):
        ds.define_array("a", "int32", ["x"], [3])
    with pytest.raises(FileExistsError):
        ds.define_array("a", "float64", ["y", "z"], [2, 2])
    # The original array is untouched.
    assert ds.array_meta("a")["dtype"] == "int32"
    np.testing.assert_array_equal(ds.read_array("a"), [1, 2, 3])
    store.flush()
    with pytest.raises(FileExistsError):
        atlas.Atlas.open(store.storage).open_dataset("ds").define_array(
            "a", "int8", ["x"], [1]
        )


def test_same_array_name_in_two_datasets_is_independent(store):
    a = store.create_dataset("a")
    b = store.create_dataset("b")
    a.define_array("v", "int32", ["x"], [3])
    b.define_array("v", "string", ["y", "x"], [2, 2], chunk_shape=[1, 1], fill_value="f")
    a.write_array("v", [0], np.array([1, 2, 3], dtype=np.int32))
    b.write_array("v", [0, 0], np.array([["p", "q"]], dtype=object))
    store.create_dataset("c").define_array("v", "float32", ["t"], [5], chunk_shape=[2])
    store.open_dataset("c").write_array("v", [3], np.array([1.5, 2.5], dtype=np.float32))
    store.flush()
    for handle in (store, atlas.Atlas.open(store.storage)):
        assert_same(handle.open_dataset("a").read_array("v"), np.array([1, 2, 3], dtype=np.int32))
        assert handle.open_dataset("b").read_array("v", [0, 0], [1, 2]).tolist() == [["p", "q"]]
        assert_same(
            handle.open_dataset("c").read_array("v"),
            np.array([0, 0, 0, 1.5, 2.5], dtype=np.float32),
        )
        assert handle.open_dataset("b").array_meta("v")["chunk_shape"] == [1, 1]


def test_negative_shape_is_overflow_error(ds):
    with pytest.raises(OverflowError):
        ds.define_array("a", "int32", ["x"], [-1])
    with pytest.raises(OverflowError):
        ds.define_array("b", "int32", ["x", "y"], [3, -5])


@pytest.mark.parametrize("dims", ["x", "xy"])
def test_string_dims_is_type_error(ds, dims):
    with pytest.raises(TypeError):
        ds.define_array("a", "int32", dims, [3] * len(dims))


def test_tuples_numpy_arrays_and_numpy_ints_are_sequences(ds):
    ds.define_array("t", "int32", ("y", "x"), (3, 4), (2, 2))
    ds.define_array("n", "int32", np.array(["y", "x"]), np.array([3, 4]), np.array([2, 2]))
    ds.define_array(
        "s", "int32", ["y", "x"], [np.int64(3), np.int32(4)], [np.uint8(2), np.int16(2)]
    )
    for name in ("t", "n", "s"):
        meta = ds.array_meta(name)
        assert meta["shape"] == [3, 4]
        assert meta["chunk_shape"] == [2, 2]
        assert meta["dimension_names"] == ["y", "x"]
        assert all(type(v) is int for v in meta["shape"] + meta["chunk_shape"])
        assert all(type(v) is str for v in meta["dimension_names"])


@pytest.mark.parametrize(
    ("dims", "shape", "chunk_shape"),
    [
        (["x"], [3, 4], None),
        (["x", "y"], [3], None),
        ([], [3], None),
        (["x"], [3], [1, 1]),
        (["x", "y"], [3, 4], [2]),
        (["x"], [3], []),
        (["x"], [3], [0]),
        (["x", "y"], [3, 4], [2, 0]),
    ],
)
def test_inconsistent_definition_is_value_error_at_define_time(ds, dims, shape, chunk_shape):
    with pytest.raises(ValueError):
        ds.define_array("a", "int32", dims, shape, chunk_shape=chunk_shape)


def test_list_arrays_is_definition_order_and_redefined_names_go_last(store, ds):
    for name in ["m", "z", "a"]:
        ds.define_array(name, "int8", ["x"], [1])
    assert ds.list_arrays() == ["m", "z", "a"]
    ds.delete_array("m")
    ds.define_array("m", "int8", ["x"], [1])
    assert ds.list_arrays() == ["z", "a", "m"]
    store.flush()
    assert atlas.Atlas.open(store.storage).open_dataset("ds").list_arrays() == ["z", "a", "m"]
    ds.delete_array("z")
    store.flush()
    ds.define_array("z", "float32", ["x"], [2])
    ds.define_array("b", "float32", ["x"], [2])
    store.flush()
    assert atlas.Atlas.open(store.storage).open_dataset("ds").list_arrays() == [
        "a",
        "m",
        "z",
        "b",
    ]


# ---------------------------------------------------------------------------
# Array names
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "/", "a/b", "/a", "a/", "_x", "_", ".", ".."])
def test_invalid_array_name_is_value_error(ds, name):
    with pytest.raises(ValueError):
        ds.define_array(name, "int32", ["x"], [2])
    assert ds.list_arrays() == []


ODD_VALID_NAMES = [
    "a.b",
    "a..b",
    "...",
    "with space",
    " padded ",
    "ünïcödé-名前-🚀",
    "nul\x00inside",
    "#%~\\*",
    "y" * 200,
    "~",
    "x_",
]


@pytest.mark.parametrize("meta_format", ["json", "msgpack"])
def test_unusual_array_names_round_trip(tmp_path, meta_format):
    path = tmp_path / "store"
    store = atlas.Atlas.create(path, meta_format=meta_format)
    ds = store.create_dataset("ds")
    for i, name in enumerate(ODD_VALID_NAMES):
        ds.define_array(name, "int32", ["x"], [2])
        ds.write_array(name, [0], np.array([i, -i], dtype=np.int32))
    assert ds.list_arrays() == ODD_VALID_NAMES
    store.flush()
    reopened = atlas.Atlas.open(path)
    assert reopened.list_arrays() == sorted(ODD_VALID_NAMES)
    again = reopened.open_dataset("ds")
    assert again.list_arrays() == ODD_VALID_NAMES
    for i, name in enumerate(ODD_VALID_NAMES):
        np.testing.assert_array_equal(again.read_array(name), [i, -i])
        assert again.array_meta(name)["dtype"] == "int32"


# ---------------------------------------------------------------------------
# write_array
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", CANONICAL)
def test_block_spanning_many_chunks(store, ds, dtype):
    ds.define_array("a", dtype, ["z", "y", "x"], [5, 7, 9], chunk_shape=[2, 3, 4])
    block = sample(dtype, (4, 5, 7))
    ds.write_array("a", [1, 1, 1], block)
    out = ds.read_array("a")
    assert_same(out[1:5, 1:6, 1:8], as_read(dtype, block))
    store.flush()
    assert_same(ds.read_array("a", [1, 1, 1], [4, 5, 7]), as_read(dtype, block))


def test_later_writes_overwrite_cell_by_cell(store, ds):
    ds.define_array("a", "int64", ["y", "x"], [6, 6], chunk_shape=[4, 4])
    model = np.zeros((6, 6), dtype=np.int64)
    writes = [
        ([0, 0], np.full((6, 6), 1)),
        ([1, 2], np.full((3, 3), 2)),
        ([3, 3], np.arange(9).reshape(3, 3) + 10),
        ([0, 5], np.full((6, 1), 3)),
    ]
    for i, (start, data) in enumerate(writes):
        data = data.astype(np.int64)
        ds.write_array("a", start, data)
        (r, c), (h, w) = start, data.shape
        model[r : r + h, c : c + w] = data
        np.testing.assert_array_equal(ds.read_array("a"), model)
        if i == 1:
            store.flush()
    store.flush()
    np.testing.assert_array_equal(
        atlas.Atlas.open(store.storage).open_dataset("ds").read_array("a"), model
    )


@pytest.mark.parametrize("dtype", ["float64", "string", "timestamp_nanoseconds"])
def test_input_buffer_is_copied(store, ds, dtype):
    ds.define_array("a", dtype, ["x"], [4], chunk_shape=[3])
    data = sample(dtype, (4,))
    expected = as_read(dtype, data.copy())
    ds.write_array("a", [0], data)
    data[:] = data[::-1].copy()
    assert_same(ds.read_array("a"), expected)
    store.flush()
    assert_same(ds.read_array("a"), expected)


@pytest.mark.parametrize("dtype", ["int16", "float32", "string"])
def test_read_only_input_is_fine(ds, dtype):
    ds.define_array("a", dtype, ["x"], [3])
    data = sample(dtype, (3,))
    data.flags.writeable = False
    ds.write_array("a", [0], data)
    assert_same(ds.read_array("a"), data)


def test_string_inputs_object_unicode_and_bytes(ds):
    ds.define_array("s", "string", ["x"], [7])
    ds.write_array("s", [0], np.array(["a", b"b", "é", b"\xc3\xa9"], dtype=object))
    ds.write_array("s", [4], np.array(["héllo", "x"]))  # numpy U
    ds.write_array("s", [6], np.array([b"by"]))  # numpy S
    out = ds.read_array("s")
    assert out.dtype == object
    assert out.tolist() == ["a", "b", "é", "é", "héllo", "x", "by"]
    assert all(type(v) is str for v in out.tolist())


def test_invalid_utf8_bytes_are_decoded_with_replacement(ds):
    ds.define_array("s", "string", ["x"], [2])
    ds.write_array("s", [0], np.array([b"ok\xff", b"\xc3"], dtype=object))
    assert ds.read_array("s").tolist() == ["ok\ufffd", "\ufffd"]
    ds.write_array("s", [0], np.array([b"\xfe\xffz"]))
    assert ds.read_array("s").tolist()[0] == b"\xfe\xffz".decode("utf-8", "replace")


def test_timestamps_accept_int64_and_datetime64_ns_exactly(store, ds):
    ds.define_array("t", "timestamp_nanoseconds", ["x"], [4])
    ds.write_array("t", [0], np.array([1, -(2**63)], dtype=np.int64))
    stamps = np.array(
        ["2020-01-01T00:00:00.123456789", "1677-09-21T00:12:43.145224193"], dtype="datetime64[ns]"
    )
    ds.write_array("t", [2], stamps)
    out = ds.read_array("t")
    assert out.dtype == np.dtype("datetime64[ns]")
    expected = [1, -(2**63), *stamps.view(np.int64).tolist()]
    assert out.view(np.int64).tolist() == expected
    assert np.isnat(out[1])
    store.flush()
    again = atlas.Atlas.open(store.storage).open_dataset("ds").read_array("t")
    assert again.view(np.int64).tolist() == expected


WRONG_DTYPES = [
    ("int8", np.int16),
    ("int16", np.uint16),
    ("int32", np.int64),
    ("int64", np.int32),
    ("int64", np.float64),
    ("uint8", np.int8),
    ("uint32", np.int32),
    ("uint64", np.int64),
    ("float32", np.float64),
    ("float64", np.float32),
    ("float64", np.int64),
    ("timestamp_nanoseconds", np.uint64),
    ("timestamp_nanoseconds", np.float64),
    ("timestamp_nanoseconds", "datetime64[us]"),
    ("timestamp_nanoseconds", "datetime64[s]"),
    ("string", np.int32),
    ("string", np.float64),
]


@pytest.mark.parametrize(("dtype", "given"), WRONG_DTYPES, ids=lambda v: str(v))
def test_wrong_dtype_is_type_error(ds, dtype, given):
    ds.define_array("a", dtype, ["x"], [3])
    before = ds.read_array("a")
    with pytest.raises(TypeError):
        ds.write_array("a", [0], np.ones(2, dtype=given))
    assert_same(ds.read_array("a"), before)


@pytest.mark.parametrize(
    "dtype", ["int16", "int32", "int64", "uint16", "uint32", "uint64", "float32", "float64"]
)
def test_non_native_byte_order_is_type_error(ds, dtype):
    ds.define_array("a", dtype, ["x"], [2])
    swapped = np.dtype(NUMERIC[dtype]).newbyteorder()
    with pytest.raises(TypeError):
        ds.write_array("a", [0], np.ones(2, dtype=swapped))


@pytest.mark.parametrize("dtype", CANONICAL)
def test_python_list_is_type_error(ds, dtype):
    ds.define_array("a", dtype, ["x"], [2])
    value = ["a", "b"] if dtype == "string" else [1, 2]
    with pytest.raises(TypeError):
        ds.write_array("a", [0], value)


@pytest.mark.parametrize("dtype", CANONICAL)
def test_numpy_scalar_is_type_error(ds, dtype):
    ds.define_array("a", dtype, ["x"], [2])
    if dtype == "string":
        scalar = np.str_("a")
    elif dtype == "timestamp_nanoseconds":
        scalar = np.int64(5)
    else:
        scalar = NUMERIC[dtype](1)
    with pytest.raises(TypeError):
        ds.write_array("a", [0], scalar)


@pytest.mark.parametrize("bad", [1, 1.5, None, ["a"], np.int64(3)], ids=repr)
def test_non_str_element_in_string_array_is_type_error(ds, bad):
    ds.define_array("s", "string", ["x"], [2])
    data = np.empty(2, dtype=object)
    data[0] = "fine"
    data[1] = bad
    with pytest.raises(TypeError):
        ds.write_array("s", [0], data)


def _strided():
    return np.arange(8, dtype=np.float64).reshape(2, 4)[:, ::2]


def _fortran():
    return np.asfortranarray(np.arange(4, dtype=np.float64).reshape(2, 2))


def _transposed():
    return np.arange(4, dtype=np.float64).reshape(2, 2).T


@pytest.mark.parametrize("make", [_strided, _fortran, _transposed])
def test_non_c_contiguous_numeric_input_is_value_error(ds, make):
    ds.define_array("a", "float64", ["y", "x"], [4, 4])
    data = make()
    assert not data.flags.c_contiguous
    with pytest.raises(ValueError):
        ds.write_array("a", [0, 0], data)
    np.testing.assert_array_equal(ds.read_array("a"), np.zeros((4, 4)))


@pytest.mark.parametrize(
    ("start", "shape"),
    [
        ([4, 0], (2, 2)),
        ([0, 5], (2, 2)),
        ([5, 0], (1, 1)),
        ([0, 0], (6, 1)),
        ([0, 0], (1, 7)),
        ([10, 10], (1, 1)),
    ],
)
def test_out_of_bounds_write_is_runtime_error(ds, start, shape):
    ds.define_array("a", "int32", ["y", "x"], [5, 6], chunk_shape=[2, 4])
    with pytest.raises(RuntimeError):
        ds.write_array("a", start, np.ones(shape, dtype=np.int32))
    np.testing.assert_array_equal(ds.read_array("a"), np.zeros((5, 6)))


@pytest.mark.parametrize(
    ("start", "shape"),
    [
        ([0], (2, 2)),
        ([0, 0], (2,)),
        ([0, 0, 0], (2, 2, 2)),
        ([0, 0, 0], (2, 2)),
        ([0, 0], ()),
        ([], (2, 2)),
    ],
)
def test_rank_mismatch_is_runtime_error(ds, start, shape):
    ds.define_array("a", "int32", ["y", "x"], [5, 6])
    with pytest.raises(RuntimeError):
        ds.write_array("a", start, np.ones(shape, dtype=np.int32))


def test_negative_offset_is_overflow_error(ds):
    ds.define_array("a", "int32", ["y", "x"], [5, 6])
    with pytest.raises(OverflowError):
        ds.write_array("a", [-1, 0], np.ones((2, 2), dtype=np.int32))
    with pytest.raises(OverflowError):
        ds.write_array("a", [0, -3], np.ones((2, 2), dtype=np.int32))


def test_write_to_unknown_array_is_key_error(ds):
    with pytest.raises(KeyError):
        ds.write_array("nope", [0], np.ones(2, dtype=np.int32))


def test_zero_size_block_is_a_no_op(store, ds):
    ds.define_array("a", "int32", ["y", "x"], [4, 4], chunk_shape=[2, 2], fill_value=5)
    ds.write_array("a", [1, 1], np.zeros((0, 2), dtype=np.int32))
    ds.write_array("a", [4, 0], np.zeros((0, 4), dtype=np.int32))
    ds.write_array("a", [2, 2], np.zeros((2, 0), dtype=np.int32))
    np.testing.assert_array_equal(ds.read_array("a"), np.full((4, 4), 5))
    store.flush()
    assert ds.array_stats("a") is None


@pytest.mark.parametrize("chunk_shape", [None, [1, 2], [0, 2]])
def test_zero_size_block_on_zero_length_axis_is_a_no_op(store, ds, chunk_shape):
    ds.define_array("a", "int32", ["n", "x"], [0, 4], chunk_shape=chunk_shape)
    ds.write_array("a", [0, 0], np.zeros((0, 4), dtype=np.int32))
    ds.write_array("a", [0, 1], np.zeros((0, 2), dtype=np.int32))
    out = ds.read_array("a")
    assert out.shape == (0, 4)
    store.flush()
    assert ds.read_array("a").shape == (0, 4)


# ---------------------------------------------------------------------------
# read_array / read_arrays
# ---------------------------------------------------------------------------


@pytest.fixture
def grid(ds) -> np.ndarray:
    data = np.arange(30, dtype=np.int32).reshape(5, 6)
    ds.define_array("g", "int32", ["y", "x"], [5, 6], chunk_shape=[2, 4])
    ds.write_array("g", [0, 0], data)
    return data


def test_read_missing_array_is_none(ds):
    assert ds.read_array("missing") is None
    assert ds.read_array("missing", [0], [1]) is None


@pytest.mark.parametrize("flushed", [False, True])
def test_full_read_is_fresh_writeable_c_contiguous_copy(store, ds, grid, flushed):
    if flushed:
        store.flush()
    out = ds.read_array("g")
    assert out.flags.c_contiguous
    assert out.flags.writeable
    np.testing.assert_array_equal(out, grid)
    out[:] = -1
    np.testing.assert_array_equal(ds.read_array("g"), grid)
    other = ds.read_array("g")
    assert not np.shares_memory(other, ds.read_array("g"))


def test_string_read_is_fresh_copy(ds):
    ds.define_array("s", "string", ["x"], [2])
    ds.write_array("s", [0], np.array(["a", "b"], dtype=object))
    out = ds.read_array("s")
    assert out.flags.writeable
    out[0] = "changed"
    assert ds.read_array("s").tolist() == ["a", "b"]


def test_window_read(ds, grid):
    np.testing.assert_array_equal(ds.read_array("g", [1, 2], [3, 3]), grid[1:4, 2:5])


def test_start_only_reads_to_the_end(ds, grid):
    np.testing.assert_array_equal(ds.read_array("g", [3, 4]), grid[3:, 4:])
    np.testing.assert_array_equal(ds.read_array("g", start=[1, 0]), grid[1:, :])


def test_shape_only_reads_from_the_origin(ds, grid):
    np.testing.assert_array_equal(ds.read_array("g", None, [2, 3]), grid[:2, :3])
    np.testing.assert_array_equal(ds.read_array("g", shape=[4, 1]), grid[:4, :1])


def test_window_past_the_end_is_clipped(ds, grid):
    out = ds.read_array("g", [3, 4], [10, 10])
    np.testing.assert_array_equal(out, grid[3:13, 4:14])
    assert out.shape == (2, 2)
    assert ds.read_array("g", None, [100, 2]).shape == (5, 2)


@pytest.mark.parametrize(
    ("start", "shape", "expected_shape"),
    [
        ([7, 0], [2, 2], (0, 2)),
        ([0, 9], None, (5, 0)),
        ([5, 0], None, (0, 6)),
        ([5, 6], [1, 1], (0, 0)),
    ],
)
def test_start_past_the_end_is_empty(ds, grid, start, shape, expected_shape):
    out = ds.read_array("g", start, shape)
    assert out.shape == expected_shape
    assert out.dtype == np.int32


def test_window_accepts_tuples_and_numpy_arrays(ds, grid):
    np.testing.assert_array_equal(ds.read_array("g", (1, 1), (2, 2)), grid[1:3, 1:3])
    np.testing.assert_array_equal(
        ds.read_array("g", np.array([1, 1]), np.array([2, 2])), grid[1:3, 1:3]
    )


def test_negative_start_is_overflow_error(ds, grid):
    with pytest.raises(OverflowError):
        ds.read_array("g", [-1, 0], [2, 2])
    with pytest.raises(OverflowError):
        ds.read_array("g", [0, -1])


@pytest.mark.parametrize(
    ("start", "shape"),
    [([0], [2]), ([0], None), (None, [1]), ([0, 0], [1]), ([0], [1, 1]), ([0, 0, 0], None)],
)
def test_window_of_wrong_rank_is_value_error(ds, grid, start, shape):
    with pytest.raises(ValueError):
        ds.read_array("g", start, shape)


def test_read_arrays(ds, grid):
    ds.define_array("f", "float64", ["y", "x"], [2, 2])
    ds.write_array("f", [0, 0], np.array([[1.5, 2.5], [3.5, 4.5]]))
    out = ds.read_arrays(["g", "missing", "f"], [1, 1], [1, 5])
    assert list(out) == ["g", "missing", "f"]
    np.testing.assert_array_equal(out["g"], grid[1:2, 1:6])
    assert out["missing"] is None
    np.testing.assert_array_equal(out["f"], [[4.5]])
    full = ds.read_arrays(["f", "g"])
    np.testing.assert_array_equal(full["g"], grid)
    np.testing.assert_array_equal(full["f"], [[1.5, 2.5], [3.5, 4.5]])
    assert ds.read_arrays(("g",), None, [1, 1])["g"].tolist() == [[0]]


def test_read_arrays_empty_list(ds, grid):
    assert ds.read_arrays([]) == {}
    assert ds.read_arrays([], [0, 0], [1, 1]) == {}


# ---------------------------------------------------------------------------
# delete_array
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("flushed", [False, True])
def test_delete_array_disappears_at_once(store, ds, flushed):
    ds.define_array("a", "float64", ["x"], [3], fill_value=1.5)
    ds.write_array("a", [0], np.array([1.0, 2.0, 3.0]))
    ds.define_array("keep", "int8", ["x"], [1])
    if flushed:
        store.flush()
        assert ds.array_stats("a") is not None
    ds.delete_array("a")
    assert ds.list_arrays() == ["keep"]
    assert store.list_arrays() == ["keep"]
    assert ds.read_array("a") is None
    assert ds.read_arrays(["a"]) == {"a": None}
    assert ds.array_meta("a") is None
    assert ds.array_fill_value("a") is None
    assert ds.array_stats("a") is None
    with pytest.raises(KeyError):
        ds.write_array("a", [0], np.zeros(3))
    with pytest.raises(KeyError):
        ds.delete_array("a")


def test_delete_unknown_array_is_key_error(ds):
    with pytest.raises(KeyError):
        ds.delete_array("never")


@pytest.mark.parametrize(
    "flush_points", [(), ("after_write",), ("after_delete",), ("after_write", "after_delete")]
)
def test_redefined_array_starts_fresh(store, ds, flush_points):
    ds.define_array("a", "float64", ["x"], [4], chunk_shape=[2], fill_value=9.0)
    ds.write_array("a", [0], np.array([1.0, 2.0, 3.0, 4.0]))
    if "after_write" in flush_points:
        store.flush()
    ds.delete_array("a")
    if "after_delete" in flush_points:
        store.flush()
    ds.define_array("a", "float64", ["x"], [4], chunk_shape=[2])
    np.testing.assert_array_equal(ds.read_array("a"), np.zeros(4))
    assert ds.array_fill_value("a") is None
    assert ds.array_stats("a") is None
    store.flush()
    assert ds.array_stats("a") is None
    np.testing.assert_array_equal(ds.read_array("a"), np.zeros(4))
    again = atlas.Atlas.open(store.storage).open_dataset("ds")
    np.testing.assert_array_equal(again.read_array("a"), np.zeros(4))
    ds.write_array("a", [3], np.array([8.0]))
    store.flush()
    np.testing.assert_array_equal(
        atlas.Atlas.open(store.storage).open_dataset("ds").read_array("a"), [0, 0, 0, 8.0]
    )


def test_redefined_array_with_other_schema(store, ds):
    ds.define_array("a", "int32", ["x"], [3])
    ds.write_array("a", [0], np.array([1, 2, 3], dtype=np.int32))
    store.flush()
    ds.delete_array("a")
    ds.define_array("a", "string", ["y", "x"], [2, 2], chunk_shape=[1, 2])
    assert ds.array_meta("a")["dtype"] == "string"
    assert ds.read_array("a").tolist() == [["", ""], ["", ""]]
    ds.write_array("a", [1, 0], np.array([["p", "q"]], dtype=object))
    store.flush()
    again = atlas.Atlas.open(store.storage).open_dataset("ds")
    assert again.read_array("a").tolist() == [["", ""], ["p", "q"]]


def test_every_window_matches_numpy_slicing(ds, grid):
    # Every start/shape window (including clipped ones) matches numpy slicing.
    for r, c, h, w in itertools.product(range(0, 7, 2), range(0, 8, 3), (1, 3, 6), (2, 7)):
        np.testing.assert_array_equal(
            ds.read_array("g", [r, c], [h, w]), grid[r : r + h, c : c + w]
        )
