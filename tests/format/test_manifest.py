"""Manifests: a checksummed header line over a body in any metadata format, decoded whatever
its layout, and the garbage collector paused only while one is decoded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from store_helpers import write_profiles

import atlas
from atlas.format import manifest as mf


@pytest.mark.parametrize("meta_format", ["json", "msgpack"])
@pytest.mark.parametrize("meta_compression", ["none", "zstd", "lz4"])
def test_manifest_is_headed_checksummed_and_detected(tmp_path: Path, meta_format: str, meta_compression: str) -> None:
    store = atlas.Atlas.create(tmp_path / "s", meta_format=meta_format, meta_compression=meta_compression)
    write_profiles(store, 3)
    store.flush()
    key = mf.manifest_key(store.version, meta_format, meta_compression)
    raw = (tmp_path / "s" / key).read_bytes()
    head = json.loads(raw.split(b"\n", 1)[0])
    assert head["version"] == store.version and head["datasets"] == 3
    if meta_format == "json" and meta_compression == "none":
        body = json.loads(raw.split(b"\n", 1)[1])  # human-readable, standard JSON
        assert [d[0] for d in body["datasets"]] == ["p0", "p1", "p2"]
    assert atlas.Atlas.open(tmp_path / "s").list_datasets() == ["p0", "p1", "p2"]


def _json_manifest(header: dict, body: bytes) -> bytes:
    head = dict(header, body_length=len(body), body_crc32c=mf.checksum(body))
    return json.dumps(head, separators=(",", ":")).encode() + b"\n" + body


def test_json_manifest_in_any_layout_decodes_and_duplicates_are_refused() -> None:
    header = {"atlas": "manifest", "format_version": 1, "version": 2}
    doc = {"version": 2, "next_id": 5, "schemas": [], "variables": [], "datasets": [["é", [], []]]}
    compact = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    pretty = json.dumps(doc, indent=2).encode()  # hand-edited or written by another tool
    for body in (compact, pretty):
        assert mf.decode_manifest(_json_manifest(header, body), "m", "json", "none")[1] == doc
    duplicated = b'{"version":2,"version":3,"next_id":5,"schemas":[],"variables":[],"datasets":[]}'
    with pytest.raises(atlas.CorruptionError, match="duplicate key"):
        mf.decode_manifest(_json_manifest(header, duplicated), "m", "json", "none")


def test_open_and_flush_leave_the_garbage_collector_as_they_found_it(tmp_path: Path) -> None:
    import gc

    was = gc.isenabled()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            store = atlas.Atlas.create(tmp_path / f"s{enabled}")
            write_profiles(store, 3)
            store.flush()
            assert atlas.Atlas.open(tmp_path / f"s{enabled}").list_datasets() == ["p0", "p1", "p2"]
            assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()

