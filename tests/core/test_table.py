"""The datasets of a version in shards: what a commit rewrites, keeps and shares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from store_helpers import add_dataset, flushed_store, stored_files

import atlas
from atlas.core import table
from atlas.format import shard


@pytest.fixture
def small_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table, "SHARD_ROWS", 4)
    monkeypatch.setattr(shard, "SHARD_ROWS", 4)


def _shard_keys(store: atlas.Atlas) -> list[str | None]:
    return [s.key for s in store._datasets.shards]


def _meta_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.parts[-2] in ("meta", "manifests", "index"))


def test_a_commit_rewrites_only_the_shards_it_touched(tmp_path: Path, small_shards: None) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    for i in range(10):
        add_dataset(store, f"d{i}", value=float(i))
    store.flush()
    first = _shard_keys(store)
    assert [len(s.names) for s in store._datasets.shards] == [4, 4, 2]
    store.open_dataset("d5").set_attribute("k", 1)  # the second shard
    store.flush()
    after = _shard_keys(store)
    assert after[0] == first[0] and after[2] == first[2] and after[1] != first[1]
    reader = atlas.Atlas.open(tmp_path / "s")
    reader.open_dataset("d0").read_array("x")  # reading makes states; a commit keeps their shards
    reader.create_dataset("new")  # new datasets fill the last shard up
    reader.flush()
    keys = _shard_keys(reader)
    assert keys[:2] == after[:2] and keys[2] != after[2]
    reader.delete_dataset("d1")
    reader.flush()
    assert _shard_keys(reader)[1:] == keys[1:] and _shard_keys(reader)[0] != keys[0]
    fresh = atlas.Atlas.open(tmp_path / "s")
    assert fresh.list_datasets() == ["d0", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9", "new"]
    assert fresh.open_dataset("d5").get_attribute("k") == 1
    assert fresh.read_array_across("x", ["d9", "d0"])[0][0] == 9.0


def test_deleted_and_recreated_datasets_go_to_the_end(tmp_path: Path, small_shards: None) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    for i in range(6):
        add_dataset(store, f"d{i}")
    store.flush()
    store.delete_dataset("d1")
    add_dataset(store, "d1", value=7.0)
    assert store.list_datasets() == ["d0", "d2", "d3", "d4", "d5", "d1"]
    store.flush()
    again = atlas.Atlas.open(tmp_path / "s")
    assert again.list_datasets() == ["d0", "d2", "d3", "d4", "d5", "d1"]
    assert again.open_dataset("d1").read_array("x")[0] == 7.0
    assert again.verify() == []


def test_appends_rewrite_about_their_own_datasets(tmp_path: Path) -> None:
    """Fifty commits of ten new datasets each: a commit rewrites the last shards only while
    they are at most four times what it writes, so the store stays a few shards and commits
    write a few times their own datasets on average (refilling one last shard would write
    250 on average, 500 at the end)."""
    store = atlas.Atlas.create(tmp_path / "s")
    written = []
    for c in range(50):
        for i in range(10):
            store.create_dataset(f"c{c:02d}-{i}").set_attribute("i", i)
        before = set(_shard_keys(store))
        store.flush()
        written.append(sum(len(s.names) for s in store._datasets.shards if s.key not in before))
    sizes = [len(s.names) for s in store._datasets.shards]
    assert sum(sizes) == 500 and len(sizes) <= 6, sizes
    assert sizes == sorted(sizes, reverse=True)
    assert sum(written) / len(written) < 60, written
    fresh = atlas.Atlas.open(tmp_path / "s")
    assert fresh.list_datasets() == [f"c{c:02d}-{i}" for c in range(50) for i in range(10)]
    assert fresh.verify() == []


def test_history_costs_what_changed(tmp_path: Path) -> None:
    """Twenty one-attribute commits on 10,000 datasets add one shard each, not the store."""
    store = atlas.Atlas.create(tmp_path / "s")
    for i in range(10_000):
        store.create_dataset(f"p{i:05d}").set_attribute("cycle", i)
    store.flush()
    base = _meta_bytes(tmp_path / "s")
    for i in range(20):
        store.open_dataset(f"p{i * 400:05d}").set_attribute("cycle", -i)
        store.flush()
    per_commit = (_meta_bytes(tmp_path / "s") - base) / 20
    assert per_commit < base / 2, (per_commit, base)
    assert atlas.Atlas.open(tmp_path / "s").open_dataset("p07600").get_attribute("cycle") == -19


def test_version_1_stores_open_and_upgrade(tmp_path: Path) -> None:
    from reliability_helpers import as_version_1

    path = flushed_store(tmp_path, 5)
    as_version_1(path)  # as a store written before format 2
    old = atlas.Atlas.open(path)
    assert _shard_keys(old) == [None]
    assert old.read_array_across("x", ["d4"])[0][0] == 4.0
    assert old.upgrade() is True
    assert old.upgrade() is False
    files = stored_files(path)
    assert any(f.startswith("meta/") for f in files)
    fresh = atlas.Atlas.open(path)
    assert all(s.key is not None for s in fresh._datasets.shards)
    assert all(r.rows >= 0 for r in fresh._variables["x"].runs)
    assert fresh.list_datasets() == [f"d{i}" for i in range(5)]
    assert fresh.verify() == []


def test_columns_that_disagree_with_the_records_are_corruption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shard whose array columns leave out an array its records list: opening a dataset
    of it and verify() report it."""
    real = shard.columns_of

    def swapped(records: list[object]) -> dict[str, np.ndarray]:
        cols = real(records)
        cols["x"] = cols["x"][1:]  # d0 has no x, for the columns
        return cols

    path = tmp_path / "s"
    store = atlas.Atlas.create(path)
    for i in range(3):
        add_dataset(store, f"d{i}", value=float(i))
    monkeypatch.setattr(shard, "columns_of", swapped)
    store.flush()
    monkeypatch.undo()
    crafted = atlas.Atlas.open(path)
    with pytest.raises(atlas.CorruptionError, match="columns disagree with its records"):
        crafted.open_dataset("d0")
    assert any("disagree" in p for p in atlas.Atlas.open(path).verify())


