"""The ingest log of a store: the source files an ingest could not store (``ingest/failures.json``).

Plain JSON, rewritten whole by each ingest that commits. It is bookkeeping of the
ingest, not data of any version: no manifest names it, compaction leaves it alone, and a
store without it (or with one that cannot be read) simply has no failures on record.
See ``docs/format.md``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["FAILURES_KEY", "LOG_FORMAT", "Failure", "decode_failures", "encode_failures"]

#: Where the failures of past ingests are kept.
FAILURES_KEY = "ingest/failures.json"
#: The version of the log's layout.
LOG_FORMAT = 1


@dataclass(frozen=True)
class Failure:
    """One source file an ingest could not store, with what identifies its content."""

    file: str  # path relative to the ingest's root, POSIX
    dataset: str  # the dataset it would have become
    reason: str
    size: int
    mtime: str  # ISO 8601, UTC, microseconds
    sha256: str
    atlas_version: str
    when: str  # ISO 8601 time of the ingest that failed on it
    # the failure stopped its ingest (no --skip-errors: nothing of it was committed), so
    # later ingests try the file again; written only when true
    stopped: bool = False


def _row(f: Failure) -> dict[str, Any]:
    row = asdict(f)
    if not f.stopped:
        del row["stopped"]  # the log stays what readers before the field was added read
    return row


def encode_failures(failures: list[Failure]) -> bytes:
    """The log's bytes (UTF-8 JSON, one failure per line for people reading it)."""
    rows = ",\n".join("  " + json.dumps(_row(f), ensure_ascii=False) for f in failures)
    return (f'{{"format": {LOG_FORMAT}, "failures": [\n{rows}\n]}}\n').encode()


def decode_failures(data: bytes) -> list[Failure]:
    """The failures of a log; ``ValueError`` if it is not one this version can read."""
    try:
        doc: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != LOG_FORMAT or not isinstance(doc.get("failures"), list):
        raise ValueError("not an ingest log of format 1")
    try:
        failures = [Failure(**row) for row in doc["failures"]]
    except TypeError as e:
        raise ValueError(f"malformed failure record: {e}") from None
    if not all(type(f.stopped) is bool for f in failures):
        raise ValueError("malformed failure record: stopped is not a boolean")
    return failures
