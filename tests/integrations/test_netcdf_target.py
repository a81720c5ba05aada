"""``atlas.integrations.netcdf.target``: the store an ingest writes to, opened or created,
and removed again when an ingest that created it fails."""

from __future__ import annotations

from pathlib import Path

import pytest

import atlas
from atlas.integrations.netcdf.report import IngestError, IngestReport
from atlas.integrations.netcdf.target import dir_bytes, prepare_store
from atlas.storage.wrappers import ReportingStorage

_META = ("msgpack", "zstd")


def _report(path: Path) -> IngestReport:
    return IngestReport(source="src", store=str(path))


def test_dir_bytes(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "d" / "b").write_bytes(b"y" * 5)
    assert dir_bytes(str(tmp_path)) == 15
    assert dir_bytes(str(tmp_path / "missing")) is None
    assert dir_bytes("s3://bucket/store") is None


def test_a_new_store_is_created_and_its_clean_up_removes_it(tmp_path: Path) -> None:
    path = tmp_path / "new"
    report = _report(path)
    store, clean_up = prepare_store(str(path), "lz4", _META, report)
    assert report.created and report.store_bytes_before == 0
    assert store.codec == "lz4" and isinstance(store.storage, ReportingStorage)
    clean_up()
    assert not path.exists()


def test_an_empty_directory_is_emptied_again_not_removed(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.mkdir()
    _, clean_up = prepare_store(str(path), None, _META, _report(path))
    assert any(path.iterdir())
    clean_up()
    assert path.is_dir() and not any(path.iterdir())


def test_an_existing_store_is_opened_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "s"
    existing = atlas.Atlas.create(path, codec="zstd")
    existing.create_dataset("e")
    existing.flush()
    report = _report(path)
    store, clean_up = prepare_store(str(path), "ZSTD", _META, report)
    assert not report.created and store.list_datasets() == ["e"]
    assert report.store_bytes_before == dir_bytes(str(path)) and report.store_bytes_before
    clean_up()
    assert atlas.Atlas.open(path).list_datasets() == ["e"]
    with pytest.raises(IngestError, match="already uses codec 'zstd'"):
        prepare_store(str(path), "lz4", _META, _report(path))


def test_a_directory_of_other_files_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "docs"
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    with pytest.raises(IngestError, match="exists and is not an Atlas store"):
        prepare_store(str(path), None, _META, _report(path))
    assert (path / "notes.txt").read_text() == "mine"


def test_what_an_interrupted_create_left_is_created_again(tmp_path: Path) -> None:
    path = tmp_path / "torn"
    path.mkdir()
    (path / "atlas.json").write_bytes(b"{")  # a torn config, no committed version
    (path / "manifests").mkdir()
    (path / "manifests" / ".tmp-123").write_bytes(b"")
    report = _report(path)
    store, _ = prepare_store(str(path), None, _META, report)
    assert report.created and store.list_datasets() == []
