"""Exception types raised by Atlas.

Each is a subclass of the builtin a user of the original API would catch, so
``except RuntimeError`` keeps working while callers that care can be precise.
"""

from __future__ import annotations

from typing import NamedTuple


class AtlasError(Exception):
    """Base class of the errors Atlas defines itself."""


class StoreNotFoundError(AtlasError, RuntimeError, FileNotFoundError):
    """No Atlas store exists at the given location."""


class StorageError(AtlasError, OSError):
    """The store's disk or service failed: an I/O error, or a request that was refused
    or still failing after its retries. Not a fault of the data written or read.

    ``location`` names the store and ``key`` the object involved (None for listings).
    """

    location: str | None = None
    key: str | None = None


class Conflict(NamedTuple):
    """One thing two writers both changed, as a rebase found it: the dataset, what of it
    (``""`` for the dataset itself, ``"array 'x'"``, ``"attribute 'k'"``...), what the
    changes being applied did to it, and what the other side did."""

    dataset: str
    what: str
    here: str
    there: str

    def describe(self, here: str = "this handle", there: str = "another writer") -> str:
        """One line, naming the two sides as told."""
        subject = f"dataset {self.dataset!r}" + (f", {self.what}," if self.what else "")
        return f"{subject} {self.here} by {here} and {self.there} by {there}"


class ConflictError(AtlasError, RuntimeError):
    """Another writer committed a new version since this handle read the store.

    ``conflicts`` lists what both sides changed when a rebase found true conflicts (empty
    when the store moved on and no rebase was asked for)."""

    conflicts: tuple[Conflict, ...] = ()


class CommitOutcomeUnknownError(AtlasError, RuntimeError):
    """A flush failed in a way that left unknown whether its commit landed.

    The handle keeps its changes; the next ``flush()`` finds out and either finishes
    (the commit had landed) or commits them again.
    """


class CorruptionError(AtlasError, RuntimeError):
    """Stored bytes fail their checksum or cannot be decoded."""


class ReadOnlyError(AtlasError, PermissionError):
    """The store or version was opened read-only (an old version, or HTTP)."""


class VersionRemovedError(AtlasError, KeyError):
    """The version was expired or removed by compaction; reopen the store for the newest."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
