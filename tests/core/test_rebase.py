"""flush(rebase=True): a handle whose version was taken re-applies its changes on the newest
version when they are disjoint from what landed, and gets a ConflictError, with nothing
committed, on a true conflict.

Each disjoint case is checked against the same two sides applied one after the other by a
single handle on a copy of the store: the rebased store must hold exactly that."""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reliability_helpers import as_version_1, handle_snapshot, snapshot
from store_helpers import add_dataset

import atlas
from atlas.core import changes as changes_module
from atlas.core import checkpoint, commit, table
from atlas.format import manifest as mf
from atlas.format import shard
from atlas.storage import LocalStorage, MemoryStorage, Storage
from atlas.storage.wrappers import WrappedStorage

Side = Callable[[atlas.Atlas], None]


def base_store(path: Path) -> None:
    """Version 1 of a store: d0 (arrays x, y; attributes), d1, d2 (one array x each)."""
    store = atlas.Atlas.create(path)
    d0 = store.create_dataset("d0")
    d0.define_array("x", "float64", ["z"], [6], chunk_shape=[3])
    d0.write_array("x", [0], np.arange(6.0))
    d0.define_array("y", "int32", ["z"], [4], fill_value=-1)
    d0.write_array("y", [0], np.array([1, 2, 3, 4], np.int32))
    d0.set_attribute("title", "first")
    d0.set_attribute("cycle", 1)
    d0.set_array_attribute("x", "units", "K")
    d0.set_array_attribute("y", "units", "m")
    add_dataset(store, "d1", value=1.0)
    add_dataset(store, "d2", value=2.0)
    store.flush()


def versions(path: Path) -> list[int]:
    return [v["version"] for v in atlas.Atlas.open(path).versions()]


def rebased(tmp_path: Path, side_a: Side, side_b: Side, setup: Callable[[Path], None] = base_store) -> atlas.Atlas:
    """Two handles on one version make their changes; A flushes first, B rebases. The store
    must then hold what one handle applying A's changes and then B's holds, and verify."""
    path, ref_path = tmp_path / "s", tmp_path / "ref"
    setup(path)
    shutil.copytree(path, ref_path)
    a, b = atlas.Atlas.open(path), atlas.Atlas.open(path)
    side_a(a)
    side_b(b)
    a.flush()
    top = a.version
    b.flush(rebase=True)
    assert b.version == top + 1 and versions(path)[-1] == top + 1
    ref = atlas.Atlas.open(ref_path)
    side_a(ref)
    side_b(ref)
    ref.flush()
    assert snapshot(path) == snapshot(ref_path)
    assert handle_snapshot(b) == snapshot(ref_path)  # the handle reads what it committed
    assert atlas.Atlas.open(path).verify() == []
    return b


def conflicted(tmp_path: Path, side_a: Side, side_b: Side, setup: Callable[[Path], None] = base_store) -> atlas.ConflictError:
    """A flushes first; B's rebase must raise ConflictError, commit nothing, and leave B
    holding its changes on its version (usable: reading them, failing flushes again)."""
    path = tmp_path / "s"
    setup(path)
    a, b = atlas.Atlas.open(path), atlas.Atlas.open(path)
    side_a(a)
    side_b(b)
    a.flush()
    store_before, history_before = snapshot(path), versions(path)
    handle_before = handle_snapshot(b)
    with pytest.raises(atlas.ConflictError) as err:
        b.flush(rebase=True)
    assert snapshot(path) == store_before and versions(path) == history_before
    assert b.version == history_before[-2] and handle_snapshot(b) == handle_before
    with pytest.raises(atlas.ConflictError):
        b.flush()
    with pytest.raises(atlas.ConflictError):
        b.flush(rebase=True)
    assert versions(path) == history_before
    assert err.value.conflicts
    return err.value


# --------------------------------------------------------------------------- true conflicts


def write_x(value: float, at: int = 1) -> Side:
    return lambda s: s.open_dataset("d0").write_array("x", [at], np.array([value]))


