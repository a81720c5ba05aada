"""NetCDF ingest: a directory tree of NetCDF files becomes datasets of one store.

One file gives one dataset, named after its path relative to the source directory
(see :func:`dataset_name`); a NetCDF-4 file with groups gives one dataset per group, each
recording where it sits in the file (see :mod:`atlas.integrations.groups`), written and
replaced together. Files are decoded with xarray's CF conventions (masked
fill values become NaN, times become ``datetime64``, character arrays become
strings) and written with ``Atlas.add_xarray_dataset``.

Decoding a NetCDF file through xarray is Python-heavy and holds the GIL, so it runs
in worker processes that send each decoded dataset back to the main thread; the
store handle is not thread-safe, so every store write happens on that one thread.
Files whose decoded size exceeds a per-file limit are not sent whole: the main
thread opens them lazily with dask blocks of ``chunk_size`` bytes, and
``add_xarray_dataset`` streams them block by block, so memory stays bounded
whatever the size of the files or of the folder.

The package's modules each do one job: :mod:`.files` finds the files and names their
datasets, :mod:`.reading` decodes one file, :mod:`.workers` runs the reader processes,
:mod:`.target` opens or creates the store, :mod:`.report` holds what an ingest tells,
:mod:`.synthetic` writes sample files, and :mod:`.cluster` runs the ingest on a dask
cluster (``atlas.dask.ingest``). The ingest itself is here, so that its
limits (``MIN_INGEST_BUFFER_BYTES``...) and the ``open_netcdf`` it streams with are
the package's own attributes, as they were before it was split.

An ingest is all-or-nothing by default: everything goes through one store handle, and
one commit at the end publishes it. Every ``checkpoint_files`` files (fewer when they
hold much metadata) the handle writes what it holds ahead (data, indexes and dataset
shards, named by no manifest: see :func:`atlas.core.checkpoint.checkpoint`) and forgets it,
so memory stays bounded however many files there are. If any file fails, nothing is
published, so an existing store keeps its last committed version (and its ingest log
records the failure), and a store the ingest created itself is removed again. With
``skip_errors=True`` failing files are skipped and reported, and the ingest commits at
every such step, so readers see it progress and a crash loses at most the files since
the last commit (``update`` takes it up again). A failure of the store itself (a full
disk, a bucket refusing writes, a service still failing after its retries) is never
blamed on a file: it stops the ingest, with or without ``skip_errors``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...core.checkpoint import abandon, checkpoint
from ...errors import ConflictError, CorruptionError, StorageError
from ...format.ingestlog import Failure
from ...storage.usage import disk_usage
from ..groups import Dimension, GroupPlace, group_dataset_name, record_place, subgroups
from ..xarray import PreparedDataset, add_prepared, add_xarray_dataset
from .files import (
    NAME_SEPARATOR,
    NETCDF_SUFFIXES,
    SourceFile,
    collect_sources,
    dataset_name,
    find_netcdf_files,
)
from .plan import Plan, plan_ingest
from .provenance import failure, file_sha256, record, recorded, write_failures
from .reading import (
    MAX_INLINE_BYTES,
    Decoded,
    describe_error,
    file_groups,
    open_netcdf,
    plan_chunks,
    read_netcdf,
    record_warnings,
)
from .report import IngestError, IngestProgress, IngestReport, WarningRecord, conflict_message
from .synthetic import write_synthetic_profiles as write_synthetic_profiles  # for the demo
from .target import prepare_store
from .workers import Readers, release_memory_promptly, worker_pool
from .workers import default_jobs as _default_jobs  # the name the command line imports

if TYPE_CHECKING:
    import xarray as xr

    from ...core.atlas import Store as Atlas

__all__ = [
    "CHECKPOINT_FILES",
    "DEFAULT_CHUNK_SIZE",
    "NAME_SEPARATOR",
    "NETCDF_SUFFIXES",
    "IngestError",
    "IngestProgress",
    "IngestReport",
    "SourceFile",
    "collect_sources",
    "dataset_name",
    "find_netcdf_files",
    "ingest_directory",
    "open_netcdf",
    "plan_chunks",
    "read_netcdf",
    "release_memory_promptly",
    "worker_pool",
]

#: Target size of one dask block when a large file is streamed. Streaming holds a few
#: copies of a block at once (as read, CF-decoded, buffered by the store, and while the
#: store computes statistics and compresses): streaming adds about 7 blocks to memory.
DEFAULT_CHUNK_SIZE = 16 << 20
#: Least buffer of chunk bytes before the store writes chunks ahead during an ingest
#: (the buffer is half a streaming block, and at least this).
MIN_INGEST_BUFFER_BYTES = 8 << 20
#: Below this many files, decoding in the main process beats starting workers.
MIN_FILES_FOR_WORKERS = 16
#: Files between two checkpoints (or commits, with ``skip_errors``) of an ingest.
CHECKPOINT_FILES = 500
#: Metadata items (attributes and variables of the files) between two checkpoints: files
#: with much metadata checkpoint sooner. What the handle holds between checkpoints is
#: about 0.5 KiB an item, and about twice that while it writes them ahead.
CHECKPOINT_ITEMS = 125_000

# Failures of the store, never of the file being added. Everything the store's storage
# raises on failing comes as StorageError (see target.prepare_store); CorruptionError is
# about bytes already in the store.
_STORE_FAILURES = (StorageError, CorruptionError)


def ingest_directory(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    store_path: str | os.PathLike[str],
    *,
    codec: str | None = None,
    meta_format: str = "msgpack",
    meta_compression: str = "zstd",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    skip_errors: bool = False,
    jobs: int | None = None,
    update: bool = False,
    progress: IngestProgress | None = None,
    max_inline_bytes: int | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    root: str | os.PathLike[str] | None = None,
    retry_failed: bool = False,
    checkpoint_files: int = CHECKPOINT_FILES,
) -> IngestReport:
    """Ingest the NetCDF files of ``source`` (a directory, a file, or a list of them) into
    the store at ``store_path``.

    Directories are searched recursively; files given by name are taken whatever their
    extension. ``include``/``exclude`` patterns select files (see
    :func:`.files.collect_sources`); dataset names are paths relative to ``root`` (by
    default the deepest directory holding every input), see :func:`dataset_name`.

    The store is created when missing, with ``codec`` (default zstd) for data and
    compact metadata (msgpack, zstd-compressed: per-file attributes make up most of
    the metadata of a NetCDF collection, and JSON would be ten times the data). Each
    dataset records its source file (path, size, modification time, SHA-256, Atlas
    version) as ``_atlas_*`` attributes (:mod:`.provenance`). A name already in the
    store is an error, unless ``update`` is true: then unchanged files are left alone,
    changed ones (by size and time, then content hash) replace their datasets, and new
    ones are added; and the ingest commits on top of what other writers committed while it
    ran (``flush(rebase=True)``), so concurrent updates with different files all land. One
    that changed the same datasets (or added the same new ones) raises :class:`IngestError`
    saying so, with nothing committed; so does an update of more than ``checkpoint_files``
    files that another writer's commit overtook (its checkpoints are not rebased). Files
    that failed in an earlier ingest (kept in the store's ingest log) are not tried again while unchanged, unless ``retry_failed``. ``jobs`` worker
    processes decode files (default: one per core; ``1`` decodes in this process).
    Files whose decoded size exceeds ``max_inline_bytes`` (default: a quarter of
    ``chunk_size``, at most 32 MiB) are streamed in dask blocks of about ``chunk_size``
    bytes, which also become their chunks in the store.

    All-or-nothing unless ``skip_errors``: on the first failing file nothing is
    committed, a store created by this call is removed (an existing one records the
    failure in its ingest log, and the next ingest tries the file again), and
    :class:`IngestError` says which file failed and why. Every ``checkpoint_files``
    files the handle writes ahead what it holds and forgets it (invisible until the
    commit at the end), so memory stays bounded. With ``skip_errors`` failing files are
    skipped, listed in the report and in the store's ingest log, and the ingest commits
    every ``checkpoint_files`` files instead (a crash loses at most those since the
    last commit). Failures of the store itself (a full disk, a bucket refusing writes, a
    service still failing after its retries) always stop the ingest with an
    :class:`IngestError` naming the store, and never count as a failing file. A store
    whose create was interrupted (a directory holding only ``atlas.json`` or temporary
    files, say) is created again.

    Workers are started with multiprocessing's ``forkserver`` method, so a script
    calling this with ``jobs > 1`` needs the usual ``if __name__ == "__main__":``
    guard.
    """
    t0 = time.perf_counter()
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    report = IngestReport(source=", ".join(os.fspath(p) for p in sources), store=os.fspath(store_path))
    jobs, max_inline = _check_arguments(chunk_size, jobs, max_inline_bytes)
    if checkpoint_files < 1:
        raise IngestError("checkpoint_files must be at least 1")
    files = _source_files(sources, root, include, exclude, skip_errors, report)
    store, cleanup = prepare_store(report.store, codec, (meta_format, meta_compression), report)
    report.store = store.location
    report.store_bytes_before = 0 if report.created else disk_usage(store.storage).allocated_bytes
    # writing ahead costs a few times the buffer while statistics are taken: keep it small
    store.buffer_bytes = min(store.buffer_bytes, max(MIN_INGEST_BUFFER_BYTES, chunk_size // 2))
    run: _Run | None = None
    committed = False
    try:
        with warnings.catch_warnings():
            # decoded values sent back by the readers may warn again when they are
            # unpickled here; the readers have recorded their warnings already
            warnings.filterwarnings("ignore", module=r"multiprocessing\.")
            plan = _planned(store, files, update, retry_failed, report, progress)
            use_workers = jobs > 1 and len(plan.todo) >= MIN_FILES_FOR_WORKERS
            readers = Readers(plan.todo, jobs if use_workers else 1, max_inline)
            run = _Run(store, plan, skip_errors, report, checkpoint_files, rebase=update)
            _write_files(run, readers, chunk_size, progress)
        if progress is not None:
            progress.stage("committing")
        run.finish()
        committed = True
    finally:
        if progress is not None:
            progress.close()
        if not committed:
            abandon(store)  # what it wrote ahead since its last commit: no version will name it
            if not (run is not None and run.published):
                cleanup()
    _measure(report, store, t0)
    return report


def _planned(
    store: Atlas, files: list[SourceFile], update: bool, retry_failed: bool, report: IngestReport,
    progress: IngestProgress | None,
) -> Plan:
    """What the ingest does with each file (:func:`.plan.plan_ingest`), its progress started."""
    plan = plan_ingest(store, files, update, retry_failed, report)
    if progress is not None:
        progress.start(len(plan.todo), sum(s.size for s in plan.todo))
    return plan


def _measure(report: IngestReport, store: Atlas, t0: float) -> None:
    """The store's version and size after the ingest, and the time it took."""
    report.version = store.version
    usage = disk_usage(store.storage)
    report.store_bytes_after = usage.allocated_bytes
    report.store_apparent_bytes = usage.apparent_bytes
    report.store_files = usage.files
    report.seconds = time.perf_counter() - t0


def _commit(store: Atlas, report: IngestReport, rebase: bool) -> None:
    """Commit the ingest (with ``rebase``, on top of what other writers committed meanwhile);
    a failure of the store, or another writer's commit it cannot go on top of, stops it. Its
    warnings join the report."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            store.flush(rebase=rebase)
    except StorageError as exc:
        raise IngestError(f"{_one_line(exc)}; stopped while committing the ingest") from exc
    except ConflictError as exc:
        tail = "" if rebase else " (--update adds only the files the store does not hold)"
        raise IngestError(conflict_message(report.store, exc.conflicts, "nothing was committed", tail)) from exc
    report.warnings.extend(WarningRecord("(the commit)", c, m) for c, m in record_warnings(caught))


class _Run:
    """What an ingest did so far: the files it committed or skipped, and its batches.

    A batch ends every ``every`` files, or sooner when they hold ``CHECKPOINT_ITEMS``
    metadata items: the handle then writes it ahead and forgets it (a checkpoint), or,
    with ``skip_errors``, commits it and records its failures in the ingest log."""

    def __init__(
        self, store: Atlas, plan: Plan, skip_errors: bool, report: IngestReport, every: int, rebase: bool = False
    ) -> None:
        self.store = store
        self.rebase = rebase
        store._merge_limit = every  # a commit decodes and rewrites less than a batch
        self.plan = plan
        self.skip_errors = skip_errors
        self.report = report
        self.every = every
        self.failed: list[Failure] = []  # files skipped (skip_errors)
        self.tried: list[str] = []  # files of the batches committed (stored or skipped)
        self.batch: list[str] = []  # files of the batch under way
        self.items = 0  # metadata items of the batch
        self.published = False  # a batch was committed (the store is kept whatever follows)
        self.checkpoints = 0

    def done(self, src: SourceFile, items: int) -> None:
        """``src`` was added (with ``items`` attributes and variables) or skipped."""
        self.batch.append(src.relpath)
        self.items += items
        if len(self.batch) >= self.every or self.items >= CHECKPOINT_ITEMS:
            self.end_batch()

    def end_batch(self) -> None:
        """Write the batch ahead and forget it; with ``skip_errors``, commit it."""
        self.checkpoint()
        if self.skip_errors:
            _commit(self.store, self.report, self.rebase)
            self.published = True
            self.tried += self.batch
            self.keep_log()
        self.batch = []
        self.items = 0

    def checkpoint(self) -> None:
        try:
            checkpoint(self.store)
        except StorageError as exc:
            done = "the batches before were committed" if self.published else "nothing was committed"
            raise IngestError(f"{_one_line(exc)}; stopped while writing ahead; {done}") from exc
        self.checkpoints += 1

    def finish(self) -> None:
        """Commit what is left. After checkpoints, the rest is written ahead first, into a
        shard of its own. The commit writes what it adds together with the store's last
        shards only while those hold fewer than a batch: it decodes the datasets it
        rewrites, and shards stay small enough (two batches at most) that decoding one,
        which reading any of its datasets does, takes little memory."""
        if self.batch and self.checkpoints:
            self.checkpoint()
        _commit(self.store, self.report, self.rebase)
        self.keep_log()

    def keep_log(self) -> None:
        """The store's ingest log after what was committed: the failures of this ingest,
        and those of earlier ones for files it did not try (all of its files, once its
        last commit is done)."""
        _keep_log(self.store, self.plan, self.failed, set(self.tried) | set(self.batch))

    def stopped_by(self, stop: Failure) -> None:
        """Record the failure that stops the ingest in the log of a store that stays (one
        the ingest created is removed): earlier failures stay, as nothing was committed.
        A file skipped before and unchanged stays one that is skipped (it was retried on
        request); any other is tried again by the next ingest."""
        if self.report.created:
            return
        before = next((f for f in self.plan.log if f.file == stop.file), None)
        if before is not None and not before.stopped and before.sha256 == stop.sha256:
            stop = dataclasses.replace(stop, stopped=False)
        log = [f for f in self.plan.log if f.file != stop.file] + [stop]
        try:
            write_failures(self.store, log)
        except StorageError:  # the store fails too: the error about the file still stands
            pass


def _keep_log(store: Atlas, plan: Plan, failed: list[Failure], tried: set[str] | None = None) -> None:
    """The store's ingest log after what was committed: the failures ``failed``, and those
    of earlier ingests for files not ``tried`` (by default every file of the plan)."""
    if tried is None:
        tried = {s.relpath for s in plan.todo}
    log = [f for f in plan.log if f.file not in tried] + failed
    if log != plan.log:
        try:
            write_failures(store, log)
        except StorageError as exc:
            raise IngestError(f"{_one_line(exc)}; the ingest was committed, but its list of failed files was not") from exc


def _check_arguments(chunk_size: int, jobs: int | None, max_inline_bytes: int | None) -> tuple[int, int]:
    """Refuse what cannot work; return the number of reader processes and the largest
    decoded size of a file handed whole to the writer."""
    if chunk_size < 1:
        raise IngestError("the chunk size must be at least 1 byte")
    jobs = _default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise IngestError("--jobs must be at least 1")
    max_inline = max_inline_bytes if max_inline_bytes is not None else min(MAX_INLINE_BYTES, chunk_size // 4)
    return jobs, max_inline


def _source_files(
    sources: list[str | os.PathLike[str]],
    root: str | os.PathLike[str] | None,
    include: Sequence[str],
    exclude: Sequence[str],
    skip_errors: bool,
    report: IngestReport,
) -> list[SourceFile]:
    """The NetCDF files of ``sources``, those whose names clash refused or skipped."""
    try:
        base, files = collect_sources(sources, root, include, exclude)
    except ValueError as e:
        raise IngestError(str(e)) from None
    report.files_found = len(files)
    if not files:
        chosen = " matching --include/--exclude" if include or exclude else ""
        raise IngestError(
            f"found no NetCDF files ({', '.join(NETCDF_SUFFIXES)}){chosen} in {report.source}"
        )
    report.root = str(base)
    return _check_names(files, skip_errors, report)


def _check_names(files: list[SourceFile], skip_errors: bool, report: IngestReport) -> list[SourceFile]:
    """Refuse (or skip) files whose dataset names collide."""
    first: dict[str, SourceFile] = {}
    keep: list[SourceFile] = []
    clashes: list[tuple[SourceFile, SourceFile]] = []
    for src in files:
        other = first.get(src.name)
        if other is None:
            first[src.name] = src
            keep.append(src)
        else:
            clashes.append((src, other))
    if clashes and not skip_errors:
        src, other = clashes[0]
        more = f" (and {len(clashes) - 1} more clashes)" if len(clashes) > 1 else ""
        raise IngestError(
            f"{src.relpath} and {other.relpath} would both become dataset {src.name!r}{more}; "
            "rename one, or pass --skip-errors to skip the later one"
        )
    for src, other in clashes:
        report.skipped.append((src.relpath, f"its dataset name {src.name!r} is taken by {other.relpath}"))
    return keep


def _write_files(run: _Run, readers: Readers, chunk_size: int, progress: IngestProgress | None) -> None:
    """Add each file as the readers deliver it; the first failing file stops the ingest
    unless ``skip_errors``."""
    store, plan, report = run.store, run.plan, run.report
    try:
        for src, decoded, digest in readers:
            report.warnings.extend(WarningRecord(src.relpath, c, m) for c, m in decoded.warnings)
            error = decoded.error
            items, names = 0, [src.name]
            if error is None:
                error, items, names = _write_file(
                    store, src, decoded, chunk_size, report, src.name in plan.replace, digest
                )
            decoded.dataset = decoded.prepared = None
            decoded.groups = []
            if error is not None:
                sha256 = digest or plan.hashes.get(src.relpath, "")
                if not run.skip_errors:
                    run.stopped_by(failure(src, error, sha256, stopped=True))
                    raise IngestError(
                        f"{src.relpath}: {error}. Nothing was committed"
                        + ("" if report.created else "; the store is unchanged")
                        + " (pass --skip-errors to skip failing files)"
                    )
                report.skipped.append((src.relpath, error))
                run.failed.append(failure(src, error, sha256))
            else:
                report.added.extend(names)
                if src.name in plan.replace:
                    report.replaced.extend(names)
                report.bytes_in += src.size
            if progress is not None:
                progress.advance(1, src.size)
            run.done(src, items)
    finally:
        readers.close()


def _write_file(
    store: Atlas, src: SourceFile, decoded: Decoded, chunk_size: int, report: IngestReport, replace: bool, digest: str
) -> tuple[str | None, int, list[str]]:
    """Add one file as datasets, its root group's and one for each sub-group (replacing
    those of an earlier version of the file): (None, their attributes and variables, their
    names) when added, else (why the file failed, 0, []). A failure of the store itself
    raises :class:`IngestError`."""
    if replace and store.dataset_exists(src.name):
        for name in [*subgroups(store, src.name), src.name]:
            store.delete_dataset(name)
    written: list[str] = []
    try:
        raised, items = _add_file(store, src, decoded, chunk_size, written)
        sha256 = digest or file_sha256(str(src.path))
        for name in written:
            record(store.open_dataset(name), src, sha256)
    except MemoryError:
        raise
    except _STORE_FAILURES as exc:  # the store's disk or bucket, not this file: stop
        raise IngestError(
            f"{_one_line(exc)}; stopped while adding {src.relpath} (not that file's fault); "
            "nothing was committed"
        ) from exc
    except Exception as exc:  # data this file holds that cannot be stored, or a name taken
        for name in written:  # never keep part of a file
            if store.dataset_exists(name):
                store.delete_dataset(name)
        if isinstance(exc, (_UnreadableFile, _NameTaken)):
            return str(exc), 0, []
        return describe_error(exc, reading=False), 0, []
    report.warnings.extend(WarningRecord(src.relpath, c, m) for c, m in raised)
    return None, items, written


class _NameTaken(Exception):
    """The dataset name of a file's group is another dataset's (a per-file failure)."""


class _UnreadableFile(Exception):
    """A file the writer could not open for streaming (a per-file failure)."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()).rstrip(".")
    return text or type(exc).__name__


