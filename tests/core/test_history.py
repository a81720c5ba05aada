"""A store's history: versions listed and opened read-only, numbers never taken twice,
readers of removed versions told so, and tags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from store_helpers import add_dataset, first_values, flushed_store, write_profiles

import atlas


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

