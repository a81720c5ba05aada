"""Benchmark (no tests here): one handle used in the order of a catalogue session.

    .venv/bin/python bench/session_catalog.py STORE

opens STORE (a scale-probe store: ``temperature``, ``salinity``, ``depth``, attributes
``station`` and ``cycle``), then on that one handle times a scan of ``temperature``,
``catalog()`` of 3 arrays and 2 attributes, ``find``, ``catalog()`` again, stacked
``[0:50]`` and 100 ``create_dataset`` calls (never flushed), and prints each time and the
process's peak memory.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import atlas

ARRAYS = ["temperature", "salinity", "depth"]
ATTRIBUTES = ["station", "cycle"]


def timed(call: Callable[[], Any]) -> float:
    t = time.perf_counter()
    call()
    return time.perf_counter() - t


def main(path: str) -> None:
    import pandas  # noqa: F401 - catalog() imports it at its first call: time the catalogue, not the import

    t = time.perf_counter()
    store = atlas.Atlas.open(path)
    names = store.list_datasets()
    opened = time.perf_counter() - t
    steps = {
        "scan": lambda: store.read_array_across("temperature", names),
        "catalog": lambda: store.catalog(arrays=ARRAYS, attributes=ATTRIBUTES),
        "find": lambda: store.find("temperature.max > 20.8"),
        "catalog again": lambda: store.catalog(arrays=ARRAYS, attributes=ATTRIBUTES),
        "stacked [0:50]": lambda: store.read_array_across_stacked("temperature", names, start=[0], shape=[50]),
        "100 new names": lambda: [store.create_dataset(f"session_{i:03d}") for i in range(100)],
    }
    times = ", ".join(f"{step} {timed(call):.3f} s" for step, call in steps.items())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(names)} datasets: open + list {opened:.3f} s, {times}, peak {peak:.0f} MB")


if __name__ == "__main__":
    main(sys.argv[1])
