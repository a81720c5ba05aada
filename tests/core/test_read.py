"""Reads of one array: arguments checked before any I/O, array states built meanwhile, and
no blocks decoded ahead when the cache is off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from store_helpers import write_profiles

import atlas
from atlas.core import read


def test_reads_check_their_arguments_before_any_io(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    write_profiles(store, 3)
    store.flush()
    for seg in (tmp_path / "s" / "data").iterdir():
        seg.unlink()  # any read of data now fails
    view = atlas.Atlas.open(tmp_path / "s").open_dataset("p0")
    with pytest.raises(TypeError):
        view.read_array("temperature", start="zz")
    with pytest.raises(OverflowError):
        view.read_array("temperature", start=[0], shape=[-1])
    with pytest.raises(ValueError, match="axes"):
        view.read_array("temperature", start=[0, 0])
    with pytest.raises(TypeError):
        view.read_array(["temperature"])  # type: ignore[arg-type]
    with pytest.raises(atlas.CorruptionError):
        view.read_array("temperature")


def test_a_read_survives_the_array_states_being_built_meanwhile(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    write_profiles(store, 3)
    store.flush()
    want = store.open_dataset("p1").read_array("temperature")
    fresh = atlas.Atlas.open(tmp_path / "s")
    ds = fresh.open_dataset("p1")._ds
    assert ds.arrays_untouched
    ds.arrays  # noqa: B018 - another thread builds them, as a concurrent array_stats() would
    got = read.read_raw_array(fresh, ds, "temperature", [0], [3])  # called after its untouched check
    assert got is not None and np.array_equal(got, want[:3], equal_nan=True)


def test_cache_off_reads_no_blocks_ahead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import atlas.core.reader as reader

    store = atlas.Atlas.create(tmp_path / "s")
    write_profiles(store, 400, length=1000)  # ~1.6 MB of temperature: several blocks
    store.flush()
    decoded = []
    real = reader.decode_block
    monkeypatch.setattr(reader, "decode_block", lambda *a: decoded.append(1) or real(*a))
    opened = atlas.Atlas.open(tmp_path / "s")
    opened.cache_bytes = 0
    for name in opened.list_datasets()[:20]:
        opened.open_dataset(name).read_array("temperature")
    assert len(decoded) == 20  # one block per read, none decoded ahead and thrown away



def test_a_large_result_has_pages_of_its_own_and_behaves_as_any_array() -> None:
    import pickle

    from atlas.core import read as read_module

    big = read_module.result_buffer((3, read_module.OWN_PAGES_BYTES // 4), np.dtype("float32"))
    small = read_module.result_buffer((3, 4), np.dtype("float32"))
    assert big.flags.writeable and big.shape == (3, read_module.OWN_PAGES_BYTES // 4) and big.dtype == np.float32
    assert small.flags.owndata  # small results are ordinary arrays
    big[...] = 1.5
    row = big[1]
    del big  # a view keeps the map alive
    assert float(row.sum()) == 1.5 * len(row)
    assert np.array_equal(pickle.loads(pickle.dumps(row)), row)
