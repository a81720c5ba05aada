"""Sample input: small CF-style ocean profile files, laid out like Argo's (for the demo)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["write_synthetic_profiles"]


def write_synthetic_profiles(
    directory: str | os.PathLike[str],
    count: int,
    *,
    seed: int = 0,
    floats: int = 20,
    start: int = 0,
) -> list[Path]:
    """Write ``count`` small CF-style ocean profile files under ``directory``.

    Files are laid out like Argo's ``FLOAT/profiles/FLOAT_CYCLE.nc``, with ragged
    lengths (20 to 500 levels), NaN gaps in temperature and salinity stored under a
    ``_FillValue``, a CF time coordinate, a string variable (the platform id) and a
    character array (the data mode). ``start`` numbers the first profile, so a
    folder can be grown by a second call.
    """
    import numpy as np

    root = Path(directory)
    paths: list[Path] = []
    for i in range(start, start + count):
        rng = np.random.default_rng([seed, i])
        float_id = 5900000 + i % max(1, floats)
        cycle = i // max(1, floats) + 1
        folder = root / str(float_id) / "profiles"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{float_id}_{cycle:03d}.nc"
        _write_profile(path, rng, float_id, cycle)
        paths.append(path)
    return paths


def _write_profile(path: Path, rng: Any, float_id: int, cycle: int) -> None:
    """One profile file, its levels and values drawn from ``rng`` (in a fixed order)."""
    import netCDF4
    import numpy as np

    n = int(rng.integers(20, 501))
    pres = np.sort(rng.uniform(0.0, 2000.0, n)).astype(np.float32)
    lat = float(rng.uniform(-60.0, 60.0))
    temp = (28.0 * np.exp(-pres / 700.0) + 2.0 - abs(lat) / 20.0 + rng.normal(0.0, 0.2, n)).astype(np.float32)
    psal = (34.0 + 1.5 * np.exp(-pres / 400.0) + rng.normal(0.0, 0.05, n)).astype(np.float32)
    gaps = rng.random(n) < 0.03
    temp[gaps] = np.nan
    psal[rng.random(n) < 0.03] = np.nan
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as nc:
        nc.title = "Synthetic ocean profile"
        nc.institution = "atlas demo"
        nc.Conventions = "CF-1.10"
        nc.featureType = "profile"
        nc.platform_number = np.int32(float_id)
        nc.cycle_number = np.int32(cycle)
        nc.createDimension("time", 1)
        nc.createDimension("level", n)
        nc.createDimension("string1", 1)
        _write_position(nc, rng, cycle, lat)
        for vname, units, std, data in (
            ("pressure", "decibar", "sea_water_pressure", pres),
            ("temperature", "degree_Celsius", "sea_water_temperature", temp),
            ("salinity", "psu", "sea_water_salinity", psal),
        ):
            v = nc.createVariable(vname, "f4", ("time", "level"), fill_value=np.float32(99999.0))
            v.units = units
            v.standard_name = std
            v.coordinates = "time latitude longitude"
            v[:] = np.ma.masked_invalid(data[None, :])
        _write_labels(nc, float_id, cycle)


def _write_position(nc: Any, rng: Any, cycle: int, lat: float) -> None:
    """The time, latitude and longitude of a profile (time and longitude drawn here)."""
    t = nc.createVariable("time", "f8", ("time",))
    t.standard_name = "time"
    t.units = "days since 1950-01-01 00:00:00"
    t.calendar = "standard"
    t[:] = [25000.0 + 10.0 * cycle + float(rng.uniform(0.0, 1.0))]
    for vname, units, std, value in (
        ("latitude", "degrees_north", "latitude", lat),
        ("longitude", "degrees_east", "longitude", float(rng.uniform(-180.0, 180.0))),
    ):
        v = nc.createVariable(vname, "f8", ("time",))
        v.units = units
        v.standard_name = std
        v[:] = [value]


def _write_labels(nc: Any, float_id: int, cycle: int) -> None:
    """The platform id (a string in a character array) and the data mode (one character)."""
    import netCDF4
    import numpy as np

    nc.createDimension("string16", 16)
    pid = nc.createVariable("platform_id", "S1", ("time", "string16"))
    pid.long_name = "platform identifier"
    pid._Encoding = "utf-8"
    pid[:] = netCDF4.stringtochar(np.array([f"SYN{float_id}"], dtype="S16"))
    mode = nc.createVariable("data_mode", "S1", ("time", "string1"))
    mode.long_name = "R: real time, D: delayed mode"
    mode[:] = np.array([[b"D" if cycle % 3 else b"R"]], dtype="S1")
