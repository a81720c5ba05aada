"""Atlas: one store for thousands of similar N-dimensional datasets, laid out variable-first.

``atlas.Atlas`` is the store handle and ``atlas.DatasetView`` the handle on one dataset.
"""

from __future__ import annotations

from .core.atlas import Atlas
from .core.dataset import DatasetView
from .errors import AtlasError, ConflictError, CorruptionError, ReadOnlyError, StoreNotFoundError

__version__ = "0.1.0"

__all__ = [
    "Atlas",
    "AtlasError",
    "ConflictError",
    "CorruptionError",
    "DatasetView",
    "ReadOnlyError",
    "StoreNotFoundError",
    "__version__",
]