def test_the_same_array_written_on_both_sides_conflicts(tmp_path: Path) -> None:
    err = conflicted(tmp_path, write_x(10.0), write_x(20.0, at=4))
    assert err.conflicts[0].dataset == "d0" and err.conflicts[0].what == "array 'x'"
    assert "dataset 'd0', array 'x', written by this handle" in str(err)


def test_a_write_that_leaves_the_statistics_as_they_were_still_conflicts(tmp_path: Path) -> None:
    """Overwriting 1.0 with 2.5 in 0..5 changes no statistic, so no record: the manifest's
    list of rewritten arrays tells."""
    conflicted(tmp_path, write_x(2.5), write_x(3.5, at=4))


def test_the_same_dataset_attribute_set_on_both_sides_conflicts(tmp_path: Path) -> None:
    err = conflicted(
        tmp_path,
        lambda s: s.open_dataset("d0").set_attribute("title", "A"),
        lambda s: s.open_dataset("d0").set_attribute("title", "B"),
    )
    assert err.conflicts[0].what == "attribute 'title'"


def test_the_same_new_attribute_on_both_sides_conflicts(tmp_path: Path) -> None:
    conflicted(
        tmp_path,
        lambda s: s.open_dataset("d1").set_attribute("new", 1),
        lambda s: s.open_dataset("d1").set_attribute("new", 1),  # even to the same value
    )


def test_the_same_array_attribute_set_on_both_sides_conflicts(tmp_path: Path) -> None:
    conflicted(
        tmp_path,
        lambda s: s.open_dataset("d0").set_array_attribute("x", "units", "C"),
        lambda s: s.open_dataset("d0").set_array_attribute("x", "units", "F"),
    )


def test_an_array_attribute_against_a_write_of_that_array_conflicts(tmp_path: Path) -> None:
    conflicted(tmp_path, write_x(10.0), lambda s: s.open_dataset("d0").set_array_attribute("x", "note", "n"))


def test_a_dataset_deleted_there_and_changed_here_conflicts(tmp_path: Path) -> None:
    err = conflicted(tmp_path, lambda s: s.delete_dataset("d1"), lambda s: s.open_dataset("d1").set_attribute("k", 1))
    assert err.conflicts[0].describe() == "dataset 'd1' changed by this handle and deleted by another writer"


def test_a_dataset_changed_there_and_deleted_here_conflicts(tmp_path: Path) -> None:
    conflicted(tmp_path, lambda s: s.open_dataset("d1").set_attribute("k", 1), lambda s: s.delete_dataset("d1"))


def test_a_dataset_written_there_and_deleted_here_conflicts(tmp_path: Path) -> None:
    conflicted(tmp_path, write_x(2.5), lambda s: s.delete_dataset("d0"))


def test_an_array_deleted_here_and_written_there_conflicts(tmp_path: Path) -> None:
    conflicted(tmp_path, write_x(10.0), lambda s: s.open_dataset("d0").delete_array("x"))


def test_an_array_deleted_there_and_written_here_conflicts(tmp_path: Path) -> None:
    conflicted(tmp_path, lambda s: s.open_dataset("d0").delete_array("x"), write_x(10.0))


def test_a_dataset_replaced_there_and_changed_here_conflicts(tmp_path: Path) -> None:
    def replace(s: atlas.Atlas) -> None:
        s.delete_dataset("d1")
        add_dataset(s, "d1", value=9.0)

    conflicted(tmp_path, replace, lambda s: s.open_dataset("d1").set_attribute("k", 1))
    conflicted(tmp_path / "2", lambda s: s.open_dataset("d1").set_attribute("k", 1), replace)


def test_the_same_new_dataset_name_on_both_sides_conflicts(tmp_path: Path) -> None:
    err = conflicted(tmp_path, lambda s: add_dataset(s, "new", value=1.0), lambda s: add_dataset(s, "new", value=2.0))
    assert err.conflicts[0].describe("us", "them") == "dataset 'new' created by us and created by them"


