"""Opening a version: which files in manifests/ are versions, finding the newest one without
listing, and the errors of a store with no such version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from store_helpers import add_dataset, flushed_store

import atlas
from atlas.core.loading import is_store_key
from atlas.format import manifest as mf
from atlas.storage.wrappers import WrappedStorage


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



class _Unlistable(WrappedStorage):
    """A read-only store that cannot list its keys, as a plain HTTP server."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.read_only = True

    def list(self, prefix: str = "") -> list[str]:
        raise OSError("listing needs WebDAV")


def test_without_listing_the_newest_version_is_probed_from_the_hint(store: atlas.Atlas) -> None:
    for i in range(3):
        add_dataset(store, f"d{i}")
        store.flush()  # versions 1..3
    storage = store.storage
    assert storage.get(mf.LATEST_HINT_KEY).strip() == b"3"
    storage.put(mf.LATEST_HINT_KEY, b"1\n")  # stale: a newer commit's hint did not land
    opened = atlas.Atlas.open(_Unlistable(storage))
    assert opened.version == 3 and opened.list_datasets() == ["d0", "d1", "d2"]
    storage.put(mf.LATEST_HINT_KEY, b"garbage")  # unreadable: probed from version 0
    assert atlas.Atlas.open(_Unlistable(storage)).version == 3
    storage.delete(mf.LATEST_HINT_KEY)
    assert atlas.Atlas.open(_Unlistable(storage)).version == 3


def test_a_writable_store_that_cannot_list_is_an_error(store: atlas.Atlas) -> None:
    store.flush()
    broken = _Unlistable(store.storage)
    broken.read_only = False
    with pytest.raises(OSError, match="WebDAV"):
        atlas.Atlas.open(broken)


def test_a_store_without_a_committed_version_is_not_found(store: atlas.Atlas) -> None:
    storage = store.storage
    for key in storage.list(mf.MANIFEST_PREFIX):
        storage.delete(key)
    with pytest.raises(atlas.StoreNotFoundError, match="no committed version"):
        atlas.Atlas.open(storage)


def test_opening_a_version_that_is_not_there_names_the_ones_that_are(store: atlas.Atlas) -> None:
    add_dataset(store, "d")
    store.flush()
    with pytest.raises(KeyError, match=r"version 5 is not in the store; available: \[0, 1\]"):
        atlas.Atlas.open(store.storage, version=5)


def test_a_manifest_claiming_another_version_is_corruption(store: atlas.Atlas) -> None:
    add_dataset(store, "d")
    store.flush()
    storage = store.storage
    key = mf.manifest_key(1, store.meta_format, store.meta_compression)
    data = storage.get(key)
    head, doc = mf.decode_manifest(data, key, store.meta_format, store.meta_compression)
    doc["version"] = 4
    for field in ("body_length", "body_crc32c"):
        head.pop(field)
    storage.put(key, mf.encode_manifest(doc, head, store.meta_format, store.meta_compression))
    with pytest.raises(atlas.CorruptionError, match="claims version 4"):
        atlas.Atlas.open(storage)


@pytest.mark.parametrize(
    ("key", "ours"),
    [
        ("atlas.json", True),
        ("manifests/latest", True),
        ("manifests/0000000003.json", True),
        ("manifests/0000000003.msgpack.zst", True),
        ("data/v12-0a1b2c.seg", True),
        ("index/v3-ff00.idx", True),
        ("manifests/3.json", False),
        ("data/v12-XYZ.seg", False),
        ("data/v12-0a1b2c.seg.bak", False),
        ("index/x.idx", False),
        ("tags/release", False),
        ("notes.txt", False),
    ],
)
def test_store_keys_are_the_ones_atlas_writes(key: str, ours: bool) -> None:
    assert is_store_key(key) is ours
