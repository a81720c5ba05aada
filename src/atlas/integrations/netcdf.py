"""NetCDF ingest: a directory tree of NetCDF files becomes datasets of one store.

One file gives one dataset, named after its path relative to the source directory
(see :func:`dataset_name`). Files are decoded with xarray's CF conventions (masked
fill values become NaN, times become ``datetime64``, character arrays become
strings) and written with ``Atlas.add_xarray_dataset``.

Decoding a NetCDF file through xarray is Python-heavy and holds the GIL, so it runs
in worker processes that send each decoded dataset back to the main thread; the
store handle is not thread-safe, so every store write happens on that one thread.
Files whose decoded size exceeds a per-file limit are not sent whole: the main
thread opens them lazily with dask blocks of ``chunk_size`` bytes, and
``add_xarray_dataset`` streams them block by block, so memory stays bounded
whatever the size of the files or of the folder.

An ingest is all-or-nothing by default: everything goes through one store handle
that is flushed once at the end. If any file fails, nothing is flushed, so an
existing store keeps its last committed version, and a store the ingest created
itself is removed again. With ``skip_errors=True`` failing files are skipped and
reported, and the rest is committed. A failure of the store itself (a full disk, a
bucket refusing writes, a service still failing after its retries) is never blamed on
a file: it stops the ingest, with or without ``skip_errors``.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import re
import shutil
import signal
import time
import warnings
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import CorruptionError, StorageError
from .xarray import add_xarray_dataset

if TYPE_CHECKING:
    import xarray as xr

    from ..core.atlas import Store as Atlas

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "NAME_SEPARATOR",
    "NETCDF_SUFFIXES",
    "GroupIgnoredWarning",
    "IngestError",
    "IngestProgress",
    "IngestReport",
    "SourceFile",
    "dataset_name",
    "find_netcdf_files",
    "ingest_directory",
    "open_netcdf",
    "plan_chunks",
    "read_netcdf",
    "release_memory_promptly",
    "worker_pool",
]

#: File name endings recognised as NetCDF (compared case-insensitively).
NETCDF_SUFFIXES: tuple[str, ...] = (".nc", ".nc4", ".cdf", ".netcdf")
#: Stands for ``/`` in dataset names, which may not contain ``/``.
NAME_SEPARATOR = ":"
#: Target size of one dask block when a large file is streamed. Streaming holds a few
#: copies of a block at once (as read, CF-decoded, buffered by the store, and while the
#: store computes statistics and compresses): streaming adds about 7 blocks to memory.
DEFAULT_CHUNK_SIZE = 16 << 20
#: Largest decoded size of a file handed whole from a worker to the writer.
MAX_INLINE_BYTES = 32 << 20
#: Least buffer of chunk bytes before the store writes chunks ahead during an ingest
#: (the buffer is half a streaming block, and at least this).
MIN_INGEST_BUFFER_BYTES = 8 << 20
#: Below this many files, decoding in the main process beats starting workers.
MIN_FILES_FOR_WORKERS = 16
#: Bytes assumed per element of object (string) arrays when estimating sizes.
_OBJECT_ITEMSIZE = 64
#: The directories of a store on local disk.
_STORE_DIRS = ("manifests", "data", "index")


class IngestError(RuntimeError):
    """An ingest that cannot go ahead or failed; the message says what to do."""


class GroupIgnoredWarning(UserWarning):
    """A NetCDF4 file has groups: only its root group is ingested."""


@dataclass(frozen=True)
class SourceFile:
    """One NetCDF file found under the source directory."""

    path: Path
    relpath: str  # POSIX path relative to the source directory
    name: str  # dataset name
    size: int  # bytes on disk


@dataclass(frozen=True)
class WarningRecord:
    """A warning raised while reading or writing one file."""

    file: str
    category: str
    message: str

    @property
    def kind(self) -> str:
        """The warning with file-specific details (quoted names, numbers) masked out."""
        text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", self.message.splitlines()[0] if self.message else "")
        text = re.sub(r"\b\d+(\.\d+)?\b", "N", text)
        return f"{self.category}: {text}"


@dataclass
class IngestReport:
    """What an ingest did: the CLI prints it, ``--json`` dumps :meth:`as_dict`."""

    source: str
    store: str
    created: bool = False
    files_found: int = 0
    files_present: int = 0  # already in the store, left alone (update mode)
    added: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    bytes_in: int = 0  # NetCDF bytes of the files ingested
    store_bytes_before: int | None = None
    store_bytes_after: int | None = None
    seconds: float = 0.0
    version: int | None = None
    warnings: list[WarningRecord] = field(default_factory=list)

    def warning_kinds(self) -> list[tuple[str, int]]:
        """Warnings grouped by kind, most frequent first."""
        return Counter(w.kind for w in self.warnings).most_common()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "source": self.source,
            "store": self.store,
            "created": self.created,
            "files_found": self.files_found,
            "files_already_present": self.files_present,
            "datasets_added": len(self.added),
            "added": list(self.added),
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
            "bytes_in": self.bytes_in,
            "store_bytes_before": self.store_bytes_before,
            "store_bytes_after": self.store_bytes_after,
            "seconds": round(self.seconds, 3),
            "version": self.version,
            "warnings": [{"kind": k, "count": n} for k, n in self.warning_kinds()],
            "warning_details": [
                {"file": w.file, "category": w.category, "message": w.message} for w in self.warnings
            ],
        }


class IngestProgress(Protocol):
    """Receives progress of an ingest (a progress bar, log lines, or nothing)."""

    def start(self, files: int, nbytes: int) -> None:
        """Work is about to start on ``files`` files totalling ``nbytes`` bytes."""

    def advance(self, files: int, nbytes: int) -> None:
        """``files`` more files (``nbytes`` bytes) are done."""

    def stage(self, text: str) -> None:
        """A named stage begins (e.g. committing)."""

    def close(self) -> None:
        """The work is over (successfully or not)."""


# ---------------------------------------------------------------------------- naming and finding


def dataset_name(relpath: str | PurePosixPath) -> str:
    """The dataset name of a file at ``relpath`` (POSIX, relative to the source directory).

    The NetCDF extension is dropped and every ``/`` becomes ``:``, since dataset
    names cannot hold ``/``: ``aoml/13857/profiles/R13857_001.nc`` gives
    ``aoml:13857:profiles:R13857_001``. Names cannot start with ``_`` either, so
    such a name gets a leading ``:`` (``_tmp/a.nc`` gives ``:_tmp:a``), as if the
    path were written from the source directory's root.
    """
    p = PurePosixPath(relpath)
    stem = p.name
    for suffix in NETCDF_SUFFIXES:
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    name = NAME_SEPARATOR.join([*p.parent.parts, stem] if str(p.parent) != "." else [stem])
    if name.startswith("_"):
        name = NAME_SEPARATOR + name
    return name


def _is_netcdf_name(filename: str) -> bool:
    low = filename.lower()
    return any(low.endswith(s) and len(low) > len(s) for s in NETCDF_SUFFIXES)


def find_netcdf_files(root: str | os.PathLike[str]) -> list[SourceFile]:
    """NetCDF files under ``root``, recursively, in sorted path order.

    Hidden files and directories (names starting with ``.``) are left out, as are
    symbolic links to directories.
    """
    root_path = Path(root)
    found: list[SourceFile] = []
    for dirpath, dirnames, filenames in os.walk(root_path):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = PurePosixPath(Path(dirpath).relative_to(root_path).as_posix())
        for fn in sorted(filenames):
            if fn.startswith(".") or not _is_netcdf_name(fn):
                continue
            path = Path(dirpath) / fn
            try:
                st = path.stat()
            except OSError:
                continue  # a dangling link
            if not path.is_file():
                continue
            rel = rel_dir / fn
            found.append(SourceFile(path, rel.as_posix(), dataset_name(rel), st.st_size))
    found.sort(key=lambda s: PurePosixPath(s.relpath).parts)
    return found


# ---------------------------------------------------------------------------- reading one file


def open_netcdf(path: str | os.PathLike[str], chunk_bytes: int | None = None) -> xr.Dataset:
    """Open a NetCDF file lazily with xarray's CF decoding (root group only).

    A file with groups gives a :class:`GroupIgnoredWarning` per group. With
    ``chunk_bytes`` every variable is backed by dask blocks of at most about that
    many bytes (see :func:`plan_chunks`), so writing it streams block by block.
    """
    import xarray as xr
    from xarray.backends import NetCDF4DataStore

    store = NetCDF4DataStore.open(os.fspath(path), mode="r")
    try:
        _warn_groups(store.ds)
        ds = xr.open_dataset(store, engine="store")
    except BaseException:
        store.close()
        raise
    if chunk_bytes is not None:
        plan = plan_chunks(ds, chunk_bytes)
        ds = ds.chunk({d: plan[d] for d in ds.dims if d in plan})
    return ds


def _itemsize(dtype: Any) -> int:
    return _OBJECT_ITEMSIZE if dtype.kind == "O" else max(1, int(dtype.itemsize))


def plan_chunks(ds: xr.Dataset, chunk_bytes: int) -> dict[str, int]:
    """Dask chunk length per dimension so that no variable's block exceeds ``chunk_bytes``.

    Dimensions start whole; for each variable, largest first, its outermost
    dimensions are cut until one block fits (inner dimensions stay whole as long as
    possible, so a block is a run of whole rows). One length per dimension keeps
    the blocks of all variables aligned.
    """
    sizes = {str(k): int(v) for k, v in ds.sizes.items()}
    chunks = dict(sizes)
    variables = sorted(
        ds.variables.values(), key=lambda v: math.prod(v.shape) * _itemsize(v.dtype), reverse=True
    )
    for var in variables:
        dims = [str(d) for d in var.dims]
        item = _itemsize(var.dtype)
        for i, d in enumerate(dims):
            block = item * math.prod(chunks[x] for x in dims)
            if block <= chunk_bytes:
                break
            inner = item * math.prod(chunks[x] for x in dims[i + 1 :])
            chunks[d] = max(1, min(chunks[d], chunk_bytes // max(1, inner)))
    return {d: max(1, c) for d, c in chunks.items()}


@dataclass
class _Decoded:
    """What a reader sends back for one file."""

    dataset: xr.Dataset | None = None  # decoded in memory, ready to write
    stream: bool = False  # too large to send whole: the writer streams it
    error: str | None = None
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (category, message)


def _describe_error(exc: BaseException, reading: bool = True) -> str:
    """One line saying what went wrong with a file."""
    if reading and isinstance(exc, OSError) and exc.strerror:
        return f"cannot read it as NetCDF ({exc.strerror})"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _record(caught: Sequence[warnings.WarningMessage]) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for w in caught:
        seen.setdefault((w.category.__name__, str(w.message)), None)
    return list(seen)


def _warn_groups(nc: Any) -> None:
    for g in nc.groups:
        warnings.warn(
            f"group '{g}' ignored: only the root group of a NetCDF file is ingested",
            GroupIgnoredWarning,
            stacklevel=3,
        )


def _file_nbytes(nc: Any) -> int:
    """Decoded size of a netCDF4.Dataset's root variables, estimated from their schemas."""
    total = 0
    for var in nc.variables.values():
        item = _OBJECT_ITEMSIZE if var.dtype is str else _itemsize(var.dtype)
        total += math.prod(var.shape) * item
    return total


