"""xarray integration: the ``Atlas`` methods that read and write ``xarray.Dataset``.

The conventions (dtype mapping, fill values, attribute encoding, coordinates) are the
ones of ``spec/API.md``, section "xarray conventions":

* every coordinate, then every data variable, becomes one atlas array;
* per-variable attributes are stored as dataset attributes ``"{var}.{attr}"``; values
  that are not ``bool``/``int``/``float``/``str`` are stored as ``"json:" + json.dumps``;
* ``_pyatlas_coords`` holds the JSON list of coordinate names;
* ``_FillValue`` moves between the variable attributes and the array fill value.

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

import json
import math
import operator
import os
import sys
import threading
import uuid
import warnings
import weakref
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.state import default_chunk_shape
from ..dtypes import DTYPES, DType, validate_fill
from ..names import check_name

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
    "open_as_xarray_dataset",
    "register_accessor",
    "split_attributes",
]

COORDS_ATTR = "_pyatlas_coords"
JSON_PREFIX = "json:"
NAT = -(2**63)
# A non-dask variable is written in slabs of at most this many bytes (lazy inputs such as
# a NetCDF file opened by xarray are then read piece by piece, not all at once).
STREAM_BYTES = 64 << 20
# Bytes assumed per string cell when sizing slabs.
STRING_CELL_BYTES = 64


# ----------------------------------------------------------------------------- dtypes


def atlas_dtype(dtype: Any, what: str = "variable") -> str:
    """The atlas dtype name for a numpy (or pandas) dtype, per the xarray conventions.

    Raises ``NotImplementedError`` for dtypes Atlas cannot hold (float16, complex,
    timedelta, structured...).
    """
    if not isinstance(dtype, np.dtype):
        try:
            import pandas as pd

            if pd.api.types.is_string_dtype(dtype):
                return "string"
        except ImportError:  # pragma: no cover - pandas is a dependency
            pass
        raise NotImplementedError(f"{what} has dtype {dtype}, which Atlas cannot store")
    kind = dtype.kind
    if kind in "iu" or (kind == "f" and dtype.itemsize in (4, 8)):
        return dtype.name  # int8..uint64, float32, float64 (any byte order)
    if kind == "b":
        return "bool"
    if kind == "M":
        return "timestamp_nanoseconds"
    if kind in "OUS":
        return "string"
    raise NotImplementedError(
        f"{what} has dtype {dtype}, which Atlas cannot store "
        "(supported: int8..uint64, float32, float64, bool, datetime64, strings); convert it first"
    )


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


# ----------------------------------------------------------------------------- fill values


def _scalar(value: Any) -> Any:
    """Unwrap numpy scalars and one-element arrays (netCDF attributes often are)."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item() if value.dtype.kind != "M" else value.reshape(())[()]
    if isinstance(value, np.generic) and not isinstance(value, np.datetime64):
        return value.item()
    return value


def _coerce_fill(dt: DType, value: Any, var: str) -> Any:
    """Make a user-given or ``_FillValue`` fill fit the array's dtype, then validate it."""
    value = _scalar(value)
    if value is None:
        return None
    if dt.kind == "timestamp" and not isinstance(value, int):
        if isinstance(value, np.datetime64):
            value = int(value.astype("datetime64[ns]").view(np.int64))
        else:
            try:
                import pandas as pd

                ts = pd.Timestamp(value)
                value = NAT if ts is pd.NaT else int(ts.value)
            except (TypeError, ValueError):
                pass
    elif dt.is_string and isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        return validate_fill(dt, value)
    except (TypeError, OverflowError) as e:
        raise type(e)(f"fill value for variable {var!r}: {e}") from None


def _is_default_fill(dt: DType, fill: Any) -> bool:
    """Whether ``fill`` is the default of its kind (NaN, ``""``, NaT): not shown on read."""
    if dt.kind == "float":
        return isinstance(fill, float) and math.isnan(fill)
    if dt.is_string:
        return fill == ""
    if dt.kind == "timestamp":
        return fill == NAT
    return False


