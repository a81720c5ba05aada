"""The ``atlas`` command line: its argument types and the parser of every subcommand."""

from __future__ import annotations

import argparse
import datetime as _dt
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..format.manifest import CONFIG_KEY
from ..integrations.netcdf import CHECKPOINT_FILES
from ..integrations.netcdf.cluster import DEFAULT_COMMIT_EVERY_FILES
from .demo import cmd_demo
from .export import cmd_export
from .ingest import cmd_ingest, default_jobs
from .maintenance import (
    cmd_compact,
    cmd_expire,
    cmd_rm,
    cmd_tag,
    cmd_upgrade,
    cmd_verify,
    cmd_versions,
)
from .read import cmd_find, cmd_info, cmd_ls
from .show import cmd_show

if TYPE_CHECKING:
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]

NAMING_HELP = """\
dataset names:
  one dataset per file, named after the file's path relative to the root
  (--root; by default SRC itself when it is one directory, else the deepest
  directory holding every SRC) without its extension, with '/' replaced by ':' (dataset names cannot
  hold '/'). A name that would start with '_' (not allowed) gets a leading
  ':'. Hidden files and directories (starting with '.') are skipped.
    aoml/13857/profiles/R13857_001.nc  ->  aoml:13857:profiles:R13857_001
    _scratch/run1.nc4                   ->  :_scratch:run1
"""

# ---------------------------------------------------------------------------- argument types


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


