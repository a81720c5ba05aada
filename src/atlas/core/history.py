"""A store's history: which versions exist, which were expired, and the tags naming them.

A version's manifest is never deleted, so that its number can never be taken again by a
writer whose put-if-absent would otherwise succeed on the freed name. Instead it goes
through three states, each one atomic overwrite of the same key:

* **live**: the manifest as committed;
* **expired**: the same manifest with ``"expired": TIME`` in its header. It no longer
  counts as a version (``versions()``, opening it), but the files it names are kept
  until the grace period has passed since ``TIME``, so that readers pinned to it finish;
* **removed**: a header-only tombstone (``"removed": TIME``, empty body), written by the
  garbage collector once it deletes the files the version named.

Tags (``tags/NAME``) name versions; they are immutable, and a tagged version is never
expired.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import CorruptionError, VersionRemovedError
from ..format import manifest as mf
from ..format.codec import checksum

if TYPE_CHECKING:
    from ..storage.base import Storage

TAG_PREFIX = "tags/"
# The header line is at most this long; a read of this many bytes holds it.
HEADER_READ_BYTES = 65536


def now_iso() -> str:
    """The current UTC time as the ISO text manifests carry."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


def parse_time(text: Any) -> _dt.datetime | None:
    """A manifest's ISO time, or None if it has none."""
    if not isinstance(text, str):
        return None
    try:
        t = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=_dt.UTC)


@dataclass(frozen=True)
class VersionHeader:
    """What a manifest's header line says about its version."""

    version: int
    key: str
    header: dict[str, Any]

    @property
    def expired(self) -> str | None:
        """When the version was expired (ISO time), or None while it is live."""
        value = self.header.get("expired")
        return value if isinstance(value, str) else None

    @property
    def removed(self) -> str | None:
        """When the version's files were deleted (ISO time), or None."""
        value = self.header.get("removed")
        return value if isinstance(value, str) else None

    @property
    def live(self) -> bool:
        """Whether the version can still be opened."""
        return self.expired is None and self.removed is None

    @property
    def commit(self) -> str | None:
        """The random token of the commit that wrote this manifest (None before tokens)."""
        value = self.header.get("commit")
        return value if isinstance(value, str) else None

    def removed_error(self, location: str) -> VersionRemovedError:
        """The error for a reader of this version once it was expired or removed."""
        if self.removed is not None:
            what = f"was removed by compaction at {self.removed}"
        else:
            what = f"was expired at {self.expired}"
        return VersionRemovedError(f"version {self.version} of the store at {location} {what}; reopen the store")


def read_header(storage: Storage, key: str, version: int) -> VersionHeader:
    """The header of the manifest at ``key`` (one ranged read); FileNotFoundError if absent."""
    data = storage.get_range(key, 0, HEADER_READ_BYTES)
    head, _ = mf.decode_header(data, f"{storage.location}/{key}")
    if head.get("version") != version:
        raise CorruptionError(f"manifest {storage.location}/{key} claims version {head.get('version')!r}")
    return VersionHeader(version, key, head)


def with_header(data: bytes, where: str, **fields: Any) -> bytes:
    """The manifest ``data`` with ``fields`` added to its header line; the body is unchanged."""
    head, start = mf.decode_header(data, where)
    head.update(fields)
    line = json.dumps(head, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode()
    return line + b"\n" + data[start:]


def tombstone(header: VersionHeader, removed: str) -> bytes:
    """A header-only manifest that keeps a removed version's number taken."""
    head = {
        "atlas": "manifest",
        "format_version": mf.FORMAT_VERSION,
        "version": header.version,
        "timestamp": header.header.get("timestamp"),
        "expired": header.expired or removed,
        "removed": removed,
        "body_length": 0,
        "body_crc32c": checksum(b""),
    }
    if mf.REWRITTEN_KEY in header.header:  # what a rebase across the removed version needs
        head[mf.REWRITTEN_KEY] = header.header[mf.REWRITTEN_KEY]
    return json.dumps(head, ensure_ascii=True, separators=(",", ":")).encode() + b"\n"


# --------------------------------------------------------------------------- tags


def check_tag_name(name: Any) -> str:
    """A valid tag name, or ``TypeError`` / ``ValueError`` saying what is wrong."""
    if not isinstance(name, str):
        raise TypeError(f"a tag name must be a str, not {type(name).__name__}")
    if not name or name in (".", "..") or "/" in name or name.startswith((".", "_")) or not name.isprintable():
        raise ValueError(
            f"invalid tag name {name!r}: use printable characters without '/', not starting with '.' or '_'"
        )
    if len(name.encode("utf-8", "surrogatepass")) > 200:
        raise ValueError(f"tag name {name[:20]!r}... is longer than 200 bytes")
    return name


def tag_key(name: str) -> str:
    """Storage key of a tag."""
    return TAG_PREFIX + name


def encode_tag(version: int) -> bytes:
    """A tag file: the version it names and when it was made."""
    return json.dumps({"version": version, "created": now_iso()}, separators=(",", ":")).encode()


def decode_tag(data: bytes, where: str) -> int:
    """The version a tag file names; ``CorruptionError`` if it is not a tag."""
    try:
        doc = json.loads(bytes(data[:4096]).decode("utf-8"))
        version = doc["version"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise CorruptionError(f"tag {where} is damaged: {e}") from None
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise CorruptionError(f"tag {where} names an impossible version {version!r}")
    return version


def read_tags(storage: Storage) -> dict[str, int]:
    """Every tag of the store and the version it names, by name."""
    out: dict[str, int] = {}
    for key in storage.list(TAG_PREFIX):
        name = key[len(TAG_PREFIX) :]
        try:
            check_tag_name(name)
        except (TypeError, ValueError):
            continue  # not ours
        try:
            out[name] = decode_tag(storage.get(key), f"{storage.location}/{key}")
        except FileNotFoundError:
            continue  # deleted meanwhile
    return out