def test_the_same_new_array_name_in_one_dataset_on_both_sides_conflicts(tmp_path: Path) -> None:
    def define(value: int) -> Side:
        def side(s: atlas.Atlas) -> None:
            d = s.open_dataset("d1")
            d.define_array("t", "int8", ["n"], [2])
            d.write_array("t", [0], np.array([value, value], np.int8))

        return side

    conflicted(tmp_path, define(1), define(2))


def test_a_conflict_names_every_clash_and_a_clean_flush_after_reopening_works(tmp_path: Path) -> None:
    path = tmp_path / "s"
    base_store(path)
    a, b = atlas.Atlas.open(path), atlas.Atlas.open(path)
    for s, v in ((a, 1), (b, 2)):
        s.open_dataset("d0").set_attribute("title", str(v))
        s.open_dataset("d2").set_attribute("k", v)
        add_dataset(s, f"only{v}")
    a.flush()
    with pytest.raises(atlas.ConflictError) as err:
        b.flush(rebase=True)
    assert {(c.dataset, c.what) for c in err.value.conflicts} == {("d0", "attribute 'title'"), ("d2", "attribute 'k'")}
    again = atlas.Atlas.open(path)
    add_dataset(again, "only2")
    again.flush(rebase=True)
    assert atlas.Atlas.open(path).list_datasets() == ["d0", "d1", "d2", "only1", "only2"]


def test_without_rebase_a_moved_store_still_raises(tmp_path: Path) -> None:
    path = tmp_path / "s"
    base_store(path)
    a, b = atlas.Atlas.open(path), atlas.Atlas.open(path)
    add_dataset(a, "a")
    add_dataset(b, "b")
    a.flush()
    with pytest.raises(atlas.ConflictError, match="moved on"):
        b.flush()
    with pytest.raises(atlas.ConflictError, match="moved on"):
        b.close()
    assert atlas.Atlas.open(path).list_datasets() == ["d0", "d1", "d2", "a"]
    b.flush(rebase=True)  # the same changes, kept pending by the failed flushes
    assert atlas.Atlas.open(path).list_datasets() == ["d0", "d1", "d2", "a", "b"]


# --------------------------------------------------------------------------- disjoint changes


def test_different_new_datasets_merge(tmp_path: Path) -> None:
    def side(prefix: str, value: float) -> Side:
        def apply(s: atlas.Atlas) -> None:
            for i in range(3):
                add_dataset(s, f"{prefix}{i}", value=value + i)

        return apply

    b = rebased(tmp_path, side("a", 10.0), side("b", 20.0))
    assert b.list_datasets() == ["d0", "d1", "d2", "a0", "a1", "a2", "b0", "b1", "b2"]


def test_the_same_new_variable_in_different_datasets_merges_by_name(tmp_path: Path) -> None:
    """Both sides create variable ``salinity`` (new ids on both sides, one variable in the end)."""

    def side(name: str, values: list[str]) -> Side:
        def apply(s: atlas.Atlas) -> None:
            d = s.create_dataset(name)
            d.define_array("salinity", "float32", ["z"], [3], fill_value=float("nan"))
            d.write_array("salinity", [0], np.array([1, 2, 3], np.float32) * len(name))
            d.define_array("label", "string", ["z"], [len(values)], fill_value="-")
            d.write_array("label", [0], np.array(values, dtype=object))

        return apply

    b = rebased(tmp_path, side("pa", ["x", "yy"]), side("pbb", ["zzz"]))
    fresh = atlas.Atlas.open(tmp_path / "s")
    assert fresh.list_arrays() == ["label", "salinity", "x", "y"]
    salinity = fresh._variables["salinity"]
    assert salinity.live == 2
    ids = [fresh.open_dataset(n)._ds.arrays[a].aid for n in fresh.list_datasets() for a in fresh.open_dataset(n).list_arrays()]
    assert len(set(ids)) == len(ids)
    assert b.open_dataset("pbb").array_stats("label")["min"] == b"zzz"


