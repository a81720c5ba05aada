"""Benchmark (no tests here): catalog() and find() over a store of 10,000 datasets.

    .venv/bin/python bench/catalog_scale.py [N] [store path]

builds the store when the path does not exist yet (5 arrays and 8 attributes per dataset),
then prints best / median times in ms: cold (first call on a freshly opened handle), warm
(later calls), after reading some datasets (which may materialise them), and on a handle where
every dataset is materialised; with reading one variable across the store for scale.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import atlas

ARRAYS = ["temperature", "depth", "time"]
ATTRS = ["station", "year"]
Q1 = "temperature.max > 30 and depth.max >= 1000 and station == 'ST3'"
Q2 = "year >= 2020 and lat < 0 and temperature > 25 and time.min >= '2020-09-14'"


def build(path: str, n_datasets: int) -> atlas.Atlas:
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    store = atlas.Atlas.create(path)
    for i in range(n_datasets):
        ds = store.create_dataset(f"profile_{i:05d}")
        n = int(rng.integers(20, 60))
        ds.define_array("temperature", "float32", ["depth"], [n], fill_value=float("nan"))
        ds.define_array("salinity", "float32", ["depth"], [n], fill_value=float("nan"))
        ds.define_array("depth", "float64", ["depth"], [n])
        ds.define_array("qc", "uint8", ["depth"], [n])
        ds.define_array("time", "timestamp_nanoseconds", ["one"], [1])
        ds.write_array("temperature", [0], rng.normal(15, 8, n).astype(np.float32))
        ds.write_array("salinity", [0], rng.normal(35, 1, n).astype(np.float32))
        ds.write_array("depth", [0], np.linspace(0, rng.uniform(100, 2500), n))
        ds.write_array("qc", [0], rng.integers(0, 5, n).astype(np.uint8))
        ds.write_array("time", [0], np.array([1_600_000_000_000_000_000 + i * 10**12], dtype=np.int64))
        ds.set_attribute("station", f"ST{i % 37}")
        ds.set_attribute("year", 2015 + i % 8)
        ds.set_attribute("lat", float(rng.uniform(-60, 60)))
        ds.set_attribute("lon", float(rng.uniform(-180, 180)))
        ds.set_attribute("platform", f"float_{i // 50}")
        ds.set_attribute("cycle", i % 50)
        ds.set_attribute("qc_passed", bool(i % 3))
        ds.set_attribute("launch", 1_500_000_000_000_000_000 + i, dtype="timestamp_nanoseconds")
    store.flush()
    print(f"built {n_datasets} datasets in {time.perf_counter() - t0:.1f} s")
    return store


def _stats(ts: list[float]) -> str:
    ts = sorted(ts)
    return f"{ts[0] * 1e3:7.1f} / {ts[len(ts) // 2] * 1e3:7.1f}"


def warm(fn: Callable[[], Any], reps: int = 9) -> str:
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return _stats(ts)


def cold(path: str, fn: Callable[[atlas.Atlas], Any], reps: int = 5) -> str:
    ts = []
    for _ in range(reps):
        h = atlas.Atlas.open(path)
        t = time.perf_counter()
        fn(h)
        ts.append(time.perf_counter() - t)
    return _stats(ts)


def main(n_datasets: int, path: str) -> None:
    writer = build(path, n_datasets) if not os.path.exists(path) else None
    print(f"load average {os.getloadavg()[0]:.1f}; best / median in ms")
    h = atlas.Atlas.open(path)
    names = h.list_datasets()
    line = "{:48s} {}"
    print(line.format(f"read_array_across('temperature', all {len(names)})",
                      cold(path, lambda x: x.read_array_across("temperature", names), 3)))
    print(line.format("cold  catalog(3 arrays, 2 attributes)", cold(path, lambda x: x.catalog(arrays=ARRAYS, attributes=ATTRS))))
    print(line.format("cold  find(Q1)", cold(path, lambda x: x.find(Q1))))
    print(line.format("cold  find(Q2)", cold(path, lambda x: x.find(Q2))))
    h.catalog(arrays=ARRAYS, attributes=ATTRS)
    print(line.format("warm  catalog(3 arrays, 2 attributes)", warm(lambda: h.catalog(arrays=ARRAYS, attributes=ATTRS))))
    print(line.format(f"warm  find(Q1) -> {len(h.find(Q1))}", warm(lambda: h.find(Q1))))
    print(line.format(f"warm  find(Q2) -> {len(h.find(Q2))}", warm(lambda: h.find(Q2))))
    print(line.format(f"warm  catalog() ({h.catalog().shape[1]} columns)", warm(h.catalog, 5)))
    found = h.find("year >= 2020")
    h.read_array_across("temperature", found)
    print(line.format(f"after reading {len(found)}: catalog(3, 2)", warm(lambda: h.catalog(arrays=ARRAYS, attributes=ATTRS))))
    print(line.format(f"after reading {len(found)}: find(Q1)", warm(lambda: h.find(Q1))))
    w = writer
    if w is None:
        w = atlas.Atlas.open(path)
        for name in names:
            w.open_dataset(name).attributes()
    print(line.format("all materialised: catalog(3, 2)", warm(lambda: w.catalog(arrays=ARRAYS, attributes=ATTRS))))
    print(line.format("all materialised: find(Q1)", warm(lambda: w.find(Q1))))


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 10_000,
        sys.argv[2] if len(sys.argv) > 2 else os.path.join(tempfile.mkdtemp(), "bench.atlas"),
    )
