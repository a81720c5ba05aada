"""Read-only handles on one committed version, shared per process.

Lazy arrays (xarray backend arrays, dask tasks) pickle as (location, version, ...) and
reopen here on whichever process computes them; the cache keeps one handle, and so one
block cache, per version and process.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core.atlas import Store


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
