"""The commands that list and summarise: ``atlas ls``, ``atlas find`` and ``atlas info``."""

from __future__ import annotations

import argparse
import fnmatch
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from .errors import EXIT_OK, CommandError
from .output import format_bytes, plural, print_json
from .store import disk_usage, open_store

if TYPE_CHECKING:
    from ..api import Atlas


def find_names(store: Atlas, expr: str) -> list[str]:
    """The datasets matching a catalogue expression; a bad expression is a one-line error."""
    try:
        return store.find(expr)
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
    store = open_store(args.store)
    names = store.list_datasets()
    if args.pattern is not None:
        names = [n for n in names if fnmatch.fnmatchcase(n, args.pattern)]
    if args.where is not None:
        found = set(find_names(store, args.where))
        names = [n for n in names if n in found]
    return _print_names(names, args.json)


def cmd_find(args: argparse.Namespace) -> int:
    """List the datasets matching a catalogue expression."""
    store = open_store(args.store)
    return _print_names(find_names(store, args.expr), args.json)


def store_info(store: Atlas) -> dict[str, Any]:
    """Counts, sizes, codec and versions of a store."""
    from ..core.maintenance import unreferenced_summary
    from ..integrations.netcdf.provenance import read_failures

    names = store.list_datasets()
    total_arrays = store.live_array_count()
    versions = store.versions()
    disk = disk_usage(store)
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
        "codec": store.codec,
        "bytes_on_disk": None if disk is None else disk.allocated_bytes,
        "apparent_bytes": None if disk is None else disk.apparent_bytes,
        "files_on_disk": None if disk is None else disk.files,
        "tags": store.tags(),
        "unreferenced_files": unreferenced[0],
        "unreferenced_bytes": unreferenced[1],
        "failed_files": [asdict(f) for f in read_failures(store)],
    }


#: Failed files ``atlas info`` lists (``--json`` gives them all).
_FAILED_SHOWN = 10


def _info_rows(info: dict[str, Any], location: str) -> list[tuple[str, str]]:
    """``atlas info``'s lines as (label, text); ``location`` as the user wrote it."""
    vs = info["versions"]
    kept = f"{plural(len(vs), 'version')} kept" + (f" ({vs[0]}..{vs[-1]})" if len(vs) > 1 else "")
    when = f", committed {info['newest_version_time']}" if info["newest_version_time"] else ""
    rows = [
        ("store", info["store"]),
        ("version", f"{info['version']}{when}; {kept}"),
        ("datasets", str(info["datasets"])),
        ("arrays", f"{info['arrays']} ({info['array_names']} distinct names)"),
        ("codec", info["codec"]),
        ("on disk", _disk_text(info)),
    ]
    if info["tags"]:
        rows.append(("tags", ", ".join(f"{k} = {v}" for k, v in info["tags"].items())))
    failed = info["failed_files"]
    if failed:
        skipped = [f for f in failed if not f.get("stopped")]
        hint = " (`atlas ingest --update --retry-failed` tries skipped ones again)" if skipped else ""
        rows.append(("failed", f"{plural(len(failed), 'file')} could not be stored by earlier ingests{hint}:"))
        rows.extend(
            ("", f"  {f['file']}: {f['reason']}" + (
                f" (stopped the ingest of {f['when']}; the next ingest tries it again)" if f.get("stopped") else ""
            ))
            for f in failed[:_FAILED_SHOWN]
        )
        if len(failed) > _FAILED_SHOWN:
            rows.append(("", f"  ... and {len(failed) - _FAILED_SHOWN} more (--json lists them all)"))
    if info["unreferenced_files"]:
        rows.append((
            "note",
            f"{plural(info['unreferenced_files'], 'file')} ({format_bytes(info['unreferenced_bytes'])}) "
            f"referenced by no version kept; `atlas compact {location}` removes them",
        ))
    return rows


def _disk_text(info: dict[str, Any]) -> str:
    """``4.7 MiB (as du counts it); 1.1 MiB in 1012 files`` or ``?``."""
    if info["bytes_on_disk"] is None:
        return "? (the store's files cannot be listed)"
    return (
        f"{format_bytes(info['bytes_on_disk'])} (as du counts it); "
        f"{format_bytes(info['apparent_bytes'])} in {plural(info['files_on_disk'], 'file')}"
    )


def cmd_info(args: argparse.Namespace) -> int:
    """Summarise a store."""
    info = store_info(open_store(args.store))
    if args.json:
        print_json(info)
        return EXIT_OK
    for k, v in _info_rows(info, args.store):
        print(f"{k + ':' if k else '':<10} {v}")
    return EXIT_OK
