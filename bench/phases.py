"""Benchmark phases, each run in a fresh process by ``run.py``.

    python bench/phases.py PHASE --impl ours|ref --store PATH --workdir DIR [--profiles N] [--gridded N]

imports ``atlas`` from the running interpreter (the project's venv for ``ours``, the
yardstick's venv for ``ref``), runs one phase and prints one line
``BENCH_RESULT {json}`` with the timing, the memory growth, the I/O counters and the
verification outcome. Exit status: 0 ok, 1 verification failed, 2 error, 3 not available.

A phase does its untimed setup, then exactly one ``with ctx.measure():`` block around the
work being timed, then verifies what it got against the generated workload. Only the
standard library, numpy and ``workloads`` are imported at module level, so ``run.py`` can
read the ``PHASES`` registry without importing any ``atlas``.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import os
import pickle
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np
import workloads as wl

RESULT_MARKER = "BENCH_RESULT "
EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_NOT_AVAILABLE = 0, 1, 2, 3

Collection = Literal["profiles", "gridded"]
Kind = Literal["ingest", "size", "read", "mutate", "limit"]

XARRAY_DATASETS = 200
DELETE_EVERY = 10  # delete every 10th dataset: 10 %
LIMIT_FRAME_BYTES = 256 * 1024
LIMIT_ZSTD_LEVEL = 3


class VerificationError(AssertionError):
    """The implementation returned wrong values."""


class NotAvailable(Exception):
    """The implementation does not offer what the phase measures (shown as n/a)."""


# --------------------------------------------------------------------------- measuring


def _proc_status_kb(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise KeyError(field_name)


def _reset_high_water() -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5); False when not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _io_counters() -> dict[str, int]:
    try:
        with open("/proc/self/io") as f:
            return {k: int(v) for k, v in (line.split(":") for line in f)}
    except OSError:
        return {}


@dataclass
class Measurement:
    seconds: float
    cpu_seconds: float  # user + system time of every thread, less sensitive to a busy machine
    rss_before_kb: int
    hwm_before_kb: int
    hwm_after_kb: int
    hwm_reset: bool
    io: dict[str, int]

    @property
    def mem_growth_mb(self) -> float:
        return max(0, self.hwm_after_kb - self.hwm_before_kb) / 1024.0


@dataclass
class Context:
    atlas: Any  # the imported ``atlas`` module (None for the machine-limit phases)
    impl: str
    store: Path
    workdir: Path
    n_profiles: int
    n_gridded: int
    extra: dict[str, Any] = field(default_factory=dict)
    measurement: Measurement | None = None

    @contextmanager
    def measure(self) -> Iterator[None]:
        """Time the block and record the RSS high-water growth and I/O it caused."""
        if self.measurement is not None:
            raise RuntimeError("a phase measures exactly one block")
        gc.collect()
        rss_before = _proc_status_kb("VmRSS")
        hwm_reset = _reset_high_water()
        hwm_before = _proc_status_kb("VmHWM")
        io_before = _io_counters()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        yield
        seconds = time.perf_counter() - t0
        cpu_seconds = time.process_time() - cpu0
        io_after = _io_counters()
        self.measurement = Measurement(
            seconds=seconds,
            cpu_seconds=cpu_seconds,
            rss_before_kb=rss_before,
            hwm_before_kb=hwm_before,
            hwm_after_kb=_proc_status_kb("VmHWM"),
            hwm_reset=hwm_reset,
            io={k: io_after[k] - io_before.get(k, 0) for k in io_after},
        )

    def open_store(self) -> Any:
        if not self.store.exists():
            raise FileNotFoundError(f"store {self.store} was not built (did the ingest fail?)")
        return self.atlas.Atlas.open(str(self.store))


# --------------------------------------------------------------------------- workload cache


def load_profiles(ctx: Context) -> list[wl.Profile]:
    """All profiles, generated once per size and cached (pickled) in the work dir."""
    cache = ctx.workdir / "cache" / f"profiles-{ctx.n_profiles}-np{np.__version__}.pkl"
    if cache.exists():
        with open(cache, "rb") as f:
            cached: list[wl.Profile] = pickle.load(f)
        return cached
    generated = list(wl.profiles(ctx.n_profiles))
    _atomic_write(cache, pickle.dumps(generated, protocol=pickle.HIGHEST_PROTOCOL))
    return generated


def load_gridded_temperature(ctx: Context) -> np.ndarray:
    """``(n, *GRID_SHAPE)`` float32 memmap of every gridded dataset's temperature."""
    cache = ctx.workdir / "cache" / f"gridded-{ctx.n_gridded}.npy"
    if not cache.exists():
        out = np.empty((ctx.n_gridded, *wl.GRID_SHAPE), dtype=np.float32)
        for g in wl.gridded_collection(ctx.n_gridded):
            out[int(g.name.split("_")[1])] = g.temperature
        tmp = cache.with_suffix(f".tmp{os.getpid()}.npy")
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(tmp, out)
        os.replace(tmp, cache)
    loaded: np.ndarray = np.load(cache, mmap_mode="r")
    return loaded


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def disk_usage(path: Path) -> dict[str, int]:
    """``du``-style bytes on disk, apparent bytes and the number of files under ``path``."""
    on_disk = apparent = files = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(root, name))
            on_disk += st.st_blocks * 512
            apparent += st.st_size
            files += 1
    return {"bytes_on_disk": on_disk, "bytes_apparent": apparent, "files": files}


