"""Memory stays bounded on writes: the default chunking cuts big arrays into chunks of a
few MiB, and a partial write (or a read) of a huge chunk costs about that chunk, not
several copies of it.

The memory figures are the peak resident size (``ru_maxrss``) of a fresh interpreter,
measured before and after the work.
"""

from __future__ import annotations

import ast
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import atlas
from atlas.core.state import AUTO_CHUNK_BYTES, default_chunk_shape
from atlas.dtypes import DTYPES
from atlas.format import codec, segment

MIB = 1 << 20
BIG = 300_000_000  # float32 cells: 1.2 GB as one chunk

# the memory tests measure the peak resident size (ru_maxrss) of a forked interpreter
measured = pytest.mark.skipif(
    sys.platform == "win32" or not hasattr(os, "fork"), reason="needs fork() and the resource module"
)


def _chunk_bytes(meta: dict) -> int:
    return math.prod(meta["chunk_shape"]) * {"float32": 4, "float64": 8, "int32": 4, "uint8": 1}[meta["dtype"]]


# ----------------------------------------------------------------------------- the default


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


# ----------------------------------------------------------------------------- memory


def _peak_growth(body: str, tmp_path: Path) -> dict[str, float]:
    """Run ``body`` in a fresh interpreter; it calls ``mark(name)`` after each step. Returns
    the peak resident size growth (MiB) over the baseline taken by ``base()`` (a peak: what
    ran before ``base()`` must be small)."""
    script = textwrap.dedent(
        """
        import os, sys
        # work in a fork of this small interpreter: a process started by exec keeps the peak
        # resident size of the (large) test runner that started it as its own ru_maxrss
        pid = os.fork()
        if pid:
            sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        import resource
        import numpy as np
        import atlas

        scale = 1 if sys.platform != "darwin" else 1024  # ru_maxrss: KiB on Linux, bytes on macOS
        def peak():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale / 1024
        marks = {}
        def base():
            marks["base"] = peak()
        def mark(name):
            marks[name] = peak() - marks["base"]
        path = sys.argv[1]
        # warm up: codecs, worker pools and imports cost the same whatever is written
        warm = atlas.Atlas.create(path + "-warm")
        w = warm.create_dataset("w")
        w.define_array("v", "float32", ["n"], [1000])
        w.write_array("v", [0], np.ones(1000, np.float32))
        warm.flush()
        warm.open_dataset("w").read_array("v")
        """
    ) + textwrap.dedent(body) + "\nprint(repr(marks))\n"
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "store")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert out.returncode == 0, out.stderr
    marks = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    marks.pop("base")
    return marks


@measured
def test_three_cells_into_a_big_array_with_the_default_chunking(tmp_path: Path) -> None:
    marks = _peak_growth(
        """
        store = atlas.Atlas.create(path)
        ds = store.create_dataset("d")
        ds.define_array("x", "float32", ["t"], [300_000_000], fill_value=float("nan"))
        base()
        ds.write_array("x", [5], np.array([1, 2, 3], np.float32))
        store.flush()
        mark("write+flush")
        again = atlas.Atlas.open(path)
        got = again.open_dataset("d").read_array("x", [0], [10])
        assert got[5:8].tolist() == [1, 2, 3] and np.isnan(got[0]), got
        again.open_dataset("d").write_array("x", [200_000_000], np.array([4, 5, 6], np.float32))
        again.flush()
        mark("reopen+read+write+flush")
        """,
        tmp_path,
    )
    assert max(marks.values()) < 64, marks


@measured
def test_three_cells_into_one_huge_chunk_cost_about_that_chunk(tmp_path: Path) -> None:
    cells = 64 << 20  # 256 MiB of float32, one chunk because the caller asks for it
    chunk_mib = cells * 4 / MIB
    marks = _peak_growth(
        f"""
        store = atlas.Atlas.create(path)
        ds = store.create_dataset("d")
        ds.define_array("x", "float32", ["t"], [{cells}], chunk_shape=[{cells}], fill_value=float("nan"))
        base()
        ds.write_array("x", [5], np.array([1, 2, 3], np.float32))
        store.flush()
        mark("write+flush")
        """,
        tmp_path,
    )
    assert marks["write+flush"] <= 1.3 * chunk_mib, marks


