"""xarray integration: the ``Atlas`` methods that read and write ``xarray.Dataset``.

The layout of a Dataset in a store (dtype mapping, fill values, attribute encoding,
coordinates) is written down once, in :mod:`atlas.integrations.conventions`; its names
(``COORDS_ATTR``, ``split_attributes``, ``decode_attribute``...) are importable from here
too. CF encoding (``encoding=``, what is stored decoded or encoded, the record that lets
opening decode as xarray does) is :mod:`atlas.integrations.cf`.

xarray itself is imported lazily, inside the functions that need it, so that
``import atlas`` stays fast for users who never touch xarray.

The ``ds.atlas`` accessor
-------------------------
``ds.atlas.write(store, name, **kw)`` is registered on ``xarray.Dataset`` without
importing xarray at ``import atlas`` time. Registration happens (once) as soon as
any of these occurs:

* this module is imported while xarray is already imported (the usual order:
  ``import xarray`` then ``import atlas``);
* xarray loads the ``atlas`` backend entry point (any ``xr.open_dataset`` call,
  or ``xr.backends.list_engines()``), which imports
  :mod:`atlas.integrations.xarray_backend`;
* any xarray method of ``Atlas`` is called;
* :func:`register_accessor` is called explicitly.
"""

from __future__ import annotations

import math
import operator
import os
import sys
import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.state import default_chunk_shape
from ..dtypes import DTYPES, DType
from ..names import check_name
from .cf import RECORD_ATTR, EncodedVariable, add_fill, encode_dataset
from .conventions import (
    COORDS_ATTR,
    FILL_VALUE_ATTR,
    JSON_PREFIX,
    atlas_dtype,
    coerce_fill,
    coordinates_marker,
    decode_attribute,
    default_fill,
    encode_attribute,
    is_bookkeeping,
    split_attributes,
    variable_attribute_key,
)
from .lazy import LazyArrayReader

if TYPE_CHECKING:
    import xarray as xr

    from ..core.atlas import Store as Atlas
    from ..core.dataset import DatasetView

__all__ = [
    "COORDS_ATTR",
    "JSON_PREFIX",
    "AtlasDatasetAccessor",
    "LazyArrayReader",
    "add_xarray_dataset",
    "decode_attribute",
    "encode_attribute",
    "open_as_many_xarray_dataset",
    "register_accessor",
    "split_attributes",
]

# A non-dask variable is written in slabs of at most this many bytes (lazy inputs such as
# a NetCDF file opened by xarray are then read piece by piece, not all at once).
STREAM_BYTES = 64 << 20
# Bytes assumed per string cell when sizing slabs.
STRING_CELL_BYTES = 64


# ----------------------------------------------------------------------------- blocks


def _to_storable(block: np.ndarray, dt: DType, fill: Any, missing: list[int]) -> np.ndarray:
    """Turn one block of input data into what ``write_array`` wants for ``dt``."""
    if dt.is_string:
        if block.dtype.kind == "O" and block.size:
            import pandas as pd

            mask = np.asarray(pd.isna(block.reshape(-1))).reshape(block.shape)
            n = int(np.count_nonzero(mask))
            if n:
                block = block.copy()
                block[mask] = "" if fill is None else fill
                missing[0] += n
        return block
    if dt.kind == "timestamp":
        if block.dtype.kind != "M":
            raise TypeError(f"expected datetime64 data, got {block.dtype}")
        if block.dtype != np.dtype("datetime64[ns]"):
            ns = block.astype("datetime64[ns]")
            back = ns.astype(block.dtype)
            ok = (back == block) | np.isnat(block)
            if not bool(np.all(ok)):
                raise OverflowError(
                    f"datetime64 values of unit {np.datetime_data(block.dtype)[0]!r} fall outside "
                    "the datetime64[ns] range (years 1678-2261) and cannot be stored"
                )
            block = ns
        return _contiguous(block).view(np.int64)
    if block.dtype.byteorder not in ("=", "|") and block.dtype.itemsize > 1:
        block = block.astype(block.dtype.newbyteorder("="))
    if block.dtype != dt.numpy:
        block = block.astype(dt.numpy)
    return _contiguous(block)


