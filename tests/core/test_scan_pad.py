"""Stacked reads of ragged arrays with ``pad=True``, in memory and through dask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import atlas
from atlas.dask import read_across


@pytest.fixture
def ragged(tmp_path: Path) -> atlas.Atlas:
    """Profiles of 3, 5 and 2 levels (2-D, chunked small), with floats, ints, strings, times."""
    s = atlas.Atlas.create(tmp_path / "s.atlas")
    for name, n in (("p0", 3), ("p1", 5), ("p2", 2)):
        d = s.create_dataset(name)
        d.define_array("t", "float64", ["prof", "lev"], [2, n], [1, 2], np.nan)
        d.write_array("t", [0, 0], np.arange(2 * n, dtype=float).reshape(2, n))
        d.define_array("q", "int32", ["lev"], [n], [n], -9)
        d.write_array("q", [0], np.arange(n, dtype=np.int32))
        d.define_array("s", "string", ["lev"], [n], [n])
        d.write_array("s", [0], np.array([f"{name}-{i}" for i in range(n)], dtype=object))
    s.flush()
    return s


def test_ragged_stacks_are_refused_without_pad(ragged: atlas.Atlas) -> None:
    with pytest.raises(ValueError, match="pad=True"):
        ragged.read_array_across_stacked("t", ["p0", "p1"])
    with pytest.raises(ValueError, match="different shapes"):
        read_across(ragged.location, "t")


def test_pad_fills_to_the_largest_shape(ragged: atlas.Atlas) -> None:
    out = ragged.read_array_across_stacked("t", ["p0", "p1", "p2"], pad=True)
    assert out.shape == (3, 2, 5)
    np.testing.assert_array_equal(out[1], np.arange(10.0).reshape(2, 5))
    np.testing.assert_array_equal(out[0, :, :3], np.arange(6.0).reshape(2, 3))
    assert np.isnan(out[0, :, 3:]).all() and np.isnan(out[2, :, 2:]).all()
    ints = ragged.read_array_across_stacked("q", ["p2", "p1"], pad=True)
    np.testing.assert_array_equal(ints, [[0, 1, -9, -9, -9], [0, 1, 2, 3, 4]])
    strings = ragged.read_array_across_stacked("s", ["p0", "p2"], pad=True)
    assert strings.tolist() == [["p0-0", "p0-1", "p0-2"], ["p2-0", "p2-1", ""]]
    window = ragged.read_array_across_stacked("t", ["p0", "p1"], [1, 1], [1, 3], pad=True)
    np.testing.assert_array_equal(window, [[[4.0, 5.0, np.nan]], [[6.0, 7.0, 8.0]]])


def test_dask_read_across_pads_like_the_stacked_read(ragged: atlas.Atlas) -> None:
    names = ["p0", "p1", "p2"]
    lazy = read_across(ragged.location, "t", names, pad=True, datasets_per_task=1)
    assert lazy.shape == (3, 2, 5)
    expected = ragged.read_array_across_stacked("t", names, pad=True)
    np.testing.assert_array_equal(lazy.compute(), expected)
    np.testing.assert_array_equal(lazy[2:, :, 1:4].compute(), expected[2:, :, 1:4])
    ints = read_across(ragged.location, "q", ["p2", "p0"], pad=True, datasets_per_task=1).compute()
    np.testing.assert_array_equal(ints, [[0, 1, -9], [0, 1, 2]])


def test_a_missing_dataset_or_array_is_named(ragged: atlas.Atlas) -> None:
    for read in (
        lambda names, array: ragged.read_array_across_stacked(array, names, pad=True),
        lambda names, array: read_across(ragged.location, array, names, pad=True),
    ):
        with pytest.raises(KeyError, match="no dataset named 'nope'"):
            read(["p0", "nope"], "t")
        with pytest.raises(KeyError, match="dataset 'p1' has no array named 'tt'"):
            read(["p1"], "tt")