def test_different_arrays_of_one_dataset_merge(tmp_path: Path) -> None:
    def side_a(s: atlas.Atlas) -> None:
        s.open_dataset("d0").write_array("x", [2], np.array([-5.0, 50.0]))

    def side_b(s: atlas.Atlas) -> None:
        d = s.open_dataset("d0")
        d.write_array("y", [3], np.array([40], np.int32))
        d.define_array("z", "uint8", ["w"], [2], fill_value=0)
        d.write_array("z", [1], np.array([7], np.uint8))

    b = rebased(tmp_path, side_a, side_b)
    d0 = b.open_dataset("d0")
    assert d0.list_arrays() == ["x", "y", "z"]
    assert d0.array_stats("x") == {"row_count": 6, "null_count": 0, "min": -5.0, "max": 50.0}
    assert d0.array_stats("y")["max"] == 40


def test_different_attributes_of_one_dataset_merge(tmp_path: Path) -> None:
    def side_a(s: atlas.Atlas) -> None:
        d = s.open_dataset("d0")
        d.set_attribute("title", "changed")
        d.set_attribute("from_a", True)
        d.set_array_attribute("x", "units", "C")

    def side_b(s: atlas.Atlas) -> None:
        d = s.open_dataset("d0")
        d.set_attribute("cycle", 2, dtype="int16")
        d.set_attribute("nan", float("nan"))
        d.set_array_attribute("y", "units", "km")
        d.set_array_attribute("y", "scale", 0.5)

    b = rebased(tmp_path, side_a, side_b)
    d0 = b.open_dataset("d0")
    assert list(d0.attributes()) == ["title", "cycle", "from_a", "nan"]
    assert d0.attribute_dtypes()["cycle"] == "int16"
    assert d0.array_attributes("x") == {"units": "C"} and d0.array_attributes("y") == {"units": "km", "scale": 0.5}


def test_a_dataset_deleted_on_one_side_and_untouched_on_the_other_merges(tmp_path: Path) -> None:
    def side_b(s: atlas.Atlas) -> None:
        s.delete_dataset("d2")
        s.open_dataset("d0").delete_array("y")
        add_dataset(s, "b")

    b = rebased(tmp_path, lambda s: add_dataset(s, "a"), side_b)
    assert b.list_datasets() == ["d0", "d1", "a", "b"]
    rebased(tmp_path / "2", side_b, lambda s: add_dataset(s, "a"))


def test_a_dataset_deleted_on_both_sides_merges(tmp_path: Path) -> None:
    def delete(s: atlas.Atlas) -> None:
        if s.dataset_exists("d1"):  # the reference handle applies both deletes in turn
            s.delete_dataset("d1")

    b = rebased(tmp_path, delete, delete)
    assert b.list_datasets() == ["d0", "d2"]


def test_a_dataset_replaced_on_one_side_merges(tmp_path: Path) -> None:
    def replace(s: atlas.Atlas) -> None:
        s.delete_dataset("d1")
        add_dataset(s, "d1", value=9.0)

    b = rebased(tmp_path, lambda s: add_dataset(s, "a"), replace)
    assert b.list_datasets() == ["d0", "d2", "a", "d1"]
    assert b.open_dataset("d1").read_array("x")[0] == 9.0


def test_chunks_written_ahead_are_rebased(tmp_path: Path) -> None:
    """B writes most of its chunks ahead (a small buffer): their index rows get new ids."""

    def side(prefix: str) -> Side:
        def apply(s: atlas.Atlas) -> None:
            s.buffer_bytes = 1 << 12
            for i in range(4):
                d = s.create_dataset(f"{prefix}{i}")
                d.define_array("big", "float64", ["t", "z"], [8, 256], chunk_shape=[1, 256])
                for t in range(8):
                    d.write_array("big", [t, 0], np.full((1, 256), t + i + len(prefix), np.float64))
                d.define_array("words", "string", ["n"], [3], chunk_shape=[2])
                d.write_array("words", [0], np.array([prefix, "b", "c"], dtype=object))

        return apply

    path = tmp_path / "s"
    base_store(path)
    side_b = side("bb")
    probe = atlas.Atlas.open(path)
    side_b(probe)
    assert any(len(v.pending.rows) for v in probe._variables.values())  # really written ahead
    rebased(tmp_path / "r", side("a"), side_b)


