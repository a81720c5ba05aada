"""A store in a directory of the local file system, with durable atomic writes."""

from __future__ import annotations

import builtins
import errno
import functools
import mmap
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar, cast

from ..errors import CorruptionError
from .base import (
    TEMP_PREFIX,
    BytesLike,
    Storage,
    check_key,
    check_prefix,
    check_ranges,
    coalesce_ranges,
    run_concurrently,
)

__all__ = ["LocalStorage"]

_LINK_UNSUPPORTED = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV}
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# Files a get_many_ranges call keeps open at once.
_OPEN_BATCH = 256
# Reads totalling less than this are done in the calling thread (page-cache hits cost
# less than a thread hand-off).
_INLINE_BYTES = 256 << 10
# Most pool tasks one batch of reads is split into.
_MAX_CHUNKS = 32
# Spans at least this long are mapped rather than copied when the caller drops them soon
# (see _mapped); POSIX only: on Windows a mapped file cannot be deleted or replaced while the
# mapping lives. A mapping holds a file descriptor of its own while it lives (Python < 3.13),
# so one read maps at most _MAPPED_SPANS spans and reads the others.
_MAP_BYTES = 64 << 10 if os.name == "posix" else -1
_MAPPED_SPANS = 64
# Errors a file system may report for a moment and not again (a network or FUSE file
# system that is busy or timed out, an interrupted call): such an operation is redone.
_TRANSIENT = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR, errno.EBUSY, errno.ETIMEDOUT})
#: Pauses (seconds) before each retry of an operation that failed with a transient
#: error; when the last retry fails too, its error is raised.
RETRY_PAUSES: tuple[float, ...] = (0.01, 0.04, 0.15, 0.5)

_F = TypeVar("_F", bound=Callable[..., Any])


