"""Pinned arrays: what lazy readers hold; they pickle as a location and a version and reopen
that version, one shared read-only handle per process."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import atlas
from atlas import pinned
from atlas.pinned import PinnedArray, open_pinned


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    pinned._cached_store.cache_clear()
    yield
    pinned._cached_store.cache_clear()


@pytest.fixture
def path(tmp_path: Path) -> str:
    store = atlas.Atlas.create(tmp_path / "s")
    view = store.create_dataset("d")
    view.define_array("x", "int32", ["n"], [3])
    view.write_array("x", [0], np.array([1, 2, 3], dtype=np.int32))
    store.flush()  # version 1
    view.write_array("x", [0], np.array([7, 7, 7], dtype=np.int32))
    store.flush()  # version 2
    return store.location


def test_open_pinned_shares_one_read_only_handle_per_version(path: str) -> None:
    first = open_pinned(path, 1)
    assert first.version == 1 and open_pinned(path, 1) is first
    assert first.open_dataset("d").read_array("x").tolist() == [1, 2, 3]
    with pytest.raises(atlas.ReadOnlyError):
        first.create_dataset("no")
    assert open_pinned(path, 2) is not first and open_pinned(path, 2).version == 2
    with pytest.raises(TypeError, match="unexpected options"):  # options are passed on, uncached
        open_pinned(path, 1, {"region": "eu-west-1"})


def test_a_pinned_array_reopens_its_version_wherever_it_is_unpickled(path: str) -> None:
    handle = atlas.Atlas.open(path)
    arr = PinnedArray(path, 1, "x", [np.int64(3)], np.dtype("int32"), store=handle)
    assert arr.shape == (3,) and type(arr.shape[0]) is int and arr.ndim == 1
    assert arr.handle() is handle  # the handle given is used in this process
    clone = pickle.loads(pickle.dumps(arr))
    assert clone._store is None and arr._store is handle  # never pickled
    assert (clone.location, clone.version, clone.dtype, clone.storage_options) == (path, 1, np.dtype("int32"), None)
    reopened = clone.handle()
    assert reopened.version == 1 and reopened is open_pinned(path, 1)
    assert reopened.open_dataset("d").read_array("x").tolist() == [1, 2, 3]
    assert clone.handle() is reopened