def _contiguous(block: np.ndarray) -> np.ndarray:
    """C-contiguous, keeping 0-D arrays 0-D (``np.ascontiguousarray`` makes them 1-D)."""
    return block if block.flags.c_contiguous else block.copy(order="C")


# ----------------------------------------------------------------------------- writing plan


class _Plan:
    """One array to define and write, validated before anything touches the store."""

    __slots__ = ("name", "variable", "dtype", "dims", "shape", "chunk_shape", "fill", "attrs")

    def __init__(self, name: str, variable: Any, dtype: DType, dims: tuple[str, ...], shape: tuple[int, ...],
                 chunk_shape: tuple[int, ...], fill: Any, attrs: list[tuple[str, Any, str | None]]) -> None:
        self.name = name
        self.variable = variable
        self.dtype = dtype
        self.dims = dims
        self.shape = shape
        self.chunk_shape = chunk_shape
        self.fill = fill
        self.attrs = attrs


def _is_dask(variable: Any) -> bool:
    data = getattr(variable, "_data", variable)  # skip Variable.chunks: a slow Protocol check
    return type(data).__module__.startswith("dask.") and hasattr(data, "chunks")


def _chunk_shape(
    name: str, variable: Any, dt: DType, shape: tuple[int, ...], chunks: Mapping[Hashable, Any] | None
) -> tuple[int, ...]:
    if chunks is not None and name in chunks and chunks[name] is not None:
        given = chunks[name]
        if isinstance(given, (int, np.integer)) and not isinstance(given, bool):
            given = (given,)
        try:
            cs = tuple(operator.index(c) for c in given)
        except TypeError:
            raise TypeError(f"chunks[{name!r}] must be a sequence of ints, got {given!r}") from None
        if len(cs) != len(shape):
            raise ValueError(f"chunks[{name!r}] has {len(cs)} axes but variable {name!r} has {len(shape)}")
        return cs
    given = variable.encoding.get("chunks") or variable.encoding.get("chunksizes")
    if isinstance(given, (tuple, list)) and len(given) == len(shape) and all(
        isinstance(c, (int, np.integer)) and c > 0 for c in given
    ):
        return tuple(min(int(c), max(1, n)) for c, n in zip(given, shape, strict=True))
    if _is_dask(variable):
        return tuple(int(c[0]) if len(c) else 0 for c in variable.chunks)
    return default_chunk_shape(shape, dt)  # the full shape, unless that is a big chunk


class PreparedDataset:
    """A Dataset as ``add_xarray_dataset`` writes it, decided before any store is touched:
    each array's plan (schema, data, attributes), the dataset's attributes, its coordinate
    names and its CF record. Plain values, so it pickles (an ingest's readers prepare
    files, its writer only writes them)."""

    __slots__ = ("plans", "attrs", "coords", "record", "items")

    def __init__(
        self, plans: list[_Plan], attrs: list[tuple[str, Any, str | None]], coords: list[str], record: str, items: int
    ) -> None:
        self.plans = plans
        self.attrs = attrs
        self.coords = coords
        self.record = record
        self.items = items  # attributes and arrays: what the dataset's metadata grows with


