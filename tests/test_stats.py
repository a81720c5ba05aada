"""Statistics of chunks: summarised slice by slice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import atlas


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

