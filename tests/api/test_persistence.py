"""Persistence at scale: ragged profiles plus a chunked gridded variable, through
flush, reopen, partial deletion and compaction, with every value and stat checked."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import atlas

N_PROFILES = 2000


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _expected_stats(x: np.ndarray, fill: float | None) -> dict:
    flat = x.ravel()
    if fill is not None and math.isnan(fill):
        valid = flat[~np.isnan(flat)]
    else:
        valid = flat
    return {
        "row_count": flat.size,
        "null_count": int(flat.size - valid.size),
        "min": float(valid.min()) if valid.size else None,
        "max": float(valid.max()) if valid.size else None,
    }


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> dict:
    rng = np.random.default_rng(42)
    path = tmp_path_factory.mktemp("persist") / "store.atlas"
    data: dict[str, dict[str, np.ndarray]] = {}
    store = atlas.Atlas.create(path)
    for i in range(N_PROFILES):
        name = f"float_{i // 50:03d}/cycle_{i % 50:03d}"
        name = name.replace("/", ":")
        n = int(rng.integers(50, 400))
        temp = (20 - np.linspace(0, 15, n) + rng.normal(0, 0.1, n)).astype(np.float32)
        temp[rng.random(n) < 0.05] = np.nan
        depth = np.linspace(0, 2000, n).astype(np.float64)
        qc = rng.integers(0, 5, n).astype(np.uint8)
        ds = store.create_dataset(name)
        ds.define_array("temperature", "float32", ["depth"], [n], fill_value=float("nan"))
        ds.define_array("depth", "float64", ["depth"], [n], chunk_shape=[64])
        ds.define_array("qc", "uint8", ["depth"], [n])
        ds.define_array("station", "string", ["one"], [1])
        ds.write_array("temperature", [0], temp)
        ds.write_array("depth", [0], depth)
        ds.write_array("qc", [0], qc)
        ds.write_array("station", [0], np.array([f"ST{i % 13}"], dtype=object))
        ds.set_attribute("cycle", i % 50)
        ds.set_attribute("lat", float(rng.uniform(-60, 60)))
        ds.set_attribute("platform", f"float_{i // 50}")
        data[name] = {"temperature": temp, "depth": depth, "qc": qc}
    grid = rng.normal(10, 3, size=(24, 181, 360)).round(2).astype(np.float32)
    g = store.create_dataset("grid")
    g.define_array("sst", "float32", ["time", "lat", "lon"], [24, 181, 360], chunk_shape=[6, 91, 180])
    g.write_array("sst", [0, 0, 0], grid)
    store.flush()
    return {"path": path, "data": data, "grid": grid}


def test_everything_reads_back_after_reopen(collection: dict) -> None:
    store = atlas.Atlas.open(collection["path"])
    names = list(collection["data"])
    assert store.list_datasets() == names + ["grid"]
    assert store.list_arrays() == ["depth", "qc", "sst", "station", "temperature"]
    for name in names[::7]:
        ds = store.open_dataset(name)
        exp = collection["data"][name]
        for var, values in exp.items():
            np.testing.assert_array_equal(ds.read_array(var), values)
        assert ds.read_array("station").tolist() == [f"ST{names.index(name) % 13}"]
        st = ds.array_stats("temperature")
        assert st == _expected_stats(exp["temperature"], float("nan"))
        assert ds.array_stats("qc")["min"] == int(exp["qc"].min())
        assert ds.get_attribute("cycle") == names.index(name) % 50
    got = store.open_dataset("grid").read_array("sst")
    np.testing.assert_array_equal(got, collection["grid"])
    window = store.open_dataset("grid").read_array("sst", [5, 80, 170], [3, 30, 40])
    np.testing.assert_array_equal(window, collection["grid"][5:8, 80:110, 170:210])
    st = store.open_dataset("grid").array_stats("sst")
    assert st["min"] == float(collection["grid"].min())
    assert st["max"] == float(collection["grid"].max())
    assert st["null_count"] == 0


def test_across_reads_match_per_dataset_reads(collection: dict) -> None:
    store = atlas.Atlas.open(collection["path"])
    names = list(collection["data"])
    got = store.read_array_across("temperature", names)
    for name, arr in zip(names, got, strict=True):
        np.testing.assert_array_equal(arr, collection["data"][name]["temperature"])
    stacked = store.read_array_across_stacked("depth", names, start=[10], shape=[30])
    expected = np.stack([collection["data"][n]["depth"][10:40] for n in names])
    np.testing.assert_array_equal(stacked, expected)


def test_delete_part_then_compact_reclaims_space_and_keeps_the_rest(collection: dict, tmp_path: Path) -> None:
    import shutil

    path = tmp_path / "copy.atlas"
    shutil.copytree(collection["path"], path)
    store = atlas.Atlas.open(path)
    names = list(collection["data"])
    doomed = names[::3]
    for n in doomed:
        store.delete_dataset(n)
    store.open_dataset(names[1]).delete_array("temperature")
    store.flush()
    before = _du(path)
    store.compact()
    after = _du(path)
    assert after < before * 0.8
    # the same handle keeps reading and writing
    kept = [n for n in names if n not in set(doomed)]
    for n in kept[::11]:
        np.testing.assert_array_equal(store.open_dataset(n).read_array("qc"), collection["data"][n]["qc"])
    ds = store.create_dataset(doomed[0])
    assert ds.list_arrays() == []
    ds.define_array("qc", "uint8", ["depth"], [3])
    ds.write_array("qc", [0], np.array([7, 8, 9], dtype=np.uint8))
    store.flush()
    again = atlas.Atlas.open(path)
    assert again.open_dataset(doomed[0]).read_array("qc").tolist() == [7, 8, 9]
    assert again.open_dataset(names[1]).read_array("temperature") is None
    assert again.open_dataset(names[1]).array_meta("temperature") is None
    assert len(again.list_datasets()) == len(kept) + 2  # + "grid" + the re-created one
    for n in kept[::13]:
        np.testing.assert_array_equal(
            again.open_dataset(n).read_array("depth"), collection["data"][n]["depth"]
        )
    np.testing.assert_array_equal(again.open_dataset("grid").read_array("sst"), collection["grid"])
    assert again.verify() == []
