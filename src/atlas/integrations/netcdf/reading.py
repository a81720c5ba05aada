"""Reading one NetCDF file: decoded whole in memory, or opened lazily to be streamed.

Files are decoded with xarray's CF conventions (masked fill values become NaN, times
become ``datetime64``, character arrays become strings), every group of a NetCDF-4 file as
``xr.open_dataset(path, group=...)`` decodes it; each variable's ``.encoding`` (on-disk
dtype, ``_FillValue``, units, char dims) and the file's format and unlimited dims go with
it, so the store keeps the on-disk form (see :mod:`atlas.integrations.cf`), and so do the
dimensions each group defines (its variables may use those of its ancestors).
:func:`read_netcdf` is what the reader processes run: it never raises for a bad file.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..cf import ON_DISK_NUMBERS
from ..conventions import FILL_VALUE_ATTR
from ..groups import Dimension

if TYPE_CHECKING:
    import xarray as xr

    from ..xarray import PreparedDataset

__all__ = [
    "MAX_INLINE_BYTES",
    "Decoded",
    "Group",
    "describe_error",
    "file_groups",
    "open_netcdf",
    "plan_chunks",
    "read_netcdf",
    "record_warnings",
]

#: Largest decoded size of a file handed whole from a worker to the writer.
MAX_INLINE_BYTES = 32 << 20
#: Bytes assumed per element of object (string) arrays when estimating sizes.
_OBJECT_ITEMSIZE = 64


def open_netcdf(
    path: str | os.PathLike[str], chunk_bytes: int | None = None, group: str | None = None
) -> xr.Dataset:
    """Open one group of a NetCDF file (the root group when ``group`` is None) lazily with
    xarray's CF decoding, as ``xr.open_dataset(path, group=group)`` does.

    With ``chunk_bytes`` every variable is backed by dask blocks of at most about that
    many bytes (see :func:`plan_chunks`), so writing it streams block by block.
    """
    import xarray as xr
    from xarray.backends import NetCDF4DataStore

    store = NetCDF4DataStore.open(os.fspath(path), mode="r", group=group)
    try:
        ds = xr.open_dataset(store, engine="store")
        ds.encoding.update(_file_encoding(store.ds))
        raw = xr.open_dataset(store, engine="store", decode_cf=False)
    except BaseException:
        store.close()
        raise
    if chunk_bytes is not None:
        plan = plan_chunks(ds, chunk_bytes)
        ds = ds.chunk({d: plan[d] for d in ds.dims if d in plan})
    for name, var in ds.variables.items():
        if var.dtype.kind == "O" and name in raw.variables and raw[name].dtype.kind in "iuf":
            numbers = raw[name].variable  # cftime dates: stored as the file's numbers
            var.encoding[ON_DISK_NUMBERS] = numbers.chunk(var.chunksizes).data if var.chunks else numbers.values
    return ds


def own_dimensions(nc: Any) -> list[Dimension]:
    """The dimensions a netCDF4 group (or file) defines itself, in order."""
    return [(str(name), len(dim), bool(dim.isunlimited())) for name, dim in nc.dimensions.items()]


def _walk(nc: Any) -> list[Any]:
    """The sub-groups of a netCDF4 group at every depth, parents first, in the file's order."""
    out = []
    for g in nc.groups.values():
        out.append(g)
        out.extend(_walk(g))
    return out


def file_groups(path: str | os.PathLike[str]) -> list[tuple[str, list[Dimension]]]:
    """The sub-groups of a file (``(path, dimensions it defines)``, parents first) after
    its root group's own ``("/", dimensions)``; just that for a file without groups."""
    import netCDF4

    with netCDF4.Dataset(os.fspath(path), "r") as nc:
        return [("/", own_dimensions(nc))] + [(g.path, own_dimensions(g)) for g in _walk(nc)]


def _itemsize(dtype: Any) -> int:
    return _OBJECT_ITEMSIZE if dtype.kind == "O" else max(1, int(dtype.itemsize))


