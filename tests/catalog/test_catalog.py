"""Catalogue: ``catalog()`` columns and types against a hand-written model, ``find()`` as the
public API, and the guarantee that only metadata is used."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from catalog_helpers import column_values as _col

import atlas


def test_catalog_rows_and_attribute_columns(store: atlas.Atlas) -> None:
    df = store.catalog(arrays=[])
    assert list(df.index) == ["a", "b", "d", "e"]
    assert df.index.name == "dataset"
    assert list(df.columns) == ["station", "year", "lat", "ok", "launch", "serial"]
    assert str(df["station"].dtype) == "string"
    assert _col(df, "station") == ["KNMI", None, None, "DWD"]
    assert df["year"].dtype == object  # int in some datasets, str in another
    assert _col(df, "year") == [2021, "2021", None, 2019]
    assert str(df["lat"].dtype) == "Float64"
    lat = df["lat"].array
    assert lat[0] == 52.1 and lat[3] == -3.0 and lat[2] is pd.NA
    assert math.isnan(lat._data[1]) and not lat._mask[1]  # a NaN value is not a missing value
    assert str(df["ok"].dtype) == "boolean"
    assert _col(df, "ok") == [True, False, None, None]
    assert df["launch"].dtype == np.dtype("datetime64[ns]")
    assert df["launch"].iloc[0] == pd.Timestamp("2021-01-01") and pd.isna(df["launch"].iloc[1])
    assert str(df["serial"].dtype) == "UInt64"
    assert df["serial"].iloc[0] == 2**64 - 1


def test_catalog_array_columns(store: atlas.Atlas) -> None:
    df = store.catalog(arrays=["temperature", "depth"], attributes=[])
    assert list(df.columns) == [
        f"{a}.{f}" for a in ("temperature", "depth")
        for f in ("dtype", "shape", "min", "max", "null_count", "row_count")
    ]
    assert _col(df, "temperature.dtype") == ["float32", "float32", None, "float64"]
    assert _col(df, "temperature.shape") == [(4,), (4,), None, (2,)]
    assert str(df["temperature.min"].dtype) == "Float64"
    assert _col(df, "temperature.min") == [-2.0, None, None, 25.0]  # b is all null
    assert _col(df, "temperature.max") == [31.5, None, None, 35.0]
    assert str(df["temperature.null_count"].dtype) == "Int64"
    assert _col(df, "temperature.null_count") == [1, 4, None, 0]
    assert _col(df, "temperature.row_count") == [4, 4, None, 2]
    assert _col(df, "depth.shape") == [(3,), (5,), None, None]
    assert _col(df, "depth.max") == [1200.0, None, None, None]  # b: never written
    assert _col(df, "depth.row_count") == [3, None, None, None]


def test_catalog_kinds_of_statistics(store: atlas.Atlas) -> None:
    df = store.catalog(arrays=["flag", "label", "time", "qc"], attributes=[])
    assert str(df["flag.min"].dtype) == "boolean"
    assert _col(df, "flag.max") == [False, None, None, None]
    assert str(df["label.min"].dtype) == "string"
    assert _col(df, "label.min") == ["x", "KNMI", None, None]
    assert _col(df, "label.max") == ["yy", "KNMI", None, None]
    assert df["time.min"].dtype == np.dtype("datetime64[ns]")
    assert df["time.max"].iloc[0] == pd.Timestamp("2021-01-01 00:00:01")
    assert pd.isna(df["time.min"].iloc[3]) and _col(df, "time.null_count")[3] == 1
    assert str(df["qc.min"].dtype) == "Int64"  # int16 and uint64 datasets
    assert _col(df, "qc.min") == [-3, None, None, 7]


def test_catalog_defaults_and_arguments(store: atlas.Atlas) -> None:
    df = store.catalog()
    arrays = store.list_arrays()
    assert arrays == ["depth", "flag", "label", "qc", "temperature", "time"]
    assert list(df.columns[:6]) == ["station", "year", "lat", "ok", "launch", "serial"]
    assert len(df.columns) == 6 + 6 * len(arrays)
    assert store.catalog(arrays=[], attributes=[]).shape == (4, 0)
    unknown = store.catalog(arrays=["nope"], attributes=["missing"])
    assert unknown.isna().all().all()
    with pytest.raises(TypeError):
        store.catalog(arrays="temperature")
    with pytest.raises(TypeError):
        store.catalog(attributes=[1])


def test_catalog_is_identical_for_raw_and_materialised_records(store_path: Path) -> None:
    raw = atlas.Atlas.open(store_path)
    touched = atlas.Atlas.open(store_path)
    for n in touched.list_datasets()[::2]:
        touched.open_dataset(n).attributes()
        for arr in touched.open_dataset(n).list_arrays():
            touched.open_dataset(n).array_stats(arr)
    pd.testing.assert_frame_equal(raw.catalog(), touched.catalog())


def test_catalog_reflects_live_state_and_last_flushed_stats(tmp_path: Path) -> None:
    s = atlas.Atlas.create(tmp_path / "s")
    ds = s.create_dataset("x")
    ds.define_array("v", "int32", ["i"], [2])
    ds.write_array("v", [0], np.array([1, 2], dtype=np.int32))
    ds.set_attribute("k", 1)
    df = s.catalog()
    assert _col(df, "k") == [1] and _col(df, "v.dtype") == ["int32"]
    assert _col(df, "v.max") == [None]  # stats are computed at flush
    s.flush()
    assert _col(s.catalog(), "v.max") == [2]
    ds.write_array("v", [0], np.array([5, 9], dtype=np.int32))
    assert _col(s.catalog(), "v.max") == [2]  # as of the last flush, like array_stats
    s.flush()
    assert _col(s.catalog(), "v.max") == [9]
    assert s.find("v.max == 9") == ["x"]
    s.delete_dataset("x")
    assert s.catalog().shape[0] == 0 and s.find("k == 1") == []


def test_attribute_clashing_with_an_array_field_is_renamed(tmp_path: Path) -> None:
    s = atlas.Atlas.create(tmp_path / "s")
    ds = s.create_dataset("x")
    ds.define_array("temperature", "float64", ["i"], [1])
    ds.write_array("temperature", [0], np.array([3.0]))
    ds.set_attribute("temperature.max", "not a number")  # an xarray-style variable attribute
    ds.set_attribute("temperature.units", "K")
    s.flush()
    df = s.catalog(array_attributes=True)
    assert _col(df, "attr:temperature.max") == ["not a number"]
    assert _col(df, "temperature.max") == [3.0]
    assert _col(df, "temperature.units") == ["K"]
    assert "temperature.units" not in s.catalog().columns  # variables' attributes only when asked
    assert s.find("temperature.max == 3") == ["x"]
    assert s.find("`attr:temperature.max` == 'not a number'") == ["x"]
    assert s.find("temperature.units == 'K'") == ["x"]


def test_only_metadata_is_read(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = atlas.Atlas.open(store_path)
    calls: list[str] = []

    def only_metadata(real: Any) -> Any:
        def read(*args: Any, **kwargs: Any) -> Any:
            keys = [r[0] for r in args[0]] if isinstance(args[0], list) else [args[0]]
            if any(not k.startswith("meta/") for k in keys):  # the shards hold the metadata
                calls.append(repr(args)[:80])
                raise AssertionError("the catalogue must not read stored data")
            return real(*args, **kwargs)

        return read

    for meth in ("get", "get_many_ranges", "get_range"):
        if hasattr(s._storage, meth):
            monkeypatch.setattr(s._storage, meth, only_metadata(getattr(s._storage, meth)))
    s.catalog()
    s.find("temperature > 30 or label == 'x' or depth.max >= 1000")
    assert calls == []
    assert all(v.index is None for v in s._variables.values())  # no chunk index loaded
    assert all(isinstance(r, list) for r in s._datasets.values())  # nothing materialised


def test_find_the_issue_example(tmp_path: Path) -> None:
    s = atlas.Atlas.create(tmp_path / "s")
    for i, (station, tmax, dmax) in enumerate(
        [("KNMI", 31.0, 1500.0), ("KNMI", 29.0, 1500.0), ("DWD", 35.0, 2000.0), ("KNMI", 33.0, 800.0)]
    ):
        ds = s.create_dataset(f"p{i}")
        ds.set_attribute("station", station)
        ds.define_array("temperature", "float32", ["z"], [2])
        ds.write_array("temperature", [0], np.array([4.0, tmax], dtype=np.float32))
        ds.define_array("depth", "float64", ["z"], [2])
        ds.write_array("depth", [0], np.array([0.0, dmax]))
    s.flush()
    names = s.find("temperature.max > 30 and depth.max >= 1000 and station == 'KNMI'")
    assert names == ["p0"]
    assert [a.tolist() for a in s.read_array_across("temperature", names)] == [[4.0, 31.0]]
    assert s.find(station="KNMI") == ["p0", "p1", "p3"]
    assert s.find("temperature.max > 30", station=["DWD", "KNMI"]) == ["p0", "p2", "p3"]
    assert s.find(**{"depth.max": 1500}) == ["p0", "p1"]
    assert s.find() == s.list_datasets() == s.find("  ")