def _read_whole(var: Any) -> Any:
    """All of a netCDF4 variable, raw (auto-masking and char conversion are off).

    ``Variable._get`` is what ``var[...]`` calls once it has turned the key into
    start/count/stride; calling it directly skips that Python-level work, which
    is most of the cost of reading a small variable. Falls back to ``var[...]``.
    """
    shape = var.shape
    if shape and all(shape):
        try:
            return var._get([0] * len(shape), list(shape), [1] * len(shape))
        except (AttributeError, TypeError):
            pass
    return var[...]


def _decode_in_memory(path: str, max_inline_bytes: int) -> xr.Dataset | None:
    """Read a whole file and CF-decode it in memory; None when it is too large for that.

    This gives what ``xr.open_dataset(path).load()`` gives: the same decoding
    (``xarray.conventions.decode_cf_variables``) and the same assembly as xarray's
    store backend, minus the lazy per-variable indexing machinery, which costs more
    than the reads themselves for files of many small variables.
    """
    import netCDF4
    import numpy as np
    import xarray as xr
    from xarray.conventions import decode_cf_variables

    with netCDF4.Dataset(path, "r") as nc:
        _warn_groups(nc)
        if _file_nbytes(nc) > max_inline_bytes:
            return None
        nc.set_auto_maskandscale(False)
        nc.set_auto_chartostring(False)
        variables = {}
        for name, var in nc.variables.items():
            attrs = {k: var.getncattr(k) for k in var.ncattrs()}
            attrs.pop("least_significant_digit", None)
            data = np.asarray(_read_whole(var), dtype=object if var.dtype is str else None)
            if data.dtype.kind == "S" and "_FillValue" in attrs:
                attrs["_FillValue"] = np.bytes_(attrs["_FillValue"])
            encoding = {"dtype": var.dtype, "source": path, "original_shape": data.shape}
            variables[name] = xr.Variable(var.dimensions, data, attrs, encoding)
        file_attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
    decoded, ds_attrs, coord_names = decode_cf_variables(variables, file_attrs)
    ds = xr.Dataset(decoded, attrs=ds_attrs).set_coords(coord_names.intersection(decoded))
    return ds.load()


