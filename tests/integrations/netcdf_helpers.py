"""Test helpers of the NetCDF tests: small CF profile files, and comparing a file with a
store's copy (``from netcdf_helpers import write_tree``; the test tree puts this folder on
the import path, see ``pythonpath`` in pyproject.toml)."""

from __future__ import annotations

import math
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr

__all__ = ["assert_same_values", "write_profile", "write_tree"]


def write_profile(
    path: Path,
    *,
    levels: int = 40,
    seed: int = 0,
    group: bool = False,
    fmt: str = "NETCDF4",
) -> Path:
    """A small CF profile: fill values, a time coordinate, strings, packed ints, a scalar.

    ``fmt="NETCDF4"`` adds a variable-length string variable; ``group=True`` adds a
    group, ``engineering``, whose one variable has an ``_Unsigned`` attribute though it
    holds floats (xarray warns, and ignores it).
    """
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with netCDF4.Dataset(path, "w", format=fmt) as nc:
        nc.title = f"test profile {seed}"
        nc.Conventions = "CF-1.8"
        nc.platform = np.int32(1000 + seed)
        nc.history = "written by the atlas tests"
        nc.createDimension("time", 1)
        nc.createDimension("depth", levels)
        nc.createDimension("strlen", 4)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01 00:00:00"
        t.calendar = "standard"
        t.standard_name = "time"
        t[:] = [8000.25 + seed]
        d = nc.createVariable("depth", "f4", ("depth",))
        d.units = "m"
        d.positive = "down"
        d[:] = np.arange(levels, dtype=np.float32) * 5
        temp = nc.createVariable("temp", "f4", ("time", "depth"), fill_value=np.float32(-999.0))
        temp.units = "degree_Celsius"
        temp.long_name = "sea water temperature"
        values = (20 - np.arange(levels) * 0.3 + rng.normal(0, 0.1, levels)).astype(np.float32)
        mask = np.zeros(levels, bool)
        mask[[1, levels // 2]] = True
        temp[:] = np.ma.masked_array(values, mask)[None, :]
        qc = nc.createVariable("temp_qc", "i1", ("time", "depth"))
        qc.flag_values = np.array([0, 1, 4], dtype=np.int8)
        qc.flag_meanings = "none good bad"
        qc[:] = np.where(mask, 4, 1).astype(np.int8)[None, :]
        count = nc.createVariable("count", "i4", ("time",), fill_value=np.int32(-1))
        count[:] = [levels]
        packed = nc.createVariable("psal", "i2", ("depth",))
        packed.scale_factor = 0.001
        packed.add_offset = 30.0
        packed.units = "psu"
        packed[:] = 34.0 + rng.normal(0, 0.1, levels)
        lat = nc.createVariable("lat", "f8", ())
        lat.units = "degrees_north"
        lat[...] = -33.5 + seed
        mode = nc.createVariable("mode", "S1", ("time", "strlen"))
        mode.long_name = "data mode"
        mode[:] = netCDF4.stringtochar(np.array(["DM" if seed % 2 else "RT"], dtype="S4"))
        if fmt == "NETCDF4":
            station = nc.createVariable("station", str, ("time",))
            station.long_name = "station name"
            station[0] = f"Station-{seed} é"
        if group:
            g = nc.createGroup("engineering")
            g.comment = "engineering data"
            g.createDimension("n", 3)
            v = g.createVariable("battery", "f4", ("n",), fill_value=np.float32(-999.0))
            v.setncattr("_Unsigned", "true")
            v[:] = [12.1, 12.0, 11.9]
    return path


def write_tree(root: Path, count: int, start: int = 0) -> list[Path]:
    """``count`` profiles under ``root`` in two sub-folders, in NetCDF-4 and NetCDF-3."""
    paths = []
    for i in range(start, start + count):
        sub = "north" if i % 2 else "south"
        fmt = "NETCDF4" if i % 3 else "NETCDF3_64BIT_OFFSET"
        paths.append(write_profile(root / sub / f"p{i:04d}.nc", levels=20 + i % 7, seed=i, fmt=fmt))
    return paths


def _normalise(values: np.ndarray) -> np.ndarray:
    """Strings as str (bytes decoded, missing cells as ""), so files and stores compare."""
    if values.dtype.kind in "OSU":
        out = np.empty(values.shape, dtype=object)
        for idx, v in np.ndenumerate(values):
            if isinstance(v, bytes):
                v = v.decode("utf-8")
            elif v is None or (isinstance(v, float) and math.isnan(v)):
                v = ""
            out[idx] = str(v)
        return out
    return values


def assert_same_values(expected: xr.Dataset, actual: xr.Dataset) -> None:
    """Every variable of ``expected`` is in ``actual`` with the same dims and values."""
    for name, var in expected.variables.items():
        assert name in actual.variables, f"{name} is missing"
        got = actual.variables[name]
        assert got.dims == var.dims, name
        a, b = _normalise(np.asarray(var.values)), _normalise(np.asarray(got.values))
        if a.dtype.kind == "O":
            assert a.tolist() == b.tolist(), name
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)
