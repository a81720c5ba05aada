"""The commands that change a store or check it: ``rm``, ``compact``, ``versions``, ``tag``,
``expire`` and ``verify``."""

from __future__ import annotations

import argparse
import fnmatch
import sys
import time
from typing import TYPE_CHECKING, Any

from ..format.manifest import FORMAT_VERSION
from .errors import EXIT_ERROR, EXIT_OK, EXIT_USAGE, CommandError
from .output import format_bytes, format_seconds, plural, print_json
from .store import disk_usage, missing_dataset, open_store

if TYPE_CHECKING:
    from ..api import Atlas


def matching_datasets(store: Atlas, patterns: list[str]) -> list[str]:
    """The datasets named by ``patterns`` (names, or shell-style patterns as ``ls`` takes),
    in store order; a pattern that matches nothing is an error naming it."""
    names = store.list_datasets()
    chosen: set[str] = set()
    unmatched: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if n == pattern or fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            unmatched.append(pattern)
        chosen.update(hits)
    if len(unmatched) == 1 and not any(c in unmatched[0] for c in "*?["):
        raise missing_dataset(store, unmatched[0])
    if unmatched:
        raise CommandError(
            f"no dataset matches {', '.join(repr(m) for m in unmatched)} in {store.location}; nothing was removed"
        )
    return [n for n in names if n in chosen]


def cmd_rm(args: argparse.Namespace) -> int:
    """Delete the datasets named by names or patterns (all or none)."""
    store = open_store(args.store)
    names = matching_datasets(store, args.datasets)
    if args.dry_run:
        if args.json:
            print_json({"would_remove": names})
        else:
            for n in names:
                print(n)
            print(f"would remove {plural(len(names), 'dataset')} (--dry-run: nothing removed)", file=sys.stderr)
        return EXIT_OK
    for n in names:
        store.delete_dataset(n)
    store.flush()
    if args.json:
        print_json({"removed": names, "version": store.version})
    else:
        print(
            f"removed {plural(len(names), 'dataset')} from {store.location} (version {store.version}); "
            f"`atlas compact {args.store}` reclaims the disk space"
        )
    return EXIT_OK


def cmd_compact(args: argparse.Namespace) -> int:
    """Compact a store."""
    from ..core.maintenance import compact

    store = open_store(args.store)
    before = disk_usage(store)
    t0 = time.perf_counter()
    grace = 0.0 if args.prune_now else args.grace
    report = compact(store, keep_versions=args.keep_versions, grace_period=grace)
    took = time.perf_counter() - t0
    after = disk_usage(store)
    result: dict[str, Any] = {
        "store": store.location,
        "version": store.version,
        "bytes_before": None if before is None else before.allocated_bytes,
        "bytes_after": None if after is None else after.allocated_bytes,
        "apparent_bytes_before": None if before is None else before.apparent_bytes,
        "apparent_bytes_after": None if after is None else after.apparent_bytes,
        "grace_seconds": grace,
        **report.as_dict(),
        "seconds": round(took, 3),
    }
    if args.json:
        print_json(result)
        return EXIT_OK
    print(
        f"compacted {store.location}: {format_bytes(result['bytes_before'])} -> "
        f"{format_bytes(result['bytes_after'])} on disk, "
        f"keeping {plural(args.keep_versions, 'version')}; {format_seconds(took)}"
    )
    if report.kept_files:
        print(
            f"kept {plural(report.kept_files, 'file')} ({format_bytes(report.kept_bytes)}) for the grace period "
            f"of {format_seconds(grace)}: readers of old versions and writers at work may still need them; "
            "run `atlas compact` again later, or with --prune-now when nothing else uses the store"
        )
    return EXIT_OK


def cmd_versions(args: argparse.Namespace) -> int:
    """List the versions of a store, with their tags."""
    store = open_store(args.store)
    tags: dict[int, list[str]] = {}
    for name, number in store.tags().items():
        tags.setdefault(number, []).append(name)
    versions = [dict(entry, tags=tags.get(entry["version"], [])) for entry in store.versions()]
    if args.json:
        print_json({"store": store.location, "versions": versions})
        return EXIT_OK
    for entry in versions:
        named = f"  [{', '.join(entry['tags'])}]" if entry["tags"] else ""
        count = plural(entry["datasets"] or 0, "dataset")
        print(f"{entry['version']:>6}  {entry['timestamp'] or '?':<30} {count}{named}")
    return EXIT_OK


def cmd_tag(args: argparse.Namespace) -> int:
    """Name a version, or delete a tag."""
    store = open_store(args.store)
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
    store = open_store(args.store)
    expired = store.expire_versions(older_than=args.older_than, keep=args.keep)
    if args.json:
        print_json({"store": store.location, "expired": expired})
    else:
        print(
            f"expired {plural(len(expired), 'version')} of {store.location}"
            + (f" ({expired[0]}..{expired[-1]})" if len(expired) > 1 else f" ({expired[0]})" if expired else "")
            + "; `atlas compact` deletes their files once the grace period has passed"
        )
    return EXIT_OK


def cmd_upgrade(args: argparse.Namespace) -> int:
    """Commit the store's newest version in the newest on-disk format."""
    store = open_store(args.store)
    upgraded = store.upgrade()
    if args.json:
        print_json({"store": store.location, "version": store.version, "upgraded": upgraded})
    elif upgraded:
        print(f"{store.location}: upgraded to format version {FORMAT_VERSION} (version {store.version})")
    else:
        print(f"{store.location}: holds no metadata of format version 1 (version {store.version})")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """Check every block and index; exit 1 when problems are found."""
    store = open_store(args.store)
    result = store.verify()  # the problems, with notes beside them
    problems = [str(p) for p in result]
    if args.json:
        print_json({
            "store": store.location, "version": store.version, "ok": not problems, "problems": problems,
            "notes": result.notes, "unreferenced_files": result.unreferenced_files,
            "unreferenced_bytes": result.unreferenced_bytes,
        })
        return EXIT_ERROR if problems else EXIT_OK
    if problems:
        print(f"{plural(len(problems), 'problem')} in {store.location} (version {store.version}):")
        for p in problems:
            print(f"  {p}")
    else:
        n = len(store.list_datasets())
        print(f"{store.location} (version {store.version}): {plural(n, 'dataset')}, no problems found")
    for note in result.notes:
        print(f"note: {note}")
    return EXIT_ERROR if problems else EXIT_OK