def plan_chunks(ds: xr.Dataset, chunk_bytes: int) -> dict[str, int]:
    """Dask chunk length per dimension so that no variable's block exceeds ``chunk_bytes``.

    Dimensions start whole; for each variable, largest first, its outermost
    dimensions are cut until one block fits (inner dimensions stay whole as long as
    possible, so a block is a run of whole rows). One length per dimension keeps
    the blocks of all variables aligned.
    """
    sizes = {str(k): int(v) for k, v in ds.sizes.items()}
    chunks = dict(sizes)
    variables = sorted(
        ds.variables.values(), key=lambda v: math.prod(v.shape) * _itemsize(v.dtype), reverse=True
    )
    for var in variables:
        dims = [str(d) for d in var.dims]
        item = _itemsize(var.dtype)
        for i, d in enumerate(dims):
            block = item * math.prod(chunks[x] for x in dims)
            if block <= chunk_bytes:
                break
            inner = item * math.prod(chunks[x] for x in dims[i + 1 :])
            chunks[d] = max(1, min(chunks[d], chunk_bytes // max(1, inner)))
    return {d: max(1, c) for d, c in chunks.items()}


@dataclass
class Group:
    """One sub-group of a file, as a reader sends it."""

    path: str  # its path in the file: /engineering/battery
    dims: list[Dimension]  # the dimensions it defines
    dataset: xr.Dataset | None = None  # decoded in memory
    prepared: PreparedDataset | None = None  # prepared for writing (then dataset is None)


@dataclass
class Decoded:
    """What a reader sends back for one file: its root group (``dataset`` or ``prepared``)
    and its sub-groups, if any."""

    dataset: xr.Dataset | None = None  # decoded in memory
    prepared: PreparedDataset | None = None  # the dataset prepared for writing (then dataset is None)
    stream: bool = False  # too large to send whole: the writer streams it
    error: str | None = None
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (category, message)
    dims: list[Dimension] = field(default_factory=list)  # the root group's own dimensions
    groups: list[Group] = field(default_factory=list)  # the sub-groups, parents first


def describe_error(exc: BaseException, reading: bool = True) -> str:
    """One line saying what went wrong with a file."""
    if reading and isinstance(exc, OSError) and exc.strerror:
        return f"cannot read it as NetCDF ({exc.strerror})"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def record_warnings(caught: Sequence[warnings.WarningMessage]) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for w in caught:
        seen.setdefault((w.category.__name__, str(w.message)), None)
    return list(seen)


def _file_nbytes(nc: Any) -> int:
    """Decoded size of a netCDF4.Dataset's variables (of every group), estimated from their
    schemas."""
    total = 0
    for g in [nc, *_walk(nc)]:
        for var in g.variables.values():
            item = _OBJECT_ITEMSIZE if var.dtype is str else _itemsize(var.dtype)
            total += math.prod(var.shape) * item
    return total


def _read_whole(var: Any) -> Any:
    """All of a netCDF4 variable, raw (auto-masking and char conversion are off).

    ``Variable._get`` is what ``var[...]`` calls once it has turned the key into
    start/count/stride; calling it directly skips that Python-level work, which
    is most of the cost of reading a small variable. Falls back to ``var[...]``.
    """
    shape = var.shape
    if shape and all(shape):
        try:
            return var._get([0] * len(shape), list(shape), [1] * len(shape))
        except (AttributeError, TypeError):
            pass
    return var[...]


def _decode_in_memory(path: str, max_inline_bytes: int) -> list[tuple[str, list[Dimension], xr.Dataset]] | None:
    """Read a whole file and CF-decode each of its groups in memory: ``(path, dimensions it
    defines, Dataset)`` of the root group, then of every sub-group (parents first); None
    when the file is too large for that.

    This gives what ``xr.open_dataset(path, group=...).load()`` gives: the same decoding
    (``xarray.conventions.decode_cf_variables``) and the same assembly as xarray's
    store backend, minus the lazy per-variable indexing machinery, which costs more
    than the reads themselves for files of many small variables.
    """
    import netCDF4

    with netCDF4.Dataset(path, "r") as nc:
        if _file_nbytes(nc) > max_inline_bytes:
            return None
        return [(g.path, own_dimensions(g), _decode_group(g, path)) for g in [nc, *_walk(nc)]]


def _decode_group(nc: Any, path: str) -> xr.Dataset:
    """One group of an open netCDF4.Dataset (or the file's root group), decoded."""
    import numpy as np
    import xarray as xr
    from xarray.conventions import decode_cf_variables

    nc.set_auto_maskandscale(False)
    nc.set_auto_chartostring(False)
    variables = {}
    for name, var in nc.variables.items():
        attrs = {k: var.getncattr(k) for k in var.ncattrs()}
        attrs.pop("least_significant_digit", None)
        data = np.asarray(_read_whole(var), dtype=object if var.dtype is str else None)
        if data.dtype.kind == "S" and FILL_VALUE_ATTR in attrs:
            attrs[FILL_VALUE_ATTR] = np.bytes_(attrs[FILL_VALUE_ATTR])
        encoding = {"dtype": var.dtype, "source": path, "original_shape": data.shape}
        variables[name] = xr.Variable(var.dimensions, data, attrs, encoding)
    file_attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
    decoded, ds_attrs, coord_names = decode_cf_variables(variables, file_attrs)
    for name, var in decoded.items():
        raw = variables.get(name)
        if var.dtype.kind == "O" and raw is not None and raw.dtype.kind in "iuf":
            var.encoding[ON_DISK_NUMBERS] = raw.values  # cftime dates: stored as the file's numbers
    ds = xr.Dataset(decoded, attrs=ds_attrs).set_coords(coord_names.intersection(decoded))
    ds.encoding.update(_file_encoding(nc))
    return ds.load()


def _file_encoding(nc: Any) -> dict[str, Any]:
    """What a file's encoding keeps of it: its format and unlimited dims (``atlas export``
    writes them back)."""
    return {
        "format": str(nc.data_model),
        "unlimited_dims": {name for name, dim in nc.dimensions.items() if dim.isunlimited()},
    }


def read_netcdf(path: str, max_inline_bytes: int = MAX_INLINE_BYTES, prepare: bool = False) -> Decoded:
    """Decode one file into memory (every group of it), or say it is too big to send whole
    (runs in workers). With ``prepare``, each decoded group is also prepared for writing
    (CF-encoded, its arrays planned: :func:`atlas.integrations.xarray.prepare_xarray_dataset`),
    which is most of the work of writing it, and sent instead of the Dataset.

    Never raises for a bad file: the error comes back as text, since not every
    exception from the NetCDF library can be pickled.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            groups = _decode_in_memory(path, max_inline_bytes)
            if groups is None:
                return Decoded(stream=True, warnings=record_warnings(caught))
        except Exception as exc:  # reported per file, the ingest decides what to do
            return Decoded(error=describe_error(exc), warnings=record_warnings(caught))
        (_, dims, root), subs = groups[0], groups[1:]
        if not prepare:
            return Decoded(
                dataset=root, dims=dims, groups=[Group(p, d, dataset=ds) for p, d, ds in subs],
                warnings=record_warnings(caught),
            )
        from ..xarray import prepare_xarray_dataset

        prepared = []
        for p, _, ds in groups:
            try:
                prepared.append(prepare_xarray_dataset(ds))
            except Exception as exc:  # data this file holds that cannot be stored
                where = "" if p == "/" else f"group {p}: "
                return Decoded(error=where + describe_error(exc, reading=False), warnings=record_warnings(caught))
        parts = [Group(p, d, prepared=pre) for (p, d, _), pre in zip(subs, prepared[1:], strict=True)]
        return Decoded(prepared=prepared[0], dims=dims, groups=parts, warnings=record_warnings(caught))