# --------------------------------------------------------------------------- verification


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise VerificationError(message)


def check_array(got: Any, expected: np.ndarray, what: str) -> None:
    """``got`` must equal ``expected`` exactly (NaN-aware), with the dtype atlas returns."""
    expect(isinstance(got, np.ndarray), f"{what}: expected an ndarray, got {type(got).__name__}")
    expect(got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}")
    if expected.dtype == np.int64 and got.dtype.kind == "M":
        # timestamp_nanoseconds: written as int64 ns, read back as datetime64[ns]
        expect(got.dtype == np.dtype("datetime64[ns]"), f"{what}: dtype {got.dtype}")
        expect(np.array_equal(got.view(np.int64), expected), f"{what}: timestamps differ")
    elif expected.dtype == object:
        expect(got.dtype == object, f"{what}: dtype {got.dtype} != object")
        expect(got.tolist() == expected.tolist(), f"{what}: strings differ")
    else:
        expect(got.dtype == expected.dtype, f"{what}: dtype {got.dtype} != {expected.dtype}")
        equal_nan = expected.dtype.kind == "f"
        if not np.array_equal(got, expected, equal_nan=equal_nan):
            same = (got == expected) | (np.isnan(got) & np.isnan(expected) if equal_nan else False)
            first = tuple(int(i) for i in np.argwhere(~same)[0])
            raise VerificationError(
                f"{what}: values differ at {first}: got {got[first]!r}, expected {expected[first]!r}"
            )


def check_attributes(got: Any, expected: dict[str, Any], what: str) -> None:
    expect(isinstance(got, dict), f"{what}: attributes() returned {type(got).__name__}")
    expect(list(got) == list(expected), f"{what}: attribute keys {list(got)} != {list(expected)}")
    for key, value in expected.items():
        g = got[key]
        expect(type(g) is type(value), f"{what}: attribute {key!r} type {type(g).__name__}")
        same = g == value or (isinstance(value, float) and math.isnan(value) and math.isnan(g))
        expect(same, f"{what}: attribute {key!r} = {g!r}, expected {value!r}")


def check_profile(view: Any, p: wl.Profile) -> None:
    expect(
        view.list_arrays() == list(wl.PROFILE_ARRAYS), f"{p.name}: list_arrays {view.list_arrays()}"
    )
    for name in wl.PROFILE_ARRAYS:
        check_array(view.read_array(name), p.array(name), f"{p.name}/{name}")
    check_attributes(view.attributes(), p.attributes, p.name)


def sample(items: Sequence[Any], count: int) -> list[Any]:
    """``count`` items spread evenly over ``items`` (first and last included)."""
    if len(items) <= count:
        return list(items)
    idx = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in idx]


# --------------------------------------------------------------------------- writers


def write_profile(a: Any, p: wl.Profile) -> None:
    d = a.create_dataset(p.name)
    nan = float("nan")
    for name in wl.PROFILE_LEVEL_ARRAYS:
        d.define_array(name, "float32", ["depth"], [p.levels], fill_value=nan)
    d.define_array("time", "timestamp_nanoseconds", ["time"], [len(p.time)])
    d.define_array("station", "string", ["station"], [len(p.station)])
    for name in wl.PROFILE_ARRAYS:
        d.write_array(name, [0], p.array(name))
    for key, value in p.attributes.items():
        forced = p.attribute_dtypes.get(key)
        if forced is None:
            d.set_attribute(key, value)
        else:
            d.set_attribute(key, value, dtype=forced)


