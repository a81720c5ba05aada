"""What an ingest tells: its report, its progress, and the error that stops it."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["IngestError", "IngestProgress", "IngestReport", "WarningRecord"]


class IngestError(RuntimeError):
    """An ingest that cannot go ahead or failed; the message says what to do."""


@dataclass(frozen=True)
class WarningRecord:
    """A warning raised while reading or writing one file."""

    file: str
    category: str
    message: str

    @property
    def kind(self) -> str:
        """The warning with file-specific details (quoted names, numbers) masked out."""
        text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", self.message.splitlines()[0] if self.message else "")
        text = re.sub(r"\b\d+(\.\d+)?\b", "N", text)
        return f"{self.category}: {text}"


@dataclass
class IngestReport:
    """What an ingest did: the CLI prints it, ``--json`` dumps :meth:`as_dict`."""

    source: str
    store: str
    created: bool = False
    files_found: int = 0
    files_present: int = 0  # already in the store, left alone (update mode)
    added: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    bytes_in: int = 0  # NetCDF bytes of the files ingested
    store_bytes_before: int | None = None
    store_bytes_after: int | None = None
    seconds: float = 0.0
    version: int | None = None
    warnings: list[WarningRecord] = field(default_factory=list)

    def warning_kinds(self) -> list[tuple[str, int]]:
        """Warnings grouped by kind, most frequent first."""
        return Counter(w.kind for w in self.warnings).most_common()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "source": self.source,
            "store": self.store,
            "created": self.created,
            "files_found": self.files_found,
            "files_already_present": self.files_present,
            "datasets_added": len(self.added),
            "added": list(self.added),
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
            "bytes_in": self.bytes_in,
            "store_bytes_before": self.store_bytes_before,
            "store_bytes_after": self.store_bytes_after,
            "seconds": round(self.seconds, 3),
            "version": self.version,
            "warnings": [{"kind": k, "count": n} for k, n in self.warning_kinds()],
            "warning_details": [
                {"file": w.file, "category": w.category, "message": w.message} for w in self.warnings
            ],
        }


class IngestProgress(Protocol):
    """Receives progress of an ingest (a progress bar, log lines, or nothing)."""

    def start(self, files: int, nbytes: int) -> None:
        """Work is about to start on ``files`` files totalling ``nbytes`` bytes."""

    def advance(self, files: int, nbytes: int) -> None:
        """``files`` more files (``nbytes`` bytes) are done."""

    def stage(self, text: str) -> None:
        """A named stage begins (e.g. committing)."""

    def close(self) -> None:
        """The work is over (successfully or not)."""


