"""``atlas.integrations.netcdf.plan``: what an ingest does with each file it found (add,
replace, leave alone, not retry), decided from the recorded sources and the ingest log."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import atlas
from atlas.integrations.netcdf.files import SourceFile
from atlas.integrations.netcdf.plan import plan_ingest
from atlas.integrations.netcdf.provenance import failure, file_sha256, record, write_failures
from atlas.integrations.netcdf.report import IngestError, IngestReport


def _file(root: Path, rel: str, content: bytes, mtime_ns: int = 1_700_000_000_000_000_000) -> SourceFile:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return SourceFile(path, rel, rel.removesuffix(".nc").replace("/", ":"), len(content), mtime_ns)


@pytest.fixture
def store(tmp_path: Path) -> atlas.Atlas:
    return atlas.Atlas.create(tmp_path / "s")


def _report() -> IngestReport:
    return IngestReport(source="src", store="s")


def test_new_files_are_all_to_do(store: atlas.Atlas, tmp_path: Path) -> None:
    files = [_file(tmp_path / "src", "a.nc", b"1"), _file(tmp_path / "src", "b.nc", b"2")]
    plan = plan_ingest(store, files, update=False, retry_failed=False, report=_report())
    assert plan.todo == files and not plan.replace and plan.log == []


def test_files_in_the_store_need_update(store: atlas.Atlas, tmp_path: Path) -> None:
    src = _file(tmp_path / "src", "a.nc", b"1")
    store.create_dataset(src.name)
    with pytest.raises(IngestError, match=r"1 of the 1 files are already in the store .*'a'.*--update"):
        plan_ingest(store, [src], update=False, retry_failed=False, report=_report())


def test_update_leaves_unchanged_files_and_replaces_changed_ones(store: atlas.Atlas, tmp_path: Path) -> None:
    root = tmp_path / "src"
    same, touched, edited, unrecorded = (
        _file(root, "same.nc", b"aaaa"),
        _file(root, "touched.nc", b"bbbb"),
        _file(root, "edited.nc", b"cccc"),
        _file(root, "old.nc", b"dddd"),
    )
    for src in (same, touched, edited):
        record(store.create_dataset(src.name), src, file_sha256(str(src.path)))
    store.create_dataset(unrecorded.name)  # added before sources were recorded
    touched = _file(root, "touched.nc", b"bbbb", touched.mtime_ns + 10**9)  # new time, same bytes
    edited = _file(root, "edited.nc", b"CCCC", edited.mtime_ns + 10**9)  # same size, new bytes
    report = _report()
    plan = plan_ingest(store, [same, touched, edited, unrecorded], update=True, retry_failed=False, report=report)
    assert plan.todo == [edited] and plan.replace == {"edited"}
    assert report.files_present == 3
    assert set(plan.hashes) == {"touched.nc", "edited.nc"}  # hashed only where the time differs


def test_unchanged_failures_are_not_retried_unless_asked(store: atlas.Atlas, tmp_path: Path) -> None:
    root = tmp_path / "src"
    bad, fixed = _file(root, "bad.nc", b"xx"), _file(root, "fixed.nc", b"yy")
    write_failures(
        store,
        [failure(bad, "OSError: bad", file_sha256(str(bad.path))), failure(fixed, "OSError: was bad", "0" * 64)],
    )
    fixed = _file(root, "fixed.nc", b"zzz", fixed.mtime_ns + 10**9)
    report = _report()
    plan = plan_ingest(store, [bad, fixed], update=False, retry_failed=False, report=report)
    assert plan.todo == [fixed] and [f.file for f in plan.log] == ["bad.nc", "fixed.nc"]
    assert report.failed_before == [("bad.nc", "OSError: bad")]
    again = plan_ingest(store, [bad, fixed], update=False, retry_failed=True, report=_report())
    assert again.todo == [bad, fixed]