def read_netcdf(path: str, max_inline_bytes: int = MAX_INLINE_BYTES) -> _Decoded:
    """Decode one file into memory, or say it is too big to send whole (runs in workers).

    Never raises for a bad file: the error comes back as text, since not every
    exception from the NetCDF library can be pickled.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = _decode_in_memory(path, max_inline_bytes)
            if ds is None:
                return _Decoded(stream=True, warnings=_record(caught))
            return _Decoded(dataset=ds, warnings=_record(caught))
        except Exception as exc:  # reported per file, the ingest decides what to do
            return _Decoded(error=_describe_error(exc), warnings=_record(caught))


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


# ---------------------------------------------------------------------------- the ingest


def _default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _dir_bytes(location: str) -> int | None:
    """Bytes of the files under a local store directory (None for remote stores)."""
    if "://" in location or not os.path.isdir(location):
        return None
    total = 0
    for dirpath, _, filenames in os.walk(location):
        for fn in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, fn)).st_size
            except OSError:
                pass
    return total


class _Readers:
    """Decodes files ahead of the writer, in order, with a bounded number in flight."""

    def __init__(self, files: Sequence[SourceFile], jobs: int, max_inline: int) -> None:
        self._files = files
        self._jobs = jobs
        self._max_inline = max_inline
        self._window = 2 * jobs
        self._pool: ProcessPoolExecutor | None = None
        self._pending: deque[tuple[SourceFile, Future[_Decoded]]] = deque()
        self._next = 0

    def _start_pool(self) -> ProcessPoolExecutor:
        return worker_pool(self._jobs)

    def _fill(self) -> None:
        assert self._pool is not None
        while len(self._pending) < self._window and self._next < len(self._files):
            src = self._files[self._next]
            self._next += 1
            self._pending.append((src, self._pool.submit(read_netcdf, str(src.path), self._max_inline)))

    def __iter__(self) -> Iterator[tuple[SourceFile, _Decoded]]:
        if self._jobs <= 1:
            for src in self._files:
                yield src, read_netcdf(str(src.path), self._max_inline)
            return
        self._pool = self._start_pool()
        try:
            while True:
                self._fill()
                if not self._pending:
                    return
                src, fut = self._pending.popleft()
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    result = self._after_crash(src)
                yield src, result
        finally:
            self.close()

    def _after_crash(self, src: SourceFile) -> _Decoded:
        """A reader died (the NetCDF library crashed): find out whether on this file."""
        assert self._pool is not None
        retry = [s for s, _ in self._pending]
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = self._start_pool()
        try:
            result = self._pool.submit(read_netcdf, str(src.path), self._max_inline).result()
        except BrokenProcessPool:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = self._start_pool()
            result = _Decoded(error="the NetCDF library crashed while reading this file")
        for s in retry:
            self._pending.append((s, self._pool.submit(read_netcdf, str(s.path), self._max_inline)))
        return result

    def close(self) -> None:
        """Stop the workers, dropping decoded files nobody will write."""
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class _UnreadableFile(Exception):
    """A file the writer could not open for streaming (a per-file failure)."""


# Failures of the store, never of the file being added. Everything the store's storage
# raises on failing comes as StorageError (see _prepare_store); CorruptionError is
# about bytes already in the store.
_STORE_FAILURES = (StorageError, CorruptionError)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()).rstrip(".")
    return text or type(exc).__name__


def _add_dataset(store: Atlas, src: SourceFile, decoded: _Decoded, chunk_size: int) -> list[tuple[str, str]]:
    """Write one decoded (or to-be-streamed) file as a dataset; return the warnings raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if decoded.dataset is not None:
            add_xarray_dataset(store, decoded.dataset, src.name)
        else:
            try:
                ds = open_netcdf(src.path, chunk_bytes=chunk_size)
            except Exception as exc:
                raise _UnreadableFile(_describe_error(exc)) from exc
            try:
                add_xarray_dataset(store, ds, src.name)
            finally:
                ds.close()
    return _record(caught)


