"""The store handle: creating and opening stores, what it checks first, pickling, and its
properties."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

import atlas
from atlas.storage import MemoryStorage
from atlas.storage.wrappers import WrappedStorage


def test_create_finishes_an_interrupted_create(tmp_path: Path) -> None:
    from atlas.format.manifest import CONFIG_KEY, encode_config

    path = tmp_path / "s"
    path.mkdir()
    (path / CONFIG_KEY).write_bytes(encode_config("zstd", "json", "none"))  # no version 0
    with pytest.raises(atlas.StoreNotFoundError):
        atlas.Atlas.open(path)
    store = atlas.Atlas.create(path, codec="lz4")
    assert store.codec == "lz4"
    assert atlas.Atlas.open(path).list_datasets() == []
    with pytest.raises(FileExistsError):
        atlas.Atlas.create(path)



def test_create_refuses_a_location_holding_other_files(store: atlas.Atlas) -> None:
    other = MemoryStorage()
    other.put("notes.txt", b"mine")
    other.put("data/table.csv", b"a,b")
    with pytest.raises(FileExistsError, match=r"not an Atlas store, and its folder for Atlas's files holds 'data/table.csv';"):
        atlas.Atlas.create(other)
    assert other.list() == ["data/table.csv", "notes.txt"]  # nothing written
    with pytest.raises(FileExistsError, match="already exists"):
        atlas.Atlas.create(store.storage)


def test_create_refuses_a_read_only_location() -> None:
    class ReadOnly(WrappedStorage):
        def __init__(self, inner: Any) -> None:
            super().__init__(inner)
            self.read_only = True

    with pytest.raises(atlas.ReadOnlyError, match="read-only"):
        atlas.Atlas.create(ReadOnly(MemoryStorage()))


def test_open_checks_what_it_is_given(store: atlas.Atlas) -> None:
    with pytest.raises(atlas.StoreNotFoundError, match="no Atlas store at memory://"):
        atlas.Atlas.open(MemoryStorage())
    for bad in (True, 1.0, [1]):
        with pytest.raises(TypeError, match="version must be an int"):
            atlas.Atlas.open(store.storage, version=bad)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="no tag named 'nope'"):
        atlas.Atlas.open(store.storage, version="nope")
    with pytest.raises(ValueError, match="invalid tag name"):
        atlas.Atlas.open(store.storage, version="a/b")
    with pytest.raises(TypeError, match="bytes"):
        atlas.Atlas.open(b"/some/path")


def test_a_handle_pickles_to_one_on_the_same_store(store: atlas.Atlas) -> None:
    store.create_dataset("d").set_attribute("k", 1)
    with pytest.raises(RuntimeError, match="flush"):
        pickle.dumps(store)
    store.flush()
    clone = pickle.loads(pickle.dumps(store))
    assert clone.location == store.location and clone.version == store.version
    assert clone.open_dataset("d").get_attribute("k") == 1
    store.create_dataset("later")
    store.flush()
    old = atlas.Atlas.open(store.storage, version=1)
    pinned = pickle.loads(pickle.dumps(old))  # a read-only handle stays on its version
    assert pinned.version == 1 and pinned.list_datasets() == ["d"]
    assert pickle.loads(pickle.dumps(clone)).version == 2  # a writable one opens the newest


def test_handle_properties(store: atlas.Atlas) -> None:
    assert (store.codec, store.meta_format, store.meta_compression) == ("zstd", "json", "none")
    assert store.location == store.storage.location and store.version == 0
    assert repr(store) == f"<Atlas {store.location!r} datasets=0 version=0>"
    with store as same:
        assert same is store
        same.create_dataset("d")
    assert atlas.Atlas.open(store.storage).list_datasets() == ["d"]  # leaving the block flushed
