"""Reading one NetCDF file: decoded whole in memory, or opened lazily to be streamed.

Files are decoded with xarray's CF conventions (masked fill values become NaN, times
become ``datetime64``, character arrays become strings), root group only; each variable's
``.encoding`` (on-disk dtype, ``_FillValue``, units, char dims) and the file's format and
unlimited dims go with it, so the store keeps the on-disk form (see
:mod:`atlas.integrations.cf`).
:func:`read_netcdf` is what the reader processes run: it never raises for a bad file.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..conventions import FILL_VALUE_ATTR

if TYPE_CHECKING:
    import xarray as xr

    from ..xarray import PreparedDataset

__all__ = [
    "MAX_INLINE_BYTES",
    "Decoded",
    "GroupIgnoredWarning",
    "describe_error",
    "open_netcdf",
    "plan_chunks",
    "read_netcdf",
    "record_warnings",
]

#: Largest decoded size of a file handed whole from a worker to the writer.
MAX_INLINE_BYTES = 32 << 20
#: Bytes assumed per element of object (string) arrays when estimating sizes.
_OBJECT_ITEMSIZE = 64


class GroupIgnoredWarning(UserWarning):
    """A NetCDF4 file has groups: only its root group is ingested."""


def open_netcdf(path: str | os.PathLike[str], chunk_bytes: int | None = None) -> xr.Dataset:
    """Open a NetCDF file lazily with xarray's CF decoding (root group only).

    A file with groups gives a :class:`GroupIgnoredWarning` per group. With
    ``chunk_bytes`` every variable is backed by dask blocks of at most about that
    many bytes (see :func:`plan_chunks`), so writing it streams block by block.
    """
    import xarray as xr
    from xarray.backends import NetCDF4DataStore

    store = NetCDF4DataStore.open(os.fspath(path), mode="r")
    try:
        _warn_groups(store.ds)
        ds = xr.open_dataset(store, engine="store")
        ds.encoding.update(_file_encoding(store.ds))
    except BaseException:
        store.close()
        raise
    if chunk_bytes is not None:
        plan = plan_chunks(ds, chunk_bytes)
        ds = ds.chunk({d: plan[d] for d in ds.dims if d in plan})
    return ds


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
class Decoded:
    """What a reader sends back for one file."""

    dataset: xr.Dataset | None = None  # decoded in memory
    prepared: PreparedDataset | None = None  # the dataset prepared for writing (then dataset is None)
    stream: bool = False  # too large to send whole: the writer streams it
    error: str | None = None
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (category, message)


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


def _warn_groups(nc: Any) -> None:
    for g in nc.groups:
        warnings.warn(
            f"group '{g}' ignored: only the root group of a NetCDF file is ingested",
            GroupIgnoredWarning,
            stacklevel=3,
        )


def _file_nbytes(nc: Any) -> int:
    """Decoded size of a netCDF4.Dataset's root variables, estimated from their schemas."""
    total = 0
    for var in nc.variables.values():
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


def _decode_in_memory(path: str, max_inline_bytes: int) -> xr.Dataset | None:
    """Read a whole file and CF-decode it in memory; None when it is too large for that.

    This gives what ``xr.open_dataset(path).load()`` gives: the same decoding
    (``xarray.conventions.decode_cf_variables``) and the same assembly as xarray's
    store backend, minus the lazy per-variable indexing machinery, which costs more
    than the reads themselves for files of many small variables.
    """
    import netCDF4
    import numpy as np
    import xarray as xr
    from xarray.conventions import decode_cf_variables

    with netCDF4.Dataset(path, "r") as nc:
        _warn_groups(nc)
        if _file_nbytes(nc) > max_inline_bytes:
            return None
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
        file_encoding = _file_encoding(nc)
    decoded, ds_attrs, coord_names = decode_cf_variables(variables, file_attrs)
    ds = xr.Dataset(decoded, attrs=ds_attrs).set_coords(coord_names.intersection(decoded))
    ds.encoding.update(file_encoding)
    return ds.load()


def _file_encoding(nc: Any) -> dict[str, Any]:
    """What a file's encoding keeps of it: its format and unlimited dims (``atlas export``
    writes them back)."""
    return {
        "format": str(nc.data_model),
        "unlimited_dims": {name for name, dim in nc.dimensions.items() if dim.isunlimited()},
    }


def read_netcdf(path: str, max_inline_bytes: int = MAX_INLINE_BYTES, prepare: bool = False) -> Decoded:
    """Decode one file into memory, or say it is too big to send whole (runs in workers).
    With ``prepare``, the decoded file is also prepared for writing (CF-encoded, its
    arrays planned: :func:`atlas.integrations.xarray.prepare_xarray_dataset`), which is
    most of the work of writing it, and sent instead of the Dataset.

    Never raises for a bad file: the error comes back as text, since not every
    exception from the NetCDF library can be pickled.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = _decode_in_memory(path, max_inline_bytes)
            if ds is None:
                return Decoded(stream=True, warnings=record_warnings(caught))
        except Exception as exc:  # reported per file, the ingest decides what to do
            return Decoded(error=describe_error(exc), warnings=record_warnings(caught))
        if not prepare:
            return Decoded(dataset=ds, warnings=record_warnings(caught))
        from ..xarray import prepare_xarray_dataset

        try:
            prepared = prepare_xarray_dataset(ds)
        except Exception as exc:  # data this file holds that cannot be stored
            return Decoded(error=describe_error(exc, reading=False), warnings=record_warnings(caught))
        return Decoded(prepared=prepared, warnings=record_warnings(caught))


