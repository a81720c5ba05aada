"""A writer process of the many-writers tests (no tests here): it opens the store, waits until
every writer is ready, then commits new datasets with ``flush(rebase=True)``."""

from __future__ import annotations

from typing import Any

import numpy as np

import atlas

_barrier: Any = None


def init(barrier: Any) -> None:
    """Pool initializer: the barrier every writer waits at before its first commit."""
    global _barrier
    _barrier = barrier


def values(writer: int, commit: int, i: int) -> np.ndarray:
    """The data of one dataset: who wrote it, in which commit, which one of that commit."""
    return np.array([writer, commit, i, writer * 1000 + commit * 10 + i], dtype=np.float64)


def name(writer: int, commit: int, i: int) -> str:
    return f"w{writer}-c{commit:02d}-d{i}"


def write(location: str, options: dict[str, Any], writer: int, commits: int, datasets: int) -> list[tuple[int, list[str]]]:
    """Commit ``commits`` times ``datasets`` new datasets; return the version each commit
    made and the datasets it added. Any error reaches the caller."""
    store = atlas.Atlas.open(location, **options)
    _barrier.wait()
    made = []
    for c in range(commits):
        names = []
        for i in range(datasets):
            ds = store.create_dataset(name(writer, c, i))
            ds.define_array("v", "float64", ["n"], [4])
            ds.write_array("v", [0], values(writer, c, i))
            ds.set_attribute("writer", writer)
            names.append(ds.name)
        store.flush(rebase=True)
        made.append((store.version, names))
    return made
