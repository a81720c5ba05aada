"""Deterministic synthetic workloads shared by both sides of the benchmark.

Every dataset is generated from its own seed, so any one of them can be rebuilt on its own
(for verification) without generating the whole collection. This module imports only numpy
and the standard library: it runs unchanged in the project's venv and in the yardstick's.

Two collections:

* **profiles** -- ocean CTD/Argo-like casts: 1-D ``depth``, ``temperature`` and ``salinity``
  (float32, 50 to 2,000 levels, NaN fill and a few NaN cells), a tiny ``time`` array
  (``timestamp_nanoseconds``), a short ``station`` string array and nine typed attributes.
* **gridded** -- model-output-like fields: float32 ``temperature`` (time=24, lat=181,
  lon=360) chunked (6, 91, 180), with ``time``, ``lat`` and ``lon`` coordinates. The field
  is smooth (climatology + seasonal cycle + a per-dataset anomaly) plus small noise, rounded
  to 0.01, with NaN over a fixed land mask, so compression behaves like on real data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PROFILE_SEED = 20_240_611
GRIDDED_SEED = 19_570_104

PROFILE_MIN_LEVELS = 50
PROFILE_MAX_LEVELS = 2_000
PROFILE_NAN_FRACTION = 0.01
PROFILE_ARRAYS = ("depth", "temperature", "salinity", "time", "station")
PROFILE_LEVEL_ARRAYS = ("depth", "temperature", "salinity")

# Window used by the stacked scan: every profile has at least PROFILE_MIN_LEVELS levels.
STACKED_START = (0,)
STACKED_SHAPE = (50,)
# Window used by the sliced per-dataset read loop.
SLICE_START = (10,)
SLICE_SHAPE = (20,)

GRID_SHAPE = (24, 181, 360)
GRID_CHUNKS = (6, 91, 180)
GRID_ARRAYS = ("time", "lat", "lon", "temperature")
# One time step across every gridded dataset.
GRID_TIMESTEP = 7
# A 30 x 40 lat/lon box over all times (inside one spatial chunk, like a regional query).
GRID_BOX_START = (0, 100, 200)
GRID_BOX_SHAPE = (24, 30, 40)

EPOCH_2020_NS = 1_577_836_800 * 10**9
HOUR_NS = 3_600 * 10**9
DAY_NS = 24 * HOUR_NS

_DATA_MODES = ("R", "A", "D")
_PROJECTS = ("ARGO", "Argo-Deep", "BGC-Argo", "GO-SHIP", "OOI")
_INSTITUTIONS = ("AOML", "IFREMER", "CSIRO", "JMA", "BODC", "INCOIS")


@dataclass(frozen=True)
class Profile:
    """One cast: arrays plus typed attributes, in definition/insertion order."""

    name: str
    depth: np.ndarray  # float32 (levels,)
    temperature: np.ndarray  # float32 (levels,)
    salinity: np.ndarray  # float32 (levels,)
    time: np.ndarray  # int64 ns since the epoch (1 or 2,)
    station: np.ndarray  # object array of str (1 to 3,)
    attributes: dict[str, Any] = field(default_factory=dict)
    # Attributes written with a forced kind (key -> atlas dtype).
    attribute_dtypes: dict[str, str] = field(default_factory=dict)

    @property
    def levels(self) -> int:
        return int(self.depth.shape[0])

    def array(self, name: str) -> np.ndarray:
        value: np.ndarray = getattr(self, name)
        return value

    def array_meta(self, name: str) -> dict[str, Any]:
        """What ``DatasetView.array_meta(name)`` must return for this profile."""
        dims = {"time": "time", "station": "station"}.get(name, "depth")
        shape = [int(self.array(name).shape[0])]
        return {
            "dtype": PROFILE_DTYPES[name],
            "shape": shape,
            "chunk_shape": shape,
            "dimension_names": [dims],
        }


PROFILE_DTYPES = {
    "depth": "float32",
    "temperature": "float32",
    "salinity": "float32",
    "time": "timestamp_nanoseconds",
    "station": "string",
}


def profile_name(i: int) -> str:
    return f"profile_{i:06d}"


def profile_names(n: int) -> list[str]:
    return [profile_name(i) for i in range(n)]


def profile(i: int) -> Profile:
    """The ``i``-th profile; the same ``i`` always gives the same bytes."""
    rng = np.random.default_rng([PROFILE_SEED, i])
    levels = int(rng.integers(PROFILE_MIN_LEVELS, PROFILE_MAX_LEVELS + 1))
    max_depth = float(rng.uniform(200.0, 2_000.0)) * levels / PROFILE_MAX_LEVELS + 10.0

    # Pressure-like levels: denser near the surface, strictly increasing.
    u = np.linspace(0.0, 1.0, levels)
    depth = (2.0 + (max_depth - 2.0) * u**1.6).astype(np.float32)
    depth = np.round(depth, 1).astype(np.float32)

    latitude = float(np.round(rng.uniform(-70.0, 70.0), 4))
    longitude = float(np.round(rng.uniform(-180.0, 180.0), 4))
    surface = 28.0 * np.cos(np.deg2rad(latitude)) - 1.0
    thermocline = float(rng.uniform(60.0, 250.0))
    deep = 2.0 + rng.uniform(-0.5, 1.5)
    d = depth.astype(np.float64)
    temperature = deep + (surface - deep) * np.exp(-d / thermocline)
    temperature += rng.normal(0.0, 0.02, levels)
    salinity = 34.7 + 0.6 * np.tanh((d - thermocline) / 300.0) + rng.normal(0.0, 0.005, levels)

    temperature = np.round(temperature, 3).astype(np.float32)
    salinity = np.round(salinity, 3).astype(np.float32)
    # Bad-QC cells become NaN (the fill value); sometimes the bottom of the cast is missing.
    temperature[rng.random(levels) < PROFILE_NAN_FRACTION] = np.nan
    salinity[rng.random(levels) < PROFILE_NAN_FRACTION] = np.nan
    if rng.random() < 0.1:
        salinity[-int(rng.integers(1, 20)) :] = np.nan

    start = EPOCH_2020_NS + int(rng.integers(0, 4 * 365)) * DAY_NS + int(rng.integers(0, DAY_NS))
    n_times = int(rng.integers(1, 3))
    time = start + np.arange(n_times, dtype=np.int64) * int(rng.integers(600, 4 * 3_600)) * 10**9
    time = time.astype(np.int64)

    platform = f"{int(rng.integers(1_900_000, 7_999_999))}"
    cycle = int(rng.integers(1, 400))
    station = np.array(
        [platform, f"cycle {cycle:03d}", "ascending"][: int(rng.integers(1, 4))], dtype=object
    )

    attributes: dict[str, Any] = {
        "platform_number": platform,
        "cycle_number": cycle,
        "latitude": latitude,
        "longitude": longitude,
        "data_mode": _DATA_MODES[int(rng.integers(0, len(_DATA_MODES)))],
        "position_qc_ok": bool(rng.random() < 0.9),
        "project_name": _PROJECTS[int(rng.integers(0, len(_PROJECTS)))],
        "institution": _INSTITUTIONS[int(rng.integers(0, len(_INSTITUTIONS)))],
        "wmo_inst_type": int(rng.integers(800, 900)),
    }
    return Profile(
        name=profile_name(i),
        depth=depth,
        temperature=temperature,
        salinity=salinity,
        time=time,
        station=station,
        attributes=attributes,
        attribute_dtypes={"wmo_inst_type": "int16"},
    )


def profiles(n: int) -> Iterator[Profile]:
    for i in range(n):
        yield profile(i)


@dataclass(frozen=True)
class Gridded:
    name: str
    time: np.ndarray  # int64 ns (24,)
    lat: np.ndarray  # float64 (181,)
    lon: np.ndarray  # float64 (360,)
    temperature: np.ndarray  # float32 (24, 181, 360)

    def array(self, name: str) -> np.ndarray:
        value: np.ndarray = getattr(self, name)
        return value


GRIDDED_DTYPES = {
    "time": "timestamp_nanoseconds",
    "lat": "float64",
    "lon": "float64",
    "temperature": "float32",
}


def gridded_meta(name: str) -> dict[str, Any]:
    """What ``array_meta(name)`` must return for any gridded dataset."""
    if name == "temperature":
        return {
            "dtype": "float32",
            "shape": list(GRID_SHAPE),
            "chunk_shape": list(GRID_CHUNKS),
            "dimension_names": ["time", "lat", "lon"],
        }
    axis = GRID_ARRAYS.index(name)
    return {
        "dtype": GRIDDED_DTYPES[name],
        "shape": [GRID_SHAPE[axis]],
        "chunk_shape": [GRID_SHAPE[axis]],
        "dimension_names": [name],
    }


def gridded_name(i: int) -> str:
    return f"run_{i:04d}"


def gridded_names(n: int) -> list[str]:
    return [gridded_name(i) for i in range(n)]


def grid_axes() -> tuple[np.ndarray, np.ndarray]:
    lat = np.linspace(-90.0, 90.0, GRID_SHAPE[1])
    lon = np.arange(GRID_SHAPE[2], dtype=np.float64) - 179.5
    return lat, lon


def _land_mask() -> np.ndarray:
    """A fixed, blobby land mask (True = land), the same for every dataset."""
    lat, lon = grid_axes()
    la, lo = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    blobs = np.sin(2.0 * lo) * np.cos(3.0 * la) + 0.6 * np.cos(5.0 * lo + 1.0) * np.sin(2.0 * la)
    mask: np.ndarray = (blobs > 0.75) | (la < np.deg2rad(-78.0))
    return mask


def gridded_time(i: int) -> np.ndarray:
    """Hourly steps of the ``i``-th run (int64 ns since the epoch)."""
    steps = np.arange(GRID_SHAPE[0], dtype=np.int64) * HOUR_NS
    time: np.ndarray = (EPOCH_2020_NS + i * 30 * DAY_NS + steps).astype(np.int64)
    return time


def gridded_attributes(i: int) -> dict[str, Any]:
    return {
        "title": f"synthetic sea surface temperature, run {i}",
        "source": "bench/workloads.py",
        "ensemble_member": i,
        "resolution_deg": 1.0,
        "is_reanalysis": i % 2 == 0,
        "units": "degC",
    }


def gridded(i: int) -> Gridded:
    rng = np.random.default_rng([GRIDDED_SEED, i])
    nt, ny, nx = GRID_SHAPE
    lat, lon = grid_axes()

    la = np.deg2rad(lat)[None, :, None].astype(np.float32)
    lo = np.deg2rad(lon)[None, None, :].astype(np.float32)
    t = (np.arange(nt, dtype=np.float32) / nt)[:, None, None]
    phase = np.float32(rng.uniform(0.0, 2.0 * np.pi))
    amp = np.float32(rng.uniform(0.5, 2.0))
    field_ = (
        np.float32(29.0) * np.cos(la) ** 2
        - np.float32(1.5)
        + amp * np.sin(la) * np.cos(np.float32(2.0 * np.pi) * t + phase)
        + np.float32(0.8) * np.sin(np.float32(3.0) * lo + phase) * np.cos(np.float32(2.0) * la)
    )
    noise = rng.standard_normal((nt, ny, nx), dtype=np.float32) * np.float32(0.05)
    temperature = np.round(field_ + noise, 2).astype(np.float32)
    temperature[:, _land_mask()] = np.nan
    return Gridded(
        name=gridded_name(i),
        time=gridded_time(i),
        lat=lat,
        lon=lon,
        temperature=np.ascontiguousarray(temperature),
    )


def gridded_collection(n: int) -> Iterator[Gridded]:
    for i in range(n):
        yield gridded(i)


def digest(arrays: list[np.ndarray]) -> str:
    """A short content hash of a list of arrays (dtype, shape and bytes)."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode())
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()
