"""Commits: a second writer gets a conflict, written-ahead data stays invisible until the
flush, and a commit reports exactly what happened whatever the storage did: the manifest
read back after a failed put is ours, another writer's, or absent (torn counts as absent)."""

from __future__ import annotations

import errno
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from store_helpers import add_dataset, first_values, stored_files, write_profiles

import atlas
from atlas.core import commit
from atlas.format import manifest as mf
from atlas.storage import MemoryStorage
from atlas.storage.wrappers import WrappedStorage


def test_second_writer_gets_a_conflict_and_nothing_is_lost(tmp_path: Path) -> None:
    atlas.Atlas.create(tmp_path / "s").flush()
    a = atlas.Atlas.open(tmp_path / "s")
    b = atlas.Atlas.open(tmp_path / "s")
    write_profiles(a, 2, prefix="a")
    write_profiles(b, 2, prefix="b")
    a.flush()
    with pytest.raises(atlas.ConflictError) as err:
        b.flush()
    assert isinstance(err.value, RuntimeError)
    assert "moved on" in str(err.value)
    # the loser's changes stay buffered and visible to it; the store holds the winner's
    assert b.open_dataset("b0").read_array("temperature") is not None
    fresh = atlas.Atlas.open(tmp_path / "s")
    assert fresh.list_datasets() == ["a0", "a1"]
    with pytest.raises(atlas.ConflictError):
        b.flush()


def test_a_flush_that_lost_its_version_leaves_only_its_segments(tmp_path: Path) -> None:
    """Its index file and shards are named by no manifest, ever: they are removed at once.
    Its segments stay, for the flush that commits the changes after all."""
    atlas.Atlas.create(tmp_path / "s").flush()
    a = atlas.Atlas.open(tmp_path / "s")
    b = atlas.Atlas.open(tmp_path / "s")
    write_profiles(a, 2, prefix="a")
    write_profiles(b, 2, prefix="b")
    a.flush()
    before = stored_files(tmp_path / "s")
    with pytest.raises(atlas.ConflictError):
        b.flush()
    new = sorted(set(stored_files(tmp_path / "s")) - set(before))
    assert len(new) == 1 and new[0].startswith("data/"), new
    assert atlas.Atlas.open(tmp_path / "s").verify().unreferenced_files == 1


def test_write_ahead_bounds_memory_and_stays_invisible_until_flush(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    store.buffer_bytes = 2 << 20
    ds = store.create_dataset("big")
    n = 64
    ds.define_array("x", "float64", ["t", "z"], [n, 65536], chunk_shape=[1, 65536])
    tracemalloc.start()
    row = np.arange(65536, dtype=np.float64)
    for i in range(n):
        ds.write_array("x", [i, 0], (row + i)[None, :])  # 32 MiB in total
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 12 << 20
    assert any(f.startswith("data/") for f in stored_files(tmp_path / "s"))
    # written ahead, not yet committed: another handle sees nothing
    assert atlas.Atlas.open(tmp_path / "s").list_datasets() == []
    # the writer reads its own data back, from segments and memory alike
    np.testing.assert_array_equal(ds.read_array("x", [10, 0], [1, 65536])[0], row + 10)
    store.flush()
    again = atlas.Atlas.open(tmp_path / "s").open_dataset("big")
    np.testing.assert_array_equal(again.read_array("x", [63, 0], [1, 5])[0], row[:5] + 63)
    assert again.array_stats("x")["max"] == 65535.0 + 63


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
    add_dataset(store, "a")
    store.flush()
    assert store.version == 1 and atlas.Atlas.open(flaky.inner).list_datasets() == ["a"]


def test_a_lost_response_to_the_commit_is_read_back() -> None:
    flaky = _Flaky(MemoryStorage())
    store = atlas.Atlas.create(flaky)
    add_dataset(store, "a")
    flaky.store_then_fail = "manifests/"
    store.flush()  # landed: no error, no retry needed
    flaky.store_then_fail = None
    assert store.version == 1
    store.flush()  # a retry is a no-op
    add_dataset(store, "b")
    store.flush()
    fresh = atlas.Atlas.open(flaky.inner)
    assert fresh.version == 2 and fresh.list_datasets() == ["a", "b"]


def test_an_unknown_outcome_is_settled_by_the_next_flush() -> None:
    flaky = _Flaky(MemoryStorage())
    store = atlas.Atlas.create(flaky)
    add_dataset(store, "a")
    flaky.store_then_fail = "manifests/"
    flaky.fail_reads = True
    with pytest.raises(atlas.CommitOutcomeUnknownError, match="call flush"):
        store.flush()
    with pytest.raises(atlas.ConflictError, match="settle"):
        add_dataset(store, "b")  # changes wait until the outcome is known
    flaky.store_then_fail = None
    flaky.fail_reads = False
    store.flush()  # finds its own commit: done, nothing written twice
    assert store.version == 1
    add_dataset(store, "b")
    store.flush()
    fresh = atlas.Atlas.open(flaky.inner)
    assert fresh.version == 2 and fresh.list_datasets() == ["a", "b"]
    assert fresh.verify() == []


def test_a_failed_directory_fsync_after_the_link_does_not_fail_the_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import atlas.storage.local as local

    store = atlas.Atlas.create(tmp_path / "s")
    add_dataset(store, "a")
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
    assert store.version == 1 and first_values(tmp_path / "s") == {"a": 1.0}



# ------------------------------------------------------------------ reading a commit back

KEY = "manifests/0000000001.json"


def _manifest(token: str | None) -> bytes:
    head: dict[str, Any] = {"atlas": "manifest", "format_version": 1, "version": 1}
    if token is not None:
        head["commit"] = token
    return mf.encode_manifest({"version": 1}, head, "json", "none")


class _Unanswering(WrappedStorage):
    """Reads fail ``failures`` times (a server that does not answer), then work."""

    def __init__(self, inner: Any, failures: int) -> None:
        super().__init__(inner)
        self.failures = failures
        self.gets = 0

    def get(self, key: str) -> bytes:
        self.gets += 1
        if self.failures:
            self.failures -= 1
            raise TimeoutError(f"no answer ({self.gets})")
        return self.inner.get(key)


@pytest.fixture
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commit, "READ_BACK_PAUSES", (0.0,) * len(commit.READ_BACK_PAUSES))


