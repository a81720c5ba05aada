"""The ``atlas`` command: build a store from NetCDF files and look inside it.

Every subcommand has ``--help``. Exit status: 0 on success, 1 on an error (one
line on stderr) or when ``verify`` finds problems, 2 on a usage error, 3 when
``ingest --skip-errors`` skipped files (the rest was committed), 130 when
interrupted. Read commands take ``--json`` for machine-readable output.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import difflib
import fnmatch
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ..api import Atlas
    from ..core.dataset import DatasetView
    from ..integrations.netcdf import IngestReport

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as for other tools whose reader went away

_COORDS_ATTR = "_pyatlas_coords"

NAMING_HELP = """\
dataset names:
  one dataset per file, named after the file's path relative to SRC_DIR
  without its extension, with '/' replaced by ':' (dataset names cannot
  hold '/'). A name that would start with '_' (not allowed) gets a leading
  ':'. Hidden files and directories (starting with '.') are skipped.
    aoml/13857/profiles/R13857_001.nc  ->  aoml:13857:profiles:R13857_001
    _scratch/run1.nc4                   ->  :_scratch:run1
"""


class CommandError(Exception):
    """A user error the CLI reports as one line."""


# ---------------------------------------------------------------------------- small helpers


def format_bytes(n: float | None) -> str:
    """``13959684`` gives ``13.3 MiB``."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_seconds(s: float) -> str:
    """Seconds for people: ``0.42 s``, ``12.3 s``, ``3 min 05 s``."""
    if s < 1:
        return f"{s:.2f} s"
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    return f"{m} min {sec:02d} s"


def parse_size(text: str) -> int:
    """``128MiB``, ``64M``, ``1GB``, ``1e6`` or a plain number of bytes."""
    from dask.utils import parse_bytes

    try:
        n = int(parse_bytes(text))
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (try 128MiB, 64MB or 1000000)") from None
    if n < 1:
        raise argparse.ArgumentTypeError("the size must be at least 1 byte")
    return n


def positive_int(text: str) -> int:
    """An argparse type for counts of at least 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {n}")
    return n


def nonnegative_int(text: str) -> int:
    """An argparse type for version numbers (0 and up)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {n}")
    return n


_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration(text: str) -> float:
    """An argparse type for durations: seconds, or a number with s, m, h or d."""
    t = text.strip().lower()
    scale = _DURATION_UNITS.get(t[-1:], None)
    number = t[:-1] if scale is not None else t
    try:
        value = float(number) * (scale or 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration such as 3600, 90s, 30m, 2h or 1d, got {text!r}") from None
    if not value >= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"expected a duration of 0 or more, got {text!r}")
    return value


def timestamp(text: str) -> _dt.datetime:
    """An argparse type for ISO 8601 dates and times (naive ones are local time)."""
    try:
        when = _dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 date or time such as 2026-01-31 or 2026-01-31T12:00Z, got {text!r}"
        ) from None
    return when if when.tzinfo is not None else when.astimezone()


