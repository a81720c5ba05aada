"""``atlas.dask.read_across`` and lazy arrays on dask schedulers, including a real
``dask.distributed.LocalCluster`` with process workers."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

import atlas
from atlas.core.atlas import Store
from atlas.dask import read_across


def _fill(store: atlas.Atlas, n: int, length: int = 30) -> list[str]:
    rng = np.random.default_rng(7)
    names = []
    for i in range(n):
        v = store.create_dataset(f"p{i:03d}")
        v.define_array("temp", "float32", ["z"], [length], [8], fill_value=float("nan"))
        v.write_array("temp", [0], rng.random(length).astype("f4"))
        v.define_array("grid", "int32", ["a", "b"], [4, 6], [2, 3])
        v.write_array("grid", [0, 0], np.full((4, 6), i, "i4"))
        v.define_array("label", "string", ["k"], [2])
        v.write_array("label", [0], np.array([f"L{i}", "x"], dtype=object))
        v.define_array("when", "timestamp_nanoseconds", [], [])
        v.write_array("when", [], np.array(i * 10**9, dtype="i8"))
        v.define_array("tag", "string", [], [])
        v.write_array("tag", [], np.array(f"t{i}", dtype=object))
        names.append(v.name)
    return names


@pytest.fixture
def store(tmp_path: Path) -> atlas.Atlas:
    s = atlas.Atlas.create(tmp_path / "s.atlas")
    _fill(s, 25)
    s.add_xarray_dataset(xr.Dataset({"other": ("x", [1.0])}), "no_temp")
    s.flush()
    return s


def test_read_across_matches_the_bulk_read(store: atlas.Atlas) -> None:
    names = [n for n in store.list_datasets() if n != "no_temp"]
    arr = read_across(store.location, "temp")
    assert isinstance(arr, da.Array)
    assert arr.shape == (25, 30) and arr.dtype == np.dtype("f4")
    np.testing.assert_array_equal(arr.compute(), store.read_array_across_stacked("temp", names))
    sub = ["p003", "p000", "p017", "p003"]
    win = read_across(store.location, "grid", sub, start=[1, 2], shape=[2, 9])  # clipped to 2x4
    assert win.shape == (4, 2, 4)
    np.testing.assert_array_equal(win.compute(), store.read_array_across_stacked("grid", sub, [1, 2], [2, 9]))
    np.testing.assert_array_equal(win[1:3, :, 1:].compute(), win.compute()[1:3, :, 1:])
    labels = read_across(store.location, "label", sub).compute()
    assert labels.dtype == object and labels[:, 0].tolist() == ["L3", "L0", "L17", "L3"]
    when = read_across(store.location, "when", sub).compute()
    assert when.dtype == np.dtype("M8[ns]")
    assert when.astype("i8").tolist() == [3 * 10**9, 0, 17 * 10**9, 3 * 10**9]
    assert read_across(store.location, "tag", sub).compute().tolist() == ["t3", "t0", "t17", "t3"]


def test_tasks_group_many_datasets(store: atlas.Atlas, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    orig = Store.read_array_across_stacked  # the handle class tasks read through (atlas.Atlas is its facade)

    def counted(self: Store, array: str, names: Any, *args: Any) -> Any:
        calls.append(len(names))
        return orig(self, array, names, *args)

    monkeypatch.setattr(Store, "read_array_across_stacked", counted)
    arr = read_across(store.location, "temp", datasets_per_task=10)
    assert arr.chunks == ((10, 10, 5), (30,))
    assert calls == []  # building the array reads no data
    arr.compute(scheduler="sync")
    assert sorted(calls) == [5, 10, 10]  # one bulk read per task
    by_bytes = read_across(store.location, "temp", task_bytes=30 * 4 * 8)
    assert by_bytes.chunks[0] == (8, 8, 8, 1)
    assert read_across(store.location, "temp").numblocks == (1, 1)  # small data: one task


def test_read_across_errors(store: atlas.Atlas, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        read_across(store.location, "temp", [])
    with pytest.raises(KeyError):
        read_across(store.location, "temp", ["p000", "no_temp"])
    with pytest.raises(KeyError):
        read_across(store.location, "temp", ["p000", "missing"])
    with pytest.raises(KeyError):
        read_across(store.location, "nothing")
    with pytest.raises(TypeError):
        read_across(store.location, "temp", "p000")
    with pytest.raises(TypeError):
        read_across(store, "temp")  # type: ignore[arg-type]
    v = store.create_dataset("long")
    v.define_array("temp", "float32", ["z"], [31])
    v2 = store.create_dataset("ints")
    v2.define_array("temp", "int32", ["z"], [30])
    store.flush()
    with pytest.raises(ValueError, match="different shapes"):
        read_across(store.location, "temp", ["p000", "long"])
    assert read_across(store.location, "temp", ["p000", "long"], shape=[30]).compute().shape == (2, 30)
    with pytest.raises(TypeError):
        read_across(store.location, "temp", ["p000", "ints"])


def test_read_across_reads_the_version_it_was_built_on(store: atlas.Atlas) -> None:
    arr = read_across(store.location, "temp", ["p000"])
    before = store.read_array_across_stacked("temp", ["p000"])
    store.open_dataset("p000").write_array("temp", [0], np.zeros(30, "f4"))
    store.flush()
    np.testing.assert_array_equal(arr.compute(), before)
    np.testing.assert_array_equal(read_across(store.location, "temp", ["p000"]).compute(), np.zeros((1, 30)))


def test_graphs_pickle(store: atlas.Atlas) -> None:
    arr = read_across(store.location, "grid", datasets_per_task=4)
    again = pickle.loads(pickle.dumps(arr))
    np.testing.assert_array_equal(again.compute(scheduler="sync"), arr.compute(scheduler="sync"))
    lazy = store.open_as_xarray_dataset("p001")
    assert isinstance(lazy.grid.data, da.Array)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(lazy)).grid.values, np.full((4, 6), 1))


def test_pickled_lazy_arrays_read_the_version_they_were_pickled_at(store: atlas.Atlas) -> None:
    lazy = store.open_as_xarray_dataset("p002")
    blob = pickle.dumps(lazy)
    with atlas.Atlas.open(store.location) as other:
        other.open_dataset("p002").write_array("grid", [0, 0], np.zeros((4, 6), "i4"))
    np.testing.assert_array_equal(pickle.loads(blob).grid.values, np.full((4, 6), 2))
    fresh = atlas.Atlas.open(store.location).open_as_xarray_dataset("p002")
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fresh)).grid.values, np.zeros((4, 6)))


def test_unflushed_handles_refuse_to_pickle(store: atlas.Atlas) -> None:
    store.open_dataset("p001").write_array("grid", [0, 0], np.zeros((1, 1), "i4"))
    lazy = store.open_as_xarray_dataset("p001")
    assert int(lazy.grid[0, 0]) == 0  # buffered data visible in-process
    with pytest.raises(RuntimeError, match="flush"):
        pickle.dumps(lazy.grid.data.__dask_graph__())


def test_local_cluster_with_process_workers(store: atlas.Atlas) -> None:
    distributed = pytest.importorskip("distributed")
    names = [n for n in store.list_datasets() if n != "no_temp"]
    expected_temp = store.read_array_across_stacked("temp", names)
    expected_grid = store.read_array_across_stacked("grid", names, [1, 1], [3, 4])
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        temp = read_across(store.location, "temp", datasets_per_task=5)
        grid = read_across(store.location, "grid", start=[1, 1], shape=[3, 4], datasets_per_task=7)
        got_temp, got_grid, total = client.compute(
            [temp, grid, temp.sum(axis=1)], sync=True
        )
        np.testing.assert_array_equal(got_temp, expected_temp)
        np.testing.assert_array_equal(got_grid, expected_grid)
        np.testing.assert_allclose(total, expected_temp.sum(axis=1), rtol=1e-6)
        workers = client.run(lambda: 1)
        assert len(workers) == 2
        # lazy per-dataset arrays and the xarray engine also run on process workers
        lazy = store.open_as_xarray_dataset("p004")
        assert int(lazy.grid.sum().compute()) == 4 * 24
        with xr.open_dataset(store.location, engine="atlas", group="p005", chunks={}) as ds:
            assert ds.temp.data.npartitions == 4
            np.testing.assert_array_equal(ds.temp.values, expected_temp[5])
        with dask.config.set(scheduler=client.get):
            assert float(da.nanmax(temp).compute()) == pytest.approx(float(np.nanmax(expected_temp)))
