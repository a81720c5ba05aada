"""Finding one attribute or one array in the manifest-encoded metadata of many datasets
(``atlas.catalog.gather``): the guess at the first dataset's position, the datasets where it
misses searched one by one, and materialised datasets merged in."""

from __future__ import annotations

import numpy as np

from atlas.catalog.gather import (
    array_entries,
    array_hits,
    attribute_hits,
    attribute_keys,
    attribute_position,
    concatenated,
)


def test_attribute_position_skips_dtypes_and_values_equal_to_the_key() -> None:
    # "station" is first the value of "name", then a key
    flat = ["name", "string", "station", "station", "string", "KNMI"]
    assert attribute_position(flat, "station") == 3
    assert attribute_position(flat, "name") == 0
    assert attribute_position(flat, "string") == -1  # only ever a dtype
    assert attribute_position([], "x") == -1


def test_attribute_keys_are_every_third_item() -> None:
    assert attribute_keys(["a", "int64", 1, "b", "string", "x"]) == ["a", "b"]


def test_attribute_hits_where_the_guess_holds_and_where_it_misses() -> None:
    flats = [
        ["a", "int64", 1, "b", "string", "x"],
        ["a", "int64", 2, "b", "string", "y"],
        ["b", "string", "z", "a", "int64", 3],  # another order: searched on its own
        ["a", "int64", 4],  # no "b"
    ]
    rows = np.array([0, 2, 3, 5], dtype=np.intp)
    hits = attribute_hits("b", flats, rows, [], [])
    assert hits.rows.tolist() == [0, 2, 3]
    assert hits.values == ["x", "y", "z"]
    assert hits.dtypes == ["string"] * 3

    same_place = attribute_hits("a", flats[:2], rows[:2], [], [])
    assert same_place.rows.tolist() == [0, 2] and same_place.values == [1, 2]


def test_attribute_hits_take_materialised_datasets_too() -> None:
    dicts = [{"a": ("float64", 1.5)}, {"c": ("int64", 7)}]
    hits = attribute_hits("a", [["a", "int64", 1]], np.array([0], dtype=np.intp), dicts, [4, 6])
    assert hits.rows.tolist() == [0, 4]
    assert hits.dtypes == ["int64", "float64"]
    assert hits.values == [1, 1.5]
    missing = attribute_hits("zz", [["a", "int64", 1]], np.array([0], dtype=np.intp), dicts, [4, 6])
    assert missing.rows.tolist() == [] and missing.values == []


def test_array_entries_follow_the_first_dataset_declaring_the_array() -> None:
    t = ["t", None, 0, None]
    s = ["s", None, 1, None]
    entry_lists = [[t, s], [t, s], [s, t], [t]]
    rows = np.array([10, 11, 12, 13], dtype=np.intp)
    found_rows, entries = array_entries("s", entry_lists, rows)
    assert found_rows.tolist() == [10, 11, 12]
    assert [e[0] for e in entries] == ["s", "s", "s"]
    none_rows, none = array_entries("q", entry_lists, rows)
    assert len(none_rows) == 0 and none == []


def test_array_hits_split_off_the_datasets_with_statistics() -> None:
    rows = np.array([0, 1, 2], dtype=np.intp)
    schemas = np.array([5, 6, 5])
    hits = array_hits(rows, schemas, [[3, 0, 1, 2], None, [4, 1, 0, 9]])
    assert hits.stat_rows.tolist() == [0, 2]
    assert hits.stat_schemas.tolist() == [5, 5]
    assert hits.statistic(3) == [2, 9]  # max
    keyed = array_hits(rows[:1], schemas[:1], [{"row_count": 3, "null_count": 0, "min": 1, "max": 2}], keyed=True)
    assert keyed.statistic(0) == [3]
    both = concatenated(hits, keyed)
    assert both.rows.tolist() == [0, 1, 2, 0]
    assert both.statistics_lists() == [[3, 0, 1, 2], [4, 1, 0, 9], (3, 0, 1, 2)]
    assert not both.keyed
