"""Reading datasets back as ``xarray.Dataset``: laziness (one task per chunk), buffered
data, many datasets stacked."""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from xarray_helpers import simple_dataset as _simple

import atlas
from atlas.core.dataset import DatasetView


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
        # nothing is read, but what xarray looks at: the first cell of a string array, and
        # a small time array (whose first and last dates it reads) read whole, once
        assert eager <= {"words", "times"}
        assert all(c[2] in ([1], []) for c in calls if c[0] == "words")
        assert [c for c in calls if c[0] == "times"] in ([], [("times", [0], [7])])
        calls.clear()
        reads_before = counting.ranged_reads
        grid = out.grid.data
        assert isinstance(grid, da.Array)
        assert grid.chunks == ((3, 3, 1), (4, 4, 2))  # mirrors the grid, short edges
        assert len(dict(grid.__dask_graph__())) == 9 + 1  # one task per chunk (+ the source)
        # one-chunk and 0-D arrays are lazily indexed, as the engine gives them
        assert not out.whole.variable._in_memory and not out.zero.variable._in_memory
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
