"""Stores wrapping another store: request counting and faults (for tests and diagnostics),
and store failures reported as one error type."""

from __future__ import annotations

import builtins
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from ..errors import ReadOnlyError, StorageError
from .base import BytesLike, Storage, check_key

__all__ = ["CountingStorage", "FaultyStorage", "ReportingStorage", "WrappedStorage"]

_T = TypeVar("_T")


class WrappedStorage(Storage):
    """Delegates every operation to ``inner``; subclasses hook the ones they need."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.location = inner.location
        self.read_only = inner.read_only
        self.supports_conditional_put = inner.supports_conditional_put
        self.coalesce_gap = inner.coalesce_gap
        self.scan_batch_bytes = inner.scan_batch_bytes

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_lock", None)  # locks do not pickle; a fresh one is made on load
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes:
        """Delegated."""
        return self.inner.get(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Delegated."""
        return self.inner.get_range(key, start, length)

    def get_ranges(
        self, key: str, starts: Sequence[int], lengths: Sequence[int]
    ) -> list[bytes | memoryview]:
        """Delegated."""
        return self.inner.get_ranges(key, starts, lengths)

    def get_many_ranges(
        self, requests: Sequence[tuple[str, Sequence[int], Sequence[int]]]
    ) -> list[list[bytes | memoryview]]:
        """Delegated (so the inner store's concurrency is kept)."""
        return self.inner.get_many_ranges(requests)

    def exists(self, key: str) -> bool:
        """Delegated."""
        return self.inner.exists(key)

    def size(self, key: str) -> int:
        """Delegated."""
        return self.inner.size(key)

    def list(self, prefix: str = "") -> list[str]:
        """Delegated."""
        return self.inner.list(prefix)

    def list_details(self, prefix: str = "") -> builtins.list[tuple[str, int, float]]:
        """Delegated."""
        return self.inner.list_details(prefix)

    def put(self, key: str, data: BytesLike) -> None:
        """Delegated."""
        self.inner.put(key, data)

    def put_if_absent(self, key: str, data: BytesLike) -> bool:
        """Delegated."""
        return self.inner.put_if_absent(key, data)

    def delete(self, key: str) -> None:
        """Delegated."""
        self.inner.delete(key)

    def delete_many(self, keys: Iterable[str]) -> None:
        """Delegated."""
        self.inner.delete_many(keys)

    def mark_changed(self) -> None:
        """Delegated."""
        self.inner.mark_changed()

    def remove_temp_files(self, older_than: float | None = None) -> int:
        """Delegated."""
        return self.inner.remove_temp_files(older_than)

    def range_requests(self, starts: Sequence[int], lengths: Sequence[int]) -> int:
        """Delegated."""
        return self.inner.range_requests(starts, lengths)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"


