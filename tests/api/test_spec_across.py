"""Conformance tests for cross-dataset reads: ``Atlas.read_array_across`` and
``Atlas.read_array_across_stacked``."""

from __future__ import annotations

import numpy as np
import pytest

import atlas

A_DATA = np.array([1.0, 2.0, 3.0])
B_DATA = np.arange(5.0)


@pytest.fixture
def store(store: atlas.Atlas) -> atlas.Atlas:
    """The shared empty store (conftest.py) holding datasets A (v: float64[3]), B (v:
    float64[5], chunked), C (only w), D (v: float64[3])."""
    a = store.create_dataset("A")
    a.define_array("v", "float64", ["x"], [3])
    a.write_array("v", [0], A_DATA)
    b = store.create_dataset("B")
    b.define_array("v", "float64", ["x"], [5], chunk_shape=[2])
    b.write_array("v", [0], B_DATA)
    c = store.create_dataset("C")
    c.define_array("w", "int32", ["x"], [2])
    d = store.create_dataset("D")
    d.define_array("v", "float64", ["x"], [3], fill_value=-1.0)
    d.write_array("v", [1], np.array([8.0]))
    return store


def _eq(actual, expected):
    assert isinstance(actual, np.ndarray)
    np.testing.assert_array_equal(actual, expected)


# ---------------------------------------------------------------------------
# read_array_across
# ---------------------------------------------------------------------------


def test_across_is_aligned_with_names(store):
    out = store.read_array_across("v", ["B", "A", "D"])
    assert isinstance(out, list) and len(out) == 3
    _eq(out[0], B_DATA)
    _eq(out[1], A_DATA)
    _eq(out[2], [-1.0, 8.0, -1.0])


def test_across_keeps_duplicates_and_order(store):
    out = store.read_array_across("v", ["A", "B", "A", "A"])
    assert len(out) == 4
    _eq(out[0], A_DATA)
    _eq(out[1], B_DATA)
    _eq(out[2], A_DATA)
    _eq(out[3], A_DATA)


def test_across_none_for_datasets_without_the_array(store):
    out = store.read_array_across("v", ["C", "A", "unknown", "B"])
    assert out[0] is None
    _eq(out[1], A_DATA)
    assert out[2] is None
    _eq(out[3], B_DATA)


def test_across_none_for_deleted_datasets(store):
    store.delete_dataset("B")
    out = store.read_array_across("v", ["A", "B"])
    _eq(out[0], A_DATA)
    assert out[1] is None


def test_across_none_for_deleted_array(store):
    store.open_dataset("B").delete_array("v")
    out = store.read_array_across("v", ["B", "A"])
    assert out[0] is None
    _eq(out[1], A_DATA)


def test_across_ragged_shapes_are_fine(store):
    out = store.read_array_across("v", ["A", "B"])
    assert [x.shape for x in out] == [(3,), (5,)]


def test_across_window(store):
    out = store.read_array_across("v", ["A", "B", "C"], [1], [3])
    _eq(out[0], A_DATA[1:4])
    _eq(out[1], B_DATA[1:4])
    assert out[2] is None
    start_only = store.read_array_across("v", ["A", "B"], start=[2])
    _eq(start_only[0], A_DATA[2:])
    _eq(start_only[1], B_DATA[2:])
    shape_only = store.read_array_across("v", ["A", "B"], shape=[2])
    _eq(shape_only[0], A_DATA[:2])
    _eq(shape_only[1], B_DATA[:2])


def test_across_sees_buffered_data(store):
    store.flush()
    store.open_dataset("A").write_array("v", [0], np.array([-5.0]))
    e = store.create_dataset("E")
    e.define_array("v", "float64", ["x"], [2])
    e.write_array("v", [0], np.array([6.0, 7.0]))
    out = store.read_array_across("v", ["A", "E"])
    _eq(out[0], [-5.0, 2.0, 3.0])
    _eq(out[1], [6.0, 7.0])


def test_across_key_error_when_no_listed_dataset_declares_the_array(store):
    with pytest.raises(KeyError):
        store.read_array_across("v", ["C"])
    with pytest.raises(KeyError):
        store.read_array_across("v", ["C", "unknown"])
    with pytest.raises(KeyError):
        store.read_array_across("nowhere", ["A", "B"])


def test_across_value_error_on_empty_names(store):
    with pytest.raises(ValueError):
        store.read_array_across("v", [])


def test_across_each_dataset_uses_its_own_dtype(store):
    i = store.create_dataset("I")
    i.define_array("v", "int32", ["x"], [2])
    i.write_array("v", [0], np.array([7, -7], dtype=np.int32))
    s = store.create_dataset("S")
    s.define_array("v", "string", ["x"], [1])
    s.write_array("v", [0], np.array(["txt"], dtype=object))
    out = store.read_array_across("v", ["I", "A", "S"])
    assert out[0].dtype == np.int32
    _eq(out[0], [7, -7])
    assert out[1].dtype == np.float64
    _eq(out[1], A_DATA)
    assert out[2].dtype == object and out[2].tolist() == ["txt"]
    only_int = store.read_array_across("v", ["I"])
    assert only_int[0].dtype == np.int32