def _live_states(store: atlas.Atlas) -> int:
    """States held, and records held of shards other than those the last commit wrote."""
    t = store._datasets
    last = {id(s) for s in t._written}
    return len(t._states) + len(t._kept) + sum(1 for s in t.shards if s.records is not None and id(s) not in last)


def test_a_handle_holds_only_what_is_in_use_or_not_committed(tmp_path: Path, small_shards: None) -> None:
    """After a flush the handle keeps neither the states nor the records of what it wrote,
    and a read leaves nothing behind once the view is dropped: memory follows what is in
    use, not how many datasets a handle ever wrote or read."""
    import gc
    import weakref

    s = atlas.Atlas.create(tmp_path / "s")
    for i in range(10):
        add_dataset(s, f"d{i}", 3, float(i))
    s.flush()
    add_dataset(s, "d10", 3, 10.0)
    s.flush()  # the first commit's shards: records dropped; this one's kept, no more
    gc.collect()
    assert _live_states(s) == 0 and len(s._datasets._written) <= 2
    view = s.open_dataset("d3")
    state = weakref.ref(view._ds)
    assert view.read_array("x").tolist() == [3.0, 3.0, 3.0]
    del view
    gc.collect()
    assert state() is None  # only read: dropped with its view
    assert s.open_dataset("d3").read_array("x").tolist() == [3.0, 3.0, 3.0]  # decoded again when used


