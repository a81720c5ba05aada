"""The scale probe: one store of N profile datasets, our atlas against the yardstick.

    bench/run --scale-probe [N] [--reps R] [--batch B] [--impl ours|ref|both] [--rebuild] ...

Each side builds its store once (a flush after every ``--batch`` datasets, in its own
process) and keeps it under ``--workdir`` (``/tmp/atlas-scale/<impl>-<N>-b<B>/store``),
with ``state.json`` recording what built it (a digest of ``src/atlas``, or the yardstick's
version) and the build's figures; a store built by other code is rebuilt. Then every
figure comes from a fresh process (``scale_worker.py``): the reads ``--reps`` times each,
sides alternating, then the commits (append 100 datasets, change one attribute), which
land in the kept store, then once per built store 100 commits of history. Prints a table
with both sides and the ratio, and writes ``bench/results/scale-<N>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scale_worker import RESULT_MARKER, is_metadata
from sides import ATLAS_ROOTS, BENCH, IMPLS, INTERPRETERS, REPO

WORKER = BENCH / "scale_worker.py"
WORKLOAD_VERSION = "1"  # bump when scale_worker's datasets change: kept stores are rebuilt
READ_OPS = ("open_list", "scan", "scan_stacked", "find", "catalog")
COMMIT_OPS = ("append", "attribute")
MB = 1e6  # decimal megabytes


@dataclass
class Config:
    n: int
    batch: int
    reps: int
    impls: tuple[str, ...]
    workdir: Path
    rebuild: bool
    timeout: float
    output: Path
    cprofile: bool
    history: bool


@dataclass
class Side:
    """One side's kept store and everything measured on it."""

    impl: str
    home: Path
    state: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def store(self) -> Path:
        return self.home / "store"

    def save(self) -> None:
        tmp = self.home / "state.json.tmp"
        tmp.write_text(json.dumps(self.state, indent=1))
        os.replace(tmp, self.home / "state.json")


# --------------------------------------------------------------------------- processes


def code_stamp(impl: str) -> str:
    """What builds a store: a digest of our sources, or the yardstick's version."""
    if impl == "ref":
        return f"atlas-python==0.10.0 workload {WORKLOAD_VERSION}"
    digest = hashlib.sha256()
    for f in sorted((REPO / "src" / "atlas").rglob("*.py")):
        digest.update(f.relative_to(REPO).as_posix().encode() + b"\0" + f.read_bytes())
    return f"src:{digest.hexdigest()[:16]} workload {WORKLOAD_VERSION}"


def spawn(cfg: Config, side: Side, op: str, *extra: str) -> dict[str, Any]:
    """Run one worker process; its result, or an error result."""
    cmd = [str(INTERPRETERS[side.impl]), str(WORKER), op, "--store", str(side.store)]
    cmd += ["--n", str(cfg.n), "--batch", str(cfg.batch), "--tag", os.urandom(4).hex(), *extra]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=cfg.timeout, env=env, cwd=REPO
        )
    except subprocess.TimeoutExpired:
        return {"op": op, "status": "timeout", "detail": f"no result within {cfg.timeout:g} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARKER)]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return {"op": op, "status": "error", "detail": f"no result: {tail[:300]}"}
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_MARKER) :])
    if not Path(result.get("atlas_file", "/")).is_relative_to(ATLAS_ROOTS[side.impl]):
        result.update(
            status="error", detail=f"imported the wrong atlas: {result.get('atlas_file')}"
        )
    return result


def log(side: Side, label: str, result: dict[str, Any]) -> None:
    value = f"{result['seconds']:.3f} s" if "seconds" in result else "-"
    status = (
        result["status"]
        if result["status"] == "ok"
        else f"{result['status']}: {result['detail'][:120]}"
    )
    print(f"  {side.impl:<4} {label:<14} {value:>10}  {status}", flush=True)


# --------------------------------------------------------------------------- stores


def store_sizes(store: Path) -> dict[str, int]:
    """Bytes on disk (``st_blocks``) in all, of manifests and of chunk indexes (ours:
    ``manifests/`` with the dataset shards of ``meta/``, ``index/``; the yardstick:
    ``atlas.json``, ``*.stats``), and files."""
    sizes = {"total": 0, "manifests": 0, "index": 0, "files": 0}
    for root, _dirs, names in os.walk(store):
        for name in names:
            path = os.path.join(root, name)
            rel, used = os.path.relpath(path, store), os.lstat(path).st_blocks * 512
            sizes["total"] += used
            sizes["files"] += 1
            if is_metadata(rel):
                sizes[
                    "index" if rel.startswith("index/") or rel.endswith(".stats") else "manifests"
                ] += used
    return sizes