def _holds_only_store_files(path: str) -> bool:
    """Whether the directory ``path`` holds nothing but files Atlas writes, where it writes
    them: what a create that was interrupted leaves (``atlas.json``, temporary files)."""
    from ..core.atlas import is_store_key
    from ..storage.base import TEMP_PREFIX

    def own(entry: os.DirEntry[str], key: str) -> bool:
        return entry.is_file(follow_symlinks=False) and (
            entry.name.startswith(TEMP_PREFIX) or is_store_key(key)
        )

    with os.scandir(path) as top:
        for entry in top:
            if entry.is_dir(follow_symlinks=False) and entry.name in _STORE_DIRS:
                with os.scandir(entry.path) as inner:
                    if not all(own(e, f"{entry.name}/{e.name}") for e in inner):
                        return False
            elif not own(entry, entry.name):
                return False
    return True


def _prepare_store(
    path: str, codec: str | None, meta: tuple[str, str], report: IngestReport
) -> tuple[Atlas, Callable[[], None]]:
    """Open the store, or create it; return it with the clean-up to run if the ingest fails.

    The store's storage reports its failures as ``StorageError``, so that they are told
    apart from the failures of input files. A store whose create was interrupted is
    created again.
    """
    from ..core.atlas import Store as Atlas
    from ..errors import CorruptionError, StoreNotFoundError
    from ..format import manifest as mf
    from ..storage import open_storage
    from ..storage.wrappers import ReportingStorage

    storage = ReportingStorage(open_storage(path))
    try:
        store = Atlas.open(storage)
    except StoreNotFoundError:
        store = None
    except CorruptionError:
        # a torn atlas.json is what a create interrupted on a file system without hard
        # links may leave; with a committed version, the store is damaged
        if any(mf.parse_manifest_key(k) is not None for k in storage.list(mf.MANIFEST_PREFIX)):
            raise
        store = None
    if store is not None:
        current = getattr(store, "codec", None) or getattr(store, "_codec", None)
        if codec is not None and current is not None and codec.lower() != str(current).lower():
            raise IngestError(
                f"the store {path} already uses codec {current!r}; --codec only applies to new stores"
            )
        report.store_bytes_before = _dir_bytes(store.location)
        return store, lambda: None
    local = "://" not in path
    existed = local and os.path.exists(path)
    if existed and (not os.path.isdir(path) or not _holds_only_store_files(path)):
        raise IngestError(f"{path} exists and is not an Atlas store; give a new or empty directory")
    try:
        store = Atlas.create(
            ReportingStorage(open_storage(path, create=True)),
            codec=codec or "zstd",
            meta_format=meta[0],
            meta_compression=meta[1],
        )
    except FileExistsError as e:  # objects Atlas did not write, or another ingest won the race
        raise IngestError(f"cannot create a store at {path}: {e}") from None
    report.created = True
    report.store_bytes_before = 0

    def remove_new_store() -> None:
        if not local:
            return
        if existed:  # an empty directory, or what an interrupted create left: empty it
            for entry in os.scandir(path):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
        else:
            shutil.rmtree(path, ignore_errors=True)

    return store, remove_new_store


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


