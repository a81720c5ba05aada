"""``atlas.core.runs``: a variable's chunk index stays a few runs of growing size; appends
write about their own rows, reads merge the runs, and the newest row of a chunk wins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from store_helpers import add_dataset

import atlas
from atlas.core.runs import MAX_RUNS, RUN_RATIO, runs_to_merge
from atlas.core.state import IndexRun


def _run(rows: int) -> IndexRun:
    return IndexRun("index/r1-x.idx", 0, 10, 0, rows)


def test_the_newest_runs_are_merged_while_they_are_small_next_to_the_new_one() -> None:
    runs = [_run(5000), _run(400), _run(90), _run(20)]
    keep, tail = runs_to_merge(runs, 10)
    assert keep == runs[:1] and tail == runs[1:]  # 20 <= 4 x 10, 90 <= 4 x 30, 400 <= 4 x 120; 5000 > 4 x 520
    assert runs_to_merge(runs, 0) == (runs, [])  # nothing new: nothing merged
    assert runs_to_merge([_run(-1), _run(3)], 1) == ([], [_run(-1), _run(3)])  # unknown sizes go
    many = [_run(RUN_RATIO ** (MAX_RUNS - i)) for i in range(MAX_RUNS)]
    assert runs_to_merge(many, 1) == ([], many)  # too many runs: written whole again


def test_appends_write_new_index_runs_and_reads_merge_them(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    big = store.create_dataset("big")  # 5,000 chunks: one large run that appends leave alone
    big.define_array("x", "float64", ["z"], [50_000], chunk_shape=[10])
    big.write_array("x", [0], np.arange(50_000.0))
    store.flush()
    (big_run,) = store._variables["x"].runs
    for i in range(30):
        add_dataset(store, f"a{i}", value=float(i))
        store.flush()
    runs = store._variables["x"].runs
    assert runs[0] == big_run and 1 < len(runs) <= 12
    store.open_dataset("a3").write_array("x", [0], np.array([-1.0]))  # a newer row for one chunk wins
    store.flush()
    fresh = atlas.Atlas.open(tmp_path / "s")
    got = fresh.read_array_across("x", ["a3", "a29", "big"])
    assert got[0][0] == -1.0 and got[0][1] == 3.0 and got[1][0] == 29.0 and len(got[2]) == 50_000
    stats = fresh.open_dataset("a3").array_stats("x")
    assert stats is not None and stats["min"] == -1.0
    fresh.delete_dataset("a5")
    fresh.compact()
    assert len(fresh._variables["x"].runs) == 1
    assert len(fresh._index(fresh._variables["x"])) == 5_000 + 29  # the deleted array's row is gone
    assert fresh.verify() == []


def test_runs_in_order_are_decoded_side_by_side_into_one_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Appends leave runs in order: a fresh handle decodes them each into its part of one
    table, and merges nothing."""
    from atlas.core import model

    store = atlas.Atlas.create(tmp_path / "s")
    for i in range(6):
        add_dataset(store, f"a{i}", value=float(i))
        store.flush()
    assert len(store._variables["x"].runs) > 1
    fresh = atlas.Atlas.open(tmp_path / "s")

    def no_merge(*args: object, **kwargs: object) -> None:
        raise AssertionError("runs merged")

    monkeypatch.setattr(model, "merge_rows", no_merge)
    rows = fresh._index(fresh._variables["x"]).rows
    assert len(rows) == 6 and rows["aid"].tolist() == sorted(rows["aid"].tolist())
    assert [v[0] for v in fresh.read_array_across("x", [f"a{i}" for i in range(6)])] == [float(i) for i in range(6)]
