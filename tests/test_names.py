"""Dataset and array names: what ``check_name`` accepts, and names never becoming file names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from store_helpers import stored_files

import atlas


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