def test_across_strings(store):
    for name, words in (("S1", ["a", "é"]), ("S2", ["日本", "", "z"])):
        ds = store.create_dataset(name)
        ds.define_array("s", "string", ["x"], [len(words)])
        ds.write_array("s", [0], np.array(words, dtype=object))
    out = store.read_array_across("s", ["S2", "A", "S1"])
    assert out[0].dtype == object and out[0].tolist() == ["日本", "", "z"]
    assert out[1] is None
    assert out[2].tolist() == ["a", "é"]


def test_across_timestamps(store):
    ds = store.create_dataset("T")
    ds.define_array("t", "timestamp_nanoseconds", ["x"], [2])
    ds.write_array("t", [0], np.array([5, -(2**63)], dtype=np.int64))
    (out,) = store.read_array_across("t", ["T"])
    assert out.dtype == np.dtype("datetime64[ns]")
    assert out.view(np.int64).tolist() == [5, -(2**63)]


def test_across_after_flush_and_reopen(store):
    store.flush()
    reopened = atlas.Atlas.open(store.storage)
    out = reopened.read_array_across("v", ["D", "C", "A"])
    _eq(out[0], [-1.0, 8.0, -1.0])
    assert out[1] is None
    _eq(out[2], A_DATA)


# ---------------------------------------------------------------------------
# read_array_across_stacked
# ---------------------------------------------------------------------------


def test_stacked_shape_and_values(store):
    out = store.read_array_across_stacked("v", ["A", "D", "A"])
    assert isinstance(out, np.ndarray)
    assert out.shape == (3, 3)
    assert out.dtype == np.float64
    _eq(out, [A_DATA, [-1.0, 8.0, -1.0], A_DATA])


def test_stacked_2d(store):
    for i, name in enumerate(["G1", "G2"]):
        ds = store.create_dataset(name)
        ds.define_array("g", "int16", ["y", "x"], [2, 3], chunk_shape=[1, 2])
        ds.write_array("g", [0, 0], (np.arange(6, dtype=np.int16) + 10 * i).reshape(2, 3))
    out = store.read_array_across_stacked("g", ["G2", "G1"])
    assert out.shape == (2, 2, 3)
    assert out.dtype == np.int16
    _eq(out[0], np.arange(6).reshape(2, 3) + 10)
    _eq(out[1], np.arange(6).reshape(2, 3))
    window = store.read_array_across_stacked("g", ["G1", "G2"], [1, 1], [1, 2])
    assert window.shape == (2, 1, 2)
    _eq(window[:, 0, :], [[4, 5], [14, 15]])


def test_stacked_key_error_when_any_dataset_lacks_the_array(store):
    with pytest.raises(KeyError):
        store.read_array_across_stacked("v", ["A", "C"])
    with pytest.raises(KeyError):
        store.read_array_across_stacked("v", ["A", "unknown"])
    store.delete_dataset("D")
    with pytest.raises(KeyError):
        store.read_array_across_stacked("v", ["A", "D"])


def test_stacked_value_error_on_empty_names(store):
    with pytest.raises(ValueError):
        store.read_array_across_stacked("v", [])


def test_stacked_ragged_without_window_is_value_error(store):
    with pytest.raises(ValueError):
        store.read_array_across_stacked("v", ["A", "B"])


def test_stacked_ragged_with_common_window(store):
    out = store.read_array_across_stacked("v", ["A", "B"], [0], [2])
    assert out.shape == (2, 2)
    _eq(out, [A_DATA[:2], B_DATA[:2]])
    out = store.read_array_across_stacked("v", ["B", "A"], [1], [2])
    _eq(out, [B_DATA[1:3], A_DATA[1:3]])
    out = store.read_array_across_stacked("v", ["A", "B"], shape=[3])
    _eq(out, [A_DATA, B_DATA[:3]])


def test_stacked_strings(store):
    for name, words in (("S1", ["a", "é"]), ("S2", ["日本", ""])):
        ds = store.create_dataset(name)
        ds.define_array("s", "string", ["x"], [2])
        ds.write_array("s", [0], np.array(words, dtype=object))
    out = store.read_array_across_stacked("s", ["S2", "S1"])
    assert out.shape == (2, 2)
    assert out.dtype == object
    assert out.tolist() == [["日本", ""], ["a", "é"]]


def test_stacked_differing_dtypes_is_type_error(store):
    i = store.create_dataset("I")
    i.define_array("v", "int32", ["x"], [3])
    with pytest.raises(TypeError):
        store.read_array_across_stacked("v", ["A", "I"])
    with pytest.raises(TypeError):
        store.read_array_across_stacked("v", ["I", "A"])


def test_stacked_uses_the_listed_datasets_own_dtype(store):
    # "v" was first defined as float64 elsewhere; these two agree on int32.
    for k, name in enumerate(["I1", "I2"]):
        ds = store.create_dataset(name)
        ds.define_array("v", "int32", ["x"], [2])
        ds.write_array("v", [0], np.array([k, -k], dtype=np.int32))
    out = store.read_array_across_stacked("v", ["I1", "I2"])
    assert out.dtype == np.int32
    _eq(out, [[0, 0], [1, -1]])


def test_stacked_sees_buffered_data(store):
    store.flush()
    store.open_dataset("A").write_array("v", [2], np.array([30.0]))
    out = store.read_array_across_stacked("v", ["A"])
    _eq(out, [[1.0, 2.0, 30.0]])
