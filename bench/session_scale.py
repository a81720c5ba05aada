"""Benchmark (no tests here): one handle used in session order on a large store.

    .venv/bin/python bench/session_scale.py STORE            # our side
    bench/.venv-ref/bin/python bench/session_scale.py STORE  # the yardstick, on its own store

opens STORE and lists it, reads every dataset's array names, array metadata and attributes
(the metadata sweep), reads ``temperature`` across all datasets, then ``[0:50]`` of it stacked,
all on the one handle, and prints each step's time and the process's peak memory. The
stores of ``./dev bench --scale-probe N`` (under /tmp/atlas-scale) fit it.
"""

from __future__ import annotations

import resource
import sys
import time

import atlas


def main(path: str) -> None:
    t = time.perf_counter()
    store = atlas.Atlas.open(path)
    names = store.list_datasets()
    opened = time.perf_counter() - t
    t = time.perf_counter()
    kept = []  # as the session phases of bench/phases.py keep what they read
    for view in map(store.open_dataset, names):
        arrays = view.list_arrays()
        kept.append((arrays, [view.array_meta(a) for a in arrays], view.attributes()))
    swept = time.perf_counter() - t
    t = time.perf_counter()
    store.read_array_across("temperature", names)
    scanned = time.perf_counter() - t
    t = time.perf_counter()
    store.read_array_across_stacked("temperature", names, start=[0], shape=[50])
    sliced = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{len(names)} datasets: open + list {opened:.3f} s, sweep {swept:.2f} s, scan {scanned:.2f} s, "
        f"stacked [0:50] {sliced:.2f} s, peak {peak:.0f} MB"
    )


if __name__ == "__main__":
    main(sys.argv[1])