def test_a_view_held_across_a_flush_stays_the_dataset(tmp_path: Path, small_shards: None) -> None:
    """A view obtained before a flush still is the dataset after it: its writes are seen
    through new views, and the changes it makes are committed."""
    import gc

    s = atlas.Atlas.create(tmp_path / "s")
    for i in range(6):
        add_dataset(s, f"d{i}", 3)
    held = s.open_dataset("d1")
    s.flush()
    gc.collect()
    held.set_attribute("k", "after")
    held.write_array("x", [0], np.array([7.0, 8.0, 9.0]))
    assert s.open_dataset("d1").get_attribute("k") == "after"
    assert s.open_dataset("d1")._ds is held._ds
    del held
    gc.collect()  # changed, not committed: the handle holds it
    assert s.open_dataset("d1").read_array("x").tolist() == [7, 8, 9]
    s.flush()
    again = atlas.Atlas.open(tmp_path / "s").open_dataset("d1")
    assert again.get_attribute("k") == "after" and again.read_array("x").tolist() == [7, 8, 9]
    assert s.find("k == 'after'") == ["d1"]


def test_the_list_of_names_follows_every_change_and_is_the_callers_own(tmp_path: Path, small_shards: None) -> None:
    path = flushed_store(tmp_path, 6)
    fresh = atlas.Atlas.open(path)
    t = fresh._datasets
    listed = fresh.list_datasets()
    assert t.names() is t.names() and listed is not t.names()  # one kept list; callers get copies
    listed.append("not-a-dataset")
    listed.clear()
    assert fresh.list_datasets() == [f"d{i}" for i in range(6)]
    fresh.delete_dataset("d1")
    assert t._name_list is None  # dropped by the deletion
    assert fresh.list_datasets() == ["d0", "d2", "d3", "d4", "d5"]
    add_dataset(fresh, "d1", value=2.0)  # re-created: at the end
    assert t._name_list is None  # dropped by the addition
    add_dataset(fresh, "e", value=2.0)
    assert fresh.list_datasets() == ["d0", "d2", "d3", "d4", "d5", "d1", "e"]
    fresh.delete_dataset("e")
    assert fresh.list_datasets() == ["d0", "d2", "d3", "d4", "d5", "d1"]
    fresh.flush()
    assert fresh.find("x.max >= 0") == ["d0", "d2", "d3", "d4", "d5", "d1"]
    assert fresh.list_datasets() == atlas.Atlas.open(path).list_datasets() == ["d0", "d2", "d3", "d4", "d5", "d1"]


def test_names_at_positions_come_from_the_shards_without_the_list_of_every_name(tmp_path: Path, small_shards: None) -> None:
    path = flushed_store(tmp_path, 10)
    fresh = atlas.Atlas.open(path)
    t = fresh._datasets
    rows = np.array([0, 3, 4, 5, 9])  # one shard alone, one across, single rows
    assert t.names_at(rows) == ["d0", "d3", "d4", "d5", "d9"] and t._name_list is None
    assert t.names_at(np.array([], dtype=np.intp)) == [] and t.names_at(np.array([7])) == ["d7"]
    assert fresh.find("x.max >= 4") == [f"d{i}" for i in range(4, 10)] and t._name_list is None
    fresh.delete_dataset("d4")
    add_dataset(fresh, "e", value=9.0)
    assert t.names_at(np.array([3, 4, 9])) == ["d3", "d5", "e"]  # through the list of names


def test_a_pass_over_every_dataset_asks_the_weak_map_once_whether_it_holds_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counting the states held walks every entry: a pass over the datasets must not do it
    per dataset (it made a pass quadratic after a flush)."""
    from atlas.core.state import WeakStates

    path = flushed_store(tmp_path, 6)
    store = atlas.Atlas.open(path)
    add_dataset(store, "new")
    store.flush()  # the table holds the committed states weakly: entries, their states gone

    def counted(self: WeakStates) -> int:
        raise AssertionError("the weak map was counted")

    monkeypatch.setattr(WeakStates, "__len__", counted)
    assert [n for n, _ in store._datasets.items()] == [*(f"d{i}" for i in range(6)), "new"]
