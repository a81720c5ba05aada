"""Test helpers of the xarray tests: a small dataset (one float variable on a time and a depth
coordinate)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr


def simple_dataset(n: int = 6) -> xr.Dataset:
    rng = np.random.default_rng(0)
    return xr.Dataset(
        {"temp": (("time", "z"), rng.random((n, 4)).astype("f4"), {"units": "K"})},
        coords={"time": pd.date_range("2001-01-01", periods=n), "z": ("z", np.arange(4.0))},
        attrs={"title": "simple"},
    )
