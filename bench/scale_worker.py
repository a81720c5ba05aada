"""One measurement of the scale probe, in a fresh process (driven by ``scale.py``).

    python bench/scale_worker.py OP --store PATH --n N [--batch B] [--tag T] [--cprofile]

imports ``atlas`` from the running interpreter (the project's venv or the yardstick's),
does one operation of the probe and prints one line ``SCALE_RESULT {json}``: the wall time
of the timed block, the process's peak RSS right after it, the bytes the block wrote
(``/proc/self/io`` ``wchar``) and the files it added or changed in the store. Only the
standard library, numpy and ``atlas`` are used, so it runs in both venvs.

The probe's datasets: profile ``pNNNNNNN`` has ``depth``, ``temperature`` and
``salinity`` (float32, 100 levels, rounded to 0.1 / 0.001 / 0.001) and 6 attributes; the
data of dataset ``i`` is a pure function of ``i``, so any process can regenerate it.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RESULT_MARKER = "SCALE_RESULT "
LEVELS = 100
BLOCK = 1_000  # datasets generated together (one numpy draw per variable)
SEED = 13
FIND_EXPR = "temperature.max > 20.8"
FIND_THRESHOLD = 20.8
CATALOG_ARRAYS = ["temperature", "salinity", "depth"]
CATALOG_ATTRS = ["station", "cycle"]
APPEND_COUNT = 100
HISTORY_COMMITS = 100
VARIABLES = ("depth", "temperature", "salinity")


class VerificationError(AssertionError):
    """The implementation returned wrong values."""


class NotAvailable(Exception):
    """The side does not offer what is measured (the table shows a dash)."""


# --------------------------------------------------------------------------- workload


def dataset_name(i: int) -> str:
    return f"p{i:07d}"


def source_index(name: str) -> int:
    """The generator index behind a dataset name (``p0000042`` or appended ``xTAG_042``)."""
    return int(name[1:]) if name.startswith("p") else int(name.rsplit("_", 1)[1])


def generate_block(block: int) -> dict[str, np.ndarray]:
    """The three arrays of datasets ``block*BLOCK ... +BLOCK-1``, shape (BLOCK, LEVELS)."""
    rng = np.random.default_rng([SEED, block])
    bottom = rng.uniform(500.0, 2000.0, size=(BLOCK, 1))
    depth = np.round(np.linspace(0.0, 1.0, LEVELS) * bottom, 1)
    surface = rng.uniform(2.0, 22.0, size=(BLOCK, 1))
    noise = rng.normal(0.0, 0.05, size=(BLOCK, LEVELS))
    temperature = np.round(surface * np.exp(-depth / 800.0) + 2.0 + noise, 3)
    wave = np.sin(depth / 300.0 + rng.uniform(0, 6.28, size=(BLOCK, 1)))
    salinity = np.round(34.5 + 0.8 * wave + rng.normal(0.0, 0.01, size=(BLOCK, LEVELS)), 3)
    return {
        "depth": depth.astype(np.float32),
        "temperature": temperature.astype(np.float32),
        "salinity": salinity.astype(np.float32),
    }


def attributes(i: int) -> dict[str, Any]:
    return {
        "station": f"ST{i % 500:03d}",
        "platform": f"float_{i // 100}",
        "cycle": i % 300,
        "lat": ((i * 7919) % 120_000) / 1000.0 - 60.0,
        "lon": ((i * 104_729) % 360_000) / 1000.0 - 180.0,
        "qc_passed": bool(i % 3),
    }


class Generator:
    """Arrays of any dataset index, one cached block at a time."""

    def __init__(self) -> None:
        self._block = -1
        self._data: dict[str, np.ndarray] = {}

    def arrays(self, i: int) -> dict[str, np.ndarray]:
        if i // BLOCK != self._block:
            self._block = i // BLOCK
            self._data = generate_block(self._block)
        return {k: v[i % BLOCK] for k, v in self._data.items()}


def temperature_maxima(n: int) -> np.ndarray:
    """float32 maximum of the temperature of datasets 0..n-1."""
    blocks = [generate_block(b)["temperature"].max(axis=1) for b in range(-(-n // BLOCK))]
    return np.concatenate(blocks)[:n]


def write_dataset(
    store: Any, name: str, arrays: dict[str, np.ndarray], attrs: dict[str, Any]
) -> None:
    ds = store.create_dataset(name)
    for var in VARIABLES:
        ds.define_array(var, "float32", ["level"], [LEVELS], fill_value=float("nan"))
        ds.write_array(var, [0], arrays[var])
    for key, value in attrs.items():
        ds.set_attribute(key, value)


# --------------------------------------------------------------------------- measuring


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def written_bytes() -> int:
    try:
        with open("/proc/self/io") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("wchar:"))
    except (OSError, StopIteration):
        return 0


def is_metadata(relpath: str) -> bool:
    """Our manifests, dataset shards and chunk indexes; the yardstick's ``atlas.json`` and ``*.stats``."""
    top = relpath.split("/", 1)[0]
    return top in ("manifests", "meta", "index") or relpath == "atlas.json" or relpath.endswith(".stats")


