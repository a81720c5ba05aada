"""A store backed by any obstore store: S3, GCS, Azure, HTTP, local files or memory."""

from __future__ import annotations

import builtins
import contextlib
import errno
import re
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import obstore as obs
from obstore.exceptions import (
    AlreadyExistsError,
    BaseError,
    GenericError,
    NotFoundError,
    NotSupportedError,
    PreconditionError,
)

from ..errors import ReadOnlyError, StorageError
from .base import (
    BytesLike,
    Storage,
    check_key,
    check_prefix,
    check_ranges,
    coalesce_ranges,
)
from .memory import _process_token, lookup_in_process, register_in_process

__all__ = ["ObjectStorage", "is_obstore_store", "store_kind"]

_KINDS = ("S3Store", "GCSStore", "AzureStore", "HTTPStore", "LocalStore", "MemoryStore")
_NOT_FOUND = (FileNotFoundError, NotFoundError)
_EMPTY = memoryview(b"")
# obstore's LocalStore reports a path running through a file ("a/b" when "a" is a file)
# as a generic "Not a directory" error rather than as not found.
_ENOTDIR = f"(os error {errno.ENOTDIR})"
# Conditional creates that report "already exists" while nothing is there (S3 answers
# 409 ConditionalRequestConflict to racing requests) are retried this many times.
_CREATE_ATTEMPTS = 6
# Stores that talk HTTP, where obstore retries failed requests on its own.
_HTTP_KINDS = ("S3Store", "GCSStore", "AzureStore", "HTTPStore")
# How many times obstore retried a request, as its error messages say.
_RETRIES = re.compile(r"\bafter (\d+) retries\b|\bretries: (\d+)\b")
# An S3-style XML error body: <Error><Code>SlowDown</Code><Message>...</Message></Error>.
_XML_ERROR = re.compile(
    r"(?:<\?xml[^>]*\?>)?\s*<Error>.*?<Code>([^<]*)</Code>(?:.*?<Message>([^<]*)</Message>)?.*?</Error>",
    re.S,
)


def store_kind(store: Any) -> str | None:
    """``"S3Store"``, ``"HTTPStore"``, ... for an obstore store, else None."""
    for cls in type(store).__mro__:
        if cls.__name__ in _KINDS and cls.__module__.startswith("obstore"):
            return cls.__name__
    return None


def is_obstore_store(obj: Any) -> bool:
    """Whether ``obj`` is one of obstore's store objects."""
    return store_kind(obj) is not None


def _is_missing(e: BaseException) -> bool:
    return isinstance(e, _NOT_FOUND) or (isinstance(e, GenericError) and _ENOTDIR in str(e))


def _summary(e: BaseException) -> str:
    """obstore's message on one line: without its debug dump, an XML error body as
    ``Code: Message``."""
    text = str(e).split("\n\nDebug source:", 1)[0]
    text = _XML_ERROR.sub(lambda m: f"{m.group(1)}: {m.group(2)}" if m.group(2) else m.group(1), text)
    text = " ".join(text.split()) or type(e).__name__
    return text if len(text) <= 400 else text[:399] + "…"


def _was_retried(e: BaseException) -> bool:
    """Whether obstore sent the failed request more than once (True when it does not say)."""
    m = _RETRIES.search(str(e))
    return m is None or int(m.group(1) or m.group(2)) > 0


def _repr_field(store: Any, name: str) -> str | None:
    m = re.search(rf'{name}="([^"]*)"', repr(store))
    return m.group(1) if m else None


def _join(*parts: str | None) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def describe_store(store: Any) -> str:
    """A URL naming an obstore store (without credentials or client options)."""
    kind = store_kind(store)
    prefix = getattr(store, "prefix", None)
    prefix = str(prefix) if prefix is not None else None
    if kind == "S3Store":
        return f"s3://{_join(_repr_field(store, 'bucket'), prefix)}"
    if kind == "GCSStore":
        return f"gs://{_join(_repr_field(store, 'bucket'), prefix)}"
    if kind == "AzureStore":
        container = _repr_field(store, "container_name")
        account = _repr_field(store, "account_name")
        if account:
            return f"abfs://{container}@{account}.dfs.core.windows.net/{_join(prefix)}".rstrip("/")
        return f"az://{_join(container, prefix)}"
    if kind == "HTTPStore":
        return str(store.url).rstrip("/")
    if kind == "LocalStore":
        return "file://" + ("/" + prefix.strip("/") if prefix else "/")
    return f"{kind}()"


def _rebuild(store: Any, prefix: str, location: str) -> ObjectStorage:
    return ObjectStorage(store, prefix, location=location)


def _reopen_registered(name: str, token: str) -> Storage:
    found = lookup_in_process(name) if token == _process_token() else None
    if found is None:
        raise RuntimeError(
            f"memory://{name} wraps an obstore MemoryStore, which exists only in the "
            "process that made it and only while a handle on it is alive"
        )
    return found


