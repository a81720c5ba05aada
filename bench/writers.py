"""Benchmark (no tests here): many writer processes committing to one store at once.

    .venv/bin/python bench/writers.py [--writers 1,2,4,8] [--commits 25] [--datasets 10] [--runs 3]
    ./dev bench --writers [1,2,4,8]   # the same, through the developer script (bench/run)

For each number of writers, ``--runs`` times: a new local store, that many processes (from a
fork server with atlas loaded), released together; each opens the store once and commits
``--commits`` times, each commit ``--datasets`` new small datasets (a float32 profile of 100
values and two attributes) flushed with ``flush(rebase=True)``. The time runs from the release
to the last commit. Prints, per number of writers, the median aggregate commit rate
(commits/s over all writers), the attempts a commit took on average (1: it never lost to
another writer) and the slowest single flush; then checks that the store holds every dataset
with its data and that ``verify()`` finds nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import atlas
from atlas.core import commit

_barrier: Any = None


def _init(barrier: Any) -> None:
    global _barrier
    _barrier = barrier


def write(path: str, writer: int, commits: int, datasets: int) -> tuple[float, float, int, float]:
    """One writer: (time it was released, time its last commit landed, attempts, slowest flush)."""
    attempts = 0
    real = commit.try_commit

    def counted(*args: Any, **kwargs: Any) -> bool:
        nonlocal attempts
        attempts += 1
        return real(*args, **kwargs)

    commit.try_commit = counted  # type: ignore[assignment]
    store = atlas.Atlas.open(path)
    values = np.linspace(0, 30, 100, dtype=np.float32)
    _barrier.wait()
    start = time.time()
    slowest = 0.0
    for c in range(commits):
        for i in range(datasets):
            ds = store.create_dataset(f"w{writer}-c{c}-d{i}")
            ds.define_array("temperature", "float32", ["depth"], [100], fill_value=float("nan"))
            ds.write_array("temperature", [0], values + writer)
            ds.set_attribute("writer", writer)
            ds.set_attribute("commit", c)
        t = time.perf_counter()
        store.flush(rebase=True)
        slowest = max(slowest, time.perf_counter() - t)
    return start, time.time(), attempts, slowest


def check(path: Path, writers: int, commits: int, datasets: int) -> None:
    """Every dataset landed with its data, and the store verifies."""
    store = atlas.Atlas.open(path)
    names = store.list_datasets()
    want = {f"w{w}-c{c}-d{i}" for w in range(writers) for c in range(commits) for i in range(datasets)}
    if set(names) != want or len(names) != len(want):
        raise SystemExit(f"{path}: {len(want - set(names))} datasets missing, {len(set(names) - want)} unexpected")
    data = store.read_array_across_stacked("temperature", names)
    base = np.linspace(0, 30, 100, dtype=np.float32)
    expect = np.stack([base + int(n[1 : n.index("-")]) for n in names])
    if not np.array_equal(data, expect):
        raise SystemExit(f"{path}: some data is wrong")
    if store.version != writers * commits:
        raise SystemExit(f"{path}: version {store.version}, expected {writers * commits} commits")
    problems = store.verify()
    if problems:
        raise SystemExit(f"{path}: verify() found {problems[:3]}")


def run_once(ctx: Any, root: Path, writers: int, commits: int, datasets: int) -> dict[str, float]:
    path = root / f"store-{writers}"
    shutil.rmtree(path, ignore_errors=True)
    atlas.Atlas.create(path)
    barrier = ctx.Barrier(writers)
    with ctx.Pool(writers, initializer=_init, initargs=(barrier,)) as pool:
        results = pool.starmap(write, [(str(path), w, commits, datasets) for w in range(writers)])
    start = min(r[0] for r in results)
    seconds = max(r[1] for r in results) - start
    check(path, writers, commits, datasets)
    shutil.rmtree(path, ignore_errors=True)
    total = writers * commits
    return {
        "seconds": seconds,
        "rate": total / seconds,
        "attempts": sum(r[2] for r in results) / total,
        "slowest": max(r[3] for r in results),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--writers", nargs="?", const="1,2,4,8", default="1,2,4,8", metavar="N,N",
        help="numbers of writer processes (default 1,2,4,8)",
    )
    parser.add_argument("--commits", type=int, default=25, help="commits of each writer (default 25)")
    parser.add_argument("--datasets", type=int, default=10, help="new datasets in each commit (default 10)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each number of writers; medians shown (default 3)")
    parser.add_argument("--workdir", type=Path, help="where the stores go (default: a temp dir, removed after)")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.writers.split(",")]
    root = args.workdir or Path(tempfile.mkdtemp(prefix="atlas-writers-"))
    root.mkdir(parents=True, exist_ok=True)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["atlas", "numpy"])
    print(f"{args.commits} commits per writer, {args.datasets} new datasets per commit, {args.runs} runs each; medians")
    print(f"{'writers':>7}  {'commits/s':>9}  {'seconds':>7}  {'attempts/commit':>15}  {'slowest flush':>13}")
    try:
        for n in counts:
            runs = [run_once(ctx, root, n, args.commits, args.datasets) for _ in range(args.runs)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(
                f"{n:>7}  {med['rate']:>9.1f}  {med['seconds']:>7.2f}  {med['attempts']:>15.2f}  "
                f"{med['slowest']:>12.3f}s",
                flush=True,
            )
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
