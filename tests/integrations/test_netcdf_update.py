"""``ingest_directory`` records each dataset's source file, and ``update`` uses it: changed
files are replaced, unchanged ones left alone, failures kept in the store and not retried."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from netcdf_helpers import write_profile, write_tree

import atlas
from atlas.format.ingestlog import FAILURES_KEY, decode_failures
from atlas.integrations.netcdf import IngestError, ingest_directory
from atlas.integrations.netcdf.provenance import ATTRIBUTES, recorded


def _break(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"CDF\x01" + b"\x07" * 200)


def test_each_dataset_records_its_source(tmp_path: Path) -> None:
    (path,) = write_tree(tmp_path / "src", 1)
    ingest_directory(tmp_path / "src", tmp_path / "store", jobs=1)
    view = atlas.Atlas.open(tmp_path / "store").open_dataset("south:p0000")
    source = recorded(view)
    assert source is not None
    st = path.stat()
    assert (source.path, source.size) == ("south/p0000.nc", st.st_size)
    assert source.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert source.mtime.endswith("Z") and source.mtime.startswith("20")
    assert source.atlas_version == atlas.__version__
    assert set(ATTRIBUTES.values()) <= set(view.attributes())


def test_update_replaces_changed_files_and_leaves_the_rest(tmp_path: Path) -> None:
    src, store = tmp_path / "src", tmp_path / "store"
    paths = write_tree(src, 3)
    ingest_directory(src, store, jobs=1)
    version = atlas.Atlas.open(store).version
    # touched only: new time, same bytes -> unchanged (the hash decides)
    os.utime(paths[0], ns=(paths[0].stat().st_atime_ns, paths[0].stat().st_mtime_ns + 5_000_000_000))
    report = ingest_directory(src, store, jobs=1, update=True)
    assert report.added == [] and report.files_present == 3
    assert atlas.Atlas.open(store).version == version  # nothing to commit
    # rewritten with other values: replaced
    write_profile(paths[1], levels=40, seed=99)
    report = ingest_directory(src, store, jobs=1, update=True)
    assert report.added == ["north:p0001"] and report.replaced == ["north:p0001"] and report.files_present == 2
    s = atlas.Atlas.open(store)
    assert s.open_dataset("north:p0001").array_meta("temp")["shape"] == [1, 40]
    assert recorded(s.open_dataset("north:p0001")).sha256 == hashlib.sha256(paths[1].read_bytes()).hexdigest()
    assert sorted(s.list_datasets()) == ["north:p0001", "south:p0000", "south:p0002"]


def test_failures_are_kept_in_the_store_and_not_retried_while_unchanged(tmp_path: Path) -> None:
    src, store = tmp_path / "src", tmp_path / "store"
    write_tree(src, 2)
    _break(src / "south" / "broken.nc")
    report = ingest_directory(src, store, jobs=1, skip_errors=True)
    assert [f for f, _ in report.skipped] == ["south/broken.nc"]
    s = atlas.Atlas.open(store)
    (failure,) = decode_failures(s.storage.get(FAILURES_KEY))
    assert (failure.file, failure.dataset, failure.size) == ("south/broken.nc", "south:broken", 204)
    assert failure.sha256 == hashlib.sha256((src / "south" / "broken.nc").read_bytes()).hexdigest()
    assert failure.reason == report.skipped[0][1]

    # an update without --skip-errors goes through: the failed file is not tried again
    write_tree(src, 1, start=2)
    report = ingest_directory(src, store, jobs=1, update=True)
    assert report.added == ["south:p0002"] and [f for f, _ in report.failed_before] == ["south/broken.nc"]
    # unless asked to (it fails again: all or nothing, and the log is unchanged)
    with pytest.raises(IngestError, match="broken.nc"):
        ingest_directory(src, store, jobs=1, update=True, retry_failed=True)
    # or it changed: then it is tried, and once it goes in, it leaves the log
    write_profile(src / "south" / "broken.nc", seed=5)
    report = ingest_directory(src, store, jobs=1, update=True)
    assert report.added == ["south:broken"] and not report.failed_before
    s = atlas.Atlas.open(store)
    assert not s.storage.exists(FAILURES_KEY)


def test_a_new_failure_of_an_update_joins_the_log(tmp_path: Path) -> None:
    src, store = tmp_path / "src", tmp_path / "store"
    write_tree(src, 2)
    _break(src / "a" / "one.nc")
    ingest_directory(src, store, jobs=1, skip_errors=True)
    _break(src / "b" / "two.nc")
    report = ingest_directory(src, store, jobs=1, update=True, skip_errors=True)
    assert [f for f, _ in report.skipped] == ["b/two.nc"]
    files = [f.file for f in decode_failures(atlas.Atlas.open(store).storage.get(FAILURES_KEY))]
    assert files == ["a/one.nc", "b/two.nc"]



def test_warnings_of_the_commit_join_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from atlas.core.atlas import Store

    flush = Store.flush

    def warning_flush(self: Store, rebase: bool = False) -> None:
        warnings.warn("something odd in the statistics", RuntimeWarning, stacklevel=1)
        flush(self, rebase=rebase)

    monkeypatch.setattr(Store, "flush", warning_flush)
    write_tree(tmp_path / "src", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may escape raw
        report = ingest_directory(tmp_path / "src", tmp_path / "store", jobs=1)
    assert ("(the commit)", "RuntimeWarning") in [(w.file, w.category) for w in report.warnings]
