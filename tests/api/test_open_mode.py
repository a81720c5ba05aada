"""``Atlas.open(path, mode=...)``: read-only handles on the newest version."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

import atlas


def _store(tmp_path: Path) -> Path:
    path = tmp_path / "s.atlas"
    s = atlas.Atlas.create(path)
    d = s.create_dataset("a")
    d.define_array("x", "float64", ["n"], [3], [3])
    d.write_array("x", [0], np.arange(3.0))
    s.flush()
    return path


def test_mode_r_reads_the_newest_version_and_refuses_every_write(tmp_path: Path) -> None:
    path = _store(tmp_path)
    writer = atlas.Atlas.open(path)
    writer.create_dataset("b")
    writer.flush()
    r = atlas.Atlas.open(path, mode="r")
    assert r.list_datasets() == ["a", "b"] and r.version == writer.version
    np.testing.assert_array_equal(r.open_dataset("a").read_array("x"), np.arange(3.0))
    writes = [
        lambda: r.create_dataset("c"),
        lambda: r.delete_dataset("a"),
        lambda: r.open_dataset("a").set_attribute("k", 1),
        lambda: r.open_dataset("a").write_array("x", [0], np.zeros(3)),
    ]
    for write in writes:
        with pytest.raises(atlas.ReadOnlyError, match="mode='r'"):
            write()
    assert atlas.Atlas.open(path).list_datasets() == ["a", "b"]  # nothing changed
    again = pickle.loads(pickle.dumps(r))  # a dask worker's copy stays read-only
    with pytest.raises(atlas.ReadOnlyError, match="mode='r'"):
        again.create_dataset("c")


def test_mode_r_plus_is_the_default_writable_handle(tmp_path: Path) -> None:
    path = _store(tmp_path)
    s = atlas.Atlas.open(path, mode="r+")
    s.create_dataset("c")
    s.flush()
    assert atlas.Atlas.open(path).list_datasets() == ["a", "c"]


@pytest.mark.parametrize("mode", ["w", "a", "rw", ""])
def test_other_modes_are_refused(tmp_path: Path, mode: str) -> None:
    path = _store(tmp_path)
    with pytest.raises(ValueError, match="mode must be 'r'"):
        atlas.Atlas.open(path, mode=mode)


def test_an_old_version_cannot_be_opened_writable(tmp_path: Path) -> None:
    path = _store(tmp_path)
    with pytest.raises(ValueError, match="read-only"):
        atlas.Atlas.open(path, version=1, mode="r+")
    assert atlas.Atlas.open(path, version=1, mode="r").list_datasets() == ["a"]
