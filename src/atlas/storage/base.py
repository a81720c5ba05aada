"""The byte-store protocol every Atlas backend implements, and helpers shared by them.

A store maps keys to immutable byte strings. Keys are ``/``-separated relative paths
that Atlas builds itself (``manifests/0000000001.json``, ``data/v3-ab12.seg``); they are
validated so that no key can escape the store root.
"""

from __future__ import annotations

import abc
import builtins
import functools
import re
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import TypeVar

from ..executors import io_pool

__all__ = [
    "COALESCE_GAP",
    "BytesLike",
    "Storage",
    "check_key",
    "check_prefix",
    "check_ranges",
    "coalesce_ranges",
    "run_concurrently",
]

#: Byte-likes accepted by :meth:`Storage.put`.
BytesLike = bytes | bytearray | memoryview

#: Ranges of one object closer than this many bytes are fetched with a single read.
COALESCE_GAP = 1 << 20

#: Prefix of the temporary files a store may leave behind; no key component may use it.
TEMP_PREFIX = ".tmp-"

# Printable ASCII except characters that are special in URLs, shells or on Windows.
_COMPONENT = re.compile(r'[!$&\'()+,\-.0-9;=@A-Z\[\]^_`a-z{}~]+')

T = TypeVar("T")
R = TypeVar("R")


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid relative ``/``-separated key, else raise ValueError."""
    if not isinstance(key, str):
        raise TypeError(f"storage keys must be str, not {type(key).__name__}")
    return _valid_key(key)


@functools.lru_cache(maxsize=1 << 16)
def _valid_key(key: str) -> str:
    # Cached: the same segment keys are checked on every read of a scan.
    if not key:
        raise ValueError("storage key must not be empty")
    if key.startswith("/"):
        raise ValueError(f"storage key {key!r} must be relative, not absolute")
    for part in key.split("/"):
        _check_component(key, part)
    return key


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is a valid listing prefix (a key head, may end with ``/``)."""
    if not isinstance(prefix, str):
        raise TypeError(f"storage prefixes must be str, not {type(prefix).__name__}")
    if prefix.startswith("/"):
        raise ValueError(f"storage prefix {prefix!r} must be relative, not absolute")
    parts = prefix.split("/")
    for i, part in enumerate(parts):
        # The last part may be empty ("a/") or a partial component ("data/v3-"),
        # but a partial "." or ".." would still name a relative directory.
        if i == len(parts) - 1 and part == "":
            continue
        _check_component(prefix, part)
    return prefix


def _check_component(key: str, part: str) -> None:
    if part == "":
        raise ValueError(f"storage key {key!r} has an empty path component")
    if part in (".", ".."):
        raise ValueError(f"storage key {key!r} must not contain '.' or '..' components")
    if part.startswith(TEMP_PREFIX):
        raise ValueError(f"storage key {key!r}: components starting with {TEMP_PREFIX!r} are reserved")
    if not _COMPONENT.fullmatch(part):
        raise ValueError(
            f"storage key {key!r} has characters outside the allowed ASCII set "
            "(letters, digits and !$&'()+,-.;=@[]^_`{}~)"
        )


def check_ranges(starts: Sequence[int], lengths: Sequence[int]) -> tuple[list[int], list[int]]:
    """Validate byte ranges given as parallel sequences of starts and lengths."""
    s = list(map(int, starts))
    n = list(map(int, lengths))
    if len(s) != len(n):
        raise ValueError(f"got {len(s)} starts but {len(n)} lengths")
    if s and (min(s) < 0 or min(n) < 0):
        a, b = next((a, b) for a, b in zip(s, n, strict=True) if a < 0 or b < 0)
        raise ValueError(f"byte range start={a}, length={b} must not be negative")
    return s, n


def coalesce_ranges(
    starts: Sequence[int], lengths: Sequence[int], gap: int = COALESCE_GAP
) -> list[tuple[int, int, list[int]]]:
    """Group ranges into spans to read at once.

    Returns ``(span_start, span_end, members)`` with span_end exclusive and ``members``
    the indices of the ranges the span covers. Ranges less than ``gap`` bytes apart, or
    overlapping, share a span. Zero-length ranges need no read and are left out.
    """
    order = sorted((i for i in range(len(starts)) if lengths[i] > 0), key=starts.__getitem__)
    spans: list[tuple[int, int, list[int]]] = []
    cur_start = cur_end = -1
    members: list[int] = []
    for i in order:
        a = starts[i]
        b = a + lengths[i]
        if members and a <= cur_end + gap:
            if b > cur_end:
                cur_end = b
            members.append(i)
        else:
            if members:
                spans.append((cur_start, cur_end, members))
            cur_start, cur_end, members = a, b, [i]
    if members:
        spans.append((cur_start, cur_end, members))
    return spans


