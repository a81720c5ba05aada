"""``atlas.integrations.cf`` on its own: what ``encode_dataset`` decides for each variable
(the stored form, the on-disk dtype and attributes, the record)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from atlas.dtypes import DTYPES
from atlas.integrations.cf import EncodedVariable, add_fill, encode_dataset


def _dataset() -> xr.Dataset:
    return xr.Dataset(
        {
            "temp": (("z",), np.array([1.5, np.nan, 20.25], dtype="f4"), {"units": "degC"}),
            "lag": (("z",), np.array([1, 2, 3], dtype="timedelta64[s]")),
            "name": (("z",), np.array(["a", "bb", "ccc"], dtype=object)),
        },
        coords={"z": ("z", [0.0, 10.0, 20.0])},
        attrs={"title": "t"},
    )


def test_encode_dataset_chooses_each_variable_form() -> None:
    packed = {"dtype": "int16", "scale_factor": 0.25, "_FillValue": -999}
    enc = encode_dataset(_dataset(), {"temp": packed})
    by_name = {v.name: v for v in enc.variables}
    assert [v.name for v in enc.variables] == ["z", "temp", "lag", "name"]  # coordinates first
    temp = by_name["temp"]
    assert temp.form == "decoded" and temp.data.dtype == np.float32  # physical values
    assert temp.disk_dtype == "int16"
    assert temp.disk_attrs == {"units": "degC", "scale_factor": 0.25, "_FillValue": -999}
    assert type(temp.disk_attrs["_FillValue"]) is np.int16
    assert temp.user_attrs == {"units": "degC"}
    lag = by_name["lag"]
    assert lag.form == "encoded" and lag.data.dtype == np.int64 and lag.disk_attrs["units"] == "seconds"
    assert by_name["name"].strings == "str"
    record = json.loads(enc.record())
    assert record["version"] == 1 and record["user"] == ["title"]
    assert record["variables"]["temp"]["coding"] == ["scale_factor", "_FillValue"]
    assert record["variables"]["temp"]["user"] == ["units"]


def test_encode_dataset_refuses_what_xarray_refuses() -> None:
    ds = _dataset()
    with pytest.raises(KeyError):
        encode_dataset(ds, {"nothing": {"dtype": "int16"}})
    with pytest.raises(ValueError, match="unexpected encoding parameters for variable 'temp'"):
        encode_dataset(ds, {"temp": {"colour": "blue"}})
    with pytest.raises(TypeError, match="encoding must be a dict"):
        encode_dataset(ds, [("temp", {})])  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError, match="'c'"):
        encode_dataset(xr.Dataset({"c": (("z",), np.array([1j, 2j]))}))


def test_add_fill_records_an_explicit_fill_only() -> None:
    def variable(dtype: str, attrs: dict[str, object]) -> EncodedVariable:
        return EncodedVariable("v", xr.Variable(("z",), np.zeros(2, dtype)), "decoded", ("z",), dtype, attrs, {})

    ints = variable("int32", {})
    add_fill(ints, DTYPES["int32"], -1)
    assert ints.disk_attrs["_FillValue"] == -1 and type(ints.disk_attrs["_FillValue"]) is np.int32
    own = variable("int32", {"_FillValue": np.int32(7)})
    add_fill(own, DTYPES["int32"], -1)
    assert own.disk_attrs["_FillValue"] == 7  # the variable's own wins
    floats = variable("float64", {"_FillValue": np.float64("nan")})
    add_fill(floats, DTYPES["float64"], -9.0)
    assert floats.disk_attrs["_FillValue"] == -9.0  # over xarray's NaN default
    default = variable("float64", {})
    add_fill(default, DTYPES["float64"], float("nan"))
    assert default.disk_attrs == {}
