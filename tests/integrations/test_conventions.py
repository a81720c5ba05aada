"""``atlas.integrations.conventions`` on its own: dtypes, fills, how attributes are stored
and read back, and how a dataset's attributes and coordinates are laid out."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import atlas
from atlas.dtypes import DTYPES
from atlas.integrations.conventions import (
    COORDS_ATTR,
    NAT,
    assemble_dataset,
    atlas_dtype,
    attribute_owner,
    coerce_fill,
    coordinates_marker,
    decode_attribute,
    default_fill,
    encode_attribute,
    is_bookkeeping,
    is_default_fill,
    json_attribute,
    sort_attributes,
    split_attributes,
    variable_attribute_key,
)


def test_atlas_dtype() -> None:
    assert atlas_dtype(np.dtype("int16")) == "int16"
    assert atlas_dtype(np.dtype(">f8")) == "float64"
    assert atlas_dtype(np.dtype(bool)) == "bool"
    assert atlas_dtype(np.dtype("datetime64[s]")) == "timestamp_nanoseconds"
    assert atlas_dtype(np.dtype("U3")) == atlas_dtype(np.dtype(object)) == "string"
    for bad in ("float16", "complex64", "timedelta64[ns]"):
        with pytest.raises(NotImplementedError, match="cannot store"):
            atlas_dtype(np.dtype(bad), "TEMP")


def test_fills() -> None:
    f4, i2, ts, s = DTYPES["float32"], DTYPES["int16"], DTYPES["timestamp_nanoseconds"], DTYPES["string"]
    assert coerce_fill(i2, np.array([-999], dtype="i2"), "x") == -999  # a one-element attribute
    assert coerce_fill(ts, np.datetime64("1970-01-01T00:00:01"), "t") == 10**9
    assert coerce_fill(ts, "NaT", "t") == NAT
    assert coerce_fill(s, b"n/a", "s") == "n/a"
    assert coerce_fill(f4, None, "x") is None
    with pytest.raises(OverflowError, match="fill value for variable 'x'"):
        coerce_fill(i2, 70000, "x")
    assert is_default_fill(f4, math.nan) and not is_default_fill(f4, -1.0)
    assert is_default_fill(s, "") and is_default_fill(ts, NAT) and not is_default_fill(i2, 0)
    assert math.isnan(default_fill(f4)) and default_fill(ts) == NAT and default_fill(s) == ""
    assert default_fill(i2) is None


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (np.int32(3), (3, None)),
        (2**63, (2**63, "uint64")),
        (np.float32(0.5), (0.5, None)),
        (True, (True, None)),
        (b"caf\xc3\xa9", ("café", None)),
        ("json:x", ('json:"json:x"', None)),
        (np.array([1, 2]), ("json:[1, 2]", None)),
        ({"a": [1.5]}, ('json:{"a": [1.5]}', None)),
    ],
)
def test_attributes_are_stored_natively_or_as_json(value: object, stored: tuple[object, object]) -> None:
    assert encode_attribute(value) == stored


def test_decode_attribute_inverts_encode() -> None:
    for value in ([1, 2], {"a": None}, "json:x", "plain", 3):
        assert decode_attribute(encode_attribute(value)[0]) == value
    assert decode_attribute("json:{broken") == "json:{broken"  # not JSON: as it is


def test_attribute_keys_of_variables() -> None:
    assert variable_attribute_key("TEMP", "units") == "TEMP.units"
    arrays = {"a", "a.b"}
    assert attribute_owner("a.b.units", arrays) == ("a.b", "units")  # the longest array name
    assert attribute_owner("a.units.x", arrays) == ("a", "units.x")
    assert attribute_owner("title", arrays) is None
    assert is_bookkeeping("_atlas_source") and not is_bookkeeping("_FillValue")


def test_sort_attributes() -> None:
    attrs = {"title": "t", "a.units": "m", "_atlas_size": 3, "a.flags": "json:[1, 2]", "b.x": 1}
    own, by_array = sort_attributes(attrs, {"a", "b"})
    assert own == {"title": "t"}
    assert by_array == {"a": {"units": "m", "flags": [1, 2]}, "b": {"x": 1}}
    assert list(by_array["a"]) == ["units", "flags"]


def test_json_attribute() -> None:
    assert json_attribute('["x", "y"]', list) == ["x", "y"]
    assert json_attribute('{"v": 1}', dict) == {"v": 1}
    assert json_attribute('{"v": 1}', list) is None
    assert json_attribute("[", list) is None
    assert json_attribute(["x"], list) is None  # only strings hold JSON
    assert coordinates_marker(["x", "y"]) == '["x", "y"]'


def test_split_attributes_and_assemble(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    v = store.create_dataset("d")
    v.define_array("x", "float64", ["x"], [2])
    v.define_array("temp", "int16", ["x"], [2], fill_value=-1)
    v.define_array("time", "timestamp_nanoseconds", ["time"], [1])
    v.set_array_attribute("temp", "units", "K")
    v.set_attribute("temp.units", "degC")  # the dataset's copy wins
    v.set_attribute("temp.valid", "json:[0, 40]")
    v.set_attribute("title", "profiles")
    v.set_attribute("_atlas_source", "a.nc")
    coords, var_attrs, ds_attrs = split_attributes(v)
    assert coords == ["x", "time"]  # no marker: 1-D arrays named after their dimension
    assert var_attrs == {"x": {}, "temp": {"units": "degC", "valid": [0, 40], "_FillValue": -1}, "time": {}}
    assert ds_attrs == {"title": "profiles"}
    v.set_attribute(COORDS_ATTR, coordinates_marker(["time", "nothing"]))
    assert split_attributes(v)[0] == ["time"]

    variables = {"x": xr.Variable(["x"], [0.0, 1.0]), "temp": xr.Variable(["x"], [1, 2])}
    ds = assemble_dataset(variables, ["x", "time"], {"title": "profiles"})
    assert list(ds.coords) == ["x"] and list(ds.data_vars) == ["temp"] and ds.attrs == {"title": "profiles"}
