"""The catalogue table (``atlas.catalog.table``): typed columns over the live datasets,
from raw manifest records and from materialised datasets alike, and the checks of what
``catalog()`` is asked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import atlas
from atlas.catalog.table import array_attribute, name_list, split_field, table


def test_split_field_names_a_field_of_a_live_array_only() -> None:
    live = {"temp", "sea.level"}
    assert split_field("temp.max", live) == ("temp", "max")
    assert split_field("sea.level.null_count", live) == ("sea.level", "null_count")
    assert split_field("temp.units", live) is None  # not a catalogue field
    assert split_field("depth.max", live) is None  # not an array
    assert split_field("max", live) is None


def test_name_list_keeps_the_first_of_each_name() -> None:
    assert name_list(None, "arrays") is None
    assert name_list(("b", "a", "b"), "arrays") == ["b", "a"]
    with pytest.raises(TypeError, match="arrays must be a list of names, not a str"):
        name_list("temp", "arrays")
    with pytest.raises(TypeError, match="must hold str names, found int"):
        name_list(["a", 1], "attributes")
    with pytest.raises(TypeError, match="not int"):
        name_list(3, "attributes")


def test_array_attribute_takes_any_array_prefix() -> None:
    arrays = {"TEMP": 0, "sea.level": 0}
    assert array_attribute("TEMP.units", arrays)
    assert array_attribute("sea.level.units", arrays)
    assert not array_attribute("station", arrays)
    assert not array_attribute(".TEMP", arrays)
    assert not array_attribute("PSAL.units", arrays)


def _store(path: Path) -> atlas.Atlas:
    s = atlas.Atlas.create(path)
    for i, station in enumerate(["KNMI", "DWD", "MF"]):
        v = s.create_dataset(f"d{i}")
        v.set_attribute("station", station)
        v.set_attribute("TEMP.units", "degC")
        if i != 1:
            v.set_attribute("year", 2020 + i)
        v.define_array("TEMP", "float64", ["z"], [3], fill_value=float("nan"))
        v.write_array("TEMP", [0], np.array([i, i + 1.0, float("nan")]))
    s.flush()
    return atlas.Atlas.open(path)


@pytest.mark.parametrize("touched", [False, True])
def test_table_types_columns_from_records_and_materialised_datasets(tmp_path: Path, touched: bool) -> None:
    s = _store(tmp_path / "s")
    if touched:  # d1 is materialised: its columns come from its state, merged in
        s.open_dataset("d1").attributes()
        s.open_dataset("d1").array_stats("TEMP")
    t = table(s, ["station", "year"], {"TEMP": ["max", "null_count", "shape"]})
    assert t.names == ["d0", "d1", "d2"]
    station = t.attributes["station"]
    assert station.kind == "string" and station.values.tolist() == ["KNMI", "DWD", "MF"]
    year = t.attributes["year"]
    assert year.kind == "int" and year.mask.tolist() == [False, True, False]
    assert year.values[~year.mask].tolist() == [2020, 2022]
    temp = t.arrays["TEMP"]
    assert temp["max"].kind == "float" and temp["max"].values.tolist() == [1.0, 2.0, 3.0]
    assert temp["null_count"].values.tolist() == [1, 1, 1]
    assert temp["shape"].values.tolist() == [(3,), (3,), (3,)]


def test_table_of_every_key_leaves_out_the_attributes_of_arrays_when_asked(tmp_path: Path) -> None:
    s = _store(tmp_path / "s")
    assert list(table(s, None, {}).attributes) == ["station", "TEMP.units", "year"]
    assert list(table(s, None, {}, skip_owned_by={"TEMP": None}).attributes) == ["station", "year"]
