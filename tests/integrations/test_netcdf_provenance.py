"""``atlas.integrations.netcdf.provenance``: the source file each dataset records, and the
store's list of files that failed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import atlas
from atlas.format.ingestlog import FAILURES_KEY
from atlas.integrations.netcdf.files import SourceFile
from atlas.integrations.netcdf.provenance import (
    ATTRIBUTES,
    Provenance,
    atlas_version,
    failure,
    file_sha256,
    iso_mtime,
    read_failures,
    record,
    recorded,
    write_failures,
)


def _source(tmp_path: Path, content: bytes = b"netcdf bytes") -> SourceFile:
    path = tmp_path / "a" / "b.nc"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return SourceFile(path, "a/b.nc", "a:b", len(content), 1_700_000_000_123_456_789)


def test_iso_mtime_is_utc_with_microseconds() -> None:
    assert iso_mtime(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456Z"
    assert iso_mtime(0) == "1970-01-01T00:00:00.000000Z"


def test_file_sha256(tmp_path: Path) -> None:
    content = bytes(range(256)) * 10_000  # more than one read block
    path = tmp_path / "f"
    path.write_bytes(content)
    assert file_sha256(str(path)) == hashlib.sha256(content).hexdigest()


def test_record_and_read_back(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    view = store.create_dataset("a:b")
    assert recorded(view) is None
    src = _source(tmp_path)
    record(view, src, "ff" * 32)
    assert set(view.attributes()) == set(ATTRIBUTES.values())
    assert view.attribute_dtypes()[ATTRIBUTES["size"]] == "int64"
    got = recorded(view)
    assert got == Provenance("a/b.nc", src.size, "2023-11-14T22:13:20.123456Z", "ff" * 32, atlas_version())
    assert got.same_file(src)
    assert not got.same_file(SourceFile(src.path, src.relpath, src.name, src.size + 1, src.mtime_ns))
    view.set_attribute(ATTRIBUTES["size"], "12")  # not what an ingest records
    assert recorded(view) is None


def test_failures_are_written_read_and_removed(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    assert read_failures(store) == []
    src = _source(tmp_path)
    failed = failure(src, "OSError: bad", "ab" * 32)
    assert (failed.file, failed.dataset, failed.size) == ("a/b.nc", "a:b", src.size)
    assert failed.mtime == iso_mtime(src.mtime_ns) and failed.when.endswith("Z")
    write_failures(store, [failed])
    assert read_failures(store) == [failed]
    store.storage.put(FAILURES_KEY, b"not json")
    assert read_failures(store) == []  # an unreadable log: no failures on record
    write_failures(store, [])
    assert not store.storage.exists(FAILURES_KEY)
    write_failures(store, [])  # nothing to remove: fine


@pytest.mark.parametrize("name", ["path", "mtime", "sha256", "atlas_version"])
def test_a_missing_field_means_no_record(tmp_path: Path, name: str) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    view = store.create_dataset("d")
    record(view, _source(tmp_path), "00" * 32)
    view.set_attribute(ATTRIBUTES[name], 1)
    assert recorded(view) is None