def prepare(cfg: Config, impl: str) -> Side:
    """The side's kept store, built now when missing, stale or ``--rebuild``."""
    side = Side(impl, cfg.workdir / f"{impl}-{cfg.n}-b{cfg.batch}")
    state_file = side.home / "state.json"
    if state_file.exists() and not cfg.rebuild:
        side.state = json.loads(state_file.read_text())
        if (
            side.state.get("stamp") == code_stamp(impl)
            and side.state.get("build", {}).get("status") == "ok"
        ):
            print(f"  {impl:<4} reusing {side.store} (built {side.state['built_at']})")
            return side
    shutil.rmtree(side.home, ignore_errors=True)
    side.home.mkdir(parents=True)
    print(f"  {impl:<4} building {cfg.n:,} datasets in {side.store} ...", flush=True)
    build = spawn(cfg, side, "build")
    log(side, "build", build)
    side.state = {"stamp": code_stamp(impl), "built_at": now(), "build": build}
    if build["status"] == "ok":
        side.state["sizes"] = store_sizes(side.store)
    side.save()
    return side


def history(cfg: Config, side: Side) -> None:
    """100 commits of one attribute change each, once per kept store; sizes after."""
    if not cfg.history or "history" in side.state or side.state["build"]["status"] != "ok":
        return
    result = spawn(cfg, side, "history")
    log(side, "history", result)
    if result["status"] == "ok":
        result["sizes"] = store_sizes(side.store)
    side.state["history"] = result
    side.save()


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- driver


def measure(cfg: Config, sides: list[Side], ops: tuple[str, ...]) -> None:
    for rep in range(cfg.reps):
        order = sides if rep % 2 == 0 else sides[::-1]
        for op in ops:
            for side in order:
                if side.state["build"]["status"] != "ok":
                    continue
                result = spawn(cfg, side, op)
                log(side, f"{op} {rep + 1}/{cfg.reps}", result)
                side.runs.setdefault(op, []).append(result)


def profiles(cfg: Config, side: Side) -> dict[str, str]:
    """cProfile of open + list and of the scan (our side), top lines by own and cumulative time."""
    texts = {}
    for op in ("open_list", "scan"):
        result = spawn(cfg, side, op, "--cprofile")
        texts[op] = result.get("profile", f"{result['status']}: {result['detail']}")
        print(f"\n---- cProfile of {op} ({side.impl}, {cfg.n:,} datasets)\n{texts[op]}")
    return texts


# --------------------------------------------------------------------------- table


def median(side: Side, op: str, key: str = "seconds") -> float | str:
    runs = side.runs.get(op, [])
    bad = [r for r in runs if r["status"] != "ok"]
    if not runs:
        return ""
    if bad:
        return "—" if bad[0]["status"] == "n/a" else bad[0]["status"]
    return statistics.median(r[key] for r in runs)


def from_state(side: Side, *keys: str, scale: float = 1.0) -> float | str:
    value: Any = side.state
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return ""
        if value.get("status", "ok") != "ok":
            return str(value["status"])
        value = value[key]
    return float(value) / scale


Getter = Callable[[Side], "float | str"]


@dataclass(frozen=True)
class Row:
    title: str
    unit: str
    get: Getter
    spread_of: str | None = None  # the op whose runs' min-max the notes show


def _scaled(value: float | str, scale: float) -> float | str:
    return value / scale if isinstance(value, float | int) else value


def timed(title: str, op: str) -> Row:
    return Row(title, "s", lambda s: median(s, op), op)


def per_run(title: str, unit: str, op: str, key: str, scale: float = 1.0) -> Row:
    return Row(title, unit, lambda s: _scaled(median(s, op, key), scale))


def kept(title: str, unit: str, *keys: str, scale: float = 1.0) -> Row:
    return Row(title, unit, lambda s: from_state(s, *keys, scale=scale))


ROWS = [
    timed("open + `list_datasets()`", "open_list"),
    per_run("open + `list_datasets()`, peak RSS of the process", "MB", "open_list", "peak_rss_mb"),
    timed('`read_array_across("temperature", all)`', "scan"),
    per_run("`read_array_across`, peak RSS of the process", "MB", "scan", "peak_rss_mb"),
    timed("`read_array_across_stacked`, same", "scan_stacked"),
    timed('`find("temperature.max > 20.8")`', "find"),
    timed("`catalog()` of 3 arrays' statistics + 2 attributes", "catalog"),
    timed("append 100 datasets + `flush()`", "append"),
    timed("change one attribute + `flush()`", "attribute"),
    kept("flush of the last batch", "s", "build", "last_flush_s"),
    per_run("metadata written by the append-100 commit", "MB", "append", "meta_bytes", MB),
    per_run("metadata written by the attribute commit", "MB", "attribute", "meta_bytes", MB),
    per_run("all bytes written by the attribute commit (`wchar`)", "MB", "attribute", "wchar", MB),
    kept("manifests (and dataset shards) on disk, all versions", "MB", "sizes", "manifests", scale=MB),
    kept("chunk index / statistics files on disk", "MB", "sizes", "index", scale=MB),
    kept("store on disk after the build", "MB", "sizes", "total", scale=MB),
    kept("files in the store after the build", "", "sizes", "files"),
    kept("peak memory while building (process)", "MB", "build", "peak_rss_mb"),
    kept("build time (data generation excluded)", "s", "build", "seconds"),
    kept("store on disk after 100 more commits", "MB", "history", "sizes", "total", scale=MB),
]