def prepare_xarray_dataset(
    ds: xr.Dataset,
    chunks: Mapping[Hashable, Any] | None = None,
    fill_value: Any = None,
    encoding: Mapping[Hashable, Any] | None = None,
) -> PreparedDataset:
    """Validate everything and decide each array's schema; touches no store (see
    :func:`add_xarray_dataset` for the arguments)."""
    import xarray as xr

    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset()
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"expected an xarray.Dataset, not {type(ds).__name__}")
    if chunks is not None and not isinstance(chunks, Mapping):
        raise TypeError("chunks must be a dict {variable: chunk shape}")
    encoded = encode_dataset(ds, encoding)
    plans = []
    for ev in encoded.variables:
        try:
            plans.append(_plan_variable(ev, chunks, fill_value))
        except (TypeError, ValueError, OverflowError, NotImplementedError) as e:
            if repr(ev.name) in str(e):
                raise
            raise type(e)(f"variable {ev.name!r}: {e}") from e
    ds_attrs = []
    for k, v in ds.attrs.items():
        if not isinstance(k, str):
            raise TypeError(f"attribute names must be str, found {k!r}")
        if is_bookkeeping(k):
            continue
        value, kind = encode_attribute(v)
        ds_attrs.append((k, value, kind))
    items = 1 + len(ds_attrs) + sum(1 + len(p.attrs) for p in plans)
    return PreparedDataset(plans, ds_attrs, [str(c) for c in ds.coords], encoded.record(), items)


def _plan_variable(ev: EncodedVariable, chunks: Mapping[Hashable, Any] | None, fill_value: Any) -> _Plan:
    """The array ``ev`` becomes, with its fill and its ``"{var}.{attr}"`` attributes."""
    vname = ev.name
    check_name(vname, "array")
    variable = ev.data
    for d in variable.dims:
        if not isinstance(d, str):
            raise TypeError(f"dimension names must be str, found {d!r} in variable {vname!r}")
    dt = DTYPES[atlas_dtype(variable.dtype, f"variable {vname!r}")]
    shape = tuple(int(n) for n in variable.shape)
    cs = _chunk_shape(vname, variable, dt, shape, chunks)
    attrs = dict(ev.user_attrs)
    attr_fill = attrs.pop(FILL_VALUE_ATTR, None)
    if ev.form == "encoded" and attr_fill is None:
        attr_fill = ev.disk_attrs.get(FILL_VALUE_ATTR)
    if ev.string_fill is not None and attr_fill is None:
        attr_fill = ev.string_fill
    fill = _fill(dt, vname, fill_value, attr_fill)
    add_fill(ev, dt, fill)
    encoded = []
    for k, v in attrs.items():
        if not isinstance(k, str):
            raise TypeError(f"attribute names must be str, found {k!r} on variable {vname!r}")
        value, kind = encode_attribute(v)
        encoded.append((variable_attribute_key(vname, k), value, kind))
    return _Plan(vname, variable, dt, tuple(str(d) for d in variable.dims), shape, cs, fill, encoded)


def _fill(dt: DType, vname: str, fill_value: Any, attr_fill: Any) -> Any:
    """The fill of a variable: ``fill_value[vname]`` when given as a dict holding it, else a
    scalar ``fill_value`` (numeric variables), else its ``_FillValue``, else the default."""
    if isinstance(fill_value, Mapping):
        if vname in fill_value:
            return coerce_fill(dt, fill_value[vname], vname)
    elif fill_value is not None and dt.kind in ("int", "uint", "float"):
        return coerce_fill(dt, fill_value, vname)
    if attr_fill is not None:
        return coerce_fill(dt, attr_fill, vname)
    return default_fill(dt)


