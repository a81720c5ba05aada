"""``atlas demo``: write (or take) ocean profiles, ingest them, and read one variable
across all of them."""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import EXIT_OK, EXIT_PARTIAL, CommandError
from .ingest import default_jobs, print_summary, run_ingest
from .output import format_seconds, print_json
from .progress import make_progress
from .store import open_store

if TYPE_CHECKING:
    from ..api import Atlas


def _generate(directory: Path, count: int, jobs: int) -> None:
    """Write ``count`` synthetic profiles, in parallel when there are many."""
    from ..integrations.netcdf import worker_pool, write_synthetic_profiles

    if jobs <= 1 or count < 200:
        write_synthetic_profiles(directory, count)
        return
    step = math.ceil(count / (4 * jobs))
    with worker_pool(jobs) as pool:
        futures = [
            pool.submit(write_synthetic_profiles, directory, min(step, count - s), start=s)
            for s in range(0, count, step)
        ]
        for f in futures:
            f.result()


def cross_summary(store: Atlas, variable: str) -> dict[str, Any]:
    """Count, min, max and mean of one variable over every dataset holding it."""
    import numpy as np

    names = store.list_datasets()
    t0 = time.perf_counter()
    parts = [a for a in store.read_array_across(variable, names) if a is not None]
    took = time.perf_counter() - t0
    flat = np.concatenate([p.reshape(-1) for p in parts]) if parts else np.empty(0)
    if flat.dtype.kind == "f":
        flat = flat[~np.isnan(flat)]
    return {
        "variable": variable,
        "datasets": len(parts),
        "count": int(flat.size),
        "min": float(flat.min()) if flat.size else None,
        "max": float(flat.max()) if flat.size else None,
        "mean": float(flat.mean(dtype=np.float64)) if flat.size else None,
        "seconds": round(took, 4),
    }


def _sources(
    args: argparse.Namespace, workdir: Path, jobs: int, say: Callable[[str], None]
) -> tuple[Path, str, Path, float]:
    """(NetCDF directory, variable, store path, seconds spent writing profiles)."""
    from ..integrations.netcdf import find_netcdf_files

    if args.argo is not None:
        src = Path(args.argo)
        if not src.is_dir():
            raise CommandError(f"{src} is not a directory")
        return src, args.variable or "TEMP", workdir / "argo.atlas", 0.0
    src = workdir / "profiles"
    variable = args.variable or "temperature"
    if src.exists() and find_netcdf_files(src):
        say(f"using the profiles already in {src}")
        return src, variable, workdir / "profiles.atlas", 0.0
    t = time.perf_counter()
    _generate(src, args.files, jobs)
    gen_time = time.perf_counter() - t
    say(f"wrote {args.files} synthetic profiles to {src} in {format_seconds(gen_time)}")
    return src, variable, workdir / "profiles.atlas", gen_time


def _print_result(variable: str, summary: dict[str, Any], where: str, seconds: float) -> None:
    s = summary
    if s["count"]:
        print(
            f"{variable} across {s['datasets']} profiles: {s['count']} values, "
            f"min {s['min']:.3f}, max {s['max']:.3f}, mean {s['mean']:.3f} "
            f"(read_array_across in {format_seconds(s['seconds'])})"
        )
    else:
        print(f"{variable}: no values in {s['datasets']} profiles")
    print(f"demo done in {format_seconds(seconds)}; {where}")


def _run(args: argparse.Namespace, workdir: Path, keep: bool, t0: float) -> int:
    """The demo in ``workdir``."""
    jobs = args.jobs or default_jobs()
    say: Callable[[str], None] = (lambda s: None) if args.json else (lambda s: print(s, flush=True))
    src, variable, store_path, gen_time = _sources(args, workdir, jobs, say)
    if store_path.exists():
        shutil.rmtree(store_path)
    progress = make_progress("ingest", args.quiet or args.json)
    report = run_ingest(src, store_path, progress, jobs=jobs, skip_errors=True)
    if not args.json:
        print_summary(report, args.verbose, sys.stdout)
    store = open_store(str(store_path))
    try:
        summary = cross_summary(store, variable)
    except KeyError:
        raise CommandError(f"no ingested dataset has a variable named {variable!r}") from None
    if args.json:
        ingest = report.as_dict()
        ingest.pop("added", None)
        print_json({
            "source": str(src),
            "store": store.location,
            "generate_seconds": round(gen_time, 3),
            "ingest": ingest,
            "summary": summary,
            "total_seconds": round(time.perf_counter() - t0, 3),
        })
    else:
        where = f"kept in {workdir}" if keep else "temporary files removed"
        _print_result(variable, summary, where, time.perf_counter() - t0)
    return EXIT_PARTIAL if report.skipped else EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate (or take) profiles, ingest them, and query one variable across all."""
    from ..integrations.netcdf import release_memory_promptly

    release_memory_promptly()
    t0 = time.perf_counter()
    workdir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="atlas-demo-"))
    keep = args.dir is not None
    try:
        return _run(args, workdir, keep, t0)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
