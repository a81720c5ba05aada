"""Maintenance next to readers and writers: compaction from the newest version, a grace
period before files go, version numbers never reused, commits that report exactly what
happened, replaced index files noticed, tags and expiry."""

from __future__ import annotations

import datetime as dt
import errno
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import atlas
from atlas.storage import LocalStorage, MemoryStorage
from atlas.storage.wrappers import WrappedStorage


def _add(store: atlas.Atlas, name: str, n: int = 50, value: float = 1.0) -> None:
    ds = store.create_dataset(name)
    ds.define_array("x", "float64", ["z"], [n])
    ds.write_array("x", [0], np.full(n, value))


def _store(tmp_path: Path, names: int = 3) -> Path:
    path = tmp_path / "s"
    store = atlas.Atlas.create(path)
    for i in range(names):
        _add(store, f"d{i}", value=float(i))
    store.flush()
    return path


def _values(path: Path | Any) -> dict[str, float]:
    store = atlas.Atlas.open(path)
    names = store.list_datasets()
    return {n: float(a[0]) for n, a in zip(names, store.read_array_across("x", names), strict=True)}


# ------------------------------------------------------------------ compaction works from the newest


@pytest.mark.parametrize("keep", [1, 2])
def test_stale_handle_compaction_keeps_the_newer_version(tmp_path: Path, keep: int) -> None:
    path = _store(tmp_path)
    stale = atlas.Atlas.open(path)
    other = atlas.Atlas.open(path)
    other.delete_dataset("d0")
    _add(other, "new", value=9.0)
    other.flush()
    stale.compact(keep_versions=keep)
    assert _values(path) == {"d1": 1.0, "d2": 2.0, "new": 9.0}
    assert atlas.Atlas.open(path).verify() == []
    assert stale.version >= other.version and stale.list_datasets() == ["d1", "d2", "new"]


def test_stale_handle_with_changes_cannot_compact(tmp_path: Path) -> None:
    path = _store(tmp_path)
    stale = atlas.Atlas.open(path)
    _add(stale, "mine")
    other = atlas.Atlas.open(path)
    other.delete_dataset("d0")
    other.flush()
    with pytest.raises(atlas.ConflictError):
        stale.compact()
    assert _values(path) == {"d1": 1.0, "d2": 2.0}


def test_views_from_before_a_compaction_that_advanced_the_handle_refuse_writes(tmp_path: Path) -> None:
    path = _store(tmp_path)
    stale = atlas.Atlas.open(path)
    view = stale.open_dataset("d1")
    other = atlas.Atlas.open(path)
    other.delete_dataset("d0")
    other.flush()
    stale.compact()
    np.testing.assert_array_equal(view.read_array("x"), np.full(50, 1.0))  # reads still work
    with pytest.raises(KeyError, match="open the dataset again"):
        view.write_array("x", [0], np.zeros(3))
    stale.open_dataset("d1").write_array("x", [0], np.zeros(3))
    stale.flush()
    assert _values(path)["d1"] == 0.0


# ------------------------------------------------------------------ live writers and the grace period


def _writer_with_written_ahead_segments(path: Path) -> atlas.Atlas:
    writer = atlas.Atlas.open(path)
    writer.buffer_bytes = 1  # every write goes ahead to a segment no manifest names yet
    for i in range(5):
        _add(writer, f"w{i}", value=100.0 + i)
    assert writer._variables["x"].pending_segments
    return writer


def test_compaction_keeps_a_live_writers_segments_by_default(tmp_path: Path) -> None:
    path = _store(tmp_path)
    writer = _writer_with_written_ahead_segments(path)
    atlas.Atlas.open(path).compact()  # nothing to rewrite: only garbage collection
    writer.flush()
    assert _values(path) == {"d0": 0.0, "d1": 1.0, "d2": 2.0} | {f"w{i}": 100.0 + i for i in range(5)}
    assert atlas.Atlas.open(path).verify() == []


def test_a_writer_whose_segments_were_pruned_gets_a_conflict_not_a_broken_commit(tmp_path: Path) -> None:
    path = _store(tmp_path)
    writer = _writer_with_written_ahead_segments(path)
    atlas.Atlas.open(path).compact(grace_period=0)  # the impatient: prune now
    with pytest.raises(atlas.ConflictError, match="wrote ahead"):
        writer.flush()
    assert _values(path) == {"d0": 0.0, "d1": 1.0, "d2": 2.0}
    assert atlas.Atlas.open(path).verify() == []