def _whole_number(text: str, least: int, expected: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < least:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {n}")
    return n


def positive_int(text: str) -> int:
    """An argparse type for counts of at least 1."""
    return _whole_number(text, 1, "at least 1")


def nonnegative_int(text: str) -> int:
    """An argparse type for version numbers (0 and up)."""
    return _whole_number(text, 0, "0 or more")


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


# ---------------------------------------------------------------------------- subcommands


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the hand-made layout of descriptions and epilogs."""


def _command(
    sub: Subcommands,
    name: str,
    func: Callable[[argparse.Namespace], int],
    help: str,
    desc: str | None = None,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """Add subcommand ``name`` running ``func``, with ``--json``."""
    p = sub.add_parser(name, help=help, description=desc or help, epilog=epilog, formatter_class=_Formatter)
    p.set_defaults(func=func)
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return p


def _store_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", metavar="STORE", help="store directory")


def _dataset_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", metavar="DATASET", help="dataset name (see `atlas ls`)")


def _new_store_arguments(p: argparse.ArgumentParser) -> None:
    """How a store the command creates is laid out."""
    p.add_argument("--codec", choices=["zstd", "lz4", "none"], type=str.lower, default=None,
                   help="compression of a new store (default: zstd)")
    p.add_argument("--meta-format", choices=["msgpack", "json"], type=str.lower, default="msgpack",
                   help="metadata encoding of a new store (default: msgpack; json is readable by people)")
    p.add_argument("--meta-compression", choices=["zstd", "lz4", "none"], type=str.lower, default="zstd",
                   help="metadata compression of a new store (default: zstd)")


def _add_ingest(sub: Subcommands) -> None:
    p = _command(
        sub,
        "ingest",
        cmd_ingest,
        "ingest NetCDF files (directory trees or single files) into a store",
        desc=(
            "Find .nc, .nc4, .cdf and .netcdf files under each SRC directory (recursively),\n"
            "take each SRC file whatever its extension, keep those matching --include and\n"
            "not --exclude, and store each as one dataset of STORE, created if missing.\n"
            "Each dataset records its source (path, size, time, SHA-256, Atlas version) as\n"
            "_atlas_* attributes; --update uses them to replace the datasets of changed files.\n"
            "Large files are streamed in blocks of --chunk-size bytes. All or nothing: if a\n"
            "file fails, nothing is committed (an existing store is unchanged and lists the\n"
            "failure in `atlas info`, a new one is removed); every --checkpoint-files files\n"
            "the ingest writes ahead what it holds, invisible until its one commit, so memory\n"
            "stays bounded. With --skip-errors failing files are listed, kept in the store's\n"
            "list of failed files (`atlas info` shows it) and not tried again by later\n"
            "ingests while unchanged, unless --retry-failed; the ingest then commits at every\n"
            "checkpoint, so a killed ingest keeps what it committed (--update goes on from\n"
            "there). A failure of the store itself (a full disk, a bucket refusing writes, a\n"
            "service still failing after retries) always stops the ingest and is never\n"
            "blamed on a file. A STORE left half-created by an ingest that was killed (only\n"
            f"{CONFIG_KEY} or temporary files) is created again."
        ),
        epilog=NAMING_HELP + (
            "\nexamples:\n"
            "  atlas ingest argo/ argo.atlas\n"
            "  atlas ingest argo/aoml argo/csiro argo.atlas       (names start aoml:, csiro:)\n"
            "  atlas ingest argo/ argo.atlas --include '*_prof.nc' --exclude 'kma/*'\n"
            "  atlas ingest argo/ argo.atlas --update              (new and changed files)\n"
            "  atlas ingest argo/ argo.atlas --dask local:8        (8 worker processes)\n"
            "  atlas ingest argo/ s3://bucket/argo --dask tcp://scheduler:8786\n"
            "\nexit status: 0 ok, 1 error (nothing committed; also when the store fails),\n"
            "3 files skipped with --skip-errors."
        ),
    )
    p.add_argument("sources", metavar="SRC", nargs="+",
                   help="directory to search for NetCDF files, or a NetCDF file (several may be given)")
    p.add_argument("store", metavar="STORE", help="store path (created if missing)")
    p.add_argument("--include", action="append", default=[], metavar="GLOB",
                   help="only files matching GLOB: a pattern without '/' matches file names "
                        "('*_prof.nc'), one with '/' the path under the root ('aoml/*'); repeatable")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="leave out files matching GLOB (as --include); repeatable")
    p.add_argument("--root", metavar="DIR", default=None,
                   help="name datasets by their path relative to DIR (default: the deepest directory "
                        "holding every SRC; a single directory is its own root)")
    _new_store_arguments(p)
    p.add_argument("--chunk-size", type=parse_size, default="16MiB", metavar="SIZE",
                   help="size of the blocks large files are streamed in, and stored as (default: 16MiB; "
                        "streaming needs about 7 blocks of memory)")
    p.add_argument("--skip-errors", action="store_true",
                   help="skip files that fail, commit the rest (every --checkpoint-files files), and list "
                        "what was skipped and why")
    p.add_argument("--checkpoint-files", type=positive_int, default=None, metavar="N",
                   help=f"files between checkpoints, where the ingest writes ahead what it holds and forgets "
                        f"it (commits it, with --skip-errors) (default: {CHECKPOINT_FILES}; with --dask and "
                        f"--skip-errors, files between commits, default {DEFAULT_COMMIT_EVERY_FILES})")
    p.add_argument("--jobs", "-j", type=positive_int, default=None, metavar="N",
                   help=f"processes decoding files in parallel (default: the number of cores, {default_jobs()})")
    p.add_argument("--update", action="store_true",
                   help="add new files, replace the datasets of changed files (by size and time, then "
                        "SHA-256), leave unchanged ones alone; commits on top of what other processes "
                        "committed meanwhile, so updates with different files may run at once")
    p.add_argument("--retry-failed", action="store_true",
                   help="try again files that failed in an earlier ingest even if they did not change")
    p.add_argument("--dask", metavar="ADDRESS", default=None,
                   help="read and write the files on the workers of the dask cluster whose scheduler is "
                        "at ADDRESS (tcp://host:8786), or of a local cluster of N processes (local:N); the "
                        "workers must reach SRC by the same paths, and STORE. Needs the distributed "
                        "package. With --skip-errors it commits every 2,000 files or 60 s (rerun with "
                        "--update to go on); otherwise once, at the end")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output, only the summary")
    p.add_argument("--verbose", "-v", action="store_true", help="list every warning with its file")


def _add_read_commands(sub: Subcommands) -> None:
    p = _command(sub, "ls", cmd_ls, "list dataset names",
                 desc="List the datasets of STORE, in insertion order, optionally filtered by PATTERN.")
    _store_argument(p)
    p.add_argument("pattern", metavar="PATTERN", nargs="?",
                   help="shell-style pattern on dataset names, e.g. 'aoml:*' (quote it)")
    p.add_argument("--where", metavar="EXPR",
                   help="only datasets matching a catalogue expression, e.g. \"TEMP.max > 25\"")

    p = _command(sub, "find", cmd_find, "list datasets matching a catalogue expression",
                 desc="List the datasets of STORE whose attributes and array statistics match EXPR,\n"
                      "without reading their data. Strings compare with trailing blanks (spaces, NULs)\n"
                      "ignored, as fixed-width char data is read. Examples:\n"
                      "  atlas find STORE \"TEMP.max > 25 and LATITUDE.min < -40\"\n"
                      "  atlas find STORE \"institution == 'CSIRO'\"\n"
                      "  atlas find STORE \"PLATFORM_NUMBER == '13857'\"   (stored as '13857   ')")
    _store_argument(p)
    p.add_argument("expr", metavar="EXPR", help="catalogue expression over attributes and ARRAY.min/max/...")

    p = _command(sub, "show", cmd_show, "describe one dataset (like ncdump -h)",
                 desc="Dimensions, variables (dtype, shape, chunks, fill value, statistics) and attributes\n"
                      "of one dataset.")
    _store_argument(p)
    _dataset_argument(p)

    p = _command(sub, "info", cmd_info, "summarise a store",
                 desc="Counts of datasets and arrays, room on disk (as du counts it: allocated blocks;\n"
                      "object sizes on object stores) beside the sizes of the store's files, codec,\n"
                      "versions, and the files earlier ingests could not store.")
    _store_argument(p)


def _add_maintenance_commands(sub: Subcommands) -> None:
    p = _command(sub, "rm", cmd_rm, "delete datasets by name or pattern",
                 desc="Delete the datasets of STORE named by PATTERNs in one commit: a name, or a\n"
                      "shell-style pattern as `atlas ls` takes ('aoml:*:profiles:*'; quote it). None\n"
                      "is deleted if a PATTERN matches no dataset. Disk space is reclaimed by\n"
                      "`atlas compact`.")
    _store_argument(p)
    p.add_argument("datasets", metavar="PATTERN", nargs="+", help="dataset names or shell-style patterns")
    p.add_argument("--dry-run", "-n", action="store_true", help="list the datasets that would be deleted, delete none")

    p = _command(sub, "upgrade", cmd_upgrade, "bring a store to the newest on-disk format",
                 desc="Commit a version of STORE whose metadata is all in the newest format (version 2:\n"
                      "datasets in shards, chunk indexes in runs). Stores of format 1 open and are read\n"
                      "as they are, and any write upgrades them too; this does it without a change.")
    _store_argument(p)

    p = _command(sub, "compact", cmd_compact, "rewrite data densely and drop old versions",
                 desc="Rewrite variables holding deleted data densely, expire all but the newest versions\n"
                      "(tagged versions stay), and delete files no kept version refers to once they are\n"
                      "past the grace period: readers of expired versions and writers still at work\n"
                      "(whose new files no version names yet) keep theirs that long. Safe to run while\n"
                      "other processes read and write the store.")
    _store_argument(p)
    p.add_argument("--keep-versions", type=positive_int, default=1, metavar="N",
                   help="newest versions that stay readable (default: 1)")
    p.add_argument("--grace", type=duration, default=3600.0, metavar="DURATION",
                   help="keep unreferenced files this long: 3600, 90s, 30m, 2h, 1d (default: 1h)")
    p.add_argument("--prune-now", action="store_true",
                   help="no grace period: delete at once (only when nothing else uses the store)")

    _store_argument(_command(sub, "versions", cmd_versions, "list the versions of a store and their tags"))

    p = _command(sub, "tag", cmd_tag, "name a version (tags never expire)",
                 desc="Name VERSION (default: the newest) of STORE; open it later with\n"
                      "Atlas.open(STORE, version=NAME). Tags are immutable: --delete, then tag again.")
    _store_argument(p)
    p.add_argument("name", metavar="NAME", help="tag name")
    p.add_argument("--version", type=nonnegative_int, default=None, metavar="N", help="version to name")
    p.add_argument("--delete", action="store_true", help="delete the tag NAME instead")

    p = _command(sub, "expire", cmd_expire, "expire old versions",
                 desc="Expire versions older than DATE and/or beyond the N newest (never the newest or a\n"
                      "tagged one). Their files are deleted by `atlas compact` after the grace period.")
    _store_argument(p)
    p.add_argument("--keep", type=positive_int, default=None, metavar="N", help="keep the N newest versions")
    p.add_argument("--older-than", type=timestamp, default=None, metavar="DATE",
                   help="expire versions committed before DATE (ISO 8601, e.g. 2026-01-31 or 2026-01-31T12:00Z)")

    _store_argument(_command(sub, "verify", cmd_verify, "check every checksum and index (exit 1 on problems)"))


def _add_export_and_demo(sub: Subcommands) -> None:
    p = _command(sub, "export", cmd_export, "write one dataset to a NetCDF file",
                 desc="Write DATASET back to a NetCDF file in the on-disk form it was added with\n"
                      "(dtypes, fill values, units, char dims, attributes and their order). The\n"
                      "dataset of a NetCDF-4 file with groups comes back with its groups (the dataset\n"
                      "of a group with the groups under it); FILE/GROUP/PATH names a group's dataset.")
    _store_argument(p)
    _dataset_argument(p)
    p.add_argument("out", metavar="OUT.nc", help="NetCDF file to write")
    p.add_argument("--overwrite", action="store_true", help="replace OUT.nc if it exists")
    p.add_argument("--format", default="NETCDF4", metavar="FORMAT",
                   choices=["NETCDF4", "NETCDF4_CLASSIC", "NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "source"],
                   help="NETCDF4 (default), NETCDF4_CLASSIC, NETCDF3_CLASSIC, NETCDF3_64BIT_OFFSET, or "
                        "source: the format of the file the dataset was ingested from")

    p = _command(
        sub,
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
    _add_ingest(sub)
    _add_read_commands(sub)
    _add_maintenance_commands(sub)
    _add_export_and_demo(sub)
    return parser
