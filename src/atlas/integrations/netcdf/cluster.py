"""NetCDF ingest on a dask cluster: files read and written by the workers, committed by the client.

The client finds and plans the files as a local ingest does (:func:`.files.collect_sources`,
:func:`.plan.plan_ingest`), then hands them to the cluster in groups (:func:`ingest_group`).
Each task opens the store at the version the client reads, as its own writable handle;
decodes, CF-encodes and adds its files with the local ingest's per-file code (same dataset
names, provenance attributes, warnings and failure rules); and takes its handle's changes
with :func:`atlas.core.changes.changes_of`, which writes the chunks ahead into the store's
location. It returns those changes (names, schemas, statistics and index rows: no chunk
data) with what happened to each file. The client applies each task's changes to its own
handle (:func:`atlas.core.changes.apply_changes`), in the order the files were planned, so
the store lists its datasets as a local ingest of the same files does, and commits with
``flush(rebase=True)``, so that other writers may commit meanwhile.

**Commits.** All or nothing (the default): the client commits once, at the end, and
only if no file failed; a failing file stops the ingest, and nothing of it becomes
visible. Periodic commits would make the first files visible before a later one fails,
so they are refused in this mode. With ``skip_errors=True`` the client also commits
every ``commit_every_files`` files or ``commit_every_seconds`` seconds, whichever comes
first: a run that is stopped keeps what it committed, and a rerun with ``update=True``
skips those files (their provenance is recorded) and goes on with the rest. After each
commit the client takes a fresh handle on the version it committed, so its memory stays
bounded by what it applied since (a handle keeps the datasets it committed: about 70 KiB
per Argo profile). All or nothing, it holds every dataset of the run until the end (about
90 KiB per Argo profile): use ``skip_errors`` for runs of hundreds of thousands of files.

**Workers that die.** A task whose worker dies is run again by dask on another worker:
it opens a fresh handle, writes its files' chunks into new segments and returns new
changes; the client applies each task's changes once (the first result it gets). The
segments the dead attempt wrote are named by no version; ``compact()`` removes them once
its grace period has passed. A task whose workers keep dying (dask gives up on it after
``distributed.scheduler.allowed-failures`` deaths) is split: each of its files is tried
alone, and the one that kills its worker every time fails by itself (skipped with
``skip_errors``, else the ingest stops), as a file that crashes a reader of the local
ingest does.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ...errors import ConflictError, StorageError
from ...format.ingestlog import Failure
from .files import SourceFile
from .plan import Plan
from .provenance import failure
from .report import IngestError, IngestProgress, IngestReport, WarningRecord, conflict_message
from .target import prepare_store
from .workers import task_groups

if TYPE_CHECKING:
    from ...core.atlas import Store
    from ...core.changes import Changes

__all__ = [
    "DEFAULT_COMMIT_EVERY_FILES",
    "DEFAULT_COMMIT_EVERY_SECONDS",
    "DEFAULT_TASK_FILES",
    "FileOutcome",
    "GroupResult",
    "ingest_on_cluster",
    "ingest_group",
]

#: With ``skip_errors``, the client commits after this many files (it holds about 90 KiB
#: per Argo profile applied and not yet committed)...
DEFAULT_COMMIT_EVERY_FILES = 2000
#: ... or this many seconds since its last commit, whichever comes first.
DEFAULT_COMMIT_EVERY_SECONDS = 60.0
#: Files one task ingests (at most; a group also stops at ``TASK_BYTES`` of input).
DEFAULT_TASK_FILES = 64
TASK_BYTES = 64 << 20
#: Tasks submitted and not yet applied, per worker thread of the cluster.
TASKS_PER_THREAD = 3


@dataclass
class FileOutcome:
    """What a task did with one file."""

    error: str | None = None  # None: added
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (category, message)
    digest: str = ""  # its SHA-256, when taken
    names: list[str] = field(default_factory=list)  # the datasets it became (its groups')


@dataclass
class GroupResult:
    """What a task returns: its handle's changes and each file's outcome (in the task's
    order; shorter than the group when a failing file stopped an all-or-nothing task)."""

    changes: Changes | None
    files: list[FileOutcome]
    seconds: float = 0.0  # time the task took on its worker
    cpu_seconds: float = 0.0  # CPU time of its worker's process meanwhile
    warnings: list[tuple[str, str]] = field(default_factory=list)  # raised writing ahead


# ---------------------------------------------------------------------------- on the workers


def ingest_group(
    location: str,
    storage_options: Mapping[str, Any],
    version: int,
    files: Sequence[SourceFile],
    replace: Sequence[bool],
    chunk_size: int,
    max_inline: int,
    skip_errors: bool,
) -> GroupResult:
    """One task: add ``files`` to a writable handle on ``version`` of the store at
    ``location`` and return its changes (chunks written ahead into the store) with each
    file's outcome. A failing file ends the task at once unless ``skip_errors``; a failure
    of the store raises :class:`IngestError`."""
    from ...core.changes import changes_of
    from . import MIN_INGEST_BUFFER_BYTES, _write_file
    from .reading import record_warnings
    from .workers import read_file

    t0, cpu0 = time.perf_counter(), time.process_time()
    store = _open_at(location, storage_options, version)
    store.buffer_bytes = min(store.buffer_bytes, max(MIN_INGEST_BUFFER_BYTES, chunk_size // 2))
    outcomes: list[FileOutcome] = []
    scratch = IngestReport(source="", store=location)  # collects the warnings of writing
    for src, replacing in zip(files, replace, strict=True):
        decoded, digest = read_file(str(src.path), max_inline)
        outcome = FileOutcome(warnings=list(decoded.warnings), digest=digest)
        outcome.error = decoded.error
        if outcome.error is None:
            del scratch.warnings[:]
            outcome.error, _, outcome.names = _write_file(store, src, decoded, chunk_size, scratch, replacing, digest)
            outcome.warnings.extend((w.category, w.message) for w in scratch.warnings)
        decoded.dataset = decoded.prepared = None
        decoded.groups = []
        outcomes.append(outcome)
        if outcome.error is not None and not skip_errors:
            return GroupResult(None, outcomes, time.perf_counter() - t0, time.process_time() - cpu0)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            changes = changes_of(store)
    except StorageError as exc:
        raise IngestError(f"{' '.join(str(exc).split())}; stopped while writing ahead on a worker") from exc
    return GroupResult(
        changes, outcomes, time.perf_counter() - t0, time.process_time() - cpu0, record_warnings(caught)
    )


def _open_at(location: str, storage_options: Mapping[str, Any], version: int) -> Store:
    """A writable handle on ``version`` of the store at ``location`` (its storage reporting
    failures as ``StorageError``, as the client's does)."""
    from ...core.atlas import Store
    from ...format import manifest as mf
    from ...storage import open_storage
    from ...storage.wrappers import ReportingStorage

    storage = ReportingStorage(open_storage(location, **dict(storage_options)))
    config = mf.decode_config(storage.get(mf.CONFIG_KEY), f"{storage.location}/{mf.CONFIG_KEY}")
    return Store(storage, config, version, False)


# ---------------------------------------------------------------------------- on the client


def ingest_on_cluster(
    sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    location: str | os.PathLike[str],
    client: Any,
    *,
    storage_options: Mapping[str, Any] | None = None,
    codec: str | None = None,
    meta_format: str = "msgpack",
    meta_compression: str = "zstd",
    chunk_size: int | None = None,
    skip_errors: bool = False,
    update: bool = False,
    retry_failed: bool = False,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    root: str | os.PathLike[str] | None = None,
    max_inline_bytes: int | None = None,
    progress: IngestProgress | None = None,
    commit_every_files: int | None = None,
    commit_every_seconds: float | None = None,
    task_files: int = DEFAULT_TASK_FILES,
) -> IngestReport:
    """The ingest of :func:`atlas.dask.ingest` on ``client`` (a ``distributed.Client``)."""
    from . import DEFAULT_CHUNK_SIZE, _check_arguments, _measure, _planned, _source_files

    t0 = time.perf_counter()
    paths = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    report = IngestReport(source=", ".join(os.fspath(p) for p in paths), store=os.fspath(location))
    chunk_size = DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size
    _, max_inline = _check_arguments(chunk_size, 1, max_inline_bytes)
    every_files, every_seconds = _commit_every(skip_errors, commit_every_files, commit_every_seconds)
    if task_files < 1:
        raise IngestError("task_files must be at least 1")
    options = dict(storage_options or {})
    files = [_absolute(s) for s in _source_files(paths, root, include, exclude, skip_errors, report)]
    store, cleanup = prepare_store(report.store, codec, (meta_format, meta_compression), report, options)
    # the workers open it as given, with the same options (a local path made absolute)
    location = report.store if "://" in report.store else os.path.abspath(report.store)
    report.store = store.location
    run: _Run | None = None
    finished = False
    try:
        plan = _planned(store, files, update, retry_failed, report, progress)
        run = _Run(store, plan, report, progress, skip_errors, every_files, every_seconds)
        submit = _submitter(client, location, options, plan, chunk_size, max_inline, skip_errors)
        _drive(client, task_groups(plan.todo, task_files, TASK_BYTES), submit, run)
        if progress is not None:
            progress.stage("committing")
        run.commit()
        finished = True
    finally:
        if progress is not None:
            progress.close()
        if not finished and (run is None or run.commits == 0):
            cleanup()  # a store this call created, unless part of the run was committed
    _measure(report, run.store, t0)
    return report


def _commit_every(skip_errors: bool, files: int | None, seconds: float | None) -> tuple[int, float]:
    """How often the client commits: (files, seconds); never before the end when all or nothing."""
    if not skip_errors:
        if files is not None or seconds is not None:
            raise IngestError(
                "commits before the end would make files visible although a later one may fail; "
                "periodic commits need skip_errors=True (--skip-errors)"
            )
        return 0, 0.0
    files = DEFAULT_COMMIT_EVERY_FILES if files is None else files
    seconds = DEFAULT_COMMIT_EVERY_SECONDS if seconds is None else seconds
    if files < 1 or seconds <= 0:
        raise IngestError("commit_every_files and commit_every_seconds must be positive")
    return files, seconds


def _absolute(src: SourceFile) -> SourceFile:
    """``src`` with an absolute path: workers may run in another directory."""
    return replace(src, path=src.path.absolute())


def _submitter(
    client: Any,
    location: str,
    options: dict[str, Any],
    plan: Plan,
    chunk_size: int,
    max_inline: int,
    skip_errors: bool,
) -> Any:
    """A function submitting one group as a task on the store's version the client reads then."""

    def submit(group: list[SourceFile], version: int) -> Any:
        replacing = [s.name in plan.replace for s in group]
        return client.submit(
            ingest_group, location, options, version, group, replacing, chunk_size, max_inline, skip_errors,
            pure=False,
        )

    return submit


def _drive(client: Any, groups: list[list[SourceFile]], submit: Any, run: _Run) -> None:
    """Run the groups on the cluster, a bounded number at a time, and hand their results to
    ``run`` in the groups' order. On an error, wait for the tasks still running (so that none
    writes into the store after this returns) and raise it."""
    from distributed import as_completed, wait

    threads = sum(client.nthreads().values()) or 1
    window = max(4, TASKS_PER_THREAD * threads)
    futures: dict[int, Any] = {}
    index: dict[str, int] = {}  # task key -> its group
    done: dict[int, list[tuple[list[SourceFile], GroupResult]]] = {}
    following = as_completed()
    next_submit = next_apply = 0
    try:
        while next_apply < len(groups):
            while next_submit < len(groups) and next_submit - next_apply < window:
                fut = submit(groups[next_submit], run.store.version)
                futures[next_submit] = fut
                index[fut.key] = next_submit
                following.add(fut)
                next_submit += 1
            while next_apply not in done:
                fut = next(following)
                i = index.pop(fut.key)
                done[i] = _results(fut, groups[i], submit, run.store.version)
                fut.release()
            while next_apply in done:
                for group, result in done.pop(next_apply):
                    run.apply(group, result)
                del futures[next_apply]
                next_apply += 1
    except BaseException:
        pending = [f for f in futures.values() if not f.done()]
        if pending:
            wait(pending)
        raise


#: What a file whose task killed its worker every time it ran failed of.
WORKER_DIED = (
    "the worker process ingesting this file died each time it was tried (the NetCDF library "
    "crashed, or the process ran out of memory)"
)


def _results(
    fut: Any, group: list[SourceFile], submit: Any, version: int
) -> list[tuple[list[SourceFile], GroupResult]]:
    """A task's result, as (files, result) pairs. When its workers kept dying (dask gave up
    on it), each file of the group is tried again alone, one after the other, so that the
    one killing them fails by itself, as the local ingest does when a reader crashes."""
    from distributed import KilledWorker, wait

    try:
        return [(group, _result(fut, group))]
    except IngestError as exc:
        if not isinstance(exc.__cause__, KilledWorker):
            raise
        if len(group) == 1:
            return [(group, GroupResult(None, [FileOutcome(error=WORKER_DIED)]))]
    out: list[tuple[list[SourceFile], GroupResult]] = []
    for src in group:  # one at a time: none dies beside the one that kills its worker
        single = submit([src], version)
        wait([single])
        try:
            out.append(([src], _result(single, [src])))
        except IngestError as exc:
            if not isinstance(exc.__cause__, KilledWorker):
                raise
            out.append(([src], GroupResult(None, [FileOutcome(error=WORKER_DIED)])))
    return out


def _result(fut: Any, group: list[SourceFile]) -> GroupResult:
    """A task's result; its error as an :class:`IngestError` (the store's failures, and a
    task whose workers kept dying, stop the ingest)."""
    try:
        result = fut.result()
    except IngestError:
        raise
    except Exception as exc:
        files = group[0].relpath + (f" to {group[-1].relpath}" if len(group) > 1 else "")
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise IngestError(f"the task ingesting {files} failed on the cluster: {text}") from exc
    assert isinstance(result, GroupResult)
    return result


@dataclass(eq=False)
class _Run:
    """The client's side: applying the tasks' changes, the report, progress and commits."""

    store: Store
    plan: Plan
    report: IngestReport
    progress: IngestProgress | None
    skip_errors: bool
    every_files: int
    every_seconds: float
    failed: list[Failure] = field(default_factory=list)
    commits: int = 0
    since_commit: int = 0
    last_commit: float = field(default_factory=time.monotonic)
    worker_seconds: float = 0.0  # the tasks' time on the workers, and their CPU time
    worker_cpu_seconds: float = 0.0
    apply_seconds: float = 0.0  # the client's time applying changes, and committing
    apply_cpu_seconds: float = 0.0
    commit_seconds: float = 0.0

    def apply(self, group: list[SourceFile], result: GroupResult) -> None:
        """Take one task's result: its files into the report, its changes into the handle."""
        from ...core.changes import apply_changes

        report = self.report
        self.worker_seconds += result.seconds
        self.worker_cpu_seconds += result.cpu_seconds
        for src, outcome in zip(group, result.files, strict=False):
            report.warnings.extend(WarningRecord(src.relpath, c, m) for c, m in outcome.warnings)
            if outcome.error is not None and not self.skip_errors:
                raise IngestError(
                    f"{src.relpath}: {outcome.error}. Nothing was committed"
                    + ("" if report.created else "; the store is unchanged")
                    + " (pass --skip-errors to skip failing files)"
                )
        # what a local ingest's commit would have raised (statistics, encoding)
        report.warnings.extend(WarningRecord("(the commit)", c, m) for c, m in result.warnings)
        if result.changes is not None:
            started, cpu = time.perf_counter(), time.process_time()
            try:
                apply_changes(self.store, result.changes, ("this ingest", "another writer"))
            except ConflictError as exc:
                raise _conflict(report, exc) from exc
            self.apply_seconds += time.perf_counter() - started
            self.apply_cpu_seconds += time.process_time() - cpu
        for src, outcome in zip(group, result.files, strict=True):
            if outcome.error is not None:
                report.skipped.append((src.relpath, outcome.error))
                self.failed.append(failure(src, outcome.error, outcome.digest or self.plan.hashes.get(src.relpath, "")))
            else:
                report.added.extend(outcome.names)
                if src.name in self.plan.replace:
                    report.replaced.extend(outcome.names)
                report.bytes_in += src.size
            if self.progress is not None:
                self.progress.advance(1, src.size)
        self.since_commit += len(group)
        if self.every_files and (
            self.since_commit >= self.every_files or time.monotonic() - self.last_commit >= self.every_seconds
        ):
            self.commit()

    def commit(self) -> None:
        """Commit what was applied (on top of other writers' commits) and the ingest log."""
        from . import _commit, _keep_log

        started = time.perf_counter()
        before = self.store.version
        _commit(self.store, self.report, rebase=True)
        if self.store.version != before:
            self.commits += 1
        _keep_log(self.store, self.plan, self.failed)
        # a handle keeps what it committed in memory (tens of KiB per NetCDF dataset):
        # a fresh one on the version just committed holds only its names
        store = self.store
        self.store = type(store)(store._storage, store._config(), store.version, False)
        self.commit_seconds += time.perf_counter() - started
        self.since_commit = 0
        self.last_commit = time.monotonic()


def _conflict(report: IngestReport, exc: ConflictError) -> IngestError:
    return IngestError(conflict_message(report.store, exc.conflicts, "nothing more was committed", " with --update"))