class ObjectStorage(Storage):
    """Atlas storage on an obstore store, with keys under an optional extra ``prefix``.

    ``HTTPStore`` is read-only. ``put_if_absent`` is obstore's ``mode="create"`` put
    (``If-None-Match: *`` on S3), which needs a service with conditional writes.
    """

    scan_batch_bytes = 16 << 20  # tens of milliseconds per request: fewer, larger batches

    def __init__(self, store: Any, prefix: str = "", *, location: str | None = None) -> None:
        kind = store_kind(store)
        if kind is None:
            raise TypeError(f"expected an obstore store, got {type(store).__name__}")
        prefix = prefix.strip("/")
        if prefix:
            check_key(prefix)
        self.store = store
        self.kind = kind
        self.prefix = prefix
        self.read_only = kind == "HTTPStore"
        self.supports_conditional_put = not self.read_only
        self._ranges_unsupported = False
        self._memory_name: str | None = None
        if location is None:
            if kind == "MemoryStore":
                self._memory_name = f"obstore-{secrets.token_hex(8)}"
                register_in_process(self._memory_name, self)
                location = f"memory://{self._memory_name}"
            else:
                base = describe_store(store)
                location = f"{base}/{prefix}" if prefix else base
        self.location = location

    def __reduce__(self) -> tuple[Any, ...]:
        if self._memory_name is not None:
            return (_reopen_registered, (self._memory_name, _process_token()))
        if self.kind == "MemoryStore":
            raise TypeError(f"{self.location} wraps an obstore MemoryStore, which cannot be pickled")
        return (_rebuild, (self.store, self.prefix, self.location))

    # ----------------------------------------------------------------- helpers

    def _path(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _missing(self, key: str) -> FileNotFoundError:
        return FileNotFoundError(f"no object {key!r} in {self.location}")

    def _deny(self, what: str, key: str) -> ReadOnlyError:
        if self.kind == "HTTPStore":
            return ReadOnlyError(f"cannot {what} {key!r}: {self.location} is read-only over HTTP")
        return ReadOnlyError(f"cannot {what} {key!r}: {self.location} is read-only")

    def _failure(self, what: str, key: str | None, e: BaseException) -> StorageError:
        """The error to raise for a request that failed (after obstore's retries)."""
        target = self.location if key is None else f"{key!r} in {self.location}"
        error = StorageError(f"storage error: {what} {target} failed: {_summary(e)}")
        error.location = self.location
        error.key = key
        return error

    @contextlib.contextmanager
    def _reporting(self, what: str, key: str | None) -> Iterator[None]:
        """Raise every flavour of "no such object" as this storage's FileNotFoundError and
        every other failure of the service or client as :class:`StorageError`."""
        try:
            yield
        except (FileNotFoundError, StorageError, ReadOnlyError):
            raise
        except BaseError as e:
            if _is_missing(e) and key is not None:
                raise self._missing(key) from None
            raise self._failure(what, key, e) from e
        except OSError as e:  # connection errors obstore raises as builtins
            raise self._failure(what, key, e) from e

    def _call(self, key: str, fn: Any, *args: Any, what: str = "reading", **kwargs: Any) -> Any:
        """``fn(store, path of key, ...)``, failures raised as by :meth:`_reporting`."""
        path = self._path(key)
        with self._reporting(what, key):
            try:
                return fn(self.store, path, *args, **kwargs)
            except FileNotFoundError:
                raise self._missing(key) from None

    def _head(self, key: str) -> Any:
        return self._call(key, obs.head)

    # ----------------------------------------------------------------- reading

    def get(self, key: str) -> bytes:
        """The whole object at ``key``."""
        return self._call(key, lambda store, path: bytes(obs.get(store, path).bytes()))

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` (fewer at the end of the object)."""
        return bytes(self.get_ranges(key, [start], [length])[0])

    def get_ranges(
        self, key: str, starts: Sequence[int], lengths: Sequence[int]
    ) -> list[bytes | memoryview]:
        """Ranges are coalesced into spans (gap <= ``coalesce_gap``) fetched concurrently."""
        s, n = check_ranges(starts, lengths)
        path = self._path(key)
        with self._reporting("reading", key):
            return self._get_ranges(key, path, s, n)

    def _get_ranges(self, key: str, path: str, s: list[int], n: list[int]) -> list[bytes | memoryview]:
        if not s:
            return []
        out: list[bytes | memoryview] = [_EMPTY] * len(s)
        spans = coalesce_ranges(s, n, self.coalesce_gap)
        if not spans:  # only zero-length ranges: still report a missing object
            self._head(key)
            return out
        if not self._ranges_unsupported:
            try:
                got = self._fetch_spans(path, spans)
            except NotSupportedError:
                # An HTTP server that ignores Range headers: read whole objects instead.
                self._ranges_unsupported = True
            except (BaseError, FileNotFoundError) as e:
                if _is_missing(e):
                    raise self._missing(key) from None
                # Most likely a span starting past the end of the object: clamp the
                # ranges to its size and fetch again.
                size = self.size(key)
                s = [min(a, size) for a in s]
                n = [max(0, min(b, size - a)) for a, b in zip(s, n, strict=True)]
                spans = coalesce_ranges(s, n, self.coalesce_gap)
                _slice_into(out, s, n, spans, self._fetch_spans(path, spans) if spans else [])
                return out
            else:
                _slice_into(out, s, n, spans, got)
                return out
        whole = memoryview(self.get(key))
        return [whole[a : a + b] for a, b in zip(s, n, strict=True)]

    def _fetch_spans(self, path: str, spans: list[tuple[int, int, list[int]]]) -> list[memoryview]:
        # Spans are already coalesced and more than coalesce_gap apart: obstore must not
        # merge them again (merging spans past the end of an object makes it panic).
        got = obs.get_ranges(
            self.store,
            path,
            starts=[a for a, _, _ in spans],
            ends=[b for _, b, _ in spans],
            coalesce=0,
        )
        return [memoryview(g) for g in got]

    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key`` (one HEAD request)."""
        try:
            self._head(key)
        except FileNotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        """Size of the object at ``key`` (one HEAD request)."""
        return int(self._head(key)["size"])

    def list(self, prefix: str = "") -> list[str]:
        """Sorted keys starting with ``prefix`` (listing the prefix's directory)."""
        return [k for k, _ in self._listing(prefix)]

    def list_details(self, prefix: str = "") -> builtins.list[tuple[str, int, float]]:
        """``(key, size, last modified)`` of every object under ``prefix``, from the listing."""
        return [(k, int(m["size"]), m["last_modified"].timestamp()) for k, m in self._listing(prefix)]

    def _listing(self, prefix: str) -> builtins.list[tuple[str, Any]]:
        """Sorted ``(key, object meta)`` of the objects under ``prefix``."""
        check_prefix(prefix)
        head = prefix.rpartition("/")[0]
        where = _join(self.prefix, head) or None
        try:
            metas = obs.list(self.store, prefix=where).collect()
        except BaseError as e:
            if self.kind == "HTTPStore":
                error = StorageError(
                    f"cannot list {self.location}: listing over HTTP needs a WebDAV server ({_summary(e)})"
                )
                error.location = self.location
                raise error from e
            raise self._failure("listing", None, e) from e
        except OSError as e:
            raise self._failure("listing", None, e) from e
        strip = len(self.prefix) + 1 if self.prefix else 0
        found = [(m["path"][strip:], m) for m in metas]
        found = [(k, m) for k, m in found if k.startswith(prefix)]
        found.sort(key=lambda item: item[0])
        return found

    # ----------------------------------------------------------------- writing

    def put(self, key: str, data: BytesLike) -> None:
        """Store ``data`` at ``key`` (object stores replace objects atomically)."""
        path = self._path(key)
        if self.read_only:
            raise self._deny("write", key)
        with self._reporting("writing", key):
            obs.put(self.store, path, memoryview(data).cast("B"))

    def put_if_absent(self, key: str, data: BytesLike) -> bool:
        """A conditional create; False if an object already exists at ``key``.

        When obstore had to send the create again (its first answer was lost or an
        error) and then finds the key taken, the object there may be its own first
        attempt's: the create counts as written if the object holds exactly ``data``.
        """
        path = self._path(key)
        if self.read_only:
            raise self._deny("write", key)
        payload = memoryview(data).cast("B")
        for attempt in range(_CREATE_ATTEMPTS):
            with self._reporting("writing", key):
                try:
                    obs.put(self.store, path, payload, mode="create", use_multipart=False)
                except (AlreadyExistsError, PreconditionError) as e:
                    retried = self.kind in _HTTP_KINDS and _was_retried(e)
                else:
                    return True
            if retried:
                try:
                    return self.get(key) == payload
                except FileNotFoundError:
                    pass
            elif self.exists(key):
                return False
            # Nothing is there: the create lost a conflict without anyone winning.
            time.sleep(0.01 * 2**attempt)
        error = StorageError(f"could not create {key!r} in {self.location}: conditional writes kept conflicting")
        error.location, error.key = self.location, key
        raise error

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is fine."""
        check_key(key)  # a bad key is reported before a read-only store is
        if self.read_only:
            raise self._deny("delete", key)
        try:
            self._call(key, obs.delete, what="deleting")
        except FileNotFoundError:
            pass

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove ``keys`` (in bulk requests where the service supports them)."""
        ks = list(keys)
        paths = [self._path(k) for k in ks]
        if self.read_only:
            if ks:
                raise self._deny("delete", ks[0])
            return
        if not paths:
            return
        with self._reporting("deleting", None):
            try:
                obs.delete(self.store, paths)
            except (*_NOT_FOUND, GenericError):
                # Some backends (local files) stop at the first missing key.
                for k in ks:
                    self.delete(k)


def _slice_into(
    out: list[bytes | memoryview],
    starts: list[int],
    lengths: list[int],
    spans: list[tuple[int, int, list[int]]],
    got: list[memoryview],
) -> None:
    """Cut each range out of the span fetched for it (spans may come back short)."""
    for (a, _, members), buf in zip(spans, got, strict=True):
        size = len(buf)
        for i in members:
            lo = starts[i] - a
            out[i] = buf[lo : max(lo, min(lo + lengths[i], size))]
