"""``atlas ingest``: NetCDF files (directory trees, single files) into a store."""

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


def run_ingest(
    src: str | Path | list[str], store: str | Path, progress: IngestProgress, **options: Any
) -> IngestReport:
    """``ingest_directory`` with ``progress``; its refusals become one-line errors."""
    from ..integrations.netcdf import IngestError, ingest_directory

    try:
        return ingest_directory(src, store, progress=progress, **options)
    except IngestError as e:
        raise CommandError(str(e)) from None


def run_cluster_ingest(
    src: str | Path | list[str], store: str | Path, address: str, progress: IngestProgress, **options: Any
) -> IngestReport:
    """The ingest on the dask cluster at ``address`` (``local:N``: a local cluster of N
    worker processes, started and stopped here); refusals become one-line errors."""
    from ..dask import _distributed
    from ..integrations.netcdf import IngestError
    from ..integrations.netcdf.cluster import ingest_on_cluster

    try:
        distributed = _distributed()
    except ImportError as e:
        raise CommandError(str(e)) from None
    try:
        if address.startswith("local:"):
            n = address[len("local:"):]
            if not n.isdigit() or int(n) < 1:
                raise CommandError(f"--dask {address}: give local:N with N worker processes, N at least 1")
            with (
                distributed.LocalCluster(
                    n_workers=int(n), threads_per_worker=1, processes=True, dashboard_address=":0",
                    silence_logs=40,
                ) as cluster,
                distributed.Client(cluster) as client,
            ):
                return ingest_on_cluster(src, store, client, progress=progress, **options)
        try:
            client = distributed.Client(address, timeout="30s")
        except OSError as e:
            raise CommandError(f"cannot reach the dask scheduler at {address}: {e}") from None
        with client:
            return ingest_on_cluster(src, store, client, progress=progress, **options)
    except IngestError as e:
        raise CommandError(str(e)) from None


def _size_text(report: IngestReport) -> str:
    """``store takes 4.7 MiB on disk (1.1 MiB in 1012 files), 22% of the NetCDF size``."""
    before, after = report.store_bytes_before, report.store_bytes_after
    if after is None:
        return "store size unknown"
    files = f" ({format_bytes(report.store_apparent_bytes)} in {plural(report.store_files or 0, 'file')})"
    ratio = f", {after / report.bytes_in:.0%} of the NetCDF size" if report.bytes_in and report.created else ""
    grown = ""
    if before and after != before and not report.created:
        grown = f", {'+' if after > before else '-'}{format_bytes(abs(after - before))}"
    return f"store takes {format_bytes(after)} on disk{files}{grown}{ratio}"


def print_summary(report: IngestReport, verbose: bool, out: TextIO) -> None:
    """The one summary an ingest prints."""
    present = f"; {report.files_present} unchanged" if report.files_present else ""
    replaced = f" ({len(report.replaced)} replacing changed files)" if report.replaced else ""
    print(
        f"{'created' if report.created else 'updated'} {report.store}: "
        f"{plural(len(report.added), 'dataset')} added{replaced} from {plural(report.files_found, 'file')}{present}; "
        f"read {format_bytes(report.bytes_in)}, {_size_text(report)}; {format_seconds(report.seconds)}",
        file=out,
    )
    if report.skipped:
        print(f"skipped {plural(len(report.skipped), 'file')}:", file=out)
        for f, reason in report.skipped:
            print(f"  {f}: {reason}", file=out)
    if report.failed_before:
        n = len(report.failed_before)
        verb = "failed before and is unchanged, not retried (--retry-failed retries it)" if n == 1 else (
            "failed before and are unchanged, not retried (--retry-failed retries them)"
        )
        print(f"{plural(n, 'file')} {verb}:", file=out)
        for f, reason in report.failed_before:
            print(f"  {f}: {reason}", file=out)
    _print_warnings(report, verbose, out)


def _print_warnings(report: IngestReport, verbose: bool, out: TextIO) -> None:
    """Warnings once per kind, with a count and one file that raised it."""
    kinds = report.warning_kinds()
    if not kinds:
        return
    hint = "" if verbose else " (--verbose for every file)"
    print(f"warnings: {len(report.warnings)} in {plural(len(kinds), 'kind')}{hint}", file=out)
    examples = report.warning_examples()
    for kind, n in kinds:
        print(f"  {n} x {kind}", file=out)
        print(f"      e.g. {examples[kind].file}", file=out)
    if verbose:
        for w in report.warnings:
            print(f"  {w.file}: {w.category}: {w.message}", file=out)


def cmd_ingest(args: argparse.Namespace) -> int:
    """Ingest a directory tree of NetCDF files."""
    from ..integrations.netcdf import release_memory_promptly

    release_memory_promptly()
    options: dict[str, Any] = dict(
        codec=args.codec,
        meta_format=args.meta_format,
        meta_compression=args.meta_compression,
        chunk_size=args.chunk_size,
        skip_errors=args.skip_errors,
        update=args.update,
        include=args.include,
        exclude=args.exclude,
        root=args.root,
        retry_failed=args.retry_failed,
    )
    progress = make_progress("ingest", args.quiet or args.json)
    every = args.checkpoint_files
    if args.dask is not None:
        if args.jobs is not None:
            raise CommandError("--jobs is for a local ingest; with --dask the cluster's workers do the work")
        if every is not None and not args.skip_errors:
            raise CommandError(
                "--checkpoint-files with --dask sets how often a --skip-errors ingest commits; "
                "without --skip-errors a cluster ingest commits once, at the end"
            )
        report = run_cluster_ingest(args.sources, args.store, args.dask, progress, commit_every_files=every, **options)
    else:
        checkpoints = {} if every is None else {"checkpoint_files": every}
        report = run_ingest(args.sources, args.store, progress, jobs=args.jobs, **checkpoints, **options)
    if args.json:
        print_json(report.as_dict())
    else:
        print_summary(report, args.verbose, sys.stdout)
    return EXIT_PARTIAL if report.skipped else EXIT_OK
