"""LocalStorage details: durability, temp files, the read path."""

from __future__ import annotations

import errno
import os
import pickle
import tracemalloc
from pathlib import Path

import pytest

from atlas.storage import LocalStorage


def _temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


@pytest.fixture
def store(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "s", create=True)


def test_writes_leave_no_temp_files(store: LocalStorage) -> None:
    store.put("a/b/c", b"1")
    store.put("a/b/c", b"2")
    assert store.put_if_absent("a/d", b"3")
    assert not store.put_if_absent("a/d", b"4")
    assert _temps(Path(store.root)) == []
    assert store.get("a/d") == b"3"


def test_list_ignores_orphaned_temp_files(store: LocalStorage) -> None:
    store.put("data/x.seg", b"1")
    (Path(store.root) / "data" / ".tmp-deadbeef").write_bytes(b"partial")
    (Path(store.root) / ".tmp-0123").write_bytes(b"partial")
    assert store.list() == ["data/x.seg"]
    assert store.list("data/") == ["data/x.seg"]


def test_put_fsyncs_file_and_directory(store: LocalStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    store.put("d/first", b"x")  # directory exists from now on
    synced: list[bool] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.path.isdir(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else False)
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    store.put("d/k", b"data")
    assert len(synced) == 2
    if os.path.exists("/proc/self/fd"):
        assert synced == [False, True]  # the file, then its directory
    synced.clear()
    assert store.put_if_absent("d/k2", b"data")
    assert len(synced) == 2


def test_failed_write_keeps_old_object_and_cleans_up(
    store: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("k", b"old")

    def broken(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", broken)
    with pytest.raises(OSError, match="No space"):
        store.put("k", b"new")
    with pytest.raises(OSError, match="No space"):
        store.put_if_absent("k2", b"new")
    monkeypatch.undo()
    assert store.get("k") == b"old"
    assert not store.exists("k2")
    assert _temps(Path(store.root)) == []


def test_put_if_absent_without_hard_links(store: LocalStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    assert store.put_if_absent("k", b"v")
    assert not store.put_if_absent("k", b"w")
    assert store.get("k") == b"v"
    assert _temps(Path(store.root)) == []


def test_get_ranges_reads_each_span_once(store: LocalStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(3 << 20)
    store.put("seg", data)
    calls: list[tuple[int, int]] = []
    real = os.pread

    def spy(fd: int, length: int, offset: int) -> bytes:
        calls.append((offset, length))
        return real(fd, length, offset)

    monkeypatch.setattr(os, "pread", spy)
    gap = store.coalesce_gap
    starts = [100, 0, 5000, (2 << 20) + 10, 4000, 6000 + gap + 1]
    lengths = [50, 10, 10, 20, 2000, 5]
    got = store.get_ranges("seg", starts, lengths)
    assert [bytes(g) for g in got] == [data[s : s + n] for s, n in zip(starts, lengths, strict=True)]
    assert all(isinstance(g, memoryview) for g in got)
    assert sorted(calls) == [(0, 6000), (6000 + gap + 1, 5), ((2 << 20) + 10, 20)]
    assert store.range_requests(starts, lengths) == 3


def test_directories_are_created_on_demand(store: LocalStorage) -> None:
    store.put("a/b/c/d/e", b"deep")
    assert (Path(store.root) / "a" / "b" / "c" / "d" / "e").read_bytes() == b"deep"


def test_identity_and_pickle(tmp_path: Path) -> None:
    a = LocalStorage(tmp_path)
    b = LocalStorage(str(tmp_path) + "/")
    assert a == b and hash(a) == hash(b)
    assert pickle.loads(pickle.dumps(a)) == a
    assert repr(a) == f"LocalStorage({str(tmp_path)!r})"


def test_bytes_path_rejected() -> None:
    with pytest.raises(TypeError):
        LocalStorage(b"/tmp")


def test_many_files_and_big_reads(store: LocalStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    import atlas.storage.local as local

    monkeypatch.setattr(local, "_OPEN_BATCH", 3)  # several batches of open files
    blobs = {f"data/{i}.seg": os.urandom(300_000 + i) for i in range(8)}
    for k, v in blobs.items():
        store.put(k, v)
    requests = [(k, [0, 299_000, 1000], [len(v), 5000, 10]) for k, v in blobs.items()]
    got = store.get_many_ranges(requests)  # > _INLINE_BYTES: read on the I/O pool
    for (k, starts, lengths), res in zip(requests, got, strict=True):
        assert [bytes(r) for r in res] == [blobs[k][s : s + n] for s, n in zip(starts, lengths, strict=True)]
    with pytest.raises(FileNotFoundError):
        store.get_many_ranges([*requests, ("data/missing", [0], [1])])


def test_local_reads_allocate_about_the_file_size(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "s", create=True)
    payload = bytes(range(256)) * 40
    storage.put("index/x.idx", payload)
    tracemalloc.start()
    try:
        got = storage.get("index/x.idx")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == payload
    assert peak < 256 << 10, f"{peak} bytes allocated to read a {len(payload)}-byte file"


@pytest.mark.skipif(os.name != "posix", reason="spans are mapped on POSIX systems only")
def test_transient_reads_map_long_spans_and_other_reads_copy(store: LocalStorage) -> None:
    """A caller that drops what it read soon (blocks it decodes) may get views of the file's
    pages: no fresh memory to fill. Other reads copy, since what they return may be kept,
    and a mapping holds a file descriptor while it lives."""
    import mmap

    data = os.urandom(1 << 20)
    store.put("seg", data)
    starts = [12_345, 800_000, 1_000_000, 5 << 20]  # unaligned, short, past the end, beyond it
    lengths = [300_000, 100, 200_000, 70_000]
    expected = [data[s : s + n] for s, n in zip(starts, lengths, strict=True)]
    (got,) = store.get_many_ranges_transient([("seg", starts, lengths)])
    assert [bytes(g) for g in got] == expected
    long_span = got[0]
    assert isinstance(long_span, memoryview) and isinstance(long_span.obj, mmap.mmap)
    assert long_span.readonly
    assert not isinstance(memoryview(got[1]).obj, mmap.mmap)  # 100 bytes: read, not mapped
    for kept in (store.get_ranges("seg", starts, lengths), store.get_many_ranges([("seg", starts, lengths)])[0]):
        assert [bytes(g) for g in kept] == expected
        assert not any(isinstance(memoryview(g).obj, mmap.mmap) for g in kept)


@pytest.mark.skipif(os.name != "posix", reason="spans are mapped on POSIX systems only")
def test_a_transient_read_maps_a_bounded_number_of_spans(store: LocalStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    import mmap

    import atlas.storage.local as local

    monkeypatch.setattr(local, "_MAPPED_SPANS", 3)
    monkeypatch.setattr(local, "_OPEN_BATCH", 2)  # the bound holds over batches of files
    blobs = {f"s{i}": os.urandom(100_000 + i) for i in range(5)}
    for k, v in blobs.items():
        store.put(k, v)
    got = store.get_many_ranges_transient([(k, [0], [len(v)]) for k, v in blobs.items()])
    assert [bytes(g[0]) for g in got] == list(blobs.values())
    assert sum(isinstance(memoryview(g[0]).obj, mmap.mmap) for g in got) == 3


@pytest.mark.skipif(os.name != "posix", reason="spans are mapped on POSIX systems only")
def test_a_mapped_span_outlives_the_removal_of_its_file(store: LocalStorage) -> None:
    data = os.urandom(1 << 20)
    store.put("seg", data)
    ((view,),) = store.get_many_ranges_transient([("seg", [4096], [500_000])])
    store.delete("seg")
    assert bytes(view) == data[4096 : 4096 + 500_000]


def test_spans_are_read_where_files_cannot_be_mapped(store: LocalStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    import mmap

    import atlas.storage.local as local

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENODEV, "no mapping on this file system")

    mapping = mmap.mmap
    monkeypatch.setattr(local.mmap, "mmap", refuse)
    data = os.urandom(1 << 20)
    store.put("seg", data)
    ((got,),) = store.get_many_ranges_transient([("seg", [1000], [400_000])])
    assert bytes(got) == data[1000:401_000]
    assert not isinstance(memoryview(got).obj, mapping)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files through /proc/self/fd (Linux)")
def test_what_a_handle_keeps_holds_no_file_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Catalogue fields, array columns and uncompressed blocks are kept by a handle: none of
    them may be a view of a mapped file, which would hold a file descriptor for as long."""
    import numpy as np

    import atlas
    from atlas.core import table
    from atlas.format import shard

    monkeypatch.setattr(table, "SHARD_ROWS", 32)
    monkeypatch.setattr(shard, "SHARD_ROWS", 32)
    store = atlas.Atlas.create(tmp_path / "s", codec="none")
    for i in range(320):  # 10 shards; blocks of 80 KB, long enough to be mapped
        ds = store.create_dataset(f"d{i:04d}")
        ds.set_attribute("cycle", i)
        ds.set_attribute("note", os.urandom(2048).hex())  # a field of over 64 KiB in each shard
        ds.define_array("t", "float64", ["z"], [10_000])
        ds.write_array("t", [0], np.full(10_000, float(i)))
    store.flush()
    opened = atlas.Atlas.open(tmp_path / "s")
    names = opened.list_datasets()
    before = len(os.listdir("/proc/self/fd"))
    table_ = opened.catalog()
    scanned = opened.read_array_across("t", names)
    one = [opened.open_dataset(n).read_array("t") for n in names[:100]]
    assert len(table_) == 320 and float(scanned[-1][0]) == 319.0 and float(one[-1][0]) == 99.0
    assert len(os.listdir("/proc/self/fd")) <= before + 2