def test_views_of_the_changed_datasets_go_on_working_after_a_rebase(tmp_path: Path) -> None:
    path = tmp_path / "s"
    base_store(path)
    a, b = atlas.Atlas.open(path), atlas.Atlas.open(path)
    add_dataset(a, "a")
    view = b.create_dataset("new")
    view.define_array("v", "int64", ["n"], [2])
    view.write_array("v", [0], np.array([1, 2]))
    d0 = b.open_dataset("d0")
    d0.set_attribute("by_b", 1)
    a.flush()
    b.flush(rebase=True)
    view.write_array("v", [1], np.array([5]))
    d0.set_attribute("again", 2)
    b.flush(rebase=True)  # nothing moved: a plain commit
    fresh = atlas.Atlas.open(path)
    assert fresh.open_dataset("new").read_array("v").tolist() == [1, 5]
    assert fresh.open_dataset("d0").attributes()["again"] == 2
    assert fresh.list_datasets() == ["d0", "d1", "d2", "a", "new"]


def test_a_rebase_on_top_of_a_compaction(tmp_path: Path) -> None:
    """B writes into an array of d0, partly over a stored chunk; meanwhile A deletes d1 and
    compacts, which removes the versions before at once (B's among them). The rebase still
    knows that no removed version wrote that array (their tombstones keep the list)."""
    path = tmp_path / "s"
    base_store(path)
    a, b = atlas.Atlas.open(path), atlas.Atlas.open(path)
    b.open_dataset("d0").write_array("x", [1], np.array([-1.0]))
    add_dataset(b, "b", value=5.0)
    a.open_dataset("d0").set_attribute("title", "compacted")
    a.delete_dataset("d1")
    a.flush()
    a.compact()
    assert [v["version"] for v in a.versions()] == [3]
    b.flush(rebase=True)
    fresh = atlas.Atlas.open(path)
    assert fresh.list_datasets() == ["d0", "d2", "b"]
    d0 = fresh.open_dataset("d0")
    assert d0.read_array("x").tolist() == [0.0, -1.0, 2.0, 3.0, 4.0, 5.0]
    assert d0.array_stats("x")["min"] == -1.0 and d0.get_attribute("title") == "compacted"
    assert fresh.verify() == []
    b.open_dataset("d0").write_array("x", [2], np.array([-2.0]))  # the handle goes on
    b.flush(rebase=True)
    assert atlas.Atlas.open(path).open_dataset("d0").read_array("x")[2] == -2.0


def test_a_write_across_a_removed_version_that_does_not_say_what_it_wrote_conflicts(tmp_path: Path) -> None:
    """A removed version whose header lists no rewritten arrays (written before they were
    listed) may have written any array: a write to a stored array then conflicts."""
    path = tmp_path / "s"
    base_store(path)
    a, b = atlas.Atlas.open(path), atlas.Atlas.open(path)
    b.open_dataset("d0").write_array("y", [0], np.array([7], np.int32))
    add_dataset(a, "a")
    a.flush()
    key = next(p for p in (path / "manifests").iterdir() if p.name.startswith("0000000002"))
    head, body = key.read_bytes().split(b"\n", 1)
    key.write_bytes(head.replace(b'"rewritten":[],', b"") + b"\n" + body)
    a.compact()
    with pytest.raises(atlas.ConflictError, match="perhaps written"):
        b.flush(rebase=True)


def test_a_rebase_on_top_of_an_upgrade_of_a_version_1_store(tmp_path: Path) -> None:
    def setup(path: Path) -> None:
        base_store(path)
        as_version_1(path)

    def side_b(s: atlas.Atlas) -> None:
        s.open_dataset("d0").set_attribute("b", 1)
        s.open_dataset("d0").write_array("x", [5], np.array([-5.0]))
        add_dataset(s, "b")

    def side_a(s: atlas.Atlas) -> None:
        assert s._datasets.shards[0].key is None  # both handles read version 1
        s.upgrade()

    rebased(tmp_path, side_a, side_b, setup)
    fresh = atlas.Atlas.open(tmp_path / "s")
    assert all(s.key is not None for s in fresh._datasets.shards)


