"""The process's two thread pools: shared, distinct, and new in a child after a fork."""

from __future__ import annotations

import os
import threading

import pytest

from atlas.executors import cpu_pool, in_background, io_pool


def test_pools_are_shared_and_distinct() -> None:
    assert cpu_pool() is cpu_pool() and io_pool() is io_pool()
    assert cpu_pool() is not io_pool()
    assert io_pool()._max_workers >= 32 and cpu_pool()._max_workers >= 2
    assert sorted(io_pool().map(lambda x: x * x, range(50))) == [x * x for x in range(50)]


def test_a_forked_child_gets_pools_of_its_own() -> None:
    before = (id(cpu_pool()), id(io_pool()))
    assert list(cpu_pool().map(abs, [-1, -2])) == [1, 2]  # threads started in the parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's threads are gone, its pools must not be reused
        try:
            ok = (id(cpu_pool()), id(io_pool())) != before and list(cpu_pool().map(abs, [-3])) == [3]
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    assert answer == b"1"
    assert (id(cpu_pool()), id(io_pool())) == before


def test_work_in_the_background_may_wait_on_a_busy_pool() -> None:
    """Work started beside the caller runs on a thread of its own: it may wait for tasks of
    a pool whose every worker is taken, and hands back its result or its error."""
    release = threading.Event()
    pool = cpu_pool()
    busy = [pool.submit(release.wait) for _ in range(pool._max_workers)]  # every worker taken
    result = in_background(lambda: pool.submit(lambda: 7).result())
    release.set()
    assert result() == 7 and all(f.result() for f in busy)

    def fail() -> None:
        raise KeyError("gone")

    with pytest.raises(KeyError, match="gone"):
        in_background(fail)()
