"""The in-memory model of a version: array states built on demand, and index files checked
against what the manifest recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from store_helpers import flushed_store

import atlas


def test_reading_some_arrays_builds_only_theirs_and_later_changes_see_them(tmp_path: Path) -> None:
    """A read on a fresh handle builds the state of the arrays it reads only; writes,
    attributes and deletes that come later use those same states."""
    store = atlas.Atlas.create(tmp_path / "s")
    ds = store.create_dataset("d")
    for name in ("a", "b", "c"):
        ds.define_array(name, "float64", ["x"], [4], fill_value=float("nan"))
        ds.write_array(name, [0], np.arange(4.0) + ord(name))
    store.flush()
    again = atlas.Atlas.open(tmp_path / "s")
    view = again.open_dataset("d")
    assert view.read_arrays(["a", "zz"])["a"].tolist() == [97.0, 98.0, 99.0, 100.0]
    assert view._ds.arrays_untouched  # nothing but "a" was built
    view.write_array("a", [1], np.array([-1.0]))
    view.set_array_attribute("a", "units", "m")
    view.set_array_attribute("b", "units", "s")
    assert view.read_array("a").tolist() == [97.0, -1.0, 99.0, 100.0]
    view.delete_array("c")
    again.flush()
    last = atlas.Atlas.open(tmp_path / "s").open_dataset("d")
    assert last.list_arrays() == ["a", "b"]
    assert last.read_array("a").tolist() == [97.0, -1.0, 99.0, 100.0]
    assert last.array_attributes("a") == {"units": "m"} and last.array_attributes("b") == {"units": "s"}
    assert last.array_stats("a")["min"] == -1.0


def test_an_older_index_copied_over_the_newest_is_detected(tmp_path: Path) -> None:
    path = flushed_store(tmp_path, names=2)
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



def test_attributes_of_many_datasets_are_read_without_keeping_them_decoded(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    for i in range(6):
        ds = store.create_dataset(f"d{i}")
        ds.set_attribute("source", f"file{i}.nc")
        ds.set_attribute("size", i, "int32")
        ds.set_attribute("big", "x" * 1000)
    store.flush()
    again = atlas.Atlas.open(tmp_path / "s")
    again.open_dataset("d1").set_attribute("source", "changed.nc")  # a state, unflushed
    again.delete_dataset("d2")
    again.create_dataset("new").set_attribute("source", "new.nc")
    before = {s.serial for s in again._datasets.shards if s.records is not None}
    got = again._attributes_of(["d0", "d1", "d2", "d5", "new", "nope"], ["source", "size"])
    assert got == {
        "d0": {"source": "file0.nc", "size": 0},
        "d1": {"source": "changed.nc", "size": 1},
        "d5": {"source": "file5.nc", "size": 5},
        "new": {"source": "new.nc"},
    }
    assert set(again._datasets._states) == {"d1"}  # no state made for the others
    assert {s.serial for s in again._datasets.shards if s.records is not None} == before  # none kept
    fresh = atlas.Atlas.open(tmp_path / "s")
    assert fresh._attributes_of(["d3"], ["size"]) == {"d3": {"size": 3}}
    assert fresh._datasets._states == {} and all(s.records is None for s in fresh._datasets.shards)
