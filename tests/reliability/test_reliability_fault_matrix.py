"""Storage faults during every maintenance operation, on every backend.

For each operation (a flush with new datasets, an overwrite and a delete; ``compact``;
``expire_versions(keep=1)``; ``garbage_collect(grace_period=0)`` after an expiry) and
each backend (local directory, memory, S3 on a moto server), the k-th storage mutation
(put, put_if_absent, delete, delete_many) fails, for every k until the operation
completes without meeting a fault. Two fault models, through ``FaultyStorage``:

* ``error``: only the k-th mutation fails (a transient error). The same handle then
  retries the operation, which must succeed.
* ``crash``: the k-th and every later mutation fail (the process is gone). The handle
  is abandoned.

After every fault, a fresh handle must open the store; ``verify()`` finds no problem;
the logical content (names, values, attributes, stats) is exactly the old or the new
state, with the version number that goes with it; the caller was told the truth (a
flush that raised committed nothing, one that returned committed everything; compact,
expiry and garbage collection never change the content); every version ``versions()``
still lists opens with the content it was committed with; and a fresh handle can commit
again and ``compact(grace_period=0)`` so that no file is left unreferenced.

Every store starts as a byte-for-byte copy of a template built once in memory, so all
backends are tested on the same files and the reference snapshots are computed once.
"""

from __future__ import annotations

import importlib
import itertools
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reliability_helpers import Tally, handle_snapshot, without

import atlas
from atlas.core.maintenance import unreferenced_summary
from atlas.storage import LocalStorage, MemoryStorage, Storage, open_storage
from atlas.storage.wrappers import FaultyStorage

