"""Benchmark (no tests here): the NetCDF ingest on a local dask cluster, the figures of
docs/scaling.md.

    .venv/bin/python bench/cluster_ingest.py SRC [--workers 1,2] [--task-files 64] [--every 100] [--include GLOB]

For each number of workers: a new local store, a ``distributed.LocalCluster`` of that many
single-threaded worker processes (started before the clock), and ``atlas.dask.ingest`` of
every NetCDF file under SRC, all or nothing (one commit). Prints the wall time, the time the
tasks took on the workers per file, what the client spent applying the tasks' changes and
committing, the bytes of the changes sent back per file, and the store's files. Then one run
on the largest cluster with ``skip_errors=True`` and a commit every ``--every`` files gives the
cost of a commit and the metadata bytes each version wrote (its manifest, shards and index
runs, from the files' names: ``manifests/NNNNNNNNNN.*``, ``meta/s<version>-*``,
``index/r<version>-*``).
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import resource
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import atlas
import atlas.dask
from atlas.integrations.netcdf import cluster


class _Recorder:
    """Catches the client's run object and the size of what each task sent back."""

    def __init__(self) -> None:
        self.run: Any = None
        self.result_bytes = 0
        real_init, real_apply = cluster._Run.__init__, cluster._Run.apply
        recorder = self

        def init(run: Any, *args: Any, **kwargs: Any) -> None:
            real_init(run, *args, **kwargs)
            recorder.run = run

        def apply(run: Any, group: Any, result: Any) -> None:
            recorder.result_bytes += len(pickle.dumps(result))
            real_apply(run, group, result)

        cluster._Run.__init__ = init  # type: ignore[method-assign]
        cluster._Run.apply = apply  # type: ignore[method-assign]


def _files(store: Path) -> dict[str, tuple[int, int]]:
    """Folder -> (files, bytes) of a local store."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for dirpath, _, names in os.walk(store):
        for n in names:
            top = Path(dirpath).relative_to(store).parts[:1]
            entry = out[top[0] if top else "."]
            entry[0] += 1
            entry[1] += os.path.getsize(os.path.join(dirpath, n))
    return {k: (v[0], v[1]) for k, v in sorted(out.items())}


def _metadata_per_version(store: Path) -> dict[int, int]:
    """Version -> bytes of the manifest, shards and index runs it wrote."""
    sizes: dict[int, int] = defaultdict(int)
    patterns = {"manifests": r"^(\d+)\.", "meta": r"^s(\d+)-", "index": r"^r(\d+)-"}
    for folder, pattern in patterns.items():
        for entry in os.scandir(store / folder) if (store / folder).is_dir() else []:
            m = re.match(pattern, entry.name)
            if m:
                sizes[int(m.group(1))] += entry.stat().st_size
    return dict(sorted(sizes.items()))


def one_run(
    src: str, workers: int, task_files: int, every: int | None, workdir: Path, include: list[str]
) -> dict[str, Any]:
    import distributed

    store = workdir / f"store-{workers}-{every}"
    shutil.rmtree(store, ignore_errors=True)
    recorder = _Recorder()
    with (
        distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
        ) as lc,
        distributed.Client(lc) as client,
    ):
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        options: dict[str, Any] = {"task_files": task_files, "include": include}
        if every:
            options.update(skip_errors=True, commit_every_files=every, commit_every_seconds=3600)
        report = atlas.dask.ingest(src, store, client, **options)
        wall = time.perf_counter() - t0
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run = recorder.run
    n = len(report.added)
    return {
        "workers": workers,
        "files": n,
        "bytes_in": report.bytes_in,
        "wall": wall,
        "worker_s_per_file": run.worker_seconds / n,
        "worker_cpu_per_file": run.worker_cpu_seconds / n,
        "apply_cpu_per_1000": run.apply_cpu_seconds / n * 1000,
        "apply_s_per_1000": run.apply_seconds / n * 1000,
        "commit_s": run.commit_seconds,
        "commits": run.commits,
        "result_bytes_per_file": recorder.result_bytes / n,
        "client_rss_growth_mib": (rss1 - rss0) / 1024,
        "store": _files(store),
        "metadata": _metadata_per_version(store),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--task-files", type=int, default=64)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--include", action="append", default=[], metavar="GLOB")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="atlas-cluster-bench-"))
    counts = [int(x) for x in args.workers.split(",")]
    for w in counts:
        r = one_run(args.src, w, args.task_files, None, workdir, args.include)
        print(
            f"{w} worker(s): {r['files']} files, {r['bytes_in'] / 1e6:.2f} MB in {r['wall']:.1f} s "
            f"({r['files'] / r['wall']:.1f} files/s); on the workers {r['worker_s_per_file'] * 1000:.1f} ms/file "
            f"({r['worker_cpu_per_file'] * 1000:.1f} ms CPU); client: apply {r['apply_s_per_1000']:.2f} s per "
            f"1,000 files ({r['apply_cpu_per_1000']:.2f} s CPU; the client's process also runs the scheduler), "
            f"{r['commits']} commit in "
            f"{r['commit_s']:.2f} s, client peak RSS +{r['client_rss_growth_mib']:.0f} MiB; "
            f"changes sent back {r['result_bytes_per_file'] / 1024:.1f} KiB/file"
        )
        print(f"   store files (folder: files, bytes): {r['store']}")
    r = one_run(args.src, max(counts), args.task_files, args.every, workdir, args.include)
    meta = r["metadata"]
    per_commit = [b for v, b in meta.items() if v > 0]
    print(
        f"commit every {args.every} files, {max(counts)} worker(s): {r['commits']} commits in {r['commit_s']:.2f} s "
        f"({r['commit_s'] / max(1, r['commits']):.3f} s each, logs included), wall {r['wall']:.1f} s; "
        f"metadata written per commit: median {statistics.median(per_commit) / 1024:.1f} KiB, "
        f"max {max(per_commit) / 1024:.1f} KiB; per version: {meta}"
    )
    print(f"   store files: {r['store']}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
