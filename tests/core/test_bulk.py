"""Scans planned over columns give exactly what reading dataset by dataset gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import atlas
from atlas.core import bulk, scan


@pytest.fixture(autouse=True)
def small_scans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "MIN_DATASETS", 2)


def _mixed(path: Path) -> atlas.Atlas:
    """Datasets whose array ``v`` has several dtypes and shapes, is missing, never
    written, chunked, or a string; flushed into blocks shared by several dtypes."""
    s = atlas.Atlas.create(path)
    rng = np.random.default_rng(5)
    for i in range(40):
        ds = s.create_dataset(f"d{i:02d}")
        kind = i % 8
        if kind == 0:
            ds.define_array("v", "float32", ["z"], [6], fill_value=float("nan"))
            ds.write_array("v", [0], rng.random(6).astype(np.float32))
        elif kind == 1:
            ds.define_array("v", "int8", ["z"], [3])  # 3 bytes: the next chunk is misaligned
            ds.write_array("v", [0], np.array([i, -i, 7], dtype=np.int8))
        elif kind == 2:
            ds.define_array("v", "float64", ["z"], [6])
            ds.write_array("v", [0], rng.random(6))
        elif kind == 3:
            ds.define_array("v", "float32", ["z"], [6], fill_value=-1.0)  # never written: its fill
        elif kind == 4:
            ds.define_array("other", "int32", ["z"], [2])  # no v at all
        elif kind == 5:
            ds.define_array("v", "datetime64[ns]", ["z"], [2])
            ds.write_array("v", [0], np.array([i, 2 * i], dtype="datetime64[ns]"))
        elif kind == 6:
            ds.define_array("v", "float32", ["z"], [6], chunk_shape=[2])  # several chunks
            ds.write_array("v", [0], rng.random(6).astype(np.float32))
        else:
            ds.define_array("v", "int16", ["y", "z"], [2, 3])
            ds.write_array("v", [0, 0], np.arange(6, dtype=np.int16).reshape(2, 3) + i)
    s.flush()
    return atlas.Atlas.open(path)


def _same(a: list[np.ndarray | None], b: list[np.ndarray | None]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if x is None or y is None:
            assert x is None and y is None
            continue
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)
        assert x.flags.writeable


def test_a_scan_over_columns_equals_reading_each_dataset(tmp_path: Path) -> None:
    s = _mixed(tmp_path / "s")
    names = s.list_datasets()
    assert bulk.plan(s, "v", names, None, None) is not None
    _same(s.read_array_across("v", names), scan._read_each(s, "v", names, None, None))
    window = ([0], [2])
    shuffled = [n for n in names[::-1] if int(n[1:]) % 8 != 7] + ["nope"]  # one-axis arrays
    _same(s.read_array_across("v", shuffled, *window), scan._read_each(s, "v", shuffled, *window))


def test_changed_and_buffered_datasets_are_read_each(tmp_path: Path) -> None:
    s = _mixed(tmp_path / "s")
    s.open_dataset("d00").write_array("v", [0], np.full(6, 9, dtype=np.float32))  # buffered
    s.delete_dataset("d02")
    d = s.create_dataset("new")
    d.define_array("v", "float32", ["z"], [6])
    d.write_array("v", [0], np.ones(6, dtype=np.float32))
    names = s.list_datasets()
    got = s.read_array_across("v", names)
    assert got[0].tolist() == [9] * 6 and got[-1].tolist() == [1] * 6
    _same(got, scan._read_each(s, "v", names, None, None))


def test_a_stacked_scan_over_columns_equals_the_stacked_read(tmp_path: Path) -> None:
    s = atlas.Atlas.create(tmp_path / "s")
    for i in range(30):
        ds = s.create_dataset(f"d{i:02d}")
        ds.define_array("t", "float32", ["z"], [5], fill_value=float("nan"))
        if i % 7:
            ds.write_array("t", [0], np.arange(5, dtype=np.float32) * i)
    s.flush()
    s = atlas.Atlas.open(tmp_path / "s")
    names = s.list_datasets()
    got = s.read_array_across_stacked("t", names)
    assert got.shape == (30, 5) and np.isnan(got[0]).all() and got[3].tolist() == [0, 3, 6, 9, 12]
    np.testing.assert_array_equal(got, np.stack(scan._read_each(s, "t", names, None, None)))  # type: ignore[arg-type]
    part = s.read_array_across_stacked("t", names[5:], [1], [2])
    assert part.shape == (25, 2) and part[0].tolist() == [5, 10]


def test_a_chunk_that_does_not_fit_its_schema_is_corruption_naming_the_dataset(tmp_path: Path) -> None:
    s = _mixed(tmp_path / "s")
    var = s._variables["v"]
    idx = s._index(var)
    row = idx.first_chunk_row(s.open_dataset("d08")._ds.arrays["v"].aid)
    idx.rows["nbytes"][row] += 4  # as a damaged index would say
    s2 = s  # the damaged index is the one this handle holds
    names = [n for n in s2.list_datasets() if int(n[1:]) % 8 == 0]
    with pytest.raises(atlas.CorruptionError, match="'d08'"):
        s2.read_array_across("v", names)


def test_profiles_of_many_lengths_are_gathered_together(tmp_path: Path) -> None:
    """One-axis arrays of one dtype and many lengths (each its own schema) share blocks:
    whole reads, common windows and stacked windows equal the per-dataset reads."""
    s = atlas.Atlas.create(tmp_path / "s")
    rng = np.random.default_rng(1)
    for i in range(60):
        ds = s.create_dataset(f"p{i:02d}")
        n = int(rng.integers(8, 40))
        ds.define_array("t", "float32", ["z"], [n], fill_value=float("nan"))
        if i % 9:
            ds.write_array("t", [0], rng.random(n).astype(np.float32))
    s.flush()
    s = atlas.Atlas.open(tmp_path / "s")
    names = s.list_datasets()
    assert len({s.open_dataset(n).array_meta("t")["shape"][0] for n in names}) > 10
    _same(s.read_array_across("t", names), scan._read_each(s, "t", names, None, None))
    _same(s.read_array_across("t", names, [2], [5]), scan._read_each(s, "t", names, [2], [5]))
    stacked = s.read_array_across_stacked("t", names, [1], [6])
    each = scan._read_each(s, "t", names, [1], [6])
    np.testing.assert_array_equal(stacked, np.stack(each))  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_blocks_of_whole_chunks_decode_straight_into_a_stacked_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dtype: str
) -> None:
    """A block holding the whole chunks of consecutive datasets is decoded into the stacked
    result itself (decimal-filtered blocks straight, others through one copy); the result
    is what reading dataset by dataset gives, and it is the caller's own: no cache holds it."""
    from atlas.core import read

    monkeypatch.setattr(read, "scan_cache_mode", lambda *a: "read")
    placed: list[int] = []
    real = bulk._whole_block_dest

    def spy(*args: object) -> object:
        view = real(*args)  # type: ignore[arg-type]
        placed.append(view is not None)
        return view

    monkeypatch.setattr(bulk, "_whole_block_dest", spy)
    s = atlas.Atlas.create(tmp_path / "s")
    rng = np.random.default_rng(3)
    for i in range(300):
        ds = s.create_dataset(f"p{i:03d}")
        ds.define_array("t", dtype, ["z"], [50])
        values = np.round(rng.random(50) * 30, 1) if dtype != "int32" else rng.integers(-999, 999, 50)
        ds.write_array("t", [0], values.astype(dtype))
    s.flush()
    fresh = atlas.Atlas.open(tmp_path / "s")
    names = fresh.list_datasets()
    got = fresh.read_array_across_stacked("t", names)
    assert any(placed)
    want = np.stack([fresh.open_dataset(n).read_array("t") for n in names])
    assert got.dtype == np.dtype(dtype) and np.array_equal(got, want)
    got[:] = 0
    assert np.array_equal(fresh.read_array_across_stacked("t", names), want)


