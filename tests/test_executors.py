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


def test_work_in_the_background_runs_while_every_pool_worker_is_taken() -> None:
    """Work started beside the caller runs on a thread of its own: it runs while every
    worker of both pools is taken, may then wait for a pool's task, and hands back its
    result or its error."""
    release = threading.Event()
    safety = threading.Timer(20, release.set)  # frees the workers should the work not run
    safety.start()
    pools = [cpu_pool(), io_pool()]
    busy = [p.submit(release.wait) for p in pools for _ in range(p._max_workers)]  # every worker taken
    ran = in_background(lambda: threading.current_thread().name)()
    assert not release.is_set() and ran == "atlas-background"  # ran with no pool worker free
    release.set()
    safety.cancel()
    assert in_background(lambda: cpu_pool().submit(lambda: 7).result())() == 7
    assert all(f.result() for f in busy)

    def fail() -> None:
        raise KeyError("gone")

    with pytest.raises(KeyError, match="gone"):
        in_background(fail)()
