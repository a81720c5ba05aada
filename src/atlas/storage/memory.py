"""A process-local in-memory store, shared by name so ``memory://name`` reopens it."""

from __future__ import annotations

import builtins
import os
import secrets
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from .base import BytesLike, Storage, check_key, check_prefix, check_ranges

__all__ = ["MemoryStorage", "lookup_in_process"]

# Identifies this process, so a pickled handle never silently reopens as an empty
# store in another process (forked children included).
_PROCESS_TOKEN = f"{os.getpid()}-{secrets.token_hex(8)}"


def _process_token() -> str:
    global _PROCESS_TOKEN
    if not _PROCESS_TOKEN.startswith(f"{os.getpid()}-"):
        _PROCESS_TOKEN = f"{os.getpid()}-{secrets.token_hex(8)}"
    return _PROCESS_TOKEN


class _Shared:
    """The objects of one named store, guarded by a lock."""

    __slots__ = ("data", "modified", "lock", "__weakref__")

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.modified: dict[str, float] = {}  # time of each key's last write
        self.lock = threading.Lock()


_registry_lock = threading.Lock()
# Named stores live as long as the process (until MemoryStorage.discard); anonymous
# ones only while a handle on them is alive.
_named: dict[str, _Shared] = {}
_anon_registry: weakref.WeakValueDictionary[str, _Shared] = weakref.WeakValueDictionary()
# Other in-process stores that can be reopened by a memory:// location.
_others: weakref.WeakValueDictionary[str, Storage] = weakref.WeakValueDictionary()


def register_in_process(name: str, storage: Storage) -> None:
    """Let ``memory://name`` reopen ``storage`` while it is alive (in this process)."""
    with _registry_lock:
        _others[name] = storage


def lookup_in_process(name: str) -> Storage | None:
    """The live in-process store registered under ``name`` that is not a MemoryStorage."""
    with _registry_lock:
        return _others.get(name)


def _reopen(name: str, anonymous: bool, token: str) -> Storage:
    if token != _process_token():
        raise RuntimeError(
            f"memory://{name} is an in-memory store of another process; in-memory stores "
            "cannot be shared between processes (use a local path or an object store)"
        )
    other = lookup_in_process(name)
    if other is not None:
        return other
    if anonymous:
        with _registry_lock:
            if name not in _anon_registry:
                raise RuntimeError(f"the anonymous in-memory store memory://{name} no longer exists")
    return MemoryStorage(name, _anonymous=anonymous)


class MemoryStorage(Storage):
    """Objects in a dict. ``MemoryStorage("foo")`` twice gives two views on the same data.

    ``MemoryStorage()`` makes a fresh anonymous store, freed with its last handle.
    Handles pickle only within the process that made them.
    """

    supports_conditional_put = True

    def __init__(self, name: str | None = None, *, _anonymous: bool = False) -> None:
        with _registry_lock:
            if name is None:
                name = f"anonymous-{secrets.token_hex(8)}"
                _anon_registry[name] = shared = _Shared()
                self._anonymous = True
            elif _anonymous or name in _anon_registry:
                found = _anon_registry.get(name)
                if found is None:
                    raise RuntimeError(f"the anonymous in-memory store memory://{name} no longer exists")
                shared = found
                self._anonymous = True
            else:
                name = name.strip("/")
                if not name:
                    raise ValueError("an in-memory store name must not be empty")
                shared = _named.get(name) or _named.setdefault(name, _Shared())
                self._anonymous = False
        self.name = name
        self._shared = shared
        self.location = f"memory://{name}"
        self.read_only = False

    @staticmethod
    def discard(name: str) -> None:
        """Forget the named store ``name`` (its data is freed once no handle uses it)."""
        with _registry_lock:
            _named.pop(name, None)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reopen, (self.name, self._anonymous, _process_token()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MemoryStorage) and other._shared is self._shared

    def __hash__(self) -> int:
        return id(self._shared)

    def _blob(self, key: str) -> bytes:
        check_key(key)
        try:
            return self._shared.data[key]
        except KeyError:
            raise FileNotFoundError(f"no object {key!r} in {self.location}") from None

    def get(self, key: str) -> bytes:
        """The object at ``key``."""
        return self._blob(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """A slice of the object at ``key``."""
        (start,), (length,) = check_ranges([start], [length])
        return self._blob(key)[start : start + length]

    def get_ranges(
        self, key: str, starts: Sequence[int], lengths: Sequence[int]
    ) -> list[bytes | memoryview]:
        """Zero-copy views of slices of the object at ``key``."""
        s, n = check_ranges(starts, lengths)
        view = memoryview(self._blob(key))
        return [view[a : a + b] for a, b in zip(s, n, strict=True)]

    def get_many_ranges(
        self, requests: Sequence[tuple[str, Sequence[int], Sequence[int]]]
    ) -> list[list[bytes | memoryview]]:
        """:meth:`get_ranges` for each request (no I/O, so no threads)."""
        return [self.get_ranges(k, s, n) for k, s, n in requests]

    def range_requests(self, starts: Sequence[int], lengths: Sequence[int]) -> int:
        """One lookup per call."""
        return 1

    def exists(self, key: str) -> bool:
        """Whether ``key`` is stored."""
        check_key(key)
        return key in self._shared.data

    def size(self, key: str) -> int:
        """Length of the object at ``key``."""
        return len(self._blob(key))

    def list(self, prefix: str = "") -> list[str]:
        """Sorted keys starting with ``prefix``."""
        check_prefix(prefix)
        with self._shared.lock:
            keys = [k for k in self._shared.data if k.startswith(prefix)]
        keys.sort()
        return keys

    def list_details(self, prefix: str = "") -> builtins.list[tuple[str, int, float]]:
        """``(key, size, time of last write)`` of every key starting with ``prefix``."""
        check_prefix(prefix)
        with self._shared.lock:
            data, modified = self._shared.data, self._shared.modified
            out = [(k, len(v), modified.get(k, 0.0)) for k, v in data.items() if k.startswith(prefix)]
        out.sort()
        return out

    def put(self, key: str, data: BytesLike) -> None:
        """Store a copy of ``data``."""
        check_key(key)
        blob = bytes(data)
        with self._shared.lock:
            self._shared.data[key] = blob
            self._shared.modified[key] = time.time()

    def put_if_absent(self, key: str, data: BytesLike) -> bool:
        """Store a copy of ``data`` unless ``key`` exists."""
        check_key(key)
        blob = bytes(data)
        with self._shared.lock:
            if key in self._shared.data:
                return False
            self._shared.data[key] = blob
            self._shared.modified[key] = time.time()
            return True

    def delete(self, key: str) -> None:
        """Drop ``key`` if present."""
        check_key(key)
        with self._shared.lock:
            self._shared.data.pop(key, None)
            self._shared.modified.pop(key, None)

    def delete_many(self, keys: Iterable[str]) -> None:
        """Drop every key in ``keys``."""
        ks = [check_key(k) for k in keys]
        with self._shared.lock:
            for k in ks:
                self._shared.data.pop(k, None)
                self._shared.modified.pop(k, None)
