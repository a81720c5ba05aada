"""Maintenance next to readers and writers: compaction from the newest version, a grace
period before files go, what verify reports, and expiry."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pytest
from store_helpers import add_dataset, first_values, flushed_store, stored_files, write_profiles

import atlas
from atlas.core.maintenance import grace_seconds
from atlas.storage import LocalStorage

# ------------------------------------------------------------------ compaction works from the newest


@pytest.mark.parametrize("keep", [1, 2])
def test_stale_handle_compaction_keeps_the_newer_version(tmp_path: Path, keep: int) -> None:
    path = flushed_store(tmp_path)
    stale = atlas.Atlas.open(path)
    other = atlas.Atlas.open(path)
    other.delete_dataset("d0")
    add_dataset(other, "new", value=9.0)
    other.flush()
    stale.compact(keep_versions=keep)
    assert first_values(path) == {"d1": 1.0, "d2": 2.0, "new": 9.0}
    assert atlas.Atlas.open(path).verify() == []
    assert stale.version >= other.version and stale.list_datasets() == ["d1", "d2", "new"]


def test_stale_handle_with_changes_cannot_compact(tmp_path: Path) -> None:
    path = flushed_store(tmp_path)
    stale = atlas.Atlas.open(path)
    add_dataset(stale, "mine")
    other = atlas.Atlas.open(path)
    other.delete_dataset("d0")
    other.flush()
    with pytest.raises(atlas.ConflictError):
        stale.compact()
    assert first_values(path) == {"d1": 1.0, "d2": 2.0}


def test_views_from_before_a_compaction_that_advanced_the_handle_refuse_writes(tmp_path: Path) -> None:
    path = flushed_store(tmp_path)
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
    assert first_values(path)["d1"] == 0.0


def test_compact_rewrites_only_variables_that_hold_dead_data(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    for v in ("a", "b"):  # flushed apart: each in segment files of its own
        for i in range(10):
            ds = store.create_dataset(f"d{i}") if v == "a" else store.open_dataset(f"d{i}")
            ds.define_array(v, "int64", ["x"], [100])
            ds.write_array(v, [0], np.arange(100, dtype=np.int64) + i)
        store.flush()
    b_segments = list(store._variables["b"].segments)
    store.open_dataset("d3").delete_array("a")
    store.compact()
    assert store._variables["b"].segments == b_segments
    assert store._variables["a"].segments != []
    files = stored_files(tmp_path / "s")
    for key, _ in b_segments:
        assert key in files
    again = atlas.Atlas.open(tmp_path / "s")
    assert again.open_dataset("d3").read_array("a") is None
    assert again.open_dataset("d4").read_array("a").tolist() == list(range(4, 104))


def test_compact_copies_the_variables_sharing_a_segment_with_dead_data(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    for i in range(10):  # one flush: a and b share their segment files
        ds = store.create_dataset(f"d{i}")
        for v in ("a", "b"):
            ds.define_array(v, "int64", ["x"], [100])
            ds.write_array(v, [0], np.arange(100, dtype=np.int64) + i)
    store.flush()
    shared = {k for k, _ in store._variables["a"].segments}
    assert shared == {k for k, _ in store._variables["b"].segments}
    store.open_dataset("d3").delete_array("a")
    store.compact()
    files = stored_files(tmp_path / "s")
    assert not shared & set(files)  # the shared file went: both variables were copied
    again = atlas.Atlas.open(tmp_path / "s")
    assert again.open_dataset("d4").read_array("b").tolist() == list(range(4, 104))
    assert again.verify() == []


# ------------------------------------------------------------------ live writers and the grace period


def _writer_with_written_ahead_segments(path: Path) -> atlas.Atlas:
    writer = atlas.Atlas.open(path)
    writer.buffer_bytes = 1  # every write goes ahead to a segment no manifest names yet
    for i in range(5):
        add_dataset(writer, f"w{i}", value=100.0 + i)
    assert writer._variables["x"].pending_segments
    return writer


def test_compaction_keeps_a_live_writers_segments_by_default(tmp_path: Path) -> None:
    path = flushed_store(tmp_path)
    writer = _writer_with_written_ahead_segments(path)
    atlas.Atlas.open(path).compact()  # nothing to rewrite: only garbage collection
    writer.flush()
    assert first_values(path) == {"d0": 0.0, "d1": 1.0, "d2": 2.0} | {f"w{i}": 100.0 + i for i in range(5)}
    assert atlas.Atlas.open(path).verify() == []


def test_a_writer_whose_segments_were_pruned_gets_a_conflict_not_a_broken_commit(tmp_path: Path) -> None:
    path = flushed_store(tmp_path)
    writer = _writer_with_written_ahead_segments(path)
    atlas.Atlas.open(path).compact(grace_period=0)  # the impatient: prune now
    with pytest.raises(atlas.ConflictError, match="wrote ahead"):
        writer.flush()
    assert first_values(path) == {"d0": 0.0, "d1": 1.0, "d2": 2.0}
    assert atlas.Atlas.open(path).verify() == []


def test_a_writer_behind_a_compaction_that_rewrote_data_gets_a_conflict(tmp_path: Path) -> None:
    path = flushed_store(tmp_path)
    writer = _writer_with_written_ahead_segments(path)
    cleaner = atlas.Atlas.open(path)
    cleaner.delete_dataset("d0")
    cleaner.flush()
    cleaner.compact(grace_period=0)
    with pytest.raises(atlas.ConflictError):
        writer.flush()
    assert first_values(path) == {"d1": 1.0, "d2": 2.0}


def test_dropped_handle_leaves_only_orphans_that_compact_removes(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    write_profiles(store, 5)
    store.flush()
    committed = set(stored_files(tmp_path / "s"))
    writer = atlas.Atlas.open(tmp_path / "s")
    writer.buffer_bytes = 1
    write_profiles(writer, 20, prefix="lost")
    del writer  # never flushed
    assert set(stored_files(tmp_path / "s")) > committed
    store2 = atlas.Atlas.open(tmp_path / "s")
    assert store2.list_datasets() == [f"p{i}" for i in range(5)]
    store2.compact()  # by default, files no version names are kept an hour: a writer may be at work
    leftover = [f for f in stored_files(tmp_path / "s") if f not in committed and not f.startswith("manifests/")]
    assert len(leftover) == 20
    assert store2.verify().unreferenced_files == 20
    store2.compact(grace_period=0)
    leftover = [f for f in stored_files(tmp_path / "s") if f not in committed and not f.startswith("manifests/")]
    assert leftover == []
    assert store2.verify().unreferenced_files == 0
    assert store2.open_dataset("p3").read_array("temperature").shape == (200,)


def test_storage_listing_times_drive_the_grace_period(tmp_path: Path) -> None:
    path = flushed_store(tmp_path)
    writer = _writer_with_written_ahead_segments(path)
    del writer
    storage = LocalStorage(path)
    orphans = [k for k, _, _ in storage.list_details("data/")]
    old = 1_000_000_000  # 2001: long past any grace period
    for k in orphans:
        os.utime(path / k, (old, old))
    atlas.Atlas.open(path).compact()  # the default hour has passed for these files
    assert atlas.Atlas.open(path).verify().unreferenced_files == 0
    assert first_values(path) == {"d0": 0.0, "d1": 1.0, "d2": 2.0}


# ------------------------------------------------------------------ readers of expired versions


def test_a_pinned_reader_keeps_reading_through_the_grace_period(tmp_path: Path) -> None:
    path = flushed_store(tmp_path)
    old = atlas.Atlas.open(path, version=1)
    cleaner = atlas.Atlas.open(path)
    cleaner.delete_dataset("d0")
    cleaner.flush()
    cleaner.compact(grace_period=dt.timedelta(hours=1))
    assert [float(a[0]) for a in old.read_array_across("x", ["d0", "d1"])] == [0.0, 1.0]
    with pytest.raises(atlas.VersionRemovedError, match="expired"):
        atlas.Atlas.open(path, version=1)


# ------------------------------------------------------------------ verify


def test_verify_reports_a_segment_of_the_wrong_length(tmp_path: Path) -> None:
    path = flushed_store(tmp_path, names=2)
    (seg,) = (path / "data").iterdir()
    with open(seg, "ab") as f:
        f.write(b"extra")
    problems = atlas.Atlas.open(path).verify()
    assert problems and any("length" in p or "size" in p for p in problems), problems


def test_verify_and_info_report_unreferenced_files(tmp_path: Path) -> None:
    path = flushed_store(tmp_path)
    _writer_with_written_ahead_segments(path)  # dropped unflushed: its segments are orphans
    result = atlas.Atlas.open(path).verify()
    assert result == [] and result.unreferenced_files > 0 and result.unreferenced_bytes > 0
    assert "compact" in result.notes[0]
    atlas.Atlas.open(path).compact(grace_period=0)
    after = atlas.Atlas.open(path).verify()
    assert after == [] and after.unreferenced_files == 0 and after.notes == []


def test_verify_reads_storage_even_when_the_blocks_are_kept(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    write_profiles(store, 300, digits=1)
    store.flush()
    opened = atlas.Atlas.open(tmp_path / "s")
    names = opened.list_datasets()
    opened.read_array_across("temperature", names)
    assert opened._cache._s
    opened.open_dataset(names[0]).read_array("temperature")
    assert opened._cache._d
    for seg in (tmp_path / "s" / "data").iterdir():
        raw = bytearray(seg.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        seg.write_bytes(bytes(raw))
    problems = opened.verify()
    assert problems and "checksum" in " ".join(problems)


# ------------------------------------------------------------------ expiry and garbage collection


def test_expire_versions_by_count_and_age(tmp_path: Path) -> None:
    path = flushed_store(tmp_path)
    store = atlas.Atlas.open(path)
    for i in range(4):
        add_dataset(store, f"e{i}")
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
    assert first_values(path) == {"d0": 0.0, "d1": 1.0, "d2": 2.0} | {f"e{i}": 1.0 for i in range(4)}
    assert atlas.Atlas.open(path, version="keepme").list_datasets() == ["d0", "d1", "d2", "e0"]


def test_garbage_collection_waits_for_the_grace_period(tmp_path: Path) -> None:
    path = flushed_store(tmp_path)
    store = atlas.Atlas.open(path)
    store.delete_dataset("d0")
    store.flush()
    store.compact(grace_period=3600)
    on_disk = sorted(p.name for p in (path / "data").iterdir())
    assert store.garbage_collect()["deleted_files"] == 0  # the default hour has not passed
    assert sorted(p.name for p in (path / "data").iterdir()) == on_disk
    assert store.garbage_collect(grace_period=0)["deleted_files"] > 0
    assert atlas.Atlas.open(path).verify() == []



def test_grace_periods_are_timedeltas_or_seconds(store: atlas.Atlas) -> None:
    assert grace_seconds(dt.timedelta(minutes=2), "g") == 120.0
    assert grace_seconds(5, "g") == 5.0 and grace_seconds(0.5, "g") == 0.5 and grace_seconds(0, "g") == 0.0
    for bad in (True, "1h", None, [1]):
        with pytest.raises(TypeError, match="g must be a datetime.timedelta or a number of seconds"):
            grace_seconds(bad, "g")
    for bad in (-1, dt.timedelta(seconds=-1), float("nan")):
        with pytest.raises(ValueError, match="g must not be negative"):
            grace_seconds(bad, "g")
    with pytest.raises(TypeError, match="grace_period"):
        store.compact(grace_period="1h")
    with pytest.raises(ValueError, match="grace_period"):
        store.garbage_collect(grace_period=-1)
