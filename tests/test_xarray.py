"""xarray ingest and export: dtypes, fills, attributes, coordinates, dask input, laziness,
failure cleanup, many-dataset stacking and NetCDF round trips (generated and real Argo)."""

from __future__ import annotations

import copy
import json
import math
import warnings
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import atlas
from atlas.core.dataset import DatasetView

ARGO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "argo"


@pytest.fixture
def store(tmp_path: Path) -> atlas.Atlas:
    return atlas.Atlas.create(tmp_path / "s.atlas")


def _simple(n: int = 6) -> xr.Dataset:
    rng = np.random.default_rng(0)
    return xr.Dataset(
        {"temp": (("time", "z"), rng.random((n, 4)).astype("f4"), {"units": "K"})},
        coords={"time": pd.date_range("2001-01-01", periods=n), "z": ("z", np.arange(4.0))},
        attrs={"title": "simple"},
    )


class CountingStorage:
    """Delegates to the real storage and counts ranged reads."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.ranged_reads = 0

    def get_many_ranges(self, requests: Any) -> Any:
        self.ranged_reads += sum(len(r[1]) for r in requests)
        return self._inner.get_many_ranges(requests)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


# ----------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize(
    "values, atlas_dtype, read_dtype",
    [
        *[(np.array([0, 1, -5, 7], dtype=t), t, t) for t in ("int8", "int16", "int32", "int64")],
        *[(np.array([0, 1, 5, 255], dtype=t), t, t) for t in ("uint8", "uint16", "uint32", "uint64")],
        (np.array([1.5, -2.0, np.inf, 3.25], dtype="f4"), "float32", "float32"),
        (np.array([1.5, -2.0, np.inf, 1e300]), "float64", "float64"),
        (np.array([1.5, -2.0], dtype=">f8"), "float64", "float64"),
        (np.array([True, False, True]), "bool", "bool"),
        (np.array(["2000-01-01T00:00:00.123456789", "NaT"], dtype="M8[ns]"), "timestamp_nanoseconds", "M8[ns]"),
        (np.array(["2000-01-01T12:00:00", "1970-01-01", "NaT"], dtype="M8[s]"), "timestamp_nanoseconds", "M8[ns]"),
        (np.array(["2000-01-01T12:00:00.5", "NaT"], dtype="M8[ms]"), "timestamp_nanoseconds", "M8[ns]"),
        (np.array(["2000-01-01", "2261-01-01"], dtype="M8[us]"), "timestamp_nanoseconds", "M8[ns]"),
        (np.array(["2000-01-01", "1900-01-01"], dtype="M8[D]"), "timestamp_nanoseconds", "M8[ns]"),
        (np.array(["a", "héllo", ""]), "string", "O"),
        (np.array([b"ab", b"c"]), "string", "O"),
        (np.array(["x", "yz", "\u00e9\u4e2d"], dtype=object), "string", "O"),
        (np.array([b"raw", b"bytes"], dtype=object), "string", "O"),
    ],
)
def test_dtype_round_trip(store: atlas.Atlas, values: np.ndarray, atlas_dtype: str, read_dtype: str) -> None:
    ds = xr.Dataset({"v": ("i", values)})
    view = store.add_xarray_dataset(ds, "d")
    assert view.array_meta("v")["dtype"] == atlas_dtype
    store.flush()
    out = atlas.Atlas.open(store.location).open_as_xarray_dataset("d")
    got = out["v"].values
    assert got.dtype == np.dtype(read_dtype)
    if values.dtype.kind == "M":
        np.testing.assert_array_equal(got, values.astype("M8[ns]"))
    elif values.dtype.kind == "S" or (values.dtype.kind == "O" and isinstance(values[0], bytes)):
        assert got.tolist() == [b.decode() for b in values.tolist()]
    else:
        np.testing.assert_array_equal(got, values)


def test_datetime_units_converted_to_ns(store: atlas.Atlas) -> None:
    ds = xr.Dataset(coords={"time": pd.date_range("2000-01-01", periods=3, unit="us")})
    assert ds.time.dtype == np.dtype("M8[us]")
    store.add_xarray_dataset(ds, "d")
    assert store.open_dataset("d").read_array("time").dtype == np.dtype("M8[ns]")
    assert store.open_dataset("d").array_fill_value("time") == -(2**63)
    out = store.open_as_xarray_dataset("d")
    assert out.time.dtype == np.dtype("M8[ns]")
    np.testing.assert_array_equal(out.time.values, ds.time.values.astype("M8[ns]"))


def test_datetime_outside_ns_range_is_rejected_and_cleaned_up(store: atlas.Atlas) -> None:
    ds = xr.Dataset({"t": ("i", np.array(["1500-01-01"], dtype="M8[s]"))})
    with pytest.raises(OverflowError):
        store.add_xarray_dataset(ds, "d")
    assert not store.dataset_exists("d")


@pytest.mark.parametrize("dtype", ["float16", "complex64", "complex128", "m8[ns]"])
def test_unsupported_dtype_raises_before_anything_is_written(store: atlas.Atlas, dtype: str) -> None:
    store.add_xarray_dataset(_simple(), "before")
    ds = _simple().assign(bad=("z", np.zeros(4, dtype=dtype)))
    with pytest.raises(NotImplementedError):
        store.add_xarray_dataset(ds, "d")
    assert store.list_datasets() == ["before"]
    assert store.list_arrays() == ["temp", "time", "z"]


def test_zero_d_and_empty_arrays(store: atlas.Atlas) -> None:
    ds = xr.Dataset(
        {"scalar": ((), np.float64(2.5)), "empty": (("a", "b"), np.zeros((0, 3), "i4")),
         "word": ((), np.array("hi", dtype=object))},
        coords={"when": ((), np.datetime64("2020-02-02", "ns"))},
    )
    store.add_xarray_dataset(ds, "d")
    out = store.open_as_xarray_dataset("d")
    assert out.scalar.shape == () and float(out.scalar) == 2.5
    assert isinstance(out.scalar.variable._data, np.ndarray)
    assert out.empty.shape == (0, 3) and out.empty.dtype == np.dtype("i4")
    assert out.word.values[()] == "hi"
    assert out.when.values == np.datetime64("2020-02-02", "ns")
    assert "when" in out.coords


# ----------------------------------------------------------------------------- missing values and fills


def test_nan_nat_and_missing_strings(store: atlas.Atlas) -> None:
    ds = xr.Dataset(
        {
            "f": ("i", np.array([1.0, np.nan, 3.0])),
            "t": ("i", np.array(["2000-01-01", "NaT", "2001-01-01"], dtype="M8[ns]")),
            "s": ("i", np.array(["a", None, np.nan], dtype=object)),
        }
    )
    before = ds.copy(deep=True)
    with pytest.warns(UserWarning, match="2 missing string"):
        view = store.add_xarray_dataset(ds, "d")
    xr.testing.assert_identical(ds, before)  # input untouched (still holds None/NaN)
    assert view.array_fill_value("f") is not None and math.isnan(view.array_fill_value("f"))
    assert view.array_fill_value("t") == -(2**63)
    assert view.array_fill_value("s") == ""
    out = store.open_as_xarray_dataset("d")
    assert np.isnan(out.f.values[1])
    assert np.isnat(out.t.values[1])
    assert out.s.values.tolist() == ["a", "", ""]
    for v in ("f", "t", "s"):
        assert "_FillValue" not in out[v].attrs  # defaults are not shown
    store.flush()
    st = store.open_dataset("d").array_stats("f")
    assert st["null_count"] == 1


def test_missing_strings_take_an_explicit_string_fill(store: atlas.Atlas) -> None:
    ds = xr.Dataset({"s": ("i", np.array(["a", None], dtype=object), {"_FillValue": "N/A"})})
    with pytest.warns(UserWarning, match="'N/A'"):
        store.add_xarray_dataset(ds, "d")
    out = store.open_as_xarray_dataset("d")
    assert out.s.values.tolist() == ["a", "N/A"]
    assert out.s.attrs == {"_FillValue": "N/A"}


def test_no_warning_without_missing_strings(store: atlas.Atlas) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.add_xarray_dataset(xr.Dataset({"s": ("i", np.array(["a", "b"], dtype=object))}), "d")


def test_fill_value_priority(store: atlas.Atlas) -> None:
    ds = xr.Dataset(
        {
            "i": ("x", np.arange(3, dtype="i2"), {"_FillValue": np.int16(-1), "units": "1"}),
            "u": ("x", np.arange(3, dtype="u1")),
            "f": ("x", np.arange(3.0), {"_FillValue": -999.0}),
            "g": ("x", np.arange(3.0, dtype="f4")),
            "b": ("x", np.array([True, False, True])),
            "s": ("x", np.array(["a", "b", "c"])),
            "t": ("x", pd.date_range("2000", periods=3).values),
        }
    )
    # the _FillValue attribute applies and is removed from the stored attributes
    v = store.add_xarray_dataset(ds, "attr")
    assert v.array_fill_value("i") == -1 and isinstance(v.array_fill_value("i"), int)
    assert v.array_fill_value("f") == -999.0
    assert v.array_fill_value("u") is None  # no default for ints
    assert v.array_fill_value("b") is None
    assert "i._FillValue" not in v.attributes() and v.get_attribute("i.units") == "1"
    assert ds.i.attrs["_FillValue"] == -1  # input untouched
    # a bare scalar: int/uint/float variables only, and before _FillValue
    v = store.add_xarray_dataset(ds, "scalar", fill_value=7)
    assert [v.array_fill_value(n) for n in ("i", "u", "f", "g")] == [7, 7, 7.0, 7.0]
    assert v.array_fill_value("b") is None
    assert v.array_fill_value("s") == ""
    assert v.array_fill_value("t") == -(2**63)
    # a dict wins over everything; None disables the default; unknown keys are ignored
    v = store.add_xarray_dataset(ds, "dict", fill_value={"f": None, "g": 0.5, "s": "?", "t": 0, "nope": 3})
    assert v.array_fill_value("f") is None
    assert v.array_fill_value("g") == 0.5
    assert v.array_fill_value("s") == "?"
    assert v.array_fill_value("t") == 0
    assert v.array_fill_value("i") == -1
    # explicit fills come back as _FillValue, defaults do not
    out = store.open_as_xarray_dataset("dict")
    assert out.g.attrs["_FillValue"] == 0.5
    assert out.s.attrs["_FillValue"] == "?"
    assert out.i.attrs == {"units": "1", "_FillValue": -1}
    assert "_FillValue" not in out.f.attrs
    out = store.open_as_xarray_dataset("attr")
    assert out.f.attrs == {"_FillValue": -999.0}
    assert "_FillValue" not in out.g.attrs


def test_bad_fill_values_raise_before_writing(store: atlas.Atlas) -> None:
    ds = xr.Dataset({"i": ("x", np.arange(3, dtype="u1"))})
    with pytest.raises(OverflowError):
        store.add_xarray_dataset(ds, "d", fill_value=-1)
    with pytest.raises(TypeError):
        store.add_xarray_dataset(ds, "d", fill_value={"i": "x"})
    with pytest.raises(TypeError):
        store.add_xarray_dataset(xr.Dataset({"s": ("x", ["a"])}), "d", fill_value={"s": 1})
    assert store.list_datasets() == []


# ----------------------------------------------------------------------------- attributes


ATTRS: dict[str, Any] = {
    "s": "text",
    "i": 42,
    "neg": -(2**62),
    "f": 1.25,
    "nan": float("nan"),
    "b": True,
    "np_i": np.int32(7),
    "np_u": np.uint64(2**64 - 1),
    "np_f": np.float32(0.5),
    "np_b": np.bool_(False),
    "np_s": np.str_("numpy str"),
    "bytes": b"raw",
    "list": [1, 2, 3],
    "tuple": (1.5, "a"),
    "dict": {"a": 1, "b": [True, None]},
    "nested": [{"x": [1, 2]}, "y"],
    "array": np.array([1.5, 2.5]),
    "array2d": np.arange(4, dtype="i2").reshape(2, 2),
    "none": None,
    "empty_list": [],
    "looks_json": "json:[1, 2]",
}

EXPECTED: dict[str, Any] = {
    **ATTRS,
    "np_i": 7,
    "np_u": 2**64 - 1,
    "np_f": 0.5,
    "np_b": False,
    "np_s": "numpy str",
    "bytes": "raw",
    "tuple": [1.5, "a"],
    "array": [1.5, 2.5],
    "array2d": [[0, 1], [2, 3]],
}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def test_attributes_of_every_kind(store: atlas.Atlas) -> None:
    ds = xr.Dataset({"v": ("x", np.arange(2.0), dict(ATTRS))}, attrs=dict(ATTRS))
    view = store.add_xarray_dataset(ds, "d")
    stored = view.attributes()
    assert stored["v.list"] == "json:[1, 2, 3]"
    assert stored["dict"] == 'json:{"a": 1, "b": [true, null]}'
    assert stored["none"] == "json:null"
    assert stored["v.i"] == 42 and stored["b"] is True
    assert view.attribute_dtypes()["np_u"] == "uint64"
    assert json.loads(stored["_pyatlas_coords"]) == []
    store.flush()
    out = atlas.Atlas.open(store.location).open_as_xarray_dataset("d")
    for attrs in (out.attrs, out.v.attrs):
        assert set(attrs) == set(EXPECTED)
        for k, want in EXPECTED.items():
            assert _same(attrs[k], want), (k, attrs[k], want)


def test_variable_attribute_keys_and_dotted_names(store: atlas.Atlas) -> None:
    ds = xr.Dataset(
        {
            "v": ("x", np.arange(2.0), {"units": "m", "a.b": 1}),
            "v.qc": ("x", np.arange(2, dtype="i1"), {"meaning": "flags"}),
        },
        attrs={"v.c": "lands on v", "plain": 1, "other.thing": "stays"},
    )
    view = store.add_xarray_dataset(ds, "d")
    assert view.get_attribute("v.units") == "m"
    assert view.get_attribute("v.qc.meaning") == "flags"
    out = store.open_as_xarray_dataset("d")
    assert out.attrs == {"plain": 1, "other.thing": "stays"}
    assert out.v.attrs == {"units": "m", "a.b": 1, "c": "lands on v"}
    assert out["v.qc"].attrs == {"meaning": "flags"}


def test_array_attributes_show_on_variables(store: atlas.Atlas) -> None:
    view = store.add_xarray_dataset(_simple(), "d")
    view.set_array_attribute("temp", "comment", "set natively")
    assert store.open_as_xarray_dataset("d").temp.attrs == {"units": "K", "comment": "set natively"}


# ----------------------------------------------------------------------------- coordinates


def test_coordinates_round_trip(store: atlas.Atlas) -> None:
    ds = xr.Dataset(
        {"temp": (("y", "x"), np.ones((2, 3)))},
        coords={
            "y": [10, 20],
            "x": ("x", np.array(["a", "b", "c"]), {"long_name": "letters"}),
            "lon": (("y", "x"), np.arange(6.0).reshape(2, 3)),  # non-index coordinate
            "station": ((), "S1"),  # scalar coordinate
            "z": ("y", [1.0, 2.0]),  # 1-D non-index coordinate on another dim
        },
    )
    view = store.add_xarray_dataset(ds, "d")
    assert view.list_arrays() == ["y", "x", "lon", "station", "z", "temp"]
    assert json.loads(view.get_attribute("_pyatlas_coords")) == ["y", "x", "lon", "station", "z"]
    out = store.open_as_xarray_dataset("d")
    assert set(out.coords) == {"y", "x", "lon", "station", "z"}
    assert set(out.data_vars) == {"temp"}
    assert "_pyatlas_coords" not in out.attrs
    xr.testing.assert_identical(out, ds.assign_coords(x=ds.x.astype(object)))


def test_coordinates_without_marker_follow_the_dimension_rule(store: atlas.Atlas) -> None:
    view = store.create_dataset("raw")
    view.define_array("x", "float64", ["x"], [3])
    view.define_array("lat", "float64", ["x"], [3])
    view.define_array("v", "float64", ["x"], [3])
    out = store.open_as_xarray_dataset("raw")
    assert list(out.coords) == ["x"]
    assert set(out.data_vars) == {"lat", "v"}


def test_a_variable_named_like_its_dimension_but_not_a_coordinate(store: atlas.Atlas) -> None:
    ds = xr.Dataset({"v": ("x", [1.0, 2.0])})
    view = store.add_xarray_dataset(ds, "d")
    assert view.get_attribute("_pyatlas_coords") == "[]"


# ----------------------------------------------------------------------------- dask input and chunks


def test_chunk_shape_from_dask_and_override(store: atlas.Atlas) -> None:
    data = da.arange(100, chunks=30).reshape(10, 10).rechunk((4, 3))
    ds = xr.Dataset({"a": (("r", "c"), data), "b": (("r", "c"), np.zeros((10, 10)))})
    v = store.add_xarray_dataset(ds, "auto")
    assert v.array_meta("a")["chunk_shape"] == [4, 3]
    assert v.array_meta("b")["chunk_shape"] == [10, 10]
    v = store.add_xarray_dataset(ds, "over", chunks={"a": (5, 5), "b": [2, 10], "unknown": (1,)})
    assert v.array_meta("a")["chunk_shape"] == [5, 5]
    assert v.array_meta("b")["chunk_shape"] == [2, 10]
    np.testing.assert_array_equal(v.read_array("a"), np.arange(100).reshape(10, 10))
    with pytest.raises(ValueError):
        store.add_xarray_dataset(ds, "bad", chunks={"a": (5,)})
    assert not store.dataset_exists("bad")


def test_dask_input_is_streamed_one_block_at_a_time(store: atlas.Atlas) -> None:
    rng = np.random.default_rng(3)
    values = rng.random((50, 40)).astype("f4")
    data = da.from_array(values, chunks=(13, 7))  # irregular edges, many blocks
    times = da.from_array(np.arange(50).astype("M8[s]"), chunks=11)
    words = da.from_array(np.array([f"w{i}" if i % 7 else None for i in range(50)], dtype=object), chunks=20)
    ds = xr.Dataset({"v": (("a", "b"), data), "t": ("a", times), "w": ("a", words)})
    computed: list[int] = []

    def counting_get(dsk: Any, keys: Any, **kwargs: Any) -> Any:
        computed.append(len(list(dask.core.flatten(keys))))
        return dask.get(dsk, keys, **kwargs)

    with dask.config.set(scheduler=counting_get), pytest.warns(UserWarning, match="8 missing"):
        view = store.add_xarray_dataset(ds, "d")
    assert max(computed) == 1  # never more than one block per compute
    assert len(computed) == data.npartitions + times.npartitions + words.npartitions
    assert view.array_meta("v")["chunk_shape"] == [13, 7]
    store.flush()
    out = atlas.Atlas.open(store.location).open_as_xarray_dataset("d")
    np.testing.assert_array_equal(out.v.values, values)
    np.testing.assert_array_equal(out.t.values, np.arange(50).astype("M8[s]").astype("M8[ns]"))
    assert out.w.values.tolist() == [f"w{i}" if i % 7 else "" for i in range(50)]


# ----------------------------------------------------------------------------- errors and cleanup


def test_errors_leave_nothing_behind(store: atlas.Atlas) -> None:
    store.add_xarray_dataset(_simple(), "d")
    store.flush()
    with pytest.raises(FileExistsError):
        store.add_xarray_dataset(_simple(), "d")
    for bad in ("", "a/b", "_hidden", ".", ".."):
        with pytest.raises(ValueError):
            store.add_xarray_dataset(_simple(), bad)
    for bad_var in ("_x", "a/b"):
        with pytest.raises(ValueError):
            store.add_xarray_dataset(xr.Dataset({bad_var: ("i", [1.0])}), "e")
    with pytest.raises(TypeError):
        store.add_xarray_dataset({"not": "a dataset"}, "e")  # type: ignore[arg-type]
    assert store.list_datasets() == ["d"]


def _boom(block: np.ndarray) -> np.ndarray:
    if block[0, 0] >= 40:
        raise RuntimeError("boom in a later block")
    return block


def test_failure_part_way_deletes_the_new_dataset(store: atlas.Atlas) -> None:
    store.add_xarray_dataset(_simple(), "keep")
    store.flush()
    data = da.arange(100.0, chunks=20).reshape(10, 10).rechunk((2, 10)).map_blocks(_boom)
    ds = _simple().assign(late=(("p", "q"), data))
    with pytest.raises(RuntimeError, match="boom"):
        store.add_xarray_dataset(ds, "new")
    assert store.list_datasets() == ["keep"]
    assert store.list_arrays() == ["temp", "time", "z"]
    # a bad string element fails inside write_array, after other arrays were written
    bad = xr.Dataset({"ok": ("i", [1.0, 2.0]), "s": ("i", np.array(["a", 3], dtype=object))})
    with pytest.raises(TypeError):
        store.add_xarray_dataset(bad, "new")
    assert not store.dataset_exists("new")
    store.flush()
    again = atlas.Atlas.open(store.location)
    assert again.list_datasets() == ["keep"]
    assert again.list_arrays() == ["temp", "time", "z"]
    # the name is free again
    store.add_xarray_dataset(_simple(), "new")
    xr.testing.assert_identical(store.open_as_xarray_dataset("new"), _simple())


def test_input_dataset_is_not_mutated(store: atlas.Atlas) -> None:
    ds = _simple()
    ds.temp.attrs["_FillValue"] = np.float32(-1.0)
    ds.temp.attrs["list"] = [1, 2]
    ds.attrs["nested"] = {"a": [1]}
    ds = ds.assign(s=("time", np.array(["a", None, "b", "c", None, "d"], dtype=object)))
    snapshot = copy.deepcopy(ds)
    with pytest.warns(UserWarning):
        store.add_xarray_dataset(ds, "d")
    xr.testing.assert_identical(ds, snapshot)
    assert ds.temp.attrs == snapshot.temp.attrs
    assert ds.time.dtype == snapshot.time.dtype


# ----------------------------------------------------------------------------- reading back, laziness


def test_return_value_and_aliases(store: atlas.Atlas) -> None:
    view = store.add_xr_dataset(_simple(), "d")
    assert isinstance(view, DatasetView) and view.name == "d"
    xr.testing.assert_identical(store.to_xarray("d"), _simple())
    many = store.to_xarray_many(["d"])
    assert many.temp.shape == (1, 6, 4)
    assert atlas.Atlas.add_xr_dataset is atlas.Atlas.add_xarray_dataset
    assert atlas.Atlas.to_xarray is atlas.Atlas.open_as_xarray_dataset
    assert atlas.Atlas.to_xarray_many is atlas.Atlas.open_as_many_xarray_dataset


def test_open_missing_dataset_raises_keyerror(store: atlas.Atlas) -> None:
    with pytest.raises(KeyError):
        store.open_as_xarray_dataset("nope")


def test_chunked_arrays_come_back_lazy_one_task_per_chunk(store: atlas.Atlas) -> None:
    values = np.arange(7 * 10, dtype="i4").reshape(7, 10)
    ds = xr.Dataset(
        {"grid": (("a", "b"), values), "whole": ("b", np.arange(10.0)), "zero": ((), 1.0),
         "times": ("a", np.arange(7).astype("M8[D]")), "words": ("a", [f"w{i}" for i in range(7)])},
    )
    store.add_xarray_dataset(ds, "d", chunks={"grid": (3, 4), "times": (2,), "words": (5,)})
    store.flush()
    reopened = atlas.Atlas.open(store.location)
    counting = CountingStorage(reopened._storage)
    reopened._storage = counting
    calls: list[Any] = []
    orig = DatasetView.read_array

    def counted(self: DatasetView, name: str, start: Any = None, shape: Any = None) -> Any:
        calls.append((name, start, shape))
        return orig(self, name, start, shape)

    DatasetView.read_array = counted  # type: ignore[method-assign]
    try:
        out = reopened.open_as_xarray_dataset("d")
        eager = {c[0] for c in calls}
        assert eager == {"whole", "zero"}  # one-chunk and 0-D arrays are numpy
        calls.clear()
        reads_before = counting.ranged_reads
        grid = out.grid.data
        assert isinstance(grid, da.Array)
        assert grid.chunks == ((3, 3, 1), (4, 4, 2))  # mirrors the grid, short edges
        assert len(dict(grid.__dask_graph__())) == 9 + 1  # one task per chunk (+ the source)
        assert isinstance(out.whole.variable._data, np.ndarray)
        assert isinstance(out.zero.variable._data, np.ndarray)
        assert isinstance(out.times.data, da.Array) and isinstance(out.words.data, da.Array)
        _ = out.grid.attrs, out.grid.shape, out.grid.dtype, repr(out)
        assert calls == [] and counting.ranged_reads == reads_before  # nothing read yet
        np.testing.assert_array_equal(grid.compute(), values)
        assert len(calls) == 9
        assert counting.ranged_reads > reads_before
        calls.clear()
        assert int(out.grid[4, 9]) == values[4, 9]
        assert len(calls) == 1  # one chunk read for one cell
        assert out.times.dtype == np.dtype("M8[ns]")
        np.testing.assert_array_equal(out.times.values, np.arange(7).astype("M8[D]").astype("M8[ns]"))
        assert out.words.values.tolist() == [f"w{i}" for i in range(7)]
    finally:
        DatasetView.read_array = orig  # type: ignore[method-assign]


def test_lazy_arrays_see_buffered_data_and_run_on_threads(store: atlas.Atlas) -> None:
    values = np.random.default_rng(5).random((64, 64))
    store.add_xarray_dataset(xr.Dataset({"g": (("a", "b"), values)}), "d", chunks={"g": (8, 8)})
    out = store.open_as_xarray_dataset("d")  # nothing flushed yet
    with dask.config.set(scheduler="threads", num_workers=4):
        np.testing.assert_array_equal(out.g.values, values)
        assert float(out.g.sum().compute()) == pytest.approx(values.sum())


# ----------------------------------------------------------------------------- many datasets


def test_open_as_many(store: atlas.Atlas) -> None:
    rng = np.random.default_rng(1)
    firsts = []
    for i in range(4):
        ds = _simple().assign(temp=lambda d: d.temp * 0 + rng.random(d.temp.shape).astype("f4"))
        ds = ds.assign(label=("time", np.array([f"p{i}-{j}" for j in range(6)], dtype=object)))
        ds.attrs["index"] = i
        ds.temp.attrs["units"] = f"K{i}"
        store.add_xarray_dataset(ds, f"p{i}", chunks={"temp": (2, 2)})
        firsts.append(ds)
    names = ["p2", "p0", "p3"]
    out = store.open_as_many_xarray_dataset(names)
    assert out.temp.dims == ("dataset", "time", "z")
    assert out.temp.shape == (3, 6, 4)
    assert isinstance(out.temp.variable._data, np.ndarray)  # eager
    for k, n in enumerate(names):
        np.testing.assert_array_equal(out.temp.values[k], firsts[int(n[1])].temp.values)
    assert out.label.values[1].tolist() == [f"p0-{j}" for j in range(6)]
    assert out.dataset.values.tolist() == names
    assert out.attrs == {"title": "simple", "index": 2}
    assert out.temp.attrs == {"units": "K2"}
    np.testing.assert_array_equal(out.time.values, _simple().time.values)
    other = store.open_as_many_xarray_dataset(["p1"], concat_dim="profile", parallel=False)
    assert other.temp.dims == ("profile", "time", "z")
    assert other.profile.values.tolist() == ["p1"]


def test_open_as_many_errors(store: atlas.Atlas) -> None:
    store.add_xarray_dataset(_simple(), "a")
    store.add_xarray_dataset(_simple().drop_vars("temp").assign(other=("z", np.zeros(4))), "b")
    with pytest.raises(ValueError):
        store.open_as_many_xarray_dataset([])
    with pytest.raises(KeyError):
        store.open_as_many_xarray_dataset(["missing", "a"])
    with pytest.raises(KeyError):
        store.open_as_many_xarray_dataset(["a", "b"])
    with pytest.raises(KeyError):
        store.open_as_many_xarray_dataset(["a", "missing"])
    with pytest.raises(ValueError):
        store.add_xarray_dataset(_simple(3), "short")
        store.open_as_many_xarray_dataset(["a", "short"])


# ----------------------------------------------------------------------------- accessor


def test_accessor_writes(store: atlas.Atlas, tmp_path: Path) -> None:
    ds = _simple()
    view = ds.atlas.write(store, "via_accessor", chunks={"temp": (3, 2)})
    assert view.array_meta("temp")["chunk_shape"] == [3, 2]
    xr.testing.assert_identical(store.open_as_xarray_dataset("via_accessor"), ds)
    store.flush()
    ds.atlas.write(store.location, "by_path")  # opens, writes and flushes
    assert atlas.Atlas.open(store.location).dataset_exists("by_path")


def test_accessor_registers_without_importing_xarray_at_import_atlas() -> None:
    import subprocess
    import sys

    code = (
        "import sys, atlas\n"
        "assert 'xarray' not in sys.modules, 'import atlas pulled in xarray'\n"
        "import xarray as xr\n"
        "xr.backends.list_engines()\n"  # loads the atlas engine, which registers ds.atlas
        "assert hasattr(xr.Dataset(), 'atlas')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- NetCDF round trips


def _normalise(ds: xr.Dataset) -> xr.Dataset:
    """What Atlas documents as changing: bytes become str, missing strings the fill ``""``.

    Attribute values are compared as plain Python values (numpy scalars and arrays as
    ``int``/``float``/lists), since non-scalar attributes are stored as JSON.
    """
    variables = {}
    for name, var in ds.variables.items():
        data = var.values
        if data.dtype.kind in "OSU":
            flat = [
                "" if v is None or (isinstance(v, float) and math.isnan(v))
                else v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                for v in data.ravel().tolist()
            ]
            data = np.empty(var.shape, dtype=object)
            data.ravel()[:] = flat
        attrs = {k: _plain(v) for k, v in var.attrs.items()}
        variables[name] = xr.Variable(var.dims, data, attrs)
    coords = {k: variables[k] for k in ds.coords}
    data_vars = {k: v for k, v in variables.items() if k not in coords}
    return xr.Dataset(data_vars, coords=coords, attrs={k: _plain(v) for k, v in ds.attrs.items()})


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist() if v.size != 1 else v.item()
    if isinstance(v, np.generic):
        return v.item()
    return v


def _netcdf_round_trip(store: atlas.Atlas, original: xr.Dataset, name: str, tmp_path: Path) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # missing strings in real files
        store.add_xarray_dataset(original, name)
    back = store.open_as_xarray_dataset(name)
    out = tmp_path / f"{name}.nc"
    back.to_netcdf(out)
    with xr.open_dataset(out) as again:
        return again.load()


def _generated(path: Path, fmt: str) -> Path:
    ds = xr.Dataset(
        {
            "temp": (("time", "depth"), np.random.default_rng(2).random((5, 3)).astype("f4"),
                     {"units": "degC", "valid_range": np.array([-5.0, 40.0], "f4"), "long_name": "T"}),
            "count": (("time",), np.array([1, 2, 3, 4, 5], "i4"), {"flag_values": np.array([1, 2], "i1")}),
            "qc": (("time",), np.array(["good", "bad", "good", "", "x"], dtype=object)),
            "when": (("time",), np.array(["2010-01-01", "NaT", "2011-06-01", "2012-01-01", "2013-01-01"], "M8[ns]")),
        },
        coords={
            "time": pd.date_range("2020-01-01", periods=5, unit="ns"),
            "depth": ("depth", [0.0, 10.0, 20.0], {"positive": "down"}),
            "lat": ("time", np.linspace(-10, 10, 5)),
        },
        attrs={"title": "generated", "version": np.int16(3), "scale": 0.5},
    )
    ds.temp.values[1, 1] = np.nan
    ds.temp.encoding["_FillValue"] = np.float32(-999.0)
    ds.to_netcdf(path, format=fmt)
    return path


@pytest.mark.parametrize(
    "engine, fmt", [("netcdf4", "NETCDF4"), ("netcdf4", "NETCDF3_64BIT"), ("h5netcdf", "NETCDF4")]
)
def test_generated_netcdf_round_trip(store: atlas.Atlas, tmp_path: Path, engine: str, fmt: str) -> None:
    if engine == "h5netcdf":
        pytest.importorskip("h5py", reason="h5netcdf needs h5py, which is not installed")
    path = _generated(tmp_path / "gen.nc", fmt)
    with xr.open_dataset(path, engine=engine) as original:
        original = original.load()
    again = _netcdf_round_trip(store, original, "gen", tmp_path)
    xr.testing.assert_identical(_normalise(again), _normalise(original))
    assert list(again.temp.dims) == ["time", "depth"]
    assert set(again.coords) == {"time", "depth", "lat"}
    assert np.isnat(again.when.values[1])


def test_netcdf_opened_lazily_is_read_in_slabs(store: atlas.Atlas, tmp_path: Path) -> None:
    path = tmp_path / "big.nc"
    xr.Dataset({"v": (("a", "b"), np.arange(200 * 50, dtype="f8").reshape(200, 50))}).to_netcdf(path)
    import atlas.integrations.xarray as axr

    old = axr.STREAM_BYTES
    axr.STREAM_BYTES = 8 * 50 * 20  # 20 rows per slab
    try:
        with xr.open_dataset(path) as lazy:
            view = store.add_xarray_dataset(lazy, "big", chunks={"v": (10, 50)})
    finally:
        axr.STREAM_BYTES = old
    np.testing.assert_array_equal(view.read_array("v"), np.arange(200 * 50).reshape(200, 50))


def _argo_files(n_per_dac: int) -> list[Path]:
    if not ARGO.is_dir():
        pytest.skip(f"real Argo sample not found at {ARGO}")
    files: list[Path] = []
    for dac in sorted(p for p in ARGO.iterdir() if p.is_dir()):
        # profiles only: the floats' _prof, _meta, _tech and _Rtraj files sit beside profiles/
        files.extend(sorted(dac.glob("*/profiles/*.nc"))[:n_per_dac])
    if not files:
        pytest.skip(f"no Argo profiles under {ARGO}")
    return files


def test_argo_profiles_round_trip(store: atlas.Atlas, tmp_path: Path) -> None:
    files = _argo_files(1)  # one profile of each data centre
    originals = {}
    for i, f in enumerate(files):
        with xr.open_dataset(f) as ds:
            originals[f"argo_{i}"] = ds.load()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            store.add_xarray_dataset(originals[f"argo_{i}"], f"argo_{i}")
    store.flush()
    reopened = atlas.Atlas.open(store.location)
    saw_bytes = False
    for name, original in originals.items():
        back = reopened.open_as_xarray_dataset(name)
        assert back.JULD.dtype == np.dtype("M8[ns]")
        assert back.PRES.dtype == original.PRES.dtype
        saw_bytes |= original.DATA_TYPE.values[()].__class__ is bytes
        xr.testing.assert_identical(_normalise(back), _normalise(original))
        out = tmp_path / f"{name}.nc"
        back.to_netcdf(out)
        with xr.open_dataset(out) as again:
            xr.testing.assert_identical(_normalise(again.load()), _normalise(original))
    assert saw_bytes


def test_argo_many_profiles_stack(store: atlas.Atlas) -> None:
    files = _argo_files(2)
    names = []
    for i, f in enumerate(files):
        with xr.open_dataset(f) as ds, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            store.add_xarray_dataset(ds, f"p{i}")
        names.append(f"p{i}")
    stacked = store.open_as_many_xarray_dataset(names[:1] * 3)
    assert stacked.PRES.shape[0] == 3
    assert stacked.DATA_TYPE.shape == (3,)  # 0-D string variables stack to plain str
    assert all(type(v) is str for v in stacked.DATA_TYPE.values.tolist())
    store.flush()
    again = atlas.Atlas.open(store.location).open_as_many_xarray_dataset(names[:2])
    assert all(type(v) is str for v in again.DATA_TYPE.values.tolist())
    juld = store.read_array_across_stacked("JULD", names)
    assert juld.dtype == np.dtype("M8[ns]") and juld.shape[0] == len(names)


def test_lazy_netcdf_input_is_not_loaded_into_the_callers_dataset(store: atlas.Atlas, tmp_path: Path) -> None:
    path = tmp_path / "lazy.nc"
    xr.Dataset({"v": (("a", "b"), np.ones((30, 4)))}).to_netcdf(path)
    with xr.open_dataset(path) as lazy:
        store.add_xarray_dataset(lazy, "d")
        assert not lazy.v.variable._in_memory