def write_gridded(a: Any, i: int, temperature: np.ndarray) -> None:
    d = a.create_dataset(wl.gridded_name(i))
    lat, lon = wl.grid_axes()
    nt, ny, nx = wl.GRID_SHAPE
    d.define_array("time", "timestamp_nanoseconds", ["time"], [nt])
    d.define_array("lat", "float64", ["lat"], [ny])
    d.define_array("lon", "float64", ["lon"], [nx])
    d.define_array(
        "temperature",
        "float32",
        ["time", "lat", "lon"],
        list(wl.GRID_SHAPE),
        chunk_shape=list(wl.GRID_CHUNKS),
        fill_value=float("nan"),
    )
    d.write_array("time", [0], wl.gridded_time(i))
    d.write_array("lat", [0], lat)
    d.write_array("lon", [0], lon)
    d.write_array("temperature", [0, 0, 0], temperature)
    for key, value in wl.gridded_attributes(i).items():
        d.set_attribute(key, value)


# --------------------------------------------------------------------------- phases


def phase_ingest_profiles(ctx: Context) -> None:
    ps = load_profiles(ctx)
    with ctx.measure():
        a = ctx.atlas.Atlas.create(str(ctx.store))
        for p in ps:
            write_profile(a, p)
        a.flush()
    del a
    ctx.extra.update(disk_usage(ctx.store))
    b = ctx.open_store()
    expect(b.list_datasets() == [p.name for p in ps], "list_datasets after reopen differs")
    for p in sample(ps, 25):
        check_profile(b.open_dataset(p.name), p)