def tree(store: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under ``store``: relative path -> (size, mtime_ns, inode)."""
    files = {}
    for root, _dirs, names in os.walk(store):
        for name in names:
            st = os.lstat(os.path.join(root, name))
            rel = os.path.relpath(os.path.join(root, name), store)
            files[rel] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return files


def tree_delta(
    before: dict[str, tuple[int, int, int]], after: dict[str, tuple[int, int, int]]
) -> dict[str, int]:
    """Bytes of the files a block added or changed, metadata and data apart."""
    changed = [rel for rel, key in after.items() if before.get(rel) != key]
    meta = sum(after[rel][0] for rel in changed if is_metadata(rel))
    data = sum(after[rel][0] for rel in changed if not is_metadata(rel))
    return {"files_changed": len(changed), "meta_bytes": meta, "data_bytes": data}


@dataclass
class Context:
    atlas: Any
    store: Path
    n: int
    batch: int
    tag: str
    cprofile: bool
    result: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def measure(self, watch_store: bool = False) -> Iterator[None]:
        """Time the block (wall and CPU); record the peak RSS after it, the bytes written and (when
        ``watch_store``) the files of the store it added or changed."""
        before = tree(self.store) if watch_store else {}
        profiler = cProfile.Profile() if self.cprofile else None
        wchar = written_bytes()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        if profiler:
            profiler.enable()
        yield
        if profiler:
            profiler.disable()
        self.result["seconds"] = time.perf_counter() - t0
        self.result["cpu_seconds"] = time.process_time() - cpu0  # every thread's user + system
        self.result["wchar"] = written_bytes() - wchar
        self.result["peak_rss_mb"] = peak_rss_mb()
        if watch_store:
            self.result.update(tree_delta(before, tree(self.store)))
        if profiler:
            self.result["profile"] = profile_text(profiler)

    def open(self) -> Any:
        return self.atlas.Atlas.open(str(self.store))


def profile_text(profiler: cProfile.Profile, lines: int = 10) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(lines)
    stats.sort_stats("cumulative").print_stats(lines)
    return out.getvalue()


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise VerificationError(message)


# --------------------------------------------------------------------------- operations


def op_build(ctx: Context) -> None:
    """Create the store, write ``n`` datasets and flush after every ``batch``; the time
    spent generating data is left out of ``seconds``."""
    gen, flushes, generating = Generator(), [], 0.0
    t0 = time.perf_counter()
    store = ctx.atlas.Atlas.create(str(ctx.store))
    for i in range(ctx.n):
        g0 = time.perf_counter()
        arrays = gen.arrays(i)
        generating += time.perf_counter() - g0
        write_dataset(store, dataset_name(i), arrays, attributes(i))
        if (i + 1) % ctx.batch == 0 or i + 1 == ctx.n:
            f0 = time.perf_counter()
            store.flush()
            flushes.append(time.perf_counter() - f0)
    ctx.result.update(
        seconds=time.perf_counter() - t0 - generating,
        generating_s=generating,
        flushes_s=flushes,
        last_flush_s=flushes[-1],
        peak_rss_mb=peak_rss_mb(),
    )


def check_names(ctx: Context, names: list[str]) -> None:
    built = [n for n in names if n.startswith("p")]
    expect(
        built == [dataset_name(i) for i in range(ctx.n)],
        f"{len(built)} built names listed, expected {ctx.n}",
    )


def op_open_list(ctx: Context) -> None:
    with ctx.measure():
        names = ctx.open().list_datasets()
    check_names(ctx, names)
    ctx.result["datasets"] = len(names)


def check_scan(got: list[np.ndarray] | np.ndarray, names: list[str]) -> None:
    expect(len(got) == len(names), f"scan returned {len(got)} arrays for {len(names)} names")
    gen = Generator()
    for k in sorted({0, len(names) - 1, *range(0, len(names), max(1, len(names) // 50))}):
        want = gen.arrays(source_index(names[k]))["temperature"]
        expect(np.array_equal(np.asarray(got[k]), want), f"temperature of {names[k]} differs")


def op_scan(ctx: Context) -> None:
    store = ctx.open()
    names = store.list_datasets()
    with ctx.measure():
        got = store.read_array_across("temperature", names)
    check_scan(got, names)


def op_scan_stacked(ctx: Context) -> None:
    store = ctx.open()
    names = store.list_datasets()
    with ctx.measure():
        got = store.read_array_across_stacked("temperature", names)
    expect(got.shape == (len(names), LEVELS), f"stacked shape {got.shape}")
    check_scan(got, names)


def op_find(ctx: Context) -> None:
    store = ctx.open()
    if not hasattr(store, "find"):
        raise NotAvailable("no Atlas.find")
    with ctx.measure():
        found = store.find(FIND_EXPR)
    names = store.list_datasets()
    maxima = temperature_maxima(max(ctx.n, APPEND_COUNT))
    want = [n for n in names if float(maxima[source_index(n)]) > FIND_THRESHOLD]
    expect(found == want, f"find returned {len(found)} datasets, expected {len(want)}")
    ctx.result["found"] = len(found)


def op_catalog(ctx: Context) -> None:
    store = ctx.open()
    if not hasattr(store, "catalog"):
        raise NotAvailable("no Atlas.catalog")
    import pandas  # noqa: F401 - atlas imports it at the first catalog(); time the catalogue, not the import

    with ctx.measure():
        table = store.catalog(arrays=CATALOG_ARRAYS, attributes=CATALOG_ATTRS)
    names = store.list_datasets()
    expect(list(table.index) == names, f"catalog has {len(table)} rows for {len(names)} datasets")
    for col in ["station", "cycle", "temperature.max", "depth.min", "salinity.null_count"]:
        expect(col in table.columns, f"catalog lacks {col}")


def op_append(ctx: Context) -> None:
    """Append ``APPEND_COUNT`` datasets named ``xTAG_NNN`` (data of datasets 0..99) + flush."""
    store = ctx.open()
    gen = Generator()
    data = [gen.arrays(k) for k in range(APPEND_COUNT)]
    with ctx.measure(watch_store=True):
        for k in range(APPEND_COUNT):
            write_dataset(store, f"x{ctx.tag}_{k:03d}", data[k], attributes(k))
        store.flush()
    expect(
        ctx.open().dataset_exists(f"x{ctx.tag}_{APPEND_COUNT - 1:03d}"), "appended dataset missing"
    )


def change_attribute(store: Any, i: int, value: int) -> None:
    store.open_dataset(dataset_name(i)).set_attribute("cycle", value)
    store.flush()


def op_attribute(ctx: Context) -> None:
    store = ctx.open()
    i, value = int(ctx.tag, 16) % ctx.n, 1000 + int(ctx.tag, 16) % 1000
    with ctx.measure(watch_store=True):
        change_attribute(store, i, value)
    got = ctx.open().open_dataset(dataset_name(i)).get_attribute("cycle")
    expect(got == value, f"cycle of {dataset_name(i)} is {got!r}, expected {value}")


def op_history(ctx: Context) -> None:
    """``HISTORY_COMMITS`` commits of one attribute change each (times per commit)."""
    store = ctx.open()
    times = []
    for c in range(HISTORY_COMMITS):
        t0 = time.perf_counter()
        change_attribute(store, (c * 997) % ctx.n, 2000 + c)
        times.append(time.perf_counter() - t0)
    ctx.result.update(seconds=sum(times), commits_s=times, peak_rss_mb=peak_rss_mb())


OPS: dict[str, Callable[[Context], None]] = {
    "build": op_build,
    "open_list": op_open_list,
    "scan": op_scan,
    "scan_stacked": op_scan_stacked,
    "find": op_find,
    "catalog": op_catalog,
    "append": op_append,
    "attribute": op_attribute,
    "history": op_history,
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"op": args.op, "status": "ok", "detail": ""}
    try:
        import atlas

        result["atlas_file"] = atlas.__file__
        ctx = Context(atlas, Path(args.store), args.n, args.batch, args.tag, args.cprofile, result)
        OPS[args.op](ctx)
    except NotAvailable as exc:
        result.update(status="n/a", detail=str(exc))
    except VerificationError as exc:
        result.update(status="failed", detail=str(exc))
    except BaseException as exc:  # the yardstick's panics derive from BaseException
        result.update(
            status="error", detail=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("op", choices=sorted(OPS))
    parser.add_argument("--store", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--tag", default="0")
    parser.add_argument("--cprofile", action="store_true")
    result = run(parser.parse_args(argv))
    print(RESULT_MARKER + json.dumps(result), flush=True)
    return 0 if result["status"] in ("ok", "n/a") else 1


if __name__ == "__main__":
    sys.exit(main())