def _json_safe(value: Any) -> Any:
    """Plain JSON (no NaN/Infinity literals, no bytes, no numpy scalars)."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def print_json(value: Any, out: TextIO | None = None) -> None:
    """Write ``value`` as indented JSON to stdout."""
    json.dump(_json_safe(value), out or sys.stdout, indent=2, ensure_ascii=False)
    (out or sys.stdout).write("\n")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _open_store(path: str) -> Atlas:
    from ..api import Atlas

    return Atlas.open(path)


def _store_bytes(location: str) -> tuple[int, int] | None:
    """(bytes, files) under a local store directory, or None for remote stores."""
    if "://" in location or not os.path.isdir(location):
        return None
    total = files = 0
    for dirpath, _, filenames in os.walk(location):
        for fn in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, fn)).st_size
                files += 1
            except OSError:
                pass
    return total, files


def _store_codec(store: Atlas) -> str | None:
    codec = getattr(store, "codec", None) or getattr(store, "_codec", None)
    return None if codec is None else str(codec)


def _missing_dataset(store: Atlas, name: str) -> CommandError:
    close = difflib.get_close_matches(name, store.list_datasets(), n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return CommandError(f"no dataset named {name!r} in {store.location}{hint}")


def _names_from(result: Any) -> list[str]:
    """Dataset names from whatever ``store.find`` returns (names, views or a mapping)."""
    if isinstance(result, dict):
        result = list(result)
    names = []
    for item in result:
        names.append(item if isinstance(item, str) else str(getattr(item, "name", item)))
    return names


# ---------------------------------------------------------------------------- progress


class BarProgress:
    """One tqdm bar on stderr: files done, bytes, rate and ETA."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._bar: Any = None
        self._files = 0
        self._done = 0

    def start(self, files: int, nbytes: int) -> None:
        from tqdm import tqdm

        self._files = files
        self._bar = tqdm(
            total=nbytes,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.2,
            desc=self._desc(),
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]{postfix}",
        )

    def _desc(self) -> str:
        return f"{self._label} {self._done}/{self._files} files"

    def advance(self, files: int, nbytes: int) -> None:
        if self._bar is None:
            return
        self._done += files
        self._bar.set_description_str(self._desc(), refresh=False)
        self._bar.update(nbytes)

    def stage(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class LogProgress:
    """Plain progress lines on stderr for logs and pipes.

    Nothing is printed until ``interval`` seconds have passed, then one line per
    ``interval``: a short run stays silent, a long one shows it is alive.
    """

    def __init__(self, label: str, interval: float = 10.0, out: TextIO | None = None) -> None:
        self._label = label
        self._interval = interval
        self._out = out
        self._files = self._bytes = self._done_files = self._done_bytes = 0
        self._t0 = self._last = time.monotonic()

    def _line(self, text: str) -> None:
        print(f"{self._label}: {text}", file=self._out or sys.stderr, flush=True)

    def start(self, files: int, nbytes: int) -> None:
        self._files, self._bytes = files, nbytes
        self._t0 = self._last = time.monotonic()

    def advance(self, files: int, nbytes: int) -> None:
        self._done_files += files
        self._done_bytes += nbytes
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        elapsed = now - self._t0
        rate = self._done_bytes / elapsed if elapsed > 0 else 0.0
        left = (self._bytes - self._done_bytes) / rate if rate > 0 else float("nan")
        eta = format_seconds(left) if math.isfinite(left) else "?"
        self._line(
            f"{self._done_files}/{self._files} files, {format_bytes(self._done_bytes)}/"
            f"{format_bytes(self._bytes)}, {format_bytes(rate)}/s, ETA {eta}"
        )

    def stage(self, text: str) -> None:
        if time.monotonic() - self._t0 >= self._interval:
            self._line(text)

    def close(self) -> None:
        return None


class NoProgress:
    """Progress that shows nothing (``--quiet``)."""

    def start(self, files: int, nbytes: int) -> None:
        return None

    def advance(self, files: int, nbytes: int) -> None:
        return None

    def stage(self, text: str) -> None:
        return None

    def close(self) -> None:
        return None


def make_progress(label: str, quiet: bool) -> BarProgress | LogProgress | NoProgress:
    """A bar on a terminal, log lines otherwise, nothing when quiet."""
    if quiet:
        return NoProgress()
    return BarProgress(label) if sys.stderr.isatty() else LogProgress(label)


# ---------------------------------------------------------------------------- ingest


def _ingest_summary(report: IngestReport, verbose: bool, out: TextIO) -> None:
    """The one summary an ingest prints."""
    before, after = report.store_bytes_before, report.store_bytes_after
    ratio = f", {after / report.bytes_in:.0%} of the NetCDF size" if after and report.bytes_in and report.created else ""
    grown = f" (+{format_bytes(after - before)})" if before and after is not None and not report.created else ""
    present = f"; {report.files_present} already present" if report.files_present else ""
    print(
        f"{'created' if report.created else 'updated'} {report.store}: "
        f"{_plural(len(report.added), 'dataset')} added from {_plural(report.files_found, 'file')}{present}; "
        f"read {format_bytes(report.bytes_in)}, store is {format_bytes(after)}{grown}{ratio}; "
        f"{format_seconds(report.seconds)}",
        file=out,
    )
    if report.skipped:
        print(f"skipped {_plural(len(report.skipped), 'file')}:", file=out)
        for f, reason in report.skipped:
            print(f"  {f}: {reason}", file=out)
    kinds = report.warning_kinds()
    if kinds:
        hint = "" if verbose else " (--verbose for details)"
        print(f"warnings: {len(report.warnings)} in {_plural(len(kinds), 'kind')}{hint}", file=out)
        for kind, n in kinds:
            print(f"  {n} x {kind}", file=out)
        if verbose:
            for w in report.warnings:
                print(f"  {w.file}: {w.category}: {w.message}", file=out)


def cmd_ingest(args: argparse.Namespace) -> int:
    """Ingest a directory tree of NetCDF files."""
    from ..integrations.netcdf import IngestError, ingest_directory, release_memory_promptly

    release_memory_promptly()
    progress = make_progress("ingest", args.quiet or args.json)
    try:
        report = ingest_directory(
            args.src_dir,
            args.store,
            codec=args.codec,
            meta_format=args.meta_format,
            meta_compression=args.meta_compression,
            chunk_size=args.chunk_size,
            skip_errors=args.skip_errors,
            jobs=args.jobs,
            update=args.update,
            progress=progress,
        )
    except IngestError as e:
        raise CommandError(str(e)) from None
    if args.json:
        print_json(report.as_dict())
    else:
        _ingest_summary(report, args.verbose, sys.stdout)
    return EXIT_PARTIAL if report.skipped else EXIT_OK


# ---------------------------------------------------------------------------- ls, find


def _find(store: Atlas, expr: str) -> list[str]:
    find = getattr(store, "find", None)
    if find is None:
        raise CommandError("this atlas has no catalogue search (store.find)")
    try:
        return _names_from(find(expr))
    except (ValueError, SyntaxError, TypeError) as e:  # the message quotes the expression
        raise CommandError(" ".join(str(e).split())) from None


def _print_names(names: list[str], as_json: bool) -> int:
    if as_json:
        print_json(names)
    else:
        for n in names:
            print(n)
    return EXIT_OK


def cmd_ls(args: argparse.Namespace) -> int:
    """List dataset names."""
    store = _open_store(args.store)
    names = store.list_datasets()
    if args.pattern is not None:
        names = [n for n in names if fnmatch.fnmatchcase(n, args.pattern)]
    where = getattr(args, "where", None)
    if where is not None:
        found = set(_find(store, where))
        names = [n for n in names if n in found]
    return _print_names(names, args.json)


def cmd_find(args: argparse.Namespace) -> int:
    """List the datasets matching a catalogue expression."""
    store = _open_store(args.store)
    return _print_names(_find(store, args.expr), args.json)


# ---------------------------------------------------------------------------- show


def _decode_attr(value: Any) -> Any:
    """Attribute values written as ``json:...`` by the xarray layer, decoded."""
    if isinstance(value, str) and value.startswith("json:"):
        try:
            return json.loads(value[5:])
        except ValueError:
            return value
    return value


def _stat_value(dtype: str, value: Any) -> Any:
    """A stats min/max in a printable, JSON-friendly form."""
    import numpy as np

    if value is None:
        return None
    if dtype == "string":
        return bytes(value).decode("utf-8", "replace")
    if dtype == "timestamp_nanoseconds":
        return str(np.datetime64(int(value), "ns"))
    return value


def describe_dataset(store: Atlas, name: str) -> dict[str, Any]:
    """Everything ``atlas show`` prints about one dataset, as plain data."""
    if not store.dataset_exists(name):
        raise _missing_dataset(store, name)
    view: DatasetView = store.open_dataset(name)
    arrays = view.list_arrays()
    attrs = {k: _decode_attr(v) for k, v in view.attributes().items()}
    coords: list[str] = []
    raw = attrs.pop(_COORDS_ATTR, None)
    if isinstance(raw, str):
        try:
            coords = [str(c) for c in json.loads(raw)]
        except ValueError:
            coords = []
    elif isinstance(raw, list):
        coords = [str(c) for c in raw]
    # "var.attr" dataset attributes belong to the longest array name they start with
    var_attrs: dict[str, dict[str, Any]] = {a: {} for a in arrays}
    global_attrs: dict[str, Any] = {}
    names = set(arrays)
    for key, value in attrs.items():
        owner = None
        pos = key.rfind(".")
        while pos > 0:
            if key[:pos] in names:
                owner = key[:pos]
                break
            pos = key.rfind(".", 0, pos)
        if owner is None:
            global_attrs[key] = value
        else:
            var_attrs[owner][key[len(owner) + 1 :]] = value
    dims: dict[str, list[int]] = {}
    variables = []
    for a in arrays:
        meta = view.array_meta(a)
        if meta is None:
            continue
        for d, n in zip(meta["dimension_names"], meta["shape"], strict=True):
            sizes = dims.setdefault(d, [])
            if n not in sizes:
                sizes.append(n)
        own = getattr(view, "array_attributes", None)
        a_attrs = dict(var_attrs.get(a, {}))
        if own is not None:
            a_attrs.update({k: _decode_attr(v) for k, v in own(a).items()})
        stats = view.array_stats(a)
        if stats is not None:
            stats = {
                "row_count": stats["row_count"],
                "null_count": stats["null_count"],
                "min": _stat_value(meta["dtype"], stats["min"]),
                "max": _stat_value(meta["dtype"], stats["max"]),
            }
        fill = view.array_fill_value(a)
        if meta["dtype"] == "timestamp_nanoseconds" and fill is not None:
            fill = "NaT" if fill == -(2**63) else _stat_value(meta["dtype"], fill)
        variables.append(
            {
                "name": a,
                "dtype": meta["dtype"],
                "dimensions": meta["dimension_names"],
                "shape": meta["shape"],
                "chunk_shape": meta["chunk_shape"],
                "fill_value": fill,
                "coordinate": a in coords,
                "attributes": a_attrs,
                "stats": stats,
            }
        )
    return {
        "name": name,
        "dimensions": {d: (s[0] if len(s) == 1 else s) for d, s in dims.items()},
        "coordinates": [c for c in coords if c in names],
        "variables": variables,
        "attributes": global_attrs,
    }


def _cdl_value(value: Any, dtype: str | None = None) -> str:
    """An attribute or statistic written the way ncdump writes values."""
    import numpy as np

    if isinstance(value, str):
        if dtype == "timestamp_nanoseconds":
            return value  # an ISO date or NaT, not a string value
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if dtype == "float32":
            return str(np.float32(value))
        return repr(value)
    if isinstance(value, list):
        return ", ".join(_cdl_value(v, dtype) for v in value)
    if value is None:
        return "none"
    return str(value)


def format_dataset(info: dict[str, Any]) -> str:
    """An ``ncdump -h``-like text view of :func:`describe_dataset`'s result."""
    lines = [f"dataset {json.dumps(info['name'], ensure_ascii=False)} {{", "dimensions:"]
    for d, n in info["dimensions"].items():
        size = n if isinstance(n, int) else " | ".join(str(x) for x in n) + "  // differs between variables"
        lines.append(f"\t{d} = {size} ;")
    lines.append("variables:")
    for v in info["variables"]:
        dims = f"({', '.join(v['dimensions'])})" if v["dimensions"] else ""
        coord = "  // coordinate" if v["coordinate"] else ""
        lines.append(f"\t{v['dtype']} {v['name']}{dims} ;{coord}")
        for k, val in v["attributes"].items():
            lines.append(f"\t\t{v['name']}:{k} = {_cdl_value(val)} ;")
        details = []
        if v["chunk_shape"] != v["shape"]:
            details.append(f"chunks ({', '.join(str(c) for c in v['chunk_shape'])})")
        if v["fill_value"] is not None:
            details.append(f"fill {_cdl_value(v['fill_value'], v['dtype'])}")
        st = v["stats"]
        if st is None:
            details.append("no stats (never written)")
        else:
            details.append(f"{st['row_count']} cells, {st['null_count']} null")
            if st["min"] is not None:
                details.append(f"min {_cdl_value(st['min'], v['dtype'])}, max {_cdl_value(st['max'], v['dtype'])}")
        lines.append(f"\t\t// {'; '.join(details)}")
    if info["attributes"]:
        lines.append("")
        lines.append("// global attributes:")
        for k, val in info["attributes"].items():
            lines.append(f"\t\t:{k} = {_cdl_value(val)} ;")
    lines.append("}")
    return "\n".join(lines)


def cmd_show(args: argparse.Namespace) -> int:
    """Describe one dataset."""
    store = _open_store(args.store)
    info = describe_dataset(store, args.dataset)
    if args.json:
        print_json(info)
    else:
        print(format_dataset(info))
    return EXIT_OK


# ---------------------------------------------------------------------------- info


def store_info(store: Atlas) -> dict[str, Any]:
    """Counts, sizes, codec and versions of a store."""
    from ..core.maintenance import unreferenced_summary

    names = store.list_datasets()
    total_arrays = sum(len(store.open_dataset(n).list_arrays()) for n in names)
    versions = store.versions()
    disk = _store_bytes(store.location)
    unreferenced = unreferenced_summary(store)
    return {
        "store": store.location,
        "version": store.version,
        "versions": [v["version"] for v in versions],
        "oldest_version_time": versions[0].get("timestamp") if versions else None,
        "newest_version_time": versions[-1].get("timestamp") if versions else None,
        "datasets": len(names),
        "array_names": len(store.list_arrays()),
        "arrays": total_arrays,
        "codec": _store_codec(store),
        "bytes_on_disk": None if disk is None else disk[0],
        "files_on_disk": None if disk is None else disk[1],
        "tags": store.tags(),
        "unreferenced_files": unreferenced[0],
        "unreferenced_bytes": unreferenced[1],
    }


def cmd_info(args: argparse.Namespace) -> int:
    """Summarise a store."""
    info = store_info(_open_store(args.store))
    if args.json:
        print_json(info)
        return EXIT_OK
    vs = info["versions"]
    kept = f"{_plural(len(vs), 'version')} kept" + (f" ({vs[0]}..{vs[-1]})" if len(vs) > 1 else "")
    when = f", committed {info['newest_version_time']}" if info["newest_version_time"] else ""
    rows = [
        ("store", info["store"]),
        ("version", f"{info['version']}{when}; {kept}"),
        ("datasets", str(info["datasets"])),
        ("arrays", f"{info['arrays']} ({info['array_names']} distinct names)"),
        ("codec", info["codec"] or "?"),
        (
            "on disk",
            "?" if info["bytes_on_disk"] is None
            else f"{format_bytes(info['bytes_on_disk'])} in {_plural(info['files_on_disk'], 'file')}",
        ),
    ]
    if info["tags"]:
        rows.append(("tags", ", ".join(f"{k} = {v}" for k, v in info["tags"].items())))
    if info["unreferenced_files"]:
        rows.append((
            "note",
            f"{_plural(info['unreferenced_files'], 'file')} ({format_bytes(info['unreferenced_bytes'])}) "
            f"referenced by no version kept; `atlas compact {args.store}` removes them",
        ))
    for k, v in rows:
        print(f"{k + ':':<10} {v}")
    return EXIT_OK


# ---------------------------------------------------------------------------- rm, compact, verify


def cmd_rm(args: argparse.Namespace) -> int:
    """Delete datasets (all or none)."""
    store = _open_store(args.store)
    missing = [n for n in args.datasets if not store.dataset_exists(n)]
    if missing:
        if len(missing) == 1:
            raise _missing_dataset(store, missing[0])
        raise CommandError(
            f"no datasets named {', '.join(repr(m) for m in missing)} in {store.location}; nothing was removed"
        )
    names = list(dict.fromkeys(args.datasets))
    for n in names:
        store.delete_dataset(n)
    store.flush()
    if args.json:
        print_json({"removed": names, "version": store.version})
    else:
        print(
            f"removed {_plural(len(names), 'dataset')} from {store.location} (version {store.version}); "
            f"`atlas compact {args.store}` reclaims the disk space"
        )
    return EXIT_OK


def cmd_compact(args: argparse.Namespace) -> int:
    """Compact a store."""
    from ..core.maintenance import compact

    store = _open_store(args.store)
    before = _store_bytes(store.location)
    t0 = time.perf_counter()
    grace = 0.0 if args.prune_now else args.grace
    report = compact(store, keep_versions=args.keep_versions, grace_period=grace)
    took = time.perf_counter() - t0
    after = _store_bytes(store.location)
    result: dict[str, Any] = {
        "store": store.location,
        "version": store.version,
        "bytes_before": None if before is None else before[0],
        "bytes_after": None if after is None else after[0],
        "grace_seconds": grace,
        **report.as_dict(),
        "seconds": round(took, 3),
    }
    if args.json:
        print_json(result)
    else:
        print(
            f"compacted {store.location}: {format_bytes(result['bytes_before'])} -> "
            f"{format_bytes(result['bytes_after'])} on disk, "
            f"keeping {_plural(args.keep_versions, 'version')}; {format_seconds(took)}"
        )
        if report.kept_files:
            print(
                f"kept {_plural(report.kept_files, 'file')} ({format_bytes(report.kept_bytes)}) for the grace period "
                f"of {format_seconds(grace)}: readers of old versions and writers at work may still need them; "
                "run `atlas compact` again later, or with --prune-now when nothing else uses the store"
            )
    return EXIT_OK


def cmd_versions(args: argparse.Namespace) -> int:
    """List the versions of a store, with their tags."""
    store = _open_store(args.store)
    tags: dict[int, list[str]] = {}
    for name, number in store.tags().items():
        tags.setdefault(number, []).append(name)
    versions = [dict(entry, tags=tags.get(entry["version"], [])) for entry in store.versions()]
    if args.json:
        print_json({"store": store.location, "versions": versions})
        return EXIT_OK
    for entry in versions:
        named = f"  [{', '.join(entry['tags'])}]" if entry["tags"] else ""
        count = _plural(entry["datasets"] or 0, "dataset")
        print(f"{entry['version']:>6}  {entry['timestamp'] or '?':<30} {count}{named}")
    return EXIT_OK


def cmd_tag(args: argparse.Namespace) -> int:
    """Name a version, or delete a tag."""
    store = _open_store(args.store)
    if args.delete:
        store.delete_tag(args.name)
        if args.json:
            print_json({"deleted": args.name})
        else:
            print(f"deleted tag {args.name!r} of {store.location}")
        return EXIT_OK
    version = store.version if args.version is None else args.version
    store.tag(args.name, version)
    if args.json:
        print_json({"tag": args.name, "version": version})
    else:
        print(f"tagged version {version} of {store.location} as {args.name!r}")
    return EXIT_OK


def cmd_expire(args: argparse.Namespace) -> int:
    """Expire old versions (their files go at the next compaction or garbage collection)."""
    if args.keep is None and args.older_than is None:
        print("atlas expire: error: say which versions to expire: --keep N, --older-than DATE, or both",
              file=sys.stderr)
        return EXIT_USAGE
    store = _open_store(args.store)
    expired = store.expire_versions(older_than=args.older_than, keep=args.keep)
    if args.json:
        print_json({"store": store.location, "expired": expired})
    else:
        print(
            f"expired {_plural(len(expired), 'version')} of {store.location}"
            + (f" ({expired[0]}..{expired[-1]})" if len(expired) > 1 else f" ({expired[0]})" if expired else "")
            + "; `atlas compact` deletes their files once the grace period has passed"
        )
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """Check every block and index; exit 1 when problems are found."""
    store = _open_store(args.store)
    result = store.verify()
    problems = [str(p) for p in result]
    notes: list[str] = list(getattr(result, "notes", []))
    if args.json:
        print_json({
            "store": store.location, "version": store.version, "ok": not problems, "problems": problems,
            "notes": notes, "unreferenced_files": getattr(result, "unreferenced_files", None),
            "unreferenced_bytes": getattr(result, "unreferenced_bytes", None),
        })
    elif problems:
        print(f"{_plural(len(problems), 'problem')} in {store.location} (version {store.version}):")
        for p in problems:
            print(f"  {p}")
    else:
        n = len(store.list_datasets())
        print(f"{store.location} (version {store.version}): {_plural(n, 'dataset')}, no problems found")
    if notes and not args.json:
        for note in notes:
            print(f"note: {note}")
    return EXIT_ERROR if problems else EXIT_OK


# ---------------------------------------------------------------------------- export


def _netcdf_attr(value: Any) -> Any:
    """An attribute value NetCDF can hold (others become JSON text)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (str, int, float)):
        return value
    if isinstance(value, (list, tuple)) and value and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        return list(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return json.dumps(value)


def cmd_export(args: argparse.Namespace) -> int:
    """Write one dataset back to a NetCDF file."""
    store = _open_store(args.store)
    if not store.dataset_exists(args.dataset):
        raise _missing_dataset(store, args.dataset)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise CommandError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise CommandError(f"{out.parent} is not a directory")
    t0 = time.perf_counter()
    ds = store.open_as_xarray_dataset(args.dataset)
    ds.attrs = {k: _netcdf_attr(v) for k, v in ds.attrs.items()}
    for var in ds.variables.values():
        var.attrs = {k: _netcdf_attr(v) for k, v in var.attrs.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="netcdf4")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    size = out.stat().st_size
    took = time.perf_counter() - t0
    if args.json:
        print_json({"dataset": args.dataset, "file": str(out), "bytes": size, "seconds": round(took, 3)})
    else:
        print(f"wrote {args.dataset} to {out} ({format_bytes(size)}, {format_seconds(took)})")
    return EXIT_OK


# ---------------------------------------------------------------------------- demo


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


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate (or take) profiles, ingest them, and query one variable across all."""
    from ..integrations.netcdf import (
        IngestError,
        find_netcdf_files,
        ingest_directory,
        release_memory_promptly,
    )

    release_memory_promptly()
    t0 = time.perf_counter()
    workdir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="atlas-demo-"))
    keep = args.dir is not None
    jobs = args.jobs or _cores()
    quiet = args.quiet or args.json
    say: Callable[[str], None] = (lambda s: None) if args.json else (lambda s: print(s, flush=True))
    try:
        if args.argo is not None:
            src = Path(args.argo)
            if not src.is_dir():
                raise CommandError(f"{src} is not a directory")
            variable = args.variable or "TEMP"
            store_path = workdir / "argo.atlas"
            gen_time = 0.0
        else:
            src = workdir / "profiles"
            variable = args.variable or "temperature"
            store_path = workdir / "profiles.atlas"
            if src.exists() and find_netcdf_files(src):
                say(f"using the profiles already in {src}")
                gen_time = 0.0
            else:
                t = time.perf_counter()
                _generate(src, args.files, jobs)
                gen_time = time.perf_counter() - t
                say(f"wrote {args.files} synthetic profiles to {src} in {format_seconds(gen_time)}")
        if store_path.exists():
            import shutil

            shutil.rmtree(store_path)
        try:
            report = ingest_directory(
                src, store_path, jobs=jobs, skip_errors=True, progress=make_progress("ingest", quiet)
            )
        except IngestError as e:
            raise CommandError(str(e)) from None
        if not args.json:
            _ingest_summary(report, args.verbose, sys.stdout)
        store = _open_store(str(store_path))
        try:
            summary = cross_summary(store, variable)
        except KeyError:
            raise CommandError(f"no ingested dataset has a variable named {variable!r}") from None
        result: dict[str, Any] = {
            "source": str(src),
            "store": store.location,
            "generate_seconds": round(gen_time, 3),
            "ingest": report.as_dict(),
            "summary": summary,
            "total_seconds": round(time.perf_counter() - t0, 3),
        }
        if args.json:
            result["ingest"].pop("added", None)
            print_json(result)
        else:
            s = summary
            if s["count"]:
                print(
                    f"{variable} across {s['datasets']} profiles: {s['count']} values, "
                    f"min {s['min']:.3f}, max {s['max']:.3f}, mean {s['mean']:.3f} "
                    f"(read_array_across in {format_seconds(s['seconds'])})"
                )
            else:
                print(f"{variable}: no values in {s['datasets']} profiles")
            where = f"kept in {workdir}" if keep else "temporary files removed"
            print(f"demo done in {format_seconds(time.perf_counter() - t0)}; {where}")
    finally:
        if not keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    return EXIT_PARTIAL if report.skipped else EXIT_OK


