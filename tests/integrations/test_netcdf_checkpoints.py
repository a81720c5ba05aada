"""A long ingest goes in batches: without ``skip_errors`` each batch is written ahead and
forgotten (a checkpoint), and nothing is visible until the one commit at the end; with
``skip_errors`` each batch is committed. Failures are recorded in the store's ingest log
also when the first one stops the ingest."""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr
from netcdf_helpers import write_tree

import atlas
from atlas.cli.read import store_info
from atlas.core import checkpoint
from atlas.core.maintenance import unreferenced_summary
from atlas.format.ingestlog import FAILURES_KEY, decode_failures
from atlas.integrations import netcdf
from atlas.integrations.netcdf import IngestError, ingest_directory


def _break(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"CDF\x01" + b"\x07" * 200)


def _log(store: Path) -> list[tuple[str, bool]]:
    s = atlas.Atlas.open(store)
    if not s.storage.exists(FAILURES_KEY):
        return []
    return [(f.file, f.stopped) for f in decode_failures(s.storage.get(FAILURES_KEY))]


def _count_checkpoints(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = netcdf.checkpoint

    def counting(store: atlas.Atlas) -> None:
        calls.append(len(store.list_datasets()))
        real(store)

    monkeypatch.setattr(netcdf, "checkpoint", counting)
    return calls


def test_batches_are_written_ahead_and_published_by_one_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, store = tmp_path / "src", tmp_path / "store"
    write_tree(src, 7)
    calls = _count_checkpoints(monkeypatch)
    report = ingest_directory(src, store, jobs=1, checkpoint_files=3)
    assert calls == [3, 6, 7] and len(report.added) == 7  # the rest too, before the commit
    s = atlas.Atlas.open(store)
    assert [v["version"] for v in s.versions()] == [0, 1]  # created, then the one commit
    assert sorted(s.list_datasets()) == sorted(report.added)
    assert s.verify() == []
    assert s.open_dataset("south:p0006").array_stats("temp") is not None


def test_a_failure_after_checkpoints_commits_nothing_and_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, store = tmp_path / "src", tmp_path / "store"
    write_tree(src, 2)
    ingest_directory(src, store, jobs=1)
    before = atlas.Atlas.open(store)
    write_tree(src, 5, start=2)
    _break(src / "zz" / "broken.nc")  # the last file: after two checkpoints
    calls = _count_checkpoints(monkeypatch)
    with pytest.raises(IngestError, match="zz/broken.nc.*unchanged"):
        ingest_directory(src, store, jobs=1, update=True, checkpoint_files=2)
    assert calls == [4, 6]
    after = atlas.Atlas.open(store)
    assert (after.version, after.list_datasets()) == (before.version, before.list_datasets())
    assert unreferenced_summary(after) == (0, 0)  # what the checkpoints wrote is deleted again
    # the failure is on record, as one that stopped its ingest ...
    assert _log(store) == [("zz/broken.nc", True)]
    info = store_info(after)
    assert [f["file"] for f in info["failed_files"]] == ["zz/broken.nc"]
    # ... so the next ingest tries the file again (and stops again), rather than skip it
    with pytest.raises(IngestError, match="zz/broken.nc"):
        ingest_directory(src, store, jobs=1, update=True)
    # --skip-errors skips it, and from then on it is a file skipped by choice
    report = ingest_directory(src, store, jobs=1, update=True, skip_errors=True)
    assert len(report.added) == 5 and [f for f, _ in report.skipped] == ["zz/broken.nc"]
    assert _log(store) == [("zz/broken.nc", False)]
    report = ingest_directory(src, store, jobs=1, update=True)
    assert [f for f, _ in report.failed_before] == ["zz/broken.nc"]


def test_a_failure_in_a_new_store_leaves_no_store(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_tree(src, 4)
    _break(src / "zz.nc")
    with pytest.raises(IngestError, match="zz.nc"):
        ingest_directory(src, tmp_path / "store", jobs=1, checkpoint_files=2)
    assert not (tmp_path / "store").exists()


def test_with_skip_errors_every_batch_is_committed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, store = tmp_path / "src", tmp_path / "store"
    write_tree(src, 6)
    _break(src / "north" / "bad.nc")  # the first file
    calls = _count_checkpoints(monkeypatch)
    report = ingest_directory(src, store, jobs=1, skip_errors=True, checkpoint_files=3)
    assert calls == [2, 5, 6] and len(report.added) == 6
    s = atlas.Atlas.open(store)
    assert [v["version"] for v in s.versions()] == [0, 1, 2, 3]  # files 1-3, 4-6, 7
    assert len(s.list_datasets()) == 6 and s.verify() == []
    assert _log(store) == [("north/bad.nc", False)]


def test_a_killed_ingest_with_skip_errors_keeps_its_committed_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, store = tmp_path / "src", tmp_path / "store"
    write_tree(src, 7)
    _break(src / "north" / "bad.nc")
    real = netcdf._write_file
    seen = []

    def dying(store_: atlas.Atlas, src_: netcdf.SourceFile, *args: object) -> tuple[str | None, int]:
        seen.append(src_.relpath)
        if len(seen) == 5:  # the 6th file (bad.nc fails before it is written)
            raise KeyboardInterrupt
        return real(store_, src_, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(netcdf, "_write_file", dying)
    with pytest.raises(KeyboardInterrupt):
        ingest_directory(src, store, jobs=1, skip_errors=True, checkpoint_files=2)
    s = atlas.Atlas.open(store)
    assert len(s.list_datasets()) == 3  # two batches of 2 files, one of them skipped
    assert unreferenced_summary(s) == (0, 0)  # the third batch's files are deleted again
    assert _log(store) == [("north/bad.nc", False)]
    monkeypatch.setattr(netcdf, "_write_file", real)
    report = ingest_directory(src, store, jobs=1, update=True, skip_errors=True)
    assert report.files_present == 3 and len(report.added) == 4
    assert [f for f, _ in report.failed_before] == ["north/bad.nc"]
    assert len(atlas.Atlas.open(store).list_datasets()) == 7


def test_a_checkpoint_forgets_what_it_wrote(tmp_path: Path) -> None:
    write_tree(tmp_path / "src", 3)
    store = atlas.Atlas.create(tmp_path / "s")
    for f in sorted((tmp_path / "src").rglob("*.nc")):
        with xr.open_dataset(f) as ds:
            store.add_xarray_dataset(ds.load(), f.stem)
    checkpoint.checkpoint(store)
    assert store._datasets._states == {}
    got = store.open_as_xarray_dataset("p0001")
    with xr.open_dataset(tmp_path / "src" / "north" / "p0001.nc") as want:
        xr.testing.assert_identical(want.load(), got.load())


def test_small_updates_fill_the_last_shard_up_to_a_batch_only(tmp_path: Path) -> None:
    src, store = tmp_path / "src", tmp_path / "store"
    write_tree(src, 1)
    ingest_directory(src, store, jobs=1, checkpoint_files=3)
    sizes = []
    for start in range(1, 7):
        write_tree(src, 1, start=start)
        ingest_directory(src, store, jobs=1, update=True, checkpoint_files=3)
        sizes.append([len(s.names) for s in atlas.Atlas.open(store)._datasets.shards])
    # the last shard is filled while it holds fewer than 3, then a new one starts
    assert sizes == [[2], [3], [3, 1], [3, 2], [3, 3], [3, 3, 1]]
