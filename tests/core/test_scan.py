"""Reads across datasets (``read_array_across`` and its stacked form): what a scan keeps in
the block cache, its memory, and results that are always the caller's own."""

from __future__ import annotations

import threading
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from store_helpers import record_index_checks, write_profiles

import atlas


def _scan_setup(tmp_path: Path, digits: int | None) -> tuple[atlas.Atlas, Any, list[str]]:
    from atlas.storage import open_storage
    from atlas.storage.wrappers import CountingStorage

    store = atlas.Atlas.create(tmp_path / "s")
    write_profiles(store, 600, length=500, digits=digits)
    store.flush()
    counting = CountingStorage(open_storage(tmp_path / "s"))
    opened = atlas.Atlas.open(counting)
    return opened, counting, opened.list_datasets()


def test_a_small_window_across_datasets_does_not_keep_the_variable_decoded(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    write_profiles(store, 200, length=1000, digits=1)
    store.flush()
    opened = atlas.Atlas.open(tmp_path / "s")
    names = opened.list_datasets()
    head = opened.read_array_across_stacked("temperature", names, start=[0], shape=[5])
    assert head.shape == (200, 5)
    assert opened._cache.used == 0  # 4 KB of result must not hold 800 KB of decoded blocks
    full = opened.read_array_across("temperature", names)
    result = sum(a.nbytes for a in full)
    # a whole-variable read keeps the blocks' stored bytes, not a decoded second copy
    assert not opened._cache._d and opened._cache._s
    assert 0 < opened._cache.used <= result // 4
    assert np.array_equal(head, np.stack([a[:5] for a in full]), equal_nan=True)


def test_a_second_scan_decodes_the_kept_stored_blocks_without_io(tmp_path: Path) -> None:
    opened, counting, names = _scan_setup(tmp_path, digits=1)
    first = opened.read_array_across("temperature", names)
    kept = dict(opened._cache._s)
    assert kept and not opened._cache._d
    counting.reset()
    again = opened.read_array_across("temperature", names)
    stacked = opened.read_array_across_stacked("temperature", names, start=[100], shape=[300])
    assert counting.requests == 0, counting.counts
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(first, again, strict=True))
    assert np.array_equal(stacked, np.stack([a[100:400] for a in first]), equal_nan=True)
    again[0][:] = -1.0  # results are the caller's own: changing one changes nothing kept
    assert np.array_equal(opened.read_array_across("temperature", names[:1])[0], first[0], equal_nan=True)
    assert opened._cache._s == kept


def test_a_single_read_after_a_scan_keeps_its_block_decoded_instead(tmp_path: Path) -> None:
    opened, counting, names = _scan_setup(tmp_path, digits=1)
    scanned = opened.read_array_across("temperature", names)
    stored_before = len(opened._cache._s)
    view = opened.open_dataset(names[3])  # reads the records of its shard (the scan read its columns)
    counting.reset()
    one = view.read_array("temperature")
    assert counting.requests == 0, counting.counts  # decoded from the kept bytes
    assert np.array_equal(one, scanned[3], equal_nan=True)
    assert opened._cache._d  # the block (and any read ahead) is now kept decoded...
    assert len(opened._cache._s) < stored_before  # ...in place of its stored copy
    assert not set(opened._cache._d) & set(opened._cache._s)
    used = sum(b.nbytes for b in opened._cache._d.values()) + sum(len(d) for d in opened._cache._s.values())
    assert opened._cache.used == used


def test_a_scan_of_data_that_does_not_compress_keeps_nothing(tmp_path: Path) -> None:
    opened, counting, names = _scan_setup(tmp_path, digits=None)
    first = opened.read_array_across("temperature", names)
    assert opened._cache.used == 0  # stored bytes as big as the result would double its memory
    counting.reset()
    again = opened.read_array_across("temperature", names)
    assert counting.requests > 0
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(first, again, strict=True))


