"""Opening a version: which files in manifests/ are versions."""

from __future__ import annotations

from pathlib import Path

from store_helpers import add_dataset, flushed_store

import atlas


def test_stray_files_in_the_manifest_folder_are_ignored(tmp_path: Path) -> None:
    path = flushed_store(tmp_path)
    newest = sorted((path / "manifests").glob("0*"))[-1]
    backup = newest.read_bytes()
    (path / "manifests" / "0000000009.json~").write_bytes(backup)  # an editor's backup
    (path / "manifests" / "0000000008.json.bak").write_bytes(backup)
    (path / "manifests" / "0000000007.msgpack").write_bytes(backup)  # not this store's encoding
    assert atlas.Atlas.open(path).version == 1
    assert [v["version"] for v in atlas.Atlas.open(path).versions()] == [0, 1]
    store = atlas.Atlas.open(path)
    add_dataset(store, "more")
    store.flush()
    assert store.version == 2 and atlas.Atlas.open(path).verify() == []

