"""The ``atlas`` command: build a store from NetCDF files and look inside it.

Every subcommand has ``--help``. Exit status: 0 on success, 1 on an error (one
line on stderr) or when ``verify`` finds problems, 2 on a usage error, 3 when
``ingest --skip-errors`` skipped files (the rest was committed), 130 when
interrupted. Read commands take ``--json`` for machine-readable output.

The modules: :mod:`.entry` (``main``), :mod:`.parser` (the command line),
:mod:`.ingest`, :mod:`.read` (``ls``, ``find``, ``info``), :mod:`.show`,
:mod:`.maintenance` (``rm``, ``compact``, ``versions``, ``tag``, ``expire``,
``verify``), :mod:`.export` and :mod:`.demo` (the commands), and what they share:
:mod:`.errors` (exit statuses), :mod:`.output` (printing), :mod:`.progress` and
:mod:`.store`. Heavy libraries (xarray, pandas, netCDF4, dask) are imported inside
the commands that use them, so that start-up stays fast.
"""

from __future__ import annotations

from .demo import cmd_demo, cross_summary
from .entry import main
from .errors import (
    EXIT_BROKEN_PIPE,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    CommandError,
)
from .export import cmd_export
from .ingest import cmd_ingest
from .maintenance import cmd_compact, cmd_expire, cmd_rm, cmd_tag, cmd_verify, cmd_versions
from .output import format_bytes, format_seconds, print_json
from .parser import (
    NAMING_HELP,
    build_parser,
    duration,
    nonnegative_int,
    parse_size,
    positive_int,
    timestamp,
)
from .progress import BarProgress, LogProgress, NoProgress, make_progress
from .read import cmd_find, cmd_info, cmd_ls, store_info
from .show import cmd_show, describe_dataset, format_dataset

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "NAMING_HELP",
    "BarProgress",
    "CommandError",
    "LogProgress",
    "NoProgress",
    "build_parser",
    "cmd_compact",
    "cmd_demo",
    "cmd_expire",
    "cmd_export",
    "cmd_find",
    "cmd_info",
    "cmd_ingest",
    "cmd_ls",
    "cmd_rm",
    "cmd_show",
    "cmd_tag",
    "cmd_verify",
    "cmd_versions",
    "cross_summary",
    "describe_dataset",
    "duration",
    "format_bytes",
    "format_dataset",
    "format_seconds",
    "main",
    "make_progress",
    "nonnegative_int",
    "parse_size",
    "positive_int",
    "print_json",
    "store_info",
    "timestamp",
]