def shared_strings(prepared: PreparedDataset) -> PreparedDataset:
    """``prepared`` with its attribute keys and string values interned (in place): files
    of one kind repeat the same keys (``TEMP.units``), units and long names in every
    dataset, which the handle holds until its next checkpoint."""
    intern = sys.intern
    for group in (prepared.attrs, *(p.attrs for p in prepared.plans)):
        group[:] = [(intern(k), intern(v) if type(v) is str else v, kind) for k, v, kind in group]
    return prepared


def metadata_items(ds: xr.Dataset) -> int:
    """Attributes and variables of a Dataset: what its dataset's metadata grows with."""
    return 1 + len(ds.attrs) + sum(1 + len(v.attrs) for v in ds.variables.values())


def _free_name(store: Atlas, src: SourceFile, path: str) -> str:
    """The dataset name of group ``path`` of ``src``, once free: a dataset of that name that
    an earlier ingest of this same file left (its root group's dataset was deleted since)
    is deleted; one of another file's is :class:`_NameTaken`."""
    name = group_dataset_name(src.name, path)
    if path != "/" and store.dataset_exists(name):
        source = recorded(store.open_dataset(name))
        if source is None or source.path != src.relpath:
            holder = f"dataset {name!r} of {source.path}" if source is not None else f"dataset {name!r}"
            raise _NameTaken(f"its group {path} would be {holder}, which is in the store already")
        store.delete_dataset(name)
    return name