def test_a_version_1_handle_rebases_on_another_version_1_writers_commit(tmp_path: Path) -> None:
    """Both handles read version 1; the first commit writes format 2, the rebase goes on top."""

    def setup(path: Path) -> None:
        base_store(path)
        as_version_1(path)

    def side_a(s: atlas.Atlas) -> None:
        s.open_dataset("d0").write_array("y", [0], np.array([9], np.int32))
        add_dataset(s, "a")

    def side_b(s: atlas.Atlas) -> None:
        s.open_dataset("d0").write_array("x", [0], np.array([9.0]))
        s.delete_dataset("d2")

    rebased(tmp_path, side_a, side_b, setup)


def test_the_store_moving_on_between_attempts_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer commits while B is rebasing, twice: B tries again, each time on top."""
    path = tmp_path / "s"
    base_store(path)
    b = atlas.Atlas.open(path)
    add_dataset(b, "b")
    other = atlas.Atlas.open(path)
    add_dataset(other, "first")
    other.flush()
    real = commit.try_commit
    sneaked = []

    def racing(store: atlas.Atlas, *args: object) -> bool:
        if len(sneaked) < 2 and store is not b and store is not other:  # a rebase attempt: someone commits first
            add_dataset(other, f"sneak{len(sneaked)}")
            other.flush()
            sneaked.append(other.version)
        return real(store, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(commit, "try_commit", racing)
    b.flush(rebase=True)
    assert sneaked == [3, 4] and b.version == 5
    assert atlas.Atlas.open(path).list_datasets() == ["d0", "d1", "d2", "first", "sneak0", "sneak1", "b"]
    assert atlas.Atlas.open(path).verify().unreferenced_files == 0  # lost attempts left nothing


class _ShardReads(WrappedStorage):
    """Records the shards whose names (or anything else) are read."""

    def __init__(self, inner: Storage) -> None:
        super().__init__(inner)
        self.read: list[str] = []

    def get(self, key: str) -> bytes:
        self.read.append(key)
        return self.inner.get(key)

    def get_many_ranges(self, requests: Sequence[tuple[str, Sequence[int], Sequence[int]]]) -> list[list[Any]]:
        self.read.extend(k for k, _, _ in requests)
        return self.inner.get_many_ranges(requests)


def test_a_rebase_reads_only_the_shards_it_does_not_hold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Of a store of 6 shards, a rebase over one commit reads the names of the one shard that
    commit wrote (the others are the handle's, names and all) and the records of the last one,
    which it writes again; the names map is carried over."""
    monkeypatch.setattr(table, "SHARD_ROWS", 4)
    monkeypatch.setattr(shard, "SHARD_ROWS", 4)
    path = tmp_path / "s"
    store = atlas.Atlas.create(path)
    for i in range(22):
        add_dataset(store, f"d{i:02d}", value=float(i))
    store.flush()
    a = atlas.Atlas.open(path)
    watched = _ShardReads(LocalStorage(path))
    b = atlas.Atlas.open(watched)
    a.open_dataset("d05").set_attribute("k", 1)
    a.flush()
    add_dataset(b, "new")
    b._datasets._lookup.every()  # as a handle that looked up many datasets holds it
    watched.read.clear()
    b.flush(rebase=True)
    read = {k for k in watched.read if k.startswith("meta/")}
    landed = {s.key for s in a._datasets.shards} - {s.key for s in store._datasets.shards}
    last = store._datasets.shards[-1].key  # its two datasets are written again with "new"
    assert len(landed) == 1 and read == landed | {last}, (read, landed)
    assert b._datasets._lookup.place is not None and len(b._datasets._lookup.place) == 23
    fresh = atlas.Atlas.open(path)
    assert fresh.list_datasets()[-1] == "new" and fresh.open_dataset("d05").get_attribute("k") == 1
    assert fresh.verify() == []


