"""Many writer processes committing to one store at once with flush(rebase=True): 8 writers
commit 25 times each, 10 new datasets a commit, to local disk and to S3 (moto on 127.0.0.1).
Every commit lands (its own version, none lost or overwritten), no error reaches a writer,
and every version in between opens and holds exactly the commits up to it."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import writers_worker

import atlas

WRITERS = 8
COMMITS = 25
DATASETS = 10


@pytest.fixture(scope="module")
def context() -> Iterator[Any]:
    """Writer processes come from a fork server with atlas loaded (never a fork of this
    process, which runs I/O threads and, for S3, the server)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx: Any = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["atlas", "writers_worker"])
    else:
        ctx = multiprocessing.get_context("spawn")
    yield ctx
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["__main__"])


def run_writers(ctx: Any, location: str, options: dict[str, Any]) -> list[tuple[int, int, list[str]]]:
    """Every writer's commits, as (version, writer, datasets)."""
    barrier = ctx.Barrier(WRITERS)
    pool: Pool = ctx.Pool(WRITERS, initializer=writers_worker.init, initargs=(barrier,))
    try:
        pending = [
            pool.apply_async(writers_worker.write, (location, options, w, COMMITS, DATASETS)) for w in range(WRITERS)
        ]
        made = [p.get(timeout=120) for p in pending]
    finally:
        pool.terminate()
        pool.join()
    return [(version, w, names) for w, commits in enumerate(made) for version, names in commits]


def check_history(
    location: str, options: dict[str, Any], commits: list[tuple[int, int, list[str]]], verified: int, deep: bool
) -> None:
    """Versions 1..200 are the writers' commits, one each (none lost or overwritten). Every
    version opens, holds the datasets of the commits up to it in commit order, and reads
    back the data of its own commit through its own index; with ``deep``, every version's
    shards decode and agree with their columns, its array ids are unique and its index
    runs load (what ``verify()`` checks of a version, but its blocks, which later versions
    name too). ``verified`` versions spread over the history, the newest among them, pass
    ``verify()`` (which reads every block of the version, and every manifest of the store):
    all of them on local disk, the newest on S3, where each request costs milliseconds."""
    by_version = sorted(commits)
    assert [v for v, _, _ in by_version] == list(range(1, WRITERS * COMMITS + 1)), "a commit was lost or overwritten"
    newest = atlas.Atlas.open(location, **options)
    assert newest.version == WRITERS * COMMITS
    names = newest.list_datasets()
    assert names == [n for _, _, added in by_version for n in added]
    assert np.array_equal(newest.read_array_across_stacked("v", names), expected(names))
    step = len(by_version) // verified
    for version, _, added in by_version:
        old = atlas.Atlas.open(newest.storage, version=version)
        assert old.list_datasets() == names[: version * DATASETS]
        assert np.array_equal(old.read_array_across_stacked("v", added), expected(added))
        if deep:
            old._datasets.load_all()
            aids = np.concatenate([col["aid"] for s in old._datasets.shards for col in (s.columns or {}).values()])
            assert len(aids) == version * DATASETS and len(np.unique(aids)) == len(aids)
            for var in old._variables.values():
                old._index(var)
        if version % step == 0:
            assert old.verify() == [], version


def expected(names: list[str]) -> np.ndarray:
    return np.stack([writers_worker.values(int(n[1]), int(n[4:6]), int(n[-1])) for n in names])


def test_eight_writers_on_local_disk(context: Any, tmp_path: Path) -> None:
    path = tmp_path / "s"
    atlas.Atlas.create(path)
    commits = run_writers(context, str(path), {})
    check_history(str(path), {}, commits, verified=WRITERS * COMMITS, deep=True)


def test_eight_writers_on_s3(context: Any, s3_bucket: str, s3_options: dict[str, Any]) -> None:
    location = f"s3://{s3_bucket}/writers"
    atlas.Atlas.create(location, **s3_options)
    commits = run_writers(context, location, s3_options)
    check_history(location, s3_options, commits, verified=1, deep=False)
