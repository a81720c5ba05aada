"""Moving blocks: the block cache's budget and eviction, blocks fetched, checked, decoded and
kept in either form, and reads retried when the handle's state is swapped under them."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from store_helpers import flushed_store, write_profiles

import atlas
from atlas.core.reader import BlockCache, fetch_blocks, retry_if_swapped
from atlas.format.codec import CODEC_IDS, checksum, encode_block
from atlas.format.segment import SEGMENT_MAGIC
from atlas.storage import LocalStorage, MemoryStorage
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



# ------------------------------------------------------------------ fetching blocks


def _segment(blocks: list[np.ndarray], codec: str = "zstd") -> tuple[bytes, dict[tuple[str, int], tuple[int, int, int, int, int]]]:
    """A segment holding ``blocks`` (shuffled by 8) and what ``fetch_blocks`` wants for each."""
    data = bytearray(SEGMENT_MAGIC)
    wanted = {}
    for raw in blocks:
        stored, crc = encode_block(raw, codec, 8)
        wanted[("data/seg", len(data))] = (len(stored), raw.size, crc, CODEC_IDS[codec], 8)
        data += stored
    return bytes(data), wanted


class _Reads:
    """``get_many_ranges`` of a storage, counting the ranges read."""

    def __init__(self, storage: MemoryStorage) -> None:
        self.storage = storage
        self.ranges = 0

    def __call__(self, requests: Any) -> Any:
        self.ranges += sum(len(starts) for _, starts, _ in requests)
        return self.storage.get_many_ranges(requests)


def _describe(key: tuple[str, int]) -> str:
    return f"block {key[0]}@{key[1]}"


@pytest.fixture
def blocks() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [np.cumsum(rng.integers(-2, 3, size=n)).astype(np.int64).view(np.uint8) for n in (500, 700, 900, 1100)]


def test_fetch_blocks_decodes_what_it_reads_and_the_cache_serves_it_again(blocks: list[np.ndarray]) -> None:
    data, wanted = _segment(blocks)
    storage = MemoryStorage()
    storage.put("data/seg", data)
    reads = _Reads(storage)
    cache = BlockCache(1 << 20)
    got = fetch_blocks(reads, cache, wanted, _describe)
    assert reads.ranges == 4 and list(got) == list(wanted)
    assert all(np.array_equal(got[k], raw) for k, raw in zip(wanted, blocks, strict=True))
    assert cache.used == sum(b.nbytes for b in blocks)
    again = fetch_blocks(reads, cache, wanted, _describe)
    assert reads.ranges == 4  # all from the cache
    assert all(again[k] is got[k] for k in wanted)
    fetch_blocks(reads, cache, wanted, _describe, mode="off")  # checks see the storage's bytes
    assert reads.ranges == 8


def test_fetch_blocks_can_keep_the_stored_bytes_and_decode_them_later(blocks: list[np.ndarray]) -> None:
    data, wanted = _segment(blocks)
    storage = MemoryStorage()
    storage.put("data/seg", data)
    reads = _Reads(storage)
    cache = BlockCache(1 << 20)
    fetch_blocks(reads, cache, wanted, _describe, mode="stored")
    assert not cache._d and len(cache._s) == 4
    assert cache.used == sum(n for n, *_ in wanted.values())  # compressed: less than decoded
    got = fetch_blocks(reads, cache, wanted, _describe, mode="read")
    assert reads.ranges == 4 and all(np.array_equal(got[k], raw) for k, raw in zip(wanted, blocks, strict=True))
    assert len(cache._s) == 4 and not cache._d  # "read" only uses the cache


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", "is truncated"),
        ("flip", "fails its checksum"),
        ("claim", "claims"),
        ("garbage", "cannot be decoded"),
    ],
)
def test_fetch_blocks_names_the_damaged_block(blocks: list[np.ndarray], damage: str, message: str) -> None:
    data, wanted = _segment(blocks[:1])
    key = next(iter(wanted))
    length, raw, crc, codec, filter_id = wanted[key]
    if damage == "truncate":
        data = data[:-1]
    elif damage == "flip":
        data = data[:-1] + bytes([data[-1] ^ 0x10])
    elif damage == "claim":  # an index row claiming more than the block could ever hold
        wanted[key] = (length, length * 40000, crc, codec, filter_id)
    else:  # checksummed garbage
        junk = bytes(i % 251 for i in range(length))
        data = data[: key[1]] + junk
        wanted[key] = (length, raw, checksum(junk), codec, filter_id)
    storage = MemoryStorage()
    storage.put("data/seg", data)
    with pytest.raises(atlas.CorruptionError, match=f"block data/seg@{key[1]}: .*{message}"):
        fetch_blocks(storage.get_many_ranges, BlockCache(1 << 20), wanted, _describe)


def test_blocks_larger_than_a_quarter_of_the_budget_are_not_kept() -> None:
    cache = BlockCache(4000)
    cache.put(("a", 0), np.zeros(1001, dtype=np.uint8))
    cache.put_stored(("a", 1), b"x" * 1001)
    assert cache.get(("a", 0)) is None and cache.get_stored(("a", 1)) is None and cache.used == 0
    cache.put(("a", 2), np.zeros(1000, dtype=np.uint8))
    assert cache.get(("a", 2)) is not None and cache.used == 1000


class _Handle:
    _state_gen = 0


def test_a_read_is_retried_only_when_the_state_was_swapped_meanwhile() -> None:
    calls: list[int] = []

    @retry_if_swapped
    def read(owner: _Handle, swap: bool, error: type[Exception]) -> str:
        calls.append(owner._state_gen)
        if len(calls) == 1:
            if swap:
                owner._state_gen += 1  # a compaction swapped the state while this read ran
            raise error("gone")
        return "read again"

    for error in (atlas.CorruptionError, KeyError, IndexError):
        calls.clear()
        assert read(_Handle(), True, error) == "read again" and calls == [0, 1]
        calls.clear()
        with pytest.raises(error):
            read(_Handle(), False, error)
        assert calls == [0]
    calls.clear()
    with pytest.raises(ValueError):  # not an error a swap causes
        read(_Handle(), True, ValueError)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files through /proc/self/fd (Linux)")
def test_a_kept_corruption_error_holds_no_file_open(tmp_path: Path) -> None:
    """The blocks a scan reads may be views of mapped files, each holding a file descriptor
    while it lives; a corruption error the caller keeps (errors collected in a loop) must
    not keep them alive through its traceback."""
    from atlas.core import bulk

    store = atlas.Atlas.create(tmp_path / "s")
    rng = np.random.default_rng(3)
    for i in range(bulk.MIN_DATASETS + 36):
        ds = store.create_dataset(f"d{i:03d}")
        ds.define_array("t", "float64", ["z"], [20_000])
        ds.write_array("t", [0], rng.random(20_000))  # incompressible: long stored blocks
    store.flush()
    segments = sorted((tmp_path / "s").rglob("*.seg"))
    assert segments
    for seg in segments:  # one flipped byte in the middle of every segment
        raw = bytearray(seg.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        seg.write_bytes(bytes(raw))
    opened = atlas.Atlas.open(tmp_path / "s")
    names = opened.list_datasets()
    before = len(os.listdir("/proc/self/fd"))
    kept = []
    for _ in range(4):
        with pytest.raises(atlas.CorruptionError) as caught:
            opened.read_array_across_stacked("t", names)
        kept.append(caught.value)
    assert len(os.listdir("/proc/self/fd")) <= before + 1


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files through /proc/self/fd (Linux)")
def test_a_kept_corruption_error_of_an_index_run_holds_no_file_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunk index runs are read as transient reads too: a damaged run's error, kept by the
    caller, holds none of the bytes read."""
    import atlas.storage.local as local
    from atlas.core import bulk

    monkeypatch.setattr(local, "_MAP_BYTES", 1)  # every span mapped: small runs too
    store = atlas.Atlas.create(tmp_path / "s")
    for i in range(bulk.MIN_DATASETS + 6):
        ds = store.create_dataset(f"d{i:03d}")
        ds.define_array("t", "float64", ["z"], [8])
        ds.write_array("t", [0], np.arange(8.0) + i)
    store.flush()
    runs = sorted((tmp_path / "s" / "index").rglob("*"))
    for run in (r for r in runs if r.is_file()):
        raw = bytearray(run.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        run.write_bytes(bytes(raw))
    before = len(os.listdir("/proc/self/fd"))
    kept = []
    for _ in range(4):
        opened = atlas.Atlas.open(tmp_path / "s")
        with pytest.raises(atlas.CorruptionError) as caught:
            opened.read_array_across_stacked("t", opened.list_datasets())
        kept.append(caught.value)
    assert len(os.listdir("/proc/self/fd")) <= before + 1
