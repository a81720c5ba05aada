"""Array state: the default chunking cuts big arrays into chunks of a few MiB and leaves
ordinary ones whole; a schema's chunk grid, fresh chunks and identity."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import atlas
from atlas.core.state import AUTO_CHUNK_BYTES, ArrayState, Schema, default_chunk_shape
from atlas.dtypes import DTYPES

MIB = 1 << 20
BIG = 300_000_000  # float32 cells: 1.2 GB as one chunk


def _chunk_bytes(meta: dict) -> int:
    return math.prod(meta["chunk_shape"]) * {"float32": 4, "float64": 8, "int32": 4, "uint8": 1}[meta["dtype"]]


def test_default_chunk_of_a_big_array_is_a_few_mib(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    ds = store.create_dataset("d")
    ds.define_array("big", "float32", ["t"], [BIG])
    meta = ds.array_meta("big")
    assert meta is not None and meta["shape"] == [BIG]
    assert MIB <= _chunk_bytes(meta) <= AUTO_CHUNK_BYTES
    ds.define_array("grid", "float64", ["time", "lat", "lon"], [10_000, 181, 360])
    meta = ds.array_meta("grid")
    assert meta is not None and MIB <= _chunk_bytes(meta) <= AUTO_CHUNK_BYTES
    # the chunking survives a reopen
    store.flush()
    again = atlas.Atlas.open(tmp_path / "s").open_dataset("d").array_meta("big")
    assert again is not None and again["chunk_shape"] == ds.array_meta("big")["chunk_shape"]


@pytest.mark.parametrize(
    ("dtype", "shape"),
    [
        ("float32", [3]),
        ("float32", []),
        ("float64", [0, 10**9]),
        ("float32", [1 << 20]),  # exactly 4 MiB: still one chunk
        ("uint8", [2048, 2048]),
        ("float32", [100, 100, 100]),
        ("string", [1000]),
    ],
)
def test_ordinary_arrays_keep_chunk_shape_equal_to_shape(tmp_path: Path, dtype: str, shape: list[int]) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    ds = store.create_dataset("d")
    ds.define_array("x", dtype, [f"d{i}" for i in range(len(shape))], shape)
    meta = ds.array_meta("x")
    assert meta is not None
    assert meta["chunk_shape"] == ([0, 10**9] if shape == [0, 10**9] else shape)


def test_an_explicit_chunk_shape_is_kept(tmp_path: Path) -> None:
    store = atlas.Atlas.create(tmp_path / "s")
    ds = store.create_dataset("d")
    ds.define_array("x", "float32", ["t"], [BIG], chunk_shape=[BIG])
    assert ds.array_meta("x")["chunk_shape"] == [BIG]


def test_default_chunk_shape_rule() -> None:
    f4 = DTYPES["float32"]
    # just over the limit: halved once
    assert default_chunk_shape(((1 << 20) + 1,), f4) == ((1 << 19) + 1,)
    # the largest axis is halved first; of equal axes the leading one
    assert default_chunk_shape((4096, 4096), f4) == (1024, 1024)
    assert default_chunk_shape((100_000, 181, 360), f4) == (98, 91, 90)
    assert default_chunk_shape((24, 181, 360), f4) == (24, 181, 180)
    assert default_chunk_shape((3, 10**8), f4) == (3, 195313)
    # strings are sized by what a buffered cell costs
    assert default_chunk_shape((1 << 20,), DTYPES["string"]) == (1 << 16,)
    for shape in [(BIG,), (7, 11, 13, 17, 19, 23), (2**40, 3), (5, 2**50)]:
        for name in ("uint8", "float64", "string"):
            cs = default_chunk_shape(shape, DTYPES[name])
            cell = 64 if name == "string" else DTYPES[name].itemsize
            assert all(1 <= c <= n for c, n in zip(cs, shape, strict=True))
            assert math.prod(cs) * cell <= AUTO_CHUNK_BYTES or cs == shape


def test_xarray_ingest_uses_the_default_for_big_variables_only(tmp_path: Path) -> None:
    xr = pytest.importorskip("xarray")
    big = np.arange(3 << 20, dtype=np.float32)  # 12 MiB
    small = np.arange(1000, dtype=np.float64)
    ds = xr.Dataset({"big": ("n", big), "small": ("m", small), "pinned": ("n", big)})
    store = atlas.Atlas.create(tmp_path / "s")
    store.add_xarray_dataset(ds, "a", chunks={"pinned": [3 << 20]})
    view = store.open_dataset("a")
    meta = view.array_meta("big")
    assert meta["chunk_shape"] != meta["shape"] and _chunk_bytes(meta) <= AUTO_CHUNK_BYTES
    assert view.array_meta("small")["chunk_shape"] == [1000]
    assert view.array_meta("pinned")["chunk_shape"] == [3 << 20]
    store.flush()
    back = atlas.Atlas.open(tmp_path / "s").open_as_xarray_dataset("a")
    np.testing.assert_array_equal(np.asarray(back["big"].values), big)



def test_a_schema_knows_its_chunk_grid_and_edge_chunks() -> None:
    s = Schema(DTYPES["float32"], (10, 7), (4, 4), ("a", "b"), None)
    assert s.grid == (3, 2) and s.nchunks == 6 and s.strides == (2, 1) and not s.single
    assert s.chunk_extent((0, 0)) == (4, 4) and s.chunk_extent((2, 1)) == (2, 3)
    assert s.size == 70
    one = Schema(DTYPES["int8"], (5,), (5,), ("n",), 3)
    assert one.single and one.grid == (1,) and one.strides == (1,)
    empty = Schema(DTYPES["int8"], (0, 5), (0, 5), ("a", "b"), None)
    assert empty.nchunks == 0 and empty.size == 0
    scalar = Schema(DTYPES["int8"], (), (), (), None)
    assert scalar.single and scalar.chunk_extent(()) == ()


def test_new_chunks_hold_the_fill_value_or_zero() -> None:
    nan = Schema(DTYPES["float64"], (4,), (4,), ("n",), float("nan"))
    assert np.isnan(nan.new_chunk((3,))).all()
    zeros = Schema(DTYPES["int32"], (4,), (4,), ("n",), None).new_chunk((2, 2))
    assert zeros.dtype == np.int32 and not zeros.any()
    text = Schema(DTYPES["string"], (4,), (4,), ("n",), "n/a").new_chunk((2,))
    assert text.dtype == object and text.tolist() == ["n/a", "n/a"]
    blank = Schema(DTYPES["string"], (4,), (4,), ("n",), None).new_chunk((1,))
    assert blank.tolist() == [""]


def test_equal_schemas_share_a_key_and_meta_is_a_fresh_copy() -> None:
    def make(fill: object) -> Schema:
        return Schema(DTYPES["float64"], (4,), (2,), ("n",), fill)

    assert make(float("nan")).key == make(float("nan")).key  # NaN fills compare by their bits
    assert make(1.0).key != make(2.0).key and make(0.0).key != make(-0.0).key
    assert make(None).encoded() == ["float64", [4], [2], ["n"], None]
    assert make(float("inf")).encoded()[4] == "f64:7ff0000000000000"
    s = make(None)
    meta = s.meta()
    meta["shape"].append(9)
    assert s.meta() == {"dtype": "float64", "shape": [4], "chunk_shape": [2], "dimension_names": ["n"]}


def _profiles(path: Path, n: int) -> atlas.Atlas:
    s = atlas.Atlas.create(path)
    for i in range(n):
        ds = s.create_dataset(f"d{i:03d}")
        ds.set_attribute("cycle", i)
        for name in ("t", "chunked"):
            ds.define_array(name, "float32", ["z"], [6], chunk_shape=[6 if name == "t" else 2])
            ds.write_array(name, [0], np.full(6, i, dtype=np.float32))
    s.flush()
    return atlas.Atlas.open(path)


def test_an_array_read_alone_has_one_state_which_its_dataset_keeps(tmp_path: Path) -> None:
    """Reading one array of a dataset builds that array's state alone, held by the dataset's
    state; building all of them later reuses it, so writes through either are the same."""
    s = _profiles(tmp_path / "s", 3)
    view = s.open_dataset("d001")
    ds = view._ds
    assert view.read_array("chunked").tolist() == [1.0] * 6  # several chunks: a state, built alone
    alone = ds.built_alone("chunked")
    assert alone is not None and ds.arrays_untouched and ds.built_alone("t") is None
    assert ds.arrays["chunked"] is alone and ds.built_alone("chunked") is None  # reused, then the one
    view.write_array("chunked", [0], np.full(2, -1.0, dtype=np.float32))
    assert s.read_array_across("chunked", ["d000", "d001"])[1].tolist() == [-1.0, -1.0, 1, 1, 1, 1]


def test_a_scan_leaves_no_state_behind_for_datasets_it_only_read(tmp_path: Path) -> None:
    """States a scan makes of datasets no view holds are its own: the handle keeps none."""
    import gc

    s = _profiles(tmp_path / "s", 5)
    names = s.list_datasets()
    got = s.read_array_across("chunked", names)  # several chunks each: dataset by dataset
    assert [a[0] for a in got] == [0, 1, 2, 3, 4]
    gc.collect()
    assert s._datasets.held_states() == []
    assert not [o for o in gc.get_objects() if isinstance(o, ArrayState) and o.dataset in names]
    view = s.open_dataset("d002")
    got = s.read_array_across("chunked", names)
    assert [a[0] for a in got] == [0, 1, 2, 3, 4]
    assert s._datasets.held_states() == [view._ds]


def test_two_threads_reading_one_array_alone_get_one_state(tmp_path: Path) -> None:
    import threading

    s = _profiles(tmp_path / "s", 2)
    ds = s.open_dataset("d001")._ds
    both = threading.Barrier(2)

    def make(dataset: str, entries: object, array: str) -> ArrayState | None:
        both.wait(timeout=10)  # each thread makes its own state at the same time
        return s._array_from_entries(dataset, entries, array)

    got: list[ArrayState | None] = []
    threads = [threading.Thread(target=lambda: got.append(ds.array_state("chunked", make))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got[0] is not None and got[0] is got[1] is ds.built_alone("chunked")
    assert ds.arrays["chunked"] is got[0]


def test_weak_states_hold_a_state_while_something_else_does(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from atlas.core import state
    from atlas.core.state import DatasetState, WeakStates

    monkeypatch.setattr(state, "_PRUNE_AT", 4)
    kept = WeakStates()
    held = [DatasetState(f"d{i}") for i in range(3)]
    for s in held:
        kept[s.name] = s
    for i in range(10):  # states nothing else holds: gone at once, their entries pruned
        kept[f"gone{i}"] = DatasetState(f"gone{i}")
    gc.collect()
    assert kept.get("gone3") is None and kept.get("d1") is held[1] and len(kept) == 3
    assert len(kept._refs) <= 8  # dead entries were dropped as the map grew
    assert kept.pop("d0") is held[0] and kept.get("d0", "none") == "none"
    kept.update({"d0": held[0]})
    assert sorted(s.name for s in kept.values()) == ["d0", "d1", "d2"]


def test_a_dataset_of_many_arrays_finds_an_entry_through_a_map_made_once() -> None:
    """A sweep asks each array's metadata of a dataset of 60 arrays (an Argo file): scanning
    the entries for each would cost the square of their number. Past a few arrays, the
    entries are found through a map made at the first lookup, dropped with the entries."""
    from atlas.core.state import _SCANNED_ENTRIES, DatasetState

    few = DatasetState("few")
    few_entries = tuple((f"a{j}", j + 1, j, None, ()) for j in range(_SCANNED_ENTRIES))
    assert few.raw_entry(few_entries, "a3") is few_entries[3]
    assert few._entry_at is None  # scanned: no map for a few arrays

    ds = DatasetState("many")
    entries = tuple((f"VAR{j}", j + 1, j, None, ()) for j in range(60))
    ds._arrays, ds._raw_arrays = None, entries  # as a dataset read from a shard
    assert ds.raw_entry(entries, "VAR41") is entries[41]
    made = ds._entry_at
    assert made is not None
    assert [ds.raw_entry(entries, f"VAR{j}") for j in range(60)] == list(entries)
    assert ds._entry_at is made  # one map for every lookup
    assert ds.raw_entry(entries, "NOPE") is None
    assert ds.schema_of("VAR7", list(range(100))) == 7
    assert ds.schema_of("NOPE", list(range(100))) is None

    ds._build = lambda state, raw: {}
    ds.arrays  # noqa: B018 - builds the states, which drops the raw entries and their map
    assert ds._entry_at is None