def run_concurrently(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(x) for x in items]`` with the calls run on the shared I/O thread pool.

    ``fn`` must not itself wait on work submitted to that pool.
    """
    if len(items) <= 1:
        return [fn(x) for x in items]
    return list(io_pool().map(fn, items))


class Storage(abc.ABC):
    """A flat byte store addressed by ``/``-separated relative keys.

    Implementations are safe to use from several threads at once and pickle into a
    handle on the same store (for distributed workers).
    """

    #: A string that reopens this store with :func:`atlas.storage.open_storage`.
    location: str
    #: Whether every mutating call raises :class:`atlas.errors.ReadOnlyError`.
    read_only: bool = False
    #: Whether :meth:`put_if_absent` is atomic against other writers (processes, hosts).
    supports_conditional_put: bool = True
    #: Largest gap between two ranges of an object that are still read in one request.
    coalesce_gap: int = COALESCE_GAP
    #: Decoded bytes a windowed scan fetches per round trip, at least: small batches keep
    #: a slice's memory close to its result; stores with a high latency per request
    #: (object stores) want bigger ones.
    scan_batch_bytes: int = 1 << 20

    # ----------------------------------------------------------------- reading

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """The whole object at ``key``; FileNotFoundError if there is none."""

    @abc.abstractmethod
    def get_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes of ``key`` from ``start`` (fewer if the object ends first)."""

    @abc.abstractmethod
    def get_ranges(
        self, key: str, starts: Sequence[int], lengths: Sequence[int]
    ) -> list[bytes | memoryview]:
        """Many ranges of one object, in the order given; neighbouring ranges are coalesced.

        Like :meth:`get_range`, ranges running past the end of the object come back short.
        """

    def get_many_ranges(
        self, requests: Sequence[tuple[str, Sequence[int], Sequence[int]]]
    ) -> list[list[bytes | memoryview]]:
        """:meth:`get_ranges` for several objects, fetched concurrently; results in order."""
        reqs = list(requests)
        for key, _, _ in reqs:
            check_key(key)
        return run_concurrently(lambda r: self.get_ranges(r[0], r[1], r[2]), reqs)

    def get_many_ranges_transient(
        self, requests: Sequence[tuple[str, Sequence[int], Sequence[int]]]
    ) -> list[list[bytes | memoryview]]:
        """:meth:`get_many_ranges` for bytes the caller decodes and drops before it reads
        again, keeping no view of them: a storage may then hand out views it must not hold
        for long (local files mapped into memory). The same bytes as ``get_many_ranges``."""
        return self.get_many_ranges(requests)

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key``."""

    @abc.abstractmethod
    def size(self, key: str) -> int:
        """Size in bytes of the object at ``key``; FileNotFoundError if there is none."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Sorted keys of all objects whose key starts with ``prefix`` (a plain string prefix)."""

    def list_details(self, prefix: str = "") -> builtins.list[tuple[str, int, float]]:
        """``(key, size, modified)`` of every object under ``prefix``, sorted by key.

        ``modified`` is the time of the last write, in seconds since the epoch. This
        default knows no times and says "now", so that nothing looks old enough for a
        garbage collector's grace period; backends that know better override it.
        """
        now = time.time()
        return [(k, self.size(k), now) for k in self.list(prefix)]

    # ----------------------------------------------------------------- writing

    @abc.abstractmethod
    def put(self, key: str, data: BytesLike) -> None:
        """Store ``data`` at ``key``, atomically replacing any previous object."""

    @abc.abstractmethod
    def put_if_absent(self, key: str, data: BytesLike) -> bool:
        """Atomically create ``key``; True if written, False if an object was already there."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove every key in ``keys``; missing keys are not an error."""
        for key in list(keys):
            self.delete(key)

    def mark_changed(self) -> None:
        """Called after each commit; lets tools that cache by modification time notice it."""
        return None  # nothing to do for object stores

    def remove_temp_files(self, older_than: float | None = None) -> int:
        """Delete temporary files of interrupted writes (object stores leave none).

        With ``older_than`` (seconds since the epoch), only those last written before then."""
        return 0

    # ------------------------------------------------------------------- misc

    def range_requests(self, starts: Sequence[int], lengths: Sequence[int]) -> int:
        """How many reads :meth:`get_ranges` issues for these ranges (for accounting)."""
        return len(coalesce_ranges(starts, lengths, self.coalesce_gap))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"


class ParallelPuts:
    """Writes new, not-yet-referenced files concurrently; :meth:`wait` before publishing them."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._futures: list[Future[None]] = []

    def put(self, key: str, data: bytes) -> None:
        self._futures.append(io_pool().submit(self._storage.put, key, data))

    def wait(self) -> None:
        """Block until every write finished; re-raise the first failure."""
        futures, self._futures = self._futures, []
        error: BaseException | None = None
        for f in futures:
            try:
                f.result()
            except BaseException as e:  # noqa: BLE001 - wait for all, then report the first
                if error is None:
                    error = e
        if error is not None:
            raise error