@measured
def test_reading_and_updating_a_stored_huge_chunk_cost_about_that_chunk(tmp_path: Path) -> None:
    cells = 64 << 20
    chunk_mib = cells * 4 / MIB
    store = atlas.Atlas.create(tmp_path / "store")
    ds = store.create_dataset("d")
    ds.define_array("x", "float32", ["t"], [cells], chunk_shape=[cells], fill_value=float("nan"))
    ds.write_array("x", [5], np.array([1, 2, 3], np.float32))
    store.flush()
    del store, ds
    marks = _peak_growth(  # in a process that did not write the chunk
        """
        again = atlas.Atlas.open(path)
        base()
        x = again.open_dataset("d").read_array("x")
        assert x[5:8].tolist() == [1, 2, 3] and np.isnan(x[-1])
        x[0] = 7  # the result is the caller's own
        del x
        mark("full read")
        view = again.open_dataset("d")
        view.write_array("x", [100], np.array([4, 5, 6], np.float32))
        again.flush()
        mark("update+flush")
        y = atlas.Atlas.open(path).open_dataset("d").read_array("x", [0], [110])
        assert np.isnan(y[0]) and y[5:8].tolist() == [1, 2, 3] and y[100:103].tolist() == [4, 5, 6]
        """,
        tmp_path,
    )
    assert max(marks.values()) <= 1.3 * chunk_mib, marks


# ----------------------------------------------------------------------------- correctness of the bounded paths


@pytest.mark.parametrize("codec_name", ["zstd", "none", "lz4"])
def test_large_blocks_encoded_in_pieces_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec_name: str) -> None:
    # make every block "large", with odd piece sizes, so the piecewise paths do all the work
    monkeypatch.setattr(codec, "STREAM_MIN_BYTES", 1)
    monkeypatch.setattr(segment, "STREAM_MIN_BYTES", 1)
    monkeypatch.setattr(codec, "_PIECE_BYTES", 1000)
    rng = np.random.default_rng(7)
    smooth = np.cumsum(rng.normal(size=50_001)).astype(np.float64)  # byte-shuffle wins on this
    store = atlas.Atlas.create(tmp_path / "s", codec=codec_name)
    ds = store.create_dataset("d")
    ds.define_array("x", "float64", ["t"], [smooth.size], chunk_shape=[smooth.size])
    ds.define_array("y", "int16", ["a", "b"], [301, 77], chunk_shape=[100, 77])
    ys = rng.integers(-500, 500, size=(301, 77)).astype(np.int16)
    ds.write_array("x", [0], smooth)
    ds.write_array("y", [0, 0], ys)
    store.flush()
    view = atlas.Atlas.open(tmp_path / "s").open_dataset("d")
    np.testing.assert_array_equal(view.read_array("x"), smooth)
    np.testing.assert_array_equal(view.read_array("y"), ys)
    assert atlas.Atlas.open(tmp_path / "s").verify() == []


def test_block_decoded_in_pieces_refuses_wrong_sizes() -> None:
    raw = np.arange(40_000, dtype=np.float32).view(np.uint8)
    for filter_id in (1, 4):
        stored, _ = codec.encode_large(raw, "zstd", filter_id)
        data = bytes(stored)
        np.testing.assert_array_equal(codec._decode_large(data, filter_id, raw.size), raw)
        for wrong in (raw.size - 4, raw.size + 4):
            with pytest.raises(ValueError):
                codec._decode_large(data, filter_id, wrong)


def test_stats_of_chunks_summarised_in_slices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from atlas import stats

    monkeypatch.setattr(stats, "STATS_SLICE_CELLS", 1000)
    rng = np.random.default_rng(3)
    vals = rng.normal(size=10_500).astype(np.float32)
    vals[rng.random(vals.size) < 0.2] = np.nan
    vals[:2500] = np.nan  # a whole slice of nulls
    ints = rng.integers(0, 2**63, size=4321, dtype=np.uint64)
    store = atlas.Atlas.create(tmp_path / "s")
    ds = store.create_dataset("d")
    ds.define_array("f", "float32", ["n"], [vals.size], chunk_shape=[vals.size], fill_value=float("nan"))
    ds.define_array("u", "uint64", ["n"], [ints.size], chunk_shape=[ints.size])
    ds.write_array("f", [0], vals)
    ds.write_array("u", [0], ints)
    store.flush()
    view = atlas.Atlas.open(tmp_path / "s").open_dataset("d")
    st = view.array_stats("f")
    assert st["null_count"] == int(np.isnan(vals).sum())
    assert st["min"] == float(np.nanmin(vals)) and st["max"] == float(np.nanmax(vals))
    su = view.array_stats("u")
    assert su["min"] == int(ints.min()) and su["max"] == int(ints.max()) and su["null_count"] == 0
