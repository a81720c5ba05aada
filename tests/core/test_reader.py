"""Moving blocks: the block cache's budget and eviction, and reads retried when the handle's
state is swapped under them."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from store_helpers import flushed_store, write_profiles

import atlas
from atlas.storage import LocalStorage
from atlas.storage.wrappers import WrappedStorage


def test_block_cache_keeps_one_form_of_a_block_and_evicts_the_least_recently_used() -> None:
    from atlas.core.reader import BlockCache

    cache = BlockCache(4000)
    cache.put_stored(("a", 0), b"x" * 300)
    cache.put_stored(("a", 1), b"y" * 300)
    assert cache.get(("a", 0)) is None and cache.get_stored(("a", 0)) == b"x" * 300
    block = np.zeros(100, dtype=np.uint8)
    cache.put(("a", 0), block)  # decoded replaces stored
    assert cache.get_stored(("a", 0)) is None and cache.get(("a", 0)) is block
    assert not block.flags.writeable
    cache.put_stored(("a", 0), b"z" * 10)  # not kept beside its decoded form
    assert cache.get_stored(("a", 0)) is None
    assert cache.used == 100 + 300
    for k in range(4):  # over budget at the fourth: the stored copy is the oldest, and enough
        cache.put(("b", k), np.zeros(950, dtype=np.uint8))
    assert ("a", 1) not in cache._s and ("a", 0) in cache._d and cache.used == 3900
    cache.put(("b", 4), np.zeros(950, dtype=np.uint8))  # then the least recently used decoded ones
    assert ("a", 0) not in cache._d and ("b", 0) not in cache._d and ("b", 1) in cache._d
    assert cache.used == 3800
    cache.put_stored(("c", 0), b"w" * 1001)  # larger than a quarter of the budget
    assert cache.get_stored(("c", 0)) is None
    cache.put_stored(("c", 1), b"w" * 200)  # newer than every decoded block
    cache.resize(1000)
    assert cache.get_stored(("c", 1)) == b"w" * 200 and not cache._d and cache.used == 200
    cache.put(("e", 0), np.zeros(200, dtype=np.uint8))  # now the stored copy is the older one
    cache.resize(300)
    assert not cache._s and list(cache._d) == [("e", 0)] and cache.used == 200
    cache.clear()
    assert cache.used == 0 and cache.get(("e", 0)) is None and not cache._used_at


def test_cache_bytes_bounds_the_block_cache_and_zero_turns_it_off(tmp_path: Path) -> None:
    from atlas.storage import open_storage
    from atlas.storage.wrappers import CountingStorage

    store = atlas.Atlas.create(tmp_path / "s")
    write_profiles(store, 300, digits=1)
    store.flush()
    counting = CountingStorage(open_storage(tmp_path / "s"))
    opened = atlas.Atlas.open(counting)
    names = opened.list_datasets()
    assert opened.cache_bytes == 256 << 20
    first = opened.read_array_across("temperature", names)
    assert opened._cache.used > 0
    counting.reset()
    opened.read_array_across("temperature", names)
    assert counting.requests == 0  # warm: every block from the cache
    opened.cache_bytes = 0  # drops what is cached, and caches nothing from now on
    assert opened._cache.used == 0
    again = opened.read_array_across("temperature", names)
    assert counting.requests > 0 and opened._cache.used == 0
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(first, again, strict=True))
    for bad in (-1, 1.5, True, "big"):
        with pytest.raises(ValueError, match="cache_bytes"):
            opened.cache_bytes = bad  # type: ignore[assignment]
    assert opened.cache_bytes == 0


class _PausingReads(WrappedStorage):
    """Holds the first block fetch of the thread named ``reader`` until ``go`` is set."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.paused = threading.Event()
        self.go = threading.Event()

    def get_many_ranges(self, requests: Any) -> Any:
        if threading.current_thread().name == "reader" and not self.go.is_set():
            self.paused.set()
            self.go.wait(10)
        return self.inner.get_many_ranges(requests)


@pytest.mark.parametrize("how", ["scan", "single"])
def test_a_read_in_flight_while_its_handle_compacts_sees_one_version(tmp_path: Path, how: str) -> None:
    path = flushed_store(tmp_path, names=6)
    pausing = _PausingReads(LocalStorage(path))
    store = atlas.Atlas.open(pausing)
    store.cache_bytes = 0
    store.delete_dataset("d0")
    store.flush()
    result: dict[str, Any] = {}

    def read() -> None:
        try:
            if how == "scan":
                result["got"] = [float(a[0]) for a in store.read_array_across("x", ["d1", "d5"])]
            else:
                result["got"] = [float(store.open_dataset("d5").read_array("x")[0])]
        except BaseException as e:  # noqa: BLE001 - checked below
            result["error"] = e

    reader = threading.Thread(target=read, name="reader")
    reader.start()
    assert pausing.paused.wait(10)  # the read has its rows and is about to fetch blocks
    store.compact(grace_period=0)  # rewrites "x" and deletes the segments the read wants
    pausing.go.set()
    reader.join(10)
    assert "error" not in result, result.get("error")
    assert result["got"] == ([1.0, 5.0] if how == "scan" else [5.0])

