"""``atlas.core.shards``: a shard's range of names, and a dataset's stored form asked of its
record whether raw or a state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from store_helpers import add_dataset

import atlas
from atlas.core.shards import (
    Shard,
    array_entries,
    attribute_keys,
    current_record,
    split,
    stored_attrs,
    stored_entries,
)


def test_a_shard_may_hold_only_names_in_its_range() -> None:
    s = Shard("meta/s1-x.shard", ["p004", "p001", "p009"])
    assert s.may_hold("p001") and s.may_hold("p005") and s.may_hold("p009")
    assert not s.may_hold("p000") and not s.may_hold("p010") and not s.may_hold("q")
    assert s.bounds == ("p001", "p009")
    assert not Shard(None, []).may_hold("")


def test_the_stored_form_of_a_raw_record_and_of_a_state(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    add_dataset(store, "d", value=2.0)
    store.open_dataset("d").set_attribute("k", 1)
    store.flush()
    fresh = atlas.Atlas.open(tmp_path / "s")
    raw = fresh._datasets.get("d")
    assert type(raw) is list and stored_attrs(raw) == raw[1] and stored_entries(raw) == raw[2]
    view = fresh.open_dataset("d")  # a state made of the raw record, still as read
    state = fresh._datasets.get("d")
    assert stored_attrs(state) == raw[1] and stored_entries(state) == raw[2]
    view.set_attribute("k", 2)  # attributes decoded and changed: no longer the stored form
    assert stored_attrs(state) is None and stored_entries(state) == raw[2]
    view.write_array("x", [0], np.array([5.0]))  # arrays built: their stored form is gone too
    assert stored_entries(state) is None


def test_bulk_readers_take_stored_records_and_states_alike(tmp_path: Path) -> None:
    """The catalogue, maintenance and change lists read every dataset without making
    states: stored records where the handle made none, states where it did."""
    s = atlas.Atlas.create(tmp_path / "s")
    for i in range(4):
        ds = s.create_dataset(f"d{i}")
        ds.set_attribute("cycle", i)
        ds.define_array("t", "float32", ["z"], [3])
    s.flush()
    s = atlas.Atlas.open(tmp_path / "s")
    view = s.open_dataset("d1")
    view.set_attribute("station", "x")  # a state, changed
    table = s._datasets
    names, held, stored, stored_rows, states, state_rows = split(table)
    assert names == ["d0", "d1", "d2", "d3"] and len(held) == 4
    assert stored_rows.tolist() == [0, 2, 3] and [r[0] for r in stored] == ["d0", "d2", "d3"]
    assert states == [view._ds] and state_rows.tolist() == [1]
    entries = list(array_entries(table))
    assert [e[0] for e in entries] == ["t"] * 4 and len({e[1] for e in entries}) == 4
    assert attribute_keys(table, "d0") == ["cycle"] and attribute_keys(table, "d1") == ["cycle", "station"]
    assert current_record(table, "d2", lambda ds: ["encoded"]) is table["d2"]  # the stored record itself
    assert current_record(table, "d1", lambda ds: ["encoded", ds.name]) == ["encoded", "d1"]
