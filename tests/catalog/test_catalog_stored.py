"""The stored datasets as the catalogue reads them: the shards' catalogue fields, read a
range per shard and key, never a record; what is read of a shard is kept on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import atlas
from atlas.catalog import stored
from atlas.core import table as table_module


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
