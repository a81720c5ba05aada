"""Run the benchmark suite: our ``atlas`` against the yardstick ``atlas-python==0.10.0``.

Every phase runs in a fresh process of the chosen interpreter (the project's venv for
``ours``, ``bench/.venv-ref`` for ``ref``), alternating between the two for each repetition.
Stores are built once per implementation in the work dir and reused by the read phases;
ingest phases write new stores, mutating phases work on a private copy.

Prints a table, writes ``bench/results/latest.json`` and exits non-zero when any phase
returned wrong values (``--strict``: also when any phase errored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phases import PHASES, RESULT_MARKER, Phase, disk_usage
from sides import ATLAS_ROOTS, BENCH, IMPLS, INTERPRETERS, REPO

LABELS = {"ours": "atlas", "ref": "yardstick"}

QUICK = {"profiles": 300, "gridded": 10, "reps": 1}
DEFAULT = {"profiles": 2_000, "gridded": 50, "reps": 3}


@dataclass
class Config:
    profiles: int
    gridded: int
    reps: int
    impls: tuple[str, ...]
    phases: list[Phase]
    workdir: Path
    timeout: float
    output: Path
    strict: bool


@dataclass
class Runner:
    config: Config
    runs: list[dict[str, Any]] = field(default_factory=list)
    builds: list[dict[str, Any]] = field(default_factory=list)
    build_failures: dict[tuple[str, str], str] = field(default_factory=dict)
    limit_python: Path | None = None

    # ---------------------------------------------------------------- stores

    def builder_stamp(self, impl: str) -> str:
        """What wrote a store: a digest of our sources, or the yardstick's version. A kept
        work dir rebuilds stores written by other code, so reads measure today's format."""
        if impl == "ref":
            return "atlas-python==0.10.0"
        digest = hashlib.sha256()
        for f in sorted((REPO / "src" / "atlas").rglob("*.py")):
            digest.update(f.relative_to(REPO).as_posix().encode() + b"\0" + f.read_bytes())
        return "src:" + digest.hexdigest()[:16]

    def store_is_current(self, path: Path, impl: str) -> bool:
        stamp = path.with_name(path.name + ".built-by")
        if path.exists() and stamp.exists() and stamp.read_text() == self.builder_stamp(impl):
            return True
        shutil.rmtree(path, ignore_errors=True)
        stamp.unlink(missing_ok=True)
        return False

    def mark_store(self, path: Path, impl: str) -> None:
        path.with_name(path.name + ".built-by").write_text(self.builder_stamp(impl))

    def store_path(self, impl: str, collection: str) -> Path:
        size = self.config.profiles if collection == "profiles" else self.config.gridded
        return self.config.workdir / f"{collection}-{size}.{impl}"

    def scratch_path(self, phase: str, impl: str) -> Path:
        path = self.config.workdir / "scratch" / f"{phase}.{impl}"
        if path.exists():
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def ensure_store(self, impl: str, collection: str) -> Path | None:
        """The built store of ``collection`` for ``impl``, building it on first use."""
        path = self.store_path(impl, collection)
        if self.store_is_current(path, impl):
            return path
        if (impl, collection) in self.build_failures:
            return None
        result = self.spawn(PHASES[f"ingest_{collection}"], impl, path)
        self.builds.append(result)
        if result["status"] != "ok":
            self.build_failures[(impl, collection)] = f"{result['status']}: {result['detail']}"
            shutil.rmtree(path, ignore_errors=True)
            return None
        self.mark_store(path, impl)
        return path

    # ---------------------------------------------------------------- processes

    def spawn(self, phase: Phase, impl: str, store: Path) -> dict[str, Any]:
        python = self.limit_python if impl == "limit" else INTERPRETERS[impl]
        assert python is not None
        cmd = [
            str(python),
            str(BENCH / "phases.py"),
            phase.name,
            "--impl",
            impl,
            "--store",
            str(store),
            "--workdir",
            str(self.config.workdir),
            "--profiles",
            str(self.config.profiles),
            "--gridded",
            str(self.config.gridded),
        ]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        base: dict[str, Any] = {"phase": phase.name, "impl": impl}
        started = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=self.config.timeout, env=env, cwd=REPO
            )
        except subprocess.TimeoutExpired:
            return {
                **base,
                "status": "timeout",
                "detail": f"no result within {self.config.timeout:g} s",
            }
        result: dict[str, Any] | None = None
        for line in proc.stdout.splitlines():
            if line.startswith(RESULT_MARKER):
                result = json.loads(line[len(RESULT_MARKER) :])
        if result is None:
            tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
            result = {**base, "status": "error", "detail": f"no result: {tail[:300]}"}
            result["stderr"] = proc.stderr[-4000:]
        result["wall_seconds"] = time.perf_counter() - started
        atlas_file = result.get("atlas_file")
        if (
            impl in ATLAS_ROOTS
            and atlas_file
            and not Path(atlas_file).is_relative_to(ATLAS_ROOTS[impl])
        ):
            result.update(status="error", detail=f"imported the wrong atlas: {atlas_file}")
        return result

    def run_once(self, phase: Phase, impl: str, rep: int) -> dict[str, Any]:
        collection = phase.collection
        assert collection is not None
        base: dict[str, Any] = {"phase": phase.name, "impl": impl}
        scratch: Path | None = None
        if phase.kind == "ingest":
            persistent = self.store_path(impl, collection)
            current = self.store_is_current(persistent, impl)
            target = persistent if not current else self.scratch_path(phase.name, impl)
            scratch = None if target == persistent else target
            result = self.spawn(phase, impl, target)
            if target == persistent:
                if result["status"] == "ok":
                    self.mark_store(persistent, impl)
                else:
                    self.build_failures[(impl, collection)] = f"{result['status']}: {result['detail']}"
                    shutil.rmtree(persistent, ignore_errors=True)
        elif phase.kind == "limit":
            result = self.spawn(phase, impl, self.config.workdir)
        else:
            store = self.ensure_store(impl, collection)
            if store is None:
                result = {
                    **base,
                    "status": "error",
                    "detail": f"no {collection} store: its ingest failed",
                }
            elif phase.kind == "mutate":
                scratch = self.scratch_path(phase.name, impl)
                shutil.copytree(store, scratch)
                result = self.spawn(phase, impl, scratch)
            else:
                result = self.spawn(phase, impl, store)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        result["rep"] = rep
        self.runs.append(result)
        return result

    def measure_size(self, phase: Phase, impl: str) -> dict[str, Any]:
        assert phase.collection is not None
        store = self.ensure_store(impl, phase.collection)
        base: dict[str, Any] = {"phase": phase.name, "impl": impl, "rep": 0}
        if store is None:
            failure = self.build_failures[(impl, phase.collection)]
            result = {
                **base,
                "status": "error",
                "detail": f"no {phase.collection} store ({failure})",
            }
        else:
            usage = disk_usage(store)
            result = {
                **base,
                "status": "ok",
                "detail": "",
                "size_mb": usage["bytes_on_disk"] / 2**20,
            }
            result["extra"] = usage
        self.runs.append(result)
        return result

    # ---------------------------------------------------------------- driver

    def run(self) -> None:
        cfg = self.config
        plan: list[tuple[Phase, str, int]] = []
        for phase in cfg.phases:
            if phase.kind == "size":
                plan.extend((phase, impl, 0) for impl in cfg.impls)
                continue
            impls = ("limit",) if phase.kind == "limit" else cfg.impls
            for rep in range(cfg.reps):
                order = impls if rep % 2 == 0 else tuple(reversed(impls))
                plan.extend((phase, impl, rep) for impl in order)
        for n, (phase, impl, rep) in enumerate(plan, start=1):
            if phase.kind == "size":
                result = self.measure_size(phase, impl)
            else:
                result = self.run_once(phase, impl, rep)
            self.report(
                result,
                f"[{n:>3}/{len(plan)}]",
                f"rep {rep + 1}/{cfg.reps}" if phase.kind != "size" else "",
            )

    def report(self, result: dict[str, Any], counter: str, rep: str) -> None:
        if "size_mb" in result:
            value = f"{result['size_mb']:.2f} MB"
        elif "seconds" in result:
            value = f"{result['seconds']:.4f} s"
        else:
            value = "-"
        status = result["status"]
        if status != "ok":
            status = f"{status}: {result['detail'][:100]}"
        print(
            f"{counter} {result['phase']:<20} {result['impl']:<5} {rep:<8} {value:>12}  {status}",
            flush=True,
        )


