"""``atlas export``: one dataset back to a NetCDF-4 file, through xarray."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import EXIT_OK, CommandError
from .output import format_bytes, format_seconds, print_json
from .store import missing_dataset, open_store


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
    store = open_store(args.store)
    if not store.dataset_exists(args.dataset):
        raise missing_dataset(store, args.dataset)
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
