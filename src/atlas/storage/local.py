"""A store in a directory of the local file system, with durable atomic writes."""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterable, Sequence
from typing import Any

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
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


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


def _read_into(fd: int, buf: memoryview, offset: int) -> int:
    """Fill ``buf`` from ``offset``; returns the bytes read (short at end of file)."""
    done = 0
    total = len(buf)
    while done < total:
        n = os.preadv(fd, [buf[done:]], offset + done)
        if n == 0:
            break
        done += n
    return done


class LocalStorage(Storage):
    """Objects are files under ``root``; writes go through a temporary file, fsync and rename.

    Temporary files are named ``.tmp-*`` in the target's directory so that a crash leaves
    only orphans a cleanup can recognise; :meth:`list` never returns them.
    """

    supports_conditional_put = True

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False) -> None:
        root = os.fspath(path)
        if not isinstance(root, str):
            raise TypeError("store path must be a str or os.PathLike, not bytes")
        self.root = os.path.abspath(root)
        self.location = self.root
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
        return os.path.join(self.root, *key.split("/"))

    def _missing(self, key: str) -> FileNotFoundError:
        return FileNotFoundError(errno.ENOENT, f"no object {key!r} in {self.location}")

    def _open(self, key: str) -> int:
        try:
            return os.open(self._path(key), os.O_RDONLY | _O_BINARY | _O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(key) from None
        except IsADirectoryError:  # Windows-style error for a directory
            raise self._missing(key) from None
        except PermissionError:
            if os.path.isdir(self._path(key)):
                raise self._missing(key) from None
            raise

    def _open_file(self, key: str) -> int:
        """Open ``key`` for reading, refusing directories (which are not objects)."""
        fd = self._open(key)
        try:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise self._missing(key)
        except BaseException:
            os.close(fd)
            raise
        return fd

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

    def get(self, key: str) -> bytes:
        """The whole file at ``key``."""
        fd = self._open_file(key)
        try:
            chunks = []
            while True:
                chunk = os.read(fd, 1 << 24)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(fd)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` (fewer at the end of the file)."""
        (start,), (length,) = check_ranges([start], [length])
        fd = self._open_file(key)
        try:
            if length == 0:
                return b""
            buf = bytearray(length)
            n = _read_into(fd, memoryview(buf), start)
        finally:
            os.close(fd)
        del buf[n:]
        return bytes(buf)

    def get_ranges(
        self, key: str, starts: Sequence[int], lengths: Sequence[int]
    ) -> list[bytes | memoryview]:
        """Coalesced spans are read with ``preadv`` into one buffer; ranges are views of it."""
        return self.get_many_ranges([(key, starts, lengths)])[0]

    def get_many_ranges(
        self, requests: Sequence[tuple[str, Sequence[int], Sequence[int]]]
    ) -> list[list[bytes | memoryview]]:
        """All spans of all requested files are read concurrently on the I/O pool."""
        plans = []
        tasks: list[tuple[int, memoryview, int]] = []
        fds: list[int] = []
        try:
            for key, starts, lengths in requests:
                s, n = check_ranges(starts, lengths)
                fd = self._open_file(key)
                fds.append(fd)
                spans = coalesce_ranges(s, n, self.coalesce_gap)
                buf = memoryview(bytearray(sum(b - a for a, b, _ in spans)))
                first = len(tasks)
                pos = 0
                for a, b, _ in spans:
                    tasks.append((fd, buf[pos : pos + b - a], a))
                    pos += b - a
                plans.append((s, n, spans, buf, first))
            got = run_concurrently(lambda t: _read_into(t[0], t[1], t[2]), tasks)
        finally:
            for fd in fds:
                os.close(fd)
        empty = memoryview(b"")
        results: list[list[bytes | memoryview]] = []
        for s, n, spans, buf, first in plans:
            out: list[bytes | memoryview] = [empty] * len(s)
            pos = 0
            for j, (a, b, members) in enumerate(spans):
                end = pos + got[first + j]  # bytes actually read in this span
                for i in members:
                    lo = pos + s[i] - a
                    out[i] = buf[lo : max(lo, min(lo + n[i], end))]
                pos += b - a
            results.append(out)
        return results

    def exists(self, key: str) -> bool:
        """Whether a file (not a directory) is stored at ``key``."""
        return os.path.isfile(self._path(key))

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
        check_prefix(prefix)
        head, _, partial = prefix.rpartition("/")
        top = os.path.join(self.root, *head.split("/")) if head else self.root
        base = head + "/" if head else ""
        keys: list[str] = []
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
                    keys.append(rel + name)
            first = False
        keys.sort()
        return keys

    # ----------------------------------------------------------------- writing

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
        """Hard-link a complete, fsynced temp file to ``key``; the link fails if it exists."""
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

    def delete_many(self, keys: Iterable[str]) -> None:
        """Unlink every file in ``keys`` and fsync the directories touched."""
        touched = set()
        for key in list(keys):
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


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
