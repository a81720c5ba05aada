"""put_if_absent is the commit primitive: racing *processes* must see exactly one winner."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

import pytest
import race_worker

from atlas.storage import LocalStorage, Storage, open_storage

WORKERS = 2
ROUNDS = 20


@pytest.fixture(scope="module")
def racers() -> Iterator[Pool]:
    """Worker processes, started once. They come from a fork server (a fresh process
    with the storage code preloaded), never from a fork of this one, which runs I/O threads."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx: Any = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["atlas.storage", "race_worker"])
    else:
        ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    pool = ctx.Pool(WORKERS, initializer=race_worker.init, initargs=(barrier,))
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["__main__"])  # back to the default for other users
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


def _race(racers: Pool, storage: Storage) -> None:
    # One task per worker; each blocks on the barrier until all are running, so no
    # process can take two of them.
    pending = [racers.apply_async(race_worker.race, (storage, w, ROUNDS)) for w in range(WORKERS)]
    outcomes = [p.get(timeout=120) for p in pending]
    for rnd in range(ROUNDS):
        winners = [w for w in range(WORKERS) if outcomes[w][rnd]]
        assert len(winners) == 1, f"round {rnd}: winners {winners}"
        assert storage.get(f"race/{rnd:03d}") == f"worker {winners[0]} round {rnd}".encode()
    assert storage.list("race/") == [f"race/{r:03d}" for r in range(ROUNDS)]


def test_processes_race_put_if_absent_on_local_disk(racers: Pool, tmp_path: Path) -> None:
    _race(racers, LocalStorage(tmp_path / "store", create=True))
    assert not [p for p in (tmp_path / "store").rglob("*") if p.name.startswith(".tmp-")]


def test_processes_race_put_if_absent_on_s3(
    racers: Pool, s3_bucket: str, s3_options: dict[str, Any]
) -> None:
    _race(racers, open_storage(f"s3://{s3_bucket}/race-test", **s3_options))
