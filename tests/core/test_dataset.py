"""``DatasetView``: a stateless handle on one dataset; views of the same dataset are equal,
views of a dataset deleted or created again are not."""

from __future__ import annotations

import numpy as np
import pytest

import atlas


def test_views_of_one_dataset_are_equal_and_hash_alike(store: atlas.Atlas) -> None:
    first = store.create_dataset("d")
    again = store.open_dataset("d")
    other = store.create_dataset("e")
    assert first == again and hash(first) == hash(again) and first is not again
    assert first != other and first != "d"
    assert {first: 1, again: 2} == {first: 2}
    store.delete_dataset("d")
    recreated = store.create_dataset("d")
    assert recreated != first  # a new dataset under the old name


def test_repr_names_the_dataset_counts_arrays_and_says_deleted(store: atlas.Atlas) -> None:
    view = store.create_dataset("prof 1")
    view.define_array("t", "float32", ["z"], [3])
    view.define_array("s", "float32", ["z"], [3])
    assert repr(view) == "<DatasetView 'prof 1' arrays=2>"
    store.delete_dataset("prof 1")
    assert repr(view).startswith("<DatasetView 'prof 1' arrays=") and repr(view).endswith(" deleted>")


def test_a_view_of_a_deleted_dataset_says_so(store: atlas.Atlas) -> None:
    view = store.create_dataset("d")
    view.define_array("x", "int8", ["n"], [2])
    view.write_array("x", [0], np.array([1, 2], dtype=np.int8))
    store.flush()
    store.delete_dataset("d")
    with pytest.raises(KeyError, match="'d' was deleted"):
        view.read_arrays(["x"])
    with pytest.raises(KeyError, match="'d' was deleted"):
        view.read_array("never-defined")  # not None, as for a live dataset
    # the version it was flushed in still holds it
    assert atlas.Atlas.open(store.storage).open_dataset("d").read_array("x").tolist() == [1, 2]


def test_attribute_dtypes_tell_inferred_and_forced_kinds_and_persist(store: atlas.Atlas) -> None:
    view = store.create_dataset("d")
    view.set_attribute("n", 3)
    view.set_attribute("f", 1.5, dtype="float32")
    view.set_attribute("u", 7, dtype="uint8")
    view.set_attribute("s", "x")
    view.set_attribute("b", False)
    kinds = {"n": "int64", "f": "float32", "u": "uint8", "s": "string", "b": "bool"}
    assert view.attribute_dtypes() == kinds
    store.flush()
    assert atlas.Atlas.open(store.storage).open_dataset("d").attribute_dtypes() == kinds


def test_array_stats_are_a_fresh_dict_and_string_bounds_are_bytes(store: atlas.Atlas) -> None:
    view = store.create_dataset("d")
    view.define_array("s", "string", ["n"], [2])
    view.write_array("s", [0], np.array(["béta", "alpha"], dtype=object))
    store.flush()
    stats = view.array_stats("s")
    assert stats == {"row_count": 2, "null_count": 0, "min": b"alpha", "max": "béta".encode()}
    stats["min"] = b"changed"
    assert view.array_stats("s")["min"] == b"alpha"
    assert view.array_stats("missing") is None
