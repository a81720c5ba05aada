"""Crash safety of flush and compact: a storage fault at the k-th mutation, for every k.

Three fault models, all through ``FaultyStorage``:

* ``error``: only the k-th mutation fails (a transient I/O error). The same handle must
  then flush successfully and give exactly the new state.
* ``crash``: the k-th and every later mutation fail (the process is gone; nothing more
  reaches the disk). The handle is abandoned.
* ``torn``: as ``crash``, and the k-th write first leaves half of its bytes at the key.

After every fault a fresh handle must show exactly the state before the operation or
the state after it (compared as full logical snapshots), a fresh handle must be able
to commit new changes, and ``compact()`` must leave only files the current manifest
references.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reliability_helpers import (
    Tally,
    handle_snapshot,
    snapshot,
    stray_files,
    without,
)

import atlas
from atlas.storage import LocalStorage
from atlas.storage.wrappers import FaultyStorage

MODES = {
    "error": dict(torn=False, repeat=False),
    "crash": dict(torn=False, repeat=True),
    "torn": dict(torn=True, repeat=True),
}
MAX_K = 400


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Faults here are modelled at the storage API, where a completed put is durable by
    contract; fsync only costs time. Durability of the put itself (fsync order, power
    loss) is tested in test_reliability_powerloss.py."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


# --------------------------------------------------------------------------- the changes


def change_new_datasets(store: atlas.Atlas) -> None:
    rng = np.random.default_rng(1)
    for i in range(3):
        ds = store.create_dataset(f"new{i}")
        ds.define_array("temp", "float32", ["z"], [40], chunk_shape=[16], fill_value=float("nan"))
        ds.write_array("temp", [0], rng.normal(size=40).astype(np.float32))
        ds.define_array("flag", "bool", ["z"], [7])
        ds.write_array("flag", [0], rng.random(7) < 0.5)
        ds.define_array("note", "string", ["k"], [3], fill_value="?")
        ds.write_array("note", [1], np.array([f"n{i}", "ü"], dtype=object))
        ds.define_array("count", "uint16", ["a", "b"], [5, 6], chunk_shape=[2, 3])
        ds.write_array("count", [1, 1], rng.integers(0, 60000, (3, 4)).astype(np.uint16))
        ds.set_attribute("created", i)


def change_overwrite(store: atlas.Atlas) -> None:
    ds0 = store.open_dataset("ds0")
    ds0.write_array("grid", [2, 3], np.full((3, 6), 77, dtype=np.int32))  # read-modify-write
    ds1 = store.open_dataset("ds1")
    ds1.write_array("temp", [0], np.linspace(-1, 1, 40).astype(np.float32))
    ds1.write_array("label", [4], np.array(["changed"], dtype=object))
    ds2 = store.open_dataset("ds2")
    ds2.define_array("extra", "float64", ["q"], [9], chunk_shape=[2])
    ds2.write_array("extra", [3], np.arange(4.0))


def change_delete(store: atlas.Atlas) -> None:
    store.delete_dataset("ds3")
    store.open_dataset("ds0").delete_array("label")
    ds2 = store.open_dataset("ds2")
    ds2.delete_array("grid")
    ds2.define_array("grid", "float64", ["y", "x"], [3, 3], fill_value=float("nan"))
    ds2.write_array("grid", [0, 0], np.eye(3))
    ds3 = store.create_dataset("ds3")
    ds3.define_array("temp", "float32", ["z"], [5])
    ds3.write_array("temp", [0], np.ones(5, dtype=np.float32))


def change_attributes(store: atlas.Atlas) -> None:
    ds0 = store.open_dataset("ds0")
    ds0.set_attribute("i", "now a string")
    ds0.set_attribute("nan", float("nan"))
    ds0.set_attribute("u", 2**64 - 1, dtype="uint64")
    ds0.set_array_attribute("grid", "scale", 0.5, dtype="float32")
    store.open_dataset("ds2").set_attribute("flag", True)


def change_write_ahead(store: atlas.Atlas) -> None:
    store.buffer_bytes = 96 << 10  # chunks are written ahead to unreferenced segments
    for i in range(6):
        ds = store.create_dataset(f"big{i}")
        ds.define_array("field", "float64", ["t"], [20000], chunk_shape=[5000])
        ds.write_array("field", [0], np.arange(20000, dtype=np.float64) * (i + 1))
        ds.define_array("temp", "float32", ["z"], [3000])
        ds.write_array("temp", [0], np.full(3000, i, dtype=np.float32))
    store.open_dataset("ds1").write_array("grid", [0, 0], np.zeros((6, 10), dtype=np.int32))


CHANGES: dict[str, Callable[[atlas.Atlas], None]] = {
    "new_datasets": change_new_datasets,
    "overwrite": change_overwrite,
    "delete": change_delete,
    "attributes": change_attributes,
    "write_ahead": change_write_ahead,
}


def base_store(path: Path) -> None:
    """Two committed versions of four datasets (chunked, string, timestamp, fill values)."""
    rng = np.random.default_rng(0)
    store = atlas.Atlas.create(path)
    for i in range(4):
        ds = store.create_dataset(f"ds{i}")
        ds.define_array("temp", "float32", ["z"], [40], chunk_shape=[16], fill_value=float("nan"))
        ds.define_array("grid", "int32", ["y", "x"], [6, 10], chunk_shape=[4, 4], fill_value=-1)
        ds.define_array("label", "string", ["k"], [5])
        ds.define_array("time", "timestamp_nanoseconds", ["t"], [4])
        ds.write_array("temp", [0], rng.normal(size=40).astype(np.float32))
        ds.write_array("grid", [0, 0], rng.integers(-9, 9, (6, 10)).astype(np.int32))
        ds.write_array("label", [0], np.array([f"l{i}{j}" for j in range(5)], dtype=object))
        ds.write_array("time", [0], np.arange(4, dtype=np.int64) + i)
        ds.set_attribute("i", i)
        ds.set_array_attribute("temp", "units", "K")
        if i == 1:
            store.flush()
    store.flush()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "store"
    base_store(path)
    return path


def fresh_copy(template: Path, where: Path, k: int) -> Path:
    dst = where / f"k{k}"
    shutil.copytree(template, dst)
    return dst


def reference_states(template: Path, where: Path, change: Callable[[atlas.Atlas], None]) -> tuple[Any, Any, int]:
    """(old snapshot, new snapshot, old version) from a fault-free run."""
    ref = where / "reference"
    shutil.copytree(template, ref)
    old = snapshot(ref)
    store = atlas.Atlas.open(ref)
    version = store.version
    change(store)
    store.flush()
    new = snapshot(ref)
    assert new != old
    return old, new, version


def torn_manifest_detected(path: Path, version: int, old: Any) -> bool:
    """A torn write of manifest N+1 itself.

    A partially written newest manifest cannot be told apart from a truncated one, and
    truncation must be reported (see the corruption sweeps), so opening the store raises
    CorruptionError naming that manifest. Nothing committed is lost: version N opens
    with exactly the old content. Returns False when the newest manifest is intact.
    """
    torn = path / "manifests" / f"{version + 1:010d}.json"
    if not torn.exists():
        return False
    try:
        atlas.Atlas.open(path)
    except atlas.CorruptionError as e:
        assert torn.name in str(e)
    else:
        return False
    assert snapshot_of_version(path, version) == old
    return True


def snapshot_of_version(path: Path, version: int) -> Any:
    return handle_snapshot(atlas.Atlas.open(path, version=version))


AFTER = np.arange(6, dtype=np.int16)


def commit_more_and_compact(path: Path) -> Any:
    """A fresh handle commits a new dataset and compacts; returns the resulting snapshot."""
    store = atlas.Atlas.open(path)
    assert store.verify() == []
    ds = store.create_dataset("after")
    ds.define_array("v", "int16", ["n"], [6])
    ds.write_array("v", [0], AFTER)
    store.flush()
    store.compact(grace_period=0)  # no other writer: orphans go at once
    assert stray_files(path) == set(), "compact() left files no manifest references"
    fresh = atlas.Atlas.open(path)
    assert fresh.verify() == []
    np.testing.assert_array_equal(fresh.open_dataset("after").read_array("v"), AFTER)
    return snapshot(path)


# --------------------------------------------------------------------------- flush


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("change", list(CHANGES))
def test_flush_interrupted_at_every_mutation(template: Path, tmp_path: Path, change: str, mode: str) -> None:
    tally = Tally(f"flush[{change}-{mode}]")
    apply = CHANGES[change]
    old, new, version = reference_states(template, tmp_path, apply)
    for k in range(1, MAX_K):
        path = fresh_copy(template, tmp_path, k)
        faulty = FaultyStorage(LocalStorage(path), **MODES[mode])
        store = atlas.Atlas.open(faulty)
        apply(store)
        faulty.arm(k)
        try:
            store.flush()
        except OSError:
            pass
        else:
            # only the best-effort "latest" hint, written after the commit, may fail quietly
            assert snapshot(path) == new
            if faulty.faults == 0:
                tally.add("completed_at_k", k)
                break
        tally.add("fault_points")
        if mode == "torn" and torn_manifest_detected(path, version, old):
            tally.add("torn_manifest_detected")
            shutil.rmtree(path)
            continue
        fresh = atlas.Atlas.open(path)
        state = handle_snapshot(fresh)
        assert state in (old, new), f"fault at mutation {k}: the store shows a mix of versions"
        assert fresh.version == (version if state == old else version + 1)
        tally.add("old" if state == old else "new")
        if mode == "error":
            # the failed handle still holds its changes and commits them all on retry
            faulty.arm(None)
            store.flush()
            assert snapshot(path) == new
            state = new
        after = commit_more_and_compact(path)
        assert without(after, "after") == without(state, "after")
        shutil.rmtree(path)
    else:
        pytest.fail(f"flush never completed within {MAX_K} mutations")
    tally.add("data_lost", 0)
    tally.report()


def test_write_ahead_interrupted_at_every_mutation(template: Path, tmp_path: Path) -> None:
    """Faults during the writes themselves (blocks written ahead before the flush)."""
    tally = Tally("write_ahead_during_writes[crash]")
    old, new, _ = reference_states(template, tmp_path, change_write_ahead)
    for k in range(1, MAX_K):
        path = fresh_copy(template, tmp_path, k)
        faulty = FaultyStorage(LocalStorage(path), fail_at=k, repeat=True)
        store = atlas.Atlas.open(faulty)
        try:
            change_write_ahead(store)
            store.flush()
        except OSError:
            pass
        else:
            assert snapshot(path) == new
            if faulty.faults == 0:
                tally.add("completed_at_k", k)
                break
        tally.add("fault_points")
        state = snapshot(path)
        assert state in (old, new)
        tally.add("old" if state == old else "new")
        after = commit_more_and_compact(path)
        assert without(after, "after") == without(state, "after")
        shutil.rmtree(path)
    else:
        pytest.fail("never completed")
    tally.report()


# --------------------------------------------------------------------------- compact


def store_with_garbage(path: Path) -> None:
    """The base store plus dead data: deleted datasets and arrays, overwritten chunks and
    orphans of a handle that wrote ahead and was dropped."""
    base_store(path)
    store = atlas.Atlas.open(path)
    store.delete_dataset("ds1")
    store.open_dataset("ds0").write_array("temp", [0], np.zeros(40, dtype=np.float32))
    store.open_dataset("ds2").delete_array("label")
    store.flush()
    dropped = atlas.Atlas.open(path)
    dropped.buffer_bytes = 1
    ds = dropped.create_dataset("never")
    ds.define_array("temp", "float32", ["z"], [4000])
    ds.write_array("temp", [0], np.ones(4000, dtype=np.float32))
    del dropped


@pytest.fixture(scope="module")
def garbage_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("garbage") / "store"
    store_with_garbage(path)
    assert stray_files(path), "the template should hold orphans"
    return path


@pytest.mark.parametrize("mode", list(MODES))
def test_compact_interrupted_at_every_mutation(garbage_template: Path, tmp_path: Path, mode: str) -> None:
    tally = Tally(f"compact[{mode}]")
    old = snapshot(garbage_template)
    version = atlas.Atlas.open(garbage_template).version
    for k in range(1, MAX_K):
        path = fresh_copy(garbage_template, tmp_path, k)
        faulty = FaultyStorage(LocalStorage(path), **MODES[mode])
        store = atlas.Atlas.open(faulty)
        faulty.arm(k)
        try:
            store.compact(grace_period=0)
        except OSError:
            pass
        else:
            assert snapshot(path) == old
            if faulty.faults == 0:
                assert stray_files(path) == set()
                tally.add("completed_at_k", k)
                break
        tally.add("fault_points")
        if mode == "torn" and torn_manifest_detected(path, version, old):
            tally.add("torn_manifest_detected")
            shutil.rmtree(path)
            continue
        fresh = atlas.Atlas.open(path)
        assert handle_snapshot(fresh) == old, f"fault at mutation {k} of compact changed the content"
        assert fresh.version in (version, version + 1)
        assert fresh.verify() == []
        if mode == "error":
            faulty.arm(None)
            store.compact(grace_period=0)
            assert stray_files(path) == set()
            assert snapshot(path) == old
        after = commit_more_and_compact(path)
        assert without(after, "after") == without(old, "after")
        shutil.rmtree(path)
    else:
        pytest.fail("compact never completed")
    tally.report()


@pytest.mark.parametrize("mode", ["error", "crash"])
def test_compact_with_buffered_changes_interrupted(garbage_template: Path, tmp_path: Path, mode: str) -> None:
    """compact() flushes first: a fault leaves the old or the new state, never a mix."""
    tally = Tally(f"compact_buffered[{mode}]")
    old = snapshot(garbage_template)
    ref = tmp_path / "reference"
    shutil.copytree(garbage_template, ref)
    s = atlas.Atlas.open(ref)
    change_overwrite_after_garbage(s)
    s.compact(grace_period=0)
    new = snapshot(ref)
    for k in range(1, MAX_K):
        path = fresh_copy(garbage_template, tmp_path, k)
        faulty = FaultyStorage(LocalStorage(path), **MODES[mode])
        store = atlas.Atlas.open(faulty)
        change_overwrite_after_garbage(store)
        faulty.arm(k)
        try:
            store.compact(grace_period=0)
        except OSError:
            pass
        else:
            assert snapshot(path) == new
            if faulty.faults == 0:
                tally.add("completed_at_k", k)
                break
        tally.add("fault_points")
        state = snapshot(path)
        assert state in (old, new)
        tally.add("old" if state == old else "new")
        if mode == "error":
            faulty.arm(None)
            store.compact(grace_period=0)
            assert snapshot(path) == new
            assert stray_files(path) == set()
            state = new
        after = commit_more_and_compact(path)
        assert without(after, "after") == without(state, "after")
        shutil.rmtree(path)
    else:
        pytest.fail("never completed")
    tally.report()


def change_overwrite_after_garbage(store: atlas.Atlas) -> None:
    store.open_dataset("ds0").write_array("grid", [1, 1], np.full((2, 2), 5, dtype=np.int32))
    store.open_dataset("ds3").set_attribute("touched", True)
    store.delete_dataset("ds2")
