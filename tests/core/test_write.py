"""Writes: memory stays bounded (a few cells written into a big array with the default
chunking cost little, and a partial write, or a read, of a huge chunk costs about that
chunk, not several copies of it), and a write buffers only the chunks it touches.

The memory figures are the peak resident size (``ru_maxrss``) of a fresh interpreter,
measured before and after the work.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import atlas

MIB = 1 << 20

# the memory tests measure the peak resident size (ru_maxrss) of a forked interpreter
measured = pytest.mark.skipif(
    sys.platform == "win32" or not hasattr(os, "fork"), reason="needs fork() and the resource module"
)


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


# ----------------------------------------------------------------------------- what a write buffers


def test_a_write_buffers_only_the_chunks_it_touches(store: atlas.Atlas) -> None:
    view = store.create_dataset("d")
    view.define_array("x", "int16", ["a", "b"], [10, 10], chunk_shape=[4, 4], fill_value=-1)
    grid = np.arange(100, dtype=np.int16).reshape(10, 10)
    view.write_array("x", [0, 0], grid)
    store.flush()
    again = atlas.Atlas.open(store.storage)
    other = again.open_dataset("d")
    other.write_array("x", [3, 3], np.full((2, 2), 500, dtype=np.int16))  # corners of four chunks
    arr = other._ds.arrays["x"]
    assert sorted(arr.dirty) == [0, 1, 3, 4]  # chunk ids of the 3x3 grid, row-major
    assert arr.dirty[4].shape == (4, 4) and arr.dirty[4][0, 0] == 500 and arr.dirty[4][1, 1] == grid[5, 5]
    other.write_array("x", [8, 8], np.full((2, 2), 7, dtype=np.int16))  # the whole edge chunk 8
    assert sorted(arr.dirty) == [0, 1, 3, 4, 8] and arr.dirty[8].shape == (2, 2)
    again.flush()
    want = grid.copy()
    want[3:5, 3:5] = 500
    want[8:, 8:] = 7
    np.testing.assert_array_equal(atlas.Atlas.open(store.storage).open_dataset("d").read_array("x"), want)


def test_a_write_past_the_edge_changes_nothing(store: atlas.Atlas) -> None:
    view = store.create_dataset("d")
    view.define_array("x", "float32", ["n"], [6], chunk_shape=[4])
    with pytest.raises(RuntimeError, match="out of bounds"):
        view.write_array("x", [5], np.ones(2, dtype=np.float32))
    assert not view._ds.arrays["x"].dirty and store._dirty_bytes == 0
    view.write_array("x", [4], np.ones(2, dtype=np.float32))
    assert store._dirty_bytes == 8  # the edge chunk holds two cells
