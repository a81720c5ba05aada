"""Where each dataset of an ingest came from, and which source files failed.

Every dataset an ingest adds records its source file as dataset attributes (see
:data:`ATTRIBUTES`): the path relative to the ingest's root, size, modification time,
SHA-256 and the Atlas version. ``--update`` compares them with the file on disk: same
size and time means unchanged; otherwise the content hash decides. Files that failed
are kept in the store's ingest log (:mod:`atlas.format.ingestlog`) with the same
identification, so that an update does not retry them unless they changed.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...format.ingestlog import FAILURES_KEY, Failure, decode_failures, encode_failures
from .files import SourceFile

if TYPE_CHECKING:
    from ...core.atlas import Store
    from ...core.dataset import DatasetView

__all__ = [
    "ATTRIBUTES",
    "Provenance",
    "atlas_version",
    "file_sha256",
    "iso_mtime",
    "read_failures",
    "recorded",
    "recorded_in",
    "record",
    "write_failures",
]

#: The dataset attributes of a dataset's source file (all start with ``_atlas_``).
ATTRIBUTES = {
    "path": "_atlas_source",
    "size": "_atlas_source_size",
    "mtime": "_atlas_source_mtime",
    "sha256": "_atlas_source_sha256",
    "atlas_version": "_atlas_version",
}
_HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class Provenance:
    """A source file as an ingest saw it."""

    path: str
    size: int
    mtime: str
    sha256: str
    atlas_version: str

    def same_file(self, src: SourceFile) -> bool:
        """Whether ``src`` has this size and modification time (then it is taken as unchanged)."""
        return self.size == src.size and self.mtime == iso_mtime(src.mtime_ns)


@functools.cache
def atlas_version() -> str:
    """The installed Atlas version (looked up once: reading the package metadata costs a
    few milliseconds, and an ingest records it in every dataset)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("atlas")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"


def iso_mtime(mtime_ns: int) -> str:
    """A modification time as ISO 8601 UTC with microseconds (what is recorded)."""
    seconds, ns = divmod(mtime_ns, 1_000_000_000)
    when = _dt.datetime.fromtimestamp(seconds, _dt.UTC).replace(microsecond=ns // 1000)
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


def file_sha256(path: str) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def record(view: DatasetView, src: SourceFile, sha256: str) -> None:
    """Record ``src`` as the source of the dataset ``view``."""
    view.set_attribute(ATTRIBUTES["path"], src.relpath)
    view.set_attribute(ATTRIBUTES["size"], src.size, "int64")
    view.set_attribute(ATTRIBUTES["mtime"], iso_mtime(src.mtime_ns))
    view.set_attribute(ATTRIBUTES["sha256"], sha256)
    view.set_attribute(ATTRIBUTES["atlas_version"], atlas_version())


def recorded(view: DatasetView) -> Provenance | None:
    """The source recorded for a dataset; None when it has none (not ingested, or by an
    Atlas that did not record it)."""
    return recorded_in({key: view.get_attribute(key) for key in ATTRIBUTES.values()})


def recorded_in(attributes: dict[str, Any]) -> Provenance | None:
    """The source recorded in a dataset's attributes (``{key: value}``), or None."""
    values: dict[str, Any] = {field: attributes.get(key) for field, key in ATTRIBUTES.items()}
    if not isinstance(values["size"], int) or not all(
        isinstance(values[k], str) for k in ("path", "mtime", "sha256", "atlas_version")
    ):
        return None
    return Provenance(**values)


def read_failures(store: Store) -> list[Failure]:
    """The failures on record in a store's ingest log (none when it has no readable log)."""
    try:
        return decode_failures(store.storage.get(FAILURES_KEY))
    except (FileNotFoundError, ValueError):
        return []


def write_failures(store: Store, failures: list[Failure]) -> None:
    """Replace a store's ingest log (removed when nothing failed)."""
    if failures:
        store.storage.put(FAILURES_KEY, encode_failures(failures))
    elif store.storage.exists(FAILURES_KEY):
        store.storage.delete(FAILURES_KEY)


def failure(src: SourceFile, reason: str, sha256: str, stopped: bool = False) -> Failure:
    """The record of ``src`` failing now (``stopped``: the failure stopped the ingest)."""
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return Failure(
        src.relpath, src.name, reason, src.size, iso_mtime(src.mtime_ns), sha256, atlas_version(), now, stopped
    )
