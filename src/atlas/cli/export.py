"""``atlas export``: one dataset back to a NetCDF file.

A dataset written by ``add_xarray_dataset`` (or ``atlas ingest``) carries its CF record
(:mod:`atlas.integrations.cf`): it is written back in the on-disk form it came with, via
``open_as_xarray_dataset(name, decode_cf=False)`` and netCDF4-python directly, so that
dtypes, ``_FillValue``, units, char arrays with their ``STRINGnn`` dims, attributes (typed,
in order), variable order and unlimited dims come back as they were; the dataset of a
NetCDF-4 file's root group comes back with the file's groups (each with the dimensions it
defines, its variables and attributes), a group's with the groups under it. Older datasets
go through xarray's ``to_netcdf``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import EXIT_OK, CommandError
from .output import format_bytes, format_seconds, print_json
from .store import dataset_named, open_store

if TYPE_CHECKING:
    import xarray as xr

    from ..integrations.groups import Dimension

#: Bytes of one variable written at a time.
SLAB_BYTES = 32 << 20


def _netcdf_attr(value: Any) -> Any:
    """An attribute value NetCDF can hold (typed numpy values as they are, others as JSON text)."""
    import numpy as np

    if isinstance(value, (np.generic, np.ndarray)) and value.dtype.kind in "biufS":
        return value.astype("i1") if value.dtype.kind == "b" else value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (str, int, float, bytes)):
        return value
    if isinstance(value, (list, tuple)) and value and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        return list(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return json.dumps(value, default=str)


def _source_format(store: Any, name: str) -> str | None:
    from ..integrations.cf_read import read_record
    from ..integrations.cf_values import unpack

    record = read_record(store.open_dataset(name))
    if record is None:
        return None
    fmt = unpack(record.get("encoding", {}).get("format"))
    return fmt if isinstance(fmt, str) else None


def write_raw(
    ds: xr.Dataset,
    path: str,
    fmt: str,
    dims: Sequence[Dimension] | None = None,
    groups: Sequence[tuple[str, xr.Dataset, Sequence[Dimension]]] = (),
) -> None:
    """Write the on-disk (``decode_cf=False``) variables of ``ds`` as they are, as the root
    group of a file, and each of ``groups`` (``(path, Dataset, dimensions it defines)``,
    parents first) as a group of it. ``dims``: the dimensions the root group defines."""
    import netCDF4

    with netCDF4.Dataset(path, "w", format=fmt) as nc:  # type: ignore[arg-type]
        _write_group(nc, ds, fmt, dims)
        for gpath, gds, gdims in groups:
            _write_group(nc.createGroup(gpath.strip("/")), gds, fmt, gdims)


def _has_dimension(group: Any, name: str) -> bool:
    """Whether ``name`` is a dimension of a netCDF4 group or of one of its ancestors."""
    while group is not None:
        if name in group.dimensions:
            return True
        group = group.parent
    return False


def _write_group(nc: Any, ds: xr.Dataset, fmt: str, dims: Sequence[Dimension] | None) -> None:
    import numpy as np

    unlimited = set(ds.encoding.get("unlimited_dims") or ())
    nc.set_auto_maskandscale(False)
    nc.setncatts({k: _netcdf_attr(v) for k, v in ds.attrs.items()})
    for dim, size, is_unlimited in dims or ():
        nc.createDimension(dim, None if is_unlimited else size)
    sizes = dict(ds.sizes)
    for var in ds.variables.values():
        for d in var.dims:
            if not _has_dimension(nc, str(d)):
                nc.createDimension(str(d), None if d in unlimited else int(sizes[d]))
    classic = fmt != "NETCDF4"
    for name, var in ds.variables.items():
        if classic and var.dtype.kind in "OUT":
            var = _as_chars(var)  # no NC_STRING in classic formats: a char array
            if var.dims[-1] not in nc.dimensions:
                nc.createDimension(str(var.dims[-1]), var.shape[-1])
        attrs = dict(var.attrs)
        fill = attrs.pop("_FillValue", None)
        dtype: Any = str if var.dtype.kind in "OUT" else var.dtype
        if isinstance(fill, float) and math.isnan(fill) and var.dtype.kind == "f":
            fill = var.dtype.type(fill)
        out = nc.createVariable(str(name), dtype, tuple(str(d) for d in var.dims), fill_value=fill)
        out.set_auto_maskandscale(False)
        out.set_auto_chartostring(False)
        out.setncatts({k: _netcdf_attr(v) for k, v in attrs.items()})
        if var.size == 0:
            continue
        if var.ndim == 0:
            out[...] = np.asarray(var.values)
            continue
        row = max(1, var.dtype.itemsize * math.prod(var.shape[1:]))
        step = max(1, SLAB_BYTES // row)
        for i in range(0, var.shape[0], step):
            block = np.asarray(var[i : i + step].values)
            if dtype is str:
                block = block.astype(object)
            out[i : i + block.shape[0]] = block


def _as_chars(var: Any) -> Any:
    """A variable of strings as a char array (``S1`` with a ``string{n}`` dim, as xarray
    writes strings to classic files)."""
    import numpy as np
    import xarray as xr

    values = np.asarray(var.values, dtype=object).reshape(-1)
    encoded = [v.encode("utf-8") if isinstance(v, str) else (b"" if v is None or v != v else bytes(v)) for v in values]
    width = max([1, *(len(v) for v in encoded)])
    data = np.array(encoded, dtype=f"S{width}").reshape(var.shape)
    chars = data.reshape(-1).view("S1").reshape(*var.shape, width)
    attrs = dict(var.attrs)
    if isinstance(attrs.get("_FillValue"), str):
        attrs["_FillValue"] = np.bytes_(attrs["_FillValue"].encode("utf-8")[:1])
    return xr.Variable((*var.dims, f"string{width}"), chars, attrs)


def _group_tree(store: Any, name: str) -> tuple[list[Dimension] | None, list[tuple[str, str, list[Dimension]]]]:
    """The dimensions the group of dataset ``name`` defines, and the groups under it
    (``(path relative to it, dataset, dimensions)``, parents first): (None, []) for a
    dataset of a file without groups."""
    from ..integrations.groups import place_of, split_path, subgroups

    place = place_of(store.open_dataset(name))
    if place is None:
        return None, []
    root = name
    while True:  # the dataset of the file's root group
        up = place_of(store.open_dataset(root))
        if up is None or up.parent is None or not store.dataset_exists(up.parent):
            break
        root = up.parent
    top = split_path(place.path)
    tree = []
    for sub in subgroups(store, root):
        p = place_of(store.open_dataset(sub))
        if p is None:
            continue
        parts = split_path(p.path)
        if len(parts) > len(top) and parts[: len(top)] == top:
            tree.append(("/" + "/".join(parts[len(top) :]), sub, p.dims))
    return place.dims, tree


def cmd_export(args: argparse.Namespace) -> int:
    """Write one dataset back to a NetCDF file (with the groups under it, for a NetCDF-4
    file's)."""
    store = open_store(args.store)
    name = dataset_named(store, args.dataset)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise CommandError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise CommandError(f"{out.parent} is not a directory")
    t0 = time.perf_counter()
    fmt = getattr(args, "format", "NETCDF4") or "NETCDF4"
    source = _source_format(store, name)
    if fmt == "source":
        fmt = source or "NETCDF4"
    dims, tree = _group_tree(store, name)
    if tree and fmt != "NETCDF4":
        raise CommandError(f"{args.dataset} has groups ({len(tree)}), which only the NETCDF4 format holds")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        if source is not None or _has_record(store, name):
            groups = [(p, store.open_as_xarray_dataset(n, decode_cf=False), d) for p, n, d in tree]
            write_raw(store.open_as_xarray_dataset(name, decode_cf=False), tmp, fmt, dims, groups)
        else:
            ds = store.open_as_xarray_dataset(name)
            ds.attrs = {k: _netcdf_attr(v) for k, v in ds.attrs.items()}
            for var in ds.variables.values():
                var.attrs = {k: _netcdf_attr(v) for k, v in var.attrs.items()}
            ds.to_netcdf(tmp, engine="netcdf4", format=fmt)  # type: ignore[call-overload]
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600; a new file's usual mode
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    size = out.stat().st_size
    took = time.perf_counter() - t0
    shown = args.dataset + (f" (and {len(tree)} groups)" if tree else "")
    if args.json:
        print_json({"dataset": name, "groups": [n for _, n, _ in tree], "file": str(out), "bytes": size,
                    "seconds": round(took, 3)})
    else:
        print(f"wrote {shown} to {out} ({format_bytes(size)}, {format_seconds(took)})")
    return EXIT_OK


def _has_record(store: Any, name: str) -> bool:
    from ..integrations.cf_read import read_record

    return read_record(store.open_dataset(name)) is not None
