"""The ``engine="atlas"`` xarray backend: plain ``xr.open_dataset``, laziness, pickling."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import atlas
from atlas.core.dataset import DatasetView
from atlas.integrations.xarray_backend import AtlasBackendArray, AtlasBackendEntrypoint


def _dataset(seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    return xr.Dataset(
        {
            "temp": (("time", "depth"), rng.random((6, 5)).astype("f4"), {"units": "degC", "range": [0, 1]}),
            "qc": ("time", np.array(list("abcdef"), dtype=object), {"_FillValue": "?"}),
            "flag": ("depth", np.array([1, 0, 1, 1, 0], "i1"), {"_FillValue": np.int8(-1)}),
            "scalar": ((), 3.5),
            "station": ((), "S-1"),
        },
        coords={"time": pd.date_range("2020-01-01", periods=6), "depth": [0.0, 5, 10, 15, 20]},
        attrs={"title": "profile", "meta": {"a": 1}},
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "argo.atlas"
    with atlas.Atlas.create(p) as store:
        store.add_xarray_dataset(_dataset(0), "profile_0001", chunks={"temp": (4, 2)})
        store.add_xarray_dataset(_dataset(1), "profile_0002")
        store.add_xarray_dataset(_dataset(2), "profile_0003")
    return p


def test_engine_is_registered() -> None:
    engines = xr.backends.list_engines()
    assert "atlas" in engines
    assert isinstance(engines["atlas"], AtlasBackendEntrypoint)
    assert "group" in AtlasBackendEntrypoint.open_dataset_parameters


def test_open_dataset_matches_open_as_xarray_dataset(path: Path) -> None:
    store = atlas.Atlas.open(path)
    for name in ("profile_0001", "profile_0002"):
        with xr.open_dataset(path, engine="atlas", group=name) as ds:
            expected = store.open_as_xarray_dataset(name)
            xr.testing.assert_identical(ds.load(), expected.load())
            # CF-decoded as xarray decodes a netCDF file: the fills are masked, in .encoding
            assert ds.qc.encoding["_FillValue"] == "?" and "_FillValue" not in ds.qc.attrs
            assert ds.flag.encoding["_FillValue"] == -1 and ds.flag.dtype == np.dtype("f4")
            assert ds.attrs["meta"] == {"a": 1}
            assert ds.time.dtype == np.dtype("M8[ns]")


def test_engine_is_guessed_from_a_store_directory(path: Path) -> None:
    assert AtlasBackendEntrypoint().guess_can_open(path)
    assert AtlasBackendEntrypoint().guess_can_open(str(path))
    assert not AtlasBackendEntrypoint().guess_can_open(path.parent)
    assert not AtlasBackendEntrypoint().guess_can_open(path / "atlas.json")
    assert not AtlasBackendEntrypoint().guess_can_open(b"bytes")
    with xr.open_dataset(path, group="profile_0003") as ds:
        np.testing.assert_array_equal(ds.temp.values, _dataset(2).temp.values)


def test_without_group_the_error_says_how_to_pick_one(path: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"group=.*profile_0001.*profile_0002"):
        xr.open_dataset(path, engine="atlas")
    empty = tmp_path / "empty.atlas"
    atlas.Atlas.create(empty)
    with pytest.raises(ValueError, match="no datasets"):
        xr.open_dataset(empty, engine="atlas")
    with pytest.raises(KeyError):
        xr.open_dataset(path, engine="atlas", group="nope")
    with pytest.raises(TypeError):
        xr.open_dataset(path, engine="atlas", group="profile_0001", bogus=1)


def test_drop_variables(path: Path) -> None:
    with xr.open_dataset(path, engine="atlas", group="profile_0001", drop_variables="qc") as ds:
        assert "qc" not in ds and "temp" in ds
    with xr.open_dataset(
        path, engine="atlas", group="profile_0001", drop_variables=["temp", "depth", "missing"]
    ) as ds:
        assert set(ds.variables) == {"qc", "flag", "scalar", "station", "time"}


def test_nothing_is_read_until_values_are_needed(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any, Any]] = []
    orig = DatasetView.read_array

    def counted(self: DatasetView, name: str, start: Any = None, shape: Any = None) -> Any:
        calls.append((name, start, shape))
        return orig(self, name, start, shape)

    monkeypatch.setattr(DatasetView, "read_array", counted)
    ds = xr.open_dataset(path, engine="atlas", group="profile_0001")
    # the index coordinates, and (as xarray does for any object array) the first cell of
    # each string variable, to see whether it holds cftime dates
    assert {c[0] for c in calls} <= {"time", "depth", "qc", "station"}
    assert all(c[2] in ([1], []) for c in calls if c[0] in ("qc", "station"))
    calls.clear()
    _ = ds.temp.shape, ds.temp.attrs, repr(ds.temp)
    assert calls == []
    window = ds.temp[1:4, ::2].values
    assert calls == [("temp", [1, 0], [3, 5])]  # one read of the bounding window
    np.testing.assert_array_equal(window, _dataset(0).temp.values[1:4, ::2])
    calls.clear()
    assert float(ds.temp[5, 4]) == pytest.approx(float(_dataset(0).temp.values[5, 4]))
    assert calls == [("temp", [5, 4], [1, 1])]
    np.testing.assert_array_equal(ds.temp[::-2, 3].values, _dataset(0).temp.values[::-2, 3])
    assert ds.scalar.values[()] == 3.5
    assert ds.station.values[()] == "S-1"


def test_chunks_mirror_the_stored_grid(path: Path) -> None:
    with xr.open_dataset(path, engine="atlas", group="profile_0001", chunks={}) as ds:
        assert isinstance(ds.temp.data, da.Array)
        assert ds.temp.data.chunks == ((4, 2), (2, 2, 1))
        assert ds.temp.encoding["preferred_chunks"] == {"time": 4, "depth": 2}
        np.testing.assert_array_equal(ds.temp.values, _dataset(0).temp.values)


def test_backend_arrays_pickle_and_reopen_the_pinned_version(path: Path) -> None:
    ds = xr.open_dataset(path, engine="atlas", group="profile_0001")
    backend = ds.temp.variable._data
    blob = pickle.dumps(ds)
    assert _find_backend_array(backend)._store is not None  # shares the opening handle
    assert pickle.loads(pickle.dumps(_find_backend_array(backend)))._store is None
    # the store moves on: the unpickled arrays still read the version that was opened
    with atlas.Atlas.open(path) as store:
        store.delete_dataset("profile_0001")
        store.add_xarray_dataset(_dataset(9), "profile_0001")
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again.temp.values, _dataset(0).temp.values)
    assert again.qc.values.tolist() == list("abcdef")
    with xr.open_dataset(path, engine="atlas", group="profile_0001") as fresh:
        np.testing.assert_array_equal(fresh.temp.values, _dataset(9).temp.values)
    with xr.open_dataset(path, engine="atlas", group="profile_0001", version=1) as old:
        np.testing.assert_array_equal(old.temp.values, _dataset(0).temp.values)


def _find_backend_array(obj: Any) -> AtlasBackendArray:
    seen = 0
    while not isinstance(obj, AtlasBackendArray):
        obj = obj.array
        seen += 1
        assert seen < 10
    return obj


def _changed_after_open(path: Path, **kwargs: Any) -> tuple[xr.Dataset, xr.Dataset]:
    before = xr.open_dataset(path, engine="atlas", group="profile_0001", **kwargs)
    with atlas.Atlas.open(path) as store:
        store.open_dataset("profile_0001").write_array("temp", [0, 0], np.zeros((6, 5), "f4"))
    after = xr.open_dataset(path, engine="atlas", group="profile_0001", **kwargs)
    return before, after


def test_dask_names_differ_across_versions_with_chunk(path: Path) -> None:
    before, after = _changed_after_open(path)
    before, after = before.chunk(), after.chunk()
    assert before.temp.data.name != after.temp.data.name
    assert float(abs(after.temp - before.temp).sum()) == pytest.approx(float(_dataset(0).temp.sum()))


def test_dask_names_differ_across_explicit_versions(path: Path) -> None:
    v = atlas.Atlas.open(path).version
    before = xr.open_dataset(path, engine="atlas", group="profile_0001", chunks={}, version=v)
    with atlas.Atlas.open(path) as store:
        store.open_dataset("profile_0001").write_array("temp", [0, 0], np.zeros((6, 5), "f4"))
    after = xr.open_dataset(path, engine="atlas", group="profile_0001", chunks={}, version=v + 1)
    assert before.temp.data.name != after.temp.data.name


def test_dask_names_differ_across_commits_with_chunks(path: Path) -> None:
    before, after = _changed_after_open(path, chunks={})
    assert before.temp.data.name != after.temp.data.name


def test_a_small_date_array_is_re_encoded_once_for_open_and_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """xarray reads a date variable's first and last values when it opens a dataset, then
    all of it when it loads: a small one is re-encoded to its on-disk numbers once, and
    every window of it, missing dates included, decodes as before."""
    from atlas.integrations import xarray_backend

    dates = np.array(["2020-01-01T06:00", "NaT", "2020-03-05T12:30", "2021-07-09", "NaT"], dtype="M8[ns]")
    ds = xr.Dataset({"t": ("obs", dates), "v": ("obs", np.arange(5.0))})
    ds.t.encoding = {"units": "days since 1950-01-01", "dtype": "float64", "_FillValue": 999999.0}
    store = atlas.Atlas.create(tmp_path / "s")
    store.add_xarray_dataset(ds, "d")
    store.flush()
    calls: list[str] = []
    real = xarray_backend.encode_window

    def counted(spec: Any, dims: Any, window: np.ndarray) -> np.ndarray:
        calls.append(str(window.dtype))
        return real(spec, dims, window)

    monkeypatch.setattr(xarray_backend, "encode_window", counted)
    opened = atlas.Atlas.open(tmp_path / "s").open_as_xarray_dataset("d")
    assert opened.t.encoding["units"] == "days since 1950-01-01"
    np.testing.assert_array_equal(opened.t[1:4].values, dates[1:4])
    assert opened.t[2].values == dates[2]
    loaded = opened.load()
    np.testing.assert_array_equal(loaded.t.values, dates)
    assert calls.count("datetime64[ns]") == 1  # one re-encoding of the dates, whatever was read


def test_a_date_array_that_cannot_be_re_encoded_whole_is_re_encoded_by_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Re-encoding the whole small array may fail where the window asked for would not
    (xarray refuses some dates): the window is then re-encoded alone, as before."""
    from atlas.integrations import xarray_backend

    dates = np.array(["2020-01-01", "2020-01-02", "2020-01-03"], dtype="M8[ns]")
    store = atlas.Atlas.create(tmp_path / "s")
    store.add_xarray_dataset(xr.Dataset({"t": ("obs", dates)}), "d")
    store.flush()
    real = xarray_backend.EncodedArray._encoded
    windows: list[Any] = []

    def picky(self: Any, key: tuple[Any, ...]) -> np.ndarray:
        windows.append(key)
        if len(windows) == 1:  # the first read re-encodes the whole array: refused
            raise ValueError("not all of these dates can be encoded")
        return real(self, key)

    monkeypatch.setattr(xarray_backend.EncodedArray, "_encoded", picky)
    opened = atlas.Atlas.open(tmp_path / "s").open_as_xarray_dataset("d")
    np.testing.assert_array_equal(opened.t[1:].values, dates[1:])
    np.testing.assert_array_equal(opened.t.values, dates)
    assert windows[0] == (slice(None),) and len(windows) > 2  # whole once, then by window
