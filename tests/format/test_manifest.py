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
        assert [s[1] for s in body["shards"]] == [3]  # the datasets are in one shard
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



# ------------------------------------------------------------------ the codec on its own

HEADER = {"atlas": "manifest", "format_version": mf.FORMAT_VERSION, "version": 4}


@pytest.mark.parametrize("meta_format", ["json", "msgpack"])
@pytest.mark.parametrize("meta_compression", ["none", "zstd", "lz4"])
def test_encode_and_decode_round_trip(meta_format: str, meta_compression: str) -> None:
    doc = {"version": 4, "datasets": [["tête", [], ["k", "string", "\udcff"]]], "big": 2**64 - 1, "f": -0.5}
    data = mf.encode_manifest(doc, HEADER, meta_format, meta_compression)
    line, body = data.split(b"\n", 1)
    head = json.loads(line)
    assert head["version"] == 4 and head["body_length"] == len(body)
    assert head["body_crc32c"] == mf.checksum(body)
    assert mf.decode_header(data, "m") == (head, len(line) + 1)
    got_head, got = mf.decode_manifest(data, "m", meta_format, meta_compression)
    assert got_head == head and got == doc


def test_damaged_manifests_are_corruption_naming_the_file() -> None:
    good = mf.encode_manifest({"version": 4}, HEADER, "json", "none")
    line, body = good.split(b"\n", 1)

    def headed(**fields: object) -> bytes:
        head = json.loads(line)
        head.update(fields)
        return json.dumps(head).encode() + b"\n" + body

    cases = {
        "no header line": line,
        "damaged header": b"{not json\n" + body,
        "damaged header$": headed(atlas="something else"),
        "unsupported format version 4": headed(format_version=4),
        "impossible body length -1": headed(body_length=-1),
        "impossible body length '7'": headed(body_length="7"),
        "impossible body length": headed(body_length=mf.MAX_MANIFEST_BYTES + 1),
        "truncated: body has 12 of 13 bytes": good[:-1],
        "fails its checksum": good[:-2] + b"5}",
        "body is not a mapping": mf.encode_manifest([1, 2], HEADER, "json", "none"),  # type: ignore[arg-type]
    }
    for message, data in cases.items():
        with pytest.raises(atlas.CorruptionError, match=f"manifest manifests/x.json.*{message}"):
            mf.decode_manifest(data, "manifests/x.json", "json", "none")
    not_zstd = mf.encode_manifest({"version": 4}, HEADER, "json", "none")  # read as if compressed
    with pytest.raises(atlas.CorruptionError, match="cannot be decoded"):
        mf.decode_manifest(not_zstd, "m", "json", "zstd")


def test_manifest_keys_name_versions_and_nothing_else() -> None:
    assert mf.manifest_key(3, "json", "none") == "manifests/0000000003.json"
    assert mf.manifest_key(12, "msgpack", "zstd") == "manifests/0000000012.msgpack.zst"
    assert mf.manifest_key(0, "json", "lz4") == "manifests/0000000000.json.lz4"
    for version in (0, 7, 10**9):
        for fmt in mf.META_FORMATS:
            for comp in mf.META_COMPRESSIONS:
                assert mf.parse_manifest_key(mf.manifest_key(version, fmt, comp)) == version
    for key in (mf.LATEST_HINT_KEY, "manifests/123.json", "manifests/00000000x1.json", "data/0000000001.json"):
        assert mf.parse_manifest_key(key) is None


def test_store_config_round_trips_and_damage_is_corruption() -> None:
    data = mf.encode_config("lz4", "msgpack", "zstd")
    doc = mf.decode_config(data, "atlas.json")
    assert (doc["codec"], doc["meta_format"], doc["meta_compression"]) == ("lz4", "msgpack", "zstd")
    assert doc["format_version"] == mf.FORMAT_VERSION
    cases = {
        "not valid JSON": b"\xff{",
        "is not an Atlas store config": b'{"format": "zarr"}',
        "format version 9": data.replace(b'"format_version": 3', b'"format_version": 9'),
        "unknown codec": data.replace(b'"lz4"', b'"brotli"'),
    }
    for message, damaged in cases.items():
        with pytest.raises(atlas.CorruptionError, match=message):
            mf.decode_config(damaged, "s/atlas.json")


def test_metadata_options_are_parsed_case_insensitively() -> None:
    assert mf.parse_meta_format(" MP ") == "msgpack" and mf.parse_meta_format("Json") == "json"
    assert mf.parse_meta_compression("Uncompressed") == "none" and mf.parse_meta_compression("ZSTD") == "zstd"
    with pytest.raises(ValueError, match="unknown meta_format 'yaml'"):
        mf.parse_meta_format("yaml")
    with pytest.raises(TypeError, match="meta_compression must be a str"):
        mf.parse_meta_compression(None)