def test_a_writer_behind_a_compaction_that_rewrote_data_gets_a_conflict(tmp_path: Path) -> None:
    path = _store(tmp_path)
    writer = _writer_with_written_ahead_segments(path)
    cleaner = atlas.Atlas.open(path)
    cleaner.delete_dataset("d0")
    cleaner.flush()
    cleaner.compact(grace_period=0)
    with pytest.raises(atlas.ConflictError):
        writer.flush()
    assert _values(path) == {"d1": 1.0, "d2": 2.0}


def test_a_version_number_is_never_taken_twice(tmp_path: Path) -> None:
    path = _store(tmp_path)
    for i in range(2):  # versions 2, 3
        s = atlas.Atlas.open(path)
        _add(s, f"e{i}")
        s.flush()
    late = atlas.Atlas.open(path)  # version 3
    _add(late, "late", value=7.0)
    cleaner = atlas.Atlas.open(path)
    cleaner.delete_dataset("d0")
    cleaner.flush()  # version 4
    cleaner.compact(grace_period=0)  # version 5; 0..4 expired and removed
    assert cleaner.version == 5
    with pytest.raises(atlas.ConflictError):
        late.flush()  # would have re-created manifest 4
    fresh = atlas.Atlas.open(path)
    assert fresh.version == 5 and "late" not in fresh.list_datasets()
    assert [v["version"] for v in fresh.versions()] == [5]
    with pytest.raises(atlas.VersionRemovedError, match="version 4 .* removed by compaction"):
        atlas.Atlas.open(path, version=4)


# ------------------------------------------------------------------ readers of expired versions


def test_a_pinned_reader_keeps_reading_through_the_grace_period(tmp_path: Path) -> None:
    path = _store(tmp_path)
    old = atlas.Atlas.open(path, version=1)
    cleaner = atlas.Atlas.open(path)
    cleaner.delete_dataset("d0")
    cleaner.flush()
    cleaner.compact(grace_period=dt.timedelta(hours=1))
    assert [float(a[0]) for a in old.read_array_across("x", ["d0", "d1"])] == [0.0, 1.0]
    with pytest.raises(atlas.VersionRemovedError, match="expired"):
        atlas.Atlas.open(path, version=1)


def test_a_reader_whose_version_was_removed_is_told_so(tmp_path: Path) -> None:
    path = _store(tmp_path)
    old = atlas.Atlas.open(path, version=1)
    cleaner = atlas.Atlas.open(path)
    cleaner.delete_dataset("d0")
    cleaner.flush()
    cleaner.compact()  # the default: what it replaced goes at once
    with pytest.raises(atlas.VersionRemovedError, match="version 1 .* removed by compaction at .*reopen"):
        old.read_array_across("x", ["d0", "d1"])
    with pytest.raises(KeyError):  # VersionRemovedError is a KeyError, as a missing version was
        old.open_dataset("d1").read_array("x")


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
    path = _store(tmp_path, names=6)
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


# ------------------------------------------------------------------ a commit reports exactly what happened