# ---------------------------------------------------------------------------- parser


def _cores() -> int:
    from ..integrations.netcdf import _default_jobs

    return _default_jobs()


def _has_catalogue() -> bool:
    from ..api import Atlas

    return hasattr(Atlas, "find")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the hand-made layout of descriptions and epilogs."""


def build_parser() -> argparse.ArgumentParser:
    """The ``atlas`` argument parser with all subcommands."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="atlas",
        description="Store thousands of similar N-d datasets in one Atlas store, and look inside it.",
        epilog=(
            "exit status: 0 ok, 1 error (or problems found by verify), 2 usage error,\n"
            "3 ingest --skip-errors skipped files, 130 interrupted.\n"
            "Run `atlas COMMAND --help` for the options of a command."
        ),
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"atlas {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    catalogue = _has_catalogue()

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str, desc: str | None = None,
            epilog: str | None = None, json_flag: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=desc or help, epilog=epilog, formatter_class=_Formatter)
        p.set_defaults(func=func)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print machine-readable JSON")
        return p

    p = add(
        "ingest",
        cmd_ingest,
        "ingest a directory tree of NetCDF files into a store",
        desc=(
            "Find .nc, .nc4, .cdf and .netcdf files under SRC_DIR (recursively) and store\n"
            "each as one dataset of STORE, created if missing. Large files are streamed in\n"
            "blocks of --chunk-size bytes. All or nothing: if a file fails, nothing is\n"
            "committed (an existing store is unchanged, a new one is removed), unless\n"
            "--skip-errors is given. A failure of the store itself (a full disk, a bucket\n"
            "refusing writes, a service still failing after retries) always stops the\n"
            "ingest and is never blamed on a file. A STORE left half-created by an ingest\n"
            "that was killed (only atlas.json or temporary files) is created again."
        ),
        epilog=NAMING_HELP + (
            "\nexit status: 0 ok, 1 error (nothing committed; also when the store fails),\n"
            "3 files skipped with --skip-errors."
        ),
    )
    p.add_argument("src_dir", metavar="SRC_DIR", help="directory to search for NetCDF files")
    p.add_argument("store", metavar="STORE", help="store path (created if missing)")
    p.add_argument("--codec", choices=["zstd", "lz4", "none"], type=str.lower, default=None,
                   help="compression of a new store (default: zstd)")
    p.add_argument("--meta-format", choices=["msgpack", "json"], type=str.lower, default="msgpack",
                   help="metadata encoding of a new store (default: msgpack; json is readable by people)")
    p.add_argument("--meta-compression", choices=["zstd", "lz4", "none"], type=str.lower, default="zstd",
                   help="metadata compression of a new store (default: zstd)")
    p.add_argument("--chunk-size", type=parse_size, default="16MiB", metavar="SIZE",
                   help="size of the blocks large files are streamed in, and stored as (default: 16MiB; "
                        "streaming needs about 7 blocks of memory)")
    p.add_argument("--skip-errors", action="store_true",
                   help="skip files that fail, commit the rest, and list what was skipped and why")
    p.add_argument("--jobs", "-j", type=positive_int, default=None, metavar="N",
                   help=f"processes decoding files in parallel (default: the number of cores, {_cores()})")
    p.add_argument("--update", action="store_true",
                   help="add only files whose datasets are not in the store yet (changed files are not re-read)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output, only the summary")
    p.add_argument("--verbose", "-v", action="store_true", help="list every warning with its file")

    p = add("ls", cmd_ls, "list dataset names",
            desc="List the datasets of STORE, in insertion order, optionally filtered by PATTERN.")
    p.add_argument("store", metavar="STORE", help="store directory")
    p.add_argument("pattern", metavar="PATTERN", nargs="?",
                   help="shell-style pattern on dataset names, e.g. 'aoml:*' (quote it)")
    if catalogue:
        p.add_argument("--where", metavar="EXPR",
                       help="only datasets matching a catalogue expression, e.g. \"TEMP.max > 25\"")

    if catalogue:
        p = add("find", cmd_find, "list datasets matching a catalogue expression",
                desc="List the datasets of STORE whose attributes and array statistics match EXPR,\n"
                     "without reading their data. Examples:\n"
                     "  atlas find STORE \"TEMP.max > 25 and LATITUDE.min < -40\"\n"
                     "  atlas find STORE \"institution == 'CSIRO'\"")
        p.add_argument("store", metavar="STORE", help="store directory")
        p.add_argument("expr", metavar="EXPR", help="catalogue expression over attributes and ARRAY.min/max/...")

    p = add("show", cmd_show, "describe one dataset (like ncdump -h)",
            desc="Dimensions, variables (dtype, shape, chunks, fill value, statistics) and attributes\nof one dataset.")
    p.add_argument("store", metavar="STORE", help="store directory")
    p.add_argument("dataset", metavar="DATASET", help="dataset name (see `atlas ls`)")

    p = add("info", cmd_info, "summarise a store",
            desc="Counts of datasets and arrays, bytes on disk, codec and versions of STORE.")
    p.add_argument("store", metavar="STORE", help="store directory")

    p = add("rm", cmd_rm, "delete datasets",
            desc="Delete datasets from STORE in one commit (none is deleted if any is missing).\n"
                 "Disk space is reclaimed by `atlas compact`.")
    p.add_argument("store", metavar="STORE", help="store directory")
    p.add_argument("datasets", metavar="DATASET", nargs="+", help="dataset names")

    p = add("compact", cmd_compact, "rewrite data densely and drop old versions",
            desc="Rewrite variables holding deleted data densely, expire all but the newest versions\n"
                 "(tagged versions stay), and delete files no kept version refers to once they are\n"
                 "past the grace period: readers of expired versions and writers still at work\n"
                 "(whose new files no version names yet) keep theirs that long. Safe to run while\n"
                 "other processes read and write the store.")
    p.add_argument("store", metavar="STORE", help="store directory")
    p.add_argument("--keep-versions", type=positive_int, default=1, metavar="N",
                   help="newest versions that stay readable (default: 1)")
    p.add_argument("--grace", type=duration, default=3600.0, metavar="DURATION",
                   help="keep unreferenced files this long: 3600, 90s, 30m, 2h, 1d (default: 1h)")
    p.add_argument("--prune-now", action="store_true",
                   help="no grace period: delete at once (only when nothing else uses the store)")

    p = add("versions", cmd_versions, "list the versions of a store and their tags")
    p.add_argument("store", metavar="STORE", help="store directory")

    p = add("tag", cmd_tag, "name a version (tags never expire)",
            desc="Name VERSION (default: the newest) of STORE; open it later with\n"
                 "Atlas.open(STORE, version=NAME). Tags are immutable: --delete, then tag again.")
    p.add_argument("store", metavar="STORE", help="store directory")
    p.add_argument("name", metavar="NAME", help="tag name")
    p.add_argument("--version", type=nonnegative_int, default=None, metavar="N", help="version to name")
    p.add_argument("--delete", action="store_true", help="delete the tag NAME instead")

    p = add("expire", cmd_expire, "expire old versions",
            desc="Expire versions older than DATE and/or beyond the N newest (never the newest or a\n"
                 "tagged one). Their files are deleted by `atlas compact` after the grace period.")
    p.add_argument("store", metavar="STORE", help="store directory")
    p.add_argument("--keep", type=positive_int, default=None, metavar="N", help="keep the N newest versions")
    p.add_argument("--older-than", type=timestamp, default=None, metavar="DATE",
                   help="expire versions committed before DATE (ISO 8601, e.g. 2026-01-31 or 2026-01-31T12:00Z)")

    p = add("verify", cmd_verify, "check every checksum and index (exit 1 on problems)")
    p.add_argument("store", metavar="STORE", help="store directory")

    p = add("export", cmd_export, "write one dataset to a NetCDF file",
            desc="Write DATASET back to a NetCDF-4 file through xarray (coordinates, attributes\nand fill values included).")
    p.add_argument("store", metavar="STORE", help="store directory")
    p.add_argument("dataset", metavar="DATASET", help="dataset name (see `atlas ls`)")
    p.add_argument("out", metavar="OUT.nc", help="NetCDF file to write")
    p.add_argument("--overwrite", action="store_true", help="replace OUT.nc if it exists")

    p = add(
        "demo",
        cmd_demo,
        "ingest sample ocean profiles and query one variable across all of them",
        desc=(
            "Write synthetic NetCDF ocean profiles (ragged lengths, NaN gaps, CF attributes,\n"
            "a time coordinate, string variables), or take real Argo files with --argo, ingest\n"
            "them like `atlas ingest`, then read one variable across every profile."
        ),
    )
    p.add_argument("--dir", metavar="DIR", help="keep the files and the store in DIR (default: a temporary directory)")
    p.add_argument("--argo", metavar="PATH", help="ingest the NetCDF files under PATH instead of synthetic ones")
    p.add_argument("--files", type=positive_int, default=2000, metavar="N",
                   help="synthetic profiles to write (default: 2000)")
    p.add_argument("--variable", metavar="NAME",
                   help="variable to summarise (default: temperature, or TEMP with --argo)")
    p.add_argument("--jobs", "-j", type=positive_int, default=None, metavar="N",
                   help="processes to use (default: the number of cores)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    p.add_argument("--verbose", "-v", action="store_true", help="list every warning with its file")
    return parser


# ---------------------------------------------------------------------------- entry point


def _error_message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    text = str(exc).strip()
    if isinstance(exc, (CommandError, OSError, RuntimeError, ValueError, TypeError, NotImplementedError)) and text:
        return text.splitlines()[0] if isinstance(exc, CommandError) else " ".join(text.split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``atlas`` command; return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("atlas: interrupted; nothing more was committed", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader of our output went away (e.g. `atlas ls STORE | head`)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        if args.debug:
            raise
        print(f"atlas {args.command}: error: {_error_message(exc)}", file=sys.stderr)
        return EXIT_ERROR