def _default_fill(dt: DType) -> Any:
    if dt.kind == "float":
        return math.nan
    if dt.kind == "timestamp":
        return NAT
    if dt.is_string:
        return ""
    return None


# ----------------------------------------------------------------------------- attributes


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def encode_attribute(value: Any) -> tuple[Any, str | None]:
    """How an xarray attribute value is stored: ``(value, forced dtype or None)``.

    ``bool``/``int``/``float``/``str`` (numpy scalars unwrapped) are stored natively;
    ``bytes`` are decoded as UTF-8 and stored as ``str``; anything else becomes
    ``"json:" + json.dumps(value)`` (ndarrays as lists). A string that itself starts
    with ``"json:"`` is stored JSON-encoded too, so it reads back unchanged.
    """
    if isinstance(value, np.generic) and not isinstance(value, (np.datetime64, np.timedelta64)):
        value = value.item()
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, bool):
        return bool(value), None
    if isinstance(value, int):
        if -(2**63) <= value < 2**63:
            return int(value), None
        if 0 <= value < 2**64:
            return int(value), "uint64"
    elif isinstance(value, float):
        return float(value), None
    elif isinstance(value, str):
        if not value.startswith(JSON_PREFIX):
            return str(value), None
        return JSON_PREFIX + json.dumps(str(value)), None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return JSON_PREFIX + json.dumps(value, default=_json_default), None


def decode_attribute(value: Any) -> Any:
    """Inverse of :func:`encode_attribute` (``json:`` values decoded, others unchanged)."""
    if isinstance(value, str) and value.startswith(JSON_PREFIX):
        try:
            return json.loads(value[len(JSON_PREFIX) :])
        except ValueError:
            return value
    return value


def _owner(key: str, arrays: set[str]) -> tuple[str, str] | None:
    """``(array, attr)`` when ``key`` is ``"{array}.{attr}"`` for an array of the dataset.

    The longest array-name prefix wins, so array names and attribute names may both
    contain dots.
    """
    i = key.rfind(".")
    while i > 0:
        prefix = key[:i]
        if prefix in arrays:
            return prefix, key[i + 1 :]
        i = key.rfind(".", 0, i)
    return None


def split_attributes(
    view: DatasetView,
) -> tuple[list[str], dict[str, dict[str, Any]], dict[str, Any]]:
    """Read a dataset's xarray layout: ``(coordinate names, {array: attrs}, dataset attrs)``.

    Coordinates come from ``_pyatlas_coords``; without it, a 1-D array whose only dim is
    its own name is a coordinate. Per-array attributes (``set_array_attribute``) and
    ``"{array}.{attr}"`` dataset attributes become variable attributes; ``_FillValue``
    is added for explicit (non-default) fill values.
    """
    arrays = view.list_arrays()
    names = set(arrays)
    attrs = view.attributes()
    coords: list[str] | None = None
    marker = attrs.get(COORDS_ATTR)
    if isinstance(marker, str):
        try:
            parsed = json.loads(marker)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            coords = [c for c in parsed if isinstance(c, str) and c in names]
    if coords is None:
        coords = []
        for a in arrays:
            meta = view.array_meta(a)
            if meta is not None and meta["dimension_names"] == [a]:
                coords.append(a)
    var_attrs: dict[str, dict[str, Any]] = {}
    for a in arrays:
        own = view.array_attributes(a)
        var_attrs[a] = {k: decode_attribute(v) for k, v in own.items()}
    ds_attrs: dict[str, Any] = {}
    for key, value in attrs.items():
        if key == COORDS_ATTR:
            continue
        owner = _owner(key, names)
        if owner is None:
            ds_attrs[key] = decode_attribute(value)
        else:
            var_attrs[owner[0]][owner[1]] = decode_attribute(value)
    for a in arrays:
        fill = view.array_fill_value(a)
        meta = view.array_meta(a)
        if fill is not None and meta is not None and not _is_default_fill(DTYPES[meta["dtype"]], fill):
            var_attrs[a]["_FillValue"] = fill
    return coords, var_attrs, ds_attrs