class _Flaky(WrappedStorage):
    """Fails chosen calls after (or instead of) doing them."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.store_then_fail: str | None = None  # put_if_absent of keys starting so: store, then raise
        self.fail_puts: str | None = None  # put of keys starting so: raise (not an OSError)
        self.fail_reads = False

    def put_if_absent(self, key: str, data: Any) -> bool:
        if self.store_then_fail and key.startswith(self.store_then_fail):
            self.inner.put_if_absent(key, data)
            raise ConnectionResetError("the response was lost")
        return self.inner.put_if_absent(key, data)

    def put(self, key: str, data: Any) -> None:
        if self.fail_puts and key.startswith(self.fail_puts):
            raise RuntimeError("GenericError: the server refused the request")
        self.inner.put(key, data)

    def get(self, key: str) -> bytes:
        if self.fail_reads:
            raise TimeoutError("the server does not answer")
        return self.inner.get(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if self.fail_reads:
            raise TimeoutError("the server does not answer")
        return self.inner.get_range(key, start, length)


def test_a_failing_hint_after_the_commit_does_not_fail_the_flush() -> None:
    flaky = _Flaky(MemoryStorage())
    store = atlas.Atlas.create(flaky)
    flaky.fail_puts = "manifests/latest"
    _add(store, "a")
    store.flush()
    assert store.version == 1 and atlas.Atlas.open(flaky.inner).list_datasets() == ["a"]


def test_a_lost_response_to_the_commit_is_read_back() -> None:
    flaky = _Flaky(MemoryStorage())
    store = atlas.Atlas.create(flaky)
    _add(store, "a")
    flaky.store_then_fail = "manifests/"
    store.flush()  # landed: no error, no retry needed
    flaky.store_then_fail = None
    assert store.version == 1
    store.flush()  # a retry is a no-op
    _add(store, "b")
    store.flush()
    fresh = atlas.Atlas.open(flaky.inner)
    assert fresh.version == 2 and fresh.list_datasets() == ["a", "b"]


def test_an_unknown_outcome_is_settled_by_the_next_flush() -> None:
    flaky = _Flaky(MemoryStorage())
    store = atlas.Atlas.create(flaky)
    _add(store, "a")
    flaky.store_then_fail = "manifests/"
    flaky.fail_reads = True
    with pytest.raises(atlas.CommitOutcomeUnknownError, match="call flush"):
        store.flush()
    with pytest.raises(atlas.ConflictError, match="settle"):
        _add(store, "b")  # changes wait until the outcome is known
    flaky.store_then_fail = None
    flaky.fail_reads = False
    store.flush()  # finds its own commit: done, nothing written twice
    assert store.version == 1
    _add(store, "b")
    store.flush()
    fresh = atlas.Atlas.open(flaky.inner)
    assert fresh.version == 2 and fresh.list_datasets() == ["a", "b"]
    assert fresh.verify() == []


def test_a_failed_directory_fsync_after_the_link_does_not_fail_the_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import atlas.storage.local as local

    store = atlas.Atlas.create(tmp_path / "s")
    _add(store, "a")
    real = local._fsync_dir
    calls = {"n": 0}

    def failing(path: str) -> None:
        if path.endswith("manifests"):
            calls["n"] += 1
            raise OSError(errno.EIO, "Input/output error")
        real(path)

    monkeypatch.setattr(local, "_fsync_dir", failing)
    store.flush()
    monkeypatch.setattr(local, "_fsync_dir", real)
    assert calls["n"] >= 1
    assert store.version == 1 and _values(tmp_path / "s") == {"a": 1.0}


# ------------------------------------------------------------------ replaced files are noticed


def test_an_older_index_copied_over_the_newest_is_detected(tmp_path: Path) -> None:
    path = _store(tmp_path, names=2)
    store = atlas.Atlas.open(path)
    store.open_dataset("d0").write_array("x", [0], np.full(50, 5.0))
    store.flush()
    old_idx, new_idx = sorted((path / "index").iterdir(), key=lambda p: p.stat().st_mtime_ns)
    new_idx.write_bytes(old_idx.read_bytes())  # a valid index, but not this version's
    fresh = atlas.Atlas.open(path)
    with pytest.raises(atlas.CorruptionError, match="replaced"):
        fresh.read_array_across("x", ["d0"])
    problems = atlas.Atlas.open(path).verify()
    assert problems and "replaced" in problems[0]


def test_verify_reports_a_segment_of_the_wrong_length(tmp_path: Path) -> None:
    path = _store(tmp_path, names=2)
    (seg,) = (path / "data").iterdir()
    with open(seg, "ab") as f:
        f.write(b"extra")
    problems = atlas.Atlas.open(path).verify()
    assert problems and any("length" in p or "size" in p for p in problems), problems


# ------------------------------------------------------------------ orphans are reported


def test_verify_and_info_report_unreferenced_files(tmp_path: Path) -> None:
    path = _store(tmp_path)
    _writer_with_written_ahead_segments(path)  # dropped unflushed: its segments are orphans
    result = atlas.Atlas.open(path).verify()
    assert result == [] and result.unreferenced_files > 0 and result.unreferenced_bytes > 0
    assert "compact" in result.notes[0]
    atlas.Atlas.open(path).compact(grace_period=0)
    after = atlas.Atlas.open(path).verify()
    assert after == [] and after.unreferenced_files == 0 and after.notes == []


# ------------------------------------------------------------------ tags and expiry


def test_tags_name_versions_and_survive_compaction(tmp_path: Path) -> None:
    path = _store(tmp_path)
    store = atlas.Atlas.open(path)
    store.tag("first")
    store.delete_dataset("d0")
    store.flush()
    store.tag("second")
    assert store.tags() == {"first": 1, "second": 2}
    with pytest.raises(FileExistsError):
        store.tag("first", 2)
    store.compact(grace_period=0)
    assert atlas.Atlas.open(path, version="first").list_datasets() == ["d0", "d1", "d2"]
    assert _values(atlas.Atlas.open(path, version="first").storage) == {"d1": 1.0, "d2": 2.0}
    assert {v["version"] for v in store.versions()} == {1, 2, 3}
    tagged = atlas.Atlas.open(path, version="first")
    assert float(tagged.open_dataset("d0").read_array("x")[0]) == 0.0
    with pytest.raises(atlas.ReadOnlyError):
        tagged.create_dataset("no")
    store.delete_tag("first")
    store.compact(grace_period=0)
    assert {v["version"] for v in store.versions()} == {2, 3}
    with pytest.raises(KeyError, match="no tag named 'first'"):
        atlas.Atlas.open(path, version="first")
    with pytest.raises(KeyError):
        store.delete_tag("first")


@pytest.mark.parametrize("bad", ["", "a/b", ".hidden", "_x", "tab\there"])
def test_bad_tag_names_are_refused(tmp_path: Path, bad: str) -> None:
    store = atlas.Atlas.open(_store(tmp_path))
    with pytest.raises(ValueError, match="invalid tag name"):
        store.tag(bad)
    with pytest.raises(TypeError):
        store.tag(3)  # type: ignore[arg-type]
    assert store.tags() == {} and not (tmp_path / "s" / "tags").exists()


def test_expire_versions_by_count_and_age(tmp_path: Path) -> None:
    path = _store(tmp_path)
    store = atlas.Atlas.open(path)
    for i in range(4):
        _add(store, f"e{i}")
        store.flush()  # versions 2..5
    store.tag("keepme", 2)
    assert store.expire_versions(keep=2) == [0, 1, 3]
    assert [v["version"] for v in store.versions()] == [2, 4, 5]
    assert store.expire_versions(older_than=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)) == []
    assert store.expire_versions(older_than=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)) == [4]
    with pytest.raises(ValueError, match="say which"):
        store.expire_versions()
    report = store.garbage_collect(grace_period=0)
    assert report["removed_versions"] == [0, 1, 3, 4]
    assert atlas.Atlas.open(path).verify() == []
    assert _values(path) == {"d0": 0.0, "d1": 1.0, "d2": 2.0} | {f"e{i}": 1.0 for i in range(4)}
    assert atlas.Atlas.open(path, version="keepme").list_datasets() == ["d0", "d1", "d2", "e0"]


def test_garbage_collection_waits_for_the_grace_period(tmp_path: Path) -> None:
    path = _store(tmp_path)
    store = atlas.Atlas.open(path)
    store.delete_dataset("d0")
    store.flush()
    store.compact(grace_period=3600)
    on_disk = sorted(p.name for p in (path / "data").iterdir())
    assert store.garbage_collect()["deleted_files"] == 0  # the default hour has not passed
    assert sorted(p.name for p in (path / "data").iterdir()) == on_disk
    assert store.garbage_collect(grace_period=0)["deleted_files"] > 0
    assert atlas.Atlas.open(path).verify() == []


def test_storage_listing_times_drive_the_grace_period(tmp_path: Path) -> None:
    path = _store(tmp_path)
    writer = _writer_with_written_ahead_segments(path)
    del writer
    storage = LocalStorage(path)
    orphans = [k for k, _, _ in storage.list_details("data/")]
    old = 1_000_000_000  # 2001: long past any grace period
    for k in orphans:
        os.utime(path / k, (old, old))
    atlas.Atlas.open(path).compact()  # the default hour has passed for these files
    assert atlas.Atlas.open(path).verify().unreferenced_files == 0
    assert _values(path) == {"d0": 0.0, "d1": 1.0, "d2": 2.0}


def test_stray_files_in_the_manifest_folder_are_ignored(tmp_path: Path) -> None:
    path = _store(tmp_path)
    newest = sorted((path / "manifests").glob("0*"))[-1]
    backup = newest.read_bytes()
    (path / "manifests" / "0000000009.json~").write_bytes(backup)  # an editor's backup
    (path / "manifests" / "0000000008.json.bak").write_bytes(backup)
    (path / "manifests" / "0000000007.msgpack").write_bytes(backup)  # not this store's encoding
    assert atlas.Atlas.open(path).version == 1
    assert [v["version"] for v in atlas.Atlas.open(path).versions()] == [0, 1]
    store = atlas.Atlas.open(path)
    _add(store, "more")
    store.flush()
    assert store.version == 2 and atlas.Atlas.open(path).verify() == []
