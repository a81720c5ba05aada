"""Writing an ``xarray.Dataset``: dask input and chunks, errors and clean-up, the
``ds.atlas`` accessor."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from xarray_helpers import simple_dataset as _simple

import atlas

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
    # one block per compute, but for the object array, which xarray's CF encoding loads
    # whole to infer what it holds (with a SerializationWarning)
    assert max(computed) <= words.npartitions
    assert computed.count(1) >= data.npartitions + times.npartitions
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
    # a bad string element fails (xarray's CF encoding cannot infer what it holds)
    bad = xr.Dataset({"ok": ("i", [1.0, 2.0]), "s": ("i", np.array(["a", 3], dtype=object))})
    with pytest.raises(ValueError, match="'s'"):
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