class CountingStorage(WrappedStorage):
    """Counts the requests made through it, by operation name, in :attr:`counts`.

    Every call counts one under its own name, except ranged reads: ``get_ranges`` and
    ``get_many_ranges`` add to ``counts["get_ranges"]`` the number of reads the inner
    store issues after coalescing (one per span for local files and object stores, one
    per object for memory), and ``get_many_ranges`` adds one to
    ``counts["get_many_ranges"]`` per batch. :attr:`requests` is the total of reads and
    writes (batches excluded). A pickled copy carries the counts at pickling time and
    counts on its own from then on.
    """

    def __init__(self, inner: Storage) -> None:
        super().__init__(inner)
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, op: str, n: int = 1) -> None:
        with self._lock:
            self.counts[op] += n

    def reset(self) -> None:
        """Set all counts back to zero."""
        with self._lock:
            self.counts.clear()

    @property
    def requests(self) -> int:
        """Total requests counted (``get_many_ranges`` batches not counted twice)."""
        with self._lock:
            return sum(v for k, v in self.counts.items() if k != "get_many_ranges")

    def get(self, key: str) -> bytes:
        """Counted as ``get``."""
        self._count("get")
        return self.inner.get(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Counted as ``get_range``."""
        self._count("get_range")
        return self.inner.get_range(key, start, length)

    def get_ranges(
        self, key: str, starts: Sequence[int], lengths: Sequence[int]
    ) -> list[bytes | memoryview]:
        """Counted as the number of coalesced reads (at least one per call)."""
        self._count("get_ranges", max(1, self.inner.range_requests(starts, lengths)))
        return self.inner.get_ranges(key, starts, lengths)

    def get_many_ranges(
        self, requests: Sequence[tuple[str, Sequence[int], Sequence[int]]]
    ) -> list[list[bytes | memoryview]]:
        """One ``get_many_ranges`` per batch plus the reads of each object in ``get_ranges``."""
        reqs = list(requests)
        n = sum(max(1, self.inner.range_requests(s, ln)) for _, s, ln in reqs)
        self._count("get_many_ranges")
        self._count("get_ranges", n)
        return self.inner.get_many_ranges(reqs)

    def exists(self, key: str) -> bool:
        """Counted as ``exists``."""
        self._count("exists")
        return self.inner.exists(key)

    def size(self, key: str) -> int:
        """Counted as ``size``."""
        self._count("size")
        return self.inner.size(key)

    def list(self, prefix: str = "") -> list[str]:
        """Counted as ``list``."""
        self._count("list")
        return self.inner.list(prefix)

    def list_details(self, prefix: str = "") -> builtins.list[tuple[str, int, float]]:
        """Counted as ``list``."""
        self._count("list")
        return self.inner.list_details(prefix)

    def put(self, key: str, data: BytesLike) -> None:
        """Counted as ``put``."""
        self._count("put")
        self.inner.put(key, data)

    def put_if_absent(self, key: str, data: BytesLike) -> bool:
        """Counted as ``put_if_absent``."""
        self._count("put_if_absent")
        return self.inner.put_if_absent(key, data)

    def delete(self, key: str) -> None:
        """Counted as ``delete``."""
        self._count("delete")
        self.inner.delete(key)

    def delete_many(self, keys: Iterable[str]) -> None:
        """Counted as one ``delete_many``."""
        self._count("delete_many")
        self.inner.delete_many(keys)


class FaultyStorage(WrappedStorage):
    """Injects failures into the mutating operations of ``inner``.

    Mutations (``put``, ``put_if_absent``, ``delete``, ``delete_many``) on keys starting
    with ``match`` are numbered from 1; the ``fail_at``-th raises
    ``OSError("injected fault")`` without touching the store, or, with ``torn=True`` and
    a write, first leaves the first ``torn_fraction`` of the data at the key (as a crash
    in the middle of a non-atomic write would). With ``repeat=True`` every later mutation
    fails too. :meth:`arm` re-arms it; :attr:`mutations` is the number seen so far.
    ``flip_bit`` and ``truncate`` damage stored objects for corruption tests. Pickles
    with its counter (a copy on a worker counts separately).
    """

    def __init__(
        self,
        inner: Storage,
        fail_at: int | None = None,
        *,
        torn: bool = False,
        torn_fraction: float = 0.5,
        repeat: bool = False,
        match: str = "",
    ) -> None:
        super().__init__(inner)
        self.fail_at = fail_at
        self.torn = torn
        self.torn_fraction = torn_fraction
        self.repeat = repeat
        self.match = match
        self.mutations = 0
        self.faults = 0
        self._lock = threading.Lock()

    def arm(self, fail_at: int | None, *, torn: bool | None = None, repeat: bool | None = None) -> None:
        """Fail the ``fail_at``-th mutation from now (None disarms)."""
        with self._lock:
            self.mutations = 0
            self.fail_at = fail_at
            if torn is not None:
                self.torn = torn
            if repeat is not None:
                self.repeat = repeat

    def _should_fail(self, keys: Sequence[str]) -> bool:
        if not any(k.startswith(self.match) for k in keys):
            return False
        with self._lock:
            self.mutations += 1
            if self.fail_at is None:
                return False
            hit = self.mutations == self.fail_at or (self.repeat and self.mutations >= self.fail_at)
            if hit:
                self.faults += 1
            return hit

    def _torn_write(self, key: str, data: BytesLike, only_if_absent: bool) -> None:
        if self.torn:
            view = memoryview(data).cast("B")
            part = bytes(view[: int(len(view) * self.torn_fraction)])
            if only_if_absent:
                self.inner.put_if_absent(key, part)
            else:
                self.inner.put(key, part)
        raise OSError("injected fault")

    def put(self, key: str, data: BytesLike) -> None:
        """May fail (and tear) as configured."""
        check_key(key)
        if self._should_fail([key]):
            self._torn_write(key, data, only_if_absent=False)
        self.inner.put(key, data)

    def put_if_absent(self, key: str, data: BytesLike) -> bool:
        """May fail (and tear, if the key is absent) as configured."""
        check_key(key)
        if self._should_fail([key]):
            self._torn_write(key, data, only_if_absent=True)
        return self.inner.put_if_absent(key, data)

    def delete(self, key: str) -> None:
        """May fail as configured (then nothing is deleted)."""
        check_key(key)
        if self._should_fail([key]):
            raise OSError("injected fault")
        self.inner.delete(key)

    def delete_many(self, keys: Iterable[str]) -> None:
        """May fail as configured (then nothing is deleted)."""
        ks = [check_key(k) for k in keys]
        if ks and self._should_fail(ks):
            raise OSError("injected fault")
        self.inner.delete_many(ks)

    def flip_bit(self, key: str, bit: int | None = None) -> None:
        """Invert one bit of the object at ``key`` (default: the lowest bit of its middle byte)."""
        data = bytearray(self.inner.get(key))
        if not data:
            raise ValueError(f"cannot flip a bit of the empty object {key!r}")
        if bit is None:
            bit = (len(data) // 2) * 8
        if not 0 <= bit < len(data) * 8:
            raise ValueError(f"bit {bit} is outside the {len(data)}-byte object {key!r}")
        data[bit // 8] ^= 1 << (bit % 8)
        self.inner.put(key, bytes(data))

    def truncate(self, key: str, length: int | None = None) -> None:
        """Cut the object at ``key`` down to ``length`` bytes (default: half)."""
        data = self.inner.get(key)
        if length is None:
            length = len(data) // 2
        if not 0 <= length <= len(data):
            raise ValueError(f"cannot truncate the {len(data)}-byte object {key!r} to {length} bytes")
        self.inner.put(key, data[:length])


class ReportingStorage(WrappedStorage):
    """Raises every failure of the store ``inner`` as :class:`~atlas.errors.StorageError`.

    Any ``OSError`` from ``inner`` (a full disk, an I/O error, a refused request) comes
    out as a ``StorageError`` naming the store, with the same ``errno``. A missing object
    is still ``FileNotFoundError``; errors about the request rather than the store (a bad
    key, a read-only store, damaged bytes) pass unchanged. A caller can then tell the
    store failing from anything else going wrong while it works with the store (the
    NetCDF ingest stops on the first, and blames an input file only for the rest).
    """

    def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        try:
            return fn(*args)
        except (FileNotFoundError, StorageError, ReadOnlyError):
            raise
        except OSError as e:
            error = StorageError(f"storage error in {self.location}: {e}")
            error.errno = e.errno
            error.location = self.location
            raise error from e

    def get(self, key: str) -> bytes:
        """Delegated; failures reported as StorageError."""
        return self._run(self.inner.get, key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Delegated; failures reported as StorageError."""
        return self._run(self.inner.get_range, key, start, length)

    def get_ranges(
        self, key: str, starts: Sequence[int], lengths: Sequence[int]
    ) -> list[bytes | memoryview]:
        """Delegated; failures reported as StorageError."""
        return self._run(self.inner.get_ranges, key, starts, lengths)

    def get_many_ranges(
        self, requests: Sequence[tuple[str, Sequence[int], Sequence[int]]]
    ) -> list[list[bytes | memoryview]]:
        """Delegated; failures reported as StorageError."""
        return self._run(self.inner.get_many_ranges, requests)

    def exists(self, key: str) -> bool:
        """Delegated; failures reported as StorageError."""
        return self._run(self.inner.exists, key)

    def size(self, key: str) -> int:
        """Delegated; failures reported as StorageError."""
        return self._run(self.inner.size, key)

    def list(self, prefix: str = "") -> list[str]:
        """Delegated; failures reported as StorageError."""
        return self._run(self.inner.list, prefix)

    def list_details(self, prefix: str = "") -> builtins.list[tuple[str, int, float]]:
        """Delegated; failures reported as StorageError."""
        return self._run(self.inner.list_details, prefix)

    def put(self, key: str, data: BytesLike) -> None:
        """Delegated; failures reported as StorageError."""
        self._run(self.inner.put, key, data)

    def put_if_absent(self, key: str, data: BytesLike) -> bool:
        """Delegated; failures reported as StorageError."""
        return self._run(self.inner.put_if_absent, key, data)

    def delete(self, key: str) -> None:
        """Delegated; failures reported as StorageError."""
        self._run(self.inner.delete, key)

    def delete_many(self, keys: Iterable[str]) -> None:
        """Delegated; failures reported as StorageError."""
        self._run(self.inner.delete_many, keys)

    def mark_changed(self) -> None:
        """Delegated; failures reported as StorageError."""
        self._run(self.inner.mark_changed)

    def remove_temp_files(self, older_than: float | None = None) -> int:
        """Delegated; failures reported as StorageError."""
        return self._run(self.inner.remove_temp_files, older_than)