BACKENDS = ["local", "memory", "s3"]
MODES = {"error": False, "crash": True}  # mode -> FaultyStorage(repeat=...)
OPERATIONS = ["flush", "compact", "expire", "gc"]
MAX_K = 60  # far above the mutations of any operation here (compact, the largest, makes 11)
TAG = "base"
AFTER = np.arange(5, dtype=np.int16)


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Faults are modelled at the storage API, where a completed put is durable by
    contract; fsync only costs time (power loss is test_reliability_powerloss.py's)."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


# --------------------------------------------------------------------------- the stores


def _dataset(store: atlas.Atlas, name: str, i: int) -> None:
    rng = np.random.default_rng(i)
    ds = store.create_dataset(name)
    temp = rng.normal(10, 3, 40).astype(np.float32)
    temp[5] = np.nan
    ds.define_array("temp", "float32", ["z"], [40], chunk_shape=[16], fill_value=float("nan"))
    ds.write_array("temp", [0], temp)
    ds.define_array("label", "string", ["k"], [3], fill_value="?")
    ds.write_array("label", [0], np.array([f"{name}-{j}-é" for j in range(3)], dtype=object))
    ds.set_attribute("i", i)
    ds.set_array_attribute("temp", "units", "degC")


def build_history(storage: Storage, operation: str, orphans: bool) -> None:
    """The store an operation starts from, as few versions as it needs:

    * v0: empty; v1: ds0, ds1, ds2 (a chunked float array with a NaN fill, a string
      array, attributes of both kinds) -- where a flush starts;
    * for the others, v1 is tagged (a tagged version never expires, and its files stay);
    * for expiry and garbage collection, v2: part of ds0's ``temp`` overwritten, an
      attribute of ds1 changed (a version that expires);
    * then dead data: ds1 deleted, ds2's ``label`` deleted, ds0's ``temp`` overwritten;
    * with ``orphans``, segments written ahead by a writer that was then dropped.
    """
    store = atlas.Atlas.create(storage)
    for i in range(3):
        _dataset(store, f"ds{i}", i)
    store.flush()
    if operation == "flush":
        return
    store.tag(TAG)
    if operation in ("expire", "gc"):
        store.open_dataset("ds0").write_array("temp", [16], np.full(8, 1.5, dtype=np.float32))
        store.open_dataset("ds1").set_attribute("i", "changed")
        store.flush()
    store.delete_dataset("ds1")
    store.open_dataset("ds2").delete_array("label")
    store.open_dataset("ds0").write_array("temp", [0], np.linspace(0, 1, 40, dtype=np.float32))
    store.flush()
    if orphans:
        dropped = atlas.Atlas.open(storage)
        dropped.buffer_bytes = 1  # every write goes ahead to a segment no manifest names
        ds = dropped.create_dataset("never")
        ds.define_array("temp", "float32", ["z"], [500])
        ds.write_array("temp", [0], np.ones(500, dtype=np.float32))
        del dropped
    if operation == "gc":
        assert atlas.Atlas.open(storage).expire_versions(keep=1) == [0, 2]


def change(store: atlas.Atlas) -> None:
    """What the flush commits: new datasets (one with a new variable), an overwrite
    (read-modify-write of part of a chunk, a string), and a delete."""
    _dataset(store, "new0", 10)
    new1 = store.create_dataset("new1")
    new1.define_array("flag", "bool", ["n"], [6])
    new1.write_array("flag", [0], np.array([True, False, True, True, False, True]))
    new1.set_attribute("note", "fresh")
    ds0 = store.open_dataset("ds0")
    ds0.write_array("temp", [10], np.full(10, -2.25, dtype=np.float32))
    ds0.write_array("label", [1], np.array(["overwritten"], dtype=object))
    ds0.set_attribute("i", 99)
    store.delete_dataset("ds2")


def copy_store(src: Storage, dst: Storage) -> None:
    for key in src.list(""):
        dst.put(key, src.get(key))


@dataclass
class Template:
    """A store's files and what a fault-free run shows."""

    storage: MemoryStorage
    version: int  # the current version
    old: Any  # snapshot before the operation
    new: Any  # snapshot after it (equal to old except for flush)
    contents: dict[int, Any]  # snapshot of every live version, by number
    live: list[int]  # versions() before the operation
    live_after: list[int]  # versions() after a fault-free run
    tagged: list[int]  # versions that must stay, whatever compaction does


def _contents(storage: Storage) -> dict[int, Any]:
    store = atlas.Atlas.open(storage)
    return {
        v["version"]: handle_snapshot(atlas.Atlas.open(storage, version=v["version"]))
        for v in store.versions()
    }


def make_template(operation: str, orphans: bool) -> Template:
    tpl = MemoryStorage()
    build_history(tpl, operation, orphans)
    store = atlas.Atlas.open(tpl)
    version, old, contents = store.version, handle_snapshot(store), _contents(tpl)
    live, tagged = sorted(contents), sorted(store.tags().values())
    assert tagged == ([] if operation == "flush" else [1])
    # the fault-free run, on a copy
    ref = MemoryStorage()
    copy_store(tpl, ref)
    store = atlas.Atlas.open(ref)
    if operation == "flush":
        change(store)
    run_operation(operation, store)
    fresh = atlas.Atlas.open(ref)
    new = handle_snapshot(fresh)
    live_after = [v["version"] for v in fresh.versions()]
    if operation == "flush":
        assert new != old and live_after == [*live, version + 1]
    else:
        assert new == old and live_after == [*tagged, version + (operation == "compact")]
    result = fresh.verify()
    assert result == [] and (operation not in ("compact", "gc") or result.unreferenced_files == 0)
    return Template(tpl, version, old, new, contents, live, live_after, tagged)


_templates: dict[tuple[str, bool], Template] = {}


def template(operation: str, orphans: bool) -> Template:
    key = (operation, orphans)
    if key not in _templates:
        _templates[key] = make_template(operation, orphans)
    return _templates[key]


def run_operation(operation: str, store: atlas.Atlas) -> None:
    if operation == "flush":
        store.flush()
    elif operation == "compact":
        store.compact(grace_period=0)
    elif operation == "expire":
        store.expire_versions(keep=1)
    elif operation == "gc":
        store.garbage_collect(grace_period=0)
    else:
        raise AssertionError(operation)


# --------------------------------------------------------------------------- backends


@dataclass
class Place:
    """One copy of a template: its storage and how a fresh handle opens it."""

    storage: Storage
    location: Any
    options: dict[str, Any] = field(default_factory=dict)

    def open(self, version: int | None = None) -> atlas.Atlas:
        return atlas.Atlas.open(self.location, version=version, **self.options)


class Backend:
    """Makes fresh copies of a template on one kind of storage."""

    def __init__(self, kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.names = itertools.count()
        self.token = secrets.token_hex(4)
        if kind == "s3":
            # fail, never skip, when the S3 test server cannot run (the fixtures would skip)
            importlib.import_module("moto")
            importlib.import_module("boto3")
            self.s3_options = request.getfixturevalue("s3_options")
            self.bucket = request.getfixturevalue("make_s3_bucket")()

    def place(self, tpl: Template) -> Place:
        n = next(self.names)
        if self.kind == "local":
            path = self.tmp_path / f"k{n}"
            place = Place(LocalStorage(path, create=True), path)
        elif self.kind == "memory":
            name = f"fault-matrix-{self.token}-{n}"
            place = Place(MemoryStorage(name), f"memory://{name}")
        else:
            url = f"s3://{self.bucket}/k{n}"
            place = Place(open_storage(url, **self.s3_options), url, self.s3_options)
        copy_store(tpl.storage, place.storage)
        return place

    def discard(self, place: Place) -> None:
        """Free what a copy holds locally (S3 prefixes stay until the server stops)."""
        if self.kind == "local":
            shutil.rmtree(place.location)
        elif self.kind == "memory":
            MemoryStorage.discard(place.location.removeprefix("memory://"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return Backend(request.param, tmp_path, request)


# --------------------------------------------------------------------------- checks


def check_versions(fresh: atlas.Atlas, place: Place, tpl: Template) -> list[int]:
    """Every version still listed opens and shows the content it was committed with
    (``fresh``, at the newest version, was compared by the caller)."""
    listed = [v["version"] for v in fresh.versions()]
    assert listed[-1] == fresh.version, f"versions() lists {listed}, the newest is {fresh.version}"
    assert sorted(fresh.tags().values()) == tpl.tagged and set(tpl.tagged) <= set(listed), (
        "a tagged version expired"
    )
    assert set(listed) <= set(tpl.live) | {fresh.version}
    for v in listed[:-1]:
        assert handle_snapshot(place.open(version=v)) == tpl.contents[v], f"version {v} reads wrong"
    return listed


def check_after_fault(
    place: Place, tpl: Template, operation: str, raised: bool
) -> tuple[atlas.Atlas, Any]:
    """The invariants after a fault; returns a fresh handle and the state it shows."""
    fresh = place.open()
    problems = fresh.verify()
    assert problems == [], problems
    state = handle_snapshot(fresh)
    if operation == "flush":
        assert state in (tpl.old, tpl.new), "the store shows a mix of versions"
        # the caller was told the truth: an OSError means nothing was committed
        assert state == (tpl.old if raised else tpl.new), (
            "flush raised but its commit landed" if raised else "flush returned but nothing landed"
        )
        assert fresh.version == tpl.version + (state == tpl.new)
    else:
        assert state == tpl.old, f"{operation} changed the logical content"
        versions = (tpl.version, tpl.version + 1) if operation == "compact" else (tpl.version,)
        assert fresh.version in versions
        listed = check_versions(fresh, place, tpl)
        if not raised:  # it returned: it did all of its work
            assert listed == tpl.live_after
            if operation in ("compact", "gc"):
                assert problems.unreferenced_files == 0, f"{operation} returned but left garbage"
    return fresh, state


def check_completed(place: Place, tpl: Template, operation: str) -> atlas.Atlas:
    """What a successful run leaves: the new state and history, no garbage after
    compact / gc. Returns the fresh handle that looked."""
    fresh = place.open()
    assert handle_snapshot(fresh) == tpl.new
    assert [v["version"] for v in fresh.versions()] == tpl.live_after
    if operation in ("compact", "gc"):
        assert unreferenced_summary(fresh) == (0, 0), "the operation left files no version names"
    return fresh


def commit_more_and_compact(store: atlas.Atlas, place: Place, tpl: Template, state: Any) -> None:
    """A fresh handle (``store``, which only read) commits a change and compacts:
    everything no version needs goes, the tagged version stays readable."""
    ds = store.create_dataset("after")
    ds.define_array("v", "int16", ["n"], [5])
    ds.write_array("v", [0], AFTER)
    store.flush()
    store.compact(grace_period=0)
    fresh = place.open()
    result = fresh.verify()
    assert result == [], list(result)
    assert result.unreferenced_files == 0, result.notes
    after = handle_snapshot(fresh)
    assert without(after, "after") == without(state, "after")
    np.testing.assert_array_equal(fresh.open_dataset("after").read_array("v"), AFTER)
    listed = [v["version"] for v in fresh.versions()]
    assert listed == [*tpl.tagged, fresh.version], listed
    for v in tpl.tagged:
        assert handle_snapshot(place.open(version=v)) == tpl.contents[v]


# --------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("operation", OPERATIONS)
def test_fault_at_every_mutation(backend: Backend, operation: str, mode: str) -> None:
    orphans = operation == "compact" and backend.kind != "s3"
    tpl = template(operation, orphans)
    tally = Tally(f"{operation}[{backend.kind}-{mode}]")
    for k in range(1, MAX_K):
        place = backend.place(tpl)
        faulty = FaultyStorage(place.storage)
        store = atlas.Atlas.open(faulty)
        if operation == "flush":
            change(store)
        faulty.arm(k, torn=False, repeat=MODES[mode])
        try:
            run_operation(operation, store)
        except OSError:
            raised = True
        else:
            raised = False
            if faulty.faults == 0:
                check_completed(place, tpl, operation)
                tally.add("completed_at_k", k)
                backend.discard(place)
                break
        assert faulty.faults >= 1
        tally.add("fault_points")
        tally.add("raised" if raised else "returned")
        fresh, state = check_after_fault(place, tpl, operation, raised)
        if operation == "flush":
            tally.add("old" if state == tpl.old else "new")
        if mode == "error":
            # the handle that met the fault retries, and succeeds
            faulty.arm(None)
            run_operation(operation, store)
            fresh, state = check_completed(place, tpl, operation), tpl.new
        commit_more_and_compact(fresh, place, tpl, state)
        backend.discard(place)
    else:
        pytest.fail(f"{operation} never completed within {MAX_K} mutations")
    tally.report()
