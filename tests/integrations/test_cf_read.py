"""``atlas.integrations.cf_read`` on its own: the CF record read back, the layout a dataset
opens as (with later edits of the ``"{var}.{attr}"`` copies), and windows re-encoded to
their on-disk form."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import atlas
from atlas.core.dataset import DatasetView
from atlas.integrations.cf_read import decoded_layout, encode_window, read_record
from atlas.integrations.conventions import RECORD_ATTR


@pytest.fixture
def view(tmp_path: Path) -> DatasetView:
    ds = xr.Dataset(
        {
            "temp": (("z",), np.array([1.5, np.nan, 20.25], dtype="f4"), {"units": "degC"}),
            "name": (("z",), np.array(["a", "bb", "ccc"], dtype=object)),
        },
        coords={"z": ("z", [0.0, 10.0, 20.0])},
        attrs={"title": "t"},
    )
    store = atlas.Atlas.create(tmp_path / "s")
    encoding = {"temp": {"dtype": "int16", "scale_factor": 0.25, "_FillValue": -999}, "name": {"dtype": "S1"}}
    return store.add_xarray_dataset(ds, "d", encoding=encoding)


def test_read_record(view: DatasetView) -> None:
    record = read_record(view)
    assert record is not None and set(record["variables"]) == {"z", "temp", "name"}
    view.set_attribute(RECORD_ATTR, '{"variables": []}')
    assert read_record(view) is None  # not a record
    view.set_attribute(RECORD_ATTR, "{")
    assert read_record(view) is None


def test_a_dataset_without_a_record_has_no_layout(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    v = store.create_dataset("plain")
    v.define_array("x", "int32", ["x"], [2])
    assert read_record(v) is None and decoded_layout(v) is None


def test_decoded_layout_merges_later_edits(view: DatasetView) -> None:
    view.set_attribute("temp.units", "K")  # edited after writing: wins over the record
    view.set_attribute("temp.comment", "new")
    view.set_attribute("title", "edited")
    view.define_array("extra", "int32", ["z"], [3], fill_value=-1)  # added through the core API
    layout = decoded_layout(view)
    assert layout is not None
    specs, ds_spec = layout
    temp = specs["temp"]
    assert temp["dtype"] == "int16" and temp["form"] == "decoded"
    assert temp["merged"] == {"units": "K", "scale_factor": 0.25, "_FillValue": -999, "comment": "new"}
    assert ds_spec["attrs"] == {"title": "edited"}
    extra = specs["extra"]
    assert extra["form"] == "plain" and extra["dims"] == ["z"] and extra["merged"] == {"_FillValue": -1}


def test_encode_window_gives_the_on_disk_values(view: DatasetView) -> None:
    layout = decoded_layout(view)
    assert layout is not None
    specs = layout[0]
    temp = encode_window(specs["temp"], ("z",), view.read_array("temp"))
    assert temp.dtype == np.int16 and temp.tolist() == [6, -999, 81]
    chars = encode_window(specs["name"], ("z",), view.read_array("name"))
    assert chars.dtype == np.dtype("S1") and chars.shape == (3, 3)
    assert chars.tolist() == [[b"a", b"", b""], [b"b", b"b", b""], [b"c", b"c", b"c"]]
    z = view.read_array("z")
    assert encode_window(specs["z"], ("z",), z) is z  # nothing to encode: as stored