def test_a_handle_without_changes_that_matter_just_moves_on(tmp_path: Path) -> None:
    path = tmp_path / "s"
    base_store(path)
    a, b = atlas.Atlas.open(path), atlas.Atlas.open(path)
    add_dataset(a, "a")
    b.open_dataset("d0").set_attribute("title", "first")  # the value it had
    a.flush()
    b.flush(rebase=True)
    assert b.version == 2 and versions(path) == [0, 1, 2] and b.list_datasets()[-1] == "a"


# --------------------------------------------------------------------------- changes as values


def test_changes_travel_to_another_handle_and_apply_there(tmp_path: Path) -> None:
    """What a distributed ingest does: workers take their handle's changes (chunks written
    ahead, no data in the changes), one client applies them all and commits once."""
    path = tmp_path / "s"
    base_store(path)
    client = atlas.Atlas.open(path)
    taken = []
    for w in range(3):
        worker = atlas.Atlas.open(path)
        add_dataset(worker, f"w{w}", value=float(w))
        worker.open_dataset("d0").set_attribute(f"by{w}", w)
        taken.append(pickle.loads(pickle.dumps(changes_module.changes_of(worker))))
    assert all(len(pickle.dumps(c)) < 4096 for c in taken)
    for c in taken:
        changes_module.apply_changes(client, c)
    clash = atlas.Atlas.open(path)
    add_dataset(clash, "w1")
    with pytest.raises(atlas.ConflictError, match="dataset 'w1' created by these changes"):
        changes_module.apply_changes(client, changes_module.changes_of(clash))
    client.flush()
    fresh = atlas.Atlas.open(path)
    assert fresh.list_datasets() == ["d0", "d1", "d2", "w0", "w1", "w2"]
    assert [fresh.open_dataset(f"w{w}").read_array("x")[0] for w in range(3)] == [0.0, 1.0, 2.0]
    assert {k: v for k, v in fresh.open_dataset("d0").attributes().items() if k.startswith("by")} == {"by0": 0, "by1": 1, "by2": 2}
    assert fresh.verify() == []


# --------------------------------------------------------------------------- outcomes not known


