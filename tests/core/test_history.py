"""A store's history: versions listed and opened read-only, numbers never taken twice,
readers of removed versions told so, tags; and the pieces: tag names and files, expired
headers and tombstones."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from store_helpers import add_dataset, first_values, flushed_store, write_profiles

import atlas
from atlas.core import history
from atlas.format import manifest as mf


def test_versions_are_listed_and_old_ones_open_read_only(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    write_profiles(store, 1)
    store.flush()
    v1 = store.version
    store.open_dataset("p0").write_array("temperature", [0], np.zeros(200, dtype=np.float32))
    store.create_dataset("later")
    store.flush()
    listed = store.versions()
    assert [v["version"] for v in listed] == [0, v1, v1 + 1]
    assert listed[-1]["datasets"] == 2
    old = atlas.Atlas.open(tmp_path / "s", version=v1)
    assert old.list_datasets() == ["p0"]
    assert old.open_dataset("p0").read_array("temperature").max() > 0
    with pytest.raises(PermissionError):
        old.create_dataset("nope")
    with pytest.raises(atlas.ReadOnlyError):
        old.open_dataset("p0").set_attribute("k", 1)
    with pytest.raises(KeyError):
        atlas.Atlas.open(tmp_path / "s", version=99)
    store.compact(keep_versions=2)
    assert [v["version"] for v in store.versions()] == [v1 + 1, v1 + 2] or [
        v["version"] for v in store.versions()
    ] == [v1, v1 + 1]
    store.compact()
    assert [v["version"] for v in store.versions()] == [store.version]


def test_a_version_number_is_never_taken_twice(tmp_path: Path) -> None:
    path = flushed_store(tmp_path)
    for i in range(2):  # versions 2, 3
        s = atlas.Atlas.open(path)
        add_dataset(s, f"e{i}")
        s.flush()
    late = atlas.Atlas.open(path)  # version 3
    add_dataset(late, "late", value=7.0)
    cleaner = atlas.Atlas.open(path)
    cleaner.delete_dataset("d0")
    cleaner.flush()  # version 4
    cleaner.compact(grace_period=0)  # version 5; 0..4 expired and removed
    assert cleaner.version == 5
    with pytest.raises(atlas.ConflictError):
        late.flush()  # would have re-created manifest 4
    fresh = atlas.Atlas.open(path)
    assert fresh.version == 5 and "late" not in fresh.list_datasets()
    assert [v["version"] for v in fresh.versions()] == [5]
    with pytest.raises(atlas.VersionRemovedError, match="version 4 .* removed by compaction"):
        atlas.Atlas.open(path, version=4)


def test_a_reader_whose_version_was_removed_is_told_so(tmp_path: Path) -> None:
    path = flushed_store(tmp_path)
    old = atlas.Atlas.open(path, version=1)
    cleaner = atlas.Atlas.open(path)
    cleaner.delete_dataset("d0")
    cleaner.flush()
    cleaner.compact()  # the default: what it replaced goes at once
    with pytest.raises(atlas.VersionRemovedError, match="version 1 .* removed by compaction at .*reopen"):
        old.read_array_across("x", ["d0", "d1"])
    with pytest.raises(KeyError):  # VersionRemovedError is a KeyError, as a missing version was
        old.open_dataset("d1").read_array("x")


# ------------------------------------------------------------------ tags


def test_tags_name_versions_and_survive_compaction(tmp_path: Path) -> None:
    path = flushed_store(tmp_path)
    store = atlas.Atlas.open(path)
    store.tag("first")
    store.delete_dataset("d0")
    store.flush()
    store.tag("second")
    assert store.tags() == {"first": 1, "second": 2}
    with pytest.raises(FileExistsError):
        store.tag("first", 2)
    store.compact(grace_period=0)
    assert atlas.Atlas.open(path, version="first").list_datasets() == ["d0", "d1", "d2"]
    assert first_values(atlas.Atlas.open(path, version="first").storage) == {"d1": 1.0, "d2": 2.0}
    assert {v["version"] for v in store.versions()} == {1, 2, 3}
    tagged = atlas.Atlas.open(path, version="first")
    assert float(tagged.open_dataset("d0").read_array("x")[0]) == 0.0
    with pytest.raises(atlas.ReadOnlyError):
        tagged.create_dataset("no")
    store.delete_tag("first")
    store.compact(grace_period=0)
    assert {v["version"] for v in store.versions()} == {2, 3}
    with pytest.raises(KeyError, match="no tag named 'first'"):
        atlas.Atlas.open(path, version="first")
    with pytest.raises(KeyError):
        store.delete_tag("first")


@pytest.mark.parametrize("bad", ["", "a/b", ".hidden", "_x", "tab\there"])
def test_bad_tag_names_are_refused(tmp_path: Path, bad: str) -> None:
    store = atlas.Atlas.open(flushed_store(tmp_path))
    with pytest.raises(ValueError, match="invalid tag name"):
        store.tag(bad)
    with pytest.raises(TypeError):
        store.tag(3)  # type: ignore[arg-type]
    assert store.tags() == {} and not (tmp_path / "s" / "tags").exists()



# ------------------------------------------------------------------ the pieces


@pytest.mark.parametrize("name", ["v1", "release 2024-01-31", "ünïcødé", "a.b", "x" * 200, "-"])
def test_good_tag_names(name: str) -> None:
    assert history.check_tag_name(name) == name
    assert history.tag_key(name) == "tags/" + name


@pytest.mark.parametrize(
    "name", ["", ".", "..", "a/b", "/a", ".x", "_x", "tab\there", "new\nline", "x" * 201, "é" * 101]
)
def test_bad_tag_names(name: str) -> None:
    with pytest.raises(ValueError, match="tag name"):
        history.check_tag_name(name)


@pytest.mark.parametrize("name", [None, 3, b"v1", ["v1"]])
def test_tag_names_must_be_str(name: object) -> None:
    with pytest.raises(TypeError, match="must be a str"):
        history.check_tag_name(name)


def test_tag_files_round_trip_and_damaged_ones_are_corruption() -> None:
    data = history.encode_tag(12)
    assert history.decode_tag(data, "tags/t") == 12
    created = history.parse_time(json.loads(data)["created"])
    assert created is not None and abs((created - dt.datetime.now(dt.UTC)).total_seconds()) < 60
    for bad, message in [
        (b"not json", "damaged"),
        (b"\xff\xfe", "damaged"),
        (b'{"tag": 1}', "damaged"),
        (b"[12]", "damaged"),
        (b'{"version": -1}', "impossible version -1"),
        (b'{"version": true}', "impossible version True"),
        (b'{"version": "12"}', "impossible version '12'"),
    ]:
        with pytest.raises(atlas.CorruptionError, match=f"tag tags/t .*{message}"):
            history.decode_tag(bad, "tags/t")


def test_times_are_read_as_utc_and_anything_else_is_none() -> None:
    assert history.parse_time("2024-05-01T12:00:00+02:00") == dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
    assert history.parse_time("2024-05-01T12:00:00") == dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    assert history.parse_time("yesterday") is None and history.parse_time(None) is None
    assert history.parse_time(history.now_iso()) is not None


def _manifest(version: int, **header: object) -> bytes:
    head = {"atlas": "manifest", "format_version": 1, "version": version, "timestamp": "2024-01-01T00:00:00+00:00"}
    return mf.encode_manifest({"version": version, "datasets": []}, {**head, **header}, "json", "none")


def test_an_expired_manifest_keeps_its_body_and_says_when() -> None:
    data = _manifest(3, commit="abc")
    live = history.VersionHeader(3, "manifests/0000000003.json", mf.decode_header(data, "m")[0])
    assert live.live and live.expired is None and live.removed is None and live.commit == "abc"
    expired = history.with_header(data, "m", expired="2024-02-01T00:00:00+00:00")
    head, doc = mf.decode_manifest(expired, "m", "json", "none")  # the body and its checksum are intact
    assert doc == {"version": 3, "datasets": []} and head["commit"] == "abc"
    state = history.VersionHeader(3, "k", head)
    assert not state.live and state.expired == "2024-02-01T00:00:00+00:00" and state.removed is None
    error = state.removed_error("s3://b/p")
    assert isinstance(error, KeyError) and "version 3 of the store at s3://b/p was expired at 2024-02-01" in str(error)


def test_a_tombstone_is_a_header_without_a_body_that_keeps_the_number() -> None:
    state = history.VersionHeader(4, "k", mf.decode_header(_manifest(4), "m")[0])
    stone = history.tombstone(state, "2024-03-01T00:00:00+00:00")
    head, start = mf.decode_header(stone, "m")
    assert start == len(stone) and head["body_length"] == 0 and head["body_crc32c"] == mf.checksum(b"")
    assert head["version"] == 4 and head["timestamp"] == "2024-01-01T00:00:00+00:00"
    removed = history.VersionHeader(4, "k", head)
    assert not removed.live and removed.removed == removed.expired == "2024-03-01T00:00:00+00:00"
    assert "removed by compaction at 2024-03-01" in str(removed.removed_error("here"))
    # a version expired earlier keeps the time it was expired
    expired = history.VersionHeader(4, "k", {**state.header, "expired": "2024-02-01T00:00:00+00:00"})
    assert mf.decode_header(history.tombstone(expired, "2024-03-01T00:00:00+00:00"), "m")[0]["expired"] == (
        "2024-02-01T00:00:00+00:00"
    )


def test_a_header_claiming_another_version_is_corruption(store: atlas.Atlas) -> None:
    store.create_dataset("d")
    store.flush()
    storage = store.storage
    key = mf.manifest_key(1, store.meta_format, store.meta_compression)
    state = history.read_header(storage, key, 1)
    assert state.live and state.version == 1 and isinstance(state.commit, str)
    copied = mf.manifest_key(7, store.meta_format, store.meta_compression)
    storage.put(copied, storage.get(key))
    with pytest.raises(atlas.CorruptionError, match="claims version 1"):
        history.read_header(storage, copied, 7)
    with pytest.raises(FileNotFoundError):
        history.read_header(storage, mf.manifest_key(8, store.meta_format, store.meta_compression), 8)


def test_tags_are_read_back_and_foreign_files_under_tags_are_not_tags(store: atlas.Atlas) -> None:
    store.create_dataset("d")
    store.flush()
    store.tag("release")
    store.tag("first", 0)
    storage = store.storage
    storage.put("tags/_scratch", history.encode_tag(1))  # not a name a tag may have
    storage.put("tags/.hidden", history.encode_tag(1))
    assert history.read_tags(storage) == {"first": 0, "release": 1}
    assert atlas.Atlas.open(storage).tags() == {"first": 0, "release": 1}
    assert atlas.Atlas.open(storage, version="first").list_datasets() == []


def _header(path: Path, version: int) -> dict[str, object]:
    key = mf.manifest_key(version, "json", "none")
    return json.loads((path / key).read_bytes().split(b"\n", 1)[0])


def test_a_commit_lists_the_stored_arrays_it_rewrote_and_its_tombstone_keeps_them(tmp_path: Path) -> None:
    """The header's ``rewritten`` ranges name the arrays of the parent version whose chunks a
    commit wrote, including chunks written ahead; arrays the commit defined are new ids."""
    store = atlas.Atlas.create(tmp_path / "s")
    for i in range(5):
        add_dataset(store, f"d{i}", value=float(i))
    store.flush()
    assert _header(tmp_path / "s", 1)["rewritten"] == []
    aids = [store.open_dataset(f"d{i}")._ds.arrays["x"].aid for i in range(5)]
    store.buffer_bytes = 1  # d0's chunk is written ahead at once
    for i in (0, 1, 2, 4):
        store.open_dataset(f"d{i}").write_array("x", [3], np.array([7.0]))
    add_dataset(store, "new")
    store.flush()
    assert aids == sorted(aids)
    assert _header(tmp_path / "s", 2)["rewritten"] == [[aids[0], aids[2]], [aids[4], aids[4]]]
    store.create_dataset("later")
    store.flush()
    store.compact()  # versions 1 and 2 become tombstones
    kept = history.read_header(store.storage, mf.manifest_key(2, "json", "none"), 2)
    assert kept.removed is not None and kept.header["rewritten"] == [[aids[0], aids[2]], [aids[4], aids[4]]]
    assert _header(tmp_path / "s", 4)["rewritten"] == []  # compaction moves data, writes none


def test_rewritten_ranges_stop_at_their_limit() -> None:
    assert mf.rewritten_ranges([1, 2, 3, 7, 9, 10]) == [[1, 3], [7, 7], [9, 10]]
    assert mf.rewritten_ranges(list(range(0, 2 * mf.MAX_REWRITTEN_RANGES, 2))) is not None
    assert mf.rewritten_ranges(list(range(0, 2 * mf.MAX_REWRITTEN_RANGES + 2, 2))) is None
    assert mf.rewritten_of({"rewritten": [[1, 3]]}, "h") == [(1, 3)]
    assert mf.rewritten_of({}, "h") is None
    for bad in ([[3, 1]], [[0, 1]], [1, 2], "x", [[1, True]]):
        with pytest.raises(atlas.CorruptionError):
            mf.rewritten_of({"rewritten": bad}, "h")
