"""The process's two thread pools, shared by every layer.

* :func:`cpu_pool` runs codec work (compression, filters, checksums release the GIL), as
  many threads as cores;
* :func:`io_pool` runs blocking storage calls (disk reads, object-store requests, writes
  whose latencies should overlap), many more threads than cores since they mostly wait.

Both are created on first use and again in a child process after a fork (a pool's threads
do not survive ``fork``), so a dask or multiprocessing worker gets pools of its own.

A task on a pool must not wait for other tasks of the same pool (with every worker waiting,
none would be left to run them); :func:`in_background` runs work that may wait on the pools
beside the caller, on a thread of its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["cpu_pool", "in_background", "io_pool"]

T = TypeVar("T")

_lock = threading.Lock()
_pools: dict[str, tuple[int, ThreadPoolExecutor]] = {}


def _pool(kind: str, workers: int) -> ThreadPoolExecutor:
    pid = os.getpid()
    found = _pools.get(kind)
    if found is not None and found[0] == pid:
        return found[1]
    with _lock:
        found = _pools.get(kind)
        if found is None or found[0] != pid:
            found = _pools[kind] = (pid, ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"atlas-{kind}"))
        return found[1]


def cpu_pool() -> ThreadPoolExecutor:
    """Threads for codec work, one per core (at least two)."""
    return _pool("cpu", max(2, os.cpu_count() or 2))


def io_pool() -> ThreadPoolExecutor:
    """Threads for blocking storage calls: 32 to 64, whatever the cores."""
    return _pool("io", min(64, max(32, 4 * (os.cpu_count() or 4))))


def in_background(fn: Callable[..., T], *args: Any) -> Callable[[], T]:
    """Start ``fn(*args)`` on a thread of its own (not a pool's: it may wait on the pools)
    and return what waits for it: its result, or its exception raised again."""
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, fn(*args)))
        except BaseException as e:  # handed to the caller as it is
            outcome.append((False, e))

    thread = threading.Thread(target=run, name="atlas-background", daemon=True)
    thread.start()

    def result() -> T:
        thread.join()
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    return result
