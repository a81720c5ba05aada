"""What a handle changed since the version it read, independent of the ids it took: the
datasets it created, deleted or changed, and for each the attributes and arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import atlas
from atlas.core.changes import changes_of


def _store(path: Path) -> atlas.Atlas:
    s = atlas.Atlas.create(path)
    for i in range(3):
        ds = s.create_dataset(f"d{i}")
        ds.set_attribute("cycle", i)
        ds.define_array("t", "float32", ["z"], [2])
        ds.write_array("t", [0], np.full(2, i, dtype=np.float32))
    s.flush()
    return atlas.Atlas.open(path)


def test_changes_name_what_was_created_deleted_and_changed(tmp_path: Path) -> None:
    s = _store(tmp_path / "s")
    s.delete_dataset("d0")
    d1 = s.open_dataset("d1")
    d1.set_attribute("station", "x")
    d2 = s.open_dataset("d2")
    d2.write_array("t", [0], np.array([7, 7], dtype=np.float32))
    new = s.create_dataset("n")
    new.set_attribute("cycle", 9)
    new.define_array("u", "int16", ["z"], [3])
    changes = changes_of(s)
    assert changes.version == s.version
    by_name = {d.name: d for d in changes.datasets}
    assert sorted(by_name) == ["d0", "d1", "d2", "n"]
    assert by_name["d0"].deleted and not by_name["d0"].created
    assert by_name["d1"].attrs[0::3] == ["station"] and by_name["d1"].removed == () and not by_name["d1"].arrays
    (written,) = by_name["d2"].arrays
    assert written.name == "t" and written.base_aid > 0 and written.number > 0  # its chunk is in the rows
    assert len(changes.rows["t"]) == 1
    assert by_name["n"].created and by_name["n"].attrs[0::3] == ["cycle"]
    (defined,) = by_name["n"].arrays
    assert defined.name == "u" and defined.base_aid == 0 and defined.schema is not None and defined.stats is None


def test_a_handle_that_changed_nothing_has_no_changes(tmp_path: Path) -> None:
    s = _store(tmp_path / "s")
    s.open_dataset("d1").read_array("t")  # reading is no change
    assert len(changes_of(s)) == 0


def test_the_changes_of_a_checkpointed_handle_are_refused(tmp_path: Path) -> None:
    from atlas.core import checkpoint

    s = _store(tmp_path / "s")
    s.create_dataset("late").set_attribute("cycle", 3)
    checkpoint.checkpoint(s)
    with pytest.raises(ValueError, match="checkpoints"):
        changes_of(s)