# --------------------------------------------------------------------------- summary


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over the repetitions; any run that is not ok makes the whole cell not ok."""
    if not runs:
        return {"status": "skipped", "detail": ""}
    bad = [r for r in runs if r["status"] != "ok"]
    summary: dict[str, Any] = {
        "status": bad[0]["status"] if bad else "ok",
        "detail": bad[0]["detail"] if bad else "",
    }
    ok = [r for r in runs if r["status"] == "ok"]
    if ok and "size_mb" in ok[0]:
        summary["size_mb"] = ok[0]["size_mb"]
        summary["files"] = ok[0]["extra"]["files"]
    elif ok:
        summary["median_s"] = statistics.median(r["seconds"] for r in ok)
        summary["runs_s"] = [r["seconds"] for r in ok]
        summary["median_cpu_s"] = statistics.median(r.get("cpu_seconds", 0.0) for r in ok)
        summary["mem_growth_mb"] = statistics.median(r["mem_growth_mb"] for r in ok)
        if "result_mb" in ok[0].get("extra", {}):
            summary["result_mb"] = ok[0]["extra"]["result_mb"]
        summary["io_rchar_mb"] = (
            statistics.median(r.get("io", {}).get("rchar", 0) for r in ok) / 2**20
        )
    return summary


def value_of(summary: dict[str, Any]) -> float | None:
    if summary["status"] != "ok":
        return None
    value = summary.get("size_mb", summary.get("median_s"))
    return float(value) if value is not None else None


def build_report(cfg: Config, runner: Runner) -> list[dict[str, Any]]:
    rows = []
    by_phase: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runner.runs:
        by_phase.setdefault((r["phase"], r["impl"]), []).append(r)
    for phase in cfg.phases:
        row: dict[str, Any] = {
            "name": phase.name,
            "title": phase.title,
            "kind": phase.kind,
            "collection": phase.collection,
            "limit_phase": phase.limit,
        }
        if phase.kind == "limit":
            row["limit"] = summarize(by_phase.get((phase.name, "limit"), []))
        else:
            for impl in IMPLS:
                row[impl] = summarize(by_phase.get((phase.name, impl), []))
            ours, ref = value_of(row["ours"]), value_of(row["ref"])
            row["ratio"] = ours / ref if ours is not None and ref else None
            if phase.limit is not None:
                limit_runs = by_phase.get((phase.limit, "limit"), [])
                limit = value_of(summarize(limit_runs)) if limit_runs else None
                row["limit_s"] = limit
                for impl, v in (("ours", ours), ("ref", ref)):
                    row[f"{impl}_vs_limit"] = v / limit if v is not None and limit else None
        rows.append(row)
    return rows


def _cell(summary: dict[str, Any], key: str, fmt: str) -> str:
    status = summary["status"]
    if status == "skipped":
        return ""
    if status != "ok":
        return "FAILED" if status == "failed" else status
    value = summary.get(key)
    return "" if value is None else format(value, fmt)


def _title(row: dict[str, Any], cfg: Config) -> str:
    if row["kind"] == "limit":
        return "  " + str(row["title"])
    if row["kind"] in ("ingest", "size") or row["name"] in COUNTED_PHASES:
        count = cfg.profiles if row["collection"] == "profiles" else cfg.gridded
        return f"{row['title']} [{count}]"
    return str(row["title"])


COUNTED_PHASES = {"open_list", "metadata_sweep", "read_arrays_full", "read_arrays_sliced"}
COLUMNS = [("phase", 40), ("atlas s", 9), ("yardstick s", 11), ("atlas/yard", 10)]
COLUMNS += [("atlas MB", 8), ("yard MB", 8), ("limit s", 8), ("notes", 0)]


def render_table(rows: list[dict[str, Any]], cfg: Config) -> str:
    def line(cells: list[str]) -> str:
        padded = [c.ljust(w) if w else c for c, (_, w) in zip(cells, COLUMNS, strict=True)]
        return "  ".join(padded).rstrip()

    lines = [line([name for name, _ in COLUMNS]), "-" * 140]
    for row in rows:
        notes: list[str] = []
        if row["kind"] == "limit":
            limit = row["limit"]
            cells = [_title(row, cfg), "", "", "", "", "", _cell(limit, "median_s", ".4f")]
            if limit["status"] not in ("ok", "skipped"):
                notes.append(f"{limit['status']}: {limit['detail'][:100]}")
        else:
            ours, ref = row["ours"], row["ref"]
            key, fmt = ("size_mb", ".2f") if row["kind"] == "size" else ("median_s", ".4f")
            ratio, limit_s = row.get("ratio"), row.get("limit_s")
            cells = [
                _title(row, cfg),
                _cell(ours, key, fmt),
                _cell(ref, key, fmt),
                "" if ratio is None else f"{ratio:.2f}",
                _cell(ours, "mem_growth_mb", ".1f") if ours["status"] == "ok" else "",
                _cell(ref, "mem_growth_mb", ".1f") if ref["status"] == "ok" else "",
                "" if limit_s is None else f"{limit_s:.4f}",
            ]
            for impl in IMPLS:
                vs_limit = row.get(f"{impl}_vs_limit")
                if vs_limit is not None:
                    notes.append(f"{LABELS[impl]} {vs_limit:.1f}x limit")
            for impl in IMPLS:
                s = row[impl]
                if s["status"] not in ("ok", "skipped"):
                    notes.append(f"{LABELS[impl]} {s['status']}: {s['detail'][:100]}")
        lines.append(line([*cells, "; ".join(notes)]))
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def describe_interpreter(python: Path) -> dict[str, Any]:
    code = (
        "import json, sys, numpy\n"
        "info = {'python': sys.version.split()[0], 'numpy': numpy.__version__}\n"
        "try:\n"
        "    import atlas\n"
        "    info.update(atlas_file=atlas.__file__, atlas_version=getattr(atlas, '__version__', None))\n"
        "except BaseException as exc:\n"
        "    info['atlas_error'] = f'{type(exc).__name__}: {exc}'\n"
        "try:\n"
        "    import zstandard\n"
        "    info['zstandard'] = zstandard.__version__\n"
        "except ImportError:\n"
        "    pass\n"
        "print(json.dumps(info))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, env=env, cwd=REPO
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]}
    info: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    info["interpreter"] = str(python.relative_to(REPO))
    return info


def parse_args(argv: list[str] | None) -> tuple[Config, bool]:
    parser = argparse.ArgumentParser(description="Benchmark atlas against atlas-python 0.10.0.")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 300 profiles, 10 gridded, 1 rep"
    )
    parser.add_argument("--scale", type=int, help="number of profile datasets (default 2000)")
    parser.add_argument(
        "--scale-probe",
        type=int,
        nargs="?",
        metavar="N",
        help="run the scale probe instead (N datasets, default 100000; "
        "its options: --scale-probe --help)",
    )
    parser.add_argument(
        "--writers",
        nargs="?",
        metavar="N,N",
        help="run the many-writers benchmark instead (commits/s of 1, 2, 4 and 8 writer processes; "
        "its options: --writers --help)",
    )
    parser.add_argument("--gridded", type=int, help="number of gridded datasets (default 50)")
    parser.add_argument(
        "--reps", type=int, help="repetitions per phase and implementation (default 3)"
    )
    parser.add_argument("--phases", help="comma-separated phase names (default: all); see --list")
    parser.add_argument("--impl", choices=("both", *IMPLS), default="both")
    parser.add_argument(
        "--workdir", type=Path, help="keep stores and caches here (default: a temp dir under /tmp)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp work dir")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per phase process")
    parser.add_argument("--output", type=Path, default=BENCH / "results" / "latest.json")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit non-zero on errors too, not only on wrong values",
    )
    parser.add_argument("--list", action="store_true", help="list the phases and exit")
    args = parser.parse_args(argv)
    if args.list:
        for p in PHASES.values():
            print(f"{p.name:<20} {p.kind:<7} {p.title}")
        raise SystemExit(0)
    base = QUICK if args.quick else DEFAULT
    if args.phases:
        wanted = [name.strip() for name in args.phases.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in PHASES]
        if unknown:
            parser.error(f"unknown phase(s) {', '.join(unknown)}; known: {', '.join(PHASES)}")
        phases = [p for p in PHASES.values() if p.name in wanted]
    else:
        phases = list(PHASES.values())
    owns_workdir = args.workdir is None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="atlas-bench-", dir="/tmp"))
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    config = Config(
        profiles=args.scale or base["profiles"],
        gridded=args.gridded or base["gridded"],
        reps=args.reps or base["reps"],
        impls=IMPLS if args.impl == "both" else (args.impl,),
        phases=phases,
        workdir=workdir,
        timeout=args.timeout,
        output=args.output,
        strict=args.strict,
    )
    return config, owns_workdir and not args.keep


def git_revision() -> str | None:
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
        )
    except OSError:
        return None
    return proc.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(arg.split("=")[0] == "--scale-probe" for arg in argv):
        import scale  # the scale probe has its own options: bench/run --scale-probe --help

        return scale.main(argv)
    if any(arg.split("=")[0] == "--writers" for arg in argv):
        import writers  # many writers at once, our side alone: bench/run --writers --help

        return writers.main(argv)
    cfg, remove_workdir = parse_args(argv)
    for impl in cfg.impls:
        if not INTERPRETERS[impl].exists():
            print(
                f"missing interpreter {INTERPRETERS[impl]} (run bench/run to set it up)",
                file=sys.stderr,
            )
            return 2
    interpreters = {
        impl: describe_interpreter(INTERPRETERS[impl])
        for impl in IMPLS
        if INTERPRETERS[impl].exists()
    }
    runner = Runner(cfg)
    runner.limit_python = next(
        (INTERPRETERS[impl] for impl in IMPLS if "zstandard" in interpreters.get(impl, {})), None
    )
    print(
        f"atlas benchmark: {cfg.profiles} profiles, {cfg.gridded} gridded, {cfg.reps} rep(s), "
        f"{os.cpu_count()} CPUs, work dir {cfg.workdir}"
    )
    for impl, info in interpreters.items():
        where = info.get("atlas_file") or info.get("atlas_error") or info.get("error")
        print(
            f"  {LABELS[impl]:<9} {info.get('interpreter', '')}: atlas {info.get('atlas_version')} ({where})"
        )
    if runner.limit_python is None:
        print("  no interpreter has zstandard: the machine-limit rows are skipped")
        cfg.phases = [p for p in cfg.phases if p.kind != "limit"]
    started = time.perf_counter()
    try:
        runner.run()
    finally:
        if remove_workdir:
            shutil.rmtree(cfg.workdir, ignore_errors=True)
    elapsed = time.perf_counter() - started

    rows = build_report(cfg, runner)
    print()
    print(render_table(rows, cfg))
    failed = [r for r in runner.runs + runner.builds if r["status"] == "failed"]
    errors = [r for r in runner.runs + runner.builds if r["status"] in ("error", "timeout")]
    report = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_revision": git_revision(),
        "host": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "machine": platform.machine(),
        },
        "config": {
            "profiles": cfg.profiles,
            "gridded": cfg.gridded,
            "reps": cfg.reps,
            "impls": list(cfg.impls),
            "phases": [p.name for p in cfg.phases],
            "workdir": str(cfg.workdir),
        },
        "interpreters": interpreters,
        "elapsed_s": elapsed,
        "phases": rows,
        "runs": runner.runs,
        "builds": runner.builds,
        "verification_failures": len(failed),
        "errors": len(errors),
    }
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = cfg.output.with_name(cfg.output.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    os.replace(tmp, cfg.output)
    print(f"\n{len(runner.runs)} runs in {elapsed:.0f} s; results in {cfg.output}")
    if errors:
        print(f"{len(errors)} run(s) errored (see the notes column and the JSON).")
    if failed:
        print("\n" + "!" * 78)
        print(f"VERIFICATION FAILED in {len(failed)} run(s):")
        for r in failed:
            print(f"  {r['phase']} [{LABELS.get(r['impl'], r['impl'])}]: {r['detail']}")
        print("!" * 78)
        return 1
    if errors and cfg.strict:
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
