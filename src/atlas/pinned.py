"""Read-only handles on one committed version, shared per process, and the lazy arrays
built on them.

Lazy arrays (xarray backend arrays, dask tasks) pickle as (location, version, ...) and
reopen here on whichever process computes them; the cache keeps one handle, and so one
block cache, per version and process.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from .core.atlas import Store

__all__ = ["PinnedArray", "open_pinned"]


@functools.lru_cache(maxsize=4)
def _cached_store(location: str, version: int) -> Store:
    from .core.atlas import Store

    return Store.open(location, version=version)


def open_pinned(location: str, version: int, storage_options: Mapping[str, Any] | None = None) -> Store:
    """A read-only handle on one committed version (shared per process when possible)."""
    from .core.atlas import Store

    if storage_options:
        return Store.open(location, version=version, **dict(storage_options))
    return _cached_store(location, version)


class PinnedArray:
    """What every lazy reader holds: one array of a store at one committed version.

    ``location``, ``version`` and ``storage_options`` say where to reopen the store; the
    handle given at construction (if any) is used in this process and never pickled, so
    a copy unpickled elsewhere reopens the pinned version with :func:`open_pinned`.
    ``shape`` and ``dtype`` are those of what indexing the reader gives.
    """

    def __init__(
        self,
        location: str,
        version: int,
        array: str,
        shape: Sequence[int],
        dtype: np.dtype[Any],
        storage_options: Mapping[str, Any] | None = None,
        store: Store | None = None,
    ) -> None:
        self.location = location
        self.version = version
        self.storage_options = dict(storage_options) if storage_options else None
        self._array_name = array  # not ``array``: xarray's wrappers use that for what they wrap
        self.shape = tuple(int(n) for n in shape)
        self.dtype = dtype
        self._store = store

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def handle(self) -> Store:
        """The handle to read through: the one given, else the pinned version reopened."""
        if self._store is None:
            self._store = open_pinned(self.location, self.version, self.storage_options)
        return self._store

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_store"] = None  # reopened by location on the other side
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
