"""What an ingest does with each file it found: add it, replace its dataset, or leave it.

A file whose dataset is in the store is an error, unless the ingest updates: then it is
left alone when unchanged (same size and modification time as recorded, or else the
same SHA-256), and its dataset is replaced when it changed. A file an earlier ingest
skipped (in the store's ingest log) is not tried again while unchanged, unless asked to;
one whose failure stopped its ingest is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...format.ingestlog import Failure
from .files import SourceFile
from .provenance import ATTRIBUTES, file_sha256, iso_mtime, read_failures, recorded_in
from .report import IngestError, IngestReport

if TYPE_CHECKING:
    from ...core.atlas import Store

__all__ = ["Plan", "plan_ingest"]


@dataclass
class Plan:
    """The files to read, and what was decided about the others."""

    todo: list[SourceFile] = field(default_factory=list)  # new, changed or retried, in order
    replace: set[str] = field(default_factory=set)  # datasets whose files changed
    log: list[Failure] = field(default_factory=list)  # the ingest log as found
    hashes: dict[str, str] = field(default_factory=dict)  # relpath -> SHA-256 taken while planning


def _unchanged(src: SourceFile, size: int, mtime: str, sha256: str, plan: Plan) -> bool:
    """Whether ``src`` still is the file recorded with ``size``, ``mtime`` and ``sha256``."""
    if size == src.size and mtime == iso_mtime(src.mtime_ns):
        return True
    if size != src.size:
        return False
    digest = plan.hashes.get(src.relpath)
    if digest is None:
        digest = plan.hashes[src.relpath] = file_sha256(str(src.path))
    return digest == sha256


def plan_ingest(store: Store, files: list[SourceFile], update: bool, retry_failed: bool, report: IngestReport) -> Plan:
    """Decide for each file; ``IngestError`` when files are already in the store and the
    ingest does not update."""
    present = [s for s in files if store.dataset_exists(s.name)]
    if present and not update:
        raise IngestError(
            f"{len(present)} of the {len(files)} files are already in the store "
            f"(e.g. {present[0].relpath} as {present[0].name!r}); "
            "pass --update to add only the new and changed files"
        )
    plan = Plan(log=read_failures(store))
    # a failure that stopped its ingest was not skipped by choice: its file is tried again
    failed = {f.file: f for f in plan.log if not f.stopped}
    # the sources recorded, read without keeping the datasets decoded (a large store's
    # metadata would take more memory than the ingest itself)
    sources = store._attributes_of([s.name for s in present], ATTRIBUTES.values())
    for src in files:
        if src.name in sources:
            source = recorded_in(sources[src.name])
            if source is None or _unchanged(src, source.size, source.mtime, source.sha256, plan):
                report.files_present += 1  # unchanged, or added before sources were recorded
                continue
            plan.replace.add(src.name)
        elif src.relpath in failed and not retry_failed:
            before = failed[src.relpath]
            if _unchanged(src, before.size, before.mtime, before.sha256, plan):
                report.failed_before.append((src.relpath, before.reason))
                continue
        plan.todo.append(src)
    return plan