def _add_file(
    store: Atlas, src: SourceFile, decoded: Decoded, chunk_size: int, written: list[str]
) -> tuple[list[tuple[str, str]], int]:
    """Write one decoded (or to-be-streamed) file as datasets, its root group's first, each
    name appended to ``written`` once written; return the warnings raised and the metadata
    items."""
    items = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if decoded.prepared is not None:  # readers decode with prepare=True: every group prepared
            layout = [("/", decoded.dims), *((g.path, g.dims) for g in decoded.groups)]
            parts = [decoded.prepared, *(g.prepared for g in decoded.groups)]
            for (path, _), prepared in zip(layout, parts, strict=True):
                assert prepared is not None
                name = _free_name(store, src, path)
                add_prepared(store, shared_strings(prepared), name)
                items += prepared.items
                written.append(name)
        else:
            try:
                layout = file_groups(src.path)
            except Exception as exc:
                raise _UnreadableFile(describe_error(exc)) from exc
            for path, _ in layout:
                name = _free_name(store, src, path)
                try:
                    ds = open_netcdf(src.path, chunk_bytes=chunk_size, group=None if path == "/" else path)
                except Exception as exc:
                    raise _UnreadableFile(describe_error(exc)) from exc
                try:
                    add_xarray_dataset(store, ds, name)
                    items += metadata_items(ds)
                finally:
                    ds.close()
                written.append(name)
        if len(layout) > 1:
            _record_places(store, src, layout, written)
    return record_warnings(caught), items


def _record_places(store: Atlas, src: SourceFile, layout: list[tuple[str, list[Dimension]]], names: list[str]) -> None:
    """Record where each dataset of a file with groups sits in it (see :mod:`..groups`)."""
    for (path, dims), name in zip(layout, names, strict=True):
        if path == "/":
            place = GroupPlace("/", None, dims, names[1:])
        else:
            parent = group_dataset_name(src.name, path.rsplit("/", 1)[0] or "/")
            place = GroupPlace(path, parent, dims, [])
        record_place(store.open_dataset(name), place)
