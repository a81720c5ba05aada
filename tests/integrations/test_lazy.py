"""``atlas.integrations.lazy``: a basic index turned into one window to read, and the
readers that read one array of one dataset a window at a time."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

import atlas
from atlas.integrations.lazy import DatasetArray, LazyArrayReader, basic_window, lazy_dask_array


@pytest.mark.parametrize(
    "key",
    [
        (slice(None),),
        (2, slice(1, 4)),
        (slice(None, None, 2), -1),
        (slice(5, 0, -2), slice(None, None, -1)),
        (slice(3, 3),),
        (np.int64(1),),
        (slice(-3, None), 0),
    ],
)
def test_basic_window_reads_one_window_and_indexes_it(key: tuple[object, ...]) -> None:
    data = np.arange(6 * 5).reshape(6, 5)
    start, count, post = basic_window(key, data.shape)
    window = data[tuple(slice(a, a + n) for a, n in zip(start, count, strict=True))]
    assert window[post].tolist() == data[key].tolist()


def test_basic_window_of_a_lone_int_and_out_of_bounds() -> None:
    assert basic_window(3, (10,)) == ([3], [1], (0,))  # type: ignore[arg-type]
    with pytest.raises(IndexError, match="index 10 is out of bounds for an axis of size 10"):
        basic_window((10,), (10,))
    with pytest.raises(IndexError):
        basic_window((-11,), (10,))


@pytest.fixture
def store(tmp_path: Path) -> atlas.Atlas:
    s = atlas.Atlas.create(tmp_path / "s")
    v = s.create_dataset("d")
    v.define_array("t", "int32", ["y", "x"], [4, 6], [2, 3])
    v.write_array("t", [0, 0], np.arange(24, dtype="int32").reshape(4, 6))
    s.flush()
    return s


def test_dataset_array_reads_through_the_pinned_version(store: atlas.Atlas) -> None:
    arr = DatasetArray(store.location, store.version, "d", "t", (4, 6), np.dtype("int32"))
    assert arr.read((1, slice(2, 5))).tolist() == [8, 9, 10]
    assert arr.ndim == 2
    copy = pickle.loads(pickle.dumps(arr))
    assert copy._store is None and copy.read((slice(None), 0)).tolist() == [0, 6, 12, 18]
    gone = DatasetArray(store.location, store.version, "d", "nothing", (4, 6), np.dtype("int32"))
    with pytest.raises(KeyError, match="no longer has an array named 'nothing'"):
        gone.read((0, 0))


def test_lazy_reader_sees_buffered_data_and_pickles_at_its_version(store: atlas.Atlas) -> None:
    v = store.open_dataset("d")
    v.write_array("t", [0, 0], np.full((1, 1), -5, dtype="int32"))  # not flushed
    reader = LazyArrayReader(store, "d", "t", (4, 6), np.dtype("int32"))
    assert reader[0, 0] == -5
    assert "LazyArrayReader 'd'/'t'" in repr(reader)
    with pytest.raises(RuntimeError, match="flush"):
        pickle.dumps(reader)
    store.flush()
    pinned = pickle.dumps(reader)
    v.write_array("t", [0, 0], np.full((1, 1), 7, dtype="int32"))
    store.flush()  # a newer version: the pickle still reads the one it was made at
    assert pickle.loads(pinned)[0, 0] == -5


def test_lazy_dask_array_has_a_task_per_chunk(store: atlas.Atlas) -> None:
    meta = store.open_dataset("d").array_meta("t")
    assert meta is not None
    arr = lazy_dask_array(store, "d", "t", meta)
    assert arr.chunks == ((2, 2), (3, 3)) and arr.dtype == np.dtype("int32")
    assert arr[1:3, 2:4].compute().tolist() == [[8, 9], [14, 15]]
