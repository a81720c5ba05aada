"""``atlas ingest``: a directory tree of NetCDF files into a store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .errors import EXIT_OK, EXIT_PARTIAL, CommandError
from .output import format_bytes, format_seconds, plural, print_json
from .progress import make_progress

if TYPE_CHECKING:
    from ..integrations.netcdf import IngestProgress, IngestReport


def default_jobs() -> int:
    """Processes an ingest uses unless told: the cores this process may run on."""
    from ..integrations.netcdf.workers import default_jobs as netcdf_default_jobs

    return netcdf_default_jobs()


def run_ingest(src: str | Path, store: str | Path, progress: IngestProgress, **options: Any) -> IngestReport:
    """``ingest_directory`` with ``progress``; its refusals become one-line errors."""
    from ..integrations.netcdf import IngestError, ingest_directory

    try:
        return ingest_directory(src, store, progress=progress, **options)
    except IngestError as e:
        raise CommandError(str(e)) from None


def print_summary(report: IngestReport, verbose: bool, out: TextIO) -> None:
    """The one summary an ingest prints."""
    before, after = report.store_bytes_before, report.store_bytes_after
    ratio = f", {after / report.bytes_in:.0%} of the NetCDF size" if after and report.bytes_in and report.created else ""
    grown = f" (+{format_bytes(after - before)})" if before and after is not None and not report.created else ""
    present = f"; {report.files_present} already present" if report.files_present else ""
    print(
        f"{'created' if report.created else 'updated'} {report.store}: "
        f"{plural(len(report.added), 'dataset')} added from {plural(report.files_found, 'file')}{present}; "
        f"read {format_bytes(report.bytes_in)}, store is {format_bytes(after)}{grown}{ratio}; "
        f"{format_seconds(report.seconds)}",
        file=out,
    )
    if report.skipped:
        print(f"skipped {plural(len(report.skipped), 'file')}:", file=out)
        for f, reason in report.skipped:
            print(f"  {f}: {reason}", file=out)
    kinds = report.warning_kinds()
    if kinds:
        hint = "" if verbose else " (--verbose for details)"
        print(f"warnings: {len(report.warnings)} in {plural(len(kinds), 'kind')}{hint}", file=out)
        for kind, n in kinds:
            print(f"  {n} x {kind}", file=out)
        if verbose:
            for w in report.warnings:
                print(f"  {w.file}: {w.category}: {w.message}", file=out)


def cmd_ingest(args: argparse.Namespace) -> int:
    """Ingest a directory tree of NetCDF files."""
    from ..integrations.netcdf import release_memory_promptly

    release_memory_promptly()
    report = run_ingest(
        args.src_dir,
        args.store,
        make_progress("ingest", args.quiet or args.json),
        codec=args.codec,
        meta_format=args.meta_format,
        meta_compression=args.meta_compression,
        chunk_size=args.chunk_size,
        skip_errors=args.skip_errors,
        jobs=args.jobs,
        update=args.update,
    )
    if args.json:
        print_json(report.as_dict())
    else:
        print_summary(report, args.verbose, sys.stdout)
    return EXIT_PARTIAL if report.skipped else EXIT_OK
