"""The xarray conventions, written and read back: dtypes, missing values and fills,
attributes, coordinates."""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from xarray_helpers import simple_dataset as _simple

import atlas

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
        (np.array([b"ab", b"c"]), "string", "S2"),  # bytes come back as bytes, as xarray gives them
        (np.array(["x", "yz", "\u00e9\u4e2d"], dtype=object), "string", "O"),
        (np.array([b"raw", b"bytes"], dtype=object), "string", "S5"),
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
        assert got.tolist() == values.tolist()
        assert view.read_array("v").tolist() == [b.decode() for b in values.tolist()]  # str in scans
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


def test_datetime_outside_ns_range_is_stored_cf_encoded(store: atlas.Atlas) -> None:
    ds = xr.Dataset({"t": ("i", np.array(["1500-01-01", "2000-01-02"], dtype="M8[s]"))})
    view = store.add_xarray_dataset(ds, "d")
    assert view.array_meta("t")["dtype"] == "int64"  # the CF numbers, with their units
    out = store.open_as_xarray_dataset("d")
    assert out.t.encoding["units"].startswith("days since 1500-01-01")
    xr.testing.assert_identical(out, ds)


def test_timedelta_is_stored_cf_encoded(store: atlas.Atlas) -> None:
    ds = xr.Dataset({"d": ("i", np.array([3600, 7200, "NaT"], dtype="m8[s]"))})
    store.add_xarray_dataset(ds, "d")
    out = store.open_as_xarray_dataset("d", decode_timedelta=True)
    xr.testing.assert_identical(out, ds)
    assert out.d.encoding["units"] == "hours"


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
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
        view = store.add_xarray_dataset(ds, "d")
    assert view.read_array("s").tolist() == ["a", "N/A"]
    out = store.open_as_xarray_dataset("d")  # CF-decoded: the fill is masked
    assert out.s.values.tolist() == ["a", np.nan] or out.s.values[1] != out.s.values[1]
    assert out.s.encoding["_FillValue"] == "N/A"
    raw = store.open_as_xarray_dataset("d", mask_and_scale=False)
    assert raw.s.values.tolist() == ["a", "N/A"] and raw.s.attrs == {"_FillValue": "N/A"}


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
    # explicit fills are the variables' _FillValue (in .encoding once CF-decoded), defaults not
    out = store.open_as_xarray_dataset("dict", mask_and_scale=False)
    assert out.g.attrs["_FillValue"] == 0.5
    assert out.s.attrs["_FillValue"] == "?"
    assert out.i.attrs == {"units": "1", "_FillValue": -1}
    assert out.f.attrs == {"_FillValue": -999.0}  # the variable's own attribute, on disk as given
    out = store.open_as_xarray_dataset("dict")
    assert out.g.encoding["_FillValue"] == 0.5 and out.i.encoding["_FillValue"] == -1
    assert out.f.encoding["_FillValue"] == -999.0  # its attribute, decoded as xarray does
    out = store.open_as_xarray_dataset("attr", mask_and_scale=False)
    assert out.f.attrs == {"_FillValue": -999.0}
    assert math.isnan(out.g.attrs["_FillValue"])  # xarray's default fill for floats, as on disk


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
    """Equal values of the same Python kind; numpy scalars and arrays (which the CF record
    gives back typed, as xarray reads a netCDF file) count as their ``tolist()``."""
    if isinstance(a, (bytes, np.bytes_)):
        a = bytes(a).decode()  # bytes attributes may come back as bytes (typed) or str
        b = b.decode() if isinstance(b, bytes) else b
    elif isinstance(a, (np.ndarray, np.generic)):
        a = a.tolist()
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
