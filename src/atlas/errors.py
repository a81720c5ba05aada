"""Exception types raised by Atlas.

Each is a subclass of the builtin a user of the original API would catch, so
``except RuntimeError`` keeps working while callers that care can be precise.
"""

from __future__ import annotations


class AtlasError(Exception):
    """Base class of the errors Atlas defines itself."""


class StoreNotFoundError(AtlasError, RuntimeError, FileNotFoundError):
    """No Atlas store exists at the given location."""


class ConflictError(AtlasError, RuntimeError):
    """Another writer committed a new version since this handle read the store."""


class CorruptionError(AtlasError, RuntimeError):
    """Stored bytes fail their checksum or cannot be decoded."""


class ReadOnlyError(AtlasError, PermissionError):
    """The store or version was opened read-only (an old version, or HTTP)."""
