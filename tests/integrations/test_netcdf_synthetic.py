"""``atlas.integrations.netcdf.synthetic``: the demo's sample profile files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from atlas.integrations.netcdf.synthetic import write_synthetic_profiles


def test_files_are_laid_out_like_argo(tmp_path: Path) -> None:
    paths = write_synthetic_profiles(tmp_path, 5, floats=2)
    rel = [p.relative_to(tmp_path).as_posix() for p in paths]
    assert rel == [
        "5900000/profiles/5900000_001.nc",
        "5900001/profiles/5900001_001.nc",
        "5900000/profiles/5900000_002.nc",
        "5900001/profiles/5900001_002.nc",
        "5900000/profiles/5900000_003.nc",
    ]
    grown = write_synthetic_profiles(tmp_path, 1, floats=2, start=5)
    assert grown[0].relative_to(tmp_path).as_posix() == "5900001/profiles/5900001_003.nc"


def test_a_profile_decodes_to_cf_values(tmp_path: Path) -> None:
    [path] = write_synthetic_profiles(tmp_path, 1, seed=3)
    with xr.open_dataset(path) as ds:
        n = ds.sizes["level"]
        assert 20 <= n <= 500 and ds.sizes["time"] == 1
        assert ds["time"].dtype == np.dtype("datetime64[ns]")
        assert ds["temperature"].attrs["units"] == "degree_Celsius"
        assert ds["temperature"].encoding["_FillValue"] == np.float32(99999.0)
        pres = ds["pressure"].values[0]
        assert np.all(np.diff(pres) >= 0) and 0 <= pres[0] and pres[-1] <= 2000
        assert ds["platform_id"].values.tolist() == ["SYN5900000"]
        assert ds["data_mode"].values.tolist() == [b"D"]  # cycle 1: delayed mode
        assert ds.attrs["platform_number"] == 5900000 and ds.attrs["cycle_number"] == 1


def test_the_same_seed_gives_the_same_files(tmp_path: Path) -> None:
    [a] = write_synthetic_profiles(tmp_path / "a", 1, seed=7)
    [b] = write_synthetic_profiles(tmp_path / "b", 1, seed=7)
    [c] = write_synthetic_profiles(tmp_path / "c", 1, seed=8)
    with xr.open_dataset(a) as da, xr.open_dataset(b) as db, xr.open_dataset(c) as dc:
        xr.testing.assert_identical(da, db)
        assert not da["temperature"].equals(dc["temperature"])
