"""The stored datasets as the catalogue reads them: the shards' catalogue fields, read a
range per shard and key, never a record; what is read of a shard is kept on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import atlas
from atlas.catalog import stored
from atlas.core import table as table_module
from atlas.format.fields import ATTRIBUTE


@pytest.fixture
def small_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_module, "SHARD_ROWS", 4)


def _store(path: Path) -> atlas.Atlas:
    s = atlas.Atlas.create(path)
    for i in range(10):
        ds = s.create_dataset(f"d{i}")
        ds.set_attribute("cycle", i)
        if i % 3:
            ds.set_attribute("station", f"s{i % 2}")
        ds.define_array("t", "float32", ["z"], [3])
        ds.write_array("t", [0], np.arange(3, dtype=np.float32) + i)
    s.flush()
    return atlas.Atlas.open(path)


def test_the_catalogue_reads_fields_of_every_shard_and_no_record(tmp_path: Path, small_shards: None) -> None:
    s = _store(tmp_path / "s")
    shards = s._datasets.shards
    assert len(shards) == 3  # 4 + 4 + 2 datasets
    table = s.catalog(arrays=["t"], attributes=["cycle", "station"])
    assert table["cycle"].tolist() == list(range(10))
    assert table["station"].isna().tolist() == [i % 3 == 0 for i in range(10)]
    assert table["t.max"].tolist() == [float(i + 2) for i in range(10)]
    assert all(sh.records is None for sh in shards)  # no record was decoded
    assert all(any("cycle" in key for key in sh.fields) for sh in shards)  # what was read is kept on each shard
    assert s.find("cycle >= 8 and t.min < 9") == ["d8"]


def test_the_stored_snapshot_serves_its_version_until_the_shards_change(tmp_path: Path, small_shards: None) -> None:
    s = _store(tmp_path / "s")
    s.catalog(arrays=[], attributes=["cycle"])
    first = stored._SNAPSHOTS[s]
    s.catalog(arrays=[], attributes=["cycle"])
    assert stored._SNAPSHOTS[s] is first  # the same shards: the same snapshot
    s.open_dataset("d9").set_attribute("cycle", 90)
    s.flush()  # the last shard is written again
    assert s.catalog(arrays=[], attributes=["cycle"])["cycle"].tolist()[-1] == 90
    assert stored._SNAPSHOTS[s] is not first
    stored.forget_stored(s)
    assert s not in stored._SNAPSHOTS


def test_fields_every_dataset_holds_share_one_array_of_positions(tmp_path: Path, small_shards: None) -> None:
    """A field held by every stored dataset needs no positions of its own (at a million
    datasets each would be 8 MB more): all such fields share 0..n-1. Fields some datasets
    lack, in one shard or in all of one, are placed row by row."""
    s = atlas.Atlas.create(tmp_path / "s")
    for i in range(10):
        ds = s.create_dataset(f"d{i}")
        ds.set_attribute("everywhere", i)
        if not 4 <= i < 8:
            ds.set_attribute("not_in_shard_1", i * 10)
        if i != 9:
            ds.set_attribute("not_in_d9", f"x{i}")
        ds.define_array("t", "float32", ["z"], [3])
        ds.write_array("t", [0], np.arange(3, dtype=np.float32) + i)
        if i % 2:
            ds.define_array("u", "int16", ["z"], [2])
            ds.write_array("u", [0], np.array([i, -i], dtype=np.int16))
    s.flush()
    s = atlas.Atlas.open(tmp_path / "s")
    assert len(s._datasets.shards) == 3
    table = s.catalog(arrays=["t", "u"], attributes=["everywhere", "not_in_shard_1", "not_in_d9"])
    assert table["everywhere"].tolist() == list(range(10))
    assert table["not_in_shard_1"].isna().tolist() == [4 <= i < 8 for i in range(10)]
    assert table["not_in_shard_1"].dropna().tolist() == [0, 10, 20, 30, 80, 90]
    assert table["not_in_d9"].tolist()[:9] == [f"x{i}" for i in range(9)]
    assert table["not_in_d9"].isna().tolist() == [i == 9 for i in range(10)]
    assert table["t.max"].tolist() == [float(i + 2) for i in range(10)]
    assert table["u.max"].isna().tolist() == [i % 2 == 0 for i in range(10)]
    assert table["u.min"].dropna().tolist() == [-1, -3, -5, -7, -9]
    assert table["u.shape"].dropna().tolist() == [(2,)] * 5
    snapshot = stored._SNAPSHOTS[s]
    every = snapshot._every_position()
    assert every.tolist() == list(range(10)) and not every.flags.writeable
    assert snapshot._block(ATTRIBUTE + "everywhere", 0)[0] is every
    assert snapshot._declared("t", s._schemas)[0] is every
    assert snapshot._block(ATTRIBUTE + "not_in_shard_1", 0)[0].tolist() == [0, 1, 2, 3, 8, 9]
    assert snapshot._declared("u", s._schemas)[0].tolist() == [1, 3, 5, 7, 9]


def test_the_frame_is_the_callers_own_and_later_calls_see_the_store(tmp_path: Path, small_shards: None) -> None:
    """catalog() hands its typed columns to pandas as they are, and the handle keeps none of
    them: changing the frame changes no later catalog() or find(), whichever came first."""
    s = _store(tmp_path / "s")
    assert s.find("cycle >= 8") == ["d8", "d9"]  # typed columns made by find first
    first = s.catalog(arrays=["t"], attributes=["cycle", "station"])
    snapshot = stored._SNAPSHOTS[s]
    assert not snapshot._attribute_columns and not snapshot._field_columns  # given away, not kept
    expected = first.copy(deep=True)
    first.loc["d0", "cycle"] = 999
    first.iloc[1, 1] = "edited"
    first["t.max"] = first["t.max"] * 0
    first.loc[first["cycle"] > 5, "t.min"] = -1.0
    again = s.catalog(arrays=["t"], attributes=["cycle", "station"])
    assert again.equals(expected)
    assert s.find("cycle == 999") == [] and s.find("t.min < 0") == []
    assert s.find("t.max > 10") == ["d9"]
    third = s.catalog(arrays=["t"], attributes=["cycle", "station"])
    third.loc["d9", "cycle"] = -5
    assert s.catalog(arrays=["t"], attributes=["cycle", "station"]).equals(expected)


def test_catalog_waits_for_a_find_using_the_same_columns(
    tmp_path: Path, small_shards: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """catalog() takes the typed columns the handle keeps and changes them as the frame's
    own; a find() in another thread may be using those same columns: catalog() waits for it."""
    import threading

    import atlas.catalog as catalog_module

    s = _store(tmp_path / "s")
    s.find("cycle >= 0")  # the columns are made and kept
    using, go = threading.Event(), threading.Event()
    real = catalog_module.evaluate

    def slow(store: object, tree: object) -> object:
        mask = real(store, tree)  # type: ignore[arg-type]
        using.set()
        assert go.wait(10)
        return mask

    monkeypatch.setattr(catalog_module, "evaluate", slow)
    found: list[list[str]] = []
    finder = threading.Thread(target=lambda: found.append(s.find("station == 's1'")))
    finder.start()
    assert using.wait(10)
    frames: list[object] = []
    cataloguer = threading.Thread(target=lambda: frames.append(s.catalog(arrays=[], attributes=["station"])))
    cataloguer.start()
    cataloguer.join(0.3)
    assert cataloguer.is_alive()  # waiting for the find to be done with the columns
    go.set()
    finder.join(10)
    cataloguer.join(10)
    assert found == [["d1", "d5", "d7"]]
    assert len(frames) == 1