class _LostAnswer(WrappedStorage):
    """Stores a manifest and then fails, and cannot read it back, while ``armed``."""

    def __init__(self, inner: Storage) -> None:
        super().__init__(inner)
        self.armed = False

    def put_if_absent(self, key: str, data: Any) -> bool:
        if self.armed and key.startswith("manifests/0"):
            self.inner.put_if_absent(key, data)
            raise ConnectionResetError("the response was lost")
        return self.inner.put_if_absent(key, data)

    def get(self, key: str) -> bytes:
        if self.armed and key.startswith("manifests/0"):
            raise TimeoutError("the server does not answer")
        return self.inner.get(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if self.armed and key.startswith("manifests/0"):
            raise TimeoutError("the server does not answer")
        return self.inner.get_range(key, start, length)


def _lost_answers(monkeypatch: pytest.MonkeyPatch) -> tuple[MemoryStorage, _LostAnswer, atlas.Atlas, atlas.Atlas]:
    """A store at version 1 (d0); writer A committed "a" as version 2 after writer B, whose
    storage can lose the answer to a commit, read version 1. B's next rebased commit loses
    its answer (the storage is armed for it); ``flaky.armed = False`` ends that."""
    monkeypatch.setattr(commit, "READ_BACK_PAUSES", (0.0,))
    inner = MemoryStorage()
    base = atlas.Atlas.create(inner)
    add_dataset(base, "d0")
    base.flush()
    flaky = _LostAnswer(inner)
    a, b = atlas.Atlas.open(inner), atlas.Atlas.open(flaky)
    add_dataset(a, "a")
    a.flush()
    real = commit.try_commit

    def arm_then_commit(store: Any, *args: Any) -> bool:
        flaky.armed = store is not b  # the rebased commit's answer is lost
        return real(store, *args)

    monkeypatch.setattr(commit, "try_commit", arm_then_commit)
    return inner, flaky, a, b


def test_a_rebased_commit_whose_outcome_is_unknown_is_settled_by_the_next_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    real = commit.try_commit
    inner, flaky, _, b = _lost_answers(monkeypatch)
    view = b.create_dataset("b")
    with pytest.raises(atlas.CommitOutcomeUnknownError):
        b.flush(rebase=True)
    with pytest.raises(atlas.ConflictError, match="settle"):
        b.create_dataset("refused")
    flaky.armed = False
    monkeypatch.setattr(commit, "try_commit", real)
    b.flush(rebase=True)  # it had landed: the handle takes that version, nothing is written twice
    assert b.version == 3 and versions_of(inner) == [0, 1, 2, 3]
    view.set_attribute("after", 1)
    b.flush(rebase=True)
    assert atlas.Atlas.open(inner).list_datasets() == ["d0", "a", "b"]
    assert atlas.Atlas.open(inner).open_dataset("b").get_attribute("after") == 1


def versions_of(storage: Storage) -> list[int]:
    return [v["version"] for v in atlas.Atlas.open(storage).versions()]


def test_a_rebased_commit_whose_number_went_to_another_writer_is_rebased_again(monkeypatch: pytest.MonkeyPatch) -> None:
    real = commit.try_commit
    inner, flaky, _, b = _lost_answers(monkeypatch)
    add_dataset(b, "b")
    with pytest.raises(atlas.CommitOutcomeUnknownError):
        b.flush(rebase=True)
    flaky.armed = False
    monkeypatch.setattr(commit, "try_commit", real)
    inner.delete(mf.manifest_key(3, "json", "none"))  # it had not landed after all...
    other = atlas.Atlas.open(inner)
    add_dataset(other, "other")
    other.flush()  # ...and another writer took the number
    b.flush(rebase=True)
    assert b.version == 4 and versions_of(inner) == [0, 1, 2, 3, 4]
    assert atlas.Atlas.open(inner).list_datasets() == ["d0", "a", "other", "b"]


# --------------------------------------------------------------------------- checkpoints


def test_a_handle_that_wrote_checkpoints_is_not_rebased(tmp_path: Path) -> None:
    """Its checkpointed changes are installed as if committed, so they cannot be told apart
    from its version: a rebase would lose them. It refuses, commits nothing, and the files
    it wrote ahead go when the handle's changes are abandoned."""
    path = tmp_path / "s"
    base_store(path)
    a, b = atlas.Atlas.open(path), atlas.Atlas.open(path)
    add_dataset(b, "b1")
    checkpoint.checkpoint(b)
    add_dataset(b, "b2")
    add_dataset(a, "a")
    a.flush()
    before, history = snapshot(path), versions(path)
    with pytest.raises(atlas.ConflictError, match="wrote checkpoints is not rebased"):
        b.flush(rebase=True)
    assert snapshot(path) == before and versions(path) == history
    assert atlas.Atlas.open(path).list_datasets() == ["d0", "d1", "d2", "a"]
    with pytest.raises(ValueError, match="checkpoints"):
        changes_module.changes_of(b)


def test_chunks_rewritten_before_a_checkpoint_are_listed_in_the_commit(tmp_path: Path) -> None:
    """A write that leaves the statistics unchanged, made before a checkpoint, is in the
    published manifest's list of rewritten arrays: another writer's rebase sees it."""
    path = tmp_path / "s"
    base_store(path)
    a, b = atlas.Atlas.open(path), atlas.Atlas.open(path)
    write_x(2.5)(a)  # 1.0 -> 2.5 in 0..5: no statistic changes
    checkpoint.checkpoint(a)
    add_dataset(a, "more")
    a.flush()
    write_x(3.5, at=4)(b)
    with pytest.raises(atlas.ConflictError) as err:
        b.flush(rebase=True)
    assert err.value.conflicts[0].dataset == "d0"
    assert atlas.Atlas.open(path).open_dataset("d0").read_array("x")[1] == 2.5
