"""What the catalogue remembers of a handle between calls: later calls see every change."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from catalog_helpers import column_values as _col
from reliability_helpers import as_version_1

import atlas
from atlas.catalog import snapshot, stored

# A version-2 store's datasets are read from its shards' catalogue fields (``stored``); a
# version-1 manifest's from its raw records (``snapshot``). Both remember what they read.
LAYOUTS = {"shards": stored, "version 1": snapshot}


def test_catalog_follows_changes_after_earlier_calls(tmp_path: Path) -> None:
    """Repeated calls reuse what was read from the manifest; changes made since must show."""
    path = tmp_path / "s"
    s = atlas.Atlas.create(path)
    for i in range(30):
        ds = s.create_dataset(f"d{i:02d}")
        ds.set_attribute("k", i)
        ds.define_array("v", "int32" if i % 7 else "float64", ["i"], [2])
        if i % 5:
            data = np.array([i, 2 * i], dtype=np.int32 if i % 7 else np.float64)
            ds.write_array("v", [0], data)
    s.flush()

    def fresh() -> pd.DataFrame:
        return atlas.Atlas.open(path).catalog()

    s = atlas.Atlas.open(path)
    pd.testing.assert_frame_equal(s.catalog(), fresh())
    s.open_dataset("d03").set_attribute("k", "three")  # another kind in one materialised dataset
    s.open_dataset("d04").set_attribute("new", True)
    s.delete_dataset("d05")
    d = s.create_dataset("zz")
    d.define_array("v", "uint64", ["i"], [1])
    d.write_array("v", [0], np.array([2**64 - 1], dtype=np.uint64))
    s.open_dataset("d06").read_array("v")
    before = s.catalog()
    assert _col(before, "k")[3] == "three" and "d05" not in before.index and before.index[-1] == "zz"
    assert _col(before, "v.max")[-1] is None  # not flushed yet
    s.flush()
    after = s.catalog()
    pd.testing.assert_frame_equal(after, fresh())
    assert after["v.max"].dtype == object  # int32, float64 and uint64 beyond int64 together
    assert s.find("v.max > 18446744073709551614") == ["zz"]
    assert s.find("k == 'three' or new") == ["d03", "d04"]
    assert s.find("k >= 28") == ["d28", "d29"]
    s.delete_dataset("zz")
    s.open_dataset("d03").set_attribute("k", 3)
    pd.testing.assert_frame_equal(s.catalog(), s.catalog())
    assert str(s.catalog()["k"].dtype) == "Int64"
    assert s.find("k == 3") == ["d03"]
    for name in s.list_datasets()[::3]:  # most datasets gone from the snapshot
        s.delete_dataset(name)
    s.flush()
    pd.testing.assert_frame_equal(s.catalog(), fresh())


def _store(path: Path, layout: str = "shards", n: int = 6) -> atlas.Atlas:
    s = atlas.Atlas.create(path)
    for i in range(n):
        ds = s.create_dataset(f"d{i}")
        ds.set_attribute("k", i)
        ds.define_array("v", "int32", ["i"], [1])
        ds.write_array("v", [0], np.array([i], dtype=np.int32))
    s.flush()
    if layout == "version 1":
        as_version_1(path)
    return atlas.Atlas.open(path)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_snapshot_is_reused_and_sees_buffered_changes(tmp_path: Path, layout: str) -> None:
    snapshots = LAYOUTS[layout]._SNAPSHOTS  # type: ignore[attr-defined]
    s = _store(tmp_path / "s", layout)
    assert s.find("k == 1") == ["d1"]
    first = snapshots[s]
    assert s.find("v.max >= 4") == ["d4", "d5"]
    assert snapshots[s] is first  # the records are those of the snapshot
    s.open_dataset("d1").set_attribute("k", 100)  # buffered, not flushed
    s.delete_dataset("d4")
    d = s.create_dataset("new")
    d.set_attribute("k", 1)
    assert s.find("k == 1") == ["new"] and s.find("k == 100") == ["d1"]
    assert s.find("v.max >= 4") == ["d5"]
    assert snapshots[s] is first  # most of it still in use
    assert _col(s.catalog(), "k") == [0, 100, 2, 3, 5, 1]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_handle_has_its_own_snapshot(tmp_path: Path, layout: str) -> None:
    snapshots = LAYOUTS[layout]._SNAPSHOTS  # type: ignore[attr-defined]
    a = _store(tmp_path / "s", layout)
    b = atlas.Atlas.open(tmp_path / "s")
    a.catalog()
    b.open_dataset("d0").set_attribute("k", -1)
    assert b.find("k < 0") == ["d0"] and a.find("k < 0") == []
    assert snapshots[a] is not snapshots[b]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_snapshot_adds_nothing_to_the_handle_and_never_keeps_it_alive(tmp_path: Path, layout: str) -> None:
    snapshots = LAYOUTS[layout]._SNAPSHOTS  # type: ignore[attr-defined]
    s = _store(tmp_path / "s", layout)
    before = set(vars(s))
    s.catalog()
    s.find("k > 2 and v.max < 5")
    assert set(vars(s)) == before
    held = len(snapshots)
    handle = weakref.ref(s)
    del s
    gc.collect()
    assert handle() is None
    assert len(snapshots) < held  # its snapshot went with it