def ingest_directory(
    source: str | os.PathLike[str],
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
) -> IngestReport:
    """Ingest every NetCDF file under ``source`` into the store at ``store_path``.

    The store is created when missing, with ``codec`` (default zstd) for data and
    compact metadata (msgpack, zstd-compressed: per-file attributes make up most of
    the metadata of a NetCDF collection, and JSON would be ten times the data). Each file
    becomes one dataset named by :func:`dataset_name`. A name already in the store
    is an error, unless ``update`` is true: then such files are left alone and only
    the new ones are added. ``jobs`` worker processes decode files (default: one
    per core; ``1`` decodes in this process). Files whose decoded size exceeds
    ``max_inline_bytes`` (default: a quarter of ``chunk_size``, at most 32 MiB) are
    streamed in dask blocks of about ``chunk_size`` bytes, which also become their
    chunks in the store.

    All-or-nothing unless ``skip_errors``: on the first failing file nothing is
    committed, a store created by this call is removed, and :class:`IngestError`
    says which file failed and why. Failures of the store itself (a full disk, a
    bucket refusing writes, a service still failing after its retries) always stop
    the ingest with an :class:`IngestError` naming the store, and never count as a
    failing file. A store whose create was interrupted (a directory holding only
    ``atlas.json`` or temporary files, say) is created again.

    Workers are started with multiprocessing's ``forkserver`` method, so a script
    calling this with ``jobs > 1`` needs the usual ``if __name__ == "__main__":``
    guard.
    """
    t0 = time.perf_counter()
    src_root = Path(source)
    store_loc = os.fspath(store_path)
    report = IngestReport(source=str(src_root), store=store_loc)
    if not src_root.is_dir():
        raise IngestError(f"{src_root} is not a directory")
    if chunk_size < 1:
        raise IngestError("the chunk size must be at least 1 byte")
    jobs = _default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise IngestError("--jobs must be at least 1")
    max_inline = max_inline_bytes if max_inline_bytes is not None else min(MAX_INLINE_BYTES, chunk_size // 4)
    files = find_netcdf_files(src_root)
    report.files_found = len(files)
    if not files:
        raise IngestError(
            f"found no NetCDF files ({', '.join(NETCDF_SUFFIXES)}) under {src_root}"
        )
    files = _check_names(files, skip_errors, report)

    store, cleanup = _prepare_store(store_loc, codec, (meta_format, meta_compression), report)
    report.store = store.location
    committed = False
    try:
        present = [s for s in files if store.dataset_exists(s.name)]
        if present and not update:
            raise IngestError(
                f"{len(present)} of the {len(files)} files are already in the store "
                f"(e.g. {present[0].relpath} as {present[0].name!r}); "
                "pass --update to add only the new files"
            )
        report.files_present = len(present)
        todo = [s for s in files if not store.dataset_exists(s.name)]
        # writing ahead costs a few times the buffer while statistics are taken: keep it small
        store.buffer_bytes = min(store.buffer_bytes, max(MIN_INGEST_BUFFER_BYTES, chunk_size // 2))
        if progress is not None:
            progress.start(len(todo), sum(s.size for s in todo))
        use_workers = jobs > 1 and len(todo) >= MIN_FILES_FOR_WORKERS
        readers = _Readers(todo, jobs if use_workers else 1, max_inline)
        try:
            for src, decoded in readers:
                report.warnings.extend(WarningRecord(src.relpath, c, m) for c, m in decoded.warnings)
                error = decoded.error
                if error is None:
                    try:
                        raised = _add_dataset(store, src, decoded, chunk_size)
                        report.warnings.extend(WarningRecord(src.relpath, c, m) for c, m in raised)
                    except MemoryError:
                        raise
                    except _UnreadableFile as exc:
                        error = str(exc)
                    except _STORE_FAILURES as exc:  # the store's disk or bucket, not this file: stop
                        raise IngestError(
                            f"{_one_line(exc)}; stopped while adding {src.relpath} (not that file's fault); "
                            "nothing was committed"
                        ) from exc
                    except Exception as exc:  # data this file holds that cannot be stored
                        error = _describe_error(exc, reading=False)
                        if store.dataset_exists(src.name):
                            store.delete_dataset(src.name)  # never keep half a file
                decoded.dataset = None
                if error is not None:
                    if not skip_errors:
                        raise IngestError(
                            f"{src.relpath}: {error}. Nothing was committed"
                            + ("" if report.created else "; the store is unchanged")
                            + " (pass --skip-errors to skip failing files)"
                        )
                    report.skipped.append((src.relpath, error))
                else:
                    report.added.append(src.name)
                    report.bytes_in += src.size
                if progress is not None:
                    progress.advance(1, src.size)
        finally:
            readers.close()
        if progress is not None:
            progress.stage("committing")
        try:
            store.flush()
        except StorageError as exc:
            raise IngestError(f"{_one_line(exc)}; stopped while committing the ingest") from exc
        committed = True
    finally:
        if progress is not None:
            progress.close()
        if not committed:
            cleanup()
    report.version = store.version
    report.store_bytes_after = _dir_bytes(store.location)
    report.seconds = time.perf_counter() - t0
    return report


# ---------------------------------------------------------------------------- synthetic profiles


def write_synthetic_profiles(
    directory: str | os.PathLike[str],
    count: int,
    *,
    seed: int = 0,
    floats: int = 20,
    start: int = 0,
) -> list[Path]:
    """Write ``count`` small CF-style ocean profile files under ``directory``.

    Files are laid out like Argo's ``FLOAT/profiles/FLOAT_CYCLE.nc``, with ragged
    lengths (20 to 500 levels), NaN gaps in temperature and salinity stored under a
    ``_FillValue``, a CF time coordinate, a string variable (the platform id) and a
    character array (the data mode). ``start`` numbers the first profile, so a
    folder can be grown by a second call.
    """
    import netCDF4
    import numpy as np

    root = Path(directory)
    paths: list[Path] = []
    for i in range(start, start + count):
        rng = np.random.default_rng([seed, i])
        float_id = 5900000 + i % max(1, floats)
        cycle = i // max(1, floats) + 1
        folder = root / str(float_id) / "profiles"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{float_id}_{cycle:03d}.nc"
        n = int(rng.integers(20, 501))
        pres = np.sort(rng.uniform(0.0, 2000.0, n)).astype(np.float32)
        lat = float(rng.uniform(-60.0, 60.0))
        temp = (28.0 * np.exp(-pres / 700.0) + 2.0 - abs(lat) / 20.0 + rng.normal(0.0, 0.2, n)).astype(np.float32)
        psal = (34.0 + 1.5 * np.exp(-pres / 400.0) + rng.normal(0.0, 0.05, n)).astype(np.float32)
        gaps = rng.random(n) < 0.03
        temp[gaps] = np.nan
        psal[rng.random(n) < 0.03] = np.nan
        with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as nc:
            nc.title = "Synthetic ocean profile"
            nc.institution = "atlas demo"
            nc.Conventions = "CF-1.10"
            nc.featureType = "profile"
            nc.platform_number = np.int32(float_id)
            nc.cycle_number = np.int32(cycle)
            nc.createDimension("time", 1)
            nc.createDimension("level", n)
            nc.createDimension("string1", 1)
            t = nc.createVariable("time", "f8", ("time",))
            t.standard_name = "time"
            t.units = "days since 1950-01-01 00:00:00"
            t.calendar = "standard"
            t[:] = [25000.0 + 10.0 * cycle + float(rng.uniform(0.0, 1.0))]
            for vname, units, std, value in (
                ("latitude", "degrees_north", "latitude", lat),
                ("longitude", "degrees_east", "longitude", float(rng.uniform(-180.0, 180.0))),
            ):
                v = nc.createVariable(vname, "f8", ("time",))
                v.units = units
                v.standard_name = std
                v[:] = [value]
            for vname, units, std, data in (
                ("pressure", "decibar", "sea_water_pressure", pres),
                ("temperature", "degree_Celsius", "sea_water_temperature", temp),
                ("salinity", "psu", "sea_water_salinity", psal),
            ):
                v = nc.createVariable(vname, "f4", ("time", "level"), fill_value=np.float32(99999.0))
                v.units = units
                v.standard_name = std
                v.coordinates = "time latitude longitude"
                v[:] = np.ma.masked_invalid(data[None, :])
            nc.createDimension("string16", 16)
            pid = nc.createVariable("platform_id", "S1", ("time", "string16"))
            pid.long_name = "platform identifier"
            pid._Encoding = "utf-8"
            pid[:] = netCDF4.stringtochar(np.array([f"SYN{float_id}"], dtype="S16"))
            mode = nc.createVariable("data_mode", "S1", ("time", "string1"))
            mode.long_name = "R: real time, D: delayed mode"
            mode[:] = np.array([[b"D" if cycle % 3 else b"R"]], dtype="S1")
        paths.append(path)
    return paths
