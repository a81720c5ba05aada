"""What an ingest tells: its report, its progress, and the error that stops it."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
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
    root: str = ""  # the directory dataset names are relative to
    created: bool = False
    files_found: int = 0
    files_present: int = 0  # already in the store and unchanged, left alone (update mode)
    added: list[str] = field(default_factory=list)  # datasets added (new or replaced)
    replaced: list[str] = field(default_factory=list)  # datasets whose files changed (update mode)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    failed_before: list[tuple[str, str]] = field(default_factory=list)  # unchanged, not retried
    bytes_in: int = 0  # NetCDF bytes of the files ingested
    store_bytes_before: int | None = None  # room taken on disk, as du counts it
    store_bytes_after: int | None = None
    store_apparent_bytes: int | None = None  # the sizes of the store's files after
    store_files: int | None = None
    seconds: float = 0.0
    version: int | None = None
    warnings: list[WarningRecord] = field(default_factory=list)

    def warning_kinds(self) -> list[tuple[str, int]]:
        """Warnings grouped by kind, most frequent first."""
        return Counter(w.kind for w in self.warnings).most_common()

    def warning_examples(self) -> dict[str, WarningRecord]:
        """The first warning of each kind (its file is the kind's example)."""
        first: dict[str, WarningRecord] = {}
        for w in self.warnings:
            first.setdefault(w.kind, w)
        return first

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "source": self.source,
            "root": self.root,
            "store": self.store,
            "created": self.created,
            "files_found": self.files_found,
            "files_already_present": self.files_present,
            "datasets_added": len(self.added),
            "added": list(self.added),
            "replaced": list(self.replaced),
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
            "failed_before": [{"file": f, "reason": r} for f, r in self.failed_before],
            "bytes_in": self.bytes_in,
            "store_bytes_before": self.store_bytes_before,
            "store_bytes_after": self.store_bytes_after,
            "store_apparent_bytes": self.store_apparent_bytes,
            "store_files": self.store_files,
            "seconds": round(self.seconds, 3),
            "version": self.version,
            "warnings": [
                {"kind": k, "count": n, "example": self.warning_examples()[k].file} for k, n in self.warning_kinds()
            ],
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


def conflict_message(store: str, conflicts: Sequence[Any], committed: str, tail: str) -> str:
    """What an ingest says when another process changed the store ``store`` under it
    (``conflicts``: the true ones found, if any; ``committed``: what became of this run)."""
    clashes = "; ".join(c.describe("this ingest", "the other") for c in conflicts[:3])
    more = f" and {len(conflicts) - 3} more" if len(conflicts) > 3 else ""
    return (
        f"another process changed the store {store} while this ingest ran"
        + (f" ({clashes}{more})" if clashes else "")
        + f"; {committed}. Run the command again{tail}"
    )
