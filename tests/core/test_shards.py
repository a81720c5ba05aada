"""``atlas.core.shards``: a shard's range of names, and a dataset's stored form asked of its
record whether raw or a state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from store_helpers import add_dataset

import atlas
from atlas.core.shards import Shard, stored_attrs, stored_entries


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