def _write_plan(view: DatasetView, plan: _Plan) -> int:
    """Write one variable block by block; return how many missing strings were filled."""
    variable = plan.variable
    dt = plan.dtype
    missing = [0]
    if math.prod(plan.shape) == 0:
        return 0
    if len(plan.shape) == 0:
        data = np.asarray(variable.values)
        view.write_array(plan.name, [], _to_storable(data, dt, plan.fill, missing))
        return missing[0]
    if _is_dask(variable):
        arr = variable.data
        offsets = [np.concatenate(([0], np.cumsum(c)[:-1])).astype(int).tolist() for c in arr.chunks]
        for idx in np.ndindex(*arr.numblocks):
            sizes = [c[i] for c, i in zip(arr.chunks, idx, strict=True)]
            if 0 in sizes:
                continue
            block = np.asarray(arr.blocks[idx].compute())
            start = [o[i] for o, i in zip(offsets, idx, strict=True)]
            view.write_array(plan.name, start, _to_storable(block, dt, plan.fill, missing))
        return missing[0]
    # numpy-backed or lazily indexed (e.g. a NetCDF file): slabs along the first axis
    itemsize = STRING_CELL_BYTES if dt.is_string else max(1, int(np.dtype(variable.dtype).itemsize))
    row_bytes = itemsize * math.prod(plan.shape[1:])
    step = max(1, plan.chunk_shape[0])
    rows = max(step, (STREAM_BYTES // max(1, row_bytes)) // step * step)
    n = plan.shape[0]
    held = getattr(variable, "_data", None)
    in_memory = held if isinstance(held, np.ndarray) else None
    for i in range(0, n, rows):
        if in_memory is not None:  # numpy slices, without xarray's indexing machinery
            block = in_memory[i : min(n, i + rows)]
        else:  # a slice: it reads only this slab of a lazy input and never caches
            # data on the caller's variable
            block = np.asarray(variable[i : min(n, i + rows)].values)
        start = [i] + [0] * (len(plan.shape) - 1)
        view.write_array(plan.name, start, _to_storable(block, dt, plan.fill, missing))
    return missing[0]


# ----------------------------------------------------------------------------- accessor


class AtlasDatasetAccessor:
    """``ds.atlas``: write an ``xarray.Dataset`` into an Atlas store."""

    def __init__(self, xarray_obj: xr.Dataset) -> None:
        self._obj = xarray_obj

    def write(self, store: Atlas | str | os.PathLike[str], name: str, **kwargs: Any) -> DatasetView:
        """Add this Dataset to ``store`` as dataset ``name`` (see ``Atlas.add_xarray_dataset``).

        ``store`` is an open ``Atlas`` (the write stays buffered until its ``flush()``) or
        the location of an existing store, which is opened, written and flushed.
        """
        from ..core.atlas import Store

        if isinstance(store, Store):
            return add_xarray_dataset(store, self._obj, name, **kwargs)
        handle = Store.open(store)
        view = add_xarray_dataset(handle, self._obj, name, **kwargs)
        handle.flush()
        return view


_registered = False


def register_accessor() -> None:
    """Register the ``ds.atlas`` accessor on ``xarray.Dataset`` (idempotent; imports xarray)."""
    global _registered
    if _registered:
        return
    import xarray as xr

    if "atlas" not in xr.Dataset.__dict__:
        xr.register_dataset_accessor("atlas")(AtlasDatasetAccessor)
    _registered = True


# ----------------------------------------------------------------------------- the Atlas methods


def add_xarray_dataset(
    store: Atlas,
    ds: xr.Dataset,
    name: str,
    chunks: Mapping[Hashable, Sequence[int]] | None = None,
    fill_value: Any = None,
    encoding: Mapping[Hashable, Mapping[str, Any]] | None = None,
) -> DatasetView:
    """Store an ``xarray.Dataset`` as the new dataset ``name`` and return its view.

    Coordinates then data variables become arrays; dask-backed variables are written
    one block at a time. ``chunks={var: chunk_shape}`` overrides the chunk shape (else
    the variable's ``encoding["chunks"]``, else the first dask chunk, else the full shape,
    or for a variable over a few MiB the default chunking of ``define_array``).
    ``fill_value`` is a ``{var: value}`` dict (``None`` disables the default) or a scalar
    for int/uint/float variables.

    ``encoding`` is xarray's ``{var: {"dtype": ..., "_FillValue": ..., "scale_factor": ...,
    "units": ..., "calendar": ...}}`` (as ``Dataset.to_netcdf`` takes it); each variable's
    ``.encoding`` counts too. Values are CF-encoded with xarray's own machinery and the
    encoding is kept with each variable (:mod:`atlas.integrations.cf`), so opening gives
    xarray's ``.encoding`` back and ``atlas export`` writes the same on-disk form. Arrays
    hold the physical (decoded) values where Atlas can hold them, else the encoded numbers.
    On any error nothing is left behind.
    """
    register_accessor()
    check_name(name, "dataset")
    if store.dataset_exists(name):
        raise FileExistsError(f"dataset {name!r} already exists")
    return add_prepared(store, prepare_xarray_dataset(ds, chunks, fill_value, encoding), name)


def add_prepared(store: Atlas, prepared: PreparedDataset, name: str) -> DatasetView:
    """Write a prepared Dataset (:func:`prepare_xarray_dataset`) as the new dataset ``name``;
    on any error nothing is left behind."""
    view = store.create_dataset(name)  # FileExistsError, ValueError for a bad name
    plans = prepared.plans
    try:
        for p in plans:
            view.define_array(p.name, p.dtype.name, list(p.dims), list(p.shape), list(p.chunk_shape), p.fill)
        for p in plans:
            try:
                n = _write_plan(view, p)
            except (TypeError, ValueError, OverflowError) as e:
                raise type(e)(f"variable {p.name!r}: {e}") from e
            if n:
                warnings.warn(
                    f"variable {p.name!r}: {n} missing string cell(s) (None/NaN) stored as "
                    f"{('' if p.fill is None else p.fill)!r}",
                    UserWarning,
                    stacklevel=3,
                )
        for key, value, kind in prepared.attrs:
            view.set_attribute(key, value, kind)
        for p in plans:
            for key, value, kind in p.attrs:
                view.set_attribute(key, value, kind)
        view.set_attribute(COORDS_ATTR, coordinates_marker(prepared.coords))
        view.set_attribute(RECORD_ATTR, prepared.record)
    except BaseException:
        try:
            if store.dataset_exists(name):
                store.delete_dataset(name)
        except Exception:  # pragma: no cover - keep the original error
            pass
        raise
    return view


def open_as_many_xarray_dataset(
    store: Atlas,
    names: Sequence[str],
    concat_dim: str = "dataset",
    parallel: bool = True,
) -> xr.Dataset:
    """Stack many datasets into one ``xarray.Dataset`` along ``concat_dim``.

    Each data variable is read with the bulk cross-dataset scan into eager numpy of
    shape ``(len(names), *shape)``; coordinates and attributes come from the first
    name. ``parallel`` is accepted for compatibility (the scan is already bulk).
    """
    import xarray as xr

    register_accessor()
    if isinstance(names, str):
        raise TypeError("names must be a list of dataset names, not a str")
    names = list(names)
    if not names:
        raise ValueError("names is empty: pass at least one dataset name")
    first = store.open_dataset(names[0])
    for n in names[1:]:
        if not store.dataset_exists(n):
            raise KeyError(f"no dataset named {n!r}")
    coords, var_attrs, ds_attrs = split_attributes(first)
    coord_set = set(coords)
    coord_vars: dict[str, Any] = {}
    data_vars: dict[str, Any] = {}
    for a in first.list_arrays():
        meta = first.array_meta(a)
        assert meta is not None
        dims = tuple(meta["dimension_names"])
        if a in coord_set:
            coord_vars[a] = xr.Variable(dims, first.read_array(a), var_attrs[a])
        else:
            stacked = store.read_array_across_stacked(a, names)
            data_vars[a] = xr.Variable((concat_dim, *dims), stacked, var_attrs[a])
    labels = np.empty(len(names), dtype=object)
    labels[:] = names
    coord_vars[concat_dim] = xr.Variable((concat_dim,), labels)
    return xr.Dataset(data_vars, coords=coord_vars, attrs=ds_attrs)


if "xarray" in sys.modules and hasattr(sys.modules["xarray"], "register_dataset_accessor"):
    try:
        register_accessor()
    except Exception:  # pragma: no cover - never break import atlas
        pass