def spread(side: Side, op: str) -> str:
    """``min-max`` of the ok runs' wall seconds and their median CPU seconds."""
    ok = [r for r in side.runs.get(op, []) if r["status"] == "ok"]
    if not ok:
        return ""
    wall = [r["seconds"] for r in ok]
    cpu = f"cpu {fmt(statistics.median(r.get('cpu_seconds', float('nan')) for r in ok))}"
    return f"{fmt(min(wall))}–{fmt(max(wall))} ({cpu})" if len(ok) > 1 else f"({cpu})"


def fmt(value: float | str) -> str:
    if isinstance(value, str):
        return value
    if value != value:  # NaN: not recorded
        return "?"
    if value >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}" if value >= 1 else f"{value:.3f}" if value >= 0.01 else f"{value:.4f}"


def render(n: int, batch: int, sides: dict[str, Side]) -> str:
    lines = [
        f"| N = {n:,}, flush every {batch:,} | unit | atlas | yardstick | atlas / yardstick "
        "| runs min–max (median CPU s), atlas / yardstick |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for row in ROWS:
        ours = row.get(sides["ours"]) if "ours" in sides else ""
        ref = row.get(sides["ref"]) if "ref" in sides else ""
        both = isinstance(ours, float | int) and isinstance(ref, float | int) and ref
        ratio = f"{ours / ref:.2f}" if both else ""  # type: ignore[operator]
        spreads = [spread(s, row.spread_of) for s in sides.values()] if row.spread_of else []
        note = " / ".join(x or "—" for x in spreads) if any(spreads) else ""
        lines.append(f"| {row.title} | {row.unit} | {fmt(ours)} | {fmt(ref)} | {ratio} | {note} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> Config:
    parser = argparse.ArgumentParser(
        description="The scale probe (see bench/README.md)."
    )
    parser.add_argument(
        "--scale-probe", type=int, nargs="?", const=100_000, default=100_000, metavar="N"
    )
    parser.add_argument(
        "--batch", type=int, default=10_000, help="datasets per flush while building"
    )
    parser.add_argument(
        "--reps", type=int, default=3, help="processes per read / commit row and side"
    )
    parser.add_argument("--impl", choices=("both", *IMPLS), default="both")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/atlas-scale"))
    parser.add_argument(
        "--rebuild", action="store_true", help="build the stores again even if kept"
    )
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds per process")
    parser.add_argument(
        "--output", type=Path, help="JSON report (default bench/results/scale-N.json)"
    )
    parser.add_argument(
        "--no-history",
        action="store_true",
        help="skip the 100 commits of history (at 1M each of ours writes a full manifest)",
    )
    parser.add_argument(
        "--table-from", type=Path, help="print the table of an earlier JSON report and exit"
    )
    parser.add_argument(
        "--cprofile", action="store_true", help="also profile our open + list and scan"
    )
    args = parser.parse_args(argv)
    if args.table_from:
        print(table_from(args.table_from))
        raise SystemExit(0)
    return Config(
        n=args.scale_probe,
        batch=args.batch,
        reps=args.reps,
        impls=IMPLS if args.impl == "both" else (args.impl,),
        workdir=args.workdir.resolve(),
        rebuild=args.rebuild,
        timeout=args.timeout,
        output=args.output or BENCH / "results" / f"scale-{args.scale_probe}.json",
        cprofile=args.cprofile,
        history=not args.no_history,
    )


def table_from(report_path: Path) -> str:
    """The table of an earlier run's JSON report."""
    report = json.loads(report_path.read_text())
    sides = {
        impl: Side(impl, Path(), side["state"], side["runs"])
        for impl, side in report["sides"].items()
    }
    config = report["config"]
    n, batch = int(config["n"]), int(config["batch"])
    return render(n, batch, sides)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    started, loads = time.perf_counter(), [os.getloadavg()]
    print(
        f"atlas scale probe: {cfg.n:,} datasets, flush every {cfg.batch:,}, {cfg.reps} rep(s), {os.cpu_count()} CPUs"
    )
    sides = {impl: prepare(cfg, impl) for impl in cfg.impls}
    measure(cfg, list(sides.values()), READ_OPS)
    measure(cfg, list(sides.values()), COMMIT_OPS)
    for side in sides.values():
        history(cfg, side)
    texts = profiles(cfg, sides["ours"]) if cfg.cprofile and "ours" in sides else {}
    table = render(cfg.n, cfg.batch, sides)
    load = "load average {} at the start, {} at the end".format(
        *(" ".join(f"{x:.1f}" for x in avg) for avg in (loads[0], os.getloadavg()))
    )
    print(f"\n{table}\n\n{time.perf_counter() - started:.0f} s, {load}; results in {cfg.output}")
    report = {
        "generated_at": now(),
        "config": {k: str(v) for k, v in vars(cfg).items()},
        "sides": {impl: {"state": s.state, "runs": s.runs} for impl, s in sides.items()},
        "load_average": [*loads, os.getloadavg()],
        "table": table,
        "profiles": texts,
    }
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    cfg.output.write_text(json.dumps(report, indent=1, default=str) + "\n")
    failed = [
        r for s in sides.values() for rs in s.runs.values() for r in rs if r["status"] == "failed"
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
