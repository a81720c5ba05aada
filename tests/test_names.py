"""Dataset and array names: what ``check_name`` accepts, names never becoming file names,
and attribute keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from store_helpers import stored_files

import atlas
from atlas.names import check_key, check_name


def test_names_never_become_file_names(tmp_path: Path) -> None:
    weird = ["Ünïcødé ✓", "a#b%c~d", "back\\slash*", "x" * 200, "dots..and.", "nul\x00byte"]
    store = atlas.Atlas.create(tmp_path / "s")
    for name in weird:
        ds = store.create_dataset(name)
        ds.define_array(name, "int32", ["d"], [2])
        ds.write_array(name, [0], np.array([1, 2], dtype=np.int32))
        ds.set_attribute(name, name)
    store.flush()
    files = stored_files(tmp_path / "s")
    for name in weird:
        assert not any(name in f for f in files)
    again = atlas.Atlas.open(tmp_path / "s")
    assert again.list_datasets() == weird
    for name in weird:
        ds = again.open_dataset(name)
        assert ds.read_array(name).tolist() == [1, 2]
        assert ds.get_attribute(name) == name



@pytest.mark.parametrize("name", ["a", "Ünïcødé ✓", "a.b", "...", "x_", " ", "a\\b", "nul\x00byte", "x" * 1000])
def test_good_names(name: str) -> None:
    assert check_name(name, "dataset") == name


@pytest.mark.parametrize("name", ["", "a/b", "/", "_hidden", ".", ".."])
def test_bad_names_say_what_a_name_must_be(name: str) -> None:
    with pytest.raises(ValueError, match=f"invalid array name {name!r}.*no '/'"):
        check_name(name, "array")


@pytest.mark.parametrize("name", [None, 1, b"a", ["a"]])
def test_names_must_be_str(name: object) -> None:
    with pytest.raises(TypeError, match=f"dataset name must be a str, not {type(name).__name__}"):
        check_name(name, "dataset")


def test_attribute_keys_are_any_str() -> None:
    for key in ("", "/", "_x", ".."):
        assert check_key(key) == key
    with pytest.raises(TypeError, match="attribute key must be a str, not int"):
        check_key(1)
