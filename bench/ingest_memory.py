"""Peak memory and CPU time of each process of a command (an ``atlas ingest``, say).

Runs the command and samples its process tree from ``/proc`` every ``--interval`` seconds:
each process's high-water mark of resident memory (``VmHWM``, which only grows, so the last
sample before a process ends is its peak up to one interval) and its CPU time. Processes
are told apart by role: the **writer** is the command's own process, the **readers** are
the processes forked from multiprocessing's fork server (the ingest's reader processes),
and the rest (the fork server itself, the resource tracker) are **other**.

    .venv/bin/python bench/ingest_memory.py -- .venv/bin/atlas ingest /tmp/argo8 /tmp/argo8.atlas -q

Linux only. Prints one line per process and a summary; ``--json`` for the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Seen:
    pid: int
    ppid: int
    role: str
    cmd: str
    peak_kib: int = 0
    cpu_s: float = 0.0


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return None


def _children() -> dict[int, int]:
    """pid -> ppid of every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _read(f"/proc/{entry}/stat")
        if stat is None:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        out[int(entry)] = int(fields[1])
    return out


def _sample(pid: int, seen: Seen) -> None:
    status = _read(f"/proc/{pid}/status")
    if status is not None:
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                seen.peak_kib = max(seen.peak_kib, int(line.split()[1]))
    stat = _read(f"/proc/{pid}/stat")
    if stat is not None:
        fields = stat[stat.rfind(")") + 2 :].split()
        seen.cpu_s = max(seen.cpu_s, (int(fields[11]) + int(fields[12])) / _TICK)


def _role(pid: int, top: int, parents: dict[int, int], procs: dict[int, Seen]) -> str:
    """The writer (the command), a reader (forked by the fork server, which forks itself
    with its command line), or other."""
    if pid == top:
        return "writer"
    parent = procs.get(parents.get(pid, 0))
    if parent is not None and parent.pid != top and "forkserver" in parent.cmd:
        return "reader"
    return "other"


def watch(cmd: list[str], interval: float, quiet_stdout: bool = False) -> tuple[int, float, list[Seen]]:
    """Run ``cmd``; return its exit status, wall time and the processes seen. With
    ``quiet_stdout`` the command's output goes to stderr (stdout is for the figures)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=sys.stderr if quiet_stdout else None)
    procs: dict[int, Seen] = {}
    while True:
        parents = _children()
        tree = {proc.pid}
        grew = True
        while grew:
            grew = False
            for pid, ppid in parents.items():
                if ppid in tree and pid not in tree:
                    tree.add(pid)
                    grew = True
        for pid in tree:
            if pid not in procs:
                cmdline = (_read(f"/proc/{pid}/cmdline") or "").replace("\0", " ").strip()
                procs[pid] = Seen(pid, parents.get(pid, 0), "", cmdline)
        for pid in tree:
            procs[pid].role = _role(pid, proc.pid, parents, procs) if not procs[pid].role else procs[pid].role
            _sample(pid, procs[pid])
        if proc.poll() is not None:
            break
        time.sleep(interval)
    return proc.returncode, time.perf_counter() - t0, list(procs.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between samples (default 0.1)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="the command (after --)")
    args = parser.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("give the command to run after --")
    load_before = os.getloadavg()
    rc, wall, procs = watch(cmd, args.interval, quiet_stdout=args.json)
    by_role: dict[str, list[Seen]] = {}
    for p in procs:
        by_role.setdefault(p.role, []).append(p)
    summary = {
        "command": cmd,
        "exit_status": rc,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "wall_s": round(wall, 2),
        "cpu_s": round(sum(p.cpu_s for p in procs), 2),
        "peak_mib": {r: round(max(p.peak_kib for p in ps) / 1024, 1) for r, ps in by_role.items()},
        "cpu_s_by_role": {r: round(sum(p.cpu_s for p in ps), 2) for r, ps in by_role.items()},
        "processes": [asdict(p) for p in procs],
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    for p in sorted(procs, key=lambda p: (p.role != "writer", p.role, p.pid)):
        print(f"{p.role:7} pid {p.pid:>7}  peak {p.peak_kib / 1024:8.1f} MiB  cpu {p.cpu_s:7.2f} s  {p.cmd[:80]}",
              file=sys.stderr)
    peaks = ", ".join(f"{r} {v} MiB" for r, v in summary["peak_mib"].items())
    print(f"exit {rc}; wall {wall:.1f} s; cpu {summary['cpu_s']} s; peak RSS: {peaks}")


if __name__ == "__main__":
    main()