def test_commit_outcome_tells_ours_theirs_and_absent() -> None:
    storage = MemoryStorage()
    token = commit.new_token()
    assert len(token) == 32 and token != commit.new_token()
    assert commit.commit_outcome(storage, KEY, 1, token) == "absent"
    storage.put(KEY, _manifest(token))
    assert commit.commit_outcome(storage, KEY, 1, token) == "ours"
    assert commit.commit_outcome(storage, KEY, 1, commit.new_token()) == "theirs"
    storage.put(KEY, _manifest(None))  # written before commits carried tokens
    assert commit.commit_outcome(storage, KEY, 1, token) == "theirs"
    storage.put(KEY, b"something that is not a manifest at all")
    assert commit.commit_outcome(storage, KEY, 1, token) == "theirs"


def test_a_torn_manifest_of_ours_counts_as_absent() -> None:
    storage = MemoryStorage()
    token = commit.new_token()
    whole = _manifest(token)
    storage.put(KEY, whole[:-3])  # the failed write left part of the body
    assert commit.commit_outcome(storage, KEY, 1, token) == "absent"
    storage.put(KEY, whole[:-1] + b"]")  # whole length, damaged body
    assert commit.commit_outcome(storage, KEY, 1, token) == "absent"


def test_commit_outcome_asks_again_then_gives_up_with_the_storage_error(no_pauses: None) -> None:
    token = commit.new_token()
    inner = MemoryStorage()
    inner.put(KEY, _manifest(token))
    patient = _Unanswering(inner, failures=len(commit.READ_BACK_PAUSES) - 1)
    assert commit.commit_outcome(patient, KEY, 1, token) == "ours"
    silent = _Unanswering(inner, failures=100)
    with pytest.raises(TimeoutError, match=f"no answer \\({len(commit.READ_BACK_PAUSES)}\\)"):
        commit.commit_outcome(silent, KEY, 1, token)
    assert silent.gets == len(commit.READ_BACK_PAUSES)


class _PutFails(WrappedStorage):
    """``put_if_absent`` raises; with ``lands`` the object is stored first."""

    def __init__(self, inner: Any, lands: bool) -> None:
        super().__init__(inner)
        self.lands = lands

    def put_if_absent(self, key: str, data: Any) -> bool:
        if self.lands:
            self.inner.put_if_absent(key, data)
        raise ConnectionResetError("connection reset")


def test_publish_reports_what_landed(no_pauses: None) -> None:
    token = commit.new_token()
    data = _manifest(token)
    storage = MemoryStorage()
    assert commit.publish(storage, KEY, 1, data, token) is True
    assert commit.publish(storage, KEY, 1, _manifest("other"), "other") is False  # taken
    assert storage.get(KEY) == data
    assert commit.publish(_PutFails(MemoryStorage(), lands=True), KEY, 1, data, token) is True
    lost = _PutFails(MemoryStorage(), lands=False)
    with pytest.raises(ConnectionResetError):  # nothing landed: the put's own error
        commit.publish(lost, KEY, 1, data, token)
    taken = _PutFails(MemoryStorage(), lands=False)
    taken.inner.put(KEY, _manifest("other"))
    assert commit.publish(taken, KEY, 1, data, token) is False
    unknown = _Unanswering(_PutFails(MemoryStorage(), lands=True), failures=100)
    with pytest.raises(atlas.CommitOutcomeUnknownError, match="could not be asked"):
        commit.publish(unknown, KEY, 1, data, token)


def test_string_statistics_are_taken_before_the_strings_are_written_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not read back from the blocks at commit (the blocks would fill the block cache)."""
    store = atlas.Atlas.create(tmp_path / "s")
    store.buffer_bytes = 1 << 10
    for i in range(40):
        ds = store.create_dataset(f"d{i}")
        ds.define_array("name", "string", ["n"], [3], fill_value="")
        ds.write_array("name", [0], np.array([f"b{i:02d}", "", f"a{i:02d}"], dtype=object))
    assert store._string_stats  # written ahead, with their statistics
    ds.write_array("name", [1], np.array(["zz"], dtype=object))  # buffered again: newer

    def no_read_back(*args: Any) -> None:
        raise AssertionError("statistics read back")

    monkeypatch.setattr(commit, "array_stats_from", no_read_back)
    store.flush()
    assert store._string_stats == {}
    fresh = atlas.Atlas.open(tmp_path / "s")
    assert fresh.open_dataset("d3").array_stats("name") == {
        "row_count": 3, "null_count": 1, "min": b"a03", "max": b"b03"
    }
    assert fresh.open_dataset("d39").array_stats("name")["max"] == b"zz"
