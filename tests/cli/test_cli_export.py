"""``atlas export``: one dataset back to a NetCDF file."""

from __future__ import annotations

from pathlib import Path

import xarray as xr
from cli_helpers import assert_one_line_error, run
from netcdf_helpers import assert_same_values


def test_export_round_trip_value_by_value(built: tuple[Path, Path], tmp_path: Path) -> None:
    src, store = built
    out = tmp_path / "p3.nc"
    proc = run("export", store, "north:p0003", out)
    assert proc.stdout.startswith("wrote north:p0003 to")
    with xr.open_dataset(src / "north" / "p0003.nc") as original, xr.open_dataset(out) as exported:
        assert_same_values(original.load(), exported.load())
        assert exported.attrs["title"] == "test profile 3"
        assert exported["temp"].attrs["units"] == "degree_Celsius"
        assert set(exported.coords) == set(original.coords)
    assert_one_line_error(run("export", store, "north:p0003", out, rc=None), "--overwrite")
    run("export", store, "north:p0003", out, "--overwrite")


def test_export_keeps_the_on_disk_form_and_takes_a_format(built: tuple[Path, Path], tmp_path: Path) -> None:
    import stat

    import netCDF4

    src, store = built
    out = tmp_path / "p1.nc"
    run("export", store, "north:p0001", out)
    with netCDF4.Dataset(out) as nc:
        assert nc.data_model == "NETCDF4"
    assert stat.S_IMODE(out.stat().st_mode) != 0o600
    with xr.open_dataset(src / "north" / "p0001.nc", decode_cf=False) as a, xr.open_dataset(out, decode_cf=False) as b:
        xr.testing.assert_identical(a, b)
        assert list(a.variables) == list(b.variables)
        assert all(a[k].dtype == b[k].dtype for k in a.variables)
    run("export", store, "north:p0001", out, "--overwrite", "--format", "NETCDF3_CLASSIC")
    with netCDF4.Dataset(out) as nc:
        assert nc.data_model == "NETCDF3_CLASSIC"
    run("export", store, "north:p0001", out, "--overwrite", "--format", "source")
    with netCDF4.Dataset(out) as nc, netCDF4.Dataset(src / "north" / "p0001.nc") as orig:
        assert nc.data_model == orig.data_model