# ----------------------------------------------------------------------------- lazy reads

_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def store_lock(store: Any) -> threading.RLock:
    """The lock serialising reads through one ``Atlas`` handle from dask threads."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(store)
        if lock is None:
            lock = _LOCKS[store] = threading.RLock()
        return lock


def basic_window(
    key: tuple[Any, ...], shape: tuple[int, ...]
) -> tuple[list[int], list[int], tuple[Any, ...]]:
    """Turn a basic index (ints and slices) into ``(start, shape, post-index)``.

    The window ``[start, start + shape)`` is what to read; the post-index applies the
    steps and drops the int-indexed axes.
    """
    if not isinstance(key, tuple):
        key = (key,)
    key = key + (slice(None),) * (len(shape) - len(key))
    start: list[int] = []
    count: list[int] = []
    post: list[Any] = []
    for k, n in zip(key, shape, strict=True):
        if isinstance(k, slice):
            r = range(*k.indices(n))
            if len(r) == 0:
                start.append(0)
                count.append(0)
                post.append(slice(0, 0))
                continue
            lo, hi = min(r[0], r[-1]), max(r[0], r[-1]) + 1
            start.append(lo)
            count.append(hi - lo)
            if r.step == 1:
                post.append(slice(None))
            else:
                first = r[0] - lo
                stop = first + r.step * len(r)
                post.append(slice(first, stop if stop >= 0 else None, r.step))
        else:
            i = operator.index(k)
            if i < 0:
                i += n
            if not 0 <= i < n:
                raise IndexError(f"index {k} is out of bounds for an axis of size {n}")
            start.append(i)
            count.append(1)
            post.append(0)
    return start, count, tuple(post)


def read_window(view: DatasetView, array: str, start: list[int], count: list[int]) -> np.ndarray | None:
    """``view.read_array`` of a window; 0-D arrays are read whole (the core's windowed
    read of a flushed 0-D string array fails)."""
    if not start:
        return view.read_array(array)
    return view.read_array(array, start, count)


class LazyArrayReader:
    """Reads windows of one array of one dataset, for ``dask.array.from_array``.

    It holds the ``Atlas`` handle itself, so buffered (unflushed) data is visible in
    process. It pickles through ``Atlas.__reduce__`` (the store is reopened by location,
    which needs the handle flushed) with the handle's version pinned, so the dask arrays
    built on it give the same result on distributed workers.
    """

    def __init__(self, store: Atlas, dataset: str, array: str, shape: Sequence[int], dtype: np.dtype[Any]) -> None:
        self.store = store
        self.dataset = dataset
        self.array = array
        self.shape = tuple(int(n) for n in shape)
        self.dtype = dtype
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        start, count, post = basic_window(key, self.shape)
        with store_lock(self.store):
            data = read_window(self.store.open_dataset(self.dataset), self.array, start, count)
        if data is None:
            raise KeyError(f"dataset {self.dataset!r} no longer has an array named {self.array!r}")
        return data[post]

    def __repr__(self) -> str:
        return f"<LazyArrayReader {self.dataset!r}/{self.array!r} shape={self.shape}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # the handle pickles itself (and refuses while it has unflushed changes); the
        # version it had is pinned, so every process reads the same committed state
        args = (self.store, self.store.version, self.dataset, self.array, self.shape, self.dtype)
        return (_rebuild_reader, args)


def _rebuild_reader(
    store: Atlas, version: int, dataset: str, array: str, shape: tuple[int, ...], dtype: np.dtype[Any]
) -> LazyArrayReader:
    if store.version != version:  # the store moved on since pickling: read the pinned version
        store = type(store).open(store.location, version=version)
    return LazyArrayReader(store, dataset, array, shape, dtype)


def _lazy_array(store: Atlas, dataset: str, array: str, meta: Mapping[str, Any]) -> Any:
    """A dask array with one task per stored chunk of ``array``."""
    import dask.array as da

    shape = tuple(meta["shape"])
    dtype = DTYPES[meta["dtype"]].read_dtype
    reader = LazyArrayReader(store, dataset, array, shape, dtype)
    return da.from_array(
        reader,
        chunks=tuple(meta["chunk_shape"]),
        name=f"atlas-{array}-{uuid.uuid4().hex}",
        lock=False,
        asarray=False,
        fancy=False,
        meta=np.empty((0,) * len(shape), dtype=dtype),
        inline_array=False,
    )


def read_stacked(
    store: Atlas,
    array: str,
    names: Sequence[str],
    start: Sequence[int] | None = None,
    shape: Sequence[int] | None = None,
) -> np.ndarray:
    """``store.read_array_across_stacked``, also for 0-D arrays.

    The core's stacked read of 0-D string arrays returns 0-D arrays instead of ``str``
    elements, so 0-D arrays are read with ``read_array_across`` and stacked here.
    """
    meta = None
    for n in names:
        if store.dataset_exists(n):
            meta = store.open_dataset(n).array_meta(array)
            break
    if meta is None or meta["shape"]:
        return store.read_array_across_stacked(array, names, start, shape)
    # a 0-D window is the whole array; the core's windowed path mishandles 0-D strings
    parts = store.read_array_across(array, names)
    for n, p in zip(names, parts, strict=True):
        if p is None:
            raise KeyError(f"dataset {n!r} has no array named {array!r}")
    dtypes = {p.dtype for p in parts if p is not None}
    if len(dtypes) > 1:
        raise TypeError(f"array {array!r} has different dtypes across these datasets")
    out = np.empty(len(parts), dtype=dtypes.pop())
    for i, p in enumerate(parts):
        out[i] = p[()]  # type: ignore[index]
    return out


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
    if _is_dask(variable):
        return tuple(int(c[0]) if len(c) else 0 for c in variable.chunks)
    return default_chunk_shape(shape, dt)  # the full shape, unless that is a big chunk


def _plan(
    store: Atlas,
    ds: xr.Dataset,
    name: str,
    chunks: Mapping[Hashable, Any] | None,
    fill_value: Any,
) -> tuple[list[_Plan], list[tuple[str, Any, str | None]], list[str]]:
    """Validate everything and decide each array's schema; touches nothing."""
    check_name(name, "dataset")
    if store.dataset_exists(name):
        raise FileExistsError(f"dataset {name!r} already exists")
    if chunks is not None and not isinstance(chunks, Mapping):
        raise TypeError("chunks must be a dict {variable: chunk shape}")
    fill_map: Mapping[Hashable, Any] | None = None
    scalar_fill: Any = None
    if isinstance(fill_value, Mapping):
        fill_map = fill_value
    elif fill_value is not None:
        scalar_fill = fill_value
    order = list(ds.coords) + list(ds.data_vars)
    plans: list[_Plan] = []
    for vname in order:
        if not isinstance(vname, str):
            raise TypeError(f"variable names must be str, found {vname!r}")
        check_name(vname, "array")
        variable = ds.variables[vname]
        for d in variable.dims:
            if not isinstance(d, str):
                raise TypeError(f"dimension names must be str, found {d!r} in variable {vname!r}")
        dt = DTYPES[atlas_dtype(variable.dtype, f"variable {vname!r}")]
        shape = tuple(int(n) for n in variable.shape)
        cs = _chunk_shape(vname, variable, dt, shape, chunks)
        attrs = dict(variable.attrs)
        attr_fill = attrs.pop("_FillValue", None)
        if fill_map is not None and vname in fill_map:
            fill = _coerce_fill(dt, fill_map[vname], vname)
        elif scalar_fill is not None and dt.kind in ("int", "uint", "float"):
            fill = _coerce_fill(dt, scalar_fill, vname)
        elif attr_fill is not None:
            fill = _coerce_fill(dt, attr_fill, vname)
        else:
            fill = _default_fill(dt)
        encoded = []
        for k, v in attrs.items():
            if not isinstance(k, str):
                raise TypeError(f"attribute names must be str, found {k!r} on variable {vname!r}")
            value, kind = encode_attribute(v)
            encoded.append((f"{vname}.{k}", value, kind))
        plans.append(_Plan(vname, variable, dt, tuple(str(d) for d in variable.dims), shape, cs, fill, encoded))
    ds_attrs = []
    for k, v in ds.attrs.items():
        if not isinstance(k, str):
            raise TypeError(f"attribute names must be str, found {k!r}")
        if k == COORDS_ATTR:
            continue
        value, kind = encode_attribute(v)
        ds_attrs.append((k, value, kind))
    return plans, ds_attrs, [str(c) for c in ds.coords]


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
    for i in range(0, n, rows):
        # always a slice: it reads only this slab of a lazy input and never caches
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
) -> DatasetView:
    """Store an ``xarray.Dataset`` as the new dataset ``name`` and return its view.

    Coordinates then data variables become arrays; dask-backed variables are written
    one block at a time. ``chunks={var: chunk_shape}`` overrides the chunk shape (else
    the first dask chunk, else the full shape, or for a variable over a few MiB the
    default chunking of ``define_array``). ``fill_value`` is a ``{var: value}``
    dict (``None`` disables the default) or a scalar for int/uint/float variables.
    On any error nothing is left behind.
    """
    import xarray as xr

    register_accessor()
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset()
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"expected an xarray.Dataset, not {type(ds).__name__}")
    plans, ds_attrs, coord_names = _plan(store, ds, name, chunks, fill_value)
    view = store.create_dataset(name)
    try:
        for p in plans:
            view.define_array(p.name, p.dtype.name, list(p.dims), list(p.shape), list(p.chunk_shape), p.fill)
        for p in plans:
            n = _write_plan(view, p)
            if n:
                warnings.warn(
                    f"variable {p.name!r}: {n} missing string cell(s) (None/NaN) stored as "
                    f"{('' if p.fill is None else p.fill)!r}",
                    UserWarning,
                    stacklevel=2,
                )
        for key, value, kind in ds_attrs:
            view.set_attribute(key, value, kind)
        for p in plans:
            for key, value, kind in p.attrs:
                view.set_attribute(key, value, kind)
        view.set_attribute(COORDS_ATTR, json.dumps(coord_names))
    except BaseException:
        try:
            if store.dataset_exists(name):
                store.delete_dataset(name)
        except Exception:  # pragma: no cover - keep the original error
            pass
        raise
    return view


def open_as_xarray_dataset(store: Atlas, name: str) -> xr.Dataset:
    """Open dataset ``name`` as an ``xarray.Dataset``.

    Arrays chunked on disk come back as lazy dask arrays (one task per stored chunk,
    read at compute time); one-chunk and 0-D arrays as numpy. Coordinates, attributes
    and explicit ``_FillValue`` are restored.
    """
    import xarray as xr

    register_accessor()
    view = store.open_dataset(name)
    coords, var_attrs, ds_attrs = split_attributes(view)
    variables: dict[str, Any] = {}
    for a in view.list_arrays():
        meta = view.array_meta(a)
        assert meta is not None
        shape = meta["shape"]
        data: Any
        if shape and meta["chunk_shape"] != shape and math.prod(shape) > 0:
            data = _lazy_array(store, name, a, meta)
        else:
            data = view.read_array(a)
        variables[a] = xr.Variable(tuple(meta["dimension_names"]), data, var_attrs[a])
    coord_set = set(coords)
    return xr.Dataset(
        {k: v for k, v in variables.items() if k not in coord_set},
        coords={k: variables[k] for k in coords},
        attrs=ds_attrs,
    )


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
            stacked = read_stacked(store, a, names)
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
