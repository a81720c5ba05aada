"""The whole store on object storage: a real S3 server (moto, on 127.0.0.1), obstore's
memory store, plain HTTP (read-only), request-count bounds and racing writers."""

from __future__ import annotations

import functools
import http.server
import multiprocessing as mp
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import atlas
from atlas.storage import open_storage
from atlas.storage.wrappers import CountingStorage


def _fill(store: atlas.Atlas, n: int, prefix: str = "p", seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = {}
    for i in range(n):
        name = f"{prefix}{i:04d}"
        # a smooth profile read to 2 decimals, as a sensor gives it
        x = np.round(10 + np.cumsum(rng.normal(0, 0.02, int(rng.integers(20, 300)))), 2).astype(np.float32)
        ds = store.create_dataset(name)
        ds.define_array("temperature", "float32", ["depth"], [x.size], fill_value=float("nan"))
        ds.write_array("temperature", [0], x)
        ds.define_array("grid", "int32", ["a", "b"], [8, 10], chunk_shape=[3, 4])
        ds.write_array("grid", [0, 0], np.arange(80, dtype=np.int32).reshape(8, 10) + i)
        ds.set_attribute("index", i)
        data[name] = x
    return data


@pytest.fixture
def s3_url(s3_bucket: str, s3_options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return f"s3://{s3_bucket}/collections/argo", s3_options


def test_everything_works_on_s3(s3_url: tuple[str, dict[str, Any]]) -> None:
    url, opts = s3_url
    store = atlas.Atlas.create(url, **opts)
    data = _fill(store, 120)
    store.flush()
    again = atlas.Atlas.open(url, **opts)
    names = again.list_datasets()
    assert names == list(data)
    got = again.read_array_across("temperature", names)
    for n, arr in zip(names, got, strict=True):
        np.testing.assert_array_equal(arr, data[n])
    window = again.read_array_across_stacked("grid", names[:5], start=[2, 3], shape=[4, 5])
    expected = np.arange(80, dtype=np.int32).reshape(8, 10)[2:6, 3:8]
    np.testing.assert_array_equal(window[3], expected + 3)
    assert again.open_dataset(names[7]).array_stats("temperature")["max"] == float(data[names[7]].max())
    # delete, compact, versions, old version read-only
    v_before = again.version
    for n in names[::2]:
        again.delete_dataset(n)
    again.flush()
    old = atlas.Atlas.open(url, version=v_before, **opts)
    assert old.list_datasets() == names
    with pytest.raises(atlas.ReadOnlyError):
        old.delete_dataset(names[1])
    again.compact()
    assert [v["version"] for v in again.versions()] == [again.version]
    final = atlas.Atlas.open(url, **opts)
    assert final.list_datasets() == names[1::2]
    np.testing.assert_array_equal(final.open_dataset(names[3]).read_array("temperature"), data[names[3]])
    assert final.verify() == []
    with pytest.raises(FileExistsError):
        atlas.Atlas.create(url, **opts)


def test_obstore_store_handles_are_accepted() -> None:
    from obstore.store import MemoryStore

    mem = MemoryStore()
    store = atlas.Atlas.create(mem)
    data = _fill(store, 10)
    store.flush()
    again = atlas.Atlas.open(mem)
    np.testing.assert_array_equal(again.open_dataset("p0004").read_array("temperature"), data["p0004"])


def test_memory_url_is_shared_within_the_process() -> None:
    store = atlas.Atlas.create("memory://test-shared-url")
    _fill(store, 3)
    store.flush()
    assert atlas.Atlas.open("memory://test-shared-url").list_datasets() == ["p0000", "p0001", "p0002"]


def test_opening_and_scanning_take_a_bounded_number_of_requests(s3_url: tuple[str, dict[str, Any]]) -> None:
    url, opts = s3_url
    store = atlas.Atlas.create(url, **opts)
    _fill(store, 2000)
    store.flush()
    counting = CountingStorage(open_storage(url, **opts))
    opened = atlas.Atlas.open(counting)
    names = opened.list_datasets()
    assert len(names) == 2000
    # config + list of manifests + the manifest, then the names of each shard (one ranged read)
    shards = len(opened._datasets.shards)
    assert shards == 1
    assert counting.requests <= 3 + shards, counting.counts
    counting.reset()
    opened.read_array_across("temperature", names)
    # the index, the records of each shard, then one coalesced ranged read per segment file
    segments = len(opened._variables["temperature"].segments)
    assert counting.requests <= 1 + shards + segments, counting.counts
    counting.reset()
    opened.read_array_across("temperature", names)  # warm: the stored blocks were kept
    assert counting.requests == 0, counting.counts


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_http_is_read_only_and_finds_the_newest_version(http_root: tuple[Path, str]) -> None:
    root, base = http_root
    store = atlas.Atlas.create(root / "store")
    data = _fill(store, 30)
    store.flush()
    store.open_dataset("p0001").set_attribute("edited", True)
    store.flush()
    remote = atlas.Atlas.open(f"{base}/store", client_options={"allow_http": True})
    assert remote.version == store.version
    assert remote.open_dataset("p0001").get_attribute("edited") is True
    got = remote.read_array_across("temperature", remote.list_datasets())
    np.testing.assert_array_equal(got[12], data["p0012"])
    with pytest.raises(atlas.ReadOnlyError, match="read-only"):
        remote.create_dataset("new")
    with pytest.raises(PermissionError):
        atlas.Atlas.create(f"{base}/other", client_options={"allow_http": True})


def _racer(url: str, opts: dict[str, Any], me: str, rounds: int, barrier: Any, results: Any) -> None:
    for r in range(rounds):
        store = atlas.Atlas.open(url, **opts)
        ds = store.create_dataset(f"{me}-{r}")
        ds.define_array("x", "int64", ["i"], [3])
        ds.write_array("x", [0], np.array([r, r, r], dtype=np.int64))
        barrier.wait()
        try:
            store.flush()
            results.put((r, me, "won"))
        except atlas.ConflictError as e:
            assert "moved on" in str(e)
            results.put((r, me, "lost"))
        barrier.wait()


def _race(url: str, opts: dict[str, Any], rounds: int = 8) -> None:
    atlas.Atlas.create(url, **opts).flush()
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(url, opts, me, rounds, barrier, results)) for me in ("a", "b")]
    for p in procs:
        p.start()
    outcome: list[tuple[int, str, str]] = [results.get(timeout=120) for _ in range(2 * rounds)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    winners = {}
    for r in range(rounds):
        this = [(me, res) for rr, me, res in outcome if rr == r]
        won = [me for me, res in this if res == "won"]
        assert len(won) == 1, this  # exactly one writer wins each round
        winners[r] = won[0]
    final = atlas.Atlas.open(url, **opts)
    assert final.list_datasets() == [f"{winners[r]}-{r}" for r in range(rounds)]
    for r in range(rounds):
        assert final.open_dataset(f"{winners[r]}-{r}").read_array("x").tolist() == [r, r, r]


def test_racing_processes_on_local_disk(tmp_path: Path) -> None:
    _race(str(tmp_path / "store"), {})


def test_racing_processes_on_s3(s3_url: tuple[str, dict[str, Any]]) -> None:
    url, opts = s3_url
    _race(url, opts)


def test_pickled_handle_reopens_by_location(s3_url: tuple[str, dict[str, Any]]) -> None:
    import pickle

    url, opts = s3_url
    store = atlas.Atlas.create(url, **opts)
    _fill(store, 3)
    store.flush()
    clone: Callable[[], Any] = pickle.loads(pickle.dumps(store))
    assert isinstance(clone, atlas.Atlas)
    assert clone.list_datasets() == store.list_datasets()