def phase_ingest_gridded(ctx: Context) -> None:
    temperature = np.array(load_gridded_temperature(ctx))  # in memory before timing
    with ctx.measure():
        a = ctx.atlas.Atlas.create(str(ctx.store))
        for i in range(ctx.n_gridded):
            write_gridded(a, i, temperature[i])
        a.flush()
    del a
    ctx.extra.update(disk_usage(ctx.store))
    b = ctx.open_store()
    names = wl.gridded_names(ctx.n_gridded)
    expect(b.list_datasets() == names, "list_datasets after reopen differs")
    lat, lon = wl.grid_axes()
    for i in sorted({0, ctx.n_gridded // 2, ctx.n_gridded - 1}):
        d = b.open_dataset(names[i])
        expect(
            d.list_arrays() == list(wl.GRID_ARRAYS), f"{names[i]}: list_arrays {d.list_arrays()}"
        )
        for name in wl.GRID_ARRAYS:
            expect(d.array_meta(name) == wl.gridded_meta(name), f"{names[i]}/{name}: array_meta")
        check_array(d.read_array("time"), wl.gridded_time(i), f"{names[i]}/time")
        check_array(d.read_array("lat"), lat, f"{names[i]}/lat")
        check_array(d.read_array("lon"), lon, f"{names[i]}/lon")
        check_array(d.read_array("temperature"), temperature[i], f"{names[i]}/temperature")
        check_attributes(d.attributes(), wl.gridded_attributes(i), names[i])


def phase_open_list(ctx: Context) -> None:
    if not ctx.store.exists():
        raise FileNotFoundError(f"store {ctx.store} was not built")
    with ctx.measure():
        a = ctx.atlas.Atlas.open(str(ctx.store))
        names = a.list_datasets()
        arrays = a.list_arrays()
    expect(names == wl.profile_names(ctx.n_profiles), "list_datasets differs")
    expect(arrays == sorted(wl.PROFILE_ARRAYS), f"list_arrays {arrays}")


def phase_metadata_sweep(ctx: Context) -> None:
    a = ctx.open_store()
    with ctx.measure():
        swept = []
        for name in a.list_datasets():
            d = a.open_dataset(name)
            arrays = d.list_arrays()
            swept.append((name, arrays, [d.array_meta(x) for x in arrays], d.attributes()))
    ps = load_profiles(ctx)
    expect(len(swept) == len(ps), f"swept {len(swept)} datasets, expected {len(ps)}")
    for (name, arrays, metas, attrs), p in zip(swept, ps, strict=True):
        expect(name == p.name, f"dataset {name} where {p.name} was expected")
        expect(arrays == list(wl.PROFILE_ARRAYS), f"{name}: list_arrays {arrays}")
        for array, meta in zip(arrays, metas, strict=True):
            expect(meta == p.array_meta(array), f"{name}/{array}: array_meta {meta}")
        check_attributes(attrs, p.attributes, name)


def _profile_scan(ctx: Context, stacked: bool, warm: bool) -> None:
    a = ctx.open_store()
    names = wl.profile_names(ctx.n_profiles)

    def scan() -> Any:
        if stacked:
            start, shape = list(wl.STACKED_START), list(wl.STACKED_SHAPE)
            return a.read_array_across_stacked("temperature", names, start=start, shape=shape)
        return a.read_array_across("temperature", names)

    if warm:
        scan()
    with ctx.measure():
        got = scan()
    ps = load_profiles(ctx)
    if stacked:
        window = slice(wl.STACKED_START[0], wl.STACKED_START[0] + wl.STACKED_SHAPE[0])
        expected = np.stack([p.temperature[window] for p in ps])
        check_array(got, expected, "stacked temperature")
        ctx.extra["result_mb"] = got.nbytes / 2**20
    else:
        expect(
            isinstance(got, list) and len(got) == len(ps),
            "read_array_across: not a list of len(names)",
        )
        for g, p in zip(got, ps, strict=True):
            check_array(g, p.temperature, f"{p.name}/temperature")
        ctx.extra["result_mb"] = sum(g.nbytes for g in got) / 2**20


def phase_scan_fresh(ctx: Context) -> None:
    _profile_scan(ctx, stacked=False, warm=False)


def phase_scan_warm(ctx: Context) -> None:
    _profile_scan(ctx, stacked=False, warm=True)


def phase_scan_stacked_fresh(ctx: Context) -> None:
    _profile_scan(ctx, stacked=True, warm=False)


def phase_scan_stacked_warm(ctx: Context) -> None:
    _profile_scan(ctx, stacked=True, warm=True)


# Session order: one handle does what a user does, in order (open and list, read every
# dataset's metadata, scan a variable, slice it across all); each phase times one step
# after doing the steps before it, untimed, on the same handle.
SESSION_STEPS = ("sweep", "scan", "slice")


def _session(ctx: Context, step: str) -> None:
    a = ctx.open_store()
    names = a.list_datasets()

    def sweep() -> Any:
        swept = []
        for d in map(a.open_dataset, names):
            arrays = d.list_arrays()
            swept.append((arrays, [d.array_meta(x) for x in arrays], d.attributes()))
        return swept

    def scan() -> Any:
        return a.read_array_across("temperature", names)

    def slice_across() -> Any:
        start, shape = list(wl.STACKED_START), list(wl.STACKED_SHAPE)
        return a.read_array_across_stacked("temperature", names, start=start, shape=shape)

    steps = {"sweep": sweep, "scan": scan, "slice": slice_across}
    for before in SESSION_STEPS[: SESSION_STEPS.index(step)]:
        steps[before]()
    with ctx.measure():
        got = steps[step]()
    ps = load_profiles(ctx)
    expect(names == [p.name for p in ps], "list_datasets: not the profiles in order")
    if step == "sweep":
        for (arrays, metas, attrs), p in zip(got, ps, strict=True):
            expect(arrays == list(wl.PROFILE_ARRAYS), f"{p.name}: list_arrays {arrays}")
            for array, meta in zip(arrays, metas, strict=True):
                expect(meta == p.array_meta(array), f"{p.name}/{array}: array_meta {meta}")
            check_attributes(attrs, p.attributes, p.name)
    elif step == "scan":
        for g, p in zip(got, ps, strict=True):
            check_array(g, p.temperature, f"{p.name}/temperature")
    else:
        window = slice(wl.STACKED_START[0], wl.STACKED_START[0] + wl.STACKED_SHAPE[0])
        check_array(got, np.stack([p.temperature[window] for p in ps]), "stacked temperature")


def phase_session_sweep(ctx: Context) -> None:
    _session(ctx, "sweep")


def phase_session_scan(ctx: Context) -> None:
    _session(ctx, "scan")


def phase_session_slice(ctx: Context) -> None:
    _session(ctx, "slice")


def _read_arrays_loop(ctx: Context, sliced: bool) -> None:
    a = ctx.open_store()
    names = wl.profile_names(ctx.n_profiles)
    if sliced:
        arrays = list(wl.PROFILE_LEVEL_ARRAYS)
        start, shape = list(wl.SLICE_START), list(wl.SLICE_SHAPE)
        with ctx.measure():
            got = [a.open_dataset(n).read_arrays(arrays, start=start, shape=shape) for n in names]
        window = slice(wl.SLICE_START[0], wl.SLICE_START[0] + wl.SLICE_SHAPE[0])
    else:
        arrays = list(wl.PROFILE_ARRAYS)
        with ctx.measure():
            got = [a.open_dataset(n).read_arrays(arrays) for n in names]
        window = slice(None)
    for g, p in zip(got, load_profiles(ctx), strict=True):
        expect(isinstance(g, dict) and list(g) == arrays, f"{p.name}: read_arrays keys {list(g)}")
        for name in arrays:
            check_array(g[name], p.array(name)[window], f"{p.name}/{name}")


def phase_read_arrays_full(ctx: Context) -> None:
    _read_arrays_loop(ctx, sliced=False)


def phase_read_arrays_sliced(ctx: Context) -> None:
    _read_arrays_loop(ctx, sliced=True)


def phase_slice_one(ctx: Context) -> None:
    """One small slice of one dataset on a freshly opened handle: latency and bytes read."""
    a = ctx.open_store()
    i = ctx.n_profiles // 2
    start, shape = list(wl.SLICE_START), list(wl.SLICE_SHAPE)
    with ctx.measure():
        got = a.open_dataset(wl.profile_name(i)).read_array("temperature", start=start, shape=shape)
    window = slice(wl.SLICE_START[0], wl.SLICE_START[0] + wl.SLICE_SHAPE[0])
    check_array(got, wl.profile(i).temperature[window], f"{wl.profile_name(i)}/temperature")


def _gridded_window(ctx: Context, start: Sequence[int], shape: Sequence[int]) -> None:
    a = ctx.open_store()
    names = wl.gridded_names(ctx.n_gridded)
    with ctx.measure():
        got = a.read_array_across_stacked(
            "temperature", names, start=list(start), shape=list(shape)
        )
    window = (slice(None), *(slice(s, s + k) for s, k in zip(start, shape, strict=True)))
    expected = np.asarray(load_gridded_temperature(ctx)[window])
    check_array(got, expected, "stacked gridded temperature")
    ctx.extra["result_mb"] = got.nbytes / 2**20


def phase_gridded_timestep(ctx: Context) -> None:
    t = wl.GRID_TIMESTEP
    _gridded_window(ctx, (t, 0, 0), (1, wl.GRID_SHAPE[1], wl.GRID_SHAPE[2]))


def phase_gridded_box(ctx: Context) -> None:
    _gridded_window(ctx, wl.GRID_BOX_START, wl.GRID_BOX_SHAPE)


def phase_xarray_load(ctx: Context) -> None:
    a = ctx.open_store()
    open_as_xarray = getattr(a, "open_as_xarray_dataset", None)
    if open_as_xarray is None:
        raise NotAvailable("Atlas.open_as_xarray_dataset is not there")
    import xarray  # a one-off import cost, kept out of the timing

    # xarray imports the array libraries it finds (dask, when installed) at the first
    # Variable it makes: also a one-off import, so it is done before the timing too
    xarray.Dataset({"v": ("x", np.zeros(1))}).load()

    names = wl.profile_names(min(XARRAY_DATASETS, ctx.n_profiles))
    with ctx.measure():
        loaded = [open_as_xarray(name).load() for name in names]
    for ds, p in zip(loaded, load_profiles(ctx), strict=False):
        for name in wl.PROFILE_ARRAYS:
            check_array(ds[name].values, p.array(name), f"{p.name}/{name} (xarray)")
        attrs = dict(ds.attrs)
        expect(attrs == p.attributes, f"{p.name}: xarray attrs {attrs} != {p.attributes}")


CATALOG_EXPR = "temperature.max > 20 and depth.max >= 1000 and institution == 'BODC'"


def phase_catalog_find(ctx: Context) -> None:
    """Catalogue of 3 arrays and 2 attributes, then one find, on a freshly opened handle."""
    a = ctx.open_store()
    if not hasattr(a, "catalog") or not hasattr(a, "find"):
        raise NotAvailable("Atlas.catalog / Atlas.find are not there")
    import pandas  # noqa: F401 - atlas imports it at the first catalog(); time the catalogue, not the import

    with ctx.measure():
        table = a.catalog(arrays=["temperature", "salinity", "depth"], attributes=["institution", "cycle_number"])
        found = a.find(CATALOG_EXPR)
    ps = load_profiles(ctx)
    expect(len(table) == len(ps), f"catalog has {len(table)} rows")
    expected = []
    for p in ps:
        t, d = p.array("temperature"), p.array("depth")
        tmax = float(np.nanmax(t)) if np.isfinite(t).any() else None
        dmax = float(np.nanmax(d)) if np.isfinite(d).any() else None
        if tmax is not None and tmax > 20 and dmax is not None and dmax >= 1000 and p.attributes["institution"] == "BODC":
            expected.append(p.name)
    expect(found == expected, f"find returned {len(found)} datasets, expected {len(expected)}")


def _survivors(names: list[str]) -> tuple[list[str], list[str]]:
    victims = names[::DELETE_EVERY]
    gone = set(victims)
    return victims, [n for n in names if n not in gone]


def _check_survivors(
    a: Any, survivors: list[str], victims: list[str], ps: list[wl.Profile]
) -> None:
    expect(a.list_datasets() == survivors, "list_datasets after the deletes differs")
    expect(not any(a.dataset_exists(v) for v in victims[:20]), "a deleted dataset still exists")
    by_name = {p.name: p for p in ps}
    got = a.read_array_across("temperature", survivors)
    for g, name in zip(got, survivors, strict=True):
        check_array(g, by_name[name].temperature, f"{name}/temperature")
    for name in sample(survivors, 10):
        check_profile(a.open_dataset(name), by_name[name])


def phase_delete_10pct(ctx: Context) -> None:
    a = ctx.open_store()
    victims, survivors = _survivors(a.list_datasets())
    with ctx.measure():
        for name in victims:
            a.delete_dataset(name)
        a.flush()
    ctx.extra.update(deleted=len(victims), **disk_usage(ctx.store))
    _check_survivors(ctx.open_store(), survivors, victims, load_profiles(ctx))


def phase_compact(ctx: Context) -> None:
    a = ctx.open_store()
    victims, survivors = _survivors(a.list_datasets())
    for name in victims:
        a.delete_dataset(name)
    a.flush()
    before = disk_usage(ctx.store)
    with ctx.measure():
        a.compact()
    after = disk_usage(ctx.store)
    ctx.extra.update(
        bytes_on_disk_before=before["bytes_on_disk"],
        bytes_on_disk_after=after["bytes_on_disk"],
        files_before=before["files"],
        files_after=after["files"],
    )
    ps = load_profiles(ctx)
    _check_survivors(a, survivors, victims, ps)  # the same handle keeps reading correctly
    _check_survivors(ctx.open_store(), survivors, victims, ps)  # and so does a fresh one
    expect(
        after["bytes_apparent"] < before["bytes_apparent"],
        f"compact did not shrink the store ({before['bytes_apparent']} -> {after['bytes_apparent']} bytes)",
    )


# --------------------------------------------------------------------------- machine limits


def _chunks_touched(start: Sequence[int], shape: Sequence[int]) -> list[tuple[slice, ...]]:
    """The on-disk chunk regions of a gridded array that a window overlaps."""
    per_axis = []
    for s, k, c, n in zip(start, shape, wl.GRID_CHUNKS, wl.GRID_SHAPE, strict=True):
        per_axis.append(
            [slice(j * c, min((j + 1) * c, n)) for j in range(s // c, (s + k - 1) // c + 1)]
        )
    regions: list[tuple[slice, ...]] = [()]
    for options in per_axis:
        regions = [r + (o,) for r in regions for o in options]
    return regions


def _limit_pieces_profiles(ctx: Context) -> list[bytes]:
    raw = b"".join(p.temperature.tobytes() for p in load_profiles(ctx))
    return [raw[i : i + LIMIT_FRAME_BYTES] for i in range(0, len(raw), LIMIT_FRAME_BYTES)]


def _limit_pieces_gridded(ctx: Context, start: Sequence[int], shape: Sequence[int]) -> list[bytes]:
    temperature = load_gridded_temperature(ctx)
    pieces = []
    for i in range(ctx.n_gridded):
        for region in _chunks_touched(start, shape):
            pieces.append(np.ascontiguousarray(temperature[i][region]).tobytes())
    return pieces


def _machine_limit(ctx: Context, key: str, pieces: Callable[[], list[bytes]]) -> None:
    """Time reading a file of zstd frames from the page cache and decompressing every frame.

    The frames hold the same raw bytes the matching atlas phase has to produce from its
    compressed chunks, so this is what the machine allows for that phase.
    """
    import zstandard

    path = ctx.workdir / "limits" / f"{key}.zst"
    index_path = path.with_suffix(".json")
    if not index_path.exists():
        raw = pieces()
        compressor = zstandard.ZstdCompressor(level=LIMIT_ZSTD_LEVEL)
        frames = [compressor.compress(piece) for piece in raw]
        offsets = np.cumsum([0] + [len(f) for f in frames[:-1]]).tolist()
        _atomic_write(path, b"".join(frames))
        index = {
            "segments": [[o, len(f)] for o, f in zip(offsets, frames, strict=True)],
            "raw_bytes": sum(len(r) for r in raw),
            "digest": wl.digest([np.frombuffer(b"".join(raw), dtype=np.uint8)]),
        }
        _atomic_write(index_path, json.dumps(index).encode())
    index = json.loads(index_path.read_text())
    segments = np.array(index["segments"], dtype=np.uint64).tobytes()
    path.read_bytes()  # make sure the file is in the page cache
    decompressor = zstandard.ZstdDecompressor()
    with ctx.measure():
        with open(path, "rb") as f:
            data = f.read()
        frames_in = zstandard.BufferWithSegments(data, segments)
        out = decompressor.multi_decompress_to_buffer(frames_in, threads=-1)
    joined = b"".join(out[i].tobytes() for i in range(len(out)))
    expect(len(joined) == index["raw_bytes"], "decompressed size differs")
    expect(
        wl.digest([np.frombuffer(joined, dtype=np.uint8)]) == index["digest"],
        "decompressed bytes differ",
    )
    ctx.extra.update(compressed_bytes=len(data), raw_bytes=len(joined), frames=len(out))


def limit_profiles_temperature(ctx: Context) -> None:
    _machine_limit(
        ctx, f"profiles-{ctx.n_profiles}-temperature", lambda: _limit_pieces_profiles(ctx)
    )


def limit_gridded_timestep(ctx: Context) -> None:
    start, shape = (wl.GRID_TIMESTEP, 0, 0), (1, wl.GRID_SHAPE[1], wl.GRID_SHAPE[2])
    _machine_limit(
        ctx, f"gridded-{ctx.n_gridded}-timestep", lambda: _limit_pieces_gridded(ctx, start, shape)
    )


def limit_gridded_box(ctx: Context) -> None:
    start, shape = wl.GRID_BOX_START, wl.GRID_BOX_SHAPE
    _machine_limit(
        ctx, f"gridded-{ctx.n_gridded}-box", lambda: _limit_pieces_gridded(ctx, start, shape)
    )


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Phase:
    """One row of the benchmark table.

    ``kind`` tells ``run.py`` how to prepare the store: ``ingest`` writes a new store,
    ``read`` reuses the built store of ``collection``, ``mutate`` gets a private copy of
    it, ``size`` is measured by ``run.py`` itself (no process), and ``limit`` is the
    machine's limit for the phases whose ``limit`` names it (it runs once, not per impl).
    """

    name: str
    title: str
    kind: Kind
    collection: Collection | None
    run: Callable[[Context], None] | None
    limit: str | None = None


PHASES: dict[str, Phase] = {
    p.name: p
    for p in [
        Phase(
            "ingest_profiles",
            "ingest profiles + flush",
            "ingest",
            "profiles",
            phase_ingest_profiles,
        ),
        Phase(
            "ingest_gridded", "ingest gridded + flush", "ingest", "gridded", phase_ingest_gridded
        ),
        Phase("size_profiles", "store size profiles, MB on disk", "size", "profiles", None),
        Phase("size_gridded", "store size gridded, MB on disk", "size", "gridded", None),
        Phase("open_list", "open + list", "read", "profiles", phase_open_list),
        Phase("metadata_sweep", "metadata sweep", "read", "profiles", phase_metadata_sweep),
        Phase(
            "scan_fresh",
            "temperature across all, fresh",
            "read",
            "profiles",
            phase_scan_fresh,
            "limit_profiles",
        ),
        Phase(
            "scan_warm",
            "temperature across all, warm",
            "read",
            "profiles",
            phase_scan_warm,
            "limit_profiles",
        ),
        Phase(
            "scan_stacked_fresh",
            "stacked [0:50] across all, fresh",
            "read",
            "profiles",
            phase_scan_stacked_fresh,
        ),
        Phase(
            "scan_stacked_warm",
            "stacked [0:50] across all, warm",
            "read",
            "profiles",
            phase_scan_stacked_warm,
        ),
        Phase("session_sweep", "session: sweep after open + list", "read", "profiles", phase_session_sweep),
        Phase("session_scan", "session: scan after the sweep", "read", "profiles", phase_session_scan),
        Phase("session_slice", "session: stacked [0:50] after the scan", "read", "profiles", phase_session_slice),
        Phase(
            "limit_profiles",
            "machine limit: temperature scan",
            "limit",
            "profiles",
            limit_profiles_temperature,
        ),
        Phase(
            "read_arrays_full", "read_arrays loop, full", "read", "profiles", phase_read_arrays_full
        ),
        Phase(
            "read_arrays_sliced",
            "read_arrays loop, [10:30]",
            "read",
            "profiles",
            phase_read_arrays_sliced,
        ),
        Phase("slice_one", "one slice, fresh handle", "read", "profiles", phase_slice_one),
        Phase(
            "gridded_timestep",
            "gridded one time step",
            "read",
            "gridded",
            phase_gridded_timestep,
            "limit_timestep",
        ),
        Phase(
            "limit_timestep", "machine limit: time step", "limit", "gridded", limit_gridded_timestep
        ),
        Phase(
            "gridded_box",
            "gridded 30x40 box, all times",
            "read",
            "gridded",
            phase_gridded_box,
            "limit_box",
        ),
        Phase("limit_box", "machine limit: box", "limit", "gridded", limit_gridded_box),
        Phase("xarray_load", "xarray open + load (200)", "read", "profiles", phase_xarray_load),
        Phase("catalog_find", "catalog (3 arrays, 2 attrs) + find", "read", "profiles", phase_catalog_find),
        Phase("delete_10pct", "delete 10% + flush", "mutate", "profiles", phase_delete_10pct),
        Phase("compact", "compact after delete", "mutate", "profiles", phase_compact),
    ]
}


# --------------------------------------------------------------------------- entry point


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def run_phase(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    phase = PHASES[args.phase]
    if phase.run is None:
        raise SystemExit(f"phase {phase.name} is measured by run.py, not in a process")
    result: dict[str, Any] = {"phase": phase.name, "impl": args.impl, "status": "ok", "detail": ""}
    code = EXIT_OK
    ctx: Context | None = None
    try:
        atlas_module: ModuleType | None = None
        if phase.kind != "limit":
            atlas_module = importlib.import_module("atlas")
            result["atlas_file"] = getattr(atlas_module, "__file__", None)
            result["atlas_version"] = getattr(atlas_module, "__version__", None)
        ctx = Context(
            atlas=atlas_module,
            impl=args.impl,
            store=Path(args.store),
            workdir=Path(args.workdir),
            n_profiles=args.profiles,
            n_gridded=args.gridded,
        )
        phase.run(ctx)
        if ctx.measurement is None:
            raise RuntimeError(f"phase {phase.name} measured nothing")
    except (KeyboardInterrupt, SystemExit):
        raise
    except VerificationError as exc:
        result.update(status="failed", detail=str(exc)[:500])
        code = EXIT_FAILED
    except NotAvailable as exc:
        result.update(status="n/a", detail=str(exc))
        code = EXIT_NOT_AVAILABLE
    except BaseException as exc:  # a Rust panic is a BaseException, not an Exception
        result.update(status="error", detail=_short(exc), traceback=traceback.format_exc()[-4000:])
        code = EXIT_ERROR
    if ctx is not None and ctx.measurement is not None:
        m = ctx.measurement
        result.update(
            seconds=m.seconds,
            cpu_seconds=m.cpu_seconds,
            mem_growth_mb=m.mem_growth_mb,
            rss_before_mb=m.rss_before_kb / 1024.0,
            hwm_reset=m.hwm_reset,
            io=m.io,
        )
    if ctx is not None:
        result["extra"] = ctx.extra
    return result, code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=sorted(PHASES))
    parser.add_argument("--impl", default="ours", help="label only: ours, ref or limit")
    parser.add_argument("--store", required=True, help="store directory the phase works on")
    parser.add_argument(
        "--workdir", required=True, help="where workload caches and limit files live"
    )
    parser.add_argument("--profiles", type=int, default=2_000)
    parser.add_argument("--gridded", type=int, default=50)
    args = parser.parse_args(argv)
    result, code = run_phase(args)
    sys.stdout.flush()
    print(RESULT_MARKER + json.dumps(result, default=str), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
