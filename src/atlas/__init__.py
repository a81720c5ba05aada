"""Atlas: one store for thousands of similar N-dimensional datasets, laid out variable-first.

``atlas.Atlas`` is the store handle and ``atlas.DatasetView`` the handle on one dataset.
"""

from __future__ import annotations

from .api import Atlas
from .core.dataset import DatasetView
from .errors import (
    AtlasError,
    CommitOutcomeUnknownError,
    ConflictError,
    CorruptionError,
    ReadOnlyError,
    StorageError,
    StoreNotFoundError,
    VersionRemovedError,
)

__version__ = "0.1.0"

__all__ = [
    "Atlas",
    "AtlasError",
    "CommitOutcomeUnknownError",
    "ConflictError",
    "CorruptionError",
    "DatasetView",
    "ReadOnlyError",
    "StorageError",
    "StoreNotFoundError",
    "VersionRemovedError",
    "__version__",
]
