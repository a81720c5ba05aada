"""``atlas.core.places``: where each stored dataset is, found by name, searching only the
shards whose range of names may hold it."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_helpers import add_dataset

import atlas
from atlas.core import places, table
from atlas.format import shard


@pytest.fixture
def small_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table, "SHARD_ROWS", 4)
    monkeypatch.setattr(shard, "SHARD_ROWS", 4)


def test_lookups_search_only_the_shards_whose_names_hold_them(tmp_path: Path, small_shards: None) -> None:
    """Names added in order fall in one shard's range: finding one, or adding names past
    every range, searches at most one shard and builds no map of every name; a handle that
    looks up many datasets builds it, and answers the same."""
    path = tmp_path / "s"
    store = atlas.Atlas.create(path)
    names = [f"p{i:03d}" for i in range(40)] + ["a-late", "z-late"]  # the last shard's range is wide
    for n in names:
        add_dataset(store, n, value=1.0)
    store.flush()
    fresh = atlas.Atlas.open(path)
    t = fresh._datasets
    for n in ["p000", "p003", "p004", "p017", "p039", "a-late", "z-late"]:
        assert n in t and fresh.open_dataset(n).name == n
    assert "p0035" not in t and "nope" not in t and "" not in t
    for k in range(5):
        add_dataset(fresh, f"q{k}", value=2.0)  # past every shard's range
    # over 20 lookups, each searched its own shard and the wide last one: less than 4 whole searches
    assert t._lookup.place is None and t._lookup.searched < 4 * len(names)
    for _ in range(places.SEARCH_BUDGET * len(names)):  # each lookup searches the wide shard
        assert "b-missing" not in t
        if t._lookup.place is not None:
            break
    assert t._lookup.place is not None  # the budget spent: one map of every name serves now
    assert all(n in t for n in names) and "b-missing" not in t
    fresh.flush()
    again = atlas.Atlas.open(path)
    assert again.list_datasets() == names + [f"q{k}" for k in range(5)]
    assert again.verify() == []


def test_lookups_of_new_names_bisect_ranges_that_do_not_overlap(tmp_path: Path, small_shards: None) -> None:
    """Adding datasets to a large store looks up each new name, which no shard holds:
    checking every shard's range for each costs as much as the store has shards. After a
    few such lookups the ranges are sorted, and when no two overlap one bisection finds the
    only shard that may hold a name. Every answer stays the same."""
    path = tmp_path / "s"
    store = atlas.Atlas.create(path)
    names = [f"p{i:03d}" for i in range(40)]
    for n in names[::-1]:  # shards hold p036-p039 first: ranges are sorted, not the shards
        add_dataset(store, n, value=1.0)
    store.flush()
    fresh = atlas.Atlas.open(path)
    t = fresh._datasets
    assert len(t.shards) == 10
    k = 0
    while t._lookup.ranges is None:
        assert f"x{k}" not in t  # past every range: each checks all ten ranges
        k += 1
    assert k <= places.RANGE_CHECKS_BEFORE_SORTING + 2
    assert isinstance(t._lookup.ranges, tuple)  # no two ranges overlap
    searched, checks = t._lookup.searched, t._lookup.range_checks
    for n in ["a", "p", "p0035", "p0075", "p03999", "p040", "q"]:  # before, between and after the ranges
        assert n not in t
    assert t._lookup.searched == searched  # no name list was searched: no range holds them
    assert t._lookup.range_checks == checks  # and no shard's range was checked: one bisection each
    assert all(n in t and fresh.open_dataset(n).name == n for n in names)
    for j in range(3):
        add_dataset(fresh, f"p{40 + j:03d}", value=2.0)
    assert [n for n in ["p040", "p041", "p042", "p043"] if n in t] == ["p040", "p041", "p042"]
    fresh.flush()
    assert t._lookup.ranges is None  # other shards now: sorted again when lookups need it
    assert atlas.Atlas.open(path).list_datasets() == names[::-1] + ["p040", "p041", "p042"]
