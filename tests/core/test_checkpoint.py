"""``atlas.core.checkpoint``: checkpoints of a long write stay invisible until the flush
publishes them, leave only orphans when dropped, and bound what the write holds."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from store_helpers import stored_files, write_profiles

import atlas
from atlas.core import checkpoint
from atlas.core.maintenance import unreferenced_summary


def _names_and_means(store: atlas.Atlas) -> dict[str, float]:
    return {n: float(np.nanmean(store.open_dataset(n).read_array("temperature"))) for n in store.list_datasets()}


def test_a_checkpoint_stays_invisible_until_the_flush_publishes_it(tmp_path: Path) -> None:
    path = tmp_path / "s"
    store = atlas.Atlas.create(path)
    write_profiles(store, 3, prefix="old")
    store.flush()
    version = store.version
    write_profiles(store, 5, prefix="a")
    store.open_dataset("old1").set_attribute("note", "changed")
    store.delete_dataset("old2")
    checkpoint.checkpoint(store)
    assert store.version == version and store._unpublished  # files named by no manifest yet
    assert store._datasets._states == {} and all(s.records is None for s in store._datasets.shards)
    other = atlas.Atlas.open(path)
    assert other.version == version and other.list_datasets() == ["old0", "old1", "old2"]
    # the writer goes on reading and changing what it checkpointed, and adds more
    expected = _names_and_means(store)
    assert store.open_dataset("old1").get_attribute("note") == "changed"
    store.open_dataset("a0").set_attribute("note", "after")
    write_profiles(store, 2, prefix="b")
    checkpoint.checkpoint(store)
    store.delete_dataset("a4")
    store.flush()
    assert store.version == version + 1 and store._unpublished == []
    fresh = atlas.Atlas.open(path)
    assert fresh.list_datasets() == ["old0", "old1", *[f"a{i}" for i in range(4)], "b0", "b1"]
    means = _names_and_means(fresh)
    assert all(means[n] == v for n, v in expected.items() if n != "a4")
    assert fresh.open_dataset("a0").get_attribute("note") == "after"
    assert fresh.open_dataset("a1").array_stats("temperature") is not None
    assert fresh.verify() == []
    # the runs of a checkpoint that a later one merged into its own are deleted: no orphans
    assert unreferenced_summary(fresh) == (0, 0)


def test_a_checkpoint_dropped_without_a_flush_leaves_only_orphans(tmp_path: Path) -> None:
    path = tmp_path / "s"
    store = atlas.Atlas.create(path)
    before = stored_files(path)
    write_profiles(store, 4)
    checkpoint.checkpoint(store)
    del store
    assert any(f.startswith("meta/") for f in set(stored_files(path)) - set(before))
    fresh = atlas.Atlas.open(path)
    assert fresh.list_datasets() == [] and fresh.version == 0
    fresh.garbage_collect(grace_period=0)
    assert stored_files(path) == before


def test_a_flush_after_a_checkpoint_whose_files_were_collected_commits_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s"
    store = atlas.Atlas.create(path)
    write_profiles(store, 2)
    checkpoint.checkpoint(store)
    atlas.Atlas.open(path).garbage_collect(grace_period=0)  # takes the checkpoint's files
    with pytest.raises(atlas.ConflictError, match="wrote ahead"):
        store.flush()
    assert atlas.Atlas.open(path).version == 0


def test_checkpoints_bound_what_a_long_write_holds(tmp_path: Path) -> None:
    """Datasets with many attributes: the handle's memory grows with what it changed since
    the last checkpoint, not with all it wrote."""
    store = atlas.Atlas.create(tmp_path / "s")

    def batch(k: int) -> None:
        for i in range(200):
            ds = store.create_dataset(f"d{k}_{i}")
            for j in range(50):
                ds.set_attribute(f"VAR{j}.long_name", f"a long name of variable {j} of dataset {k}_{i}")

    tracemalloc.start()
    batch(0)
    checkpoint.checkpoint(store)
    one, _ = tracemalloc.get_traced_memory()
    for k in range(1, 6):
        batch(k)
        checkpoint.checkpoint(store)
    six, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert six < one + (1 << 20)  # not six batches' worth (each is ~1.5 MB of attributes)
    store.flush()
    assert len(atlas.Atlas.open(tmp_path / "s").list_datasets()) == 1200