def test_a_fresh_scan_peaks_near_its_result_size(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    write_profiles(store, 2000, length=1000, digits=1)  # 8 MB: well above the fixed costs of a scan
    store.flush()
    opened = atlas.Atlas.open(tmp_path / "s")
    names = opened.list_datasets()
    opened.read_array_across("temperature", names[:1])  # loads the index and the threads
    opened._cache.clear()
    tracemalloc.start()
    try:
        got = opened.read_array_across("temperature", names)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    result = sum(a.nbytes for a in got)
    kept = opened._cache.used
    assert 0 < kept <= result // 4  # the blocks' stored bytes, not a second decoded copy
    # beyond the result and what stays cached: batches in flight and per-dataset state
    assert peak - kept <= 1.25 * result, f"peak {peak} bytes for a {result}-byte result, {kept} kept"


def test_a_scan_keeps_its_stored_blocks_in_a_cache_full_of_older_decoded_ones(tmp_path: Path) -> None:
    from atlas.storage import open_storage
    from atlas.storage.wrappers import CountingStorage

    store = atlas.Atlas.create(tmp_path / "s")
    rng = np.random.default_rng(0)
    for i in range(2000):
        ds = store.create_dataset(f"d{i}")
        ds.define_array("t", "float32", ["z"], [500])
        ds.define_array("u", "float32", ["z"], [500])
        ds.write_array("t", [0], np.round(10 + np.cumsum(rng.normal(0, 0.05, 500)), 1).astype(np.float32))
        ds.write_array("u", [0], rng.random(500).astype(np.float32))
    store.flush()
    counting = CountingStorage(open_storage(tmp_path / "s"))
    opened = atlas.Atlas.open(counting)
    opened.cache_bytes = 4 << 20
    names = opened.list_datasets()
    for n in names[::25]:  # single reads fill the cache with decoded blocks of "u"
        opened.open_dataset(n).read_array("u")
    assert opened._cache.used > 3 << 20
    first = opened.read_array_across("t", names)
    assert len(opened._cache._s) >= 16  # the scan's stored copies displaced older decoded blocks
    counting.reset()
    again = opened.read_array_across("t", names)
    assert counting.requests == 0, counting.counts
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


def test_scan_results_are_independent_writable_arrays(tmp_path: Path) -> None:
    opened, _, names = _scan_setup(tmp_path, digits=1)
    twice = names + names[:3]  # the same dataset twice gets two arrays, not one shared
    n = len(names)
    for _ in range(2):  # fresh blocks, then blocks decoded from the kept stored bytes
        got = opened.read_array_across("temperature", twice)
        assert all(a.flags.writeable for a in got)
        for i, j in ((0, 1), (0, n), (1, n + 1), (2, n + 2)):
            assert not np.shares_memory(got[i], got[j])
        want = [a.copy() for a in got]
        for a in got:
            a[:] = -5.0
        again = opened.read_array_across("temperature", twice)
        assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(again, want, strict=True))


def test_scan_results_never_alias_the_storage_buffers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # uncompressed blocks decode to the very bytes the storage returned: a storage that hands
    # out views of its own writable buffers must not see a caller's writes
    store = atlas.Atlas.create(tmp_path / "s", codec="none")
    write_profiles(store, 300, length=100)
    store.flush()
    opened = atlas.Atlas.open(tmp_path / "s")
    names = opened.list_datasets()
    storage = opened._storage
    buffers: dict[str, bytearray] = {}

    def shared_views(requests: Any) -> list[list[memoryview]]:
        out = []
        for key, starts, lengths in requests:
            view = memoryview(buffers.setdefault(key, bytearray(storage.get(key))))
            out.append([view[a : a + n] for a, n in zip(starts, lengths, strict=True)])
        return out

    monkeypatch.setattr(storage, "get_many_ranges", shared_views)
    first = opened.read_array_across("temperature", names)
    want = [a.copy() for a in first]
    for a in first:
        a[:] = -1.0
    opened.cache_bytes = 0
    again = opened.read_array_across("temperature", names)
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(again, want, strict=True))