def test_scans_and_reads_of_a_fresh_handle_never_put_the_index_rows_together(tmp_path: Path) -> None:
    """A fresh handle holds a variable's index by field: scans, one dataset's read and an
    append never build its whole rows (a million of them would cost more than the scan)."""
    s = atlas.Atlas.create(tmp_path / "s")
    for flush in range(3):  # three runs, in order
        for i in range(10):
            ds = s.create_dataset(f"d{flush}{i}")
            ds.define_array("t", "float32", ["z"], [4])
            ds.write_array("t", [0], np.full(4, flush * 10 + i, dtype=np.float32))
        s.flush()
    fresh = atlas.Atlas.open(tmp_path / "s")
    names = fresh.list_datasets()
    assert fresh.read_array_across_stacked("t", names)[:, 0].tolist() == list(range(30))
    assert [a[1] for a in fresh.read_array_across("t", names[::-1])] == list(range(29, -1, -1))
    assert fresh.open_dataset("d15").read_array("t").tolist() == [15.0] * 4
    idx = fresh._variables["t"].index
    assert idx is not None and idx._rows is None
    ds = fresh.create_dataset("late")
    ds.define_array("t", "float32", ["z"], [4])
    ds.write_array("t", [0], np.ones(4, dtype=np.float32))
    fresh.flush()
    after = fresh._variables["t"].index
    assert after is not None and after._rows is None and len(after) == 31
    assert fresh.read_array_across_stacked("t", [*names, "late"])[-1].tolist() == [1.0] * 4


def test_a_stacked_scan_over_columns_refuses_dtypes_that_share_a_numpy_type(tmp_path: Path) -> None:
    """Timestamps and int64 are both 8-byte integers in memory but different dtypes: a
    stacked read over columns refuses to stack them, naming both, as the per-dataset read
    does; the facts of the plan tell them apart."""
    s = atlas.Atlas.create(tmp_path / "s")
    for i in range(bulk.MIN_DATASETS + 6):
        ds = s.create_dataset(f"d{i:03d}")
        dtype = "timestamp_nanoseconds" if i % 2 else "int64"
        ds.define_array("x", dtype, ["z"], [4])
        ds.write_array("x", [0], np.arange(4, dtype=np.int64) + i)
    s.flush()
    s = atlas.Atlas.open(tmp_path / "s")
    names = s.list_datasets()
    p = bulk.plan(s, "x", names, None, None)
    assert p is not None and not p.others and sorted(p.facts.dtype_names) == ["int64", "timestamp_nanoseconds"]
    with pytest.raises(TypeError, match="int64.*timestamp_nanoseconds"):
        s.read_array_across_stacked("x", names)
    evens = names[::2]
    assert s.read_array_across_stacked("x", evens).tolist() == [[i, i + 1, i + 2, i + 3] for i in range(0, len(names), 2)]