def _retrying(method: _F) -> _F:
    """``method`` run again after a transient error, once after each of ``RETRY_PAUSES``
    (its arguments must not be iterators, which the first attempt would use up)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        pauses = iter(RETRY_PAUSES)
        while True:
            try:
                return method(*args, **kwargs)
            except OSError as e:
                pause = next(pauses, None) if e.errno in _TRANSIENT else None
                if pause is None:
                    raise
            time.sleep(pause)

    return cast(_F, wrapper)


def _fsync_dir(path: str) -> None:
    """Make a directory's entries (new, renamed or removed files) durable."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
    except OSError:  # e.g. Windows cannot open directories; nothing more can be done
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def _write_all(fd: int, data: BytesLike) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _pread(fd: int, length: int, offset: int) -> bytes:
    """``length`` bytes at ``offset`` (fewer only at the end of the file)."""
    data = os.pread(fd, length, offset)
    if len(data) in (0, length):
        return data
    parts = [data]
    got = len(data)
    while got < length:  # a short read before the end of the file
        data = os.pread(fd, length - got, offset + got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def _mapped(fd: int, length: int, offset: int) -> bytes | memoryview:
    """``length`` bytes at ``offset`` (fewer at the end of the file) as a read-only view of
    the file's pages in the system's cache, mapped into memory, for a caller that drops it
    soon (a mapping holds a file descriptor while it lives).

    A copy would need as much fresh memory, which the system zeroes page by page before
    the copy fills it: at a million datasets, about 10,000 of a stacked scan's page faults.
    Store files are never changed in place (they are written whole and renamed,
    and removed by unlinking), so a mapping always sees the bytes the file was written
    with. Where the file system cannot map files, the span is read."""
    try:
        size = os.fstat(fd).st_size
        if offset >= size:
            return b""
        start = offset - offset % mmap.ALLOCATIONGRANULARITY
        end = min(size, offset + length)
        pages = mmap.mmap(fd, end - start, access=mmap.ACCESS_READ, offset=start)
    except (OSError, ValueError):  # not a regular file, or a file system without mmap
        return _pread(fd, length, offset)
    return memoryview(pages)[offset - start :]


def _span(task: tuple[int, int, int, bool]) -> bytes | memoryview:
    fd, n, off, mapped = task
    return _mapped(fd, n, off) if mapped else _pread(fd, n, off)


def _to_map(tasks: Sequence[tuple[int, int, int]], limit: int) -> set[int]:
    """Which of the (fd, length, offset) spans to map: the longest ones of at least
    ``_MAP_BYTES``, at most ``limit`` of them."""
    if limit <= 0 or _MAP_BYTES < 0:
        return set()
    long_spans = [i for i, t in enumerate(tasks) if t[1] >= _MAP_BYTES]
    long_spans.sort(key=lambda i: -tasks[i][1])
    return set(long_spans[:limit])


def _read_all(tasks: Sequence[tuple[int, int, int]], mapped: set[int]) -> list[bytes | memoryview]:
    """Every (fd, length, offset) read, those at ``mapped`` mapped: small jobs inline, big
    ones on the I/O pool in at most ``_MAX_CHUNKS`` chunks (thousands of tiny spans must not
    become thousands of thread hand-offs)."""
    spans = [(fd, n, off, i in mapped) for i, (fd, n, off) in enumerate(tasks)]
    if len(tasks) <= 1 or sum(t[1] for t in tasks) < _INLINE_BYTES:
        return [_span(t) for t in spans]
    k = min(len(tasks), _MAX_CHUNKS)
    chunks = [spans[i::k] for i in range(k)]
    done = run_concurrently(lambda c: [_span(t) for t in c], chunks)
    got: list[bytes | memoryview] = [b""] * len(tasks)
    for i, part in enumerate(done):
        got[i::k] = part
    return got


class LocalStorage(Storage):
    """Objects are files under ``root``; writes go through a temporary file, fsync and rename.

    Temporary files are named ``.tmp-*`` in the target's directory so that a crash leaves
    only orphans a cleanup can recognise; :meth:`list` never returns them. Operations
    failing with a transient error (``EAGAIN``, ``EINTR``, ``EBUSY``, ``ETIMEDOUT``) are
    retried a few times (``RETRY_PAUSES``).
    """

    supports_conditional_put = True
    #: Local reads cost little per call, so only ranges less than 16 KiB apart share a
    #: read; bigger gaps are cheaper to skip than to read (object stores use 1 MiB).
    coalesce_gap = 16 << 10

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False) -> None:
        root = os.fspath(path)
        if not isinstance(root, str):
            raise TypeError("store path must be a str or os.PathLike, not bytes")
        self.root = os.path.abspath(root)
        self.location = self.root
        self._prefix = os.path.join(self.root, "")
        self.read_only = False
        if create:
            self._makedirs(self.root)
        elif os.path.exists(self.root) and not os.path.isdir(self.root):
            raise NotADirectoryError(f"store location {self.root} is not a directory")

    def __reduce__(self) -> tuple[Any, ...]:
        return (LocalStorage, (self.root,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalStorage) and other.root == self.root

    def __hash__(self) -> int:
        return hash((LocalStorage, self.root))

    # ----------------------------------------------------------------- helpers

    def _path(self, key: str) -> str:
        check_key(key)
        return self._prefix + (key if os.sep == "/" else key.replace("/", os.sep))

    def _missing(self, key: str) -> FileNotFoundError:
        return FileNotFoundError(errno.ENOENT, f"no object {key!r} in {self.location}")

    def _open(self, key: str) -> int:
        try:
            # O_NONBLOCK: a FIFO planted in the store must not block the open
            return os.open(self._path(key), os.O_RDONLY | _O_BINARY | _O_CLOEXEC | _O_NONBLOCK)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise self._missing(key) from None
        except PermissionError:  # Windows, for a directory
            if os.path.isdir(self._path(key)):
                raise self._missing(key) from None
            raise

    def _open_file(self, key: str) -> int:
        """Open ``key`` for reading, refusing directories (which are not objects)."""
        fd = self._open(key)
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise self._missing(key)
            if not stat.S_ISREG(mode):
                raise CorruptionError(f"{self._path(key)} is not a regular file (a device, FIFO or socket)")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _directory_read(self, keys: Iterable[str]) -> FileNotFoundError:
        """The error for a read that hit a directory (opening one for reading succeeds)."""
        for key in keys:
            if os.path.isdir(self._path(key)):
                return self._missing(key)
        return FileNotFoundError(errno.ENOENT, f"a key names a directory in {self.location}")

    def _makedirs(self, path: str) -> None:
        """Create ``path`` and missing parents, fsyncing each new entry's parent."""
        if os.path.isdir(path):
            return
        missing = []
        p = path
        while not os.path.isdir(p):
            missing.append(p)
            parent = os.path.dirname(p)
            if parent == p:
                break
            p = parent
        for d in reversed(missing):
            try:
                os.mkdir(d)
            except FileExistsError:
                if not os.path.isdir(d):
                    raise
                continue
            _fsync_dir(os.path.dirname(d))

    def _write_temp(self, directory: str, data: BytesLike) -> str:
        self._makedirs(directory)
        while True:
            tmp = os.path.join(directory, f"{TEMP_PREFIX}{secrets.token_hex(8)}")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY | _O_CLOEXEC, 0o666)
            except FileExistsError:
                continue
            break
        try:
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        return tmp

    # ----------------------------------------------------------------- reading

    @_retrying
    def get(self, key: str) -> bytes:
        """The whole file at ``key``."""
        fd = self._open_file(key)
        try:
            chunks = []
            want = os.fstat(fd).st_size + 1  # one read for the whole file (and seeing its end)
            while True:
                chunk = os.read(fd, want)
                if not chunk:
                    break
                chunks.append(chunk)
                want = 1 << 16  # the file grew (or a short read): go on in small steps
        except IsADirectoryError:
            raise self._missing(key) from None
        finally:
            os.close(fd)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @_retrying
    def get_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` (fewer at the end of the file)."""
        (start,), (length,) = check_ranges([start], [length])
        if length == 0:
            os.close(self._open_file(key))
            return b""
        fd = self._open_file(key)
        try:
            return _pread(fd, length, start)
        except IsADirectoryError:
            raise self._missing(key) from None
        finally:
            os.close(fd)

    def get_ranges(
        self, key: str, starts: Sequence[int], lengths: Sequence[int]
    ) -> list[bytes | memoryview]:
        """Each coalesced span is read with one ``pread``; ranges are views of its buffer."""
        s, n = check_ranges(starts, lengths)
        return self._read_batch([(key, s, n)])[0][0]

    def get_many_ranges(
        self, requests: Sequence[tuple[str, Sequence[int], Sequence[int]]]
    ) -> list[list[bytes | memoryview]]:
        """All spans of all requested files are read concurrently on the I/O pool.

        Files are opened at most ``_OPEN_BATCH`` at a time, so a wide scan cannot run
        out of file descriptors.
        """
        return self._read_many(requests, 0)

    def get_many_ranges_transient(
        self, requests: Sequence[tuple[str, Sequence[int], Sequence[int]]]
    ) -> list[list[bytes | memoryview]]:
        """:meth:`get_many_ranges`, with up to ``_MAPPED_SPANS`` spans of 64 KiB or more
        mapped into memory instead of copied (POSIX): views the caller must drop soon."""
        return self._read_many(requests, _MAPPED_SPANS)

    def _read_many(
        self, requests: Sequence[tuple[str, Sequence[int], Sequence[int]]], map_limit: int
    ) -> list[list[bytes | memoryview]]:
        reqs = [(k, *check_ranges(s, n)) for k, s, n in requests]
        for k, _, _ in reqs:
            check_key(k)
        results: list[list[bytes | memoryview]] = []
        for i in range(0, len(reqs), _OPEN_BATCH):
            got, used = self._read_batch(reqs[i : i + _OPEN_BATCH], map_limit)
            results.extend(got)
            map_limit -= used
        return results

    @_retrying
    def _read_batch(
        self, reqs: Sequence[tuple[str, list[int], list[int]]], map_limit: int = 0
    ) -> tuple[list[list[bytes | memoryview]], int]:
        plans = []
        tasks: list[tuple[int, int, int]] = []
        fds: list[int] = []
        try:
            for key, s, n in reqs:
                spans = coalesce_ranges(s, n, self.coalesce_gap)
                # With nothing to read, make sure the key is a file; otherwise reading
                # a directory fails below.
                fd = self._open_file(key)
                fds.append(fd)
                plans.append((s, n, spans, len(tasks)))
                tasks.extend((fd, b - a, a) for a, b, _ in spans)
            mapped = _to_map(tasks, map_limit)
            try:
                got = _read_all(tasks, mapped)
            except IsADirectoryError:
                raise self._directory_read(k for k, _, _ in reqs) from None
        finally:
            for fd in fds:
                os.close(fd)
        empty = memoryview(b"")
        results: list[list[bytes | memoryview]] = []
        for s, n, spans, first in plans:
            out: list[bytes | memoryview] = [empty] * len(s)
            for j, (a, _, members) in enumerate(spans):
                view = memoryview(got[first + j])  # may be short at the end of the file
                for i in members:
                    lo = s[i] - a
                    out[i] = view[lo : lo + n[i]]
            results.append(out)
        return results, len(mapped)

    def exists(self, key: str) -> bool:
        """Whether a file (not a directory) is stored at ``key``."""
        return os.path.isfile(self._path(key))

    @_retrying
    def size(self, key: str) -> int:
        """Size of the file at ``key``."""
        try:
            st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(key) from None
        if not stat.S_ISREG(st.st_mode):
            raise self._missing(key)
        return st.st_size

    def list(self, prefix: str = "") -> list[str]:
        """Keys of all files under the root starting with ``prefix``, skipping temp files."""
        return [k for k, _ in self._walk(prefix)]

    def list_details(self, prefix: str = "") -> builtins.list[tuple[str, int, float]]:
        """``(key, size, modified)`` of every file under ``prefix`` (one ``stat`` each)."""
        out = []
        for key, entry in self._walk(prefix):
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed meanwhile
            out.append((key, st.st_size, st.st_mtime))
        return out

    @_retrying
    def _walk(self, prefix: str) -> builtins.list[tuple[str, os.DirEntry[str]]]:
        """Sorted ``(key, directory entry)`` of the files under ``prefix``."""
        check_prefix(prefix)
        head, _, partial = prefix.rpartition("/")
        top = os.path.join(self.root, *head.split("/")) if head else self.root
        base = head + "/" if head else ""
        keys: builtins.list[tuple[str, os.DirEntry[str]]] = []
        stack: list[tuple[str, str]] = [(top, base)]
        first = True
        while stack:
            directory, rel = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except (FileNotFoundError, NotADirectoryError):
                first = False
                continue
            for entry in entries:
                name = entry.name
                if first and not name.startswith(partial):
                    continue
                if name.startswith(TEMP_PREFIX):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, f"{rel}{name}/"))
                elif entry.is_file():
                    keys.append((rel + name, entry))
            first = False
        keys.sort(key=lambda item: item[0])
        return keys

    # ----------------------------------------------------------------- writing

    @_retrying
    def put(self, key: str, data: BytesLike) -> None:
        """Write a temp file, fsync it, rename it over ``key`` and fsync the directory."""
        path = self._path(key)
        directory = os.path.dirname(path)
        tmp = self._write_temp(directory, data)
        try:
            os.replace(tmp, path)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        _fsync_dir(directory)

    def put_if_absent(self, key: str, data: BytesLike) -> bool:
        """Hard-link a complete, fsynced temp file to ``key``; the link fails if it exists.

        After a transient error the create is tried again; if that finds ``key`` taken by
        an object holding exactly ``data``, the failed attempt had created it after all.
        """
        pauses = iter(RETRY_PAUSES)
        retried = False
        while True:
            try:
                created = self._put_if_absent(key, data)
            except OSError as e:
                pause = next(pauses, None) if e.errno in _TRANSIENT else None
                if pause is None:
                    raise
                retried = True
                time.sleep(pause)
                continue
            if created or not retried:
                return created
            try:
                return self.get(key) == memoryview(data).cast("B")
            except FileNotFoundError:
                return False

    def _put_if_absent(self, key: str, data: BytesLike) -> bool:
        path = self._path(key)
        directory = os.path.dirname(path)
        tmp = self._write_temp(directory, data)
        try:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            except OSError as e:
                if e.errno not in _LINK_UNSUPPORTED:
                    raise
                return self._create_exclusive(path, data)
        finally:
            _unlink_quietly(tmp)
        _fsync_dir(directory)
        return True

    def _create_exclusive(self, path: str, data: BytesLike) -> bool:
        """Fallback for file systems without hard links: O_EXCL create, then write.

        Creation is still exclusive, but a reader may briefly see a partial file.
        """
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY | _O_CLOEXEC, 0o666)
        except FileExistsError:
            return False
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(os.path.dirname(path))
        return True

    def delete(self, key: str) -> None:
        """Unlink the file at ``key`` if there is one."""
        self.delete_many([key])

    def mark_changed(self) -> None:
        """Touch the store directory: xarray and dask name lazily opened data by its mtime."""
        try:
            os.utime(self.root)
        except OSError:
            pass

    def remove_temp_files(self, older_than: float | None = None) -> int:
        """Delete temporary files left by writers that died mid-write; return how many.

        With ``older_than`` (seconds since the epoch), only files last written before then:
        younger ones may belong to a write still in progress."""
        return _remove_temp_files(self.root, older_than) if os.path.isdir(self.root) else 0

    def delete_many(self, keys: Iterable[str]) -> None:
        """Unlink every file in ``keys`` and fsync the directories touched."""
        self._delete_all(list(keys))

    @_retrying
    def _delete_all(self, keys: Sequence[str]) -> None:
        touched = set()
        for key in keys:
            path = self._path(key)
            try:
                os.unlink(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except (IsADirectoryError, PermissionError):
                if os.path.isdir(path):
                    continue
                raise
            touched.add(os.path.dirname(path))
        for directory in touched:
            _fsync_dir(directory)


def _remove_temp_files(root: str, older_than: float | None) -> int:
    removed = 0
    for directory, _dirs, files in os.walk(root):
        for name in files:
            if name.startswith(".tmp-"):
                path = os.path.join(directory, name)
                if older_than is not None:
                    try:
                        if os.stat(path).st_mtime >= older_than:
                            continue
                    except FileNotFoundError:
                        continue
                _unlink_quietly(path)
                removed += 1
    return removed


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