def test_overlapping_chunks_in_a_damaged_index_never_share_memory(tmp_path: Path) -> None:
    from atlas.format.chunkindex import ChunkIndex

    store = atlas.Atlas.create(tmp_path / "s")
    for i in range(4):
        ds = store.create_dataset(f"d{i}")
        ds.define_array("x", "float64", ["z"], [100])
        ds.write_array("x", [0], np.arange(100.0) + i * 100)
    store.flush()
    (path,) = (tmp_path / "s" / "index").iterdir()
    rows = ChunkIndex.from_bytes(path.read_bytes(), "test").rows.copy()
    rows["within"][1] = 400  # the second chunk now overlaps the first
    path.write_bytes(ChunkIndex(rows).to_bytes())
    record_index_checks(tmp_path / "s")  # as if the writer itself had made this index
    opened = atlas.Atlas.open(tmp_path / "s")
    opened.cache_bytes = 0
    got = opened.read_array_across("x", opened.list_datasets())
    assert not np.shares_memory(got[0], got[1])
    got[0][60] = -1.0
    assert got[1][10] == 60.0


def test_threads_sharing_a_handle_read_right_while_the_cache_churns(tmp_path: Path) -> None:

    store = atlas.Atlas.create(tmp_path / "s")
    write_profiles(store, 2000, length=200, digits=1)  # 1.6 MB in 7 blocks
    store.flush()
    shared = atlas.Atlas.open(tmp_path / "s")
    names = shared.list_datasets()
    want = dict(zip(names, store.read_array_across("temperature", names), strict=True))
    shared.cache_bytes = 1 << 20  # four decoded blocks: stored and decoded copies evict each other
    kinds: set[str] = set()
    put, put_stored = shared._cache.put, shared._cache.put_stored

    def seen_put(key: Any, block: Any) -> None:
        kinds.add("decoded")
        put(key, block)

    def seen_put_stored(key: Any, data: Any) -> None:
        kinds.add("stored")
        put_stored(key, data)

    shared._cache.put, shared._cache.put_stored = seen_put, seen_put_stored  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for _ in range(12):
                pick = [names[i] for i in rng.choice(len(names), int(rng.integers(1, len(names))), replace=False)]
                what = int(rng.integers(0, 4))
                if what == 0:
                    got = shared.read_array_across("temperature", names)
                    assert all(np.array_equal(g, want[n], equal_nan=True) for g, n in zip(got, names, strict=True))
                elif what == 1:
                    got = shared.read_array_across("temperature", pick)
                    assert all(np.array_equal(g, want[n], equal_nan=True) for g, n in zip(got, pick, strict=True))
                elif what == 2:
                    n = pick[0]
                    assert np.array_equal(shared.open_dataset(n).read_array("temperature"), want[n], equal_nan=True)
                else:
                    got = shared.read_array_across_stacked("temperature", pick, start=[5], shape=[50])
                    assert np.array_equal(got, np.stack([want[n][5:55] for n in pick]), equal_nan=True)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert kinds == {"decoded", "stored"}
    cache = shared._cache
    assert cache.used == sum(b.nbytes for b in cache._d.values()) + sum(len(d) for d in cache._s.values())
    assert cache.used <= cache.budget



def test_reads_across_datasets_and_the_catalogue_pause_the_cyclic_collector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planning a read across many datasets, or the catalogue, builds many containers and
    none of them cyclic: collections meanwhile would only rescan them. The collector is
    paused while such a call runs, and left as it was found."""
    import gc

    import atlas.catalog
    from atlas.core import scan

    store = atlas.Atlas.create(tmp_path / "s")
    write_profiles(store, 30)
    store.flush()
    opened = atlas.Atlas.open(tmp_path / "s")
    names = opened.list_datasets()
    seen: dict[str, bool] = {}

    def watched(module: Any, name: str) -> None:
        inner = getattr(module, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            seen[name] = gc.isenabled()
            return inner(*args, **kwargs)

        monkeypatch.setattr(module, name, call)

    watched(scan, "read_array_across")
    watched(scan, "read_array_across_stacked")
    watched(atlas.catalog, "owned_table")
    assert gc.isenabled()
    opened.read_array_across("temperature", names)
    opened.read_array_across_stacked("temperature", names)
    opened.catalog()
    assert seen == {"read_array_across": False, "read_array_across_stacked": False, "owned_table": False}
    assert gc.isenabled()
