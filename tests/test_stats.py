"""Statistics: floats ordered by IEEE total order, null masks, per-chunk summaries (also
slice by slice), string statistics and the fold of index rows into ``array_stats``."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest

import atlas
from atlas.dtypes import DTYPES
from atlas.format.chunkindex import empty_rows
from atlas.stats import chunk_stats, float_keys, fold_many, keys_to_bits, null_mask, string_stats


def test_stats_of_chunks_summarised_in_slices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from atlas import stats

    monkeypatch.setattr(stats, "STATS_SLICE_CELLS", 1000)
    rng = np.random.default_rng(3)
    vals = rng.normal(size=10_500).astype(np.float32)
    vals[rng.random(vals.size) < 0.2] = np.nan
    vals[:2500] = np.nan  # a whole slice of nulls
    ints = rng.integers(0, 2**63, size=4321, dtype=np.uint64)
    store = atlas.Atlas.create(tmp_path / "s")
    ds = store.create_dataset("d")
    ds.define_array("f", "float32", ["n"], [vals.size], chunk_shape=[vals.size], fill_value=float("nan"))
    ds.define_array("u", "uint64", ["n"], [ints.size], chunk_shape=[ints.size])
    ds.write_array("f", [0], vals)
    ds.write_array("u", [0], ints)
    store.flush()
    view = atlas.Atlas.open(tmp_path / "s").open_dataset("d")
    st = view.array_stats("f")
    assert st["null_count"] == int(np.isnan(vals).sum())
    assert st["min"] == float(np.nanmin(vals)) and st["max"] == float(np.nanmax(vals))
    su = view.array_stats("u")
    assert su["min"] == int(ints.min()) and su["max"] == int(ints.max()) and su["null_count"] == 0



def _f64(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def _values(bits: np.ndarray) -> list[float]:
    """float64 values of a column of float64 bits."""
    return bits.view(np.float64).tolist()


def test_float_keys_follow_the_ieee_total_order() -> None:
    neg_nan = struct.unpack(">d", bytes.fromhex("fff8000000000000"))[0]
    ordered = _f64(neg_nan, -np.inf, -1e300, -1.0, -5e-324, -0.0, 0.0, 5e-324, 1.0, np.inf, np.nan)
    keys = float_keys(ordered.view(np.int64))
    assert (np.diff(keys) > 0).all()
    assert np.array_equal(keys_to_bits(keys), ordered.view(np.int64))


def test_null_masks_match_the_fill_value() -> None:
    f8 = DTYPES["float64"]
    cells = _f64(np.nan, -np.nan, 0.0, -0.0, 1.0)
    assert null_mask(f8, cells, None) is None
    assert null_mask(f8, cells, math.nan).tolist() == [True, True, False, False, False]  # any NaN
    assert null_mask(f8, cells, 0.0).tolist() == [False, False, True, True, False]  # either zero
    assert null_mask(DTYPES["int8"], np.array([1, 2, 1], dtype=np.int8), 1).tolist() == [True, False, True]
    assert null_mask(DTYPES["float32"], np.array([np.inf], dtype=np.float32), 1e39).tolist() == [True]


def test_chunk_stats_count_nulls_and_bound_the_other_cells() -> None:
    f4 = DTYPES["float32"]
    chunks = [
        np.array([1.5, np.nan, -2.25], dtype=np.float32),
        np.array([np.nan, np.nan], dtype=np.float32),
        np.array([], dtype=np.float32),
        np.array([[0.1, 7.0]], dtype=np.float32),
    ]
    nulls, vmin, vmax, has = chunk_stats(f4, chunks, [math.nan, math.nan, math.nan, None])
    assert nulls.tolist() == [1, 2, 0, 0] and has.tolist() == [1, 0, 0, 1]
    assert _values(vmin)[0] == -2.25 and _values(vmax)[0] == 1.5
    assert _values(vmin)[3] == float(np.float32(0.1))  # float32 widened exactly
    u8 = DTYPES["uint64"]
    big = np.array([2**64 - 1, 5], dtype=np.uint64)
    nulls, vmin, vmax, has = chunk_stats(u8, [big], [5])
    assert nulls.tolist() == [1] and vmin.view(np.uint64).tolist() == [2**64 - 1] == vmax.view(np.uint64).tolist()
    nulls, vmin, vmax, has = chunk_stats(DTYPES["bool"], [np.array([True, False, True])], [None])
    assert (vmin.tolist(), vmax.tolist(), has.tolist()) == ([0], [1], [1])
    assert [len(c) for c in chunk_stats(f4, [], [])] == [0, 0, 0, 0]


def test_string_stats_count_unwritten_and_fill_cells_as_nulls() -> None:
    values = [np.array(["b", "a", ""], dtype=object), np.array(["zz"], dtype=object)]
    assert string_stats(10, 4, values, "") == {"row_count": 10, "null_count": 7, "min": "a", "max": "zz"}
    assert string_stats(10, 4, values, None) == {"row_count": 10, "null_count": 6, "min": "", "max": "zz"}
    assert string_stats(3, 0, [], None) == {"row_count": 3, "null_count": 3, "min": None, "max": None}


def test_fold_many_folds_each_arrays_rows_into_its_stats() -> None:
    rows = empty_rows(3)
    rows["aid"] = [1, 1, 2]
    rows["ncells"] = [4, 4, 2]
    rows["nulls"] = [1, 0, 2]
    rows["has_minmax"] = [1, 1, 0]
    rows["vmin"] = _f64(-3.0, 0.5, 0.0).view(np.int64)
    rows["vmax"] = _f64(2.0, 9.0, 0.0).view(np.int64)
    f8 = DTYPES["float64"]
    got = fold_many(f8, [10, 2, 6], np.array([0, 2, 3]), np.array([2, 3, 3]), rows.__getitem__)
    assert got == [
        {"row_count": 10, "null_count": 10 - 8 + 1, "min": -3.0, "max": 9.0},
        {"row_count": 2, "null_count": 2, "min": None, "max": None},  # only nulls written
        {"row_count": 6, "null_count": 6, "min": None, "max": None},  # nothing written
    ]
    assert fold_many(f8, [4], np.array([0]), np.array([0]), rows.__getitem__) == [
        {"row_count": 4, "null_count": 4, "min": None, "max": None}
    ]
