"""``atlas.integrations.netcdf.reading``: decoding one NetCDF file (in memory, or marked for
streaming), its warnings and errors, and the dask blocks a streamed file is read in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from netcdf_helpers import write_profile

from atlas.integrations.netcdf.reading import (
    describe_error,
    open_netcdf,
    plan_chunks,
    read_netcdf,
)


@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_64BIT_OFFSET", "NETCDF3_CLASSIC"])
def test_in_memory_decode_is_what_xarray_gives(tmp_path: Path, fmt: str) -> None:
    path = write_profile(tmp_path / "p.nc", fmt=fmt)
    decoded = read_netcdf(str(path))
    assert decoded.error is None and decoded.dataset is not None
    with xr.open_dataset(path) as expected:
        xr.testing.assert_identical(decoded.dataset, expected.load())
    assert decoded.dataset["time"].dtype == np.dtype("datetime64[ns]")
    assert np.isnan(decoded.dataset["temp"].values[0, 1])


def test_groups_are_decoded_as_xarray_decodes_them(tmp_path: Path) -> None:
    path = write_profile(tmp_path / "g.nc", group=True)
    decoded = read_netcdf(str(path))
    assert decoded.dataset is not None and "battery" not in decoded.dataset
    (group,) = decoded.groups
    assert (group.path, group.dims) == ("/engineering", [("n", 3, False)])
    with xr.open_dataset(path, group="engineering") as expected:
        assert group.dataset is not None
        xr.testing.assert_identical(group.dataset, expected.load())
    assert [c for c, _ in decoded.warnings] == ["SerializationWarning"]  # _Unsigned on floats


def test_unreadable_file_comes_back_as_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"CDF\x01 this is not really netcdf")
    decoded = read_netcdf(str(bad))
    assert decoded.dataset is None and decoded.error
    assert "\n" not in decoded.error


def test_large_files_are_marked_for_streaming(tmp_path: Path) -> None:
    path = write_profile(tmp_path / "p.nc", levels=1000)
    decoded = read_netcdf(str(path), max_inline_bytes=1000)
    assert decoded.stream and decoded.dataset is None and decoded.error is None


def test_plan_chunks_bounds_blocks_and_keeps_inner_dims_whole() -> None:
    ds = xr.Dataset(
        {
            "big": (("t", "y", "x"), np.zeros((100, 50, 40), np.float64)),  # 16,000 B per t
            "small": (("t",), np.zeros(100, np.float32)),
            "row": (("x",), np.zeros(40, np.int8)),
        }
    )
    plan = plan_chunks(ds, 100_000)
    assert plan == {"t": 6, "y": 50, "x": 40}
    plan = plan_chunks(ds, 5_000)  # less than one t-slice: y is cut too
    assert plan["t"] == 1 and plan["x"] == 40 and plan["y"] * 40 * 8 <= 5_000
    assert plan_chunks(ds, 10**9) == {"t": 100, "y": 50, "x": 40}


def test_open_netcdf_streams_in_planned_blocks(tmp_path: Path) -> None:
    path = write_profile(tmp_path / "p.nc", levels=1000)
    ds = open_netcdf(path, chunk_bytes=4000)
    try:
        temp, psal = ds["temp"], ds["psal"]  # (time, depth) float32, (depth,) float64
        assert psal.chunks == ((500, 500),)  # the largest variable's blocks fit 4000 bytes
        assert temp.chunks == ((1,), (500, 500))  # and every variable shares them
        with xr.open_dataset(path) as expected:
            assert np.array_equal(temp.values, expected["temp"].values, equal_nan=True)
    finally:
        ds.close()


def test_describe_error_is_one_line() -> None:
    assert describe_error(ValueError("bad header\nmore")) == "ValueError: bad header"
    assert describe_error(OSError(5, "Input/output error")) == "cannot read it as NetCDF (Input/output error)"
    assert describe_error(OSError(5, "Input/output error"), reading=False) == "OSError: [Errno 5] Input/output error"
    assert describe_error(KeyError()) == "KeyError"
