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
