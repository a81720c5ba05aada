"""NetCDF round trips through the xarray layer: generated files and real Argo profiles."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import atlas

ARGO = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "argo"


# ----------------------------------------------------------------------------- NetCDF round trips


def _normalise(ds: xr.Dataset) -> xr.Dataset:
    """What Atlas documents as changing: bytes become str, missing strings the fill ``""``.

    Attribute values are compared as plain Python values (numpy scalars and arrays as
    ``int``/``float``/lists), since non-scalar attributes are stored as JSON.
    """
    variables = {}
    for name, var in ds.variables.items():
        data = var.values
        if data.dtype.kind in "OSU":
            flat = [
                "" if v is None or (isinstance(v, float) and math.isnan(v))
                else v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                for v in data.ravel().tolist()
            ]
            data = np.empty(var.shape, dtype=object)
            data.ravel()[:] = flat
        attrs = {k: _plain(v) for k, v in var.attrs.items()}
        variables[name] = xr.Variable(var.dims, data, attrs)
    coords = {k: variables[k] for k in ds.coords}
    data_vars = {k: v for k, v in variables.items() if k not in coords}
    return xr.Dataset(data_vars, coords=coords, attrs={k: _plain(v) for k, v in ds.attrs.items()})


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist() if v.size != 1 else v.item()
    if isinstance(v, np.generic):
        return v.item()
    return v


def _netcdf_round_trip(store: atlas.Atlas, original: xr.Dataset, name: str, tmp_path: Path) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # missing strings in real files
        store.add_xarray_dataset(original, name)
    back = store.open_as_xarray_dataset(name)
    out = tmp_path / f"{name}.nc"
    back.to_netcdf(out)
    with xr.open_dataset(out) as again:
        return again.load()


def _generated(path: Path, fmt: str) -> Path:
    ds = xr.Dataset(
        {
            "temp": (("time", "depth"), np.random.default_rng(2).random((5, 3)).astype("f4"),
                     {"units": "degC", "valid_range": np.array([-5.0, 40.0], "f4"), "long_name": "T"}),
            "count": (("time",), np.array([1, 2, 3, 4, 5], "i4"), {"flag_values": np.array([1, 2], "i1")}),
            "qc": (("time",), np.array(["good", "bad", "good", "", "x"], dtype=object)),
            "when": (("time",), np.array(["2010-01-01", "NaT", "2011-06-01", "2012-01-01", "2013-01-01"], "M8[ns]")),
        },
        coords={
            "time": pd.date_range("2020-01-01", periods=5, unit="ns"),
            "depth": ("depth", [0.0, 10.0, 20.0], {"positive": "down"}),
            "lat": ("time", np.linspace(-10, 10, 5)),
        },
        attrs={"title": "generated", "version": np.int16(3), "scale": 0.5},
    )
    ds.temp.values[1, 1] = np.nan
    ds.temp.encoding["_FillValue"] = np.float32(-999.0)
    ds.to_netcdf(path, format=fmt)
    return path


@pytest.mark.parametrize(
    "engine, fmt", [("netcdf4", "NETCDF4"), ("netcdf4", "NETCDF3_64BIT"), ("h5netcdf", "NETCDF4")]
)
def test_generated_netcdf_round_trip(store: atlas.Atlas, tmp_path: Path, engine: str, fmt: str) -> None:
    if engine == "h5netcdf":
        pytest.importorskip("h5py", reason="h5netcdf needs h5py, which is not installed")
    path = _generated(tmp_path / "gen.nc", fmt)
    with xr.open_dataset(path, engine=engine) as original:
        original = original.load()
    again = _netcdf_round_trip(store, original, "gen", tmp_path)
    xr.testing.assert_identical(_normalise(again), _normalise(original))
    assert list(again.temp.dims) == ["time", "depth"]
    assert set(again.coords) == {"time", "depth", "lat"}
    assert np.isnat(again.when.values[1])


def test_netcdf_opened_lazily_is_read_in_slabs(store: atlas.Atlas, tmp_path: Path) -> None:
    path = tmp_path / "big.nc"
    xr.Dataset({"v": (("a", "b"), np.arange(200 * 50, dtype="f8").reshape(200, 50))}).to_netcdf(path)
    import atlas.integrations.xarray as axr

    old = axr.STREAM_BYTES
    axr.STREAM_BYTES = 8 * 50 * 20  # 20 rows per slab
    try:
        with xr.open_dataset(path) as lazy:
            view = store.add_xarray_dataset(lazy, "big", chunks={"v": (10, 50)})
    finally:
        axr.STREAM_BYTES = old
    np.testing.assert_array_equal(view.read_array("v"), np.arange(200 * 50).reshape(200, 50))


def _argo_files(n_per_dac: int) -> list[Path]:
    if not ARGO.is_dir():
        pytest.skip(f"real Argo sample not found at {ARGO}")
    files: list[Path] = []
    for dac in sorted(p for p in ARGO.iterdir() if p.is_dir()):
        # profiles only: the floats' _prof, _meta, _tech and _Rtraj files sit beside profiles/
        files.extend(sorted(dac.glob("*/profiles/*.nc"))[:n_per_dac])
    if not files:
        pytest.skip(f"no Argo profiles under {ARGO}")
    return files


def test_argo_profiles_round_trip(store: atlas.Atlas, tmp_path: Path) -> None:
    files = _argo_files(1)  # one profile of each data centre
    originals = {}
    for i, f in enumerate(files):
        with xr.open_dataset(f) as ds:
            originals[f"argo_{i}"] = ds.load()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            store.add_xarray_dataset(originals[f"argo_{i}"], f"argo_{i}")
    store.flush()
    reopened = atlas.Atlas.open(store.location)
    saw_bytes = False
    for name, original in originals.items():
        back = reopened.open_as_xarray_dataset(name)
        assert back.JULD.dtype == np.dtype("M8[ns]")
        assert back.PRES.dtype == original.PRES.dtype
        saw_bytes |= original.DATA_TYPE.values[()].__class__ is bytes
        xr.testing.assert_identical(_normalise(back), _normalise(original))
        out = tmp_path / f"{name}.nc"
        back.to_netcdf(out)
        with xr.open_dataset(out) as again:
            xr.testing.assert_identical(_normalise(again.load()), _normalise(original))
    assert saw_bytes


def test_argo_many_profiles_stack(store: atlas.Atlas) -> None:
    files = _argo_files(2)
    names = []
    for i, f in enumerate(files):
        with xr.open_dataset(f) as ds, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            store.add_xarray_dataset(ds, f"p{i}")
        names.append(f"p{i}")
    stacked = store.open_as_many_xarray_dataset(names[:1] * 3)
    assert stacked.PRES.shape[0] == 3
    assert stacked.DATA_TYPE.shape == (3,)  # 0-D string variables stack to plain str
    assert all(type(v) is str for v in stacked.DATA_TYPE.values.tolist())
    store.flush()
    again = atlas.Atlas.open(store.location).open_as_many_xarray_dataset(names[:2])
    assert all(type(v) is str for v in again.DATA_TYPE.values.tolist())
    juld = store.read_array_across_stacked("JULD", names)
    assert juld.dtype == np.dtype("M8[ns]") and juld.shape[0] == len(names)


def test_lazy_netcdf_input_is_not_loaded_into_the_callers_dataset(store: atlas.Atlas, tmp_path: Path) -> None:
    path = tmp_path / "lazy.nc"
    xr.Dataset({"v": (("a", "b"), np.ones((30, 4)))}).to_netcdf(path)
    with xr.open_dataset(path) as lazy:
        store.add_xarray_dataset(lazy, "d")
        assert not lazy.v.variable._in_memory
