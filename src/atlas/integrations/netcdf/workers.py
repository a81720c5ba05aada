"""The reader processes of an ingest: files decoded ahead of the writer, in order.

Decoding a NetCDF file through xarray is Python-heavy and holds the GIL, so it runs in
worker processes that send each decoded dataset back to the one thread that writes
the store.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from .files import SourceFile
from .provenance import file_sha256
from .reading import Decoded, read_netcdf

__all__ = ["Readers", "default_jobs", "release_memory_promptly", "worker_pool"]


def release_memory_promptly() -> None:
    """Make glibc hand freed multi-MiB buffers straight back to the system.

    By default glibc raises its mmap threshold to the size of the largest buffer
    freed (up to 32 MiB), after which blocks of that size come from the heap and
    are kept: a streaming ingest would then hold on to every block size it ever
    used. Fixing the threshold at 1 MiB keeps the resident size near what is in
    use. Does nothing on other C libraries.
    """
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def read_file(path: str, max_inline: int) -> tuple[Decoded, str]:
    """What a reader does with one file: its SHA-256 (empty when it cannot be read) and
    its content decoded and prepared for writing (never raises for a bad file)."""
    try:
        digest = file_sha256(path)
    except OSError:
        digest = ""
    return read_netcdf(path, max_inline, prepare=True), digest


def _worker_init() -> None:
    """Readers leave Ctrl-C to the main process, which shuts them down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    release_memory_promptly()


def worker_pool(jobs: int) -> ProcessPoolExecutor:
    """Worker processes for NetCDF work, forked from a server that has imported xarray.

    ``forkserver`` rather than ``fork``: this process may already run threads
    (dask, compression), which must not be forked. The server is started once per
    process, so every pool shares its preloaded (and memory-shared) modules.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__, "netCDF4", "xarray"])
    return ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init)


def default_jobs() -> int:
    """How many reader processes to start by default: one per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


#: Most files, and most bytes of them on disk, one reader task decodes: small files go
#: to the workers in groups, so the writer pays for one request and one reply per group.
TASK_FILES = 8
TASK_BYTES = 4 << 20
#: Tasks in flight per reader: the readers run this far ahead of the writer, so they go on
#: while it writes a checkpoint (a second or two), and what waits for it stays bounded
#: (TASK_BYTES a task, a few times that decoded).
TASKS_AHEAD = 4


def read_files(paths: list[str], max_inline: int) -> list[tuple[Decoded, str]]:
    """:func:`read_file` for each of a group of files (one reader task)."""
    return [read_file(p, max_inline) for p in paths]


def task_groups(
    files: Sequence[SourceFile], max_files: int | None = None, max_bytes: int | None = None
) -> list[list[SourceFile]]:
    """Consecutive files in groups of at most ``max_files`` files and ``max_bytes``
    bytes (a larger file alone); by default ``TASK_FILES`` and ``TASK_BYTES``."""
    max_files = TASK_FILES if max_files is None else max_files
    max_bytes = TASK_BYTES if max_bytes is None else max_bytes
    groups: list[list[SourceFile]] = []
    size = 0
    for src in files:
        if not groups or len(groups[-1]) >= max_files or size + src.size > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(src)
        size += src.size
    return groups


class Readers:
    """Decodes files ahead of the writer, in order, with a bounded number in flight."""

    def __init__(self, files: Sequence[SourceFile], jobs: int, max_inline: int) -> None:
        self._files = files
        self._groups = task_groups(files)
        self._jobs = jobs
        self._max_inline = max_inline
        self._window = TASKS_AHEAD * jobs
        self._pool: ProcessPoolExecutor | None = None
        self._pending: deque[tuple[list[SourceFile], Future[list[tuple[Decoded, str]]]]] = deque()
        self._next = 0

    def _start_pool(self) -> ProcessPoolExecutor:
        return worker_pool(self._jobs)

    def _submit(self, group: list[SourceFile]) -> None:
        assert self._pool is not None
        future = self._pool.submit(read_files, [str(s.path) for s in group], self._max_inline)
        self._pending.append((group, future))

    def _fill(self) -> None:
        while len(self._pending) < self._window and self._next < len(self._groups):
            self._next += 1
            self._submit(self._groups[self._next - 1])

    def __iter__(self) -> Iterator[tuple[SourceFile, Decoded, str]]:
        if self._jobs <= 1:
            for src in self._files:
                yield (src, *read_file(str(src.path), self._max_inline))
            return
        self._pool = self._start_pool()
        try:
            while True:
                self._fill()
                if not self._pending:
                    return
                group, fut = self._pending.popleft()
                try:
                    results = fut.result()
                except BrokenProcessPool:
                    results = self._after_crash(group)
                for src, result in zip(group, results, strict=True):
                    yield (src, *result)
        finally:
            self.close()

    def _after_crash(self, group: list[SourceFile]) -> list[tuple[Decoded, str]]:
        """A reader died (the NetCDF library crashed): find out on which files of ``group``
        by reading them one at a time, then go on with the groups that were in flight."""
        assert self._pool is not None
        retry = [g for g, _ in self._pending]
        self._pending.clear()
        results = []
        self._restart_pool()
        for src in group:
            try:
                results.append(self._pool.submit(read_file, str(src.path), self._max_inline).result())
            except BrokenProcessPool:
                results.append((Decoded(error="the NetCDF library crashed while reading this file"), ""))
                self._restart_pool()
        for g in retry:
            self._submit(g)
        return results

    def _restart_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = self._start_pool()

    def close(self) -> None:
        """Stop the workers, dropping decoded files nobody will write."""
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
